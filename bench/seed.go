package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// seeded is one store ready to serve, with the tokens of its sessions.
type seeded struct {
	name string
	// db names the store as serve's --db flag and db.Open take it: a SQLite file, or the
	// URL of the PostgreSQL case's database, whose serve also needs keyFile.
	db        string
	keyFile   string
	tokens    []string // session tokens, in round-robin order (consecutive ones belong to different users)
	usernames []string // every account name, for the login flood
	summary   string
}

const benchPassword = "bench password that nobody types"

// The two portals. The large one has as many current notices as the small one, so that
// large/small compares the cost of a big history and many users, not of a page with more
// banners on it.
var (
	smallSize = db.BenchSize{Users: 10, Sessions: 10, Notices: 5, Current: 3, Receipts: 15, Dismissals: 5}
	largeSize = db.BenchSize{Users: 10_000, Sessions: 100_000, Notices: 1_000, Current: 3, Receipts: 100_000,
		Dismissals: 75_000}
)

// seedPortal builds one portal with db.SeedBench, every account's password benchPassword
// (hash), and an app behind forward auth that everyone may open, and checks the store
// reads it back.
func seedPortal(ctx context.Context, name, path, hash string, size db.BenchSize) (*seeded, error) {
	start := time.Now()
	d, err := db.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	seed, err := d.SeedBench(ctx, size, hash, start)
	if err == nil {
		_, err = d.CreateApp(ctx, db.AppInput{Host: benchAppHost, Audience: db.Audience{Everyone: true}}, db.Event{At: start})
	}
	if err := errors.Join(err, d.Close()); err != nil {
		return nil, fmt.Errorf("seed %s: %w", name, err)
	}
	s := &seeded{name: name, db: path, tokens: seed.Tokens, usernames: seed.Usernames,
		summary: fmt.Sprintf("%d users, %d sessions, %d notices (%d current), %d receipts (%d acks, %d dismissals), seeded in %v",
			size.Users, size.Sessions, size.Notices, size.Current, seed.Acks+seed.Dismissals, seed.Acks, seed.Dismissals,
			time.Since(start).Round(time.Millisecond))}
	return s, checkSeed(ctx, s, size.Users, size.Sessions)
}

// checkSeed reopens the store through the store and reads it back the way a request would.
func checkSeed(ctx context.Context, s *seeded, users, sessions int) error {
	d, err := db.Open(ctx, s.db)
	if err != nil {
		return err
	}
	defer d.Close()
	if n, err := d.CountUsers(ctx); err != nil || n != users {
		return fmt.Errorf("seed %s: %d users (%v), want %d", s.name, n, err, users)
	}
	if n, err := d.CountSessions(ctx); err != nil || n != sessions {
		return fmt.Errorf("seed %s: %d sessions (%v), want %d", s.name, n, err, sessions)
	}
	for _, tok := range []string{s.tokens[0], s.tokens[len(s.tokens)-1]} {
		_, u, err := d.SessionByTokenHash(ctx, auth.HashToken(tok))
		if err != nil {
			return fmt.Errorf("seed %s: session lookup: %w", s.name, err)
		}
		if u.HasMFA() || u.MustChangePassword {
			return fmt.Errorf("seed %s: user %s would not see the dashboard", s.name, u.Username)
		}
		if _, err := d.LiveNotices(ctx, time.Now()); err != nil {
			return fmt.Errorf("seed %s: %w", s.name, err)
		}
		if _, err := d.NoticesFor(ctx, u, time.Now()); err != nil {
			return fmt.Errorf("seed %s: %w", s.name, err)
		}
	}
	return nil
}

// restamp marks every session as seen now, with the server stopped, so that no measured
// request pays for the once-a-minute last_seen_at write (see README: Benchmarks).
func restamp(ctx context.Context, path string) error {
	d, err := db.Open(ctx, path)
	if err != nil {
		return err
	}
	if err := errors.Join(d.RestampBench(ctx, time.Now()), d.Close()); err != nil {
		return fmt.Errorf("restamp %s: %w", path, err)
	}
	return nil
}

// copyFile copies a closed, checkpointed database.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

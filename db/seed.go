package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"gatehouse/auth"
)

// BenchSize is how much a portal filled for a benchmark holds. Accounts are user00000,
// user00001, …: one in twenty an admin (user00000 among them, the author of every notice),
// two in twenty publishers, the rest staff; every third is in the group "ops", every
// fourth in "night shift".
type BenchSize struct {
	Users     int
	Sessions  int // full sessions, round robin: session i belongs to user i % Users
	Notices   int // in all; those neither current nor scheduled ended or were archived
	Current   int // of Notices, showing now; every third is must-read
	Scheduled int // of Notices, starting later
	// Receipts are acknowledgements of must-read notices and dismissals of normal ones, by
	// users in each notice's audience. Dismissals of them are dismissals; where too few
	// must-read pairs exist for the rest, dismissals make up the difference.
	Receipts   int
	Dismissals int
}

// BenchSeed is what SeedBench made.
type BenchSeed struct {
	Usernames  []string // user i's name at index i
	Tokens     []string // session tokens, in session order (consecutive ones are different users')
	Acks       int
	Dismissals int
}

// benchUser is a seeded account as the receipts need it.
type benchUser struct {
	id     int64
	role   string
	groups []int64
}

// SeedBench fills the store with a portal of size, the same every run, in one transaction:
// the benchmarks of the load test and of the handlers read it. Every account has
// passwordHash, and times are relative to now. It writes through the store's own inserts,
// so the schema is known only here, beside the migrations.
func (d *DB) SeedBench(ctx context.Context, size BenchSize, passwordHash string, now time.Time) (BenchSeed, error) {
	if size.Users < 1 || size.Current+size.Scheduled > size.Notices {
		return BenchSeed{}, fmt.Errorf("db: seed: %d users and %d notices, %d current and %d scheduled, do not make a portal",
			size.Users, size.Notices, size.Current, size.Scheduled)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var seed BenchSeed
	err := d.tx(ctx, func(tx *sql.Tx) error {
		users, audiences, err := seedUsers(ctx, tx, size.Users, passwordHash, now, &seed)
		if err != nil {
			return err
		}
		if seed.Tokens, err = seedSessions(ctx, tx, users, size.Sessions, now); err != nil {
			return err
		}
		notices, err := seedNotices(ctx, tx, rng, size, audiences, users[0].id, now)
		if err != nil {
			return err
		}
		return seedReceipts(ctx, tx, rng, size, users, notices, now, &seed)
	})
	if err != nil {
		return BenchSeed{}, err
	}
	if err := d.checkpoint(ctx); err != nil {
		return BenchSeed{}, fmt.Errorf("db: seed: %w", err)
	}
	return seed, nil
}

// RestampBench marks every session as seen at now, so that no request a benchmark measures
// pays for the once-a-minute last_seen_at write.
func (d *DB) RestampBench(ctx context.Context, now time.Time) error {
	err := d.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE sessions SET last_seen_at = ?`, FormatTime(now))
		return err
	})
	if err != nil {
		return fmt.Errorf("db: restamp sessions: %w", err)
	}
	return d.checkpoint(ctx)
}

// checkpoint folds the WAL into the file, as the server's own checkpoints would have by now.
// A PostgreSQL server checkpoints by itself.
func (d *DB) checkpoint(ctx context.Context) error {
	if d.IsPostgres() {
		return nil
	}
	_, err := d.write.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

// benchRole spreads roles as a real portal might: 5% admins, 10% publishers, the rest staff.
func benchRole(i int) string {
	switch i % 20 {
	case 0:
		return RoleAdmin
	case 1, 2:
		return RolePublisher
	}
	return RoleStaff
}

// seedUsers makes the accounts and groups, and returns the audiences notices choose from:
// everyone (twice as often as the others), staff, publishers and admins, ops, or the night
// shift.
func seedUsers(ctx context.Context, tx *sql.Tx, n int, hash string, now time.Time, seed *BenchSeed) ([]benchUser, []Audience, error) {
	ops, err := insertGroup(ctx, tx, "ops", now)
	if err != nil {
		return nil, nil, err
	}
	night, err := insertGroup(ctx, tx, "night shift", now)
	if err != nil {
		return nil, nil, err
	}
	audiences := []Audience{{Everyone: true}, {Everyone: true}, {Roles: []string{RoleStaff}},
		{Roles: []string{RolePublisher, RoleAdmin}}, {GroupIDs: []int64{ops.ID}}, {GroupIDs: []int64{night.ID}}}
	users := make([]benchUser, n)
	for i := range users {
		name := fmt.Sprintf("user%05d", i)
		u := benchUser{role: benchRole(i)}
		if u.id, err = insertUser(ctx, tx, NewUser{Username: name, DisplayName: fmt.Sprintf("User %d", i), Role: u.role,
			PasswordHash: hash}, now); err != nil {
			return nil, nil, err
		}
		if i%3 == 0 {
			u.groups = append(u.groups, ops.ID)
		}
		if i%4 == 0 {
			u.groups = append(u.groups, night.ID)
		}
		for _, g := range u.groups {
			if _, err := insertMember(ctx, tx, g, u.id); err != nil {
				return nil, nil, err
			}
		}
		users[i] = u
		seed.Usernames = append(seed.Usernames, name)
	}
	return users, audiences, nil
}

// seedSessions writes full sessions in batches (see seedBatchRows), with random ids as
// insertSession draws them.
func seedSessions(ctx context.Context, tx *sql.Tx, users []benchUser, n int, now time.Time) ([]string, error) {
	ts := FormatTime(now)
	b := newRowBatch(ctx, tx, "sessions", []string{"id", "token_hash", "user_id", "stage", "created_at", "last_seen_at",
		"client_addr", "user_agent", "cookie_scope"})
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = auth.NewToken()
		id, err := drawRowID()
		if err != nil {
			return nil, err
		}
		if err := b.add(id, auth.HashToken(tokens[i]), users[i%len(users)].id, StageFull, ts, ts, "127.0.0.1",
			"gatehouse-bench", ""); err != nil {
			return nil, fmt.Errorf("db: seed sessions: %w", err)
		}
	}
	return tokens, b.flush()
}

const benchBody = "The VPN gateway moves to the new rack tonight.\nExpect two short interruptions between 22:00 and 23:00; " +
	"details and the rollback plan are at https://wiki.example/ops/vpn-move.\nQuestions go to #ops-help."

// benchSeverity is mostly info, sometimes a warning, rarely critical.
func benchSeverity(rng *rand.Rand) string {
	switch r := rng.IntN(10); {
	case r == 0:
		return SeverityCritical
	case r < 4:
		return SeverityWarning
	}
	return SeverityInfo
}

// seedNotices writes the current notices first, then the scheduled, then the past ones:
// over two years, 70% ended and 30% archived, a quarter must-read and a fifth of those
// edited so that readers were asked again (version 2).
func seedNotices(ctx context.Context, tx *sql.Tx, rng *rand.Rand, size BenchSize, audiences []Audience, authorID int64,
	now time.Time) ([]Notice, error) {
	const day = 24 * time.Hour
	author := User{ID: authorID, Username: "user00000"}
	notices := make([]Notice, size.Notices)
	for i := range notices {
		n := Notice{AuthorID: author.ID, AuthorName: author.Username, Title: fmt.Sprintf("Notice %d: VPN gateway move", i+1),
			Body: benchBody, Kind: NoticeNormal, Severity: benchSeverity(rng), Version: 1,
			Audience: audiences[rng.IntN(len(audiences))]}
		switch {
		case i < size.Current: // the audiences in turn, so every reader sees some of them
			n.StartsAt, n.Audience = now.Add(-time.Duration(1+rng.IntN(20*24))*time.Hour), audiences[i%len(audiences)]
			if i%2 == 1 {
				n.EndsAt = now.Add(time.Duration(1+rng.IntN(30)) * day)
			}
			if i%3 == 0 {
				n.Kind = NoticeMustRead
			}
		case i < size.Current+size.Scheduled:
			n.StartsAt = now.Add(time.Duration(1+rng.IntN(10)) * day)
		default:
			n.StartsAt = now.Add(-time.Duration(30+rng.IntN(700)) * day)
			if rng.IntN(10) < 3 {
				n.ArchivedAt = n.StartsAt.Add(time.Duration(1+rng.IntN(20)) * day)
			} else {
				n.EndsAt = n.StartsAt.Add(time.Duration(1+rng.IntN(14)) * day)
			}
			if rng.IntN(4) == 0 {
				n.Kind = NoticeMustRead
				n.Version += boolInt(rng.IntN(5) == 0)
			}
		}
		n.Revision, n.CreatedAt, n.UpdatedAt = n.Version, n.StartsAt, n.StartsAt
		var err error
		if n.ID, err = insertNotice(ctx, tx, n); err != nil {
			return nil, err
		}
		for rev := range n.Revision {
			r := n
			r.Revision, r.Version = rev+1, rev+1
			if err := writeRevision(ctx, tx, r, author, false, n.StartsAt); err != nil {
				return nil, err
			}
		}
		notices[i] = n
	}
	return notices, nil
}

// seedReceipts draws (notice, user) pairs in the notice's audience: acknowledgements of
// must-read notices first, some of the version before an edit, then dismissals of normal
// ones, each within two days of the notice's start.
func seedReceipts(ctx context.Context, tx *sql.Tx, rng *rand.Rand, size BenchSize, users []benchUser, notices []Notice,
	now time.Time, seed *BenchSeed) error {
	r := newReceiptDraw(rng, users, notices, now)
	acks := newRowBatch(ctx, tx, "notice_acks", []string{"notice_id", "user_id", "version", "acknowledged_at", "expires_at"})
	var err error
	seed.Acks, err = r.draw(true, size.Receipts-size.Dismissals, func(n Notice, u benchUser, at time.Time) error {
		if n.Version > 1 && rng.IntN(3) == 0 {
			n.Version--
		}
		return acks.add(n.ID, u.id, n.Version, FormatTime(at), n.ackExpiry(at))
	})
	if err = errors.Join(err, acks.flush()); err != nil {
		return err
	}
	dismissals := newRowBatch(ctx, tx, "notice_dismissals", []string{"notice_id", "user_id", "dismissed_at"})
	seed.Dismissals, err = r.draw(false, size.Receipts-seed.Acks, func(n Notice, u benchUser, at time.Time) error {
		return dismissals.add(n.ID, u.id, FormatTime(at))
	})
	if err = errors.Join(err, dismissals.flush()); err != nil {
		return err
	}
	if got := seed.Acks + seed.Dismissals; got != size.Receipts {
		return fmt.Errorf("db: seed: only %d of %d receipts fit the audiences", got, size.Receipts)
	}
	return nil
}

// receiptDraw picks readers for notices that have started, the current ones one draw in
// fifty, so that most readers still see their banners, as in a portal whose history is
// long; no pair is drawn twice.
type receiptDraw struct {
	rng           *rand.Rand
	users         []benchUser
	current, past []Notice
	now           time.Time
	seen          map[[2]int64]bool
}

func newReceiptDraw(rng *rand.Rand, users []benchUser, notices []Notice, now time.Time) *receiptDraw {
	r := &receiptDraw{rng: rng, users: users, now: now, seen: map[[2]int64]bool{}}
	for _, n := range notices {
		switch {
		case n.Current(now):
			r.current = append(r.current, n)
		case !n.StartsAt.After(now):
			r.past = append(r.past, n)
		}
	}
	return r
}

// draw calls add for up to want new pairs whose notice is must-read or not as asked, and
// returns how many it found within its bounded number of attempts.
func (r *receiptDraw) draw(mustRead bool, want int, add func(n Notice, u benchUser, at time.Time) error) (int, error) {
	if len(r.current)+len(r.past) == 0 {
		return 0, nil
	}
	made := 0
	for attempt := 0; made < want && attempt < 50*want+1000; attempt++ {
		n, u := r.pick(), r.users[r.rng.IntN(len(r.users))]
		if r.seen[[2]int64{n.ID, u.id}] || n.MustRead() != mustRead || !n.Audience.Reaches(u.role, u.groups) {
			continue
		}
		r.seen[[2]int64{n.ID, u.id}] = true
		at := n.StartsAt.Add(time.Duration(r.rng.IntN(48*60)) * time.Minute)
		if at.After(r.now) {
			at = r.now
		}
		if err := add(n, u, at); err != nil {
			return made, err
		}
		made++
	}
	return made, nil
}

func (r *receiptDraw) pick() Notice {
	if len(r.past) > 0 && (len(r.current) == 0 || r.rng.IntN(50) > 0) {
		return r.past[r.rng.IntN(len(r.past))]
	}
	return r.current[r.rng.IntN(len(r.current))]
}

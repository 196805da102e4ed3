package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// seeded is one database ready to serve, with the tokens of its sessions.
type seeded struct {
	name      string
	path      string
	tokens    []string // session tokens, in round-robin order (consecutive ones belong to different users)
	usernames []string // every account name, for the login flood
	summary   string
}

const benchPassword = "bench password that nobody types"

const noticeBody = "The VPN gateway moves to the new rack tonight.\nExpect two short interruptions between 22:00 and 23:00; " +
	"details and the rollback plan are at https://wiki.example/ops/vpn-move.\nQuestions go to #ops-help."

// roleOf spreads roles as a real portal might: 5% admins, 10% publishers, the rest staff.
func roleOf(i int) string {
	switch i % 20 {
	case 0:
		return db.RoleAdmin
	case 1, 2:
		return db.RolePublisher
	}
	return db.RoleStaff
}

func username(i int) string { return fmt.Sprintf("user%05d", i) }

// seedSmall builds the small portal through the db package only: 10 users, 10 sessions,
// 5 notices (3 current, one ended, one archived) and a few receipts.
func seedSmall(ctx context.Context, path, hash string) (*seeded, error) {
	d, err := db.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	now := time.Now()
	s := &seeded{name: "small", path: path}
	var users []db.User
	for i := range 10 {
		u, err := d.CreateUser(ctx, db.NewUser{Username: username(i), DisplayName: fmt.Sprintf("User %d", i),
			Role: roleOf(i), PasswordHash: hash}, db.Event{At: now, Kind: "user.created", Subject: username(i)})
		if err != nil {
			return nil, fmt.Errorf("seed small: %w", err)
		}
		users = append(users, u)
		s.usernames = append(s.usernames, u.Username)
	}
	for _, u := range users {
		tok := auth.NewToken()
		if _, err := d.StartSession(ctx, db.NewSession{TokenHash: auth.HashToken(tok), UserID: u.ID, Stage: db.StageFull,
			ClientAddr: "127.0.0.1", UserAgent: "gatehouse-bench"},
			db.Event{At: now, ActorID: u.ID, Actor: u.Username, Kind: "signin.password", Subject: u.Username}); err != nil {
			return nil, fmt.Errorf("seed small: %w", err)
		}
		s.tokens = append(s.tokens, tok)
	}
	author := users[0]
	ev := db.Event{At: now, ActorID: author.ID, Actor: author.Username, Kind: "notice.created"}
	mk := func(in db.NoticeInput) (db.Notice, error) {
		in.Body = noticeBody
		n, err := d.CreateNotice(ctx, in, author, ev)
		if err != nil {
			return n, fmt.Errorf("seed small: %w", err)
		}
		return n, nil
	}
	everyone := db.Audience{Everyone: true}
	mustRead, err := mk(db.NoticeInput{Title: "New security policy", Kind: db.NoticeMustRead, Severity: db.SeverityCritical,
		StartsAt: now.Add(-2 * time.Hour), Audience: everyone})
	if err != nil {
		return nil, err
	}
	normal, err := mk(db.NoticeInput{Title: "VPN gateway move", Kind: db.NoticeNormal, Severity: db.SeverityWarning,
		StartsAt: now.Add(-5 * time.Hour), EndsAt: now.Add(72 * time.Hour), Audience: everyone})
	if err != nil {
		return nil, err
	}
	if _, err := mk(db.NoticeInput{Title: "Rota for next week", Kind: db.NoticeNormal, Severity: db.SeverityInfo,
		StartsAt: now.Add(-24 * time.Hour), Audience: db.Audience{Roles: []string{db.RoleStaff}}}); err != nil {
		return nil, err
	}
	if _, err := mk(db.NoticeInput{Title: "Office closed on Monday", Kind: db.NoticeNormal, Severity: db.SeverityInfo,
		StartsAt: now.Add(-10 * 24 * time.Hour), EndsAt: now.Add(-3 * 24 * time.Hour), Audience: everyone}); err != nil {
		return nil, err
	}
	old, err := mk(db.NoticeInput{Title: "Old must-read", Kind: db.NoticeMustRead, Severity: db.SeverityWarning,
		StartsAt: now.Add(-30 * 24 * time.Hour), Audience: everyone})
	if err != nil {
		return nil, err
	}
	// Receipts: three users acknowledged the current must-read, two dismissed the VPN notice,
	// and everyone acknowledged the old must-read before it was archived.
	for _, u := range users[1:4] {
		if err := d.AckNotice(ctx, mustRead.ID, u, db.Event{At: now, ActorID: u.ID, Actor: u.Username, Kind: "notice.acknowledged"}); err != nil {
			return nil, fmt.Errorf("seed small: %w", err)
		}
	}
	for _, u := range users[4:6] {
		if err := d.DismissNotice(ctx, normal.ID, u, now); err != nil {
			return nil, fmt.Errorf("seed small: %w", err)
		}
	}
	for _, u := range users {
		if err := d.AckNotice(ctx, old.ID, u, db.Event{At: now, ActorID: u.ID, Actor: u.Username, Kind: "notice.acknowledged"}); err != nil {
			return nil, fmt.Errorf("seed small: %w", err)
		}
	}
	if err := d.ArchiveNotice(ctx, old.ID, db.Event{At: now, ActorID: author.ID, Actor: author.Username, Kind: "notice.archived"}); err != nil {
		return nil, fmt.Errorf("seed small: %w", err)
	}
	s.summary = "10 users, 10 sessions, 5 notices (3 current), 15 receipts"
	return s, checkSeed(ctx, s, 10, 10)
}

// largeSpec is the large portal.
const (
	largeUsers    = 10_000
	largeSessions = 100_000
	largeNotices  = 1_000
	// As many current notices as the small portal has, so that large/small compares the
	// cost of a big history and many users, not of a page with more banners on it.
	largeCurrent  = 3
	largeReceipts = 100_000
)

type noticeMeta struct {
	id       int64
	mustRead bool
	version  int
	current  bool
	startsAt time.Time
	everyone bool
	roles    []string
	groups   []int64
}

func (n noticeMeta) reaches(role string, groups []int64) bool {
	if n.everyone {
		return true
	}
	for _, r := range n.roles {
		if r == role {
			return true
		}
	}
	for _, g := range n.groups {
		for _, h := range groups {
			if g == h {
				return true
			}
		}
	}
	return false
}

// seedLarge builds the large portal: the author, the two groups and the current notices
// through the db package, then the bulk (users, members, past notices, sessions, receipts)
// by SQL in one transaction on the same file, mirroring db/migrations exactly. It reopens
// the file with db.Open afterwards and checks the store reads it back.
func seedLarge(ctx context.Context, path, hash string) (*seeded, error) {
	start := time.Now()
	now := start
	rng := rand.New(rand.NewPCG(1, 2)) // the same world every run
	ts := db.FormatTime
	s := &seeded{name: "large", path: path}

	d, err := db.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	author, err := d.CreateUser(ctx, db.NewUser{Username: username(0), DisplayName: "User 0", Role: roleOf(0), PasswordHash: hash},
		db.Event{At: now, Kind: "user.created", Subject: username(0)})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("seed large: %w", err)
	}
	ops, err := d.CreateGroup(ctx, "ops", db.Event{At: now, ActorID: author.ID, Actor: author.Username, Kind: "group.created"})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("seed large: %w", err)
	}
	night, err := d.CreateGroup(ctx, "night shift", db.Event{At: now, ActorID: author.ID, Actor: author.Username, Kind: "group.created"})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("seed large: %w", err)
	}
	groupsOf := func(i int) []int64 {
		var gs []int64
		if i%3 == 0 {
			gs = append(gs, ops.ID)
		}
		if i%4 == 0 {
			gs = append(gs, night.ID)
		}
		return gs
	}

	// The current notices, through the store: mostly for everyone or roles, every third
	// must-read, half with an end date.
	var notices []noticeMeta
	for i := range largeCurrent {
		var a db.Audience
		switch i % 10 {
		case 0, 1, 2, 3:
			a.Everyone = true
		case 4, 5:
			a.Roles = []string{db.RoleStaff}
		case 6:
			a.Roles = []string{db.RolePublisher, db.RoleAdmin}
		case 7:
			a.Roles = []string{db.RoleStaff, db.RolePublisher}
		case 8:
			a.GroupIDs = []int64{ops.ID}
		case 9:
			a.GroupIDs = []int64{night.ID}
		}
		kind := db.NoticeNormal
		if i%3 == 0 {
			kind = db.NoticeMustRead
		}
		sev := []string{db.SeverityInfo, db.SeverityInfo, db.SeverityWarning, db.SeverityInfo, db.SeverityCritical}[i%5]
		in := db.NoticeInput{Title: fmt.Sprintf("Current notice %d: VPN gateway move", i+1), Body: noticeBody, Kind: kind,
			Severity: sev, StartsAt: now.Add(-time.Duration(1+rng.IntN(20*24)) * time.Hour), Audience: a}
		if i%2 == 1 {
			in.EndsAt = now.Add(time.Duration(1+rng.IntN(30)) * 24 * time.Hour)
		}
		n, err := d.CreateNotice(ctx, in, author, db.Event{At: now, ActorID: author.ID, Actor: author.Username, Kind: "notice.created"})
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("seed large: %w", err)
		}
		notices = append(notices, noticeMeta{id: n.ID, mustRead: n.MustRead(), version: 1, current: true, startsAt: in.StartsAt,
			everyone: a.Everyone, roles: a.Roles, groups: a.GroupIDs})
	}
	if err := d.Close(); err != nil {
		return nil, err
	}

	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)"+
		"&_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	raw.SetMaxOpenConns(1)
	tx, err := raw.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	prep := func(q string) (*sql.Stmt, error) { return tx.PrepareContext(ctx, q) }

	// Users: ids follow the author's, so user i has id author.ID+i.
	insUser, err := prep(`INSERT INTO users (id, username, username_key, display_name, role, password_hash, must_change_password,
		disabled, created_at, updated_at, last_login_at) VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?)`)
	if err != nil {
		return nil, err
	}
	userID := func(i int) int64 { return author.ID + int64(i) }
	s.usernames = append(s.usernames, author.Username)
	for i := 1; i < largeUsers; i++ {
		if _, err := insUser.ExecContext(ctx, userID(i), username(i), auth.UsernameKey(username(i)), fmt.Sprintf("User %d", i), roleOf(i), hash,
			ts(now.Add(-time.Duration(i)*time.Minute)), ts(now), ts(now)); err != nil {
			return nil, fmt.Errorf("seed large: user %d: %w", i, err)
		}
		s.usernames = append(s.usernames, username(i))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE users SET last_login_at = ? WHERE id = ?`, ts(now), author.ID); err != nil {
		return nil, err
	}
	insMember, err := prep(`INSERT INTO group_members (group_id, user_id) VALUES (?, ?)`)
	if err != nil {
		return nil, err
	}
	for i := range largeUsers {
		for _, g := range groupsOf(i) {
			if _, err := insMember.ExecContext(ctx, g, userID(i)); err != nil {
				return nil, fmt.Errorf("seed large: member: %w", err)
			}
		}
	}

	// Past notices: ended (70%) or archived (30%) over two years; a quarter must-read, a
	// fifth of those edited so that readers were asked again (version 2).
	insNotice, err := prep(`INSERT INTO notices (author_id, author_name, title, body, kind, severity, starts_at, ends_at,
		version, revision, archived_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return nil, err
	}
	insAudience, err := prep(`INSERT INTO notice_audience (notice_id, everyone, role, group_id) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return nil, err
	}
	insRevision, err := prep(`INSERT INTO notice_revisions (notice_id, revision, version, title, body, kind, severity,
		editor_id, editor_name, minor, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`)
	if err != nil {
		return nil, err
	}
	day := 24 * time.Hour
	for i := largeCurrent; i < largeNotices; i++ {
		startsAt := now.Add(-time.Duration(30+rng.IntN(700)) * day)
		endsAt := "9999-12-31T23:59:59.999Z" // how the store records "no end"
		var archivedAt any
		if rng.IntN(10) < 3 {
			archivedAt = ts(startsAt.Add(time.Duration(1+rng.IntN(20)) * day))
		} else {
			endsAt = ts(startsAt.Add(time.Duration(1+rng.IntN(14)) * day))
		}
		kind, version := db.NoticeNormal, 1
		if rng.IntN(4) == 0 {
			kind = db.NoticeMustRead
			if rng.IntN(5) == 0 {
				version = 2
			}
		}
		sev := db.SeverityInfo
		switch r := rng.IntN(10); {
		case r == 0:
			sev = db.SeverityCritical
		case r < 4:
			sev = db.SeverityWarning
		}
		title := fmt.Sprintf("Notice %d: VPN gateway move", i+1)
		res, err := insNotice.ExecContext(ctx, author.ID, author.Username, title, noticeBody, kind, sev, ts(startsAt), endsAt,
			version, version, archivedAt, ts(startsAt), ts(startsAt))
		if err != nil {
			return nil, fmt.Errorf("seed large: notice: %w", err)
		}
		id, _ := res.LastInsertId()
		for rev := 1; rev <= version; rev++ {
			if _, err := insRevision.ExecContext(ctx, id, rev, rev, title, noticeBody, kind, sev, author.ID, author.Username,
				ts(startsAt)); err != nil {
				return nil, fmt.Errorf("seed large: revision: %w", err)
			}
		}
		m := noticeMeta{id: id, mustRead: kind == db.NoticeMustRead, version: version, startsAt: startsAt}
		switch rng.IntN(6) {
		case 0, 1:
			m.everyone = true
		case 2:
			m.roles = []string{db.RoleStaff}
		case 3:
			m.roles = []string{db.RolePublisher, db.RoleAdmin}
		case 4:
			m.groups = []int64{ops.ID}
		case 5:
			m.groups = []int64{night.ID}
		}
		if m.everyone {
			_, err = insAudience.ExecContext(ctx, id, 1, nil, nil)
		}
		for _, r := range m.roles {
			if err == nil {
				_, err = insAudience.ExecContext(ctx, id, 0, r, nil)
			}
		}
		for _, g := range m.groups {
			if err == nil {
				_, err = insAudience.ExecContext(ctx, id, 0, nil, g)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("seed large: audience: %w", err)
		}
		notices = append(notices, m)
	}

	// Sessions: ten per user, random 53-bit ids like the store's, full stage, seen now.
	insSession, err := prep(`INSERT INTO sessions (id, token_hash, user_id, stage, created_at, last_seen_at, client_addr,
		user_agent) VALUES (?, ?, ?, 'full', ?, ?, '127.0.0.1', 'gatehouse-bench')`)
	if err != nil {
		return nil, err
	}
	ids := make(map[int64]bool, largeSessions)
	for i := range largeSessions {
		id := int64(rng.Uint64()>>11) | 1
		for try := 0; ids[id] && try < 100; try++ { // a collision in 2^52 is rare; 100 in a row is impossible
			id = int64(rng.Uint64()>>11) | 1
		}
		if ids[id] {
			return nil, errors.New("seed large: no free session id")
		}
		ids[id] = true
		tok := auth.NewToken()
		if _, err := insSession.ExecContext(ctx, id, auth.HashToken(tok), userID(i%largeUsers), ts(now), ts(now)); err != nil {
			return nil, fmt.Errorf("seed large: session: %w", err)
		}
		s.tokens = append(s.tokens, tok)
	}

	// Receipts: acknowledgements of must-read notices and dismissals of normal ones, by
	// users in each notice's audience; 2% on current notices (a few hundred readers each),
	// so banners differ by user while most users still see them.
	// A few acknowledged only the version before an edit.
	insAck, err := prep(`INSERT INTO notice_acks (notice_id, user_id, version, acknowledged_at) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return nil, err
	}
	insDismiss, err := prep(`INSERT INTO notice_dismissals (notice_id, user_id, dismissed_at) VALUES (?, ?, ?)`)
	if err != nil {
		return nil, err
	}
	type pair struct{ n, u int }
	seen := make(map[pair]bool, largeReceipts)
	receipts, acks := 0, 0
	for attempt := 0; receipts < largeReceipts && attempt < 50*largeReceipts; attempt++ {
		ni := largeCurrent + rng.IntN(largeNotices-largeCurrent)
		if rng.IntN(100) < 2 {
			ni = rng.IntN(largeCurrent)
		}
		ui := rng.IntN(largeUsers)
		n := notices[ni]
		if seen[pair{ni, ui}] || !n.reaches(roleOf(ui), groupsOf(ui)) {
			continue
		}
		seen[pair{ni, ui}] = true
		at := n.startsAt.Add(time.Duration(rng.IntN(48*60)) * time.Minute)
		if at.After(now) {
			at = now
		}
		if n.mustRead {
			v := n.version
			if v > 1 && rng.IntN(3) == 0 {
				v--
			}
			_, err = insAck.ExecContext(ctx, n.id, userID(ui), v, ts(at))
			acks++
		} else {
			_, err = insDismiss.ExecContext(ctx, n.id, userID(ui), ts(at))
		}
		if err != nil {
			return nil, fmt.Errorf("seed large: receipt: %w", err)
		}
		receipts++
	}
	if receipts < largeReceipts {
		return nil, fmt.Errorf("seed large: only %d receipts fit", receipts)
	}
	var fkProblems int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_foreign_key_check`).Scan(&fkProblems); err != nil {
		return nil, err
	}
	if fkProblems > 0 {
		return nil, fmt.Errorf("seed large: %d foreign key problems", fkProblems)
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	// Fold the WAL into the file, as the app's own checkpoints would have by now.
	if _, err := raw.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return nil, err
	}
	if err := raw.Close(); err != nil {
		return nil, err
	}
	s.summary = fmt.Sprintf("%d users, %d sessions, %d notices (%d current), %d receipts (%d acks, %d dismissals), seeded in %v",
		largeUsers, largeSessions, largeNotices, largeCurrent, receipts, acks, receipts-acks, time.Since(start).Round(time.Millisecond))
	return s, checkSeed(ctx, s, largeUsers, largeSessions)
}

// checkSeed reopens the file through the store and reads it back the way a request would.
func checkSeed(ctx context.Context, s *seeded, users, sessions int) error {
	d, err := db.Open(ctx, s.path)
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
		if u.HasMFA || u.MustChangePassword {
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
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=synchronous(OFF)")
	if err != nil {
		return err
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, `UPDATE sessions SET last_seen_at = ?`, db.FormatTime(time.Now())); err != nil {
		return fmt.Errorf("restamp %s: %w", path, err)
	}
	if _, err := raw.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("restamp %s: %w", path, err)
	}
	return raw.Close()
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

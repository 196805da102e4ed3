package handlers

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// benchWorld is how much a portal holds when a benchmark runs against it.
type benchWorld struct {
	users      int // accounts besides the reader and the author
	notices    int
	current    int // showing now
	scheduled  int // starting later
	receipts   int // acknowledgements plus dismissals, the reader's included
	dismissals int // of receipts, how many are dismissals
}

var benchWorlds = []struct {
	name string
	w    benchWorld
}{
	{"small", benchWorld{users: 10, notices: 10, current: 4, scheduled: 1, receipts: 10, dismissals: 4}},
	{"large", benchWorld{users: 1000, notices: 1000, current: 20, scheduled: 5, receipts: 100_000, dismissals: 30_000}},
}

// seeded is a portal filled per a benchWorld, with its reader signed in.
type seeded struct {
	a       *testApp
	reader  db.User
	cookies []*http.Cookie // the reader's browser cookies: session (and CSRF, if set)
	banners int            // how many banners the reader sees
}

const benchPassword = "correct horse battery"

// seedBench fills a fresh portal. Accounts go through db.CreateUser with one precomputed
// hash; notices, audiences, group members and receipts go in by SQL, in one transaction,
// so even the large world takes a few seconds. Nothing here is timed.
func seedBench(b *testing.B, w benchWorld) seeded {
	b.Helper()
	start := time.Now()
	ctx := context.Background()
	a := newTestApp(b)
	now := a.clock()
	rng := rand.New(rand.NewPCG(1, 2)) // the same world every run

	reader := a.createUser("reader", db.RoleStaff, benchPassword)
	author := a.createUser("author", db.RolePublisher, benchPassword)
	hash, err := auth.NewHasher(cheapParams, 1).Hash(ctx, "not the password of anyone")
	if err != nil {
		b.Fatal(err)
	}
	for i := range w.users {
		role := db.RoleStaff
		switch i % 20 {
		case 0:
			role = db.RoleAdmin
		case 1, 2:
			role = db.RolePublisher
		}
		if _, err := a.db.CreateUser(ctx, db.NewUser{Username: fmt.Sprintf("user%05d", i), Role: role, PasswordHash: hash},
			db.Event{At: now, Kind: "user.created"}); err != nil {
			b.Fatal(err)
		}
	}
	ops, err := a.db.CreateGroup(ctx, "ops", db.Event{At: now})
	if err != nil {
		b.Fatal(err)
	}
	night, err := a.db.CreateGroup(ctx, "night shift", db.Event{At: now})
	if err != nil {
		b.Fatal(err)
	}

	raw, err := sql.Open("sqlite", "file:"+a.db.Path()+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)")
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	raw.SetMaxOpenConns(1)
	tx, err := raw.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	exec := func(q string, args ...any) sql.Result {
		b.Helper()
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			b.Fatalf("%v\n%s", err, q)
		}
		return res
	}
	ts := db.FormatTime
	day := 24 * time.Hour

	// The reader is in ops; a third of everyone else is in ops, a quarter on the night shift.
	exec(`INSERT INTO group_members (group_id, user_id) VALUES (?, ?)`, ops.ID, reader.ID)
	exec(`INSERT INTO group_members (group_id, user_id) SELECT ?, id FROM users WHERE username LIKE 'user%' AND id % 3 = 0`, ops.ID)
	exec(`INSERT INTO group_members (group_id, user_id) SELECT ?, id FROM users WHERE username LIKE 'user%' AND id % 4 = 0`, night.ID)

	insNotice, err := tx.PrepareContext(ctx, `INSERT INTO notices (author_id, author_name, title, body, kind, severity,
		starts_at, ends_at, version, revision, archived_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	defer insNotice.Close()
	insAudience, err := tx.PrepareContext(ctx, `INSERT INTO notice_audience (notice_id, everyone, role, group_id) VALUES (?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	defer insAudience.Close()

	// Notices: a few current and scheduled ones, the rest ended (70%) or archived (30%),
	// over two years. A quarter are must-read and a fifth of those were edited so that
	// readers were asked again. Half go to audiences the reader is in.
	const bodyText = "The VPN gateway moves to the new rack tonight.\nExpect two short interruptions between 22:00 and 23:00; " +
		"details and the rollback plan are at https://wiki.example/ops/vpn-move.\nQuestions go to #ops-help."
	states := make([]string, w.notices)
	for i := range states {
		states[i] = "past"
	}
	perm := rng.Perm(w.notices)
	for _, i := range perm[:w.current] {
		states[i] = "current"
	}
	for _, i := range perm[w.current : w.current+w.scheduled] {
		states[i] = "scheduled"
	}
	type handled struct {
		id      int64
		kind    string
		version int
	}
	var readerCurrent []handled // current notices whose audience holds the reader
	currentSeen := 0
	for i, state := range states {
		startsAt := now.Add(-time.Duration(30+rng.IntN(700)) * day)
		var archivedAt any
		endsAt := "9999-12-31T23:59:59.999Z" // how the store records "no end"
		switch state {
		case "current":
			startsAt = now.Add(-time.Duration(1+rng.IntN(20*24)) * time.Hour)
			if rng.IntN(2) == 0 {
				endsAt = ts(now.Add(time.Duration(1+rng.IntN(30)) * day))
			}
		case "scheduled":
			startsAt = now.Add(time.Duration(1+rng.IntN(10)) * day)
		default:
			if rng.IntN(10) < 3 {
				archivedAt = ts(startsAt.Add(time.Duration(1+rng.IntN(20)) * day))
			} else {
				endsAt = ts(startsAt.Add(time.Duration(1+rng.IntN(14)) * day))
			}
		}
		kind, version := db.NoticeNormal, 1
		if state == "current" {
			currentSeen++
		}
		if state == "current" && currentSeen%3 == 1 || state != "current" && rng.IntN(4) == 0 {
			kind = db.NoticeMustRead
			if rng.IntN(5) == 0 {
				version = 2
			}
		}
		severity := db.SeverityInfo
		switch r := rng.IntN(10); {
		case r == 0:
			severity = db.SeverityCritical
		case r < 4:
			severity = db.SeverityWarning
		}
		res, err := insNotice.ExecContext(ctx, author.ID, author.Username, fmt.Sprintf("Notice %d: VPN gateway move", i+1),
			bodyText, kind, severity, ts(startsAt), endsAt, version, version, archivedAt, ts(startsAt), ts(startsAt))
		if err != nil {
			b.Fatal(err)
		}
		id, _ := res.LastInsertId()
		add := func(everyone int, role, group any) {
			if _, err := insAudience.ExecContext(ctx, id, everyone, role, group); err != nil {
				b.Fatal(err)
			}
		}
		aud := rng.IntN(6)      // 0-2 hold the reader, 3-5 do not
		if state == "current" { // alternate, so the reader is in half of the current ones too
			aud = aud%3 + 3*(currentSeen%2)
			if aud < 3 {
				readerCurrent = append(readerCurrent, handled{id, kind, version})
			}
		}
		switch aud {
		case 0:
			add(1, nil, nil)
		case 1:
			add(0, db.RoleStaff, nil)
		case 2:
			add(0, nil, ops.ID)
			add(0, db.RoleAdmin, nil)
		case 3:
			add(0, db.RoleAdmin, nil)
		case 4:
			add(0, db.RolePublisher, nil)
			add(0, db.RoleAdmin, nil)
		case 5:
			add(0, nil, night.ID)
		}
	}

	// The reader's own receipts: every past must-read in their audience acknowledged, half
	// the past normal ones dismissed, and every other current one dealt with.
	const inAudienceOf = `EXISTS (SELECT 1 FROM notice_audience na WHERE na.notice_id = n.id AND (na.everyone = 1
		OR na.role = u.role OR na.group_id IN (SELECT m.group_id FROM group_members m WHERE m.user_id = u.id)))`
	exec(`INSERT INTO notice_acks (notice_id, user_id, version, acknowledged_at)
		SELECT n.id, u.id, n.version, n.starts_at FROM notices n JOIN users u ON u.id = ?
		WHERE n.kind = 'must_read' AND n.starts_at <= ? AND `+inAudienceOf+`
		AND (n.archived_at IS NOT NULL OR n.ends_at <= ?)`, reader.ID, ts(now), ts(now))
	exec(`INSERT INTO notice_dismissals (notice_id, user_id, dismissed_at)
		SELECT n.id, u.id, n.starts_at FROM notices n JOIN users u ON u.id = ?
		WHERE n.kind = 'normal' AND n.starts_at <= ? AND `+inAudienceOf+`
		AND (n.archived_at IS NOT NULL OR n.ends_at <= ?) AND n.id % 2 = 1`, reader.ID, ts(now), ts(now))
	for i, n := range readerCurrent {
		switch {
		case i%2 == 0: // still showing
		case n.kind == db.NoticeMustRead:
			exec(`INSERT INTO notice_acks (notice_id, user_id, version, acknowledged_at) VALUES (?, ?, ?, ?)`,
				n.id, reader.ID, n.version, ts(now.Add(-time.Hour)))
		default:
			exec(`INSERT INTO notice_dismissals (notice_id, user_id, dismissed_at) VALUES (?, ?, ?)`,
				n.id, reader.ID, ts(now.Add(-time.Hour)))
		}
	}
	var readerReceipts int
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM notice_acks WHERE user_id = ?)
		+ (SELECT COUNT(*) FROM notice_dismissals WHERE user_id = ?)`, reader.ID, reader.ID).Scan(&readerReceipts); err != nil {
		b.Fatal(err)
	}
	acks := w.receipts - readerReceipts - w.dismissals
	if acks < 0 {
		b.Fatalf("the reader alone has %d receipts, too many for the world's %d", readerReceipts, w.receipts)
	}

	// Everyone else's: a pseudo-random sample of the audience pairs, so receipts spread
	// over many users and notices. Some acknowledged only the version before an edit.
	const spread = `((n.id * 2654435761 + u.id * 40503) % 1000003)`
	res := exec(`INSERT INTO notice_acks (notice_id, user_id, version, acknowledged_at)
		SELECT n.id, u.id, CASE WHEN n.version > 1 AND `+spread+` % 3 = 0 THEN n.version - 1 ELSE n.version END,
			n.starts_at
		FROM notices n JOIN users u ON u.id <> ?
		WHERE n.kind = 'must_read' AND n.starts_at <= ? AND `+inAudienceOf+`
		ORDER BY `+spread+` LIMIT ?`, reader.ID, ts(now), acks)
	// A small world may hold fewer must-read pairs than asked for: dismissals make up the rest.
	acked, _ := res.RowsAffected()
	dismissals := w.receipts - readerReceipts - int(acked)
	exec(`INSERT INTO notice_dismissals (notice_id, user_id, dismissed_at)
		SELECT n.id, u.id, n.starts_at FROM notices n JOIN users u ON u.id <> ?
		WHERE n.kind = 'normal' AND n.starts_at <= ? AND `+inAudienceOf+`
		ORDER BY `+spread+` LIMIT ?`, reader.ID, ts(now), dismissals)

	var got struct{ notices, current, currentMustRead, readerAudience, mustRead, acks, dismissals, ackers, users int }
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM notices),
		(SELECT COUNT(*) FROM notices WHERE archived_at IS NULL AND starts_at <= ?1 AND ends_at > ?1),
		(SELECT COUNT(*) FROM notices WHERE kind = 'must_read' AND archived_at IS NULL AND starts_at <= ?1 AND ends_at > ?1),
		(SELECT COUNT(*) FROM notices n JOIN users u ON u.id = ?2 WHERE `+inAudienceOf+`),
		(SELECT COUNT(*) FROM notices WHERE kind = 'must_read'),
		(SELECT COUNT(*) FROM notice_acks), (SELECT COUNT(*) FROM notice_dismissals),
		(SELECT COUNT(DISTINCT user_id) FROM notice_acks), (SELECT COUNT(*) FROM users)`, ts(now), reader.ID).Scan(
		&got.notices, &got.current, &got.currentMustRead, &got.readerAudience, &got.mustRead, &got.acks, &got.dismissals, &got.ackers, &got.users); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if got.notices != w.notices || got.current != w.current || got.acks+got.dismissals != w.receipts {
		b.Fatalf("seeded %+v; want %d notices, %d current, %d receipts", got, w.notices, w.current, w.receipts)
	}
	// Fold the WAL into the file, as the app's own checkpoints would have by now.
	if _, err := raw.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}

	c := a.client()
	c.login("reader", benchPassword)
	// The reader as a page sees them: with their groups, from the session lookup.
	if _, reader, err = a.db.SessionByTokenHash(ctx, auth.HashToken(c.cookie("gatehouse_session"))); err != nil {
		b.Fatal(err)
	}
	banners, err := bannerSource(a).bannersFor(ctx, reader, now)
	if err != nil {
		b.Fatal(err)
	}
	if len(banners) == 0 {
		b.Fatalf("the reader sees no banners; the benchmark would not render any")
	}
	b.Logf("seeded in %v: %d users, %d notices (%d current of which %d must-read; %d must-read in all; %d for the reader), "+
		"%d acks by %d users, %d dismissals; the reader sees %d banners",
		time.Since(start).Round(time.Millisecond), got.users, got.notices, got.current, got.currentMustRead, got.mustRead,
		got.readerAudience, got.acks, got.ackers, got.dismissals, len(banners))
	return seeded{a: a, reader: reader, cookies: c.jar.Cookies(baseURL), banners: len(banners)}
}

// BenchmarkDashboard is one signed-in page view of / — session lookup, banners, the
// dashboard's own reads and rendering — with few notices and with years of them.
func BenchmarkDashboard(b *testing.B) {
	for _, tc := range benchWorlds {
		b.Run(tc.name, func(b *testing.B) {
			s := seedBench(b, tc.w)
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, testBase+"/", nil)
				req.RemoteAddr = "192.0.2.10:5555"
				for _, ck := range s.cookies {
					req.AddCookie(ck)
				}
				rec := httptest.NewRecorder()
				s.a.e.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("GET /: status %d, Location %q; body:\n%.1000s", rec.Code, rec.Header().Get("Location"), rec.Body.String())
				}
			}
		})
	}
}

// bannerSource is the banner path of a page view on its own: the in-memory live notices
// and the reader's own acknowledgements.
func bannerSource(a *testApp) *Handler {
	return &Handler{db: a.db, live: &liveNotices{db: a.db}}
}

// BenchmarkBannersFor is what every signed-in page does for its banners.
func BenchmarkBannersFor(b *testing.B) {
	for _, tc := range benchWorlds {
		b.Run(tc.name, func(b *testing.B) {
			s := seedBench(b, tc.w)
			ctx := context.Background()
			now := s.a.clock()
			h := bannerSource(s.a)
			b.ReportAllocs()
			for b.Loop() {
				ns, err := h.bannersFor(ctx, s.reader, now)
				if err != nil {
					b.Fatal(err)
				}
				if len(ns) != s.banners {
					b.Fatalf("%d banners, want %d", len(ns), s.banners)
				}
			}
		})
	}
}

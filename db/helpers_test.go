package db

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/dbtest"
)

// t0 is the fixed "now" of every test; times are passed explicitly, never read from a clock.
var t0 = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

// openTest opens a migrated store on a fresh file (or, in the PostgreSQL pass, a fresh
// database) that is closed when the test ends.
func openTest(tb testing.TB) *DB {
	tb.Helper()
	d, err := Open(context.Background(), dbtest.DSN(tb, migrateAt))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// migrateAt creates the schema at dsn, for dbtest's template database.
func migrateAt(dsn string) error {
	d, err := Open(context.Background(), dsn)
	if err != nil {
		return err
	}
	return d.Close()
}

// event is an audited event at a given time; the kind names what the test expects to find.
func event(kind string, at time.Time) Event {
	return Event{At: at, Kind: kind, Actor: "tester"}
}

func mkUser(tb testing.TB, d *DB, username string) User {
	tb.Helper()
	u, err := d.CreateUser(context.Background(), NewUser{
		Username: username, Role: RoleStaff, PasswordHash: "hash-of-" + username,
	}, event("user.created", t0))
	if err != nil {
		tb.Fatalf("CreateUser %q: %v", username, err)
	}
	return u
}

// newTokenHash returns the SHA-256 of a fresh random token, as the handlers store it.
func newTokenHash(tb testing.TB) []byte {
	tb.Helper()
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		tb.Fatal(err)
	}
	h := sha256.Sum256(tok)
	return h[:]
}

func mkSession(tb testing.TB, d *DB, userID int64, stage string, at time.Time) Session {
	tb.Helper()
	s, err := d.StartSession(context.Background(), NewSession{
		TokenHash: newTokenHash(tb), UserID: userID, Stage: stage, ClientAddr: "192.0.2.1", UserAgent: "test",
	}, Event{At: at})
	if err != nil {
		tb.Fatalf("StartSession for %d: %v", userID, err)
	}
	return s
}

// mkFactor gives the user an active factor (secret "secret-<id>", last step 100) and five
// recovery codes, through the same pending-then-activate path the handlers use.
func mkFactor(tb testing.TB, d *DB, u User, sessionID int64) {
	tb.Helper()
	ctx := context.Background()
	secret := []byte(fmt.Sprintf("secret-%d", u.ID))
	if err := d.StartEnrollment(ctx, Pending{UserID: u.ID, SessionID: sessionID, SecretEnc: secret,
		CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}); err != nil {
		tb.Fatalf("StartEnrollment: %v", err)
	}
	var codes []string
	for i := range 5 {
		codes = append(codes, fmt.Sprintf("code-%s-%d", u.Username, i))
	}
	if err := d.ActivateFactor(ctx, u.ID, sessionID, secret, 100, codes, Event{At: t0}); err != nil {
		tb.Fatalf("ActivateFactor: %v", err)
	}
}

// dump renders every row a query returns, sorted, so two dumps are equal exactly when
// the rows are (values are printed with %#v, which keeps types and bytes apart).
func dump(tb testing.TB, d *DB, query string, args ...any) string {
	tb.Helper()
	rows, err := d.read.Query(query, args...)
	if err != nil {
		tb.Fatalf("dump %q: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		tb.Fatal(err)
	}
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("%#v", vals))
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// tables lists every table of the schema, so a snapshot also covers tables that later
// migrations add.
func tables(tb testing.TB, d *DB) []string {
	tb.Helper()
	return column[string](tb, d, d.dl.listTables)
}

// column returns the one column a query reads, row by row.
func column[T any](tb testing.TB, d *DB, query string, args ...any) []T {
	tb.Helper()
	vs, err := queryList(context.Background(), d, scanOne[T], query, args...)
	if err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return vs
}

// snapshot dumps every table except the named ones.
func snapshot(tb testing.TB, d *DB, except ...string) map[string]string {
	tb.Helper()
	snap := map[string]string{}
	for _, t := range tables(tb, d) {
		if !slices.Contains(except, t) {
			snap[t] = dump(tb, d, `SELECT * FROM "`+t+`"`)
		}
	}
	return snap
}

func assertSameSnapshot(tb testing.TB, before, after map[string]string) {
	tb.Helper()
	if len(before) != len(after) {
		tb.Errorf("snapshot covers %d tables before and %d after", len(before), len(after))
	}
	for t, b := range before {
		if a := after[t]; a != b {
			tb.Errorf("table %s changed:\nbefore:\n%s\nafter:\n%s", t, b, a)
		}
	}
}

func count(tb testing.TB, d *DB, query string, args ...any) int {
	tb.Helper()
	var n int
	if err := d.read.QueryRow(query, args...).Scan(&n); err != nil {
		tb.Fatalf("count %q: %v", query, err)
	}
	return n
}

func auditCount(tb testing.TB, d *DB, kind string) int {
	tb.Helper()
	return count(tb, d, `SELECT COUNT(*) FROM audit_log WHERE event = ?`, kind)
}

func sessionIDs(tb testing.TB, d *DB, userID int64) []int64 {
	tb.Helper()
	ss, err := d.ListSessions(context.Background(), userID)
	if err != nil {
		tb.Fatal(err)
	}
	var ids []int64
	for _, s := range ss {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return ids
}

// openAtVersion makes a database at path migrated only up to version, as an older binary
// left it, and closes it; the test then writes rows with the driver and opens it itself.
func openAtVersion(tb testing.TB, path string, version int) {
	tb.Helper()
	d, err := open(path, true)
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	if err := d.migrateTo(context.Background(), version); err != nil {
		tb.Fatalf("migrate to %d: %v", version, err)
	}
	if v, err := d.Version(context.Background()); err != nil || v != version {
		tb.Fatalf("database at version %d (%v), want %d", v, err, version)
	}
}

package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/internal/dbtest"
)

// cheapHashes keeps argon2id fast here; the binary's parameters are auth.DefaultParams.
var cheapHashes = auth.NewHasher(auth.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, 1)

// schemaColumns and schemaParents read a table's columns and the tables its foreign keys
// point at from the store's own catalogue.
var (
	schemaColumns = perDialect{
		dialectSQLite: `SELECT name FROM pragma_table_info(?) ORDER BY cid`,
		dialectPostgres: `SELECT column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position`,
	}
	schemaParents = perDialect{
		dialectSQLite: `SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)`,
		dialectPostgres: `SELECT DISTINCT u.table_name FROM information_schema.table_constraints c
			JOIN information_schema.constraint_column_usage u ON u.constraint_schema = c.constraint_schema AND u.constraint_name = c.constraint_name
			WHERE c.constraint_type = 'FOREIGN KEY' AND c.table_schema = current_schema() AND c.table_name = ?`,
	}
)

// TestStoreTablesMatchSchema: the copy's table list names every table of the migrated
// schema but the bookkeeping ones, with exactly its columns, and lists each table after
// the tables its foreign keys point at, so rows can be inserted in its order.
func TestStoreTablesMatchSchema(t *testing.T) {
	d := openTest(t)
	var listed []string
	for _, st := range storeTables {
		listed = append(listed, st.name)
	}
	schema := slices.DeleteFunc(tables(t, d), func(n string) bool { return slices.Contains(bookkeepingTables, n) })
	if got, want := slices.Sorted(slices.Values(listed)), schema; !slices.Equal(got, want) {
		t.Fatalf("storeTables lists %v,\nthe schema has %v", got, want)
	}
	for i, st := range storeTables {
		cols := column[string](t, d, schemaColumns[d.dl.id], st.name)
		if !slices.Equal(slices.Sorted(slices.Values(st.columns)), slices.Sorted(slices.Values(cols))) {
			t.Errorf("table %s: storeTables has columns %v, the schema %v", st.name, st.columns, cols)
		}
		for _, parent := range column[string](t, d, schemaParents[d.dl.id], st.name) {
			if j := slices.Index(listed, parent); j < 0 || j >= i {
				t.Errorf("table %s is listed before %s, which its foreign key points at", st.name, parent)
			}
		}
	}
}

// copyFixture is what fillEveryTable stored, to sign in with on a copy.
type copyFixture struct {
	key      *auth.Keyring
	user     User
	password string
	secret   string // the TOTP secret, before sealing
}

// fillEveryTable puts rows in every table: accounts, a factor sealed with a real key and
// the key's canary through the store's own writes, the rest as stored values of every
// kind (NULLs, blobs, Unicode, large random ids), so a copy that loses or alters any
// value, or skips a table, shows.
func fillEveryTable(tb testing.TB, d *DB) copyFixture {
	tb.Helper()
	ctx := context.Background()
	key, err := auth.NewKeyring([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		tb.Fatal(err)
	}
	canary, err := key.NewCanary()
	if err != nil {
		tb.Fatal(err)
	}
	if err := d.SetKeyCanary(ctx, canary); err != nil {
		tb.Fatal(err)
	}
	f := copyFixture{key: key, password: "correct horse battery", secret: auth.NewTOTPSecret()}
	hash, err := cheapHashes.Hash(ctx, f.password)
	if err != nil {
		tb.Fatal(err)
	}
	f.user, err = d.CreateUser(ctx, NewUser{Username: "Émile", DisplayName: "Émile Zola ✓", Role: RoleAdmin,
		PasswordHash: hash, Email: "emile@example.com"}, event("user.created", t0))
	if err != nil {
		tb.Fatal(err)
	}
	other := mkUser(tb, d, "bob")
	s := mkSession(tb, d, f.user.ID, StageMFA, t0)
	sealed, err := key.Seal([]byte(f.secret), auth.TOTPSecretAAD(f.user.ID))
	if err != nil {
		tb.Fatal(err)
	}
	if err := d.StartEnrollment(ctx, Pending{UserID: f.user.ID, SessionID: s.ID, SecretEnc: sealed,
		CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}); err != nil {
		tb.Fatal(err)
	}
	if err := d.ActivateFactor(ctx, f.user.ID, s.ID, sealed, 100, []string{"code-hash-1", "code-hash-2"}, Event{At: t0}); err != nil {
		tb.Fatal(err)
	}
	mkSession(tb, d, other.ID, StageFull, t0)
	insertFixtureRows(tb, d, f.user.ID, other.ID)
	return f
}

// insertFixtureRows writes one or more rows into each table the store's own writes above
// did not reach.
func insertFixtureRows(tb testing.TB, d *DB, userID, otherID int64) {
	tb.Helper()
	ts := FormatTime(t0)
	blob := []byte{0, 1, 2, 0xfe, 0xff}
	stmts := []struct {
		q    string
		args []any
	}{
		{`INSERT INTO groups (id, name, created_at) VALUES (7, 'Night shift', ?)`, []any{ts}},
		{`INSERT INTO group_members (group_id, user_id) VALUES (7, ?), (7, ?)`, []any{userID, otherID}},
		{`INSERT INTO login_throttle (username, failures, last_failure, locked_until) VALUES ('bob', 3, ?, NULL), ('ghost', 9, ?, ?)`, []any{ts, ts, ts}},
		{`INSERT INTO mfa_pending (user_id, session_id, secret_enc, created_at, expires_at) VALUES (?, 4503599627370497, ?, ?, ?)`, []any{otherID, blob, ts, ts}},
		{`INSERT INTO passkeys (id, user_id, credential_id, public_key, sign_count, flags, transports, aaguid, attestation_format, name, created_at, last_used_at)
			VALUES (9007199254740991, ?, ?, ?, 42, 29, 'usb,nfc', NULL, 'none', 'Yubi ⚿', ?, NULL)`, []any{userID, []byte("cred"), blob, ts}},
		{`INSERT INTO passkey_handles (user_id, handle) VALUES (?, ?)`, []any{userID, []byte("handle-bytes")}},
		{`INSERT INTO passkey_challenges (challenge_hash, purpose, user_id, session_id, browser_hash, state, created_at, expires_at)
			VALUES (?, 'sign_in', NULL, NULL, ?, ?, ?, ?)`, []any{[]byte("challenge"), []byte("browser"), []byte(`{"c":1}`), ts, ts}},
		{`INSERT INTO setup_token (id, token_hash, created_at) VALUES (1, ?, ?)`, []any{blob, ts}},
		{`INSERT INTO settings (key, value, updated_at) VALUES ('mfa_paused', '1', ?)`, []any{ts}},
		{`INSERT INTO mfa_rules (id, role, group_id, mode, deadline, updated_at, updated_by) VALUES (3, 'admin', NULL, 'required', ?, ?, 'Émile'), (4, NULL, 7, 'optional', NULL, ?, 'Émile')`, []any{ts, ts, ts}},
		{`INSERT INTO notices (id, author_id, author_name, title, body, kind, severity, starts_at, ends_at, version, revision, archived_at, created_at, updated_at, email, remind, due_at, renew_every, mailed_at)
			VALUES (11, ?, 'Émile', 'Fire drill', 'Line one
line two ''quoted''', 'must_read', 'critical', ?, '9999-12-31T23:59:59.999Z', 2, 3, NULL, ?, ?, 1, 'weekly', ?, 86400, NULL)`, []any{userID, ts, ts, ts, ts}},
		{`INSERT INTO notice_audience (notice_id, everyone, role, group_id) VALUES (11, 1, NULL, NULL), (11, 0, 'staff', NULL), (11, 0, NULL, 7)`, nil},
		{`INSERT INTO notice_revisions (notice_id, revision, version, title, body, kind, severity, editor_id, editor_name, minor, created_at)
			VALUES (11, 1, 1, 'Fire', 'b', 'normal', 'info', ?, 'Émile', 0, ?), (11, 2, 2, 'Fire drill', 'b2', 'must_read', 'critical', NULL, 'cli', 1, ?)`, []any{userID, ts, ts}},
		{`INSERT INTO notice_acks (notice_id, user_id, version, acknowledged_at, expires_at) VALUES (11, ?, 1, ?, ?), (11, ?, 2, ?, ?)`, []any{userID, ts, ts, otherID, ts, ts}},
		{`INSERT INTO notice_dismissals (notice_id, user_id, dismissed_at) VALUES (11, ?, ?)`, []any{otherID, ts}},
		{`INSERT INTO email_tokens (token_hash, purpose, user_id, email, created_at, expires_at) VALUES (?, 'confirm', ?, 'new@example.com', ?, ?)`, []any{blob, userID, ts, ts}},
		{`INSERT INTO outbox (id, reason, kind, user_id, notice_id, to_addr, subject, text_body, html_body, unsubscribe, secret, state, attempts, next_attempt_at, claimed_until, claim, expires_at, last_error, answer, created_at, sent_at, updated_at)
			VALUES (5, 'notice:11:user', 'notice', ?, 11, 'emile@example.com', 'Fire drill', 'text', '<p>html</p>', 'https://x/u', 0, 'sent', 1, ?, NULL, 'c1', NULL, '', '250 ok', ?, ?, ?)`, []any{userID, ts, ts, ts, ts}},
		{`INSERT INTO rate_limits (key, window_start, hits) VALUES ('reset:addr:192.0.2.1', ?, 2)`, []any{ts}},
		{`INSERT INTO event_counts (kind, hour, n) VALUES ('csrf', '2026-03-02T09', 5), ('server_error', '2026-03-02T10', 1)`, nil},
		{`INSERT INTO apps (id, host, require_mfa, must_read_first, created_at, updated_at) VALUES (2, 'wiki.example.com:8443', 1, 0, ?, ?)`, []any{ts, ts}},
		{`INSERT INTO app_audience (app_id, everyone, role, group_id) VALUES (2, 0, 'admin', NULL), (2, 0, NULL, 7)`, nil},
	}
	err := d.tx(context.Background(), func(tx *sql.Tx) error {
		for _, s := range stmts {
			if _, err := tx.ExecContext(context.Background(), s.q, s.args...); err != nil {
				return fmt.Errorf("%s: %w", s.q, err)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// dumpStore renders every table through the copy's column lists, so stores of either
// dialect compare value for value.
func dumpStore(tb testing.TB, d *DB) map[string]string {
	tb.Helper()
	out := map[string]string{}
	for _, st := range storeTables {
		out[st.name] = dump(tb, d, `SELECT `+quoteIdents(st.columns)+` FROM `+quoteIdent(st.name))
	}
	return out
}

func assertSameStore(tb testing.TB, want, got map[string]string) {
	tb.Helper()
	for _, st := range storeTables {
		if want[st.name] != got[st.name] {
			tb.Errorf("table %s differs:\nsource:\n%s\ncopy:\n%s", st.name, want[st.name], got[st.name])
		}
	}
}

// assertSignsIn proves the fixture's user can sign in on d: the password verifies against
// the stored hash, and the TOTP secret opens with the key under the user's id and checks
// a current code.
func assertSignsIn(tb testing.TB, d *DB, f copyFixture) {
	tb.Helper()
	ctx := context.Background()
	u, err := d.UserByUsername(ctx, "émile")
	if err != nil || u.ID != f.user.ID {
		tb.Fatalf("user on the copy: %+v, %v; want id %d", u, err, f.user.ID)
	}
	if ok, err := cheapHashes.Verify(ctx, u.PasswordHash, f.password); !ok || err != nil {
		tb.Errorf("password on the copy: %v, %v", ok, err)
	}
	fac, err := d.FactorOf(ctx, u.ID)
	if err != nil {
		tb.Fatal(err)
	}
	plain, err := f.key.Open(fac.SecretEnc, auth.TOTPSecretAAD(u.ID))
	if err != nil || string(plain) != f.secret {
		tb.Fatalf("TOTP secret on the copy: %q, %v", plain, err)
	}
	now := t0.Add(48 * time.Hour)
	step, ok := auth.CheckTOTP(string(plain), auth.TOTPCode(string(plain), now), now)
	if !ok {
		tb.Fatal("a current code does not check against the copied secret")
	}
	if claimed, err := d.ClaimTOTPStep(ctx, u.ID, step); !claimed || err != nil {
		tb.Errorf("claiming the code's step on the copy: %v, %v", claimed, err)
	}
}

// TestCopyStoreRoundTrip: every table arrives identical (ids, times, hashes, ciphertexts,
// blobs), the report counts what was copied and verified, and the user signs in on the copy.
func TestCopyStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := openTest(t)
	f := fillEveryTable(t, src)
	want := dumpStore(t, src)
	for _, st := range storeTables {
		if want[st.name] == "" {
			t.Fatalf("the fixture leaves %s empty, so the copy of it is not tested", st.name)
		}
	}
	dst := openTest(t)
	report, err := CopyStore(ctx, src, dst, f.key)
	if err != nil {
		t.Fatal(err)
	}
	assertSameStore(t, want, dumpStore(t, dst))
	if len(report.Tables) != len(storeTables) || report.Factors != 1 {
		t.Errorf("report: %d tables, %d factors opened; want %d and 1", len(report.Tables), report.Factors, len(storeTables))
	}
	var total int64
	for _, tr := range report.Tables {
		if n := int64(count(t, src, `SELECT COUNT(*) FROM `+quoteIdent(tr.Table))); n != tr.Rows {
			t.Errorf("report: %s has %d rows, the source %d", tr.Table, tr.Rows, n)
		}
		total += tr.Rows
	}
	if total != report.Rows {
		t.Errorf("report: %d rows in all, the tables add up to %d", report.Rows, total)
	}
	assertSignsIn(t, dst, f)
}

// TestCopyStoreRefusals: a destination holding any row, or a key that does not open the
// source's canary, is refused before anything is written.
func TestCopyStoreRefusals(t *testing.T) {
	ctx := context.Background()
	src := openTest(t)
	f := fillEveryTable(t, src)

	t.Run("a destination with one row", func(t *testing.T) {
		dst := openTest(t)
		if err := dst.Audit(ctx, event("user.created", t0)); err != nil {
			t.Fatal(err)
		}
		before := dumpStore(t, dst)
		_, err := CopyStore(ctx, src, dst, f.key)
		if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "audit_log") {
			t.Fatalf("copy into a store with an audit row: %v, want ErrNotEmpty naming audit_log", err)
		}
		assertSameStore(t, before, dumpStore(t, dst))
	})
	t.Run("a key that is not the source's", func(t *testing.T) {
		dst := openTest(t)
		wrong, err := auth.NewKeyring([]byte("ffffffffffffffffffffffffffffffff"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = CopyStore(ctx, src, dst, wrong)
		if !errors.Is(err, auth.ErrWrongKey) {
			t.Fatalf("copy with the wrong key: %v, want auth.ErrWrongKey", err)
		}
		if n := count(t, dst, `SELECT COUNT(*) FROM users`); n != 0 {
			t.Errorf("the wrong key still copied %d users", n)
		}
	})
	t.Run("a source without a canary", func(t *testing.T) {
		bare := openTest(t)
		mkUser(t, bare, "amy")
		if _, err := CopyStore(ctx, bare, openTest(t), f.key); err == nil || !strings.Contains(err.Error(), "canary") {
			t.Fatalf("copy of a store without a canary: %v", err)
		}
	})
}

// TestCopyStoreBatches: tables larger than one INSERT's worth of parameters arrive whole.
func TestCopyStoreBatches(t *testing.T) {
	ctx := context.Background()
	src := openTest(t)
	f := fillEveryTable(t, src)
	perBatch := copyParams / len(storeTables[len(storeTables)-1].columns) // audit_log
	err := src.tx(ctx, func(tx *sql.Tx) error {
		for i := range 2*perBatch + 7 {
			if err := insertEvent(ctx, tx, Event{At: t0, Kind: "test.bulk", Subject: fmt.Sprint(i), Outcome: "success"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := Open(ctx, filepath.Join(t.TempDir(), "copy.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := CopyStore(ctx, src, dst, f.key); err != nil {
		t.Fatal(err)
	}
	assertSameStore(t, dumpStore(t, src), dumpStore(t, dst))
}

// TestCopyStoreAcrossDialects: SQLite to PostgreSQL and back to SQLite, every table is
// identical at each step, the user signs in on each copy, and on PostgreSQL rows added
// after the copy get ids no copied row holds.
func TestCopyStoreAcrossDialects(t *testing.T) {
	if !dbtest.Postgres() {
		t.Skip("runs in the PostgreSQL pass, which has a server to copy to")
	}
	ctx := context.Background()
	openFile := func(name string) *DB {
		d, err := Open(ctx, filepath.Join(t.TempDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	lite := openFile("source.db")
	f := fillEveryTable(t, lite)
	want := dumpStore(t, lite)
	pg := openTest(t)
	if _, err := CopyStore(ctx, lite, pg, f.key); err != nil {
		t.Fatalf("SQLite to PostgreSQL: %v", err)
	}
	assertSameStore(t, want, dumpStore(t, pg))
	back := openFile("back.db")
	report, err := CopyStore(ctx, pg, back, f.key)
	if err != nil {
		t.Fatalf("PostgreSQL to SQLite: %v", err)
	}
	assertSameStore(t, want, dumpStore(t, back))
	if report.Factors != 1 {
		t.Errorf("%d TOTP secrets verified, want 1", report.Factors)
	}
	assertSignsIn(t, pg, f)
	assertSignsIn(t, back, f)
	newcomer := mkUser(t, pg, "newcomer")
	if maxID := int64(count(t, lite, `SELECT MAX(id) FROM users`)); newcomer.ID <= maxID {
		t.Errorf("a user added on PostgreSQL after the copy got id %d; copied ids go up to %d", newcomer.ID, maxID)
	}
	if g, err := pg.CreateGroup(ctx, "Day shift", event("group.created", t0)); err != nil || g.ID <= 7 {
		t.Errorf("a group added on PostgreSQL after the copy: %+v, %v; copied group ids go up to 7", g, err)
	}
}

package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// withPassword puts a password into a database URL, so a test can prove it is never shown
// (the test servers trust loopback and ignore it).
func withPassword(tb testing.TB, dbURL string) string {
	tb.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "hunter2-secret")
	return u.String()
}

// pgExec runs one statement on the database at dbURL, for states no command produces.
func pgExec(tb testing.TB, dbURL, query string, args ...any) {
	tb.Helper()
	conn, err := sql.Open("pgx", dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(ctx, query, args...); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
}

func TestStoreCopyThroughPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("copies through a PostgreSQL server")
	}
	pgURL := withPassword(t, newPostgresDatabase(t, testPostgresServer(t)))
	src, secret := storeWithFactor(t)
	mustRun(t, "Fire drill at ten.\n", "notice", "post", "--db", src, "--as", "alice", "--title", "Drill",
		"--body-file", "-", "--kind", "must_read", "--severity", "warning")
	keyFile := src + ".key"

	out := mustRun(t, "", "store", "copy", "--from", src, "--to", pgURL)
	if strings.Contains(out, "hunter2-secret") || !strings.Contains(out, "1 TOTP secrets") {
		t.Errorf("store copy to PostgreSQL printed %q: want the secret verified and no password", out)
	}
	// Back first, while the copy holds exactly what the source did; signing in changes it.
	t.Run("copied back to SQLite, every table is as it was, and alice signs in there", func(t *testing.T) {
		back := filepath.Join(t.TempDir(), "back.db")
		mustRun(t, "", "store", "copy", "--from", pgURL, "--to", back, "--key-file", keyFile)
		if want, got := dumpTables(t, src, "schema_migrations"), dumpTables(t, back, "schema_migrations"); !reflect.DeepEqual(want, got) {
			t.Errorf("the round trip changed the store:\nbefore %v\nafter  %v", want, got)
		}
		s := startServe(t, back, "--key-file", keyFile)
		signInWithCode(t, "http://"+s.addr, secret)
	})
	t.Run("serve starts on the PostgreSQL copy with the source's key, and alice signs in", func(t *testing.T) {
		s := startServe(t, pgURL, "--key-file", keyFile)
		signInWithCode(t, "http://"+s.addr, secret)
	})
	t.Run("a user added on the PostgreSQL copy gets an id of its own", func(t *testing.T) {
		mustRun(t, "correct horse battery staple\n", "user", "add", "--db", pgURL, "--key-file", keyFile,
			"--username", "newcomer", "--role", "staff", "--password-stdin")
		store, err := db.OpenExisting(context.Background(), pgURL)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		alice, newcomer := userNamed(t, store, "alice"), userNamed(t, store, "newcomer")
		if newcomer.ID <= alice.ID {
			t.Errorf("newcomer has id %d, alice (copied) %d: the id sequence was not moved past the copied ids", newcomer.ID, alice.ID)
		}
	})
	t.Run("a second copy into the same database is refused", func(t *testing.T) {
		_, _, err := runCLI(t, "store", "copy", "--from", src, "--to", pgURL)
		assertOneLine(t, err, "not empty")
		if strings.Contains(err.Error(), "hunter2-secret") {
			t.Errorf("the error shows the password: %v", err)
		}
	})
}

func TestBackupOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("backs up a PostgreSQL store")
	}
	p := newPGPortal(t, newPostgresDatabase(t, testPostgresServer(t)), []string{"sam"}, []string{"alice"})
	p.serve(t) // the backup is taken while the portal runs
	dest := filepath.Join(t.TempDir(), "backup.db")
	out := p.command(t, "", "backup", dest)
	if !strings.Contains(out, dest+".key") {
		t.Errorf("backup printed %q, want it to name %s.key", out, dest)
	}
	for _, f := range []string{dest, dest + ".key"} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v; want mode 0600", f, fi, err)
		}
	}
	if a, b := mustRead(t, p.keyFile), mustRead(t, dest+".key"); !bytes.Equal(a, b) {
		t.Error("the backup's key differs from the live one")
	}
	if out := mustRun(t, "", "check", "--db", dest); !strings.HasPrefix(out, "ok: ") {
		t.Errorf("check on the backup: %q", out)
	}
	// The backup is a whole portal: alice signs in on it with her password and code.
	s := startServe(t, dest)
	c := newWebClient("http://" + s.addr)
	if code, loc := c.passwordStep(t, "alice"); code != 303 || !strings.HasPrefix(loc, "/login/mfa") {
		t.Fatalf("alice's password on the backup: %d to %q", code, loc)
	}
	if code, loc, err := c.post("/login/mfa", url.Values{"code": {auth.TOTPCode(p.secrets["alice"], time.Now())}}); err != nil || code != 303 || loc != "/" {
		t.Fatalf("alice's code on the backup: %d to %q, %v", code, loc, err)
	}
	if _, _, err := runCLI(t, "backup", "--db", p.url, "--key-file", p.keyFile, dest); err == nil {
		t.Error("a backup over an existing DEST was not refused")
	}
}

func TestCheckOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("checks PostgreSQL stores")
	}
	server := testPostgresServer(t)
	t.Run("a good store passes, and the password is not shown", func(t *testing.T) {
		p := newPGPortal(t, newPostgresDatabase(t, server), nil, nil)
		dsn := withPassword(t, p.url)
		out := mustRun(t, "", "check", "--db", dsn, "--key-file", p.keyFile)
		if !strings.HasPrefix(out, "ok: ") || !strings.Contains(out, "verified") || strings.Contains(out, "hunter2-secret") {
			t.Errorf("check printed %q: want ok with the key verified and no password", out)
		}
	})
	t.Run("a key that is not the store's is refused", func(t *testing.T) {
		p := newPGPortal(t, newPostgresDatabase(t, server), nil, nil)
		other := newPGPortal(t, newPostgresDatabase(t, server), nil, nil)
		_, _, err := runCLI(t, "check", "--db", p.url, "--key-file", other.keyFile)
		assertOneLine(t, err, other.keyFile, "not the key")
	})
	t.Run("a store a newer binary migrated is refused", func(t *testing.T) {
		p := newPGPortal(t, newPostgresDatabase(t, server), nil, nil)
		pgExec(t, p.url, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			db.SchemaVersion()+1, fmt.Sprintf("%04d_future.sql", db.SchemaVersion()+1), db.FormatTime(time.Now()))
		_, _, err := runCLI(t, "check", "--db", p.url, "--key-file", p.keyFile)
		assertOneLine(t, err, "newer")
	})
	t.Run("a store an older binary left is reported, not migrated", func(t *testing.T) {
		p := newPGPortal(t, newPostgresDatabase(t, server), nil, nil)
		pgExec(t, p.url, `DELETE FROM schema_migrations WHERE version = $1`, db.SchemaVersion())
		out := mustRun(t, "", "check", "--db", p.url, "--key-file", p.keyFile)
		if !strings.Contains(out, fmt.Sprintf("schema %d", db.SchemaVersion()-1)) {
			t.Errorf("check printed %q, want schema %d named", out, db.SchemaVersion()-1)
		}
		store, _, err := db.OpenToInspect(context.Background(), p.url)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		if v, err := store.Version(context.Background()); err != nil || v != db.SchemaVersion()-1 {
			t.Errorf("after check the store is at %d (%v), want %d as it was", v, err, db.SchemaVersion()-1)
		}
	})
	t.Run("an unreachable server is a one-line error without the password", func(t *testing.T) {
		dir := t.TempDir()
		key := filepath.Join(dir, "k")
		if _, err := os.Create(key); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCLI(t, "check", "--db", "postgres://gh:hunter2-secret@127.0.0.1:1/none?connect_timeout=2", "--key-file", key)
		if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "hunter2-secret") {
			t.Errorf("check of an unreachable server: %v; want an error naming it, without the password", err)
		}
	})
}

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

package db

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"gatehouse/internal/dbtest"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawOpen opens a file with the driver alone, to build or inspect databases the way
// another program (or an older or newer Gatehouse) would.
func rawOpen(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	open := func() (*sql.DB, error) { return sql.Open("sqlite", "file:"+path) }
	if IsPostgresURL(path) {
		open = func() (*sql.DB, error) { return OpenSQL(path) }
	}
	raw, err := open()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { raw.Close() })
	return raw
}

func TestOpenCreatesAndMigrates(t *testing.T) {
	dbtest.SQLiteOnly(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	d, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer d.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Open did not create the file: %v", err)
	}
	if d.Path() != path {
		t.Errorf("Path() = %q, want %q", d.Path(), path)
	}

	want := SchemaVersion()
	names, err := fs.Glob(migrationFS, "migrations/sqlite/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if want < 1 || want != len(names) {
		t.Fatalf("SchemaVersion() = %d with %d migration files", want, len(names))
	}
	if v, err := d.Version(ctx); err != nil || v != want {
		t.Errorf("Version() = %d, %v; want %d", v, err, want)
	}
	for _, table := range []string{"users", "sessions", "login_throttle", "mfa_factors", "mfa_pending",
		"recovery_codes", "key_canary", "setup_token", "audit_log", "schema_migrations"} {
		if n := count(t, d, `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, table); n != 1 {
			t.Errorf("table %s missing after Open", table)
		}
	}
	if err := d.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if err := d.IntegrityCheck(ctx); err != nil {
		t.Errorf("IntegrityCheck on a fresh database: %v", err)
	}
}

func TestOpenSetsPragmasOnEveryConnection(t *testing.T) {
	dbtest.SQLiteOnly(t)
	d := openTest(t)
	ctx := context.Background()

	// Hold several reader connections at once so the pool must open distinct ones: the
	// pragmas must come from the DSN, not from one statement run on whichever connection.
	var conns []*sql.Conn
	for range 3 {
		c, err := d.read.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	type rowQuerier interface {
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
	check := func(t *testing.T, q rowQuerier) {
		t.Helper()
		var mode string
		if err := q.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode = %q, %v; want wal", mode, err)
		}
		var fk, busy, sync int
		if err := q.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
			t.Errorf("foreign_keys = %d, %v; want 1", fk, err)
		}
		if err := q.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil || busy < 1000 {
			t.Errorf("busy_timeout = %d, %v; want at least a second", busy, err)
		}
		if err := q.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
			t.Errorf("synchronous = %d, %v; want 2 (FULL)", sync, err)
		}
	}
	t.Run("the writer has WAL, foreign keys, a busy timeout and full sync", func(t *testing.T) {
		check(t, d.write)
	})
	for i, c := range conns {
		t.Run(fmt.Sprintf("reader connection %d has the same pragmas and cannot write", i+1), func(t *testing.T) {
			check(t, c)
			var qo int
			if err := c.QueryRowContext(ctx, `PRAGMA query_only`).Scan(&qo); err != nil || qo != 1 {
				t.Errorf("reader %d: query_only = %d, %v; want 1", i, qo, err)
			}
			if _, err := c.ExecContext(ctx, `INSERT INTO key_canary (id, value) VALUES (1, x'00')`); err == nil {
				t.Errorf("reader %d accepted a write", i)
			}
		})
	}
}

func TestReopenIsIdempotent(t *testing.T) {
	dbtest.SQLiteOnly(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	d, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	u := mkUser(t, d, "alice")
	migrationsBefore := dump(t, d, `SELECT * FROM schema_migrations`)
	d.Close()

	for i := range 2 {
		d, err = Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen %d: %v", i+1, err)
		}
		// applied_at is part of the dump, so a re-applied migration would show up here.
		if got := dump(t, d, `SELECT * FROM schema_migrations`); got != migrationsBefore {
			t.Errorf("reopen %d changed schema_migrations:\nbefore:\n%s\nafter:\n%s", i+1, migrationsBefore, got)
		}
		if n := count(t, d, `SELECT COUNT(*) FROM schema_migrations`); n != SchemaVersion() {
			t.Errorf("schema_migrations has %d rows, want one per migration (%d)", n, SchemaVersion())
		}
		if n := count(t, d, `SELECT COUNT(DISTINCT version) FROM schema_migrations WHERE version BETWEEN 1 AND ?`,
			SchemaVersion()); n != SchemaVersion() {
			t.Errorf("schema_migrations holds %d of versions 1..%d", n, SchemaVersion())
		}
		var uv int
		if err := d.read.QueryRow(`PRAGMA user_version`).Scan(&uv); err != nil || uv != SchemaVersion() {
			t.Errorf("user_version = %d, %v; want %d", uv, err, SchemaVersion())
		}
		if got, err := d.UserByID(ctx, u.ID); err != nil || got.Username != "alice" {
			t.Errorf("user lost across reopen: %+v, %v", got, err)
		}
		d.Close()
	}
}

func TestOpenHandlesUnusualPaths(t *testing.T) {
	dbtest.SQLiteOnly(t)
	// Characters that mean something in a URI must reach the file system unchanged.
	dir := filepath.Join(t.TempDir(), "a dir#with?odd%20chars&mode=ro")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gate house.db")
	d, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	mkUser(t, d, "alice")
	d.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the given path: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "gate house.db") {
			t.Errorf("unexpected file %q beside the database", e.Name())
		}
	}
	d, err = OpenExisting(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenExisting: %v", err)
	}
	defer d.Close()
	if n, _ := d.CountUsers(context.Background()); n != 1 {
		t.Errorf("CountUsers = %d after reopen, want 1", n)
	}
}

func TestOpenRejectsEmptyPath(t *testing.T) {
	dbtest.SQLiteOnly(t)
	if _, err := Open(context.Background(), ""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := dbtest.DSN(t, migrateAt)
	d, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	next := SchemaVersion() + 1
	if _, err := d.write.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		next, "future.sql", FormatTime(t0)); err != nil {
		t.Fatal(err)
	}
	d.Close()

	openers := []struct {
		name string
		open func(context.Context, string) (*DB, error)
	}{
		{"Open refuses a database from a newer binary", Open},
		{"OpenExisting refuses a database from a newer binary", OpenExisting},
	}
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			d, err := o.open(ctx, path)
			if err == nil {
				d.Close()
				t.Fatal("opened a newer database")
			}
			if !errors.Is(err, ErrTooNew) {
				t.Errorf("err = %v, want ErrTooNew", err)
			}
		})
	}
	// The refusal must not have rewritten the newer schema's bookkeeping.
	raw := rawOpen(t, path)
	var v int
	if err := raw.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil || v != next {
		t.Errorf("schema version after refusal = %d, %v; want %d", v, err, next)
	}
}

func TestOpenExisting(t *testing.T) {
	dbtest.SQLiteOnly(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr error // nil: any error; ignored when ok
		ok      bool
		// after checks the file once OpenExisting has returned.
		after func(t *testing.T, path string)
	}{
		{
			name:    "a missing file is an error and is not created",
			prepare: func(t *testing.T, path string) {},
			after: func(t *testing.T, path string) {
				if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("file exists after OpenExisting: %v", err)
				}
			},
		},
		{
			name: "a file of random bytes is refused and left as it was",
			prepare: func(t *testing.T, path string) {
				b := make([]byte, 8192)
				rand.Read(b)
				os.WriteFile(path, b, 0o600)
				os.WriteFile(path+".orig", b, 0o600)
			},
			after: func(t *testing.T, path string) {
				got, _ := os.ReadFile(path)
				want, _ := os.ReadFile(path + ".orig")
				if !bytes.Equal(got, want) {
					t.Error("OpenExisting changed a file that is not a database")
				}
			},
		},
		{
			name: "an SQLite file without a schema is not initialised and gets none",
			prepare: func(t *testing.T, path string) {
				raw := rawOpen(t, path)
				if _, err := raw.Exec(`CREATE TABLE x (a); DROP TABLE x`); err != nil {
					t.Fatal(err)
				}
				raw.Close()
				orig, _ := os.ReadFile(path)
				os.WriteFile(path+".orig", orig, 0o600)
			},
			wantErr: ErrNotInitialised,
			after: func(t *testing.T, path string) {
				assertNoTables(t, path)
				got, _ := os.ReadFile(path)
				want, _ := os.ReadFile(path + ".orig")
				if !bytes.Equal(got[:100], want[:100]) {
					t.Error("inspecting the file rewrote its header (journal mode)")
				}
			},
		},
		{
			name:    "a zero-byte file is not initialised and stays empty",
			prepare: func(t *testing.T, path string) { os.WriteFile(path, nil, 0o600) },
			wantErr: ErrNotInitialised,
			after: func(t *testing.T, path string) {
				if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
					t.Fatalf("inspecting an empty file changed it: %v, %v", fi, err)
				}
			},
		},
		{
			name: "a database behind this binary is refused, not migrated",
			prepare: func(t *testing.T, path string) {
				raw := rawOpen(t, path)
				if _, err := raw.Exec(createVersionTable); err != nil {
					t.Fatal(err)
				}
				raw.Close()
			},
			after: func(t *testing.T, path string) {
				raw := rawOpen(t, path)
				var n int
				raw.QueryRow(`SELECT COUNT(*) FROM sqlite_schema WHERE name = 'users'`).Scan(&n)
				if n != 0 {
					t.Error("OpenExisting applied a migration")
				}
			},
		},
		{
			name: "a current database opens",
			prepare: func(t *testing.T, path string) {
				d, err := Open(ctx, path)
				if err != nil {
					t.Fatal(err)
				}
				d.Close()
			},
			ok: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gatehouse.db")
			tt.prepare(t, path)
			d, err := OpenExisting(ctx, path)
			if tt.ok {
				if err != nil {
					t.Fatalf("OpenExisting: %v", err)
				}
				defer d.Close()
				if v, err := d.Version(ctx); err != nil || v != SchemaVersion() {
					t.Errorf("Version() = %d, %v", v, err)
				}
				return
			}
			if err == nil {
				d.Close()
				t.Fatal("OpenExisting succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && (errors.Is(err, ErrNotInitialised) || errors.Is(err, ErrTooNew)) {
				t.Errorf("err = %v, a misleading reason", err)
			}
			if tt.after != nil {
				tt.after(t, path)
			}
		})
	}
}

func assertNoTables(t *testing.T, path string) {
	t.Helper()
	raw := rawOpen(t, path)
	var n int
	if err := raw.QueryRow(`SELECT COUNT(*) FROM sqlite_schema`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("OpenExisting created %d schema objects", n)
	}
}

func TestBackup(t *testing.T) {
	dbtest.SQLiteOnly(t)
	ctx := context.Background()
	d := openTest(t)
	u := mkUser(t, d, "alice")
	s := mkSession(t, d, u.ID, StageFull, t0)
	mkFactor(t, d, u, s.ID)

	// Keep writing while the copy is taken; the copy must still be one consistent snapshot.
	stop := make(chan struct{})
	started := make(chan struct{})
	writeErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 200 {
			select {
			case <-stop:
				return
			default:
			}
			if err := d.Audit(ctx, event("backup.load", t0.Add(time.Duration(i)*time.Second))); err != nil {
				writeErr <- err
				return
			}
			if i == 0 {
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case err := <-writeErr:
		t.Fatalf("concurrent write failed: %v", err)
	}
	dest := filepath.Join(t.TempDir(), "backup.db")
	err := d.Backup(ctx, dest)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	select {
	case err := <-writeErr:
		t.Fatalf("concurrent write failed: %v", err)
	default:
	}

	b, err := OpenExisting(ctx, dest)
	if err != nil {
		t.Fatalf("OpenExisting(backup): %v", err)
	}
	defer b.Close()
	if err := b.IntegrityCheck(ctx); err != nil {
		t.Errorf("IntegrityCheck(backup): %v", err)
	}
	if got, err := b.UserByUsername(ctx, "alice"); err != nil || !got.HasMFA() {
		t.Errorf("backup user = %+v, %v; want alice with a factor", got, err)
	}
	if n, src := auditCount(t, b, "backup.load"), auditCount(t, d, "backup.load"); n > src {
		t.Errorf("backup has %d load rows, source only %d", n, src)
	}

	t.Run("an existing destination is refused and left alone", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "taken.db")
		if err := os.WriteFile(dest, []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := d.Backup(ctx, dest); err == nil {
			t.Error("Backup overwrote an existing file")
		}
		if got, _ := os.ReadFile(dest); string(got) != "keep me" {
			t.Errorf("destination now holds %q", got)
		}
	})
	t.Run("a destination in a missing directory is an error", func(t *testing.T) {
		if err := d.Backup(ctx, filepath.Join(t.TempDir(), "no", "such", "dir.db")); err == nil {
			t.Error("Backup into a missing directory succeeded")
		}
	})
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// newerDatabase makes a database that a later Gatehouse has migrated one step further.
func newerDatabase(tb testing.TB) string {
	tb.Helper()
	path := newDatabase(tb)
	rawExec(tb, path, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		db.SchemaVersion()+1, fmt.Sprintf("%04d_future.sql", db.SchemaVersion()+1), db.FormatTime(time.Now()))
	return path
}

func mustNotExist(tb testing.TB, path string) {
	tb.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		tb.Errorf("%s exists (stat: %v), want it absent", path, err)
	}
}

func TestCheck(t *testing.T) {
	t.Run("a good database passes and prints ok", func(t *testing.T) {
		path := newDatabase(t)
		before := dumpTables(t, path)
		out := mustRun(t, "", "check", "--db", path)
		if !strings.HasPrefix(out, "ok: ") || !strings.Contains(out, "verified") {
			t.Errorf("stdout = %q, want ok with the key verified", out)
		}
		if after := dumpTables(t, path); !reflect.DeepEqual(before, after) {
			t.Errorf("check changed the database:\nbefore %v\nafter  %v", before, after)
		}
	})
	t.Run("a database whose key serve has yet to create passes and nothing is created", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "g.db")
		store, err := db.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		store.Close()
		out := mustRun(t, "", "check", "--db", path)
		if !strings.HasPrefix(out, "ok: ") || !strings.Contains(out, "will be created") {
			t.Errorf("stdout = %q, want ok saying the key will be created", out)
		}
		mustNotExist(t, path+".key")
	})
	t.Run("a missing file is an error and is not created", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing.db")
		_, _, err := runCLI(t, "check", "--db", path)
		assertOneLine(t, err, path)
		mustNotExist(t, path)
		mustNotExist(t, path+".key")
	})
	t.Run("a file of random bytes is an error and is left as it was", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "garbage.db")
		garbage := make([]byte, 8192)
		_, _ = rand.Read(garbage)
		if err := os.WriteFile(path, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCLI(t, "check", "--db", path)
		assertOneLine(t, err, path)
		if got, _ := os.ReadFile(path); !bytes.Equal(got, garbage) {
			t.Errorf("check changed the file")
		}
	})
	t.Run("a SQLite file that is not a Gatehouse database is refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "other.db")
		rawExec(t, path, `CREATE TABLE notes (body TEXT)`)
		_, _, err := runCLI(t, "check", "--db", path)
		assertOneLine(t, err, "not a Gatehouse database")
	})
	t.Run("a database from a newer schema is refused", func(t *testing.T) {
		_, _, err := runCLI(t, "check", "--db", newerDatabase(t))
		assertOneLine(t, err, "newer")
	})
	t.Run("a database that needs migrating is refused and left unmigrated", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "old.db")
		rawExec(t, path, createVersionTableForTest)
		_, _, err := runCLI(t, "check", "--db", path)
		assertOneLine(t, err, "needs migrating")
		if tables := dumpTables(t, path); len(tables) != 1 {
			t.Errorf("check migrated the database: tables %v", tables)
		}
	})
	t.Run("a wrong key file is refused when the database has a canary", func(t *testing.T) {
		path := newDatabase(t)
		other := filepath.Join(t.TempDir(), "other.key")
		if _, err := auth.CreateKey(other); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCLI(t, "check", "--db", path, "--key-file", other)
		assertOneLine(t, err, "key file", other, "not the key")
	})
	t.Run("a missing key file is refused when the database has a canary", func(t *testing.T) {
		path := newDatabase(t)
		if err := os.Remove(path + ".key"); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCLI(t, "check", "--db", path)
		assertOneLine(t, err, "key file", "missing")
		mustNotExist(t, path+".key")
	})
	t.Run("a key file that is not a key is refused", func(t *testing.T) {
		path := newDatabase(t)
		bad := filepath.Join(t.TempDir(), "bad.key")
		if err := os.WriteFile(bad, []byte("not a key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCLI(t, "check", "--db", path, "--key-file", bad)
		assertOneLine(t, err, "key file", bad, "unusable")
	})
	t.Run("check does not bind the address", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		mustRun(t, "", "check", "--db", newDatabase(t), "--addr", ln.Addr().String())
	})
	t.Run("check takes no arguments", func(t *testing.T) {
		_, _, err := runCLI(t, "check", "--db", newDatabase(t), "extra")
		if !errors.Is(err, errUsage) {
			t.Errorf("err = %v, want a usage error", err)
		}
	})
}

// createVersionTableForTest is the version table with no migration recorded: what an
// older binary that knew fewer migrations would leave, seen from this one.
const createVersionTableForTest = `CREATE TABLE schema_migrations (
	version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`

func TestBackup(t *testing.T) {
	t.Run("a backup taken while serve runs restores as a pair", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "live.db")
		s := startServe(t, path)
		// Every command works beside a running serve on the same file.
		mustRun(t, "correct horse battery staple\n", "user", "add", "--db", path,
			"--username", "carol", "--role", "publisher", "--password-stdin")
		if out := mustRun(t, "", "user", "list", "--db", path); !strings.Contains(out, "carol") {
			t.Errorf("user list during serve does not show carol:\n%s", out)
		}
		mustRun(t, "", "check", "--db", path, "--addr", s.addr)
		dest := filepath.Join(t.TempDir(), "backup.db")
		out := mustRun(t, "", "backup", "--db", path, dest)
		if !strings.Contains(out, dest+".key") {
			t.Errorf("stdout = %q, want it to name %s.key", out, dest)
		}

		ctx := context.Background()
		copyDB, err := db.OpenExisting(ctx, dest)
		if err != nil {
			t.Fatal(err)
		}
		defer copyDB.Close()
		if err := copyDB.IntegrityCheck(ctx); err != nil {
			t.Error(err)
		}
		if u, err := copyDB.UserByUsername(ctx, "carol"); err != nil || u.Role != "publisher" {
			t.Errorf("carol in the backup: %+v, %v", u, err)
		}
		canary, err := copyDB.KeyCanary(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(dest + ".key")
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s.key has mode %v, want 0600", dest, fi.Mode().Perm())
		}
		keys, err := auth.LoadKey(dest + ".key")
		if err != nil {
			t.Fatal(err)
		}
		if err := keys.CheckCanary(canary); err != nil {
			t.Errorf("the copied key does not open the copied canary: %v", err)
		}
		live, _ := os.ReadFile(path + ".key")
		copied, _ := os.ReadFile(dest + ".key")
		if !bytes.Equal(live, copied) {
			t.Errorf("the copied key differs from the live one")
		}
		if err := s.stop(t); err != nil {
			t.Fatalf("serve: %v", err)
		}
		restored := startServe(t, dest)
		if err := restored.stop(t); err != nil {
			t.Fatalf("serve on the restored pair: %v", err)
		}
	})
	t.Run("an existing DEST is refused and left alone", func(t *testing.T) {
		path := newDatabase(t)
		dest := filepath.Join(t.TempDir(), "backup.db")
		if err := os.WriteFile(dest, []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCLI(t, "backup", "--db", path, dest)
		assertOneLine(t, err, dest, "exists")
		if got, _ := os.ReadFile(dest); string(got) != "keep me" {
			t.Errorf("DEST was overwritten: %q", got)
		}
		mustNotExist(t, dest+".key")
	})
	t.Run("an existing DEST.key is refused and no DEST is made", func(t *testing.T) {
		path := newDatabase(t)
		dest := filepath.Join(t.TempDir(), "backup.db")
		if err := os.WriteFile(dest+".key", []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCLI(t, "backup", "--db", path, dest)
		assertOneLine(t, err, dest+".key", "exists")
		mustNotExist(t, dest)
	})
	t.Run("a key file that is not the database's key is refused", func(t *testing.T) {
		path := newDatabase(t)
		other := filepath.Join(t.TempDir(), "other.key")
		if _, err := auth.CreateKey(other); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(t.TempDir(), "backup.db")
		_, _, err := runCLI(t, "backup", "--db", path, "--key-file", other, dest)
		assertOneLine(t, err, "key file", other, "not the key")
		mustNotExist(t, dest)
		mustNotExist(t, dest+".key")
	})
	t.Run("a missing database is an error and nothing is written", func(t *testing.T) {
		dir := t.TempDir()
		dest := filepath.Join(dir, "backup.db")
		_, _, err := runCLI(t, "backup", "--db", filepath.Join(dir, "missing.db"), dest)
		assertOneLine(t, err, "missing.db")
		mustNotExist(t, filepath.Join(dir, "missing.db"))
		mustNotExist(t, dest)
	})
	t.Run("backup needs exactly one DEST", func(t *testing.T) {
		path := newDatabase(t)
		for _, args := range [][]string{{"backup", "--db", path}, {"backup", "--db", path, "a", "b"}} {
			if _, _, err := runCLI(t, args...); !errors.Is(err, errUsage) {
				t.Errorf("%q: err = %v, want a usage error", args, err)
			}
		}
	})
}

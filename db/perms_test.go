//go:build unix

package db

import (
	"context"
	"gatehouse/internal/dbtest"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// withUmask sets the process umask for the test, so a mode the test sees comes from the
// code and not from how the machine running the tests is set up.
func withUmask(tb testing.TB, mask int) {
	tb.Helper()
	old := syscall.Umask(mask)
	tb.Cleanup(func() { syscall.Umask(old) })
}

func assertMode(tb testing.TB, path string, want fs.FileMode) {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		tb.Errorf("%s has mode %v, want %v", filepath.Base(path), got, want)
	}
}

func TestDatabaseFilesAreOwnerOnly(t *testing.T) {
	dbtest.SQLiteOnly(t)
	withUmask(t, 0o022)
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	d, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// A write while the store is open: the -wal holds it and the -shm indexes it.
	mkUser(t, d, "alice")
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		assertMode(t, p, 0o600)
	}
}

func TestBackupIsOwnerOnlyFromTheStart(t *testing.T) {
	dbtest.SQLiteOnly(t)
	withUmask(t, 0o022)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := openTest(t)
	mkUser(t, d, "alice")
	// Some megabytes, so the copy takes long enough to be seen while it is written.
	if _, err := d.write.ExecContext(ctx, `CREATE TABLE filler (b BLOB);
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
		INSERT INTO filler SELECT randomblob(4096) FROM n`); err != nil {
		t.Fatal(err)
	}

	for _, run := range []struct {
		name   string
		backup func(dest string) error
	}{
		{"Backup", func(dest string) error { return d.Backup(ctx, dest) }},
		{"BackupFile", func(dest string) error { return BackupFile(ctx, d.Path(), dest) }},
	} {
		t.Run(run.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "backup.db")
			done := make(chan struct{})
			seen := make(chan map[fs.FileMode]int, 1)
			go func() {
				modes := map[fs.FileMode]int{}
				for {
					if fi, err := os.Stat(dest); err == nil {
						modes[fi.Mode().Perm()]++
					}
					select {
					case <-done:
						seen <- modes
						return
					default:
					}
				}
			}()
			err := run.backup(dest)
			close(done)
			modes := <-seen
			if err != nil {
				t.Fatal(err)
			}
			for m, n := range modes {
				if m != 0o600 {
					t.Errorf("the copy had mode %v while it was written (seen %d times)", m, n)
				}
			}
			assertMode(t, dest, 0o600)
		})
	}

	t.Run("a copy that fails leaves no file behind", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "backup.db")
		cancelled, stop := context.WithCancel(ctx)
		stop()
		if err := d.Backup(cancelled, dest); err == nil {
			t.Fatal("Backup with a cancelled context succeeded")
		}
		if _, err := os.Stat(dest); !os.IsNotExist(err) {
			t.Errorf("%s is left behind (stat: %v)", dest, err)
		}
	})
}

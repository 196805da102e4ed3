package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// withUmask sets the process umask for the test, so a mode the test sees comes from the
// code and not from how the machine running the tests is set up.
func withUmask(tb testing.TB, mask int) {
	tb.Helper()
	old := syscall.Umask(mask)
	tb.Cleanup(func() { syscall.Umask(old) })
}

func chmod(tb testing.TB, path string, mode fs.FileMode) {
	tb.Helper()
	if err := os.Chmod(path, mode); err != nil {
		tb.Fatal(err)
	}
}

func TestCheckWarnsAboutFilesOthersCanOpen(t *testing.T) {
	withUmask(t, 0o022)
	t.Run("owner-only files give a plain ok", func(t *testing.T) {
		out := mustRun(t, "", "check", "--db", newDatabase(t))
		if !strings.HasPrefix(out, "ok: ") || strings.Contains(out, "warning") {
			t.Errorf("stdout = %q, want ok and no warning", out)
		}
	})
	tests := []struct {
		name string
		file func(db string) string
		mode fs.FileMode
		want string
	}{
		{"a database others can read", func(db string) string { return db }, 0o644, "readable by other users"},
		{"a database the group can write", func(db string) string { return db }, 0o620, "writable by other users"},
		{"a key file others can read", func(db string) string { return db + ".key" }, 0o644, "readable by other users"},
		{"a key file others can read and write", func(db string) string { return db + ".key" }, 0o666, "readable and writable by other users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := newDatabase(t)
			file := tt.file(path)
			chmod(t, file, tt.mode)
			out := mustRun(t, "", "check", "--db", path)
			want := "; warning: " + file + " is " + tt.want + " (chmod 600 " + file + ")\n"
			if !strings.HasPrefix(out, "ok: ") || !strings.HasSuffix(out, want) || strings.Count(out, "\n") != 1 {
				t.Errorf("stdout = %q, want one ok line ending %q", out, want)
			}
		})
	}
	t.Run("a -wal file of a running server that others can read", func(t *testing.T) {
		path := newDatabase(t)
		store := openDB(t, path) // stays open, as serve would, so its -wal and -shm stay
		addUser(t, store, "alice", "staff")
		chmod(t, path+"-wal", 0o644)
		out := mustRun(t, "", "check", "--db", path)
		want := "; warning: " + path + "-wal is readable by other users (chmod 600 " + path + "-wal)\n"
		if !strings.HasSuffix(out, want) {
			t.Errorf("stdout = %q, want it to end %q", out, want)
		}
	})
}

// warnings returns the warning records of a JSON log.
func warnings(tb testing.TB, log string) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, line := range strings.Split(log, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["level"] == "WARN" {
			out = append(out, rec)
		}
	}
	return out
}

func TestServeWarnsAboutFilesOthersCanOpen(t *testing.T) {
	withUmask(t, 0o022)
	path := newDatabase(t)
	chmod(t, path, 0o644)
	chmod(t, path+".key", 0o640)
	s := startServe(t, path)
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	named := func(file, how string) bool {
		for _, rec := range warnings(t, s.stderr.String()) {
			msg, _ := rec["msg"].(string)
			fix, _ := rec["fix"].(string)
			files, _ := rec["files"].([]any)
			if slices.Contains(files, any(file)) && strings.Contains(msg, how) &&
				strings.HasPrefix(fix, "chmod 600 ") && slices.Contains(strings.Fields(fix), file) {
				return true
			}
		}
		return false
	}
	// serve has the database open, so its -wal and -shm (made with its mode) are open too.
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if !named(f, "readable by other users") {
			t.Errorf("no warning names %s with its fix; warnings: %v", f, warnings(t, s.stderr.String()))
		}
	}
	if !named(path+".key", "readable by other users") {
		t.Errorf("no warning names the key file with its fix; warnings: %v", warnings(t, s.stderr.String()))
	}

	t.Run("owner-only files bring no warning", func(t *testing.T) {
		path := newDatabase(t)
		s := startServe(t, path)
		if err := s.stop(t); err != nil {
			t.Fatal(err)
		}
		if w := warnings(t, s.stderr.String()); len(w) != 0 {
			t.Errorf("warnings on owner-only files: %v", w)
		}
	})
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/internal/testkit"
)

// waitForServing waits up to 20 s for the JSON "serving" line on stderr and returns the
// address it names; it fails with the captured stderr if serve stops or never gets there.
func waitForServing(tb testing.TB, stderr *testkit.SyncBuffer, done <-chan error) string {
	tb.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, line := range strings.Split(stderr.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
				if rec.Addr == "" {
					tb.Fatalf("the serving line names no addr: %s", line)
				}
				return rec.Addr
			}
		}
		select {
		case err := <-done:
			tb.Fatalf("serve stopped before serving: %v; stderr:\n%s", err, stderr.String())
		case <-deadline:
			tb.Fatalf("no serving line within 20 s; stderr:\n%s", stderr.String())
		case <-tick.C:
		}
	}
}

// server is a serve command running in the test process.
type server struct {
	addr           string
	stdout, stderr *testkit.SyncBuffer
	cancel         context.CancelFunc
	done           chan error
	stopped        bool
}

// startServe runs serve on path at a free loopback port and waits until it answers.
func startServe(tb testing.TB, path string, extra ...string) *server {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{stdout: &testkit.SyncBuffer{}, stderr: &testkit.SyncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	args := append([]string{"gatehouse", "serve", "--addr", "127.0.0.1:0", "--db", path, "--log-format", "json"}, extra...)
	go func() {
		s.done <- run(ctx, args, func(string) string { return "" }, strings.NewReader(""), s.stdout, s.stderr)
	}()
	tb.Cleanup(func() {
		if !s.stopped {
			_ = s.stop(tb)
		}
	})
	s.addr = waitForServing(tb, s.stderr, s.done)
	return s
}

// stop cancels serve's context, as a signal does, and returns what run returned.
func (s *server) stop(tb testing.TB) error {
	tb.Helper()
	s.stopped = true
	s.cancel()
	select {
	case err := <-s.done:
		return err
	case <-time.After(20 * time.Second):
		tb.Fatalf("serve did not return within 20 s of cancellation; stderr:\n%s", s.stderr.String())
		return nil
	}
}

func get(tb testing.TB, url string) (int, string) {
	tb.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

var setupLink = regexp.MustCompile(`/setup\?token=([A-Za-z0-9_-]+)`)

func TestServe(t *testing.T) {
	withUmask(t, 0o022)
	path := filepath.Join(t.TempDir(), "g.db")
	s := startServe(t, path)
	base := "http://" + s.addr

	t.Run("it listens on loopback at the port it chose", func(t *testing.T) {
		host, port, err := net.SplitHostPort(s.addr)
		if err != nil || host != "127.0.0.1" || port == "0" {
			t.Errorf("serving on %q, want 127.0.0.1 and a real port", s.addr)
		}
	})
	t.Run("healthz and readyz answer 200", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			if code, body := get(t, base+p); code != http.StatusOK {
				t.Errorf("GET %s = %d %q, want 200", p, code, body)
			}
		}
	})
	t.Run("the first start prints a one-time setup link that works", func(t *testing.T) {
		m := setupLink.FindStringSubmatch(s.stdout.String())
		if m == nil {
			t.Fatalf("no setup link on stdout:\n%s", s.stdout.String())
		}
		if !strings.Contains(s.stdout.String(), "http://localhost:8080/setup?token=") {
			t.Errorf("the setup link does not use the base URL:\n%s", s.stdout.String())
		}
		if code, _ := get(t, base+"/setup?token="+m[1]); code != http.StatusOK {
			t.Errorf("GET the printed setup link = %d, want 200", code)
		}
		if code, _ := get(t, base+"/setup?token="+auth.NewToken()); code != http.StatusForbidden {
			t.Errorf("GET setup with another token = %d, want 403", code)
		}
	})
	t.Run("the key file is created with mode 0600", func(t *testing.T) {
		fi, err := os.Stat(path + ".key")
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
		}
	})
	t.Run("the database, its -wal and its -shm are created with mode 0600", func(t *testing.T) {
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
			}
		}
	})
	t.Run("cancelling the context shuts down gracefully and returns nil", func(t *testing.T) {
		if err := s.stop(t); err != nil {
			t.Fatalf("run returned %v; stderr:\n%s", err, s.stderr.String())
		}
		if !strings.Contains(s.stderr.String(), `"msg":"stopped"`) {
			t.Errorf("no stopped line:\n%s", s.stderr.String())
		}
		client := &http.Client{Timeout: 2 * time.Second}
		if resp, err := client.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			t.Errorf("the server still answers after run returned")
		}
	})
	t.Run("a restart once a user exists prints no setup link and kills the old one", func(t *testing.T) {
		old := setupLink.FindStringSubmatch(s.stdout.String())
		if old == nil {
			t.Fatal("the first start printed no setup link")
		}
		store := openDB(t, path)
		addUser(t, store, "alice", "admin")
		s2 := startServe(t, path)
		if strings.Contains(s2.stdout.String(), "setup") {
			t.Errorf("setup link printed although a user exists:\n%s", s2.stdout.String())
		}
		if ok, err := store.SetupTokenValid(context.Background(), auth.HashToken(old[1])); err != nil || ok {
			t.Errorf("the old setup token is still valid (ok=%v, err=%v)", ok, err)
		}
		if err := s2.stop(t); err != nil {
			t.Fatal(err)
		}
	})
}

func TestServeRefusesToStart(t *testing.T) {
	t.Run("an address in use is an error naming --addr", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		_, _, err = runCLI(t, "serve", "--addr", ln.Addr().String(), "--db", newDatabase(t), "--log-format", "json")
		assertOneLine(t, err, "--addr", ln.Addr().String())
	})
	t.Run("a missing key file on a database with a canary is one line about the key file", func(t *testing.T) {
		path := newDatabase(t)
		if err := os.Remove(path + ".key"); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCLI(t, "serve", "--addr", "127.0.0.1:0", "--db", path, "--log-format", "json")
		assertOneLine(t, err, "key file", "missing", "--key-file")
		if _, err := os.Stat(path + ".key"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("serve made a new key file in place of the missing one (stat: %v)", err)
		}
	})
	t.Run("a wrong key file is one line about the key file", func(t *testing.T) {
		path := newDatabase(t)
		other := filepath.Join(t.TempDir(), "other.key")
		if _, err := auth.CreateKey(other); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCLI(t, "serve", "--addr", "127.0.0.1:0", "--db", path, "--key-file", other, "--log-format", "json")
		assertOneLine(t, err, "key file", other, "not the key")
	})
	t.Run("a database directory that does not exist is a clear error and is not created", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "no-such-dir")
		_, _, err := runCLI(t, "serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "g.db"), "--log-format", "json")
		assertOneLine(t, err, "--db", dir, "does not exist")
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the directory appeared (stat: %v)", err)
		}
	})
	t.Run("a database path under a file is a clear error", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "plain-file")
		if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCLI(t, "serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(file, "g.db"), "--log-format", "json")
		assertOneLine(t, err, "--db", file, "not a directory")
	})
	t.Run("a database from a newer Gatehouse is refused", func(t *testing.T) {
		path := newerDatabase(t)
		_, _, err := runCLI(t, "serve", "--addr", "127.0.0.1:0", "--db", path, "--log-format", "json")
		assertOneLine(t, err, "newer")
	})
}

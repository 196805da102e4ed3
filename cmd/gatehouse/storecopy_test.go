package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/internal/testkit"
)

// storeWithFactor makes a served-once database holding alice, whose sign-in needs her
// password and an authenticator code, and returns the path and her TOTP secret.
func storeWithFactor(tb testing.TB) (path, secret string) {
	tb.Helper()
	path = newDatabase(tb)
	keys, err := auth.LoadKey(path + ".key")
	if err != nil {
		tb.Fatal(err)
	}
	store := openDB(tb, path)
	alice := testkit.CreateUser(tb, store, db.NewUser{Username: "alice", Role: db.RoleAdmin}, "correct horse battery",
		db.Event{At: time.Now(), Kind: "user.created", Actor: "cli"})
	secret = enrollDirect(tb, store, keys, alice)
	store.Close()
	return path, secret
}

// signInWithCode signs in at base with alice's password and a current code from secret
// and fails unless the dashboard opens.
func signInWithCode(tb testing.TB, base, secret string) {
	tb.Helper()
	c := newWebClient(base)
	code, loc, err := c.post("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"}})
	if err != nil || code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login/mfa") {
		tb.Fatalf("password step: %d to %q, %v; want the code step", code, loc, err)
	}
	code, loc, err = c.post("/login/mfa", url.Values{"code": {auth.TOTPCode(secret, time.Now())}})
	if err != nil || code != http.StatusSeeOther || loc != "/" {
		tb.Fatalf("code step: %d to %q, %v; want the dashboard", code, loc, err)
	}
	if code, _, _ := c.page(tb, "/"); code != http.StatusOK {
		tb.Fatalf("dashboard after sign-in: %d", code)
	}
}

func TestStoreCopy(t *testing.T) {
	t.Run("a copy holds every row, serve starts on it with the source's key, and alice signs in", func(t *testing.T) {
		src, secret := storeWithFactor(t)
		dst := filepath.Join(t.TempDir(), "copy.db")
		out := mustRun(t, "", "store", "copy", "--from", src, "--to", dst)
		if !strings.Contains(out, "1 TOTP secrets") || !strings.Contains(out, "--db "+dst+" --key-file "+src+".key") {
			t.Errorf("stdout = %q, want the secrets verified and how to start serve", out)
		}
		if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("the copy: %v, %v; want mode 0600", fi, err)
		}
		if want, got := dumpTables(t, src, "schema_migrations"), dumpTables(t, dst, "schema_migrations"); !reflect.DeepEqual(want, got) {
			t.Errorf("the copy differs:\nsource %v\ncopy   %v", want, got)
		}
		mustNotExist(t, dst+".key")
		if out := mustRun(t, "", "check", "--db", dst, "--key-file", src+".key"); !strings.HasPrefix(out, "ok: ") {
			t.Errorf("check on the copy: %q", out)
		}
		s := startServe(t, dst, "--key-file", src+".key")
		signInWithCode(t, "http://"+s.addr, secret)
	})
	t.Run("--json reports every table's rows", func(t *testing.T) {
		src, _ := storeWithFactor(t)
		dst := filepath.Join(t.TempDir(), "copy.db")
		var got storeCopyJSON
		if err := json.Unmarshal([]byte(mustRun(t, "", "store", "copy", "--json", "--from", src, "--to", dst)), &got); err != nil {
			t.Fatal(err)
		}
		if got.Tables["users"] != 1 || got.Tables["mfa_factors"] != 1 || got.Factors != 1 || got.To != dst || got.KeyFile != src+".key" {
			t.Errorf("--json: %+v", got)
		}
	})
	t.Run("an existing destination file is refused and left alone", func(t *testing.T) {
		src, _ := storeWithFactor(t)
		dst := newDatabase(t)
		before := dumpTables(t, dst)
		_, _, err := runCLI(t, "store", "copy", "--from", src, "--to", dst)
		assertOneLine(t, err, dst, "already exists")
		if after := dumpTables(t, dst); !reflect.DeepEqual(before, after) {
			t.Errorf("the refused copy changed %s", dst)
		}
	})
	t.Run("a key that does not open the source's canary is refused and no file is made", func(t *testing.T) {
		src, _ := storeWithFactor(t)
		other := filepath.Join(t.TempDir(), "other.key")
		if _, err := auth.CreateKey(other); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(t.TempDir(), "copy.db")
		_, _, err := runCLI(t, "store", "copy", "--from", src, "--to", dst, "--key-file", other)
		assertOneLine(t, err, "not the source's key")
		for _, p := range []string{dst, dst + "-wal", dst + "-shm"} {
			mustNotExist(t, p)
		}
	})
	t.Run("usage errors", func(t *testing.T) {
		src, _ := storeWithFactor(t)
		for _, args := range [][]string{
			{"store", "copy", "--from", src},
			{"store", "copy", "--to", src},
			{"store", "copy", "--from", src, "--to", src},
			{"store", "copy", "--from", "postgres://127.0.0.1:1/x", "--to", src + ".new"},
			{"store", "copy", "--from", src, "--to", src + ".new", "extra"},
		} {
			if _, _, err := runCLI(t, args...); !errors.Is(err, errUsage) {
				t.Errorf("gatehouse %s: %v, want a usage error", strings.Join(args, " "), err)
			}
		}
	})
}

package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// enrollDirect gives a user an active factor sealed with keys and returns its secret.
func enrollDirect(tb testing.TB, store *db.DB, keys *auth.Keyring, u db.User) string {
	tb.Helper()
	ctx := context.Background()
	s := startSession(tb, store, u.ID)
	secret := auth.NewTOTPSecret()
	enc, err := keys.Seal([]byte(secret), auth.TOTPSecretAAD(u.ID))
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	if err := store.StartEnrollment(ctx, db.Pending{UserID: u.ID, SessionID: s.ID, SecretEnc: enc, CreatedAt: now,
		ExpiresAt: now.Add(time.Hour)}); err != nil {
		tb.Fatal(err)
	}
	if err := store.ActivateFactor(ctx, u.ID, s.ID, enc, 1, nil, db.Event{At: now}); err != nil {
		tb.Fatal(err)
	}
	return secret
}

func secretOf(tb testing.TB, store *db.DB, keys *auth.Keyring, u db.User) (string, error) {
	tb.Helper()
	f, err := store.FactorOf(context.Background(), u.ID)
	if err != nil {
		tb.Fatal(err)
	}
	plain, err := keys.Open(f.SecretEnc, auth.TOTPSecretAAD(u.ID))
	return string(plain), err
}

func TestKeyRotate(t *testing.T) {
	path := newDatabase(t)
	keyFile := path + ".key"
	oldKeys, err := auth.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	store := openDB(t, path)
	users := []db.User{addUser(t, store, "alice", db.RoleStaff), addUser(t, store, "bob", db.RoleAdmin)}
	secrets := []string{enrollDirect(t, store, oldKeys, users[0]), enrollDirect(t, store, oldKeys, users[1])}
	oldBytes, _ := os.ReadFile(keyFile)

	t.Run("refused while serve holds the key", func(t *testing.T) {
		release, err := lockKeyFile(keyFile, false)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		_, _, err = runCLI(t, "key", "rotate", "--db", path)
		assertOneLine(t, err, "in use by a running serve")
		if now, _ := os.ReadFile(keyFile); !bytes.Equal(now, oldBytes) {
			t.Fatal("a refused rotation changed the key file")
		}
	})

	out := mustRun(t, "", "key", "rotate", "--db", path)
	if !strings.Contains(out, "2 secrets re-encrypted") {
		t.Fatalf("output %q", out)
	}
	newKeys, err := auth.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if now, _ := os.ReadFile(keyFile); bytes.Equal(now, oldBytes) {
		t.Fatal("the key file did not change")
	}
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("new key file mode %v", fi.Mode().Perm())
	}
	backups, _ := filepath.Glob(keyFile + ".*.old")
	if len(backups) != 1 {
		t.Fatalf("backups %v", backups)
	}
	if b, _ := os.ReadFile(backups[0]); !bytes.Equal(b, oldBytes) {
		t.Fatal("the backup is not the old key")
	}
	canary, _ := store.KeyCanary(context.Background())
	if newKeys.CheckCanary(canary) != nil || oldKeys.CheckCanary(canary) == nil {
		t.Fatal("the canary does not follow the new key")
	}
	for i, u := range users {
		got, err := secretOf(t, store, newKeys, u)
		if err != nil || got != secrets[i] {
			t.Fatalf("%s: secret after rotation %q, %v", u.Username, got, err)
		}
		if _, err := secretOf(t, store, oldKeys, u); err == nil {
			t.Fatal("the old key still opens a secret")
		}
		if _, ok := auth.CheckTOTP(got, auth.TOTPCode(got, time.Now()), time.Now()); !ok {
			t.Fatal("a code from the rotated secret is refused")
		}
	}
	mustRun(t, "", "check", "--db", path)
	srv := startServe(t, path)
	if code, _ := get(t, "http://"+srv.addr+"/readyz"); code != 200 {
		t.Fatalf("serve after rotation: /readyz %d", code)
	}
}

func TestInterruptedRotationIsFinishedAtStart(t *testing.T) {
	path := newDatabase(t)
	keyFile := path + ".key"
	oldKeys, _ := auth.LoadKey(keyFile)
	store := openDB(t, path)
	alice := addUser(t, store, "alice", db.RoleStaff)
	secret := enrollDirect(t, store, oldKeys, alice)

	// A rotation that committed but died before moving the new key into place.
	raw := bytes.Repeat([]byte{7}, 32)
	fresh, _ := auth.NewKeyring(raw)
	if err := fresh.WriteKeyFile(rotatingKeyPath(keyFile)); err != nil {
		t.Fatal(err)
	}
	canary, _ := fresh.NewCanary()
	if _, err := store.ResealSecrets(context.Background(), func(sealed, aad []byte) ([]byte, error) {
		p, err := oldKeys.Open(sealed, aad)
		if err != nil {
			return nil, err
		}
		return fresh.Seal(p, aad)
	}, auth.TOTPSecretAAD, canary, db.Event{At: time.Now()}); err != nil {
		t.Fatal(err)
	}

	mustRun(t, "", "check", "--db", path)
	if _, err := os.Stat(rotatingKeyPath(keyFile)); err != nil {
		t.Fatal("check changed the key files")
	}
	srv := startServe(t, path)
	if code, _ := get(t, "http://"+srv.addr+"/readyz"); code != 200 {
		t.Fatal("serve did not start after an interrupted rotation")
	}
	loaded, err := auth.LoadKey(keyFile)
	if err != nil || loaded.CheckCanary(canary) != nil {
		t.Fatalf("the new key was not put in place: %v", err)
	}
	if _, err := os.Stat(rotatingKeyPath(keyFile)); !os.IsNotExist(err) {
		t.Fatal("the rotating key file is still there")
	}
	if got, err := secretOf(t, store, loaded, alice); err != nil || got != secret {
		t.Fatalf("secret %q, %v", got, err)
	}
}

func TestKeyRotateKeepsTheOldKeyOwnerOnly(t *testing.T) {
	withUmask(t, 0o022)
	path := newDatabase(t)
	keyFile := path + ".key"
	chmod(t, keyFile, 0o644) // check and serve warn about it; rotation must not carry it on
	mustRun(t, "", "key", "rotate", "--db", path)
	backups, _ := filepath.Glob(keyFile + ".*.old")
	if len(backups) != 1 {
		t.Fatalf("backups %v", backups)
	}
	for _, f := range []string{keyFile, backups[0]} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(f), fi.Mode().Perm())
		}
	}
}

// TestOpenKeysSaysWhetherTheKeyExists: without create, a key file that serve would make
// is reported as not there yet, and nothing is written; with create it is made and found.
func TestOpenKeysSaysWhetherTheKeyExists(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "g.db")
	store := openDB(t, path)
	keys, exists, err := openKeys(ctx, store, path+".key", false)
	if err != nil || exists || keys != nil {
		t.Fatalf("before serve: keys %v, exists %v, %v; want none, no error", keys, exists, err)
	}
	if _, err := os.Stat(path + ".key"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("looking made a key file: %v", err)
	}
	for _, create := range []bool{true, false} {
		keys, exists, err := openKeys(ctx, store, path+".key", create)
		if err != nil || !exists || keys == nil {
			t.Fatalf("create %v: keys %v, exists %v, %v; want the key", create, keys, exists, err)
		}
	}
}

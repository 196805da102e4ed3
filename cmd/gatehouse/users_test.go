package main

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// verifies reports whether the stored hash matches password, with the binary's parameters.
func verifies(tb testing.TB, hash, password string) bool {
	tb.Helper()
	ok, err := auth.NewHasher(auth.DefaultParams, 1).Verify(context.Background(), hash, password)
	if err != nil {
		tb.Fatal(err)
	}
	return ok
}

func TestUserAdd(t *testing.T) {
	ctx := context.Background()
	t.Run("the password is the stdin line without its newline", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "g.db")
		out := mustRun(t, "correct horse battery staple\n", "user", "add", "--db", path,
			"--username", "alice", "--role", "admin", "--display-name", "  Alice Adams ", "--password-stdin")
		if out != "created user alice (admin)\n" {
			t.Errorf("stdout = %q", out)
		}
		store := openDB(t, path)
		u := userNamed(t, store, "alice")
		if u.Role != db.RoleAdmin || u.DisplayName != "Alice Adams" || u.MustChangePassword || u.Disabled {
			t.Errorf("user = %+v, want an enabled admin named Alice Adams whose password is final", u)
		}
		if !verifies(t, u.PasswordHash, "correct horse battery staple") {
			t.Error("the stored hash does not verify the password")
		}
		if verifies(t, u.PasswordHash, "correct horse battery staple\n") {
			t.Error("the newline became part of the password")
		}
		evs, err := store.ListEvents(ctx, db.AuditFilter{Kind: "user.created"})
		if err != nil || len(evs) != 1 || evs[0].Actor != "cli" || evs[0].Subject != "alice" {
			t.Errorf("audit = %+v, %v; want one user.created by cli for alice", evs, err)
		}
	})
	t.Run("trailing spaces are part of the password", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "g.db")
		mustRun(t, "pw with space \n", "user", "add", "--db", path, "--username", "bob", "--role", "staff", "--password-stdin")
		u := userNamed(t, openDB(t, path), "bob")
		if !verifies(t, u.PasswordHash, "pw with space ") {
			t.Error(`the stored hash does not verify "pw with space "`)
		}
		if verifies(t, u.PasswordHash, "pw with space") {
			t.Error("the trailing space was stripped")
		}
	})
	t.Run("adding a user closes the first-run setup link", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "g.db")
		store := openDB(t, path)
		token := auth.NewToken()
		if err := store.SetSetupToken(ctx, auth.HashToken(token), time.Now()); err != nil {
			t.Fatal(err)
		}
		mustRun(t, "another fine passphrase\n", "user", "add", "--db", path, "--username", "carol", "--role", "staff", "--password-stdin")
		if ok, err := store.SetupTokenValid(ctx, auth.HashToken(token)); err != nil || ok {
			t.Errorf("setup token still valid (ok=%v, err=%v)", ok, err)
		}
	})

	path := filepath.Join(t.TempDir(), "g.db")
	store := openDB(t, path)
	addUser(t, store, "alice", db.RoleStaff)
	refusals := []struct {
		name      string
		args      []string
		stdin     string
		usage     bool
		wantError string
	}{
		{"a common password is refused", []string{"--username", "bob", "--password-stdin"}, "1qaz2wsx3edc\n", false, "password refused"},
		{"a short password is refused", []string{"--username", "bob", "--password-stdin"}, "short\n", false, "password refused"},
		{"the username as password is refused", []string{"--username", "bob.the.builder", "--password-stdin"}, "Bob.The.Builder\n", false, "password refused"},
		{"empty stdin is refused", []string{"--username", "bob", "--password-stdin"}, "", false, "no password"},
		{"an unknown role is refused", []string{"--username", "bob", "--role", "root", "--password-stdin"}, "a perfectly fine passphrase\n", true, "--role"},
		{"a missing --password-stdin is refused", []string{"--username", "bob"}, "a perfectly fine passphrase\n", true, "--password-stdin"},
		{"a missing --username is refused", []string{"--password-stdin"}, "a perfectly fine passphrase\n", true, "--username"},
		{"a username with spaces is refused", []string{"--username", "bob smith", "--password-stdin"}, "a perfectly fine passphrase\n", false, "username"},
		{"a duplicate username is refused whatever its case", []string{"--username", "ALICE", "--password-stdin"}, "a perfectly fine passphrase\n", false, "already exists"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"user", "add", "--db", path}, tt.args...)
			_, _, err := runIn(t, nil, tt.stdin, args...)
			assertOneLine(t, err, tt.wantError)
			if errors.Is(err, errUsage) != tt.usage {
				t.Errorf("usage error = %v, want %v (err: %v)", errors.Is(err, errUsage), tt.usage, err)
			}
			users, err := store.ListUsers(ctx)
			if err != nil || len(users) != 1 || users[0].Username != "alice" {
				t.Errorf("users after a refusal: %+v, %v; want only alice", users, err)
			}
		})
	}
}

// The command line takes the web's display-name rule: at most 100 characters on one line.
// A line break would otherwise reach page titles, logs and CSV exports.
func TestUserAddRefusesADisplayNameWithALineBreak(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.db")
	for _, name := range []string{"Bob\nBuilder", "Bob\rBuilder", "Bob\u2028Builder", strings.Repeat("b", 101)} {
		_, _, err := runIn(t, nil, "a perfectly fine passphrase\n", "user", "add", "--db", path,
			"--username", "bob", "--display-name", name, "--password-stdin")
		assertOneLine(t, err, "display name refused: Use at most 100 characters on one line.")
	}
	mustRun(t, "a perfectly fine passphrase\n", "user", "add", "--db", path,
		"--username", "bob", "--display-name", strings.Repeat("b", 100), "--password-stdin")
	if users, err := openDB(t, path).ListUsers(context.Background()); err != nil || len(users) != 1 {
		t.Fatalf("users: %+v, %v; want only the one with a valid name", users, err)
	}
}

func TestUserList(t *testing.T) {
	path := newDatabase(t)
	store := openDB(t, path)
	alice := addUser(t, store, "alice", db.RoleAdmin)
	addUser(t, store, "bob", db.RolePublisher)
	addPasskey(t, store, alice.ID, "Laptop")
	enroll(t, store, alice.ID)
	startSession(t, store, alice.ID)
	if _, err := store.SetDisabled(context.Background(), userNamed(t, store, "bob").ID, true, db.Event{At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	lastLogin := userNamed(t, store, "alice").LastLoginAt.UTC().Format("2006-01-02 15:04")
	out := mustRun(t, "", "user", "list", "--db", path, "--timezone", "UTC")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two users, got:\n%s", out)
	}
	tests := []struct {
		name string
		line string
		want []string
	}{
		{"the header names the columns", lines[0], []string{"USERNAME", "ROLE", "MFA", "STATUS", "LAST SIGN-IN"}},
		{"alice is an active admin with both kinds of factor who signed in", lines[1], []string{"alice", "admin", "totp+passkey", "active", lastLogin}},
		{"bob is a disabled publisher who never signed in", lines[2], []string{"bob", "publisher", "off", "disabled", "never"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, w := range tt.want {
				if !strings.Contains(tt.line, w) {
					t.Errorf("line %q does not contain %q", tt.line, w)
				}
			}
		})
	}
	t.Run("a missing database is an error and is not created", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "missing.db")
		_, _, err := runCLI(t, "user", "list", "--db", missing)
		assertOneLine(t, err, missing)
		mustNotExist(t, missing)
	})
}

func TestUserDisableEnable(t *testing.T) {
	ctx := context.Background()
	path := newDatabase(t)
	store := openDB(t, path)
	alice := addUser(t, store, "alice", db.RoleStaff)
	bob := addUser(t, store, "bob", db.RoleStaff)
	startSession(t, store, alice.ID)
	startSession(t, store, alice.ID)
	startSession(t, store, bob.ID)

	t.Run("disable marks the user disabled and ends only their sessions", func(t *testing.T) {
		out := mustRun(t, "", "user", "disable", "--db", path, "alice")
		if !strings.Contains(out, "2 sessions ended") {
			t.Errorf("stdout = %q", out)
		}
		if !userNamed(t, store, "alice").Disabled {
			t.Error("alice is not disabled")
		}
		if n := sessionsOf(t, store, alice.ID); n != 0 {
			t.Errorf("alice has %d sessions, want 0", n)
		}
		if n := sessionsOf(t, store, bob.ID); n != 1 {
			t.Errorf("bob has %d sessions, want 1", n)
		}
	})
	t.Run("enable lets the user in again", func(t *testing.T) {
		mustRun(t, "", "user", "enable", "--db", path, "alice")
		if userNamed(t, store, "alice").Disabled {
			t.Error("alice is still disabled")
		}
		evs, err := store.ListEvents(ctx, db.AuditFilter{Actor: "cli"})
		if err != nil || len(evs) < 2 || evs[0].Kind != "user.enabled" || evs[1].Kind != "user.disabled" {
			t.Errorf("audit = %+v, %v; want user.disabled then user.enabled by cli", evs, err)
		}
	})
	t.Run("the username is matched whatever its case", func(t *testing.T) {
		mustRun(t, "", "user", "disable", "--db", path, "BOB")
		if !userNamed(t, store, "bob").Disabled {
			t.Error("bob is not disabled")
		}
	})
}

func TestUserDisableRefusesTheLastAdmin(t *testing.T) {
	path := newDatabase(t)
	store := openDB(t, path)
	root := addUser(t, store, "root", db.RoleAdmin)
	startSession(t, store, root.ID)

	_, _, err := runCLI(t, "user", "disable", "--db", path, "root")
	assertOneLine(t, err, "root", "last active admin")
	if userNamed(t, store, "root").Disabled {
		t.Fatal("the last active admin was disabled")
	}
	if n := sessionsOf(t, store, root.ID); n != 1 {
		t.Errorf("root has %d sessions after the refusal, want 1", n)
	}
	if evs, _ := store.ListEvents(context.Background(), db.AuditFilter{Kind: "user.disabled"}); len(evs) != 0 {
		t.Errorf("a refused disable was audited: %+v", evs)
	}

	// With a second admin the first may go, and then the second is the last.
	addUser(t, store, "ada", db.RoleAdmin)
	mustRun(t, "", "user", "disable", "--db", path, "root")
	if !userNamed(t, store, "root").Disabled {
		t.Error("root is not disabled although ada is an admin too")
	}
	_, _, err = runCLI(t, "user", "disable", "--db", path, "ada")
	assertOneLine(t, err, "ada", "last active admin")
	if userNamed(t, store, "ada").Disabled {
		t.Error("ada, now the last active admin, was disabled")
	}
}

func TestUserSetPassword(t *testing.T) {
	path := newDatabase(t)
	store := openDB(t, path)
	alice := addUser(t, store, "alice", db.RoleStaff)
	startSession(t, store, alice.ID)

	t.Run("the new password, without its CRLF, is final and ends the user's sessions", func(t *testing.T) {
		mustRun(t, "a brand new passphrase \r\n", "user", "set-password", "--db", path, "--password-stdin", "alice")
		u := userNamed(t, store, "alice")
		if !verifies(t, u.PasswordHash, "a brand new passphrase ") {
			t.Error("the stored hash does not verify the new password")
		}
		if u.MustChangePassword {
			t.Error("a CLI-set password was marked temporary")
		}
		if n := sessionsOf(t, store, alice.ID); n != 0 {
			t.Errorf("alice has %d sessions, want 0", n)
		}
	})
	refusals := []struct {
		name, stdin string
		args        []string
		usage       bool
		want        string
	}{
		{"without --password-stdin it is a usage error", "a brand new passphrase\n", []string{"alice"}, true, "--password-stdin"},
		{"a common password is refused", "1q2w3e4r5t6y\n", []string{"--password-stdin", "alice"}, false, "password refused"},
		{"no user name is a usage error", "a brand new passphrase\n", []string{"--password-stdin"}, true, "argument"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			before := userNamed(t, store, "alice").PasswordHash
			args := append([]string{"user", "set-password", "--db", path}, tt.args...)
			_, _, err := runIn(t, nil, tt.stdin, args...)
			assertOneLine(t, err, tt.want)
			if errors.Is(err, errUsage) != tt.usage {
				t.Errorf("usage error = %v, want %v", errors.Is(err, errUsage), tt.usage)
			}
			if userNamed(t, store, "alice").PasswordHash != before {
				t.Error("the password changed")
			}
		})
	}
}

// enroll gives the user an active factor with recovery codes, as a confirmed enrollment does.
func enroll(tb testing.TB, store *db.DB, userID int64) {
	tb.Helper()
	ctx := context.Background()
	s := startSession(tb, store, userID)
	now := time.Now()
	secret := []byte("sealed secret")
	if err := store.StartEnrollment(ctx, db.Pending{UserID: userID, SessionID: s.ID, SecretEnc: secret,
		CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}); err != nil {
		tb.Fatal(err)
	}
	if err := store.ActivateFactor(ctx, userID, s.ID, secret, 1, []string{"code-hash-1", "code-hash-2"},
		db.Event{At: now}); err != nil {
		tb.Fatal(err)
	}
}

// addPasskey registers a passkey for the user, as a verified registration does.
func addPasskey(tb testing.TB, store *db.DB, userID int64, name string) {
	tb.Helper()
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	_, _, err := store.AddPasskey(context.Background(), db.NewPasskey{UserID: userID, Name: name,
		Credential: auth.PasskeyCredential{ID: id, PublicKey: []byte("cose key")}}, []string{"code-hash-pk"}, 0,
		db.Event{At: time.Now()})
	if err != nil {
		tb.Fatal(err)
	}
}

func TestUserResetMFA(t *testing.T) {
	ctx := context.Background()
	path := newDatabase(t)
	store := openDB(t, path)
	alice := addUser(t, store, "alice", db.RoleStaff)
	bob := addUser(t, store, "bob", db.RoleStaff)
	enroll(t, store, alice.ID)
	addPasskey(t, store, alice.ID, "Laptop")
	enroll(t, store, bob.ID)
	addPasskey(t, store, bob.ID, "Laptop")
	startSession(t, store, alice.ID)

	t.Run("reset-mfa removes the factor, the passkeys, the recovery codes and the sessions", func(t *testing.T) {
		out := mustRun(t, "", "user", "reset-mfa", "--db", path, "alice")
		if !strings.Contains(out, "second factor removed for alice") {
			t.Errorf("stdout = %q", out)
		}
		if _, err := store.FactorOf(ctx, alice.ID); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("alice's factor: err = %v, want ErrNotFound", err)
		}
		if codes, err := store.UnusedRecoveryCodes(ctx, alice.ID); err != nil || len(codes) != 0 {
			t.Errorf("alice's recovery codes: %d, %v; want none", len(codes), err)
		}
		if keys, err := store.PasskeysOf(ctx, alice.ID); err != nil || len(keys) != 0 {
			t.Errorf("alice's passkeys: %d, %v; want none", len(keys), err)
		}
		if n := sessionsOf(t, store, alice.ID); n != 0 {
			t.Errorf("alice has %d sessions, want 0", n)
		}
		if evs, err := store.ListEvents(ctx, db.AuditFilter{Kind: "mfa.reset"}); err != nil || len(evs) != 1 || evs[0].Subject != "alice" {
			t.Errorf("audit = %+v, %v; want one mfa.reset of alice", evs, err)
		}
	})
	t.Run("another user's factor is untouched", func(t *testing.T) {
		if _, err := store.FactorOf(ctx, bob.ID); err != nil {
			t.Errorf("bob's factor: %v", err)
		}
		if codes, err := store.UnusedRecoveryCodes(ctx, bob.ID); err != nil || len(codes) != 2 {
			t.Errorf("bob's recovery codes: %d, %v; want 2", len(codes), err)
		}
		if keys, err := store.PasskeysOf(ctx, bob.ID); err != nil || len(keys) != 1 {
			t.Errorf("bob's passkeys: %d, %v; want 1", len(keys), err)
		}
	})
	t.Run("a user with only a passkey has a factor to reset", func(t *testing.T) {
		carol := addUser(t, store, "carol", db.RoleStaff)
		addPasskey(t, store, carol.ID, "Key")
		if out := mustRun(t, "", "user", "reset-mfa", "--db", path, "carol"); !strings.Contains(out, "second factor removed for carol") {
			t.Errorf("stdout = %q", out)
		}
		if u := userNamed(t, store, "carol"); u.HasMFA() || !u.MustEnrollMFA {
			t.Errorf("carol after the reset: %+v", u)
		}
	})
	t.Run("a second reset says there was no factor", func(t *testing.T) {
		if out := mustRun(t, "", "user", "reset-mfa", "--db", path, "alice"); !strings.Contains(out, "had no second factor") {
			t.Errorf("stdout = %q", out)
		}
	})
}

func TestUserUnlock(t *testing.T) {
	ctx := context.Background()
	path := newDatabase(t)
	store := openDB(t, path)
	addUser(t, store, "Alice", db.RoleStaff)
	lock := func(int) time.Duration { return time.Hour }
	for _, name := range []string{"alice", "bob"} {
		if _, err := store.BeginSignInAttempt(ctx, name, time.Now(), lock); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("unlock clears the user's throttle", func(t *testing.T) {
		if out := mustRun(t, "", "user", "unlock", "--db", path, "alice"); out != "unlocked Alice\n" {
			t.Errorf("stdout = %q", out)
		}
		if n, until, err := store.ThrottleOf(ctx, "alice"); err != nil || n != 0 || !until.IsZero() {
			t.Errorf("alice's throttle: %d failures, locked until %v, %v; want cleared", n, until, err)
		}
	})
	t.Run("other accounts stay throttled", func(t *testing.T) {
		if n, until, err := store.ThrottleOf(ctx, "bob"); err != nil || n != 1 || until.IsZero() {
			t.Errorf("bob's throttle: %d failures, locked until %v, %v; want still locked", n, until, err)
		}
	})
	t.Run("a second unlock says there was nothing to clear", func(t *testing.T) {
		if out := mustRun(t, "", "user", "unlock", "--db", path, "alice"); !strings.Contains(out, "was not throttled") {
			t.Errorf("stdout = %q", out)
		}
	})
}

func TestUserCommandsOnAnUnknownUser(t *testing.T) {
	path := newDatabase(t)
	store := openDB(t, path)
	addUser(t, store, "alice", db.RoleStaff)
	before := dumpTables(t, path)
	for _, args := range [][]string{
		{"user", "disable"},
		{"user", "enable"},
		{"user", "set-password", "--password-stdin"},
		{"user", "reset-mfa"},
		{"user", "unlock"},
	} {
		t.Run(strings.Join(args, " ")+" on an unknown user says there is no such user", func(t *testing.T) {
			args := append(append(args, "--db", path), "nobody")
			_, _, err := runIn(t, nil, "a perfectly fine passphrase\n", args...)
			assertOneLine(t, err, `no user "nobody"`)
		})
	}
	t.Run("sessions revoke --user on an unknown user says there is no such user", func(t *testing.T) {
		_, _, err := runCLI(t, "sessions", "revoke", "--db", path, "--user", "nobody")
		assertOneLine(t, err, `no user "nobody"`)
	})
	t.Run("nothing changed", func(t *testing.T) {
		if after := dumpTables(t, path); !reflect.DeepEqual(before, after) {
			t.Errorf("the database changed:\nbefore %v\nafter  %v", before, after)
		}
	})
}

func TestSessionsRevoke(t *testing.T) {
	path := newDatabase(t)
	store := openDB(t, path)
	alice := addUser(t, store, "alice", db.RoleAdmin)
	bob := addUser(t, store, "bob", db.RoleStaff)
	enroll(t, store, alice.ID)
	lock := func(int) time.Duration { return time.Hour }
	if _, err := store.BeginSignInAttempt(context.Background(), "bob", time.Now(), lock); err != nil {
		t.Fatal(err)
	}
	seed := func(t *testing.T) {
		for range 2 {
			startSession(t, store, alice.ID)
			startSession(t, store, bob.ID)
		}
	}

	t.Run("--user ends only that user's sessions and changes no other table", func(t *testing.T) {
		seed(t)
		before := dumpTables(t, path, "sessions", "audit_log")
		aliceBefore := sessionsOf(t, store, alice.ID)
		out := mustRun(t, "", "sessions", "revoke", "--db", path, "--user", "bob")
		if out != "ended 2 sessions of bob\n" {
			t.Errorf("stdout = %q", out)
		}
		if n := sessionsOf(t, store, bob.ID); n != 0 {
			t.Errorf("bob has %d sessions, want 0", n)
		}
		if n := sessionsOf(t, store, alice.ID); n != aliceBefore {
			t.Errorf("alice has %d sessions, want %d", n, aliceBefore)
		}
		if after := dumpTables(t, path, "sessions", "audit_log"); !reflect.DeepEqual(before, after) {
			t.Errorf("other tables changed:\nbefore %v\nafter  %v", before, after)
		}
	})
	t.Run("--all ends every session and changes no other table", func(t *testing.T) {
		seed(t)
		before := dumpTables(t, path, "sessions", "audit_log")
		out := mustRun(t, "", "sessions", "revoke", "--db", path, "--all")
		if !strings.HasPrefix(out, "ended ") {
			t.Errorf("stdout = %q", out)
		}
		if n, err := store.CountSessions(context.Background()); err != nil || n != 0 {
			t.Errorf("%d sessions left, %v; want 0", n, err)
		}
		if after := dumpTables(t, path, "sessions", "audit_log"); !reflect.DeepEqual(before, after) {
			t.Errorf("other tables changed:\nbefore %v\nafter  %v", before, after)
		}
		if len(before["users"]) != 2 || len(before["mfa_factors"]) != 1 || len(before["login_throttle"]) != 1 {
			t.Errorf("the snapshot is missing seeded rows, so it proves nothing: %v", before)
		}
	})
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"neither --user nor --all is a usage error", nil},
		{"both --user and --all is a usage error", []string{"--user", "bob", "--all"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			seed(t)
			n, _ := store.CountSessions(context.Background())
			_, _, err := runCLI(t, append([]string{"sessions", "revoke", "--db", path}, tt.args...)...)
			if !errors.Is(err, errUsage) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			assertOneLine(t, err, "--user", "--all")
			if m, _ := store.CountSessions(context.Background()); m != n {
				t.Errorf("sessions went from %d to %d", n, m)
			}
		})
	}
}

func TestUserDelete(t *testing.T) {
	path := newDatabase(t)
	store := openDB(t, path)
	root := addUser(t, store, "root", db.RoleAdmin)
	bob := addUser(t, store, "bob", db.RoleStaff)
	startSession(t, store, bob.ID)

	_, _, err := runCLI(t, "user", "delete", "--db", path, "root")
	assertOneLine(t, err, "last active admin")
	if _, err := store.UserByID(context.Background(), root.ID); err != nil {
		t.Fatal("the last admin was deleted")
	}
	out := mustRun(t, "", "user", "delete", "--db", path, "bob")
	if !strings.Contains(out, "deleted bob") {
		t.Fatalf("output %q", out)
	}
	if _, err := store.UserByID(context.Background(), bob.ID); !errors.Is(err, db.ErrNotFound) {
		t.Fatal("bob still exists")
	}
	if n := sessionsOf(t, store, bob.ID); n != 0 {
		t.Fatalf("bob's sessions outlived him: %d", n)
	}
	evs, _ := store.ListEvents(context.Background(), db.AuditFilter{Kind: "user.deleted"})
	if len(evs) != 1 || evs[0].Subject != "bob" || evs[0].Actor != "cli" {
		t.Fatalf("audit %+v", evs)
	}
}

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// ａｍｙ beside amy was a second account; it is the same name, refused in one line that
// names the account it collides with.
func TestUserAddRefusesAnotherFormOfATakenName(t *testing.T) {
	ctx := context.Background()
	path := newDatabase(t)
	store := openDB(t, path)
	addUser(t, store, "amy", db.RoleStaff)
	for _, variant := range []string{"ａｍｙ", "ＡＭＹ", "Amy"} {
		_, _, err := runIn(t, nil, "a perfectly fine passphrase\n", "user", "add", "--db", path, "--username", variant, "--password-stdin")
		assertOneLine(t, err, `"`+variant+`"`, `already exists as "amy"`)
	}
	_, _, err := runIn(t, nil, "a perfectly fine passphrase\n", "user", "add", "--db", path, "--username", "\u0430my", "--password-stdin")
	assertOneLine(t, err, "refused", "Cyrillic and Latin")
	if users, err := store.ListUsers(ctx); err != nil || len(users) != 1 {
		t.Fatalf("users after the refusals: %+v, %v; want only amy", users, err)
	}

	if out := mustRun(t, "a perfectly fine passphrase\n", "user", "add", "--db", path, "--username", "Ｂｏｂ", "--password-stdin"); out != "created user Bob (staff)\n" {
		t.Errorf("stdout = %q, want the name as stored", out)
	}
	evs, err := store.ListEvents(ctx, db.AuditFilter{Kind: "user.created"})
	if err != nil || len(evs) != 1 || evs[0].Subject != "Bob" {
		t.Errorf("audit = %+v, %v; want one user.created naming Bob", evs, err)
	}
}

func TestUserUnlockClearsTheThrottleOfAnyVariant(t *testing.T) {
	ctx := context.Background()
	path := newDatabase(t)
	store := openDB(t, path)
	addUser(t, store, "Straße", db.RoleStaff)
	lock := func(int) time.Duration { return time.Hour }
	// Signing in as STRASSE counts under the key strasse; strings.ToLower("Straße") is straße.
	if _, err := store.BeginSignInAttempt(ctx, auth.UsernameKey("STRASSE"), time.Now(), lock); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, "", "user", "unlock", "--db", path, "STRASSE"); out != "unlocked Straße\n" {
		t.Errorf("stdout = %q", out)
	}
	if n, until, err := store.ThrottleOf(ctx, auth.UsernameKey("Straße")); err != nil || n != 0 || !until.IsZero() {
		t.Errorf("throttle after unlock: %d failures, locked until %v, %v; want cleared", n, until, err)
	}
	if !strings.Contains(mustRun(t, "", "user", "unlock", "--db", path, "straße"), "was not throttled") {
		t.Error("a second unlock found something to clear")
	}
}

package db

import (
	"bytes"
	"context"
	"errors"
	"gatehouse/internal/dbtest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
)

// Before usernames had keys, ＡＭＹ, AMY and amy were separate accounts as far as Unicode went
// (COLLATE NOCASE folds ASCII only), and Émile and émile were two accounts sharing one throttle.
func TestUsernameVariantsAreDuplicates(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	mkUser(t, d, "amy")
	mkUser(t, d, "émile")
	for _, variant := range []string{"ａｍｙ", "AMY", "Amy", "ＡＭＹ", "Émile", "ÉMILE", "e\u0301mile", "E\u0301mile"} {
		_, err := d.CreateUser(ctx, NewUser{Username: variant, Role: RoleStaff, PasswordHash: "x"}, event("user.created", t0))
		if !errors.Is(err, ErrDuplicate) {
			t.Errorf("CreateUser(%q) = %v, want ErrDuplicate", variant, err)
		}
	}
	if n, _ := d.CountUsers(ctx); n != 2 {
		t.Errorf("%d users, want 2", n)
	}
	if n := auditCount(t, d, "user.created"); n != 2 {
		t.Errorf("%d user.created audit rows, want 2", n)
	}
}

func TestUserByUsernameFindsEveryVariant(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	amy := mkUser(t, d, "amy")
	emile := mkUser(t, d, "Émile")
	for variant, want := range map[string]User{
		"amy": amy, "AMY": amy, "Amy": amy, "ａｍｙ": amy, "ＡＭＹ": amy,
		"Émile": emile, "émile": emile, "ÉMILE": emile, "e\u0301mile": emile, "ｅ\u0301ｍｉｌｅ": emile,
	} {
		u, err := d.UserByUsername(ctx, variant)
		if err != nil || u.ID != want.ID {
			t.Errorf("UserByUsername(%q) = %d %q, %v; want %q", variant, u.ID, u.Username, err, want.Username)
		}
	}
	if _, err := d.UserByUsername(ctx, "\u0430my"); !errors.Is(err, ErrNotFound) {
		t.Errorf("UserByUsername(Cyrillic аmy) = %v, want ErrNotFound", err)
	}
}

func TestUsernameIsStoredNormalisedWithItsCase(t *testing.T) {
	d := openTest(t)
	if u := mkUser(t, d, "Ｂｏｂ"); u.Username != "Bob" {
		t.Errorf("fullwidth Ｂｏｂ stored as %q, want Bob", u.Username)
	}
	if u := mkUser(t, d, "E\u0301mile"); u.Username != "Émile" {
		t.Errorf("decomposed Émile stored as %q, want the precomposed Émile", u.Username)
	}
	if got := dump(t, d, `SELECT username, username_key FROM users`); !strings.Contains(got, `"Bob", "bob"`) ||
		!strings.Contains(got, `"Émile", "émile"`) {
		t.Errorf("users:\n%s", got)
	}
}

func TestDeleteUserForgetsTheThrottleOfItsKey(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	u := mkUser(t, d, "Straße")
	// The throttle is keyed by the folded name, whatever variant was typed at sign-in.
	attempt(t, d, auth.UsernameKey("STRASSE"), t0, lockFromTen)
	if err := d.DeleteUser(ctx, u.ID, event("user.deleted", t0)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, d, `SELECT COUNT(*) FROM login_throttle`); n != 0 {
		t.Errorf("%d throttle rows outlive the deleted user", n)
	}
}

// v5User inserts a user the way the version-5 schema stores one.
func v5User(tb testing.TB, path, username string) {
	tb.Helper()
	raw := rawOpen(tb, path)
	defer raw.Close()
	ts := FormatTime(t0)
	if _, err := raw.Exec(`INSERT INTO users (username, role, password_hash, created_at, updated_at)
		VALUES (?, 'staff', 'hash', ?, ?)`, username, ts, ts); err != nil {
		tb.Fatalf("insert %q: %v", username, err)
	}
}

func v5Throttle(tb testing.TB, path, name string, failures int, last time.Time, lockedUntil any) {
	tb.Helper()
	raw := rawOpen(tb, path)
	defer raw.Close()
	if _, err := raw.Exec(`INSERT INTO login_throttle (username, failures, last_failure, locked_until) VALUES (?, ?, ?, ?)`,
		name, failures, FormatTime(last), lockedUntil); err != nil {
		tb.Fatalf("insert throttle %q: %v", name, err)
	}
}

// Two accounts that were distinct under the old rule and are one under the new one cannot
// be merged by a migration: the upgrade stops, says which, and changes nothing.
func TestUpgradeRefusesUsernamesThatCollide(t *testing.T) {
	dbtest.SQLiteOnly(t)
	path := filepath.Join(t.TempDir(), "g.db")
	openAtVersion(t, path, 5)
	v5User(t, path, "amy")
	v5User(t, path, "émile")
	v5User(t, path, "Émile")
	v5Throttle(t, path, "émile", 3, t0, nil)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	d, err := Open(context.Background(), path)
	if err == nil {
		d.Close()
		t.Fatal("the upgrade accepted two users whose names are now the same")
	}
	if !errors.Is(err, ErrUsernamesCollide) {
		t.Errorf("err = %v, want ErrUsernamesCollide", err)
	}
	for _, want := range []string{`"émile"`, `"Émile"`, "delete", "previous"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not mention %s", err, want)
		}
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("refusal is not one line: %q", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the refused upgrade changed the database file")
	}
	current, _, err := PendingMigrations(context.Background(), path)
	if err != nil || current != 5 {
		t.Errorf("database at version %d (%v) after the refusal, want 5", current, err)
	}
	raw := rawOpen(t, path)
	var cols int
	raw.QueryRow(`SELECT COUNT(*) FROM pragma_table_info('users') WHERE name = 'username_key'`).Scan(&cols)
	if cols != 0 {
		t.Error("the refused upgrade left the username_key column behind")
	}
}

func TestUpgradeKeysUsernamesAndMergesThrottleRows(t *testing.T) {
	dbtest.SQLiteOnly(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "g.db")
	openAtVersion(t, path, 5)
	v5User(t, path, "Amy")
	v5User(t, path, "ＢＯＢ") // stored fullwidth by the older binary
	v5User(t, path, "Straße")
	early, late := t0.Add(time.Minute), t0.Add(time.Hour)
	// The older binary keyed the throttle by strings.ToLower of what was typed, so one
	// account could have several rows.
	v5Throttle(t, path, "amy", 2, t0, nil)
	v5Throttle(t, path, "ｂｏｂ", 5, t0, FormatTime(early))
	v5Throttle(t, path, "bob", 3, t0.Add(time.Second), FormatTime(late))
	v5Throttle(t, path, "straße", 1, t0, nil)
	v5Throttle(t, path, "GHOST", 4, t0, nil) // a name with no account is kept too

	d, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer d.Close()
	if got, want := dump(t, d, `SELECT username, username_key FROM users`),
		`[]interface {}{"Amy", "amy"}`+"\n"+`[]interface {}{"Straße", "strasse"}`+"\n"+`[]interface {}{"ＢＯＢ", "bob"}`; got != want {
		t.Errorf("users after the upgrade (names kept, keys filled):\n%s\nwant:\n%s", got, want)
	}
	for variant, want := range map[string]string{"bob": "ＢＯＢ", "ＢＯＢ": "ＢＯＢ", "AMY": "Amy", "STRASSE": "Straße"} {
		if u, err := d.UserByUsername(ctx, variant); err != nil || u.Username != want {
			t.Errorf("UserByUsername(%q) = %q, %v; want %q", variant, u.Username, err, want)
		}
	}
	want := strings.Join([]string{
		`[]interface {}{"amy", 2, "` + FormatTime(t0) + `", interface {}(nil)}`,
		`[]interface {}{"bob", 5, "` + FormatTime(t0.Add(time.Second)) + `", "` + FormatTime(late) + `"}`,
		`[]interface {}{"ghost", 4, "` + FormatTime(t0) + `", interface {}(nil)}`,
		`[]interface {}{"strasse", 1, "` + FormatTime(t0) + `", interface {}(nil)}`,
	}, "\n")
	if got := dump(t, d, `SELECT username, failures, last_failure, locked_until FROM login_throttle`); got != want {
		t.Errorf("throttle rows after the upgrade:\n%s\nwant (one per key, the larger count and the later lock):\n%s", got, want)
	}
	if n, until, err := d.ThrottleOf(ctx, auth.UsernameKey("Bob")); err != nil || n != 5 || !until.Equal(late) {
		t.Errorf("ThrottleOf(bob) = %d, %v, %v; want 5 locked until %v", n, until, err, late)
	}
	if _, err := d.CreateUser(ctx, NewUser{Username: "bob", Role: RoleStaff, PasswordHash: "x"}, event("user.created", t0)); !errors.Is(err, ErrDuplicate) {
		t.Errorf("creating bob beside ＢＯＢ after the upgrade = %v, want ErrDuplicate", err)
	}
	if _, err := d.write.Exec(`INSERT INTO users (username, role, password_hash, created_at, updated_at)
		VALUES ('carol', 'staff', 'x', '', '')`); err == nil {
		t.Error("a user row without a username key was accepted")
	}
}

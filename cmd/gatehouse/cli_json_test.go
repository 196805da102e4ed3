package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

func strPtr(s string) *string { return &s }

func TestUserListJSON(t *testing.T) {
	ctx := context.Background()
	path := newDatabase(t)
	store := openDB(t, path)
	// Times in a zone other than UTC prove the output is converted, not just formatted.
	berlin := time.FixedZone("CEST", 2*60*60)
	created := time.Date(2025, 3, 4, 10, 0, 0, 0, berlin)
	signedIn := time.Date(2025, 6, 7, 8, 9, 10, 0, berlin)

	alice, err := store.CreateUser(ctx, db.NewUser{Username: "alice", DisplayName: "Alice Adams", Role: db.RoleAdmin,
		PasswordHash: fakeHash}, db.Event{At: created})
	if err != nil {
		t.Fatal(err)
	}
	enroll(t, store, alice.ID)
	addPasskey(t, store, alice.ID, "Laptop")
	if _, err := store.StartSession(ctx, db.NewSession{TokenHash: auth.HashToken(auth.NewToken()), UserID: alice.ID,
		Stage: db.StageFull, ClientAddr: "127.0.0.1"}, db.Event{At: signedIn}); err != nil {
		t.Fatal(err)
	}
	bob, err := store.CreateUser(ctx, db.NewUser{Username: "bob", Role: db.RoleStaff, PasswordHash: fakeHash},
		db.Event{At: created})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.SetDisabled(ctx, bob.ID, true, db.Event{At: created}); err != nil {
		t.Fatal(err)
	}
	carol, err := store.CreateUser(ctx, db.NewUser{Username: "carol", Role: db.RoleStaff, PasswordHash: fakeHash},
		db.Event{At: created})
	if err != nil {
		t.Fatal(err)
	}
	addPasskey(t, store, carol.ID, "Key")

	out := mustRun(t, "", "user", "list", "--json", "--db", path, "--timezone", "America/New_York")
	var got []userJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not a JSON array of users: %v\n%s", err, out)
	}
	want := []userJSON{
		{Username: "alice", DisplayName: "Alice Adams", Role: "admin", MFA: []string{"totp", "passkey"}, Disabled: false,
			LastLogin: strPtr("2025-06-07T06:09:10Z"), Created: "2025-03-04T08:00:00Z"},
		{Username: "bob", DisplayName: "", Role: "staff", MFA: []string{}, Disabled: true,
			LastLogin: nil, Created: "2025-03-04T08:00:00Z"},
		{Username: "carol", DisplayName: "", Role: "staff", MFA: []string{"passkey"}, Disabled: false,
			LastLogin: nil, Created: "2025-03-04T08:00:00Z"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	t.Run("every field is present, and a user who never signed in has a null last_login", func(t *testing.T) {
		var raw []map[string]any
		if err := json.Unmarshal([]byte(out), &raw); err != nil {
			t.Fatal(err)
		}
		keys := []string{"username", "display_name", "role", "mfa", "disabled", "last_login", "created"}
		for _, row := range raw {
			if len(row) != len(keys) {
				t.Errorf("row %v has %d fields, want %d", row, len(row), len(keys))
			}
			for _, k := range keys {
				if _, ok := row[k]; !ok {
					t.Errorf("row %v lacks %q", row, k)
				}
			}
		}
		if v, ok := raw[1]["last_login"]; !ok || v != nil {
			t.Errorf("bob's last_login = %v (present %v), want null", v, ok)
		}
		if v, ok := raw[1]["mfa"].([]any); !ok || len(v) != 0 {
			t.Errorf("bob's mfa = %v, want []", raw[1]["mfa"])
		}
	})
	t.Run("no users is an empty array, not null", func(t *testing.T) {
		out := mustRun(t, "", "user", "list", "--json", "--db", newDatabase(t))
		if strings.TrimSpace(out) != "[]" {
			t.Errorf("stdout = %q, want []", out)
		}
	})
	t.Run("the table stays the default", func(t *testing.T) {
		out := mustRun(t, "", "user", "list", "--db", path)
		if !strings.HasPrefix(out, "USERNAME") || !strings.Contains(out, "disabled") {
			t.Errorf("table output:\n%s", out)
		}
		if json.Valid([]byte(out)) {
			t.Error("the default output is JSON")
		}
	})
}

func TestMFAStatusJSON(t *testing.T) {
	ctx := context.Background()
	path := newDatabase(t)
	store := openDB(t, path)
	owl := addUser(t, store, "owl", db.RoleStaff)
	addUser(t, store, "wren", db.RoleStaff)
	lark := addUser(t, store, "lark", db.RoleStaff)
	root := addUser(t, store, "root", db.RoleAdmin)
	enroll(t, store, owl.ID)
	addPasskey(t, store, lark.ID, "Key") // a passkey alone is enrolled
	ev := db.Event{At: time.Now(), Actor: "test"}
	night, err := store.CreateGroup(ctx, "night shift", ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.AddGroupMember(ctx, night.ID, root.ID, ev); err != nil {
		t.Fatal(err)
	}

	t.Run("no rules is an empty array, not null", func(t *testing.T) {
		out := mustRun(t, "", "mfa", "status", "--json", "--db", path)
		var raw map[string]any
		if err := json.Unmarshal([]byte(out), &raw); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if rules, ok := raw["rules"].([]any); !ok || len(rules) != 0 || raw["paused"] != false {
			t.Errorf("got %v, want paused false and rules []", raw)
		}
	})

	deadline := time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -5*60*60))
	if err := store.SetMFARule(ctx, db.MFARule{Role: db.RoleStaff, Mode: db.MFARequired, Deadline: deadline}, ev); err != nil {
		t.Fatal(err)
	}
	if err := store.SetMFARule(ctx, db.MFARule{GroupID: night.ID, Mode: db.MFAOptional}, ev); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "", "mfa", "pause", "--db", path)

	out := mustRun(t, "", "mfa", "status", "--json", "--db", path)
	var got mfaStatusJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	want := mfaStatusJSON{Paused: true, Rules: []mfaRuleJSON{
		{Scope: "role staff", Mode: "required", Deadline: strPtr("2025-01-02T08:04:05Z"), Members: 3, Enrolled: 2},
		{Scope: "group night shift", Mode: "optional", Deadline: nil, Members: 1, Enrolled: 0},
	}}
	// The store decides the order of rules; compare them as a set.
	if len(got.Rules) == 2 && got.Rules[0].Scope != want.Rules[0].Scope {
		got.Rules[0], got.Rules[1] = got.Rules[1], got.Rules[0]
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	var raw struct {
		Rules []map[string]any `json:"rules"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	for _, r := range raw.Rules {
		if v, ok := r["deadline"]; !ok || (r["mode"] != "required" && v != nil) {
			t.Errorf("rule %v: want a deadline key, null unless required", r)
		}
	}

	t.Run("the table stays the default", func(t *testing.T) {
		out := mustRun(t, "", "mfa", "status", "--db", path)
		if !strings.HasPrefix(out, "enforcement: PAUSED") || !strings.Contains(out, "COHORT") {
			t.Errorf("table output:\n%s", out)
		}
	})
}

// fakeTerminal answers each read with the next line, as a person typing would.
func fakeTerminal(lines ...string) func() ([]byte, error) {
	return func() ([]byte, error) {
		if len(lines) == 0 {
			return nil, io.EOF
		}
		l := lines[0]
		lines = lines[1:]
		return []byte(l), nil
	}
}

func TestPromptPassword(t *testing.T) {
	tests := []struct {
		name    string
		typed   []string
		want    string
		wantErr string
		prompts string
	}{
		{"the same password twice is accepted", []string{"correct horse battery", "correct horse battery"},
			"correct horse battery", "", "Password: \nAgain: \n"},
		{"spaces are kept as typed", []string{" spaced out ", " spaced out "}, " spaced out ", "", "Password: \nAgain: \n"},
		{"two different passwords are refused", []string{"correct horse battery", "correct horse batterY"},
			"", "differ", "Password: \nAgain: \n"},
		{"an empty password is refused without asking again", []string{"", ""}, "", "no password", "Password: \n"},
		{"a read failure is reported", nil, "", "reading the password", "Password: \n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prompts bytes.Buffer
			got, err := promptPassword(&prompts, fakeTerminal(tt.typed...))
			if tt.wantErr != "" {
				assertOneLine(t, err, tt.wantErr)
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("password = %q, want %q", got, tt.want)
			}
			if prompts.String() != tt.prompts {
				t.Errorf("prompts = %q, want %q", prompts.String(), tt.prompts)
			}
		})
	}
}

func TestPasswordWithoutFlagOffATerminal(t *testing.T) {
	t.Run("a pipe is not a terminal", func(t *testing.T) {
		if terminalReader(context.Background(), strings.NewReader("x\n")) != nil {
			t.Error("a strings.Reader was taken for a terminal")
		}
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if terminalReader(context.Background(), f) != nil {
			t.Errorf("%s was taken for a terminal", os.DevNull)
		}
	})
	path := newDatabase(t)
	store := openDB(t, path)
	addUser(t, store, "alice", db.RoleStaff)
	before := dumpTables(t, path)
	for _, args := range [][]string{
		{"user", "add", "--db", path, "--username", "bob"},
		{"user", "set-password", "--db", path, "alice"},
	} {
		t.Run(strings.Join(args[:2], " ")+" still needs --password-stdin", func(t *testing.T) {
			_, _, err := runIn(t, nil, "a perfectly fine passphrase\n", args...)
			if !errors.Is(err, errUsage) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			assertOneLine(t, err, "--password-stdin is required")
		})
	}
	if after := dumpTables(t, path); !reflect.DeepEqual(before, after) {
		t.Error("the database changed")
	}
}

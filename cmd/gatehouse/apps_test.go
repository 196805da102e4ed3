package main

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"gatehouse/db"
)

// TestAppCommands registers, lists and removes apps from the command line, with the rules
// of the admin form: the same host and audience checks, against the cookie domain that
// serve is given.
func TestAppCommands(t *testing.T) {
	ctx := context.Background()
	path := newDatabase(t)
	store := openDB(t, path)
	g, err := store.CreateGroup(ctx, "Night Shift", db.Event{At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	env := map[string]string{"GATEHOUSE_DB": path, "GATEHOUSE_BASE_URL": "https://portal.example.com",
		"GATEHOUSE_COOKIE_DOMAIN": "example.com"}
	run := func(args ...string) (string, error) {
		out, _, err := runIn(t, env, "", args...)
		return out, err
	}

	out, err := run("app", "add", "--audience", "role:admin", "--audience", "group:night shift", "--require-mfa", "Wiki.Example.com")
	if err != nil || !strings.Contains(out, "registered wiki.example.com") {
		t.Fatalf("app add: %q, %v", out, err)
	}
	if _, err := run("app", "add", "--must-read-first", "tools.example.com:8443"); err != nil {
		t.Fatalf("app add with the default audience: %v", err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"app", "add", "wiki.example.com"}, []string{"already"}},
		{[]string{"app", "add", "evil.example.org"}, []string{"evil.example.org", "does not reach", "--cookie-domain"}},
		{[]string{"app", "add", "https://x.example.com/"}, []string{"without a scheme"}},
		{[]string{"app", "add", "--audience", "group:nobody", "x.example.com"}, []string{"--audience", "group:nobody"}},
		{[]string{"app", "add", "--audience", "role:root", "x.example.com"}, []string{"--audience"}},
		{[]string{"app", "add"}, []string{"needs 1 argument"}},
		{[]string{"app", "remove", "nothing.example.com"}, []string{"no app is registered at nothing.example.com"}},
	} {
		_, err := run(tc.args...)
		assertOneLine(t, err, tc.want...)
	}
	// Without the cookie domain serve uses, the check refuses what serve would refuse.
	_, _, err = runIn(t, map[string]string{"GATEHOUSE_DB": path, "GATEHOUSE_BASE_URL": "https://portal.example.com"}, "",
		"app", "add", "other.example.com")
	assertOneLine(t, err, "does not reach", "--cookie-domain")

	out, err = run("app", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got []appJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for i := range got {
		got[i].Created, got[i].Updated = "", ""
	}
	want := []appJSON{
		{Host: "tools.example.com:8443", Audience: []string{"everyone"}, AudienceText: "everyone", MustReadFirst: true},
		{Host: "wiki.example.com", Audience: []string{"role:admin", db.ScopeValue("", g.ID)}, AudienceText: "role admin, group Night Shift",
			RequireMFA: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("app list --json:\n got %+v\nwant %+v", got, want)
	}
	out, err = run("app", "list")
	if err != nil || !strings.Contains(out, "wiki.example.com") || !strings.Contains(out, "role admin, group Night Shift") {
		t.Fatalf("app list: %q, %v", out, err)
	}

	out, err = run("app", "remove", "WIKI.example.com")
	if err != nil || !strings.Contains(out, "removed wiki.example.com") {
		t.Fatalf("app remove: %q, %v", out, err)
	}
	store = openDB(t, path)
	defer store.Close()
	if _, err := store.AppByHost(ctx, "wiki.example.com"); err != db.ErrNotFound {
		t.Fatalf("the app is still there: %v", err)
	}
	for kind, subject := range map[string]string{"app.added": "tools.example.com:8443", "app.removed": "wiki.example.com"} {
		evs, err := store.ListEvents(ctx, db.AuditFilter{Kind: kind})
		if err != nil || len(evs) == 0 || evs[0].Subject != subject || evs[0].Actor != "cli" {
			t.Errorf("%s audit: %+v, %v", kind, evs, err)
		}
	}
	out, err = run("app", "list", "--json")
	if err != nil || strings.TrimSpace(out) == "null" {
		t.Fatalf("app list --json after removal: %q, %v", out, err)
	}
}

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"gatehouse/db"
)

func TestMFAPauseResumeStatus(t *testing.T) {
	path := newDatabase(t)
	store := openDB(t, path)
	ctx := context.Background()
	addUser(t, store, "owl", db.RoleStaff)
	addUser(t, store, "root", db.RoleAdmin)
	if err := store.SetMFARule(ctx, db.MFARule{Role: db.RoleStaff, Mode: db.MFARequired, Deadline: time.Now().Add(-time.Hour)},
		db.Event{At: time.Now(), Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "", "mfa", "status", "--db", path)
	for _, want := range []string{"enforcement: enforcing", "role staff", "(in force)", "1         0         1"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	rulesBefore := dumpTables(t, path)["mfa_rules"]

	mustRun(t, "", "mfa", "pause", "--db", path)
	if p, _ := store.MFAPaused(ctx); !p {
		t.Fatal("not paused")
	}
	if out := mustRun(t, "", "mfa", "status", "--db", path); !strings.Contains(out, "PAUSED") {
		t.Fatalf("status while paused:\n%s", out)
	}
	mustRun(t, "", "mfa", "resume", "--db", path)
	if p, _ := store.MFAPaused(ctx); p {
		t.Fatal("still paused")
	}
	if after := dumpTables(t, path)["mfa_rules"]; strings.Join(after, "\n") != strings.Join(rulesBefore, "\n") {
		t.Fatal("pause and resume changed the rules")
	}
	evs, _ := store.ListEvents(ctx, db.AuditFilter{Actor: "cli"})
	kinds := map[string]bool{}
	for _, e := range evs {
		kinds[e.Kind] = true
	}
	if !kinds["mfa.enforcement_paused"] || !kinds["mfa.enforcement_resumed"] {
		t.Fatalf("audit kinds %v", kinds)
	}
	_, _, err := runCLI(t, "mfa", "pause", "extra", "--db", path)
	assertOneLine(t, err, "takes no arguments")
}

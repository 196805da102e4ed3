package main

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"gatehouse/db"
)

func TestGroupCommands(t *testing.T) {
	ctx := context.Background()
	path := newDatabase(t)
	store := openDB(t, path)
	sam := addUser(t, store, "sam", db.RoleStaff)
	addUser(t, store, "olga", db.RolePublisher)

	t.Run("group add creates a group, audited as the command line", func(t *testing.T) {
		if out := mustRun(t, "", "group", "add", "--db", path, "  Night Shift "); !strings.HasPrefix(out, "created group Night Shift (id ") {
			t.Errorf("stdout %q", out)
		}
		evs, err := store.ListEvents(ctx, db.AuditFilter{Kind: "group.created"})
		if err != nil || len(evs) != 1 || evs[0].Actor != "cli" || evs[0].Subject != "Night Shift" {
			t.Errorf("audit %+v, %v", evs, err)
		}
	})
	t.Run("a taken name is refused, in any case", func(t *testing.T) {
		_, _, err := runCLI(t, "group", "add", "--db", path, "night shift")
		assertOneLine(t, err, `"night shift" already exists as "Night Shift"`)
	})
	t.Run("the web's rule for names holds", func(t *testing.T) {
		for _, name := range []string{" ", strings.Repeat("n", 65), "night\tshift"} {
			_, _, err := runCLI(t, "group", "add", "--db", path, name)
			assertOneLine(t, err, "group name", "refused", "at most 64 characters")
		}
	})
	t.Run("add-member puts a user in, once", func(t *testing.T) {
		if out := mustRun(t, "", "group", "add-member", "--db", path, "night shift", "sam"); out != "added sam to Night Shift\n" {
			t.Errorf("stdout %q", out)
		}
		if out := mustRun(t, "", "group", "add-member", "--db", path, "Night Shift", "SAM"); out != "sam is already in Night Shift\n" {
			t.Errorf("stdout %q", out)
		}
		gs, err := store.GroupsOf(ctx, sam.ID)
		if err != nil || len(gs) != 1 || gs[0].Name != "Night Shift" {
			t.Fatalf("sam's groups %+v, %v", gs, err)
		}
		evs, err := store.ListEvents(ctx, db.AuditFilter{Kind: "group.member_added"})
		if err != nil || len(evs) != 1 || evs[0].Actor != "cli" || evs[0].Subject != "sam" || evs[0].Detail != "group Night Shift" {
			t.Errorf("audit %+v, %v: want one row, for the one change", evs, err)
		}
	})
	t.Run("members lists them", func(t *testing.T) {
		out := mustRun(t, "", "group", "members", "--db", path, "Night Shift")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "USERNAME") || !strings.HasPrefix(lines[1], "sam ") {
			t.Errorf("members:\n%s", out)
		}
	})
	t.Run("list --json", func(t *testing.T) {
		var got []groupJSON
		out := mustRun(t, "", "group", "list", "--json", "--db", path)
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		g, _ := store.GroupByName(ctx, "Night Shift")
		want := []groupJSON{{ID: g.ID, Name: "Night Shift", Members: 1, Created: jsonTime(g.CreatedAt)}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
		if out := mustRun(t, "", "group", "list", "--db", path); !strings.Contains(out, "Night Shift") {
			t.Errorf("table:\n%s", out)
		}
	})
	t.Run("remove-member takes a user out; one who is not in is an error", func(t *testing.T) {
		if out := mustRun(t, "", "group", "remove-member", "--db", path, "Night Shift", "sam"); out != "removed sam from Night Shift\n" {
			t.Errorf("stdout %q", out)
		}
		_, _, err := runCLI(t, "group", "remove-member", "--db", path, "Night Shift", "sam")
		assertOneLine(t, err, "sam is not in group Night Shift")
		evs, err := store.ListEvents(ctx, db.AuditFilter{Kind: "group.member_removed"})
		if err != nil || len(evs) != 1 || evs[0].Actor != "cli" || evs[0].Subject != "sam" {
			t.Errorf("audit %+v, %v", evs, err)
		}
	})
	t.Run("unknown groups and users are named", func(t *testing.T) {
		before := dumpTables(t, path)
		for _, args := range [][]string{
			{"group", "members", "day shift"},
			{"group", "add-member", "day shift", "sam"},
			{"group", "remove-member", "day shift", "sam"},
		} {
			_, _, err := runCLI(t, append(append(args[:2:2], "--db", path), args[2:]...)...)
			assertOneLine(t, err, `no group "day shift"`)
		}
		_, _, err := runCLI(t, "group", "add-member", "--db", path, "Night Shift", "nobody")
		assertOneLine(t, err, `no user "nobody"`)
		if after := dumpTables(t, path); !reflect.DeepEqual(before, after) {
			t.Error("a refused command changed the database")
		}
	})
}

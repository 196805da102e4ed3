package db

import (
	"context"
	"slices"
	"testing"
)

// TestGroupNamesStayWhole: a group name with a comma in it comes back as one name, in the
// admin list's names and in a notice's receipts, sorted among the user's other groups.
func TestGroupNamesStayWhole(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	amy, bob := mkUser(t, d, "amy"), mkUser(t, d, "bob")
	mkUser(t, d, "cat")
	opsEU, err := d.CreateGroup(ctx, "Ops, EU", Event{At: t0})
	if err != nil {
		t.Fatal(err)
	}
	night, err := d.CreateGroup(ctx, "night", Event{At: t0})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range [][2]int64{{opsEU.ID, amy.ID}, {opsEU.ID, bob.ID}, {night.ID, bob.ID}} {
		if err := d.AddGroupMember(ctx, m[0], m[1], Event{At: t0}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]string{"amy": {"Ops, EU"}, "bob": {"night", "Ops, EU"}, "cat": nil}
	names, err := d.GroupNamesByUser(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || !slices.Equal(names[amy.ID], want["amy"]) || !slices.Equal(names[bob.ID], want["bob"]) {
		t.Errorf("GroupNamesByUser = %v", names)
	}
	n, err := d.CreateNotice(ctx, NoticeInput{Title: "t", Body: "b", Kind: NoticeNormal, Severity: SeverityInfo,
		StartsAt: t0, Audience: Audience{Everyone: true}}, amy, Event{At: t0})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := d.NoticeReceipts(ctx, n, t0)
	if err != nil || len(rs) != 3 {
		t.Fatalf("NoticeReceipts: %d, %v", len(rs), err)
	}
	for _, r := range rs {
		if !slices.Equal(r.Groups, want[r.User.Username]) {
			t.Errorf("receipt of %s: groups %q, want %q", r.User.Username, r.Groups, want[r.User.Username])
		}
	}
}

// TestGroupByNameMatchesAsNamesAreUnique: a name is found whatever the case of its ASCII
// letters, which is how the unique index compares names, so at most one group matches.
func TestGroupByNameMatchesAsNamesAreUnique(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	night, err := d.CreateGroup(ctx, "Night Shift", Event{At: t0})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Night Shift", "night shift", "NIGHT SHIFT"} {
		g, err := d.GroupByName(ctx, name)
		if err != nil || g.ID != night.ID {
			t.Errorf("GroupByName(%q) = %+v, %v; want group %d", name, g, err, night.ID)
		}
	}
	if _, err := d.GroupByName(ctx, "night"); err != ErrNotFound {
		t.Errorf("GroupByName of a prefix: %v, want ErrNotFound", err)
	}
}

package db

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestScopeCounts: one read counts each role's and group's active members and the enrolled
// among them, as counting the users one by one would; the dry run's names are the others.
func TestScopeCounts(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	ops, err := d.CreateGroup(ctx, "ops", Event{At: t0})
	if err != nil {
		t.Fatal(err)
	}
	empty, err := d.CreateGroup(ctx, "empty", Event{At: t0})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct {
		name, role       string
		inOps, mfa, gone bool
	}{
		{"amy", RoleStaff, true, true, false},
		{"bob", RoleStaff, true, false, false},
		{"cat", RoleStaff, false, false, false},
		{"dan", RoleStaff, true, true, true}, // disabled: counted nowhere
		{"eve", RolePublisher, true, true, false},
		{"fay", RoleAdmin, false, false, true},
	} {
		nu, err := d.CreateUser(ctx, NewUser{Username: u.name, Role: u.role, PasswordHash: "x"}, Event{At: t0})
		if err != nil {
			t.Fatal(err)
		}
		if u.inOps {
			if err := d.AddGroupMember(ctx, ops.ID, nu.ID, Event{At: t0}); err != nil {
				t.Fatal(err)
			}
		}
		if u.mfa {
			mkFactor(t, d, nu, mkSession(t, d, nu.ID, StageFull, t0).ID)
		}
		if u.gone {
			if _, err := d.SetDisabled(ctx, nu.ID, true, Event{At: t0}); err != nil {
				t.Fatal(err)
			}
		}
	}
	counts, err := d.ScopeCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for scope, want := range map[Scope]ScopeCount{
		{Role: RoleStaff}:     {Members: 3, Enrolled: 1},
		{Role: RolePublisher}: {Members: 1, Enrolled: 1},
		{Role: RoleAdmin}:     {},
		{GroupID: ops.ID}:     {Members: 3, Enrolled: 2},
		{GroupID: empty.ID}:   {},
	} {
		if got := counts[scope]; got != want {
			t.Errorf("%+v: %+v, want %+v", scope, got, want)
		}
	}
	for scope, want := range map[Scope][]string{
		{Role: RoleStaff}:     {"bob", "cat"},
		{Role: RolePublisher}: nil,
		{GroupID: ops.ID}:     {"bob"},
	} {
		if got, err := d.UnenrolledInScope(ctx, scope); err != nil || !slices.Equal(got, want) {
			t.Errorf("UnenrolledInScope(%+v) = %q, %v; want %q", scope, got, err, want)
		}
	}
	// A bulk reset reaches disabled members too.
	if n, err := d.GroupFactorCount(ctx, ops.ID); err != nil || n != 3 {
		t.Errorf("GroupFactorCount(ops) = %d, %v; want 3", n, err)
	}
}

// TestStrictestRule: a required rule beats an optional one, the earliest deadline among
// required ones wins, and a paused rollout enforces nothing.
func TestStrictestRule(t *testing.T) {
	early, late := t0.Add(time.Hour), t0.Add(48*time.Hour)
	rules := []MFARule{
		{Role: RoleStaff, Mode: MFAOptional},
		{GroupName: "night", GroupID: 2, Mode: MFARequired, Deadline: late},
		{GroupName: "ops", GroupID: 1, Mode: MFARequired, Deadline: early},
	}
	r := Strictest(rules)
	if r.Mode != MFARequired || !r.Deadline.Equal(early) || r.Source != "group ops" {
		t.Errorf("Strictest = %+v", r)
	}
	if r.EnforcedAt(t0) || !r.EnforcedAt(early) {
		t.Errorf("EnforcedAt: before the deadline %v, at it %v", r.EnforcedAt(t0), r.EnforcedAt(early))
	}
	r.Paused = true
	if r.EnforcedAt(late) {
		t.Error("a paused rule is enforced")
	}
	if r := Strictest(rules[:1]); r.Mode != MFAOptional || r.Required() {
		t.Errorf("an optional rule alone: %+v", r)
	}
	if r := Strictest(nil); r.Mode != MFAOff {
		t.Errorf("no rules: %+v", r)
	}
}

// TestEffectiveRuleFor reads a user's rules and the pause switch.
func TestEffectiveRuleFor(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	amy := mkUser(t, d, "amy")
	if r, err := d.EffectiveRuleFor(ctx, amy); err != nil || r.Mode != MFAOff {
		t.Fatalf("no rules: %+v, %v", r, err)
	}
	if err := d.SetMFARule(ctx, MFARule{Role: RoleStaff, Mode: MFARequired, Deadline: t0}, Event{At: t0}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetMFAPaused(ctx, true, Event{At: t0}); err != nil {
		t.Fatal(err)
	}
	r, err := d.EffectiveRuleFor(ctx, amy)
	if err != nil || !r.Required() || !r.Paused || r.EnforcedAt(t0) || r.Source != "role staff" {
		t.Errorf("required but paused: %+v, %v", r, err)
	}
}

package db

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestAudienceRuleAgreesInGoAndSQL: on the same users and notices, Reaches (the banners),
// the SQL rule on a stored audience (the notices page, acknowledging, the must-read count)
// and the SQL rule on an audience being written (the reach preview) pick the same users.
func TestAudienceRuleAgreesInGoAndSQL(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	ops, err := d.CreateGroup(ctx, "ops", event("group.created", t0))
	if err != nil {
		t.Fatal(err)
	}
	night, err := d.CreateGroup(ctx, "night", event("group.created", t0))
	if err != nil {
		t.Fatal(err)
	}
	groupsOf := map[int64][]int64{}
	var users []User
	for _, u := range []struct {
		name, role string
		groups     []int64
	}{
		{"staff-alone", RoleStaff, nil},
		{"staff-ops", RoleStaff, []int64{ops.ID}},
		{"publisher-night", RolePublisher, []int64{night.ID}},
		{"publisher-alone", RolePublisher, nil},
		{"admin-both", RoleAdmin, []int64{ops.ID, night.ID}},
	} {
		nu, err := d.CreateUser(ctx, NewUser{Username: u.name, Role: u.role, PasswordHash: "x"}, Event{At: t0})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range u.groups {
			if err := d.AddGroupMember(ctx, g, nu.ID, Event{At: t0}); err != nil {
				t.Fatal(err)
			}
		}
		groupsOf[nu.ID] = u.groups
		users = append(users, nu)
	}

	for name, a := range map[string]Audience{
		"everyone":          {Everyone: true},
		"one role":          {Roles: []string{RoleStaff}},
		"two roles":         {Roles: []string{RolePublisher, RoleAdmin}},
		"one group":         {GroupIDs: []int64{ops.ID}},
		"two groups":        {GroupIDs: []int64{ops.ID, night.ID}},
		"a role and groups": {Roles: []string{RoleStaff}, GroupIDs: []int64{night.ID}},
		"the admin role":    {Roles: []string{RoleAdmin}},
		"nobody":            {},
	} {
		t.Run(name, func(t *testing.T) {
			n, err := d.CreateNotice(ctx, NoticeInput{Title: name, Body: "b", Kind: NoticeNormal, Severity: SeverityInfo,
				StartsAt: t0.Add(-time.Hour), Audience: a}, users[0], Event{At: t0})
			if err != nil {
				t.Fatal(err)
			}
			live, err := d.LiveNotices(ctx, t0)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(live, func(l Notice) bool { return l.ID == n.ID })
			if i < 0 {
				t.Fatal("the notice is not live")
			}
			stored := live[i].Audience
			var goRule []int64
			for _, u := range users {
				if stored.Reaches(u.Role, groupsOf[u.ID]) {
					goRule = append(goRule, u.ID)
				}
				// The stored audience with the user as parameters, as the notices page reads it.
				_, err := d.NoticeFor(ctx, n.ID, u, t0)
				if inGo := a.Reaches(u.Role, groupsOf[u.ID]); inGo != (err == nil) || (err != nil && !errors.Is(err, ErrNotFound)) {
					t.Errorf("%s: Reaches %v, NoticeFor: %v", u.Username, inGo, err)
				}
			}
			storedRule := column[int64](t, d, `SELECT u.id FROM users u JOIN notices n ON n.id = ? WHERE `+
				inNoticeAudience("u.role", "u.id")+` ORDER BY u.id`, n.ID)
			cond, args := inAudience(a)
			writtenRule := column[int64](t, d, `SELECT u.id FROM users u WHERE `+cond+` ORDER BY u.id`, args...)
			if !slices.Equal(goRule, storedRule) || !slices.Equal(goRule, writtenRule) {
				t.Errorf("Go picks %v, SQL on the stored audience %v, SQL on the written one %v", goRule, storedRule, writtenRule)
			}
			if size, err := d.AudienceSize(ctx, a); err != nil || size != len(goRule) {
				t.Errorf("AudienceSize = %d, %v; want %d", size, err, len(goRule))
			}
		})
	}
}

// TestParseAudience: form values become an audience and back; an unknown role or group
// refuses the lot.
func TestParseAudience(t *testing.T) {
	groups := map[int64]string{4: "ops", 9: "night"}
	for _, tc := range []struct {
		values []string
		want   Audience
		ok     bool
	}{
		{[]string{"everyone"}, Audience{Everyone: true}, true},
		{[]string{"everyone", "role:staff", "group:4"}, Audience{Everyone: true}, true},
		{[]string{"role:staff", "group:4", "role:staff", "group:9", "group:4"}, Audience{Roles: []string{"staff"}, GroupIDs: []int64{4, 9}}, true},
		{nil, Audience{}, true},
		{[]string{"role:root"}, Audience{}, false},
		{[]string{"group:5"}, Audience{}, false},
		{[]string{"group:0"}, Audience{}, false},
		{[]string{"group:x"}, Audience{}, false},
		{[]string{"staff"}, Audience{}, false},
		{[]string{"role:staff", ""}, Audience{}, false},
	} {
		got, ok := ParseAudience(tc.values, groups)
		if ok != tc.ok || !slices.Equal(got.Roles, tc.want.Roles) || !slices.Equal(got.GroupIDs, tc.want.GroupIDs) ||
			got.Everyone != tc.want.Everyone {
			t.Errorf("ParseAudience(%q) = %+v, %v; want %+v, %v", tc.values, got, ok, tc.want, tc.ok)
		}
		if !ok {
			continue
		}
		back, ok := ParseAudience(AudienceValues(got), groups)
		if !ok || DescribeAudience(back, groups) != DescribeAudience(got, groups) {
			t.Errorf("AudienceValues(%+v) reads back as %+v, %v", got, back, ok)
		}
	}
	if got := DescribeAudience(Audience{Roles: []string{"staff"}, GroupIDs: []int64{9}}, groups); got != "role staff, group night" {
		t.Errorf("DescribeAudience = %q", got)
	}
}

// TestParseScope: a role or a group id, nothing else.
func TestParseScope(t *testing.T) {
	for v, want := range map[string]struct {
		role  string
		group int64
		ok    bool
	}{
		"role:admin": {"admin", 0, true}, "group:12": {"", 12, true},
		"role:root": {}, "group:-1": {}, "group:0": {}, "group:": {}, "role": {}, "everyone": {}, "": {},
		"group:99999999999999999999": {},
	} {
		role, group, ok := ParseScope(v)
		if role != want.role || group != want.group || ok != want.ok {
			t.Errorf("ParseScope(%q) = %q, %d, %v; want %q, %d, %v", v, role, group, ok, want.role, want.group, want.ok)
		}
		if ok && ScopeValue(role, group) != v {
			t.Errorf("ScopeValue(%q, %d) = %q, want %q", role, group, ScopeValue(role, group), v)
		}
	}
}

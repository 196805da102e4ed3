package db

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestParseAppHost(t *testing.T) {
	for _, tc := range []struct{ in, want, problem string }{
		{"wiki.example.com", "wiki.example.com", ""},
		{"  Wiki.EXAMPLE.com.  ", "wiki.example.com", ""},
		{"tools.example.com:8443", "tools.example.com:8443", ""},
		{"tools.example.com:443", "tools.example.com", ""},
		{"tools.example.com:80", "tools.example.com", ""},
		{"localhost:3000", "localhost:3000", ""},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", ""},
		{"a-b.c-d.example", "a-b.c-d.example", ""},
		{"", "", "Enter the app's host name"},
		{"https://wiki.example.com", "", "without a scheme"},
		{"wiki.example.com/path", "", "without a scheme"},
		{"user@wiki.example.com", "", "without a scheme"},
		{"[::1]:8080", "", "without a scheme"},
		{"wiki.example.com:0", "", "The port must be"},
		{"wiki.example.com:65536", "", "The port must be"},
		{"wiki.example.com:08080", "", "The port must be"},
		{"wiki.example.com:", "", "The port must be"},
		{"bücher.example", "", "ASCII form"},
		{"-wiki.example.com", "", "not a host name"},
		{"wiki..example.com", "", "not a host name"},
		{"wiki_1.example.com", "", "not a host name"},
		{".", "", "not a host name"},
		{strings.Repeat("a", 64) + ".example.com", "", "not a host name"},
		{strings.Repeat("abcdefgh.", 32) + "com", "", "not a host name"},
	} {
		got, err := ParseAppHost(tc.in)
		var he *HostError
		switch {
		case tc.problem == "" && (err != nil || got != tc.want):
			t.Errorf("ParseAppHost(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		case tc.problem != "" && (!errors.As(err, &he) || !strings.Contains(he.Reason, tc.problem)):
			t.Errorf("ParseAppHost(%q) = %q, %v; want a refusal saying %q", tc.in, got, err, tc.problem)
		}
	}
}

func TestCheckAppHostRefusesHostsTheCookieMisses(t *testing.T) {
	for _, tc := range []struct {
		reach CookieReach
		host  string
		ok    bool
	}{
		{CookieReach{PortalHost: "portal.example.com"}, "portal.example.com:8443", true},
		{CookieReach{PortalHost: "portal.example.com"}, "portal.example.com", true},
		{CookieReach{PortalHost: "portal.example.com"}, "wiki.example.com", false},
		{CookieReach{PortalHost: "portal.example.com", Domain: "example.com"}, "wiki.example.com", true},
		{CookieReach{PortalHost: "portal.example.com", Domain: "example.com"}, "example.com", true},
		{CookieReach{PortalHost: "portal.example.com", Domain: "example.com"}, "a.b.example.com:9000", true},
		{CookieReach{PortalHost: "portal.example.com", Domain: "example.com"}, "badexample.com", false},
		{CookieReach{PortalHost: "portal.example.com", Domain: "example.com"}, "example.com.evil.org", false},
		{CookieReach{PortalHost: "portal.example.com", Domain: "portal.example.com"}, "wiki.example.com", false},
	} {
		_, err := CheckAppHost(tc.host, tc.reach)
		if (err == nil) != tc.ok {
			t.Errorf("CheckAppHost(%q, %+v) = %v, want ok %v", tc.host, tc.reach, err, tc.ok)
		}
		var he *HostError
		if err != nil && (!errors.As(err, &he) || !strings.Contains(he.Reason, "--cookie-domain")) {
			t.Errorf("CheckAppHost(%q): refusal %v does not say what to change", tc.host, err)
		}
	}
}

func TestAppsStore(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	amy := mkUser(t, d, "amy")
	bob := mkUser(t, d, "bob")
	ops, err := d.CreateGroup(ctx, "ops", event("group.created", t0))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddGroupMember(ctx, ops.ID, amy.ID, event("group.member_added", t0)); err != nil {
		t.Fatal(err)
	}
	mkFactor(t, d, amy, mkSession(t, d, amy.ID, StageFull, t0).ID)

	app, err := d.CreateApp(ctx, AppInput{Host: "Wiki.Example.com", RequireMFA: true,
		Audience: Audience{Roles: []string{RoleAdmin}, GroupIDs: []int64{ops.ID}}}, event("app.added", t0))
	if err != nil {
		t.Fatal(err)
	}
	if app.Host != "wiki.example.com" || app.ID == 0 {
		t.Fatalf("created %+v", app)
	}

	t.Run("a host is registered once, however it is spelt", func(t *testing.T) {
		for _, h := range []string{"wiki.example.com", "WIKI.example.com.", "wiki.example.com:443"} {
			if _, err := d.CreateApp(ctx, AppInput{Host: h, Audience: Audience{Everyone: true}}, Event{At: t0}); !errors.Is(err, ErrDuplicate) {
				t.Errorf("second %q: %v, want ErrDuplicate", h, err)
			}
		}
	})
	t.Run("the store refuses a host that is not one", func(t *testing.T) {
		var he *HostError
		if _, err := d.CreateApp(ctx, AppInput{Host: "https://x/", Audience: Audience{Everyone: true}}, Event{At: t0}); !errors.As(err, &he) {
			t.Fatalf("CreateApp with a URL: %v", err)
		}
	})
	t.Run("read by host in one piece", func(t *testing.T) {
		got, err := d.AppByHost(ctx, "wiki.example.com")
		if err != nil {
			t.Fatal(err)
		}
		if !got.RequireMFA || got.MustReadFirst || !got.Audience.Reaches(RoleStaff, []int64{ops.ID}) ||
			!got.Audience.Reaches(RoleAdmin, nil) || got.Audience.Reaches(RoleStaff, nil) {
			t.Fatalf("read back %+v", got)
		}
		if _, err := d.AppByHost(ctx, "other.example.com"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown host: %v", err)
		}
	})
	t.Run("reach counts active users and those with a factor", func(t *testing.T) {
		r, err := d.ReachOf(ctx, Audience{Everyone: true})
		if err != nil || r.Users != 2 || r.WithFactor != 1 {
			t.Fatalf("everyone: %+v, %v", r, err)
		}
		if _, err := d.SetDisabled(ctx, bob.ID, true, Event{At: t0}); err != nil {
			t.Fatal(err)
		}
		reaches, err := d.AppReaches(ctx)
		if err != nil || reaches[app.ID] != (AppReach{Users: 1, WithFactor: 1}) {
			t.Fatalf("stored audience: %+v, %v", reaches, err)
		}
	})
	t.Run("update", func(t *testing.T) {
		got, err := d.UpdateApp(ctx, app.ID, AppInput{Host: "tools.example.com:8443", MustReadFirst: true,
			Audience: Audience{Everyone: true}}, event("app.changed", t0))
		if err != nil {
			t.Fatal(err)
		}
		if got.Host != "tools.example.com:8443" || got.RequireMFA || !got.MustReadFirst || !got.Audience.Everyone ||
			len(got.Audience.Roles)+len(got.Audience.GroupIDs) != 0 {
			t.Fatalf("updated %+v", got)
		}
		if _, err := d.AppByHost(ctx, "wiki.example.com"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the old host still answers: %v", err)
		}
		if _, err := d.UpdateApp(ctx, 999, AppInput{Host: "x.example.com", Audience: Audience{Everyone: true}}, Event{At: t0}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown id: %v", err)
		}
		other, _ := d.CreateApp(ctx, AppInput{Host: "other.example.com", Audience: Audience{Everyone: true}}, Event{At: t0})
		if _, err := d.UpdateApp(ctx, other.ID, AppInput{Host: "tools.example.com:8443", Audience: Audience{Everyone: true}}, Event{At: t0}); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("taking another app's host: %v", err)
		}
	})
	t.Run("an audience naming a deleted group is refused, and nothing is written", func(t *testing.T) {
		_, err := d.CreateApp(ctx, AppInput{Host: "gone.example.com", Audience: Audience{GroupIDs: []int64{999}}}, event("app.added", t0))
		if !errors.Is(err, ErrAudienceGone) || !errors.Is(err, ErrNotFound) {
			t.Fatalf("CreateApp: %v", err)
		}
		if _, err := d.AppByHost(ctx, "gone.example.com"); !errors.Is(err, ErrNotFound) {
			t.Fatal("the app was stored without its audience")
		}
	})
	t.Run("deleting a group leaves an app it alone let in to nobody", func(t *testing.T) {
		night, _ := d.CreateGroup(ctx, "night", Event{At: t0})
		a, err := d.CreateApp(ctx, AppInput{Host: "night.example.com", Audience: Audience{GroupIDs: []int64{night.ID}}}, Event{At: t0})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.DeleteGroup(ctx, night.ID, Event{At: t0}); err != nil {
			t.Fatal(err)
		}
		got, err := d.AppByHost(ctx, a.Host)
		if err != nil || !got.Audience.Empty() {
			t.Fatalf("after the group went: %+v, %v", got, err)
		}
	})
	t.Run("list and delete, audited", func(t *testing.T) {
		apps, err := d.ListApps(ctx)
		if err != nil || len(apps) != 3 || apps[0].Host != "night.example.com" || !apps[2].Audience.Everyone {
			t.Fatalf("list %+v, %v", apps, err)
		}
		if err := d.DeleteApp(ctx, app.ID, event("app.removed", t0)); err != nil {
			t.Fatal(err)
		}
		if err := d.DeleteApp(ctx, app.ID, event("app.removed", t0)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleting twice: %v", err)
		}
		for kind, subject := range map[string]string{"app.added": "wiki.example.com", "app.changed": "tools.example.com:8443",
			"app.removed": "tools.example.com:8443"} {
			evs, _ := d.ListEvents(ctx, AuditFilter{Kind: kind})
			if len(evs) != 1 || evs[0].Subject != subject {
				t.Errorf("%s: %+v", kind, evs)
			}
		}
		var rows int
		if err := d.read.QueryRow(`SELECT COUNT(*) FROM app_audience WHERE app_id = ?`, app.ID).Scan(&rows); err != nil || rows != 0 {
			t.Errorf("the removed app's audience is left: %d, %v", rows, err)
		}
	})
	t.Run("group names and ids of a user", func(t *testing.T) {
		names, err := d.GroupNamesOf(ctx, amy.ID)
		if err != nil || len(names) != 1 || names[0] != "ops" {
			t.Fatalf("names %q, %v", names, err)
		}
		ids, err := d.GroupIDsOf(ctx, amy.ID)
		if err != nil || len(ids) != 1 || ids[0] != ops.ID {
			t.Fatalf("ids %v, %v", ids, err)
		}
	})
}

func TestSessionKeepsItsCookieScope(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	u := mkUser(t, d, "amy")
	hash := newTokenHash(t)
	partial, err := d.StartSession(ctx, NewSession{TokenHash: newTokenHash(t), UserID: u.ID, Stage: StageMFA,
		CookieScope: "example.com"}, Event{At: t0})
	if err != nil || partial.CookieScope != "example.com" {
		t.Fatalf("start: %+v, %v", partial, err)
	}
	if _, err := d.PromoteSession(ctx, partial.ID, NewSession{TokenHash: hash, UserID: u.ID, CookieScope: "example.com"}, Event{At: t0}); err != nil {
		t.Fatal(err)
	}
	s, _, err := d.SessionByTokenHash(ctx, hash)
	if err != nil || s.CookieScope != "example.com" {
		t.Fatalf("read back %+v, %v", s, err)
	}
	list, err := d.ListSessions(ctx, u.ID)
	if err != nil || len(list) != 1 || list[0].CookieScope != "example.com" {
		t.Fatalf("list %+v, %v", list, err)
	}
	old := mkSession(t, d, u.ID, StageFull, t0)
	if old.CookieScope != "" {
		t.Fatalf("a session without a scope reads as %q", old.CookieScope)
	}
}

package handlers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gatehouse/db"
)

// appsWorld is the forward-auth portal with an admin signed in, a staff user and a group.
type appsWorld struct {
	a     *testApp
	admin *browser
	ops   int64
}

func newAppsWorld(t *testing.T) appsWorld {
	t.Helper()
	a := newForwardApp(t)
	ctx := context.Background()
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	amy := a.createUser("amy", db.RoleStaff, "correct horse battery")
	a.createUser("bob", db.RoleStaff, "correct horse battery")
	g, err := a.db.CreateGroup(ctx, "ops", db.Event{At: a.clock()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.db.AddGroupMember(ctx, g.ID, amy.ID, db.Event{At: a.clock()}); err != nil {
		t.Fatal(err)
	}
	admin := a.browser()
	admin.signIn("root", "correct horse battery", "")
	return appsWorld{a: a, admin: admin, ops: g.ID}
}

var appRowRe = regexp.MustCompile(`<tr data-app-id="(\d+)">`)

func TestAdminRegistersAndEditsApps(t *testing.T) {
	w := newAppsWorld(t)
	a, admin := w.a, w.admin
	ctx := context.Background()
	group := db.ScopeValue("", w.ops)

	resp := admin.get(portalBase + "/admin/apps")
	wantStatus(t, resp, http.StatusOK)
	if !strings.Contains(admin.lastBody, `<a href="/admin/apps">Apps</a>`) {
		t.Error("the admin navigation has no Apps")
	}
	if !strings.Contains(admin.lastBody, `value="everyone" checked`) {
		t.Error("a new app is not for everyone by default")
	}

	t.Run("the preview counts who may pass and registers nothing", func(t *testing.T) {
		for _, tc := range []struct {
			form url.Values
			want string
		}{
			{url.Values{"host": {"Wiki.Example.com"}, "audience": {"everyone"}}, "3 users may pass."},
			{url.Values{"host": {"wiki.example.com"}, "audience": {group}}, "1 user may pass."},
			{url.Values{"host": {"wiki.example.com"}, "audience": {"role:admin"}, "require_mfa": {"1"}},
				"1 user in the audience; 0 of them have two-step verification and may pass."},
		} {
			admin.get(portalBase + "/admin/apps")
			tc.form.Set("preview", "1")
			resp := admin.post("/admin/apps", tc.form)
			wantStatus(t, resp, http.StatusOK)
			if !strings.Contains(admin.lastBody, tc.want) {
				t.Errorf("%v: the preview lacks %q", tc.form, tc.want)
			}
		}
		if apps, _ := a.db.ListApps(ctx); len(apps) != 0 {
			t.Fatalf("a preview registered %v", apps)
		}
	})

	admin.get(portalBase + "/admin/apps")
	resp = admin.post("/admin/apps", url.Values{"host": {" Wiki.Example.COM. "}, "audience": {group, "role:admin"},
		"must_read_first": {"1"}})
	wantRedirect(t, resp, "/admin/apps?msg=app-added")
	app, err := a.db.AppByHost(ctx, "wiki.example.com")
	if err != nil {
		t.Fatalf("the app was not stored under its lower-case host: %v", err)
	}
	if !app.MustReadFirst || app.RequireMFA || !app.Audience.Reaches(db.RoleStaff, []int64{w.ops}) || app.Audience.Reaches(db.RoleStaff, nil) {
		t.Fatalf("stored %+v", app)
	}
	evs, _ := a.db.ListEvents(ctx, db.AuditFilter{Kind: "app.added"})
	if len(evs) != 1 || evs[0].Actor != "root" || evs[0].Subject != "wiki.example.com" || !strings.Contains(evs[0].Detail, "group ops") ||
		!strings.Contains(evs[0].Detail, "role admin") || evs[0].RequestID == "" {
		t.Fatalf("audit %+v", evs)
	}
	admin.get(portalBase + "/admin/apps")
	if m := appRowRe.FindStringSubmatch(admin.lastBody); m == nil || m[1] != strconv.FormatInt(app.ID, 10) {
		t.Fatalf("the list lacks the app: %s", admin.lastBody)
	}

	t.Run("the form refuses what it cannot store", func(t *testing.T) {
		for _, tc := range []struct {
			form url.Values
			want string
		}{
			{url.Values{"host": {"WIKI.example.com"}, "audience": {"everyone"}}, "registered at that host already"},
			{url.Values{"host": {"https://x.example.com/path"}, "audience": {"everyone"}}, "without a scheme"},
			{url.Values{"host": {"x.example.com:99999"}, "audience": {"everyone"}}, "The port must be"},
			{url.Values{"host": {"exämple.example.com"}, "audience": {"everyone"}}, "ASCII form"},
			{url.Values{"host": {"evil.example.org"}, "audience": {"everyone"}}, "does not reach evil.example.org"},
			{url.Values{"host": {"x.example.com"}}, "Choose who may pass."},
			{url.Values{"host": {"x.example.com"}, "audience": {"group:999"}}, "does not exist any more"},
			{url.Values{"host": {"x.example.com"}, "audience": {"role:root"}}, "does not exist any more"},
		} {
			admin.get(portalBase + "/admin/apps")
			resp := admin.post("/admin/apps", tc.form)
			wantStatus(t, resp, http.StatusUnprocessableEntity)
			if !strings.Contains(admin.lastBody, tc.want) || !strings.Contains(admin.lastBody, `role="alert"`) {
				t.Errorf("%v: the page lacks %q", tc.form, tc.want)
			}
		}
	})

	id := strconv.FormatInt(app.ID, 10)
	t.Run("edit", func(t *testing.T) {
		resp := admin.get(portalBase + "/admin/apps/" + id)
		wantStatus(t, resp, http.StatusOK)
		if !strings.Contains(admin.lastBody, `value="`+group+`" checked`) || !strings.Contains(admin.lastBody, `name="must_read_first" value="1" checked`) {
			t.Fatalf("the edit form is not filled: %s", admin.lastBody)
		}
		resp = admin.post("/admin/apps/"+id, url.Values{"host": {"tools.example.com"}, "audience": {"everyone"}, "require_mfa": {"1"}})
		wantRedirect(t, resp, "/admin/apps?msg=app-updated")
		got, _ := a.db.AppByID(ctx, app.ID)
		if got.Host != "tools.example.com" || !got.RequireMFA || got.MustReadFirst || !got.Audience.Everyone {
			t.Fatalf("after the edit %+v", got)
		}
		evs, _ := a.db.ListEvents(ctx, db.AuditFilter{Kind: "app.changed"})
		if len(evs) != 1 || !strings.Contains(evs[0].Detail, "wiki.example.com → tools.example.com") {
			t.Fatalf("audit %+v", evs)
		}
		wantStatus(t, admin.get(portalBase+"/admin/apps/999"), http.StatusNotFound)
		wantStatus(t, admin.get(portalBase+"/admin/apps/x"), http.StatusNotFound)
	})

	t.Run("remove", func(t *testing.T) {
		admin.get(portalBase + "/admin/apps/" + id)
		wantRedirect(t, admin.post("/admin/apps/"+id+"/delete", nil), "/admin/apps?msg=app-removed")
		if _, err := a.db.AppByID(ctx, app.ID); err != db.ErrNotFound {
			t.Fatalf("the app is still there: %v", err)
		}
		evs, _ := a.db.ListEvents(ctx, db.AuditFilter{Kind: "app.removed"})
		if len(evs) != 1 || evs[0].Subject != "tools.example.com" || evs[0].Actor != "root" {
			t.Fatalf("audit %+v", evs)
		}
		admin.get(portalBase + "/admin/apps")
		wantStatus(t, admin.post("/admin/apps/"+id+"/delete", nil), http.StatusNotFound)
	})
}

func TestAppsPagesAreForAdminsOnly(t *testing.T) {
	w := newAppsWorld(t)
	a := w.a
	a.addApp(t, db.AppInput{Host: appHost})
	app, _ := a.db.AppByHost(context.Background(), appHost)
	id := strconv.FormatInt(app.ID, 10)
	staff := a.browser()
	staff.signIn("amy", "correct horse battery", "")
	for _, path := range []string{"/admin/apps", "/admin/apps/" + id} {
		wantStatus(t, staff.get(portalBase+path), http.StatusForbidden)
	}
	staff.get(portalBase + "/")
	for _, path := range []string{"/admin/apps", "/admin/apps/" + id, "/admin/apps/" + id + "/delete"} {
		wantStatus(t, staff.post(path, url.Values{"host": {"x.example.com"}, "audience": {"everyone"}}), http.StatusForbidden)
	}
	wantRedirect(t, a.browser().get(portalBase+"/admin/apps"), "/login?next=")

	t.Run("a form from another site is refused", func(t *testing.T) {
		for _, site := range []string{"cross-site", ""} {
			req := httptest.NewRequest(http.MethodPost, portalBase+"/admin/apps/"+id+"/delete", strings.NewReader("_csrf=forged"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if site != "" {
				req.Header.Set("Sec-Fetch-Site", site)
			}
			req.Header.Set("Origin", "http://evil.example")
			u, _ := url.Parse(portalBase + "/")
			wantStatus(t, w.admin.send(req, u), http.StatusForbidden)
		}
		if _, err := a.db.AppByID(context.Background(), app.ID); err != nil {
			t.Fatalf("a forged form removed the app: %v", err)
		}
	})
}

// TestAppTheCookieDoesNotReach: a signed-in user sent to an app the session cookie does not
// reach gets a page that says so, not a redirect into a loop, and such a host cannot be
// registered.
func TestAppTheCookieDoesNotReach(t *testing.T) {
	a := newTestApp(t, forwardConfig(t, portalBase, ""))
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	a.addApp(t, db.AppInput{Host: appHost}) // registered before --cookie-domain was turned off
	b := a.browser()
	b.signIn("root", "correct horse battery", "")
	resp := b.get(portalBase + "/login?next=" + url.QueryEscape(appURL))
	wantStatus(t, resp, http.StatusConflict)
	for _, want := range []string{"cannot use this sign-in", "--cookie-domain", `id="request-id"`} {
		if !strings.Contains(body(t, resp), want) {
			t.Errorf("the page lacks %q: %s", want, body(t, resp))
		}
	}
	hops := a.browser().follow(appURL)
	if len(hops) != 2 || hops[1].Status != http.StatusOK {
		t.Fatalf("a signed-out browser at the app: %v", hops)
	}

	b.get(portalBase + "/admin/apps")
	if !strings.Contains(b.lastBody, "does not reach this host") {
		t.Errorf("the list does not warn about %s", appHost)
	}
	resp = b.post("/admin/apps", url.Values{"host": {"wiki.example.com"}, "audience": {"everyone"}})
	wantStatus(t, resp, http.StatusUnprocessableEntity)
	if !strings.Contains(body(t, resp), "does not reach wiki.example.com") {
		t.Fatalf("refusal: %s", body(t, resp))
	}
	resp = b.post("/admin/apps", url.Values{"host": {"portal.example.com:8443"}, "audience": {"everyone"}})
	wantRedirect(t, resp, "/admin/apps?msg=app-added")
}

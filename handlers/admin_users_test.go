package handlers

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"gatehouse/db"
)

func TestAdminRoutesNeedAnAdmin(t *testing.T) {
	a := newTestApp(t)
	admin := a.createUser("root", db.RoleAdmin, "correct horse battery")
	a.createUser("pub", db.RolePublisher, "correct horse battery")
	a.createUser("staff", db.RoleStaff, "correct horse battery")
	id := strconv.FormatInt(admin.ID, 10)
	gets := []string{"/admin/users", "/admin/users/new", "/admin/users/" + id}
	posts := []string{"/admin/users", "/admin/users/" + id + "/disable", "/admin/users/" + id + "/role",
		"/admin/users/" + id + "/reset-mfa", "/admin/users/" + id + "/revoke-sessions"}
	for _, who := range []string{"pub", "staff"} {
		c := a.client()
		c.login(who, "correct horse battery")
		for _, p := range gets {
			wantStatus(t, c.get(p), http.StatusForbidden)
		}
		c.get("/")
		for _, p := range posts {
			wantStatus(t, c.post(p, url.Values{"role": {"staff"}, "username": {"x"}}), http.StatusForbidden)
		}
	}
	for _, p := range gets {
		wantRedirect(t, a.client().get(p), "/login")
	}
	if u, _ := a.db.UserByID(context.Background(), admin.ID); u.Disabled || u.Role != db.RoleAdmin {
		t.Fatal("a refused request changed the admin")
	}
}

func TestAdminCreatesUserWhoMustChangePassword(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	admin := a.client()
	admin.login("root", "correct horse battery")
	admin.get("/admin/users/new")
	wantRedirect(t, admin.post("/admin/users", url.Values{"username": {"newbie"}, "role": {"staff"},
		"password": {"initial secret phrase"}}), "/admin/users/")
	wantStatus(t, admin.post("/admin/users", url.Values{"username": {"NEWBIE"}, "role": {"staff"},
		"password": {"initial secret phrase"}}), http.StatusUnprocessableEntity)

	u := a.client()
	resp := u.login("newbie", "initial secret phrase")
	wantRedirect(t, resp, "/")
	for _, p := range []string{"/", "/account", "/account/sessions"} {
		wantRedirect(t, u.get(p), "/account/password")
	}
	resp, hops := follow(u, "/", 5)
	if hops != 1 || resp.StatusCode != http.StatusOK {
		t.Fatalf("forced change: %d hops, status %d", hops, resp.StatusCode)
	}
	wantRedirect(t, u.post("/account/password", url.Values{"current_password": {"initial secret phrase"},
		"new_password": {"my very own passphrase"}}), "/account")
	wantStatus(t, u.get("/"), http.StatusOK)
	bad := a.client()
	bad.get("/login")
	wantStatus(t, bad.post("/login", url.Values{"username": {"newbie"}, "password": {"initial secret phrase"}}), http.StatusUnauthorized)
}

func TestLastAdminIsProtected(t *testing.T) {
	a := newTestApp(t)
	root := a.createUser("root", db.RoleAdmin, "correct horse battery")
	id := strconv.FormatInt(root.ID, 10)
	c := a.client()
	c.login("root", "correct horse battery")
	c.get("/admin/users/" + id)
	wantStatus(t, c.post("/admin/users/"+id+"/role", url.Values{"role": {"staff"}}), http.StatusConflict)
	wantStatus(t, c.post("/admin/users/"+id+"/disable", nil), http.StatusConflict)
	if _, err := a.db.DisableUser(context.Background(), root.ID, db.Event{}); err != db.ErrLastAdmin {
		t.Fatalf("store let the last admin be disabled: %v", err)
	}

	t.Run("with a second admin, demotion applies at once", func(t *testing.T) {
		other := a.createUser("deputy", db.RoleAdmin, "correct horse battery")
		d := a.client()
		d.login("deputy", "correct horse battery")
		wantStatus(t, d.get("/admin/users"), http.StatusOK)
		c.get("/admin/users/" + id)
		wantRedirect(t, c.post("/admin/users/"+strconv.FormatInt(other.ID, 10)+"/role", url.Values{"role": {"staff"}}), "/admin/users/")
		wantStatus(t, d.get("/admin/users"), http.StatusForbidden)
		evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "user.role_changed"})
		if len(evs) != 1 || evs[0].Actor != "root" || evs[0].Subject != "deputy" || !strings.Contains(evs[0].Detail, "admin → staff") {
			t.Fatalf("audit rows %+v", evs)
		}
	})
}

func TestAdminResetsMFAAndDisables(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	bob := a.createUser("bob", db.RoleStaff, "correct horse battery")
	id := strconv.FormatInt(bob.ID, 10)
	b := a.client()
	b.login("bob", "correct horse battery")
	secret, _ := b.enroll(t)

	admin := a.client()
	admin.login("root", "correct horse battery")
	page := body(t, admin.get("/admin/users/"+id))
	if strings.Contains(page, secret) {
		t.Fatal("the admin page shows the user's secret")
	}
	wantRedirect(t, admin.post("/admin/users/"+id+"/reset-mfa", nil), "/admin/users/"+id)
	wantRedirect(t, b.get("/"), "/login")
	// No code is asked for (there is no factor), and bob sets up a new one before anything else.
	if resp := a.client().login("bob", "correct horse battery"); resp.Header.Get("Location") != "/account/mfa" {
		t.Fatalf("after reset, sign-in goes to %s, want enrollment", resp.Header.Get("Location"))
	}
	evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "mfa.reset"})
	if len(evs) != 1 || evs[0].Actor != "root" || evs[0].Subject != "bob" || strings.Contains(evs[0].Detail, secret) {
		t.Fatalf("audit rows %+v", evs)
	}

	b2 := a.client()
	b2.login("bob", "correct horse battery")
	b2.enroll(t)
	admin.get("/admin/users/" + id)
	wantRedirect(t, admin.post("/admin/users/"+id+"/disable", nil), "/admin/users/"+id)
	wantRedirect(t, b2.get("/"), "/login")
	admin.get("/admin/users/" + id)
	wantRedirect(t, admin.post("/admin/users/"+id+"/enable", nil), "/admin/users/"+id)
	a.client().login("bob", "correct horse battery")

	t.Run("unknown ids and actions are 404s", func(t *testing.T) {
		wantStatus(t, admin.get("/admin/users/999"), http.StatusNotFound)
		wantStatus(t, admin.get("/admin/users/abc"), http.StatusNotFound)
		admin.get("/admin/users")
		wantStatus(t, admin.post("/admin/users/"+id+"/explode", nil), http.StatusNotFound)
	})
}

func TestAdminUserListSearchAndColumns(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	owl := a.createUser("owl", db.RoleStaff, "correct horse battery")
	a.createUser("lark", db.RoleStaff, "correct horse battery")
	g, _ := a.db.CreateGroup(context.Background(), "night shift", db.Event{At: a.clock()})
	_ = a.db.AddGroupMember(context.Background(), g.ID, owl.ID, db.Event{At: a.clock()})
	for i := 0; i < lockAfter; i++ {
		c := a.client()
		c.get("/login")
		c.post("/login", url.Values{"username": {"lark"}, "password": {"wrong horse battery"}})
	}
	admin := a.client()
	admin.login("root", "correct horse battery")
	b := body(t, admin.get("/admin/users"))
	for _, want := range []string{"<td>night shift</td>", "throttled"} {
		if !strings.Contains(b, want) {
			t.Errorf("list lacks %q", want)
		}
	}
	b = body(t, admin.get("/admin/users?q=night"))
	if !strings.Contains(b, ">owl</a>") || strings.Contains(b, ">lark</a>") {
		t.Fatal("search by group failed")
	}
}

// TestEveryAdminRouteIsGuarded walks the route table, so a route added later without a
// guard fails here: staff get 403 on every /admin route, strangers are sent to sign in.
func TestEveryAdminRouteIsGuarded(t *testing.T) {
	a := newTestApp(t)
	a.createUser("sam", db.RoleStaff, "correct horse battery")
	staff := a.client()
	staff.login("sam", "correct horse battery")
	checked := 0
	for _, r := range a.e.Routes() {
		if !strings.HasPrefix(r.Path, "/admin") || (r.Method != http.MethodGet && r.Method != http.MethodPost) {
			continue
		}
		path := strings.NewReplacer(":id", "1", ":uid", "1").Replace(r.Path)
		staff.get("/")
		var resp *http.Response
		if r.Method == http.MethodGet {
			resp = staff.get(path)
		} else {
			resp = staff.post(path, url.Values{"confirm": {"x"}, "expected": {"1"}})
		}
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("staff %s %s: status %d", r.Method, path, resp.StatusCode)
		}
		stranger := a.client()
		stranger.get("/login")
		if r.Method == http.MethodGet {
			resp = stranger.get(path)
		} else {
			resp = stranger.post(path, nil)
		}
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Errorf("stranger %s %s: status %d to %q", r.Method, path, resp.StatusCode, resp.Header.Get("Location"))
		}
		checked++
	}
	if checked < 25 {
		t.Fatalf("only %d admin routes found", checked)
	}
}

// Each button on a user's page and on the policy page is a route of its own with its own
// handler, so the route table lists what the app does; an action it does not list is the
// router's 404.
func TestEachAdminActionIsItsOwnRoute(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	want := map[string]string{
		"/admin/users/:id/disable":         "adminUserDisable",
		"/admin/users/:id/enable":          "adminUserEnable",
		"/admin/users/:id/unlock":          "adminUserUnlock",
		"/admin/users/:id/revoke-sessions": "adminUserRevokeSessions",
		"/admin/users/:id/reset-mfa":       "adminUserResetMFA",
		"/admin/users/:id/role":            "adminUserRole",
		"/admin/users/:id/delete":          "adminUserDelete",
		"/admin/mfa-policy/pause":          "mfaPolicyPause",
		"/admin/mfa-policy/resume":         "mfaPolicyResume",
	}
	for _, r := range a.e.Routes() {
		if strings.Contains(r.Path, ":action") {
			t.Errorf("%s %s dispatches on a parameter", r.Method, r.Path)
		}
		if name, ok := want[r.Path]; ok && r.Method == http.MethodPost {
			if !strings.Contains(r.Name, "."+name) {
				t.Errorf("POST %s is handled by %s, want %s", r.Path, r.Name, name)
			}
			delete(want, r.Path)
		}
	}
	for path := range want {
		t.Errorf("no route POST %s", path)
	}
	c := a.client()
	c.login("root", "correct horse battery")
	c.get("/admin")
	for _, path := range []string{"/admin/users/1/explode", "/admin/mfa-policy/explode"} {
		wantStatus(t, c.post(path, nil), http.StatusNotFound)
	}
}

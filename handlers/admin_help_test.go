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

func TestAdminSessionRevokeIsKeyedByUserAndSession(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, pw)
	amy := a.createUser("amy", db.RoleStaff, pw)
	bob := a.createUser("bob", db.RoleStaff, pw)
	admin := a.client()
	admin.login("root", pw)
	ac, bc := a.client(), a.client()
	ac.login("amy", pw)
	bc.login("bob", pw)
	bobSession := a.sessionID(bc)
	amyPath := "/admin/users/" + strconv.FormatInt(amy.ID, 10)

	page := body(t, admin.get(amyPath))
	if !strings.Contains(page, `data-session-id="`+strconv.FormatInt(a.sessionID(ac), 10)+`"`) || !strings.Contains(page, "192.0.2.10") {
		t.Fatalf("the admin's page of amy does not list her session:\n%.3000s", page)
	}
	// Bob's session id under amy's path: the same 404 as an id that never existed.
	resp := admin.post(amyPath+"/sessions/"+strconv.FormatInt(bobSession, 10)+"/revoke", nil)
	wantStatus(t, resp, http.StatusNotFound)
	if r := bc.get("/"); r.StatusCode != http.StatusOK {
		t.Fatal("bob's session ended through amy's page")
	}
	wantStatus(t, admin.post(amyPath+"/sessions/abc/revoke", nil), http.StatusNotFound)

	bobPath := "/admin/users/" + strconv.FormatInt(bob.ID, 10)
	resp = admin.post(bobPath+"/sessions/"+strconv.FormatInt(bobSession, 10)+"/revoke", url.Values{"return": {"/admin/sessions?user=bo"}})
	wantRedirect(t, resp, "/admin/sessions?")
	if r := bc.get("/"); r.StatusCode != http.StatusSeeOther {
		t.Fatal("the revoked session still works")
	}
	if r := ac.get("/"); r.StatusCode != http.StatusOK {
		t.Fatal("amy's session ended too")
	}
	evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "session.revoked", Subject: "bob"})
	if len(evs) != 1 || evs[0].Actor != "root" {
		t.Fatalf("the revoke is not audited: %+v", evs)
	}
	t.Run("a return path off the admin pages is not followed", func(t *testing.T) {
		cc := a.client()
		cc.login("bob", pw)
		resp := admin.post(bobPath+"/sessions/"+strconv.FormatInt(a.sessionID(cc), 10)+"/revoke",
			url.Values{"return": {"//evil.example/"}})
		wantRedirect(t, resp, bobPath)
	})
	t.Run("staff cannot reach it", func(t *testing.T) {
		wantStatus(t, ac.post(bobPath+"/sessions/1/revoke", nil), http.StatusForbidden)
	})
}

func TestAdminSessionsListsRecentSessionsWithFilters(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, pw)
	a.createUser("amy", db.RoleStaff, pw)
	a.createUser("bob", db.RoleStaff, pw)
	admin := a.client()
	admin.login("root", pw)
	ac, bc := a.client(), a.client()
	bc.addr = "198.51.100.20:4444"
	ac.login("amy", pw)
	bc.login("bob", pw)
	all := body(t, admin.get("/admin/sessions"))
	for _, want := range []string{">amy<", ">bob<", ">root<", "198.51.100.20", "sign everyone out"} {
		if !strings.Contains(all, want) {
			t.Errorf("/admin/sessions lacks %q", want)
		}
	}
	byUser := body(t, admin.get("/admin/sessions?user=AM"))
	if !strings.Contains(byUser, ">amy<") || strings.Contains(byUser, ">bob<") {
		t.Error("the user filter does not narrow the list")
	}
	byAddr := body(t, admin.get("/admin/sessions?addr=198.51.100."))
	if !strings.Contains(byAddr, ">bob<") || strings.Contains(byAddr, ">amy<") {
		t.Error("the address filter does not narrow the list")
	}
}

func TestTemporaryPasswordForcesAChangeFirst(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, pw)
	amy := a.createUser("amy", db.RoleStaff, pw)
	admin := a.client()
	admin.login("root", pw)
	old := a.client()
	old.login("amy", pw)
	path := "/admin/users/" + strconv.FormatInt(amy.ID, 10)
	admin.get(path)
	wantStatus(t, admin.post(path+"/temporary-password", url.Values{"new_password": {"password"}}), http.StatusUnprocessableEntity)
	wantRedirect(t, admin.post(path+"/temporary-password", url.Values{"new_password": {"temporary passphrase"}}), path)
	if r := old.get("/"); r.StatusCode != http.StatusSeeOther {
		t.Fatal("amy's session outlived the temporary password")
	}
	c := a.client()
	c.login("amy", "temporary passphrase")
	for _, p := range []string{"/", "/notices", "/account/sessions", "/account/email"} {
		wantRedirect(t, c.get(p), "/account/password")
	}
	c.get("/account/password")
	wantRedirect(t, c.post("/account/password", url.Values{"current_password": {"temporary passphrase"},
		"new_password": {"amy's own passphrase"}}), "/account")
	wantStatus(t, c.get("/"), http.StatusOK)
	evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "user.password_set", Subject: "amy"})
	if len(evs) != 1 || !strings.Contains(evs[0].Detail, "temporary") {
		t.Fatalf("audit: %+v", evs)
	}
	t.Run("not on one's own account", func(t *testing.T) {
		root, _ := a.db.UserByUsername(context.Background(), "root")
		self := "/admin/users/" + strconv.FormatInt(root.ID, 10)
		admin.get(self)
		wantStatus(t, admin.post(self+"/temporary-password", url.Values{"new_password": {"temporary passphrase"}}), http.StatusConflict)
	})
}

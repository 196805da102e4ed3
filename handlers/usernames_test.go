package handlers

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// failSignIn makes one failed password attempt as username from a fresh browser.
func (a *testApp) failSignIn(username string) *http.Response {
	c := a.client()
	c.get("/login")
	return c.post("/login", url.Values{"username": {username}, "password": {"wrong horse battery"}})
}

// The throttle used to be keyed by strings.ToLower of what was typed: a decomposed É, or
// a fullwidth name, started a fresh count against the same account.
func TestSignInAsAnyVariantOfAUsernameThrottlesOneAccount(t *testing.T) {
	a := newTestApp(t)
	emile := a.createUser("émile", db.RoleStaff, "correct horse battery")
	variants := []string{"ÉMILE", "E\u0301MILE", "e\u0301mile", "ｅ\u0301ｍｉｌｅ", "Émile"}
	for i := range lockAfter {
		wantStatus(t, a.failSignIn(variants[i%len(variants)]), http.StatusUnauthorized)
	}
	c := a.client()
	c.get("/login")
	resp := c.post("/login", url.Values{"username": {"émile"}, "password": {"correct horse battery"}})
	wantStatus(t, resp, http.StatusTooManyRequests)
	secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if n, _, err := a.db.ThrottleOf(context.Background(), auth.UsernameKey("émile")); err != nil || n != lockAfter {
		t.Errorf("émile's throttle counts %d failures (%v), want %d", n, err, lockAfter)
	}

	a.advance(time.Duration(secs+1) * time.Second)
	c = a.client()
	c.login("ÉMILE", "correct horse battery")
	b := body(t, c.get("/account"))
	if !strings.Contains(b, "<dd>émile</dd>") {
		t.Errorf("signing in as ÉMILE did not reach the account émile: %.1000s", b)
	}
	if n, _, _ := a.db.ThrottleOf(context.Background(), auth.UsernameKey(emile.Username)); n != 0 {
		t.Errorf("a complete sign-in as ÉMILE left %d failures on émile", n)
	}
}

func TestSecondStepThrottleIsKeyedLikeThePasswordStep(t *testing.T) {
	a := newTestApp(t)
	a.createUser("Straße", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("Straße", "correct horse battery")
	c.enroll(t)
	a.advance(time.Minute)
	wrong := 0
	for round := 0; wrong < lockAfter && round < 5; round++ {
		s := a.client()
		wantRedirect(t, s.login("STRASSE", "correct horse battery"), "/login/mfa")
		s.get("/login/mfa")
		for i := 0; i < 4 && wrong < lockAfter; i++ {
			wantStatus(t, s.post("/login/mfa", url.Values{"code": {"123456"}}), http.StatusUnauthorized)
			wrong++
		}
	}
	s := a.client()
	s.get("/login")
	wantStatus(t, s.post("/login", url.Values{"username": {"STRASSE"}, "password": {"correct horse battery"}}), http.StatusTooManyRequests)
}

func TestAdminSeesAndClearsTheThrottleOfAnyVariant(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	u := a.createUser("Straße", db.RoleStaff, "correct horse battery")
	for range lockAfter {
		a.failSignIn("STRASSE") // folds to strasse, as Straße does; strings.ToLower gives straße
	}
	admin := a.client()
	admin.login("root", "correct horse battery")
	list := body(t, admin.get("/admin/users"))
	row := list[strings.Index(list, ">Straße</a>"):]
	if end := strings.Index(row, "</tr>"); end < 0 || !strings.Contains(row[:end], "throttled") {
		t.Error("the user list does not show Straße as throttled")
	}
	page := "/admin/users/" + strconv.FormatInt(u.ID, 10)
	if b := body(t, admin.get(page)); !strings.Contains(b, "Clear failed sign-ins") || !strings.Contains(b, "locked until") {
		t.Errorf("the user page does not show the lock: %.2000s", b)
	}
	wantRedirect(t, admin.post(page+"/unlock", nil), page)
	a.client().login("straße", "correct horse battery")
}

func TestAccountsAreCreatedUnderTheNormalisedName(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	a.createUser("amy", db.RoleStaff, "correct horse battery")
	admin := a.client()
	admin.login("root", "correct horse battery")
	admin.get("/admin/users/new")
	for _, taken := range []string{"ａｍｙ", "AMY", "ＡＭＹ"} {
		resp := admin.post("/admin/users", url.Values{"username": {taken}, "role": {"staff"}, "password": {"initial secret phrase"}})
		wantStatus(t, resp, http.StatusUnprocessableEntity)
		if b := body(t, resp); !strings.Contains(b, "That username is taken.") {
			t.Errorf("creating %q beside amy: %.1000s", taken, b)
		}
	}
	resp := admin.post("/admin/users", url.Values{"username": {"\u0430my"}, "role": {"staff"}, "password": {"initial secret phrase"}})
	wantStatus(t, resp, http.StatusUnprocessableEntity)
	if b := body(t, resp); !strings.Contains(b, "Cyrillic and Latin") {
		t.Errorf("a Cyrillic look-alike of amy was not refused as such: %.1000s", b)
	}
	wantRedirect(t, admin.post("/admin/users", url.Values{"username": {"Ｂｏｂ"}, "role": {"staff"},
		"password": {"initial secret phrase"}}), "/admin/users/")
	bob, err := a.db.UserByUsername(context.Background(), "bob")
	if err != nil || bob.Username != "Bob" {
		t.Fatalf("Ｂｏｂ was stored as %q (%v), want Bob", bob.Username, err)
	}
	evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "user.created"})
	if len(evs) != 1 || evs[0].Subject != "Bob" {
		t.Errorf("user.created audit rows %+v, want one naming Bob as stored", evs)
	}

	g, _ := a.db.CreateGroup(context.Background(), "crew", db.Event{At: a.clock()})
	gpath := "/admin/groups/" + strconv.FormatInt(g.ID, 10)
	admin.get(gpath)
	wantRedirect(t, admin.post(gpath+"/members", url.Values{"username": {"ＡＭＹ"}}), gpath)
	if members, _ := a.db.GroupMembers(context.Background(), g.ID); len(members) != 1 || members[0].Username != "amy" {
		t.Errorf("adding ＡＭＹ to a group added %+v, want amy", members)
	}
}

func TestSetupStoresTheNormalisedName(t *testing.T) {
	a := newTestApp(t)
	token := auth.NewToken()
	if err := a.db.SetSetupToken(context.Background(), auth.HashToken(token), a.clock()); err != nil {
		t.Fatal(err)
	}
	c := a.client()
	c.get("/setup?token=" + url.QueryEscape(token))
	wantRedirect(t, c.post("/setup", url.Values{"token": {token}, "username": {"Ｒｏｏｔ"}, "display_name": {""},
		"password": {"correct horse battery"}}), "/")
	u, err := a.db.UserByUsername(context.Background(), "ROOT")
	if err != nil || u.Username != "Root" {
		t.Fatalf("the first admin is %q (%v), want Root", u.Username, err)
	}
	evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "setup.completed"})
	if len(evs) != 1 || evs[0].Subject != "Root" || evs[0].Actor != "Root" {
		t.Errorf("setup.completed audit rows %+v, want one by and about Root", evs)
	}
}

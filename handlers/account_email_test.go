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

func TestNewAddressTakesEffectOnlyOnceConfirmed(t *testing.T) {
	a := newMailApp(t)
	a.mailUser("amy", db.RoleStaff, "old@example.com")
	a.mailUser("bob", db.RoleStaff, "bob@example.com")
	amy := a.client()
	amy.login("amy", pw)
	amy.get("/account/email")
	wantRedirect(t, amy.post("/account/email", url.Values{"email": {"new@example.com"}}), "/account/email?msg=email-sent")
	a.deliver()
	path, token := a.mailedLink("new@example.com")
	if path != "/account/email/confirm" {
		t.Fatalf("the confirmation links to %s", path)
	}
	email := func() string {
		u, _ := a.db.UserByUsername(context.Background(), "amy")
		return u.Email
	}
	if email() != "old@example.com" {
		t.Fatal("the address changed before the link was opened")
	}
	if !strings.Contains(body(t, amy.get("/account/email")), "new@example.com") {
		t.Error("the account page does not show the change waiting")
	}

	b := a.client() // the mail may be opened in another browser, signed in or not
	page := b.openLink(t, path, token)
	wantStatus(t, page, http.StatusOK)
	if !strings.Contains(body(t, page), "new@example.com") || email() != "old@example.com" {
		t.Fatal("opening the link changed the address; only its button may")
	}
	wantRedirect(t, b.post(path, nil), "/login?msg=email-confirmed")
	if email() != "new@example.com" {
		t.Fatalf("after confirming, the address is %q", email())
	}
	a.deliver()
	if ms := a.smtp.To("old@example.com"); len(ms) != 1 || !strings.Contains(ms[0].Part("text/plain"), "new@example.com") {
		t.Errorf("the old address was not told: %d mails", len(ms))
	}
	t.Run("the link works once", func(t *testing.T) {
		wantStatus(t, a.client().openLink(t, path, token), http.StatusGone)
		wantStatus(t, b.post(path, nil), http.StatusGone)
	})
	t.Run("another account's address is refused, in any case", func(t *testing.T) {
		amy.get("/account/email")
		wantStatus(t, amy.post("/account/email", url.Values{"email": {"BOB@example.com"}}), http.StatusConflict)
	})
	t.Run("a bare address only", func(t *testing.T) {
		amy.get("/account/email")
		wantStatus(t, amy.post("/account/email", url.Values{"email": {"Amy <amy@example.com>"}}), http.StatusUnprocessableEntity)
	})
	t.Run("a newer request kills the older link", func(t *testing.T) {
		amy.get("/account/email")
		amy.post("/account/email", url.Values{"email": {"first@example.com"}})
		a.deliver()
		p1, t1 := a.mailedLink("first@example.com")
		amy.post("/account/email", url.Values{"email": {"second@example.com"}})
		wantStatus(t, a.client().openLink(t, p1, t1), http.StatusGone)
	})
	t.Run("the address is removed at the user's word", func(t *testing.T) {
		amy.get("/account/email")
		wantRedirect(t, amy.post("/account/email/remove", nil), "/account/email?msg=email-removed")
		if email() != "" {
			t.Fatal("the address is still there")
		}
	})
	t.Run("addresses show only to the user and admins", func(t *testing.T) {
		bob := a.client()
		bob.login("bob", pw)
		for _, p := range []string{"/", "/notices", "/account"} {
			if strings.Contains(body(t, bob.get(p)), "new@example.com") {
				t.Errorf("bob sees amy's address on %s", p)
			}
		}
	})
}

func TestAdminSetsAnAddressAsConfirmed(t *testing.T) {
	a := newMailApp(t)
	a.mailUser("root", db.RoleAdmin, "")
	amy := a.mailUser("amy", db.RoleStaff, "")
	a.mailUser("bob", db.RoleStaff, "bob@example.com")
	admin := a.client()
	admin.login("root", pw)
	path := "/admin/users/" + strconv.FormatInt(amy.ID, 10)
	admin.get(path)
	wantRedirect(t, admin.post(path+"/email", url.Values{"email": {"amy@example.com"}}), path)
	if u, _ := a.db.UserByID(context.Background(), amy.ID); u.Email != "amy@example.com" {
		t.Fatalf("address %q", u.Email)
	}
	if a.deliver() != 0 {
		t.Error("an address set by an admin was sent a confirmation")
	}
	if !strings.Contains(body(t, admin.get(path)), "amy@example.com") {
		t.Error("the admin page does not show the address")
	}
	wantStatus(t, admin.post(path+"/email", url.Values{"email": {"Bob@Example.com"}}), http.StatusConflict)
	wantStatus(t, admin.post(path+"/email", url.Values{"email": {"not an address"}}), http.StatusUnprocessableEntity)
	wantRedirect(t, admin.post(path+"/email", url.Values{"email": {""}}), path)
	if u, _ := a.db.UserByID(context.Background(), amy.ID); u.Email != "" {
		t.Fatalf("an empty field left %q", u.Email)
	}
	evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "user.email_set"})
	if len(evs) != 2 {
		t.Errorf("%d audit rows for the address, want 2", len(evs))
	}
}

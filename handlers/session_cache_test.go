package handlers

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// warm asks for the dashboard twice, so the session of c is kept by its portal.
func warm(t *testing.T, c *client) {
	t.Helper()
	for range 2 {
		wantStatus(t, c.get("/"), http.StatusOK)
	}
}

func TestSessionCacheKeepsALookupUntilAnythingIsCommitted(t *testing.T) {
	store, err := db.Open(context.Background(), t.TempDir()+"/g.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h := &Handler{db: store, exact: newExactCaches(store)}
	if h.exact == nil {
		t.Fatal("SQLite's change signal is exact, yet no cache was made")
	}
	ctx := context.Background()
	u, err := store.CreateUser(ctx, db.NewUser{Username: "sam", Role: db.RoleStaff, PasswordHash: "x"}, db.Event{At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	hash := auth.HashToken("tok")
	s, err := store.StartSession(ctx, db.NewSession{TokenHash: hash, UserID: u.ID, Stage: db.StageFull}, db.Event{At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	found, err := h.lookupSessions(echoContext(), [][]byte{hash})
	if err != nil || len(found) != 1 || found[0].Session.ID != s.ID {
		t.Fatalf("first lookup: %+v, %v", found, err)
	}
	if len(h.exact.sessions.entries) != 1 {
		t.Fatalf("%d entries kept after a lookup, want 1", len(h.exact.sessions.entries))
	}

	// Another process ends the session: the next lookup must not answer from memory.
	other, err := db.Open(ctx, store.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.RevokeSessions(ctx, u.ID, 0, db.Event{At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	found, err = h.lookupSessions(echoContext(), [][]byte{hash})
	if err != nil || len(found) != 0 {
		t.Fatalf("lookup after another process revoked the session: %+v, %v; want none", found, err)
	}
}

func TestSessionCacheHonoursChangesAtTheNextRequest(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	sam := a.createUser("sam", db.RoleStaff, "correct horse battery")
	uid := strconv.FormatInt(sam.ID, 10)
	admin := a.client()
	admin.login("root", "correct horse battery")
	admin.get("/admin/users/" + uid)

	t.Run("a role change applies at the next request", func(t *testing.T) {
		c := a.client()
		c.login("sam", "correct horse battery")
		warm(t, c)
		wantStatus(t, c.get("/admin/users"), http.StatusForbidden)
		wantStatus(t, admin.post("/admin/users/"+uid+"/role", map[string][]string{"role": {db.RoleAdmin}}), http.StatusSeeOther)
		wantStatus(t, c.get("/admin/users"), http.StatusOK)
		wantStatus(t, admin.post("/admin/users/"+uid+"/role", map[string][]string{"role": {db.RoleStaff}}), http.StatusSeeOther)
		wantStatus(t, c.get("/admin/users"), http.StatusForbidden)
	})
	t.Run("signing out ends the session at its next request", func(t *testing.T) {
		c := a.client()
		c.login("sam", "correct horse battery")
		warm(t, c)
		stolen := a.client()
		stolen.jar.SetCookies(baseURL, c.jar.Cookies(baseURL))
		wantStatus(t, stolen.get("/"), http.StatusOK)
		wantStatus(t, c.post("/logout", nil), http.StatusSeeOther)
		wantRedirect(t, stolen.get("/"), "/login?ended=1")
	})
	t.Run("revoking another session ends it at its next request", func(t *testing.T) {
		c, other := a.client(), a.client()
		c.login("sam", "correct horse battery")
		other.login("sam", "correct horse battery")
		warm(t, other)
		c.get("/account/sessions")
		wantStatus(t, c.post("/account/sessions/revoke-others", nil), http.StatusSeeOther)
		wantRedirect(t, other.get("/"), "/login?ended=1")
		wantStatus(t, c.get("/"), http.StatusOK)
	})
	t.Run("disabling the account ends its sessions at their next request", func(t *testing.T) {
		c := a.client()
		c.login("sam", "correct horse battery")
		warm(t, c)
		wantStatus(t, admin.post("/admin/users/"+uid+"/disable", nil), http.StatusSeeOther)
		wantRedirect(t, c.get("/"), "/login?ended=1")
		wantStatus(t, admin.post("/admin/users/"+uid+"/enable", nil), http.StatusSeeOther)
	})
	t.Run("an MFA reset ends the sessions at their next request", func(t *testing.T) {
		c := a.client()
		c.login("sam", "correct horse battery")
		warm(t, c)
		wantStatus(t, admin.post("/admin/users/"+uid+"/reset-mfa", nil), http.StatusSeeOther)
		wantRedirect(t, c.get("/"), "/login?ended=1")
	})
}

// The idle limit is applied to every answer, kept or read, and the once-a-minute
// last-seen write lets a kept session live on while it is used.
func TestSessionCacheKeepsTheIdleLimit(t *testing.T) {
	a := newTestApp(t) // idle limit: one hour
	a.createUser("sam", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("sam", "correct horse battery")
	warm(t, c)
	for range 3 { // two hours in all, never an hour idle
		a.advance(40 * time.Minute)
		warm(t, c)
	}
	a.advance(61 * time.Minute)
	wantRedirect(t, c.get("/"), "/login?ended=1")
}

// A kept acknowledgement lasts only until it expires: with no commit in between (no
// last-seen write is due), the must-read banner is back at the first request after.
func TestKeptAcknowledgementsExpireOnTime(t *testing.T) {
	a := newTestApp(t)
	root := a.createUser("root", db.RoleAdmin, "correct horse battery")
	a.createUser("sam", db.RoleStaff, "correct horse battery")
	n, err := a.db.CreateNotice(context.Background(), db.NoticeInput{Title: "House rules", Body: "Read them hourly.",
		Kind: db.NoticeMustRead, Severity: db.SeverityInfo, Audience: db.Audience{Everyone: true}, Renew: time.Hour},
		root, db.Event{At: a.clock()})
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt(n.ID, 10)
	c := a.client()
	c.login("sam", "correct horse battery")
	if banners(t, c.get("/"))[id] != "true" {
		t.Fatal("no must-read banner before acknowledging")
	}
	wantStatus(t, c.post("/notices/"+id+"/ack", map[string][]string{"return": {"/"}}), http.StatusSeeOther)
	a.advance(59*time.Minute + 30*time.Second) // this request's last-seen write is the last commit
	for range 2 {
		if _, shown := banners(t, c.get("/"))[id]; shown {
			t.Fatal("the banner is back before the acknowledgement expired")
		}
	}
	a.advance(45 * time.Second) // past the expiry, not yet a minute since the last-seen write
	if banners(t, c.get("/"))[id] != "true" {
		t.Fatal("the acknowledgement expired, yet the must-read banner is not back")
	}
}

// The forward-auth check keeps the app and the user's group names too; another process's
// commit is seen at the very next check.
func TestKeptAppsAndGroupsFollowAnotherProcess(t *testing.T) {
	w := newForwardWorld(t)
	other := w.a.otherProcess()
	ctx := context.Background()
	amy, err := w.a.db.UserByUsername(ctx, "amy")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		resp := w.verify(w.amy, appURL, nil)
		wantStatus(t, resp, http.StatusOK)
		if got := resp.Header.Get("Remote-Groups"); got != "ops" {
			t.Fatalf("Remote-Groups %q, want ops", got)
		}
	}
	if err := other.db.RemoveGroupMember(ctx, w.ops, amy.ID, db.Event{At: other.clock()}); err != nil {
		t.Fatal(err)
	}
	if got := w.verify(w.amy, appURL, nil).Header.Get("Remote-Groups"); got != "" {
		t.Fatalf("after leaving ops elsewhere, Remote-Groups %q, want none", got)
	}
	app, err := other.db.AppByHost(ctx, appHost)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.db.DeleteApp(ctx, app.ID, db.Event{At: other.clock()}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, w.verify(w.amy, appURL, nil), http.StatusForbidden)
}

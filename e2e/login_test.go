package e2e

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

const sessionCookie = "gatehouse_session" // the name over plain http

func TestSignInShowsDashboard(t *testing.T) {
	app := StartApp(t)
	app.CreateUser(t, db.NewUser{Username: "alice", DisplayName: "Alice Liddell", Role: db.RoleStaff},
		"correct horse battery")
	b := NewBrowser(t, app)

	resp := b.SignIn("alice", "correct horse battery")
	if resp.Status != http.StatusOK {
		t.Fatalf("after sign-in: status %d, want 200", resp.Status)
	}
	b.ExpectText("h1", "Welcome")
	b.ExpectText("h1", "Alice Liddell")
	if got := b.URL().Path; got != "/" {
		t.Fatalf("after sign-in the browser is at %q, want /", got)
	}
	ck, ok := b.Cookie(sessionCookie)
	if !ok {
		t.Fatalf("no %s cookie after sign-in", sessionCookie)
	}
	if !ck.HTTPOnly || ck.SameSite != "Lax" || ck.Path != "/" {
		t.Errorf("session cookie HttpOnly=%v SameSite=%q Path=%q; want true, Lax, /", ck.HTTPOnly, ck.SameSite, ck.Path)
	}

	resp = b.SignOut()
	if resp.Status != http.StatusOK {
		t.Fatalf("after sign-out: status %d, want 200", resp.Status)
	}
	if got := b.URL().Path; got != "/login" {
		t.Fatalf("after sign-out the browser is at %q, want /login", got)
	}
	b.ExpectText(`[role="status"]`, "signed out")
	if _, ok := b.Cookie(sessionCookie); ok {
		t.Errorf("the %s cookie survived sign-out", sessionCookie)
	}
	if n, err := app.Store.CountSessions(context.Background()); err != nil || n != 0 {
		t.Errorf("sessions in the database after sign-out = %d, %v; want 0", n, err)
	}
}

func TestWrongPasswordShowsError(t *testing.T) {
	app := StartApp(t)
	app.CreateUser(t, db.NewUser{Username: "alice"}, "correct horse battery")
	b := NewBrowser(t, app)

	resp := b.SignIn("alice", "incorrect horse battery")
	if resp.Status != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d, want 401", resp.Status)
	}
	if got := b.URL().Path; got != "/login" {
		t.Errorf("after a wrong password the browser is at %q, want /login", got)
	}
	b.ExpectText(`[role="alert"]`, "do not match")
	if got := b.Value("#username"); got != "alice" {
		t.Errorf("username field = %q after the refusal, want it kept as alice", got)
	}
	if got := b.Value("#password"); got != "" {
		t.Errorf("password field = %q after the refusal, want it empty", got)
	}
	if _, ok := b.Cookie(sessionCookie); ok {
		t.Errorf("a wrong password left a %s cookie", sessionCookie)
	}

	// The form the error page shows still works.
	b.SubmitSignIn("alice", "correct horse battery")
	b.ExpectText("h1", "Welcome")
}

func TestFirstRunSetup(t *testing.T) {
	app := StartApp(t)
	tok := app.SetupToken(t)
	b := NewBrowser(t, app)

	if resp := b.Visit("/setup?token=" + tok); resp.Status != http.StatusOK {
		t.Fatalf("GET /setup with the token: status %d, want 200", resp.Status)
	}
	b.Fill("#username", "root")
	b.Fill("#password", "lantern orchard quietly 47")
	resp := b.Click(`form[action="/setup"] button[type=submit]`)
	if resp.Status != http.StatusOK {
		t.Fatalf("after setup: status %d, want 200", resp.Status)
	}
	if got := b.URL().Path; got != "/" {
		t.Fatalf("after setup the browser is at %q, want /", got)
	}
	b.ExpectText("h1", "Welcome")
	b.ExpectText(`[role="status"]`, "administrator account is ready")

	u, err := app.Store.UserByUsername(context.Background(), "root")
	if err != nil {
		t.Fatalf("the first administrator is not in the database: %v", err)
	}
	if u.Role != db.RoleAdmin {
		t.Errorf("first user role = %q, want admin", u.Role)
	}

	// The link dies with its first use: a 404, in the browser and to a plain client.
	resp = b.Visit("/setup?token=" + tok)
	if resp.Status != http.StatusNotFound {
		t.Errorf("GET /setup again in the browser: status %d, want 404", resp.Status)
	}
	b.ExpectText(`[role="alert"]`, "There is nothing here")
	if !b.Has("#request-id") {
		t.Errorf("the 404 page has no #request-id")
	}
	plain, err := http.Get(app.URL + "/setup?token=" + tok)
	if err != nil {
		t.Fatalf("plain GET /setup: %v", err)
	}
	plain.Body.Close()
	if plain.StatusCode != http.StatusNotFound {
		t.Errorf("plain GET /setup again: status %d, want 404", plain.StatusCode)
	}
	if ok, err := app.Store.SetupTokenValid(context.Background(), auth.HashToken(tok)); err != nil || ok {
		t.Errorf("SetupTokenValid after setup = %v, %v; want false", ok, err)
	}
}

// TestStaleCookieLandsOnLogin is the logout-loop failure from the spec: the server forgets
// every session while the browser still holds its cookie. One redirect to a login page that
// renders and says why, the dead cookie gone, and signing in again works.
func TestStaleCookieLandsOnLogin(t *testing.T) {
	app := StartApp(t)
	app.CreateUser(t, db.NewUser{Username: "alice"}, "correct horse battery")
	b := NewBrowser(t, app)

	b.SignIn("alice", "correct horse battery")
	b.ExpectText("h1", "Welcome")
	if _, err := app.Store.RevokeAllSessions(context.Background(), db.Event{At: time.Now(),
		Kind: "sessions.revoked", Detail: "e2e"}); err != nil {
		t.Fatalf("revoke all sessions: %v", err)
	}
	if _, ok := b.Cookie(sessionCookie); !ok {
		t.Fatalf("the browser lost its cookie before the test could make it stale")
	}

	mark := len(app.Requests())
	resp := b.Visit("/account")
	if resp.Status != http.StatusOK {
		t.Errorf("GET /account with a stale cookie ended on status %d, want 200 (the login page)", resp.Status)
	}
	u := b.URL()
	if u.Path != "/login" {
		t.Fatalf("with a stale cookie /account led to %q, want /login", u.Path)
	}
	if got := u.Query().Get("next"); got != "/account" {
		t.Errorf("next = %q, want /account", got)
	}
	b.ExpectText(`[role="status"]`, "session has ended")
	b.WaitVisible("#username")
	b.WaitVisible("#password")
	if _, ok := b.Cookie(sessionCookie); ok {
		t.Errorf("the stale %s cookie was not deleted", sessionCookie)
	}
	docs := app.Documents(mark)
	wantStatuses := []int{http.StatusSeeOther, http.StatusOK}
	if got := statuses(docs); !slices.Equal(got, wantStatuses) {
		t.Errorf("page loads after the stale cookie: %v; want exactly /account 303 then /login 200", docs)
	}

	// The login page is stable now: loading it again neither redirects nor repeats the message.
	mark = len(app.Requests())
	b.Visit("/login")
	if docs := app.Documents(mark); len(docs) != 1 || docs[0].Status != http.StatusOK {
		t.Errorf("reloading /login: %v; want one 200", docs)
	}
	if b.Has(`[role="status"]`) {
		t.Errorf("a plain /login still says %q", b.Text(`[role="status"]`))
	}

	// Signing in again works, and returns to the page that was asked for.
	b.Visit("/account")
	b.SubmitSignIn("alice", "correct horse battery")
	if got := b.URL().Path; got != "/account" {
		t.Errorf("signing in again landed on %q, want /account", got)
	}
	if !b.Has(`form[action="/logout"]`) {
		t.Errorf("signed in again, but the page has no sign-out form")
	}
}

func statuses(rs []Request) []int {
	var s []int
	for _, r := range rs {
		s = append(s, r.Status)
	}
	return s
}

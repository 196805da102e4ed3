package handlers

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"gatehouse/internal/dbtest"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// rawDB opens the app's file (read-only) or database directly, to inspect what is really
// stored.
func (a *testApp) rawDB() *sql.DB {
	a.tb.Helper()
	if dbtest.Postgres() {
		return a.rawWriter()
	}
	raw, err := sql.Open("sqlite", "file:"+a.db.Path()+"?mode=ro")
	if err != nil {
		a.tb.Fatal(err)
	}
	a.tb.Cleanup(func() { raw.Close() })
	return raw
}

// rawWriter opens the app's database directly, to change it behind the store's back.
func (a *testApp) rawWriter() *sql.DB {
	a.tb.Helper()
	open := func() (*sql.DB, error) { return sql.Open("sqlite", "file:"+a.db.Path()) }
	if dbtest.Postgres() {
		open = func() (*sql.DB, error) { return db.OpenSQL(a.db.Path()) }
	}
	raw, err := open()
	if err != nil {
		a.tb.Fatal(err)
	}
	a.tb.Cleanup(func() { raw.Close() })
	return raw
}

func sessionCookieOf(tb testing.TB, resp *http.Response, name string) *http.Cookie {
	tb.Helper()
	for _, ck := range resp.Cookies() {
		if ck.Name == name && ck.Value != "" {
			return ck
		}
	}
	tb.Fatalf("no %s cookie set; Set-Cookie: %q", name, resp.Header.Values("Set-Cookie"))
	return nil
}

func TestSessionCookieAttributes(t *testing.T) {
	for _, tc := range []struct {
		name, base, cookie string
		secure             bool
	}{
		{"plain http uses the bare name without Secure", "http://localhost:8080", "gatehouse_session", false},
		{"https uses the __Host- name with Secure", "https://portal.example", "__Host-gatehouse_session", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestApp(t, func(c *Config) { c.BaseURL, _ = url.Parse(tc.base) })
			a.createUser("alice", db.RoleStaff, "correct horse battery")
			resp := a.client().login("alice", "correct horse battery")
			ck := sessionCookieOf(t, resp, tc.cookie)
			raw := ""
			for _, v := range resp.Header.Values("Set-Cookie") {
				if strings.HasPrefix(v, tc.cookie+"=") {
					raw = v
				}
			}
			for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
				if !strings.Contains(raw, want) {
					t.Errorf("Set-Cookie %q lacks %s", raw, want)
				}
			}
			if strings.Contains(raw, "Domain=") || strings.Contains(raw, "Expires=") || strings.Contains(raw, "Max-Age=") {
				t.Errorf("Set-Cookie %q must have no Domain and no lifetime (the server enforces expiry)", raw)
			}
			if ck.Secure != tc.secure {
				t.Errorf("Secure = %v, want %v", ck.Secure, tc.secure)
			}
			if len(ck.Value) < 22 || !auth.ValidTokenShape(ck.Value) {
				t.Errorf("token %q is not an opaque 256-bit value", ck.Value)
			}
			if tc.secure && !strings.Contains(resp.Header.Get("Strict-Transport-Security"), "max-age=63072000") {
				t.Errorf("HSTS missing under https: %q", resp.Header.Get("Strict-Transport-Security"))
			}
			if !tc.secure && resp.Header.Get("Strict-Transport-Security") != "" {
				t.Error("HSTS must not be sent over plain http")
			}
		})
	}
}

func TestDatabaseHoldsOnlyTokenHash(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	token := c.cookie("gatehouse_session")
	sum := sha256.Sum256([]byte(token))

	var n int
	raw := a.rawDB()
	if err := raw.QueryRow(`SELECT COUNT(*) FROM sessions WHERE token_hash = ?`, sum[:]).Scan(&n); err != nil || n != 1 {
		t.Fatalf("sessions with sha256(token): %d, %v", n, err)
	}
	rows, err := raw.Query(`SELECT token_hash, user_id, stage, created_at, last_seen_at, client_addr, user_agent FROM sessions`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var cols [7]string
		var hash []byte
		if err := rows.Scan(&hash, &cols[1], &cols[2], &cols[3], &cols[4], &cols[5], &cols[6]); err != nil {
			t.Fatal(err)
		}
		cols[0] = hex.EncodeToString(hash)
		for _, v := range cols {
			if strings.Contains(v, token) || strings.EqualFold(v, hex.EncodeToString([]byte(token))) {
				t.Fatalf("a sessions column holds the raw token: %q", v)
			}
		}
	}
}

func TestLoginRotatesToken(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	first := c.cookie("gatehouse_session")
	c.login("alice", "correct horse battery")
	second := c.cookie("gatehouse_session")
	if first == second {
		t.Fatal("signing in again kept the same token")
	}
	if _, _, err := a.db.SessionByTokenHash(context.Background(), auth.HashToken(first)); err != db.ErrNotFound {
		t.Fatalf("the earlier session of this browser still exists: %v", err)
	}

	t.Run("a planted cookie is never adopted", func(t *testing.T) {
		planted := auth.NewToken()
		c := a.client()
		c.jar.SetCookies(baseURL, []*http.Cookie{{Name: "gatehouse_session", Value: planted}})
		c.login("alice", "correct horse battery")
		if got := c.cookie("gatehouse_session"); got == planted {
			t.Fatal("login kept an attacker-chosen token")
		}
		if _, _, err := a.db.SessionByTokenHash(context.Background(), auth.HashToken(planted)); err != db.ErrNotFound {
			t.Fatal("the planted token was stored")
		}
	})
}

func TestLogoutEndsSessionServerSide(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	token := c.cookie("gatehouse_session")
	c.get("/")
	resp := c.post("/logout", nil)
	wantRedirect(t, resp, "/login")
	cleared := false
	for _, ck := range resp.Cookies() {
		if ck.Name == "gatehouse_session" && ck.MaxAge < 0 && ck.Path == "/" && ck.Domain == "" {
			cleared = true
		}
	}
	if !cleared {
		t.Errorf("logout did not expire the cookie: %q", resp.Header.Values("Set-Cookie"))
	}
	if n := a.countRows("sessions"); n != 0 {
		t.Fatalf("%d session rows left after logout", n)
	}
	replay := a.client()
	replay.jar.SetCookies(baseURL, []*http.Cookie{{Name: "gatehouse_session", Value: token}})
	wantRedirect(t, replay.get("/"), "/login?ended=1")

	t.Run("GET /logout changes nothing", func(t *testing.T) {
		c := a.client()
		c.login("alice", "correct horse battery")
		wantStatus(t, c.get("/logout"), http.StatusMethodNotAllowed)
		wantStatus(t, c.get("/"), http.StatusOK)
	})
}

func TestIdleAndAbsoluteExpiry(t *testing.T) {
	t.Run("idle past the limit ends the session", func(t *testing.T) {
		a := newTestApp(t)
		a.createUser("alice", db.RoleStaff, "correct horse battery")
		c := a.client()
		c.login("alice", "correct horse battery")
		a.advance(59 * time.Minute)
		wantStatus(t, c.get("/"), http.StatusOK)
		a.advance(59 * time.Minute) // active a moment ago, so still alive
		wantStatus(t, c.get("/"), http.StatusOK)
		a.advance(61 * time.Minute)
		wantRedirect(t, c.get("/"), "/login?ended=1")
		if n := a.countRows("sessions"); n != 0 {
			t.Fatalf("expired session row kept: %d", n)
		}
	})
	t.Run("activity does not extend past the absolute limit", func(t *testing.T) {
		a := newTestApp(t)
		a.createUser("alice", db.RoleStaff, "correct horse battery")
		c := a.client()
		c.login("alice", "correct horse battery")
		for i := 0; i < 48; i++ { // a request every 30 minutes for 24 hours
			a.advance(30 * time.Minute)
			if resp := c.get("/"); resp.StatusCode != http.StatusOK {
				if i < 47 {
					t.Fatalf("session ended early after %d half-hours", i+1)
				}
			}
		}
		a.advance(time.Minute)
		wantRedirect(t, c.get("/"), "/login?ended=1")
	})
	t.Run("last seen is written at most once a minute", func(t *testing.T) {
		a := newTestApp(t)
		a.createUser("alice", db.RoleStaff, "correct horse battery")
		c := a.client()
		c.login("alice", "correct horse battery")
		before := a.sessionLastSeen(c)
		a.advance(30 * time.Second)
		c.get("/")
		if got := a.sessionLastSeen(c); !got.Equal(before) {
			t.Fatalf("last seen written after 30 s: %v → %v", before, got)
		}
		a.advance(31 * time.Second)
		c.get("/")
		if got := a.sessionLastSeen(c); !got.Equal(a.clock()) {
			t.Fatalf("last seen not written after a minute: %v, now %v", got, a.clock())
		}
	})
}

func (a *testApp) sessionLastSeen(c *client) time.Time {
	a.tb.Helper()
	s, _, err := a.db.SessionByTokenHash(context.Background(), auth.HashToken(c.cookie("gatehouse_session")))
	if err != nil {
		a.tb.Fatal(err)
	}
	return s.LastSeenAt
}

// follow walks redirects like a browser and returns the final response and the hop count.
func follow(c *client, path string, limit int) (*http.Response, int) {
	resp := c.get(path)
	hops := 0
	for resp.StatusCode >= 300 && resp.StatusCode < 400 && hops < limit {
		hops++
		resp = c.get(resp.Header.Get("Location"))
	}
	return resp, hops
}

func TestBadCookiesCostAtMostOneRedirect(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	bob := a.createUser("bob", db.RoleStaff, "correct horse battery")
	ctx := context.Background()

	fresh := func() string {
		c := a.client()
		c.login("alice", "correct horse battery")
		return c.cookie("gatehouse_session")
	}
	kinds := []struct {
		name   string
		cookie func() *http.Cookie
	}{
		{"unknown token", func() *http.Cookie { return &http.Cookie{Name: "gatehouse_session", Value: auth.NewToken()} }},
		{"malformed token", func() *http.Cookie { return &http.Cookie{Name: "gatehouse_session", Value: "garbage!"} }},
		{"oversized token", func() *http.Cookie {
			return &http.Cookie{Name: "gatehouse_session", Value: strings.Repeat("A", 3000)}
		}},
		{"revoked session", func() *http.Cookie {
			tok := fresh()
			if _, err := a.db.RevokeAllSessions(ctx, db.Event{}); err != nil {
				t.Fatal(err)
			}
			return &http.Cookie{Name: "gatehouse_session", Value: tok}
		}},
		{"expired session", func() *http.Cookie {
			tok := fresh()
			a.advance(2 * time.Hour)
			return &http.Cookie{Name: "gatehouse_session", Value: tok}
		}},
		{"session of a disabled user", func() *http.Cookie {
			if _, err := a.db.SetDisabled(ctx, bob.ID, false, db.Event{}); err != nil {
				t.Fatal(err)
			}
			c := a.client()
			c.login("bob", "correct horse battery")
			tok := c.cookie("gatehouse_session")
			// Flip the flag without the usual session cleanup, to prove the lookup refuses it too.
			if _, err := a.db.SetDisabled(ctx, bob.ID, true, db.Event{}); err != nil {
				t.Fatal(err)
			}
			return &http.Cookie{Name: "gatehouse_session", Value: tok}
		}},
		{"legacy cookie name", func() *http.Cookie {
			return &http.Cookie{Name: "__Secure-gatehouse_session", Value: fresh()}
		}},
	}
	for _, k := range kinds {
		for _, path := range []string{"/", "/account/sessions", "/login"} {
			t.Run(k.name+" on "+path, func(t *testing.T) {
				c := a.client()
				ck := k.cookie()
				c.jar.SetCookies(baseURL, []*http.Cookie{ck})
				resp, hops := follow(c, path, 10)
				limit := 1
				if path == "/login" {
					limit = 0
				}
				if hops > limit {
					t.Fatalf("%d redirects, want at most %d", hops, limit)
				}
				wantStatus(t, resp, http.StatusOK)
				b := body(t, resp)
				if !strings.Contains(b, `name="password"`) {
					t.Fatal("did not end on a rendered login form")
				}
				if !strings.Contains(b, "session has ended") {
					t.Error("the login page does not say the session ended")
				}
				if v := c.cookie(ck.Name); v != "" {
					t.Errorf("cookie %s still in the browser: %.20q", ck.Name, v)
				}
			})
		}
	}

	t.Run("logout with a bad cookie goes once to a login page that renders", func(t *testing.T) {
		c := a.client()
		c.get("/login")
		c.jar.SetCookies(baseURL, []*http.Cookie{{Name: "gatehouse_session", Value: auth.NewToken()}})
		resp := c.post("/logout", nil)
		wantRedirect(t, resp, "/login")
		wantStatus(t, c.get(resp.Header.Get("Location")), http.StatusOK)
	})
}

func TestDuplicateCookiesDecideTheSameWayInAnyOrder(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	valid := c.cookie("gatehouse_session")
	stale := auth.NewToken()
	for _, order := range [][2]string{{stale, valid}, {valid, stale}} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			req := httptest.NewRequest(method, testBase+"/account/sessions", nil)
			if method == http.MethodPost {
				req = httptest.NewRequest(method, testBase+"/account/sessions/revoke-others", strings.NewReader(""))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Sec-Fetch-Site", "same-origin")
			}
			req.Header.Set("Cookie", "gatehouse_session="+order[0]+"; gatehouse_session="+order[1])
			resp := a.serve(req)
			if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("%s with cookies in order %v: status %d", method, order == [2]string{stale, valid}, resp.StatusCode)
			}
			if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, "/login") {
				t.Fatalf("%s: a stale duplicate shadowed the valid session (redirect %s)", method, loc)
			}
		}
	}
}

func TestRevokeAllLeavesEveryoneAbleToSignIn(t *testing.T) {
	a := newTestApp(t)
	users := []string{"alice", "bob", "carol"}
	for _, u := range users {
		a.createUser(u, db.RoleStaff, "correct horse battery")
	}
	snapshot := func() string {
		var sb strings.Builder
		rows, err := a.rawDB().Query(`SELECT id, username, password_hash, role, disabled, must_change_password FROM users ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, dis, must int
			var name, hash, role string
			_ = rows.Scan(&id, &name, &hash, &role, &dis, &must)
			sb.WriteString(strings.Join([]string{name, hash, role}, "|"))
		}
		return sb.String()
	}
	var jars []*client
	for _, u := range users {
		c := a.client()
		c.login(u, "correct horse battery")
		jars = append(jars, c)
	}
	before := snapshot()
	if _, err := a.db.RevokeAllSessions(context.Background(), db.Event{At: a.clock(), Kind: "sessions.revoked_all"}); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(); after != before {
		t.Fatal("revoking sessions changed the users table")
	}
	for i, c := range jars {
		wantRedirect(t, c.get("/"), "/login?ended=1")
		c.login(users[i], "correct horse battery")
		wantStatus(t, c.get("/"), http.StatusOK)
	}
}

func TestDisablingEndsLiveSessions(t *testing.T) {
	a := newTestApp(t)
	bob := a.createUser("bob", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("bob", "correct horse battery")
	if _, err := a.db.SetDisabled(context.Background(), bob.ID, true, db.Event{At: a.clock(), Kind: "user.disabled"}); err != nil {
		t.Fatal(err)
	}
	wantRedirect(t, c.get("/"), "/login?ended=1")
	resp := c.post("/login", url.Values{"username": {"bob"}, "password": {"correct horse battery"}})
	wantStatus(t, resp, http.StatusUnauthorized)
}

// TestManySessionCookiesKeepTheValidOne: over plain http anyone on the path can plant
// cookies, so a browser may send many values under the session name. The valid one wins
// whatever their number and order, as long as the header fits the server's limit.
func TestManySessionCookiesKeepTheValidOne(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	valid := c.cookie("gatehouse_session")
	planted := func(n int) []string {
		var vs []string
		for range n {
			vs = append(vs, "gatehouse_session="+auth.NewToken())
		}
		return vs
	}
	for _, tc := range []struct {
		name    string
		cookies []string
	}{
		{"ten planted, then the valid one", append(planted(10), "gatehouse_session="+valid)},
		{"the valid one, then ten planted", append([]string{"gatehouse_session=" + valid}, planted(10)...)},
		{"as many as the header limit allows, valid last", append(append(planted(900), "gatehouse_session=junk"), "gatehouse_session="+valid)},
		{"the same stale value many times, valid last", append(slices.Repeat(planted(1), 200), "gatehouse_session="+valid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header := strings.Join(tc.cookies, "; ")
			if len(header) > 64<<10 {
				t.Fatalf("header of %d bytes would not pass the server", len(header))
			}
			req := newGet("/account/sessions")
			req.Header.Set("Cookie", header)
			wantStatus(t, a.serve(req), http.StatusOK)
		})
	}
}

package handlers

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

func TestDecideForward(t *testing.T) {
	base, _ := url.Parse("https://portal.example.com")
	const orig = "https://app.example.com/wiki/Page?x=1"
	staff := db.User{ID: 7, Username: "amy", Role: db.RoleStaff, GroupIDs: []int64{4}}
	withFactor := staff
	withFactor.HasTOTP = true
	withPasskey := staff
	withPasskey.Passkeys = 1
	disabled := staff
	disabled.Disabled = true
	everyone := db.App{Host: "app.example.com", Audience: db.Audience{Everyone: true}}
	admins := db.App{Host: "app.example.com", Audience: db.Audience{Roles: []string{db.RoleAdmin}}}
	group4 := db.App{Host: "app.example.com", Audience: db.Audience{GroupIDs: []int64{4}}}
	nobody := db.App{Host: "app.example.com"}
	mfa := everyone
	mfa.RequireMFA = true
	mustRead := everyone
	mustRead.MustReadFirst = true
	in := func(edit func(*forwardInput)) forwardInput {
		f := forwardInput{TrustedPeer: true, Session: fullSession, User: staff, AppFound: true, App: everyone, Original: orig}
		edit(&f)
		return f
	}
	signIn := "https://portal.example.com/login?next=" + url.QueryEscape(orig)
	detour := "https://portal.example.com/?next=" + url.QueryEscape(orig)
	for _, tc := range []struct {
		name     string
		in       forwardInput
		verdict  forwardVerdict
		status   int
		location string
	}{
		{"a signed-in user in the audience passes", in(func(*forwardInput) {}), forwardPass, 200, ""},
		{"an untrusted peer is refused whoever is signed in", in(func(f *forwardInput) { f.TrustedPeer = false }), forwardRefuse, 403, ""},
		{"an untrusted peer is refused before an unknown host", in(func(f *forwardInput) { f.TrustedPeer, f.AppFound = false, false }), forwardRefuse, 403, ""},
		{"an unregistered host is refused, fail closed", in(func(f *forwardInput) { f.AppFound, f.App = false, db.App{} }), forwardRefuse, 403, ""},
		{"an unregistered host is refused even without a session", in(func(f *forwardInput) { f.AppFound, f.Session = false, noSession }), forwardRefuse, 403, ""},
		{"no session goes to sign in with the original URL", in(func(f *forwardInput) { f.Session = noSession }), forwardSignIn, 302, signIn},
		{"a cleared stale cookie says the session ended", in(func(f *forwardInput) { f.Session, f.SessionEnded = noSession, true }), forwardSignIn, 302,
			"https://portal.example.com/login?ended=1&next=" + url.QueryEscape(orig)},
		{"no session in status mode is a 401 with the sign-in address", in(func(f *forwardInput) { f.Session, f.StatusMode = noSession, true }), forwardSignIn, 401, signIn},
		{"a partial session goes to finish signing in", in(func(f *forwardInput) { f.Session = partialSession }), forwardSignIn, 302, signIn},
		{"a partial session in status mode is a 401", in(func(f *forwardInput) { f.Session, f.StatusMode = partialSession, true }), forwardSignIn, 401, signIn},
		{"a disabled user goes to sign in", in(func(f *forwardInput) { f.User = disabled }), forwardSignIn, 302, signIn},
		{"a pending step goes through the portal", in(func(f *forwardInput) { f.StepPending = true }), forwardSignIn, 302, signIn},
		{"a role outside the audience is refused", in(func(f *forwardInput) { f.App = admins }), forwardRefuse, 403, ""},
		{"a refusal is a 403 in status mode too", in(func(f *forwardInput) { f.App, f.StatusMode = admins, true }), forwardRefuse, 403, ""},
		{"a group in the audience passes", in(func(f *forwardInput) { f.App = group4 }), forwardPass, 200, ""},
		{"a user outside every group is refused", in(func(f *forwardInput) { f.App, f.User.GroupIDs = group4, nil }), forwardRefuse, 403, ""},
		{"an empty audience lets nobody pass", in(func(f *forwardInput) { f.App = nobody }), forwardRefuse, 403, ""},
		{"require_mfa refuses a user without a factor", in(func(f *forwardInput) { f.App = mfa }), forwardRefuse, 403, ""},
		{"require_mfa lets a user with a factor pass", in(func(f *forwardInput) { f.App, f.User = mfa, withFactor }), forwardPass, 200, ""},
		{"require_mfa lets a user with a passkey only pass", in(func(f *forwardInput) { f.App, f.User = mfa, withPasskey }), forwardPass, 200, ""},
		{"must_read_first with a notice due sends to the start page", in(func(f *forwardInput) { f.App, f.MustReadDue = mustRead, true }), forwardMustRead, 302, detour},
		{"must_read_first in status mode is a 401 with the detour", in(func(f *forwardInput) { f.App, f.MustReadDue, f.StatusMode = mustRead, true, true }), forwardMustRead, 401, detour},
		{"must_read_first with nothing due passes", in(func(f *forwardInput) { f.App = mustRead }), forwardPass, 200, ""},
		{"a must-read notice does not block an app without must_read_first", in(func(f *forwardInput) { f.MustReadDue = true }), forwardPass, 200, ""},
		{"an unknown original URL signs in without next", in(func(f *forwardInput) { f.Session, f.Original = noSession, "" }), forwardSignIn, 302,
			"https://portal.example.com/login"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := decideForward(base, tc.in)
			if d.Verdict != tc.verdict || d.Status != tc.status || d.Location != tc.location {
				t.Fatalf("verdict %d, status %d, Location %q (%s); want %d, %d, %q", d.Verdict, d.Status, d.Location, d.Reason,
					tc.verdict, tc.status, tc.location)
			}
		})
	}
}

// verifyRequest is a forward-auth question from peer about a GET of rawURL, in the header
// set of Caddy and Traefik.
func verifyRequest(peer, rawURL string) *http.Request {
	u, _ := url.Parse(rawURL)
	req := httptest.NewRequest(http.MethodGet, portalBase+"/auth/verify", nil)
	req.RemoteAddr = peer
	req.Header.Set("X-Forwarded-Method", http.MethodGet)
	req.Header.Set("X-Forwarded-Proto", u.Scheme)
	req.Header.Set("X-Forwarded-Host", u.Host)
	req.Header.Set("X-Forwarded-Uri", u.RequestURI())
	return req
}

// forwardWorld is a portal with an app at app.example.com for everyone, and amy, staff in
// the group ops, signed in in her browser.
type forwardWorld struct {
	a   *testApp
	amy *browser
	ops int64
}

const appURL = "http://" + appHost + "/page?q=1"

func newForwardWorld(t *testing.T) forwardWorld {
	t.Helper()
	a := newForwardApp(t)
	amy := a.createUser("amy", db.RoleStaff, "correct horse battery")
	ctx := context.Background()
	g, err := a.db.CreateGroup(ctx, "ops", db.Event{At: a.clock()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.db.AddGroupMember(ctx, g.ID, amy.ID, db.Event{At: a.clock()}); err != nil {
		t.Fatal(err)
	}
	a.addApp(t, db.AppInput{Host: appHost})
	b := a.browser()
	b.signIn("amy", "correct horse battery", "")
	return forwardWorld{a: a, amy: b, ops: g.ID}
}

// verify asks /auth/verify from the proxy with the browser's cookies for rawURL.
func (w forwardWorld) verify(b *browser, rawURL string, edit func(*http.Request)) *http.Response {
	req := verifyRequest(proxyAddr, rawURL)
	if edit != nil {
		edit(req)
	}
	u, _ := url.Parse(rawURL)
	return b.send(req, u)
}

func TestAuthVerifyAnswers(t *testing.T) {
	w := newForwardWorld(t)
	a := w.a

	t.Run("a trusted proxy gets the Remote headers of the signed-in user", func(t *testing.T) {
		resp := w.verify(w.amy, appURL, nil)
		wantStatus(t, resp, http.StatusOK)
		want := map[string]string{"Remote-User": "amy", "Remote-Name": "amy", "Remote-Email": "", "Remote-Role": "staff", "Remote-Groups": "ops"}
		for name, v := range want {
			if got, ok := resp.Header[name]; !ok || got[0] != v {
				t.Errorf("%s = %q, want %q", name, got, v)
			}
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Error("the answer may be cached")
		}
	})
	t.Run("Remote headers a client sent are never passed through", func(t *testing.T) {
		resp := w.verify(w.amy, appURL, func(r *http.Request) {
			r.Header.Set("Remote-User", "root")
			r.Header.Set("Remote-Role", "admin")
			r.Header.Set("Remote-Groups", "admins")
			r.Header.Set("Remote-Email", "root@example.com")
		})
		wantStatus(t, resp, http.StatusOK)
		if resp.Header.Get("Remote-User") != "amy" || resp.Header.Get("Remote-Role") != "staff" ||
			resp.Header.Get("Remote-Groups") != "ops" || resp.Header.Get("Remote-Email") != "" {
			t.Fatalf("spoofed headers leaked: %v", resp.Header)
		}
		resp = w.verify(a.browser(), appURL, func(r *http.Request) { r.Header.Set("Remote-User", "amy") })
		wantStatus(t, resp, http.StatusFound)
		for _, name := range remoteHeaders {
			if _, ok := resp.Header[name]; ok {
				t.Errorf("a refused request answered with %s", name)
			}
		}
	})
	t.Run("an untrusted peer is refused even with a forwarded address of a trusted one", func(t *testing.T) {
		for _, peer := range []string{"192.0.2.10:5555", "[2001:db8::5]:443", "[::2]:80", "127.0.0.2:9"} {
			req := verifyRequest(peer, appURL)
			req.Header.Set("X-Forwarded-For", "127.0.0.1")
			req.Header.Set("X-Real-IP", "127.0.0.1")
			u, _ := url.Parse(appURL)
			resp := w.amy.send(req, u)
			wantStatus(t, resp, http.StatusForbidden)
			if resp.Header.Get("Remote-User") != "" || len(resp.Header.Values("Set-Cookie")) != 0 {
				t.Errorf("peer %s: answered with user headers or cookies: %v", peer, resp.Header)
			}
		}
	})
	t.Run("an IPv6 proxy is answered when trusted", func(t *testing.T) {
		req := verifyRequest("[::1]:40000", appURL)
		u, _ := url.Parse(appURL)
		wantStatus(t, w.amy.send(req, u), http.StatusOK)
		req = verifyRequest("[::ffff:127.0.0.1]:40000", appURL)
		wantStatus(t, w.amy.send(req, u), http.StatusOK)
	})
	t.Run("nginx's X-Original-URL with mode=status", func(t *testing.T) {
		ask := func(b *browser) *http.Response {
			req := httptest.NewRequest(http.MethodGet, portalBase+"/auth/verify?mode=status", nil)
			req.RemoteAddr = proxyAddr
			req.Header.Set("X-Original-URL", appURL)
			u, _ := url.Parse(appURL)
			return b.send(req, u)
		}
		resp := ask(w.amy)
		wantStatus(t, resp, http.StatusOK)
		if resp.Header.Get("Remote-User") != "amy" {
			t.Fatalf("Remote-User %q", resp.Header.Get("Remote-User"))
		}
		resp = ask(a.browser())
		wantStatus(t, resp, http.StatusUnauthorized)
		if loc := resp.Header.Get("Location"); loc != portalBase+"/login?next="+url.QueryEscape(appURL) {
			t.Errorf("the 401 says to go to %q", loc)
		}
	})
	t.Run("a signed-out browser is sent to sign in with the original URL", func(t *testing.T) {
		resp := w.verify(a.browser(), appURL, nil)
		wantStatus(t, resp, http.StatusFound)
		if loc := resp.Header.Get("Location"); loc != portalBase+"/login?next="+url.QueryEscape(appURL) {
			t.Fatalf("Location %q", loc)
		}
	})
	t.Run("an unregistered host is refused without reading the session", func(t *testing.T) {
		resp := w.verify(w.amy, "http://other.example.com/", nil)
		wantStatus(t, resp, http.StatusForbidden)
		if !strings.Contains(body(t, resp), "No app is registered at other.example.com") ||
			!strings.Contains(body(t, resp), `id="request-id"`) {
			t.Fatalf("refusal page: %s", body(t, resp))
		}
	})
	t.Run("a proxy that does not say what was asked gets a 400", func(t *testing.T) {
		for name, edit := range map[string]func(*http.Request){
			"no host":            func(r *http.Request) { r.Header.Del("X-Forwarded-Host") },
			"a list of hosts":    func(r *http.Request) { r.Header.Set("X-Forwarded-Host", appHost+", evil.example") },
			"a host with a user": func(r *http.Request) { r.Header.Set("X-Forwarded-Host", "evil@"+appHost) },
			"another scheme":     func(r *http.Request) { r.Header.Set("X-Forwarded-Proto", "javascript") },
			"a URI not a path":   func(r *http.Request) { r.Header.Set("X-Forwarded-Uri", "http://evil.example/") },
			"a relative URL":     func(r *http.Request) { r.Header.Del("X-Forwarded-Host"); r.Header.Set("X-Original-URL", "/page") },
		} {
			resp := w.verify(w.amy, appURL, edit)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s: status %d, want 400", name, resp.StatusCode)
			}
		}
	})
	t.Run("a revoked session is sent to sign in", func(t *testing.T) {
		b := a.browser()
		b.signIn("amy", "correct horse battery", "")
		wantStatus(t, w.verify(b, appURL, nil), http.StatusOK)
		s, _, err := a.db.SessionByTokenHash(context.Background(), auth.HashToken(b.cookieNamed(portalBase, "gatehouse_session")))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.db.RevokeUserSession(context.Background(), s.UserID, s.ID, db.Event{}); err != nil {
			t.Fatal(err)
		}
		resp := w.verify(b, appURL, nil)
		wantRedirect(t, resp, portalBase+"/login?ended=1&next=")
	})
}

func TestAuthVerifyDisabledUser(t *testing.T) {
	w := newForwardWorld(t)
	amy, _ := w.a.db.UserByUsername(context.Background(), "amy")
	wantStatus(t, w.amy.get(appURL), http.StatusOK)
	if _, err := w.a.db.SetDisabled(context.Background(), amy.ID, true, db.Event{At: w.a.clock()}); err != nil {
		t.Fatal(err)
	}
	wantRedirect(t, w.amy.get(appURL), portalBase+"/login?ended=1&next=")
}

func TestAuthVerifyAudiences(t *testing.T) {
	a := newForwardApp(t)
	ctx := context.Background()
	a.createUser("amy", db.RoleStaff, "correct horse battery")
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	bob := a.createUser("bob", db.RoleStaff, "correct horse battery")
	g, _ := a.db.CreateGroup(ctx, "night, shift", db.Event{At: a.clock()})
	if err := a.db.AddGroupMember(ctx, g.ID, bob.ID, db.Event{At: a.clock()}); err != nil {
		t.Fatal(err)
	}
	a.addApp(t, db.AppInput{Host: "admin.example.com", Audience: db.Audience{Roles: []string{db.RoleAdmin}}})
	a.addApp(t, db.AppInput{Host: "night.example.com", Audience: db.Audience{GroupIDs: []int64{g.ID}}})
	browsers := map[string]*browser{}
	for _, name := range []string{"amy", "root", "bob"} {
		browsers[name] = a.browser()
		browsers[name].signIn(name, "correct horse battery", "")
	}
	for _, tc := range []struct {
		user, url string
		want      int
	}{
		{"root", "http://admin.example.com/", 200},
		{"amy", "http://admin.example.com/", 403},
		{"bob", "http://night.example.com/", 200},
		{"amy", "http://night.example.com/", 403},
		{"root", "http://night.example.com/", 403},
	} {
		resp := browsers[tc.user].get(tc.url)
		if resp.StatusCode != tc.want {
			t.Errorf("%s at %s: status %d, want %d", tc.user, tc.url, resp.StatusCode, tc.want)
		}
	}
	t.Run("a group name with a comma stays one group", func(t *testing.T) {
		resp := browsers["bob"].get("http://night.example.com/")
		if got := resp.Header.Get("Remote-Groups"); got != "night%2C shift" {
			t.Fatalf("Remote-Groups %q", got)
		}
	})
	t.Run("deleting the only group of an audience lets nobody pass", func(t *testing.T) {
		if err := a.db.DeleteGroup(ctx, g.ID, db.Event{At: a.clock()}); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, browsers["bob"].get("http://night.example.com/"), http.StatusForbidden)
	})
	t.Run("a removed app is refused at its next request", func(t *testing.T) {
		app, _ := a.db.AppByHost(ctx, "admin.example.com")
		wantStatus(t, browsers["root"].get("http://admin.example.com/"), http.StatusOK)
		if err := a.db.DeleteApp(ctx, app.ID, db.Event{At: a.clock()}); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, browsers["root"].get("http://admin.example.com/"), http.StatusForbidden)
	})
}

// TestAuthVerifyWritesOnlyTheLastSeenMark: the check hashes no password and writes
// nothing but the session's last-seen mark, at most once a minute, which keeps the portal
// session alive while the user works in an app.
func TestAuthVerifyWritesOnlyTheLastSeenMark(t *testing.T) {
	w := newForwardWorld(t)
	a := w.a
	w.a.addApp(t, db.AppInput{Host: "read.example.com", MustReadFirst: true, RequireMFA: false})
	stranger := a.browser()
	hashes := a.hasher.Computations()
	before := dumpAll(t, a)
	for range 5 {
		wantStatus(t, w.amy.get(appURL), http.StatusOK)
		wantStatus(t, w.amy.get("http://read.example.com/"), http.StatusOK)
		wantStatus(t, stranger.get(appURL), http.StatusFound)
		wantStatus(t, w.amy.get("http://nowhere.example.com/"), http.StatusForbidden)
	}
	if after := dumpAll(t, a); !maps.Equal(before, after) {
		t.Error("checks within a minute of sign-in wrote to the database")
	}
	if n := a.hasher.Computations() - hashes; n != 0 {
		t.Errorf("the checks computed %d password hashes", n)
	}

	// Fifty minutes of work in the app, a check every ten: the session never idles out
	// (the limit is an hour), and the portal still knows the user afterwards.
	for range 5 {
		a.advance(10 * time.Minute)
		wantStatus(t, w.amy.get(appURL), http.StatusOK)
	}
	a.advance(20 * time.Minute)
	wantStatus(t, w.amy.get(portalBase+"/"), http.StatusOK)
	before = dumpAll(t, a, "sessions")
	wantStatus(t, w.amy.get(appURL), http.StatusOK)
	if after := dumpAll(t, a, "sessions"); !maps.Equal(before, after) {
		t.Error("a check wrote to a table other than sessions")
	}
}

// TestEachProxysHeaderSet: Caddy, Traefik and nginx each describe the request they ask
// about in their own headers, and each gets the same answers.
func TestEachProxysHeaderSet(t *testing.T) {
	w := newForwardWorld(t)
	const page = "https://" + appHost + "/wiki/Page?a=1&b=two"
	sets := map[string]map[string]string{
		"Caddy": {"X-Forwarded-Method": "GET", "X-Forwarded-Proto": "https", "X-Forwarded-Host": appHost,
			"X-Forwarded-Uri": "/wiki/Page?a=1&b=two", "X-Forwarded-For": "198.51.100.7"},
		"Traefik": {"X-Forwarded-Method": "GET", "X-Forwarded-Proto": "https", "X-Forwarded-Host": appHost,
			"X-Forwarded-Port": "443", "X-Forwarded-Uri": "/wiki/Page?a=1&b=two", "X-Forwarded-Server": "traefik",
			"X-Real-Ip": "198.51.100.7", "X-Forwarded-For": "198.51.100.7"},
		"nginx": {"X-Original-URL": page, "X-Original-Method": "GET"},
	}
	for name, set := range sets {
		t.Run(name, func(t *testing.T) {
			for _, b := range []*browser{w.amy, w.a.browser()} {
				req := httptest.NewRequest(http.MethodGet, portalBase+"/auth/verify", nil)
				req.RemoteAddr = proxyAddr
				for k, v := range set {
					req.Header.Set(k, v)
				}
				u, _ := url.Parse(page)
				resp := b.send(req, u)
				switch {
				case b == w.amy && (resp.StatusCode != http.StatusOK || resp.Header.Get("Remote-User") != "amy"):
					t.Errorf("signed in: status %d, Remote-User %q", resp.StatusCode, resp.Header.Get("Remote-User"))
				case b != w.amy && resp.Header.Get("Location") != portalBase+"/login?next="+url.QueryEscape(page):
					t.Errorf("signed out: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
				}
			}
		})
	}
}

// TestAuthVerifySendsTheUsersAddress: Remote-Email is the user's confirmed address, empty
// for a user without one; a change still waiting for its link is not the address yet, and
// a removed address is gone from the next answer.
func TestAuthVerifySendsTheUsersAddress(t *testing.T) {
	a := newMailApp(t, forwardConfig(t, portalBase, "example.com"))
	amy := a.createUser("amy", db.RoleStaff, "correct horse battery")
	a.addApp(t, db.AppInput{Host: appHost})
	w := forwardWorld{a: a, amy: a.browser()}
	w.amy.signIn("amy", "correct horse battery", "")
	email := func() string {
		t.Helper()
		resp := w.verify(w.amy, appURL, nil)
		wantStatus(t, resp, http.StatusOK)
		got, ok := resp.Header["Remote-Email"]
		if !ok || len(got) != 1 {
			t.Fatalf("Remote-Email sent as %q", got)
		}
		return got[0]
	}
	if got := email(); got != "" {
		t.Fatalf("without an address: Remote-Email %q", got)
	}
	if err := a.db.SetEmail(context.Background(), amy.ID, "Amy.Pond@Example.com", db.Event{At: a.clock()}); err != nil {
		t.Fatal(err)
	}
	if got := email(); got != "Amy.Pond@Example.com" {
		t.Fatalf("with an address: Remote-Email %q", got)
	}
	w.amy.get(portalBase + "/account/email")
	wantRedirect(t, w.amy.post("/account/email", url.Values{"email": {"amy@elsewhere.example"}}), "/account/email")
	if got := email(); got != "Amy.Pond@Example.com" {
		t.Fatalf("with a change waiting for its link: Remote-Email %q", got)
	}
	w.amy.get(portalBase + "/account/email")
	wantRedirect(t, w.amy.post("/account/email/remove", nil), "/account")
	if got := email(); got != "" {
		t.Fatalf("after the address was removed: Remote-Email %q", got)
	}
}

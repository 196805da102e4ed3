package handlers

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/internal/softauthn"
)

// sessionCookiesHeld lists the session cookies (any name of the history) the browser would
// send to rawURL.
func (b *browser) sessionCookiesHeld(rawURL string) []string {
	u, _ := url.Parse(rawURL)
	var out []string
	for _, ck := range b.jar.Cookies(u) {
		if slices.ContainsFunc(sessionCookieHistory, func(v cookieVariant) bool { return v.Name == ck.Name }) {
			out = append(out, ck.Name+"="+ck.Value)
		}
	}
	return out
}

// TestCookieScopeTransitions turns --cookie-domain on and off, moves between http and https
// and from one domain to another, each way, with a browser signed in before the change.
// Whatever it holds, its next visit (to the portal or to an app) gets at most one redirect
// to a login page that renders, every stale variant of the cookie is expired there, and
// signing in again works on the portal and the apps alike: never half signed in.
func TestCookieScopeTransitions(t *testing.T) {
	type scope struct{ scheme, domain string }
	for _, tc := range []struct {
		name     string
		from, to scope
		// sent: the browser still sends the old cookie after the change (not a Secure one
		// over plain http), so the login page can say the session ended.
		sent bool
	}{
		{"off to on", scope{"http", ""}, scope{"http", "example.com"}, true},
		{"on to off", scope{"http", "example.com"}, scope{"http", ""}, true},
		{"http to https", scope{"http", ""}, scope{"https", ""}, true},
		{"https to http", scope{"https", ""}, scope{"http", ""}, false},
		{"http to https with a domain", scope{"http", "example.com"}, scope{"https", "example.com"}, true},
		{"https to http with a domain", scope{"https", "example.com"}, scope{"http", "example.com"}, false},
		{"https off to on", scope{"https", ""}, scope{"https", "example.com"}, true},
		{"https on to off", scope{"https", "example.com"}, scope{"https", ""}, true},
		{"on to another domain", scope{"http", "example.com"}, scope{"http", "portal.example.com"}, true},
		{"another domain to on", scope{"http", "portal.example.com"}, scope{"http", "example.com"}, true},
	} {
		for _, first := range []string{"portal", "app"} {
			t.Run(tc.name+", then the "+first, func(t *testing.T) {
				a := newTestApp(t, forwardConfig(t, tc.from.scheme+"://portal.example.com", tc.from.domain))
				a.createUser("amy", db.RoleStaff, "correct horse battery")
				a.addApp(t, db.AppInput{Host: appHost})
				a.addApp(t, db.AppInput{Host: "portal.example.com:8443"})
				b := a.browser()
				b.signIn("amy", "correct horse battery", "")
				portal := tc.from.scheme + "://portal.example.com/"
				wantStatus(t, b.get(portal), http.StatusOK)
				held := b.sessionCookiesHeld(portal)
				if len(held) != 1 {
					t.Fatalf("before the change the browser holds %v", held)
				}
				old := strings.SplitN(held[0], "=", 2)[1]

				a.reconfigure(forwardConfig(t, tc.to.scheme+"://portal.example.com", tc.to.domain))
				portal = tc.to.scheme + "://portal.example.com/"
				app := tc.to.scheme + "://" + appHost + "/"
				start := portal
				if first == "app" {
					start = app
				}
				hops := b.follow(start)
				last := hops[len(hops)-1]
				redirects := len(hops) - 1
				if first == "app" && !tc.sent {
					redirects-- // the app's own redirect to sign in, with no cookie to see
				}
				if last.Status != http.StatusOK || !strings.Contains(last.URL, "/login") || redirects > 1 {
					t.Fatalf("after the change: %v", hops)
				}
				if !strings.Contains(b.lastBody, `name="password"`) {
					t.Fatalf("the login page does not render: %s", b.lastBody)
				}
				if ended := strings.Contains(b.lastBody, "Your session has ended"); ended != tc.sent {
					t.Errorf("the login page says the session ended: %v, want %v", ended, tc.sent)
				}
				if _, _, err := a.db.SessionByTokenHash(context.Background(), auth.HashToken(old)); tc.sent && err != db.ErrNotFound {
					t.Errorf("the old session lives on: %v", err)
				}
				for _, u := range []string{portal, app, "http://portal.example.com/", "https://portal.example.com/"} {
					if held := b.sessionCookiesHeld(u); tc.sent && len(held) > 0 {
						t.Errorf("a stale cookie is left for %s: %v", u, held)
					}
				}

				b.signIn("amy", "correct horse battery", "")
				wantStatus(t, b.get(portal), http.StatusOK)
				if tc.to.domain == "example.com" {
					wantStatus(t, b.get(app), http.StatusOK)
				}
				wantStatus(t, b.get(tc.to.scheme+"://portal.example.com:8443/"), http.StatusOK)
				if held := b.sessionCookiesHeld(portal); len(held) != 1 {
					t.Errorf("after signing in again the browser holds %v", held)
				}
			})
		}
	}
}

// TestLegacyScopeBesideTheCurrentCookie: a browser that holds both a cookie from before a
// change of scope and a valid current one (over plain http both have the same name) keeps
// the current session and loses the old cookie, without a redirect.
func TestLegacyScopeBesideTheCurrentCookie(t *testing.T) {
	a := newTestApp(t, forwardConfig(t, portalBase, ""))
	a.createUser("amy", db.RoleStaff, "correct horse battery")
	a.addApp(t, db.AppInput{Host: "portal.example.com"})
	old := a.browser()
	old.signIn("amy", "correct horse battery", "")
	stale := old.cookieNamed(portalBase, "gatehouse_session")

	a.reconfigure(forwardConfig(t, portalBase, "example.com"))
	a.addApp(t, db.AppInput{Host: appHost})
	b := a.browser()
	b.signIn("amy", "correct horse battery", "")
	portal, _ := url.Parse(portalBase + "/")
	b.jar.SetCookies(portal, []*http.Cookie{{Name: "gatehouse_session", Value: stale, Path: "/"}})
	if n := len(b.sessionCookiesHeld(portalBase + "/")); n != 2 {
		t.Fatalf("the browser holds %d session cookies, want the old and the new", n)
	}
	resp := b.get(portalBase + "/")
	wantStatus(t, resp, http.StatusOK)
	if held := b.sessionCookiesHeld(portalBase + "/"); len(held) != 1 || strings.Contains(held[0], stale) {
		t.Fatalf("after one page the browser holds %v", held)
	}
	if _, _, err := a.db.SessionByTokenHash(context.Background(), auth.HashToken(stale)); err != db.ErrNotFound {
		t.Errorf("the session under the old scope lives on: %v", err)
	}
	wantStatus(t, b.get(appURL), http.StatusOK)
}

func TestSessionCookieWithADomain(t *testing.T) {
	for _, tc := range []struct {
		base, name string
		secure     bool
	}{
		{"http://portal.example.com", "gatehouse_session", false},
		{"https://portal.example.com", "__Secure-gatehouse_session", true},
	} {
		t.Run(tc.base, func(t *testing.T) {
			a := newTestApp(t, forwardConfig(t, tc.base, "example.com"))
			a.createUser("amy", db.RoleStaff, "correct horse battery")
			resp := a.browser().signIn("amy", "correct horse battery", "")
			var raw string
			for _, v := range resp.Header.Values("Set-Cookie") {
				if strings.HasPrefix(v, tc.name+"=") && !strings.Contains(v, "Max-Age=0") {
					raw = v
				}
			}
			for _, want := range []string{"Domain=example.com", "Path=/", "HttpOnly", "SameSite=Lax"} {
				if !strings.Contains(raw, want) {
					t.Errorf("Set-Cookie %q lacks %s", raw, want)
				}
			}
			if strings.Contains(raw, "Secure") != tc.secure {
				t.Errorf("Set-Cookie %q: Secure should be %v", raw, tc.secure)
			}
			var scope string
			if err := a.rawDB().QueryRow(`SELECT cookie_scope FROM sessions`).Scan(&scope); err != nil || scope != "example.com" {
				t.Errorf("the session's recorded scope is %q (%v)", scope, err)
			}
		})
	}
}

func TestCookieDomainsToExpire(t *testing.T) {
	for _, tc := range []struct {
		configured, host string
		want             []string
	}{
		{"", "portal.example.com", []string{"portal.example.com", "example.com"}},
		{"example.com", "portal.example.com", []string{"example.com", "portal.example.com"}},
		{"", "a.b.example.co.uk", []string{"a.b.example.co.uk", "b.example.co.uk", "example.co.uk"}},
		{"", "localhost", nil},
		{"", "127.0.0.1", nil},
		{"", "app.gatehouse.test", []string{"app.gatehouse.test", "gatehouse.test"}},
	} {
		h := &Handler{cfg: Config{CookieDomain: tc.configured}}
		if got := h.cookieDomains(tc.host); !slices.Equal(got, tc.want) {
			t.Errorf("cookieDomains(%q) with %q configured = %q, want %q", tc.host, tc.configured, got, tc.want)
		}
	}
}

// TestOnlyTheSessionCookieReachesTheApps: with --cookie-domain, the session cookie is the
// one cookie set for the whole domain. The pre-session, the CSRF token, a passkey
// ceremony's binding, the recovery codes on their way to the page and a mailed link's
// token stay cookies of the portal's host, so no app (nor anything else within the
// domain) is sent them.
func TestOnlyTheSessionCookieReachesTheApps(t *testing.T) {
	for _, base := range []string{"http://portal.example.com", "https://portal.example.com"} {
		t.Run(base, func(t *testing.T) {
			a := newMailApp(t, forwardConfig(t, base, "example.com"))
			a.mailUser("amy", db.RoleStaff, "amy@example.com")
			a.addApp(t, db.AppInput{Host: appHost})
			scheme, _, _ := strings.Cut(base, ":")
			session := sessionCookieBase
			if scheme == "https" {
				session = "__Secure-" + sessionCookieBase
			}
			b := a.browser()
			seen := map[string]bool{}
			// check records the portal's cookies and fails on any but the session's that an
			// app's host is sent, on any of the paths the portal scopes cookies to.
			check := func(after string) {
				t.Helper()
				for _, path := range []string{"/", "/login", "/login/reset", "/account/email/confirm", passkeysPage, "/account/mfa"} {
					for _, ck := range b.jar.Cookies(mustURL(t, base+path)) {
						seen[strings.TrimPrefix(strings.TrimPrefix(ck.Name, "__Host-"), "__Secure-")] = true
					}
					for _, ck := range b.jar.Cookies(mustURL(t, scheme+"://"+appHost+path)) {
						if ck.Name != session {
							t.Errorf("after %s, the app is sent the cookie %s at %s", after, ck.Name, path)
						}
					}
				}
			}
			token := b.tokenOf("/login")
			wantStatus(t, b.postJSON("/login/passkey/options", token, map[string]string{}), http.StatusOK)
			check("a passkey ceremony before sign-in")
			b.signIn("amy", pw, "")
			check("signing in")
			b.registerPasskey(softauthn.New(base), passkeysPage, "", "")
			check("adding the first passkey")
			b.get(base + "/account/email")
			wantRedirect(t, b.post("/account/email", url.Values{"email": {"amy.new@example.com"}}), "/account/email")
			b.get(base + "/login/forgot")
			wantRedirect(t, b.post("/login/forgot", url.Values{"username": {"amy"}}), "/login/forgot?sent=1")
			if sent := a.deliver(); sent != 2 {
				t.Fatalf("%d mails sent, want the confirmation and the reset link", sent)
			}
			for _, addr := range []string{"amy.new@example.com", "amy@example.com"} {
				path, tok := a.mailedLinkAt(base, addr)
				wantRedirect(t, b.get(base+path+"?token="+tok), path)
			}
			check("opening mailed links")
			for _, want := range []string{session, "gatehouse_presession", "_csrf", "gatehouse_passkey", "gatehouse_recovery",
				"gatehouse_reset", "gatehouse_confirm"} {
				if !seen[strings.TrimPrefix(want, "__Secure-")] {
					t.Errorf("the flows never set %s, so this proves nothing about it (seen %v)", want, seen)
				}
			}
		})
	}
}

func mustURL(tb testing.TB, raw string) *url.URL {
	tb.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

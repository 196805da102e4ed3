package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
)

func TestCSRF(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	signedIn := func() *client {
		c := a.client()
		c.login("alice", "correct horse battery")
		c.get("/account/sessions")
		return c
	}

	postWith := func(c *client, path string, form url.Values, headers map[string]string) *http.Response {
		req := httptest.NewRequest(http.MethodPost, testBase+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		return c.do(req)
	}
	refused := func(t *testing.T, resp *http.Response) {
		t.Helper()
		if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 403 or 400", resp.StatusCode)
		}
		b := body(t, resp)
		if !strings.Contains(b, `role="alert"`) || !strings.Contains(b, resp.Header.Get("X-Request-ID")) {
			t.Fatalf("refusal page lacks a message or request id: %.800s", b)
		}
	}

	t.Run("cross-site POST is refused with a page that says why and nothing changes", func(t *testing.T) {
		c := signedIn()
		other := a.client()
		other.login("alice", "correct horse battery")
		resp := postWith(c, "/account/sessions/revoke-others", url.Values{"_csrf": {c.csrf()}},
			map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
		refused(t, resp)
		if !strings.Contains(body(t, resp), "did not come from this portal") {
			t.Error("the page does not say why")
		}
		wantStatus(t, other.get("/"), http.StatusOK)
		if !strings.Contains(a.log.String(), resp.Header.Get("X-Request-ID")) {
			t.Error("the refusal is not in the log under its request id")
		}
	})
	t.Run("login CSRF is refused", func(t *testing.T) {
		c := a.client()
		c.get("/login")
		resp := postWith(c, "/login", url.Values{"_csrf": {c.csrf()}, "username": {"alice"}, "password": {"correct horse battery"}},
			map[string]string{"Sec-Fetch-Site": "cross-site"})
		refused(t, resp)
		if c.cookie("gatehouse_session") != "" {
			t.Fatal("a cross-site login got a session")
		}
	})
	t.Run("same-site without a token is refused", func(t *testing.T) {
		c := signedIn()
		refused(t, postWith(c, "/account/sessions/revoke-others", url.Values{}, map[string]string{"Sec-Fetch-Site": "same-site"}))
	})
	t.Run("a script without fetch metadata needs the token", func(t *testing.T) {
		c := signedIn()
		refused(t, postWith(c, "/account/sessions/revoke-others", url.Values{}, nil))
		refused(t, postWith(c, "/account/sessions/revoke-others", url.Values{"_csrf": {"made.up"}}, nil))
		resp := postWith(c, "/account/sessions/revoke-others", url.Values{"_csrf": {c.csrf()}}, nil)
		wantRedirect(t, resp, "/account/sessions")
	})
	t.Run("foreign or null Origin without fetch metadata is refused", func(t *testing.T) {
		for _, origin := range []string{"https://evil.example", "null", "http://localhost:8080.evil.example"} {
			c := signedIn()
			refused(t, postWith(c, "/account/sessions/revoke-others", url.Values{"_csrf": {c.csrf()}},
				map[string]string{"Origin": origin}))
		}
		c := signedIn()
		wantRedirect(t, postWith(c, "/account/sessions/revoke-others", url.Values{"_csrf": {c.csrf()}},
			map[string]string{"Origin": testBase}), "/account/sessions")
	})
	t.Run("a planted cookie and field pair does not pass", func(t *testing.T) {
		c := signedIn()
		c.jar.SetCookies(baseURL, []*http.Cookie{{Name: "_csrf", Value: "attacker-chosen-value"}})
		refused(t, postWith(c, "/account/sessions/revoke-others", url.Values{"_csrf": {"attacker-chosen-value"}}, nil))
	})
	t.Run("a token from another session does not pass", func(t *testing.T) {
		mallory := signedIn()
		stolenCookie, stolenField := mallory.cookie("_csrf"), mallory.csrf()
		victim := signedIn()
		victim.jar.SetCookies(baseURL, []*http.Cookie{{Name: "_csrf", Value: stolenCookie}})
		refused(t, postWith(victim, "/account/sessions/revoke-others", url.Values{"_csrf": {stolenField}}, nil))
	})
	t.Run("the token from before sign-in dies at sign-in", func(t *testing.T) {
		c := a.client()
		c.get("/login")
		before := c.csrf()
		c.post("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"}})
		c.get("/account/sessions")
		if c.csrf() == before {
			t.Fatal("the form token did not change with the session")
		}
		refused(t, postWith(c, "/account/sessions/revoke-others", url.Values{"_csrf": {before}}, nil))
	})
	t.Run("the token cookie is HttpOnly and SameSite=Strict", func(t *testing.T) {
		c := a.client()
		resp := c.get("/login")
		var raw string
		for _, v := range resp.Header.Values("Set-Cookie") {
			if strings.HasPrefix(v, "_csrf=") {
				raw = v
			}
		}
		if !strings.Contains(raw, "HttpOnly") || !strings.Contains(raw, "SameSite=Strict") {
			t.Fatalf("CSRF cookie %q", raw)
		}
	})
}

func TestErrorPages(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	a.e.GET("/test/panic", func(c echo.Context) error { panic("kaboom: secret internals") })
	a.e.GET("/test/fail", func(c echo.Context) error {
		return errors.New("sqlite: no such table: secret_table (SQL logic error)")
	})
	signed := a.client()
	signed.login("alice", "correct horse battery")

	for _, tc := range []struct {
		name   string
		c      *client
		method string
		path   string
		body   string
		want   int
	}{
		{"unknown path signed out", a.client(), http.MethodGet, "/no/such/page", "", http.StatusNotFound},
		{"unknown path signed in", signed, http.MethodGet, "/no/such/page", "", http.StatusNotFound},
		{"unknown admin path signed out", a.client(), http.MethodGet, "/admin/nothing-here", "", http.StatusNotFound},
		{"wrong method", signed, http.MethodPut, "/login", "", http.StatusMethodNotAllowed},
		{"TRACE", a.client(), "TRACE", "/", "", http.StatusMethodNotAllowed},
		{"panic", signed, http.MethodGet, "/test/panic", "", http.StatusInternalServerError},
		{"internal error", signed, http.MethodGet, "/test/fail", "", http.StatusInternalServerError},
		{"oversized body", a.client(), http.MethodPost, "/login", "username=" + strings.Repeat("a", bodyLimit+1), http.StatusRequestEntityTooLarge},
		{"invalid UTF-8", a.client(), http.MethodPost, "/login", "username=%FF%FE%C3%28&password=x", http.StatusBadRequest},
		{"NUL byte", a.client(), http.MethodPost, "/login", "username=admin%00&password=x", http.StatusBadRequest},
		{"path trick on static files", a.client(), http.MethodGet, "/static/../../etc/passwd", "", http.StatusNotFound},
		{"static directory listing", a.client(), http.MethodGet, "/static/css/", "", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, testBase+tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Sec-Fetch-Site", "same-origin")
			}
			resp := tc.c.do(req)
			wantStatus(t, resp, tc.want)
			b := body(t, resp)
			rid := resp.Header.Get("X-Request-ID")
			if rid == "" || !strings.Contains(b, `<code id="request-id">`+rid+`</code>`) {
				t.Fatalf("page lacks request id %q: %.1000s", rid, b)
			}
			for _, leak := range []string{"goroutine", ".go:", "panic", "kaboom", "sqlite", "SQL", "secret", "/usr/", `"error":`} {
				if strings.Contains(b, leak) {
					t.Errorf("page leaks %q", leak)
				}
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type %q", ct)
			}
			if !strings.Contains(a.log.String(), rid) {
				t.Errorf("log has no line with request id %s", rid)
			}
		})
	}
	t.Run("the process survives a panic", func(t *testing.T) {
		wantStatus(t, a.client().get("/login"), http.StatusOK)
	})
	t.Run("the log keeps the cause", func(t *testing.T) {
		if !strings.Contains(a.log.String(), "secret_table") || !strings.Contains(a.log.String(), "kaboom") {
			t.Fatal("causes missing from the log")
		}
	})
	t.Run("a client-sent request id is not trusted", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, testBase+"/nope", nil)
		req.Header.Set("X-Request-ID", "forged\nline")
		if got := a.serve(req).Header.Get("X-Request-ID"); got == "forged\nline" || len(got) != 24 {
			t.Fatalf("request id %q", got)
		}
	})
}

func TestSecurityHeaders(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	for _, path := range []string{"/", "/login", "/account", "/nope", "/static/css/gatehouse.css", "/healthz"} {
		t.Run(path, func(t *testing.T) {
			resp := c.get(path)
			h := resp.Header
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'", "script-src 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %s", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("CSP allows unsafe script: %q", csp)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "same-origin" {
				t.Errorf("nosniff/referrer: %q %q", h.Get("X-Content-Type-Options"), h.Get("Referrer-Policy"))
			}
			if h.Get("X-XSS-Protection") != "" || h.Get("X-Powered-By") != "" || h.Get("Server") != "" {
				t.Error("sends a header it must not")
			}
			if h.Get("Access-Control-Allow-Origin") != "" {
				t.Error("CORS header sent")
			}
			if !strings.HasPrefix(path, "/static/") && h.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", h.Get("Cache-Control"))
			}
		})
	}
}

func TestHealthAndReadiness(t *testing.T) {
	a := newTestApp(t)
	wantStatus(t, a.client().get("/healthz"), http.StatusOK)
	wantStatus(t, a.client().get("/readyz"), http.StatusOK)
	a.db.Close()
	wantStatus(t, a.client().get("/readyz"), http.StatusServiceUnavailable)
}

func TestUnauthenticatedPagesRedirectOnce(t *testing.T) {
	a := newTestApp(t)
	for _, path := range []string{"/", "/account", "/account/password", "/account/sessions"} {
		resp, hops := follow(a.client(), path, 10)
		if hops != 1 {
			t.Errorf("%s: %d hops", path, hops)
		}
		wantStatus(t, resp, http.StatusOK)
	}
}

func TestForwardedForIsBelievedOnlyFromTrustedProxies(t *testing.T) {
	_, proxy, _ := net.ParseCIDR("10.0.0.0/8")
	for _, tc := range []struct {
		name    string
		trusted []*net.IPNet
		peer    string
		xff     string
		want    string
	}{
		{"ignored by default", nil, "192.0.2.10:1234", "203.0.113.7", "192.0.2.10"},
		{"ignored from an untrusted peer", []*net.IPNet{proxy}, "192.0.2.10:1234", "203.0.113.7", "192.0.2.10"},
		{"believed from a trusted proxy", []*net.IPNet{proxy}, "10.1.2.3:1234", "203.0.113.7", "203.0.113.7"},
		{"a forged head of the chain is not believed", []*net.IPNet{proxy}, "10.1.2.3:1234", "6.6.6.6, 203.0.113.7", "203.0.113.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestApp(t, func(c *Config) { c.TrustedProxies = tc.trusted })
			a.createUser("alice", db.RoleStaff, "correct horse battery")
			c := a.client()
			c.get("/login")
			req := httptest.NewRequest(http.MethodPost, testBase+"/login", strings.NewReader(url.Values{
				"username": {"alice"}, "password": {"wrong horse battery"}, "_csrf": {c.csrf()}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			req.Header.Set("X-Forwarded-For", tc.xff)
			req.RemoteAddr = tc.peer
			c.do(req)
			evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "signin.password"})
			if len(evs) != 1 || evs[0].ClientAddr != tc.want {
				t.Fatalf("audited address %+v, want %s", evs, tc.want)
			}
		})
	}
}

// TestPlantedCSRFTokenCannotSignTheVictimIn: a token the attacker got from the portal in
// their own browser, planted with its cookie in the victim's browser, must not log the
// victim into the attacker's account, whether the victim's browser sends Sec-Fetch-Site
// (same-site attacker) or not (an old browser, a script).
func TestPlantedCSRFTokenCannotSignTheVictimIn(t *testing.T) {
	a := newTestApp(t)
	a.createUser("mallory", db.RoleStaff, "correct horse battery")
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	for _, site := range []string{"same-site", ""} {
		t.Run("Sec-Fetch-Site "+strconv.Quote(site), func(t *testing.T) {
			attacker := a.client()
			attacker.get("/login")
			cookie, field := attacker.cookie("_csrf"), attacker.csrf()
			if cookie == "" || field == "" {
				t.Fatal("the attacker got no token")
			}

			victim := a.client()
			victim.get("/login")
			presession := victim.cookie("gatehouse_presession")
			victim.jar.SetCookies(baseURL, []*http.Cookie{{Name: "_csrf", Value: cookie}})
			victim.fetchSite = site
			resp := victim.post("/login", url.Values{"_csrf": {field}, "username": {"mallory"}, "password": {"correct horse battery"}})
			wantStatus(t, resp, http.StatusForbidden)
			if b := body(t, resp); !strings.Contains(b, `role="alert"`) || !strings.Contains(b, resp.Header.Get("X-Request-ID")) {
				t.Fatalf("the refusal is not a page with a reason and request id: %.800s", b)
			}
			if victim.cookie("gatehouse_session") != "" {
				t.Fatal("the victim was signed in to the attacker's account")
			}
			if presession == "" || victim.cookie("gatehouse_presession") != presession {
				t.Errorf("pre-session cookie %q before the refusal, %q after", presession, victim.cookie("gatehouse_presession"))
			}
		})
	}
	for _, site := range []string{"same-origin", "same-site", ""} {
		t.Run("sign-in works with Sec-Fetch-Site "+strconv.Quote(site), func(t *testing.T) {
			c := a.client()
			c.fetchSite = site
			c.login("alice", "correct horse battery")
			wantStatus(t, c.get("/"), http.StatusOK)
		})
	}
	t.Run("the pre-session ends at sign-in, so its tokens stay dead after sign-out", func(t *testing.T) {
		c := a.client()
		c.fetchSite = ""
		c.get("/login")
		before, presession := c.csrf(), c.cookie("gatehouse_presession")
		c.login("alice", "correct horse battery")
		if c.cookie("gatehouse_presession") != "" {
			t.Fatal("the pre-session cookie outlived sign-in")
		}
		c.get("/")
		wantRedirect(t, c.post("/logout", nil), "/login")
		c.get("/login")
		if got := c.cookie("gatehouse_presession"); got == "" || got == presession {
			t.Fatalf("pre-session after sign-out %q, before sign-in %q", got, presession)
		}
		wantStatus(t, c.post("/login", url.Values{"_csrf": {before}, "username": {"alice"}, "password": {"correct horse battery"}}),
			http.StatusForbidden)
	})
	t.Run("a planted pre-session does not carry an old token over", func(t *testing.T) {
		attacker := a.client()
		attacker.get("/login")
		victim := a.client()
		victim.fetchSite = ""
		victim.get("/login")
		// Two values under the name, as a sibling host could add one: neither is trusted.
		victim.jar.SetCookies(&url.URL{Scheme: "http", Host: "localhost:8080", Path: "/login"}, []*http.Cookie{
			{Name: "gatehouse_presession", Value: attacker.cookie("gatehouse_presession"), Path: "/login"}})
		victim.jar.SetCookies(baseURL, []*http.Cookie{{Name: "_csrf", Value: attacker.cookie("_csrf")}})
		resp := victim.post("/login", url.Values{"_csrf": {attacker.csrf()}, "username": {"mallory"}, "password": {"correct horse battery"}})
		wantStatus(t, resp, http.StatusForbidden)
	})
}

// TestCSRFCookiesArePrefixedUnderHTTPS: under https the CSRF and pre-session cookies carry
// the __Host- prefix and Secure, so neither a sibling host nor a plain-http response can set
// them; under plain http they keep their bare names.
func TestCSRFCookiesArePrefixedUnderHTTPS(t *testing.T) {
	for _, tc := range []struct {
		base   string
		names  []string
		secure bool
	}{
		{"http://localhost:8080", []string{"_csrf", "gatehouse_presession"}, false},
		{"https://portal.example", []string{"__Host-_csrf", "__Host-gatehouse_presession"}, true},
	} {
		t.Run(tc.base, func(t *testing.T) {
			a := newTestApp(t, func(c *Config) { c.BaseURL, _ = url.Parse(tc.base) })
			a.createUser("alice", db.RoleStaff, "correct horse battery")
			resp := a.client().get("/login")
			got := map[string]*http.Cookie{}
			for _, ck := range resp.Cookies() {
				got[ck.Name] = ck
			}
			for _, name := range tc.names {
				ck := got[name]
				if ck == nil {
					t.Fatalf("no %s cookie; Set-Cookie: %q", name, resp.Header.Values("Set-Cookie"))
				}
				if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Domain != "" || ck.Secure != tc.secure {
					t.Errorf("%s: HttpOnly %v, SameSite %v, Path %q, Domain %q, Secure %v", name,
						ck.HttpOnly, ck.SameSite, ck.Path, ck.Domain, ck.Secure)
				}
			}
			if len(got) != len(tc.names) {
				t.Errorf("cookies set: %q", resp.Header.Values("Set-Cookie"))
			}
			if tc.secure {
				req := newGet("/login")
				req.AddCookie(&http.Cookie{Name: "_csrf", Value: "left.from-before-https"})
				expired := false
				for _, ck := range a.serve(req).Cookies() {
					expired = expired || ck.Name == "_csrf" && ck.MaxAge < 0
				}
				if !expired {
					t.Error("the bare token cookie from before https was not expired")
				}
			}
			for _, site := range []string{"same-origin", ""} {
				c := a.client()
				c.fetchSite = site
				c.login("alice", "correct horse battery")
				wantStatus(t, c.get("/"), http.StatusOK)
			}
		})
	}
}

// TestMultipartFormIsRefused: the input checks run on urlencoded bodies, and the handlers
// would read a multipart body too, so any other body type must not reach them: a multipart
// notice with invalid UTF-8 and a NUL would otherwise be stored as sent.
func TestMultipartFormIsRefused(t *testing.T) {
	a := newTestApp(t)
	a.createUser("pub", db.RolePublisher, "correct horse battery")
	pub := a.client()
	pub.login("pub", "correct horse battery")
	pub.get("/admin/notices")
	token := pub.csrf()

	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range map[string]string{"_csrf": token, "title": "bad \xff\xfe title", "body": "nul \x00 here",
		"kind": "normal", "severity": "info", "audience": "everyone"} {
		_ = mw.WriteField(k, v)
	}
	_ = mw.Close()
	for _, tc := range []struct {
		name, contentType, body string
	}{
		{"multipart", mw.FormDataContentType(), buf.String()},
		{"text/plain", "text/plain", "title=plain&body=text&kind=normal&severity=info&audience=everyone&_csrf=" + token},
		{"urlencoded body without a Content-Type", "", "title=none&body=text&kind=normal&severity=info&audience=everyone&_csrf=" + token},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, testBase+"/admin/notices", strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			resp := pub.do(req)
			wantStatus(t, resp, http.StatusUnsupportedMediaType)
			if b := body(t, resp); !strings.Contains(b, `<code id="request-id">`+resp.Header.Get("X-Request-ID")+`</code>`) ||
				!strings.Contains(b, `role="alert"`) {
				t.Fatalf("not a portal error page: %.800s", b)
			}
			if ns, err := a.db.ListNotices(context.Background(), 0, 10, a.clock()); err != nil || len(ns) != 0 {
				t.Fatalf("notices stored: %d, %v", len(ns), err)
			}
		})
	}
	t.Run("a form post and an empty one still pass", func(t *testing.T) {
		wantRedirect(t, pub.post("/admin/notices", noticeForm("Fine", "Plain words.", "normal", "everyone")), "/admin/notices/")
		req := httptest.NewRequest(http.MethodPost, testBase+"/logout", nil)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		wantRedirect(t, pub.do(req), "/login")
	})
}

// TestInvalidQueryTextIsRefused: query strings get the same checks as forms, so invalid
// UTF-8 or a NUL never reaches a page or a database query.
func TestInvalidQueryTextIsRefused(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	admin := a.client()
	admin.login("root", "correct horse battery")
	for _, path := range []string{"/admin/audit?actor=%FF", "/admin/users?q=%00", "/admin/audit?kind=x%C3%28",
		"/login?next=/%FF", "/?msg=%00"} {
		t.Run(path, func(t *testing.T) {
			resp := admin.get(path)
			wantStatus(t, resp, http.StatusBadRequest)
			if b := body(t, resp); !strings.Contains(b, `<code id="request-id">`+resp.Header.Get("X-Request-ID")+`</code>`) ||
				strings.Contains(b, "\xff") || strings.Contains(b, "\x00") {
				t.Fatalf("not a clean error page: %.800s", b)
			}
		})
	}
	wantStatus(t, admin.get("/admin/audit?actor=r%C3%B6ot"), http.StatusOK)
}

// logLines returns the JSON log records that carry request id rid.
func (a *testApp) logLines(tb testing.TB, rid string) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, l := range strings.Split(a.log.String(), "\n") {
		if l == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			tb.Fatalf("log line %q: %v", l, err)
		}
		if rec["request_id"] == rid {
			out = append(out, rec)
		}
	}
	return out
}

// TestRefusalsAreLoggedOnce: every response of 400 or more, whether an error returned by a
// handler or a page a handler renders with an error status itself (a failed sign-in, a
// form with problems), leaves exactly one log line under its request id: at WARN for 4xx
// and ERROR for 5xx, never both, never none.
func TestRefusalsAreLoggedOnce(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	a.e.GET("/test/fail", func(c echo.Context) error { return errors.New("db: something broke") })
	a.e.GET("/test/panic", func(c echo.Context) error { panic("kaboom") })
	admin := a.client()
	admin.login("root", "correct horse battery")
	admin.get("/admin/groups")
	a.createUser("tess", db.RoleStaff, "correct horse battery")
	tess := a.client()
	tess.login("tess", "correct horse battery")
	secret, _ := tess.enroll(t)
	a.advance(time.Minute)
	for _, tc := range []struct {
		name  string
		do    func(*testing.T) *http.Response
		want  int
		level string
	}{
		{"a wrong password", func(t *testing.T) *http.Response {
			c := a.client()
			c.get("/login")
			return c.post("/login", url.Values{"username": {"root"}, "password": {"wrong horse battery"}})
		}, http.StatusUnauthorized, "WARN"},
		{"a form error", func(t *testing.T) *http.Response {
			return admin.post("/admin/groups", url.Values{"name": {""}})
		}, http.StatusUnprocessableEntity, "WARN"},
		{"a wrong second-step code", func(t *testing.T) *http.Response {
			return a.client().loginMFA("tess", "correct horse battery", "000000")
		}, http.StatusUnauthorized, "WARN"},
		{"a replayed second-step code", func(t *testing.T) *http.Response {
			code := auth.TOTPCode(secret, a.clock())
			wantRedirect(t, a.client().loginMFA("tess", "correct horse battery", code), "/")
			return a.client().loginMFA("tess", "correct horse battery", code)
		}, http.StatusUnauthorized, "WARN"},
		{"an unknown path", func(t *testing.T) *http.Response { return admin.get("/no/such/page") }, http.StatusNotFound, "WARN"},
		{"a cross-site form", func(t *testing.T) *http.Response {
			c := a.client()
			c.fetchSite = "cross-site"
			return c.post("/login", url.Values{"username": {"root"}, "password": {"x"}})
		}, http.StatusForbidden, "WARN"},
		{"a server error", func(t *testing.T) *http.Response { return admin.get("/test/fail") }, http.StatusInternalServerError, "ERROR"},
		{"a panic", func(t *testing.T) *http.Response { return admin.get("/test/panic") }, http.StatusInternalServerError, "ERROR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.do(t)
			wantStatus(t, resp, tc.want)
			rid := resp.Header.Get("X-Request-ID")
			var loud []map[string]any
			for _, rec := range a.logLines(t, rid) {
				if rec["level"] == "WARN" || rec["level"] == "ERROR" {
					loud = append(loud, rec)
				}
			}
			if len(loud) != 1 || loud[0]["level"] != tc.level {
				t.Fatalf("want one %s line for request %s, got %v", tc.level, rid, loud)
			}
			if status, _ := loud[0]["status"].(float64); int(status) != tc.want {
				t.Errorf("logged status %v, want %d", loud[0]["status"], tc.want)
			}
			cause, _ := loud[0]["err"].(string)
			if cause == "" {
				t.Errorf("the line has no cause: %v", loud[0])
			}
			switch tc.name {
			case "a replayed second-step code":
				if !strings.Contains(cause, "replay") {
					t.Errorf("cause %q does not name the replay", cause)
				}
			case "a panic":
				if !strings.Contains(cause, "kaboom") || loud[0]["stack"] == nil {
					t.Errorf("the panic line lacks its value or stack: %q", cause)
				}
			}
		})
	}
}

// TestCanceledRequestIsNotAServerError: a client that goes away mid-request (common at the
// end of a load) is no fault of the server. Whether the database reports the canceled
// context as context.Canceled or as SQLite's own "interrupted", the request logs at info,
// and neither the server-error nor the notices-not-loaded count grows.
func TestCanceledRequestIsNotAServerError(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	admin := a.client()
	admin.login("root", "correct horse battery")
	var cancelNow context.CancelFunc
	a.e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if c.Request().Header.Get("X-Test-Cancel") != "" {
				cancelNow()
			}
			return next(c)
		}
	})
	a.e.GET("/test/interrupted", func(c echo.Context) error {
		return fmt.Errorf("db: list: %w", errors.New("interrupted (9)"))
	})
	for _, tc := range []struct {
		name, path string
		early      bool   // canceled before the request starts, else just before its handler
		logged     string // a line the request must leave, at info
	}{
		{"canceled before the session is read", "/account/sessions", true, "request canceled"},
		{"canceled while the banners are read", "/admin/users/new", false, "banners failed"},
		{"SQLite reports the cancel as interrupted", "/test/interrupted", false, "request canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.advance(liveNoticesTTL + time.Second) // the banners are read again
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cancelNow = cancel
			req := httptest.NewRequest(http.MethodGet, testBase+tc.path, nil).WithContext(ctx)
			if tc.early {
				cancel()
			} else {
				req.Header.Set("X-Test-Cancel", "1")
			}
			resp := admin.do(req)
			rid := resp.Header.Get("X-Request-ID")
			lines := a.logLines(t, rid)
			if !slices.ContainsFunc(lines, func(rec map[string]any) bool { return rec["msg"] == tc.logged && rec["level"] == "INFO" }) {
				t.Errorf("no %q line at INFO: %v", tc.logged, lines)
			}
			for _, rec := range lines {
				if rec["level"] == "ERROR" || rec["level"] == "WARN" {
					t.Errorf("a canceled request logged at %s: %v", rec["level"], rec)
				}
			}
			out := a.scrape(t)
			for _, kind := range []string{countServerError, countBannersLost} {
				if strings.Contains(out, `gatehouse_security_events_total{kind="`+kind+`"}`) {
					t.Errorf("a canceled request counted as %s", kind)
				}
			}
		})
	}
}

// TestEveryUnsafeRouteRefusesForeignForms walks the route table: every POST route, sign-in,
// sign-out and the second step included, refuses a cross-site form, a form without a token
// from a client without fetch metadata, and a token that belongs to another browser.
func TestEveryUnsafeRouteRefusesForeignForms(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	other := a.client()
	other.login("root", "correct horse battery")
	other.get("/account/sessions")
	foreignToken := other.csrf()
	stranger := a.client()
	stranger.get("/login")
	strangerToken := stranger.csrf()

	var paths []string
	for _, r := range a.e.Routes() {
		if r.Method != http.MethodPost {
			continue
		}
		p := strings.NewReplacer(":id", "1", ":uid", "1").Replace(r.Path)
		paths = append(paths, p)
	}
	for _, want := range []string{"/login", "/logout", "/login/mfa", "/setup", "/admin/notices"} {
		if !slices.Contains(paths, want) {
			t.Fatalf("route table lacks POST %s", want)
		}
	}
	for _, p := range paths {
		for _, signedIn := range []bool{false, true} {
			c := a.client()
			token := strangerToken
			if signedIn {
				c.login("root", "correct horse battery")
				c.get("/account/sessions")
				token = foreignToken
			} else {
				c.get("/login")
			}
			for _, tc := range []struct {
				site  string
				token string
			}{{"cross-site", c.csrf()}, {"", ""}, {"", token}, {"same-site", token}} {
				c.fetchSite = tc.site
				resp := c.post(p, url.Values{"_csrf": {tc.token}})
				if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusBadRequest {
					t.Errorf("POST %s (signed in %v, Sec-Fetch-Site %q, token %.8q): status %d",
						p, signedIn, tc.site, tc.token, resp.StatusCode)
				}
			}
		}
	}
}

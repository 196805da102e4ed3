package handlers

import (
	"bytes"
	"context"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/publicsuffix"

	"gatehouse/db"
)

// The forward-auth tests run a portal at portalBase and apps on other hosts of the same
// domain, reached by a browser through a proxy at proxyAddr, which asks /auth/verify about
// every request to an app the way Caddy's forward_auth does.
const (
	portalBase = "http://portal.example.com"
	appHost    = "app.example.com"
	proxyAddr  = "127.0.0.1:41000"
)

func mustNets(tb testing.TB, cidrs ...string) []*net.IPNet {
	tb.Helper()
	var out []*net.IPNet
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// forwardConfig is the portal of these tests: its own host, the cookie domain example.com
// and the proxy trusted (over IPv4 and IPv6 loopback).
func forwardConfig(tb testing.TB, base, cookieDomain string) func(*Config) {
	return func(c *Config) {
		c.BaseURL, _ = url.Parse(base)
		c.CookieDomain = cookieDomain
		c.TrustedProxies = mustNets(tb, "127.0.0.1/32", "::1/128")
	}
}

func newForwardApp(tb testing.TB) *testApp {
	tb.Helper()
	return newTestApp(tb, forwardConfig(tb, portalBase, "example.com"))
}

// reconfigure restarts the portal on the same database, key and clock with a changed
// configuration, as a restart of serve with other flags would.
func (a *testApp) reconfigure(tweak func(*Config)) {
	a.tb.Helper()
	tweak(&a.cfg)
	a.e = New(a.cfg, Deps{
		DB:     a.db,
		Log:    slog.New(slog.NewJSONHandler(a.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hasher: a.hasher,
		Keys:   a.keys,
		Now:    a.clock,
	})
}

func (a *testApp) addApp(tb testing.TB, in db.AppInput) db.App {
	tb.Helper()
	if in.Audience.Empty() {
		in.Audience = db.Audience{Everyone: true}
	}
	app, err := a.db.CreateApp(context.Background(), in, db.Event{At: a.clock(), Kind: "app.added"})
	if err != nil {
		tb.Fatalf("add app %s: %v", in.Host, err)
	}
	return app
}

// browser is one browser: a cookie jar that keeps cookies per host and domain as browsers
// do, on the portal and on the apps behind the proxy.
type browser struct {
	tb       testing.TB
	a        *testApp
	jar      *cookiejar.Jar
	lastBody string
}

func (a *testApp) browser() *browser {
	jar, err := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List})
	if err != nil {
		a.tb.Fatal(err)
	}
	return &browser{tb: a.tb, a: a, jar: jar}
}

func (b *browser) portalURL(path string) string {
	return b.a.cfg.BaseURL.Scheme + "://" + b.a.cfg.BaseURL.Host + path
}

// send runs req from the browser with the cookies it holds for u, and keeps the cookies
// the answer sets for u.
func (b *browser) send(req *http.Request, u *url.URL) *http.Response {
	for _, ck := range b.jar.Cookies(u) {
		req.AddCookie(ck)
	}
	resp := b.a.serve(req)
	if cks := resp.Cookies(); len(cks) > 0 {
		b.jar.SetCookies(u, cks)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	b.lastBody = string(raw)
	return resp
}

// get loads rawURL: a page of the portal directly, or a page of an app through the proxy.
func (b *browser) get(rawURL string) *http.Response {
	b.tb.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		b.tb.Fatal(err)
	}
	if u.Host == b.a.cfg.BaseURL.Host {
		req := httptest.NewRequest(http.MethodGet, rawURL, nil)
		req.RemoteAddr = "192.0.2.10:5555"
		return b.send(req, u)
	}
	return b.viaProxy(u)
}

// viaProxy is the proxy's part: it asks /auth/verify about the request with the browser's
// cookies for the app, and on a 2xx answers with the app's page, here the Remote-* headers
// it would pass on; any other answer goes back to the browser as it is.
func (b *browser) viaProxy(u *url.URL) *http.Response {
	req := httptest.NewRequest(http.MethodGet, portalBase+"/auth/verify", nil)
	req.RemoteAddr = proxyAddr
	req.Header.Set("X-Forwarded-Method", http.MethodGet)
	req.Header.Set("X-Forwarded-Proto", u.Scheme)
	req.Header.Set("X-Forwarded-Host", u.Host)
	req.Header.Set("X-Forwarded-Uri", u.RequestURI())
	resp := b.send(req, u)
	if resp.StatusCode/100 != 2 {
		return resp
	}
	var page strings.Builder
	page.WriteString("app page " + u.String() + "\n")
	for _, name := range remoteHeaders {
		page.WriteString(name + ": " + resp.Header.Get(name) + "\n")
	}
	b.lastBody = page.String()
	return &http.Response{StatusCode: http.StatusOK, Header: resp.Header.Clone(),
		Body: io.NopCloser(strings.NewReader(b.lastBody))}
}

// post sends a form to the portal with the token of the last portal page.
func (b *browser) post(path string, form url.Values) *http.Response {
	b.tb.Helper()
	if form == nil {
		form = url.Values{}
	}
	if !form.Has("_csrf") {
		if m := csrfField.FindStringSubmatch(b.lastBody); m != nil {
			form.Set("_csrf", m[1])
		}
	}
	req := httptest.NewRequest(http.MethodPost, b.portalURL(path), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", b.portalURL(""))
	req.RemoteAddr = "192.0.2.10:5555"
	u, _ := url.Parse(b.portalURL(path))
	return b.send(req, u)
}

// hop is one response on the way to a page.
type hop struct {
	URL      string
	Status   int
	Location string
}

// follow loads rawURL and follows redirects, across the portal and the apps, for at most
// ten hops, and returns every response on the way: a browser that needs more is looping.
func (b *browser) follow(rawURL string) []hop {
	b.tb.Helper()
	var hops []hop
	for range 10 {
		resp := b.get(rawURL)
		h := hop{URL: rawURL, Status: resp.StatusCode, Location: resp.Header.Get("Location")}
		hops = append(hops, h)
		if h.Location == "" {
			return hops
		}
		next, err := url.Parse(rawURL)
		if err != nil {
			b.tb.Fatal(err)
		}
		loc, err := next.Parse(h.Location)
		if err != nil {
			b.tb.Fatalf("Location %q: %v", h.Location, err)
		}
		rawURL = loc.String()
	}
	b.tb.Fatalf("more than ten redirects, a loop: %v", hops)
	return nil
}

// signIn signs in with the password step through the portal's form, with next.
func (b *browser) signIn(username, password, next string) *http.Response {
	b.tb.Helper()
	path := "/login"
	if next != "" {
		path += "?" + url.Values{"next": {next}}.Encode()
	}
	b.get(b.portalURL(path))
	form := url.Values{"username": {username}, "password": {password}}
	if next != "" {
		form.Set("next", next)
	}
	resp := b.post("/login", form)
	if resp.StatusCode != http.StatusSeeOther {
		b.tb.Fatalf("sign-in of %s: status %d: %.1000s", username, resp.StatusCode, b.lastBody)
	}
	return resp
}

// cookieNamed is the browser's cookie called name that it would send to rawURL.
func (b *browser) cookieNamed(rawURL, name string) string {
	u, _ := url.Parse(rawURL)
	for _, ck := range b.jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

var continueRe = regexp.MustCompile(`<a href="([^"]+)" id="continue">`)

// continueLink is the href of the page's Continue link.
func (b *browser) continueLink() string {
	b.tb.Helper()
	m := continueRe.FindStringSubmatch(b.lastBody)
	if m == nil {
		b.tb.Fatalf("no Continue link: %.2000s", b.lastBody)
	}
	return html.UnescapeString(m[1])
}

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"

	"gatehouse/db"
)

// testDomain holds the portal and the app of the proxy test; Chromium resolves its names to
// 127.0.0.1 (BrowserOptions.HostResolverRules).
const testDomain = "gatehouse.test"

// caddyfile is the proxy of the test: the portal and the app on one port over http and on
// another over https, each site bound to loopback. The app's site is the README's snippet:
// the Remote-* headers a client sent are dropped, then forward_auth asks the portal and
// copies its answer's Remote-* headers into the request the app gets.
func caddyfile(httpPort, httpsPort int, portal, app, certFile, keyFile string) string {
	site := func(scheme string, port int, name, body string) string {
		tls := ""
		if scheme == "https" {
			tls = "\n\ttls " + certFile + " " + keyFile
		}
		return fmt.Sprintf("%s://%s.%s:%d {\n\tbind 127.0.0.1%s\n%s}\n", scheme, name, testDomain, port, tls, body)
	}
	portalBody := "\treverse_proxy " + portal + "\n"
	appBody := `	route {
		request_header -Remote-User
		request_header -Remote-Name
		request_header -Remote-Email
		request_header -Remote-Role
		request_header -Remote-Groups
		forward_auth ` + portal + ` {
			uri /auth/verify
			copy_headers Remote-User Remote-Name Remote-Email Remote-Role Remote-Groups
		}
		reverse_proxy ` + app + `
	}
`
	return "{\n\tadmin off\n\tauto_https off\n}\n\n" +
		site("http", httpPort, "portal", portalBody) + site("http", httpPort, "app", appBody) +
		site("https", httpsPort, "portal", portalBody) + site("https", httpsPort, "app", appBody)
}

// proxyWorld is the portal and the echo app behind one Caddy, with a browser.
type proxyWorld struct {
	t                       *testing.T
	app                     *App
	echo                    *EchoApp
	b                       *Browser
	httpPort, httpsPort     int
	portalHTTP, portalHTTPS string
	appHTTP, appHTTPS       string
}

func (w *proxyWorld) url(scheme, name string) string {
	port := w.httpPort
	if scheme == "https" {
		port = w.httpsPort
	}
	return fmt.Sprintf("%s://%s.%s:%d", scheme, name, testDomain, port)
}

// redirectsSince reads the portal's log of requests from index from: how many redirects
// the browser was sent through (portal pages and the proxy's questions alike) and the last
// answer. More than a handful is a loop.
func (w *proxyWorld) redirectsSince(from int) (int, Request) {
	w.t.Helper()
	reqs := w.app.Requests()[from:]
	if len(reqs) == 0 {
		w.t.Fatal("the portal answered nothing")
	}
	n := 0
	for _, r := range reqs {
		if r.Status >= 300 && r.Status < 400 {
			n++
		}
	}
	if n > 4 {
		w.t.Fatalf("%d redirects, a loop: %v", n, reqs)
	}
	return n, reqs[len(reqs)-1]
}

// expectLoginAfterOneRedirect checks, after a visit that began at request index from, that
// the browser got at most one redirect and is on a login page that renders, saying the
// session ended when it still sent the old cookie (ended), and that it holds no session
// cookie for the portal or the app any more.
func (w *proxyWorld) expectLoginAfterOneRedirect(from int, ended bool, scheme string) {
	w.t.Helper()
	n, last := w.redirectsSince(from)
	if n > 1 || last.Status != http.StatusOK || !strings.HasPrefix(last.URI, "/login") {
		w.t.Fatalf("%d redirects, last %s: %v", n, last, w.app.Requests()[from:])
	}
	if w.b.URL().Path != "/login" || !w.b.Has("#password") {
		w.t.Fatalf("the browser is at %s without a sign-in form", w.b.URL())
	}
	if ended {
		w.b.ExpectText(`[role="status"]`, "session has ended")
	}
	for _, u := range []string{w.url(scheme, "portal") + "/", w.url(scheme, "app") + "/"} {
		for _, c := range w.b.CookiesFor(u) {
			if strings.Contains(c.Name, "gatehouse_session") {
				w.t.Errorf("the browser still sends %s (domain %s) to %s", c.Name, c.Domain, u)
			}
		}
	}
}

// expectApp checks that the browser shows the echo app, reached as user.
func (w *proxyWorld) expectApp(user string) {
	w.t.Helper()
	if got := w.b.URL().Hostname(); got != "app."+testDomain {
		w.t.Fatalf("the browser is at %s, want the app", w.b.URL())
	}
	w.b.ExpectText("h1", "The app")
	if got := w.b.Text("#remote-user"); got != user {
		w.t.Fatalf("the app got Remote-User %q, want %q", got, user)
	}
}

func sessionCookieOf(cs []*network.Cookie) *network.Cookie {
	for _, c := range cs {
		if strings.HasSuffix(c.Name, "gatehouse_session") {
			return c
		}
	}
	return nil
}

// TestForwardAuthThroughCaddy puts the portal's sign-in in front of an app through a real
// Caddy (Debian's) and drives it in Chromium: signing in through the app, the Remote-*
// headers the app gets (and never a client's own), a must-read detour and back, sign-out
// ending app access, and every change of cookie scope (--cookie-domain on, off and to
// another domain, http to https and back) ending in at most one redirect to a login page
// that renders, never in a loop.
func TestForwardAuthThroughCaddy(t *testing.T) {
	caddy := caddyPath(t)
	chromiumPath(t)
	const password = "correct horse battery"
	w := &proxyWorld{t: t, httpPort: freePort(t), httpsPort: freePort(t), echo: StartEchoApp(t)}
	w.portalHTTP, w.portalHTTPS = w.url("http", "portal"), w.url("https", "portal")
	w.appHTTP, w.appHTTPS = w.url("http", "app"), w.url("https", "app")
	app := StartAppWith(t, AppOptions{BaseURL: w.portalHTTP, CookieDomain: testDomain, TrustedProxies: []string{"127.0.0.1/32"}})
	w.app = app
	cert, key := selfSignedCert(t, t.TempDir(), "portal."+testDomain, "app."+testDomain)
	StartCaddy(t, caddy, caddyfile(w.httpPort, w.httpsPort, app.Addr, w.echo.Addr, cert, key), w.httpPort, w.httpsPort)

	ctx := context.Background()
	ev := db.Event{At: time.Now(), Kind: "app.added"}
	for _, port := range []int{w.httpPort, w.httpsPort} {
		if _, err := app.Store.CreateApp(ctx, db.AppInput{Host: "app." + testDomain + ":" + strconv.Itoa(port), MustReadFirst: true,
			Audience: db.Audience{Everyone: true}}, ev); err != nil {
			t.Fatal(err)
		}
	}
	root := app.CreateUser(t, db.NewUser{Username: "root", Role: db.RoleAdmin}, password)
	amy := app.CreateUser(t, db.NewUser{Username: "amy", DisplayName: "Amy Pond", Email: "amy.pond@" + testDomain}, password)
	g, err := app.Store.CreateGroup(ctx, "night shift", db.Event{At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Store.AddGroupMember(ctx, g.ID, amy.ID, db.Event{At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	w.b = NewBrowserWith(t, app, BrowserOptions{HostResolverRules: "MAP *." + testDomain + " 127.0.0.1", IgnoreCertificateErrors: true})
	b := w.b

	// Signing in through the app: it sends the browser to sign in, and signing in brings it
	// back to the page it asked for, with the user's headers.
	page := w.appHTTP + "/wiki/Start?x=1"
	b.Open(page)
	if u := b.URL(); u.Host != strings.TrimPrefix(w.portalHTTP, "http://") || u.Path != "/login" || u.Query().Get("next") != page {
		t.Fatalf("the app sent the browser to %s", u)
	}
	b.SubmitSignIn("amy", password)
	w.expectApp("amy")
	for sel, want := range map[string]string{"#remote-name": "Amy Pond", "#remote-role": "staff", "#remote-groups": "night shift",
		"#remote-email": "amy.pond@" + testDomain, "#path": "/wiki/Start?x=1"} {
		if got := b.Text(sel); got != want {
			t.Errorf("%s = %q, want %q", sel, got, want)
		}
	}
	ck := sessionCookieOf(b.CookiesFor(w.appHTTP + "/"))
	if ck == nil || !ck.HTTPOnly || strings.TrimPrefix(ck.Domain, ".") != testDomain {
		t.Fatalf("the app's requests carry the cookie %+v", ck)
	}

	t.Run("headers a client sends never reach the app as the portal's", func(t *testing.T) {
		get := func(cookie string) (int, string) {
			req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(w.httpPort)+"/", nil)
			req.Host = "app." + testDomain + ":" + strconv.Itoa(w.httpPort)
			if cookie != "" {
				req.Header.Set("Cookie", "gatehouse_session="+cookie)
			}
			for _, h := range []string{"Remote-User", "Remote-Name", "Remote-Email", "Remote-Role", "Remote-Groups"} {
				req.Header.Set(h, "spoofed")
			}
			client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		before := w.echo.Requests()
		status, body := get(ck.Value)
		if status != http.StatusOK || strings.Contains(body, "spoofed") || !strings.Contains(body, `id="remote-user" data-sent="true">amy<`) {
			t.Fatalf("with the cookie and spoofed headers: %d\n%s", status, body)
		}
		if status, _ := get(""); status != http.StatusFound || w.echo.Requests() != before+1 {
			t.Fatalf("without a cookie: status %d, the app was reached %d times", status, w.echo.Requests()-before)
		}
	})

	// A must-read notice: the app waits until it is acknowledged on the portal's start
	// page, then the browser goes back to the app.
	if _, err := app.Store.CreateNotice(ctx, db.NoticeInput{Title: "Read before the wiki", Body: "House rules.", Kind: db.NoticeMustRead,
		Severity: db.SeverityWarning, Audience: db.Audience{Everyone: true}}, root, db.Event{At: app.Now()}); err != nil {
		t.Fatal(err)
	}
	app.Advance(11 * time.Second) // past the portal's copy of the live notices
	before := w.echo.Requests()
	b.Open(w.appHTTP + "/wiki/Start")
	if u := b.URL(); u.Path != "/" || u.Query().Get("next") != w.appHTTP+"/wiki/Start" {
		t.Fatalf("with a must-read notice the app sent the browser to %s", u)
	}
	b.ExpectText(`[data-testid="continue-to"]`, "app."+testDomain)
	b.Click(`section[data-must-read="true"] button[type=submit]`)
	w.expectApp("amy")
	if got := b.Text("#path"); got != "/wiki/Start" {
		t.Errorf("back at the app on %q", got)
	}
	if n := w.echo.Requests() - before; n != 1 {
		t.Errorf("the app was reached %d times on the detour, want once (after reading)", n)
	}

	// Signing out of the portal ends access to the app at its next request.
	b.Open(w.portalHTTP + "/")
	b.SignOut()
	before = w.echo.Requests()
	b.Open(w.appHTTP + "/wiki/Start")
	if u := b.URL(); u.Path != "/login" || w.echo.Requests() != before {
		t.Fatalf("after signing out the app page at %s was served %d times", u, w.echo.Requests()-before)
	}

	// --cookie-domain off: the old Domain cookie is expired, one redirect to a login page
	// that says the session ended; the portal works, and the app, which the cookie no
	// longer reaches, is explained instead of looping.
	b.SignIn("amy", password)
	app.Reconfigure(t, func(o *AppOptions) { o.CookieDomain = "" })
	from := len(app.Requests())
	b.Open(w.portalHTTP + "/")
	w.expectLoginAfterOneRedirect(from, true, "http")
	b.SubmitSignIn("amy", password)
	b.ExpectText("h1", "Welcome")
	from = len(app.Requests())
	resp := b.Open(w.appHTTP + "/")
	if resp.Status != http.StatusConflict || !strings.Contains(b.Text("main"), "cannot use this sign-in") {
		t.Fatalf("the app without a cookie domain: status %d at %s", resp.Status, b.URL())
	}
	w.redirectsSince(from)

	// --cookie-domain on: the host-only cookie is expired when the app sends the browser to
	// sign in, with one redirect; signing in leads on to the app.
	app.Reconfigure(t, func(o *AppOptions) { o.CookieDomain = testDomain })
	from = len(app.Requests())
	b.Open(w.appHTTP + "/")
	w.expectLoginAfterOneRedirect(from, true, "http")
	b.SubmitSignIn("amy", password)
	w.expectApp("amy")

	// To another domain and back.
	for _, domain := range []string{"portal." + testDomain, testDomain} {
		app.Reconfigure(t, func(o *AppOptions) { o.CookieDomain = domain })
		from = len(app.Requests())
		b.Open(w.portalHTTP + "/")
		w.expectLoginAfterOneRedirect(from, true, "http")
		b.SubmitSignIn("amy", password)
		b.ExpectText("h1", "Welcome")
	}
	b.Open(w.appHTTP + "/")
	w.expectApp("amy")

	// From http to https: the plain cookie comes along over https and is expired there.
	app.Reconfigure(t, func(o *AppOptions) { o.BaseURL = w.portalHTTPS })
	from = len(app.Requests())
	b.Open(w.portalHTTPS + "/")
	w.expectLoginAfterOneRedirect(from, true, "https")
	b.SubmitSignIn("amy", password)
	b.ExpectText("h1", "Welcome")
	if ck := sessionCookieOf(b.CookiesFor(w.appHTTPS + "/")); ck == nil || ck.Name != "__Secure-gatehouse_session" || !ck.Secure {
		t.Fatalf("under https the app's requests carry %+v", ck)
	}
	b.Open(w.appHTTPS + "/")
	w.expectApp("amy")

	// And back to http: the Secure cookie is not sent over http at all, so the portal sees
	// a stranger and says nothing of a session; still one redirect, and signing in works.
	app.Reconfigure(t, func(o *AppOptions) { o.BaseURL = w.portalHTTP })
	from = len(app.Requests())
	b.Open(w.portalHTTP + "/")
	n, last := w.redirectsSince(from)
	if n > 1 || !strings.HasPrefix(last.URI, "/login") || last.Status != http.StatusOK || !b.Has("#password") {
		t.Fatalf("after moving back to http: %v", app.Requests()[from:])
	}
	b.SubmitSignIn("amy", password)
	b.Open(w.appHTTP + "/")
	w.expectApp("amy")
}

// Package e2e drives the whole portal through a real browser: Chromium, steered with
// chromedp, against the app served in-process on 127.0.0.1 over a fresh SQLite file.
//
// A test starts the app with StartApp, adds users with App.CreateUser, opens a browser with
// NewBrowser and acts through the Browser helpers, which fail the test on any error. Every
// page request the app serves is recorded (App.Requests), so a test can count redirects, and
// a 5xx response or an error-level log line fails the test unless it calls
// App.AllowServerErrors.
package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/handlers"
	"gatehouse/internal/testkit"
	"gatehouse/mail"
)

// App is one running portal with its own database, key and log.
type App struct {
	URL    string // base URL, "http://127.0.0.1:PORT" unless AppOptions name another, without a trailing slash
	Addr   string // where it listens, 127.0.0.1:PORT
	Store  *db.DB
	Hasher *auth.Hasher
	Keys   *auth.Keyring

	opts        AppOptions
	handler     atomic.Pointer[http.Handler] // the portal as configured now; see Reconfigure
	offset      atomic.Int64                 // added to time.Now by the app's clock; see Advance
	log         testkit.SyncBuffer
	mu          sync.Mutex
	requests    []Request
	allowErrors atomic.Bool
	// With StartMailApp: the real SMTP server the portal sends to, and the outbox's
	// scheduler and sender, running as in serve.
	SMTP *testkit.SMTPServer
	Mail *mail.Service
}

// AppOptions are the settings the portal is served with; the zero value is a portal
// reached directly at its own address, without mail.
type AppOptions struct {
	BaseURL        string   // the public URL, the proxy's; "" for the address served on
	Host           string   // with no BaseURL: serve as http://HOST:PORT instead of the address
	CookieDomain   string   // --cookie-domain
	TrustedProxies []string // --trusted-proxies, as CIDRs
	// Mail turns mail on for the app's whole life (Reconfigure leaves it as it was): see
	// WithMail.
	Mail bool
}

// Request is one request the app answered, as the server saw it.
type Request struct {
	Method   string
	URI      string // path and query
	Dest     string // Sec-Fetch-Dest: "document" for page loads a browser makes
	Status   int
	Location string // the Location header of a redirect
}

func (r Request) String() string {
	s := r.Method + " " + r.URI + " " + http.StatusText(r.Status)
	if r.Location != "" {
		s += " -> " + r.Location
	}
	return s
}

// AppOption changes how StartApp serves the portal.
type AppOption func(*AppOptions)

// Localhost serves the portal as http://localhost:PORT (still listening on 127.0.0.1):
// passkeys need it, as browsers accept a host name as the relying-party id, never an IP.
func Localhost() AppOption { return func(o *AppOptions) { o.Host = "localhost" } }

// WithMail turns mail on: the portal sends through a real SMTP server on 127.0.0.1
// (App.SMTP), and its mail loop runs as it does in serve.
func WithMail() AppOption { return func(o *AppOptions) { o.Mail = true } }

// StartMailApp is StartApp with mail on.
func StartMailApp(t testing.TB, opts ...AppOption) *App {
	t.Helper()
	return StartApp(t, append(opts, WithMail())...)
}

// StartApp serves a fresh portal on 127.0.0.1 for the rest of the test. The database is a
// new file under t.TempDir(); the server and the database close when the test ends.
func StartApp(t testing.TB, opts ...AppOption) *App {
	t.Helper()
	var o AppOptions
	for _, opt := range opts {
		opt(&o)
	}
	return StartAppWith(t, o)
}

// StartAppWith is StartApp with the settings of a portal behind a reverse proxy.
func StartAppWith(t testing.TB, o AppOptions) *App {
	t.Helper()
	ctx := context.Background()
	store, err := db.Open(ctx, filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	keys, err := auth.NewKeyring(key)
	if err != nil {
		store.Close()
		t.Fatalf("keyring: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		store.Close()
		t.Fatalf("listen: %v", err)
	}
	a := &App{Addr: ln.Addr().String(), Store: store, Hasher: auth.NewHasher(testkit.CheapParams, 4), Keys: keys}
	a.URL = a.baseURL(o)
	mailCtx, stopMail := context.WithCancel(context.Background())
	mailDone := make(chan struct{})
	if o.Mail {
		base, err := url.Parse(a.URL)
		if err != nil {
			t.Fatalf("base url: %v", err)
		}
		logger := slog.New(slog.NewTextHandler(&a.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
		a.SMTP = testkit.StartSMTP(t)
		tr := mail.NewTransport(mail.Config{Addr: a.SMTP.Addr, From: "Gatehouse <portal@example.com>", TLS: mail.TLSNone})
		a.Mail = mail.NewService(mail.NewScheduler(store, base, time.UTC, a.Now, logger),
			mail.NewSender(store, tr, logger, a.Now, base.Hostname(), nil), logger)
		go func() { defer close(mailDone); a.Mail.Run(mailCtx) }()
	} else {
		close(mailDone)
	}
	a.configure(t, o)
	srv := &http.Server{Handler: a.record(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*a.handler.Load()).ServeHTTP(w, r)
	})), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		stopMail()
		<-mailDone
		if err := store.Close(); err != nil {
			t.Errorf("close database: %v", err)
		}
		if !a.allowErrors.Load() {
			for _, r := range a.Requests() {
				if r.Status >= 500 {
					t.Errorf("the app answered %s", r)
				}
			}
			if strings.Contains(a.Logs(), "level=ERROR") {
				t.Errorf("the app logged an error")
			}
		}
		if t.Failed() {
			t.Logf("app log:\n%s", a.Logs())
		}
	})
	return a
}

// configure builds the portal for o, on the app's database, key, log and clock, and puts
// it in service: requests from now on get it.
func (a *App) configure(t testing.TB, o AppOptions) {
	t.Helper()
	a.opts = o
	a.URL = a.baseURL(o)
	base, err := url.Parse(a.URL)
	if err != nil {
		t.Fatalf("base url: %v", err)
	}
	var trusted []*net.IPNet
	for _, cidr := range o.TrustedProxies {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatalf("trusted proxy %q: %v", cidr, err)
		}
		trusted = append(trusted, n)
	}
	logger := slog.New(slog.NewTextHandler(&a.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var e http.Handler = handlers.New(handlers.Config{
		BaseURL:        base,
		SessionIdle:    time.Hour,
		SessionMax:     24 * time.Hour,
		Location:       time.UTC,
		TrustedProxies: trusted,
		CookieDomain:   o.CookieDomain,
	}, handlers.Deps{DB: a.Store, Log: logger, Hasher: a.Hasher, Keys: a.Keys, Now: a.Now, Mail: a.Mail})
	a.handler.Store(&e)
}

// baseURL is the URL the portal is served as under o.
func (a *App) baseURL(o AppOptions) string {
	switch {
	case o.BaseURL != "":
		return strings.TrimSuffix(o.BaseURL, "/")
	case o.Host != "":
		_, port, _ := net.SplitHostPort(a.Addr)
		return "http://" + net.JoinHostPort(o.Host, port)
	}
	return "http://" + a.Addr
}

// Reconfigure restarts the portal with changed settings on the same database, key, clock
// and address, as a restart of serve with other flags would; browsers keep their cookies.
func (a *App) Reconfigure(t testing.TB, edit func(*AppOptions)) {
	t.Helper()
	o := a.opts
	o.TrustedProxies = slices.Clone(o.TrustedProxies)
	edit(&o)
	a.configure(t, o)
}

// Now is the app's clock: the real time plus whatever Advance added.
func (a *App) Now() time.Time { return time.Now().Add(time.Duration(a.offset.Load())) }

// Advance moves the app's clock forward, for idle and absolute session expiry or the next
// TOTP step. The browser's clock does not move.
func (a *App) Advance(d time.Duration) { a.offset.Add(int64(d)) }

// AllowServerErrors lets the test end without failing on 5xx answers or error log lines,
// for tests that provoke them on purpose.
func (a *App) AllowServerErrors() { a.allowErrors.Store(true) }

// Logs is everything the app has logged so far, in slog's text format.
func (a *App) Logs() string { return a.log.String() }

// CreateUser adds an account straight to the store with password hashed. An empty Role is
// staff. The password is not checked against the policy.
func (a *App) CreateUser(t testing.TB, nu db.NewUser, password string) db.User {
	t.Helper()
	return testkit.CreateUser(t, a.Store, nu, password, db.Event{At: a.Now(), Kind: "user.created", Subject: nu.Username,
		Detail: "e2e fixture"})
}

// SetupToken stores a fresh first-run token, as serve does on an empty database, and
// returns it for /setup?token=.
func (a *App) SetupToken(t testing.TB) string {
	t.Helper()
	tok := auth.NewToken()
	if err := a.Store.SetSetupToken(context.Background(), auth.HashToken(tok), a.Now()); err != nil {
		t.Fatalf("set setup token: %v", err)
	}
	return tok
}

// Requests lists what the app has answered so far, oldest first, leaving out static assets.
func (a *App) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Request(nil), a.requests...)
}

// Documents lists the page loads (Sec-Fetch-Dest: document) among Requests()[from:].
func (a *App) Documents(from int) []Request {
	var docs []Request
	for _, r := range a.Requests()[from:] {
		if r.Dest == "document" {
			docs = append(docs, r)
		}
	}
	return docs
}

func (a *App) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if strings.HasPrefix(r.URL.Path, "/static/") {
			return
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		a.mu.Lock()
		a.requests = append(a.requests, Request{Method: r.Method, URI: r.URL.RequestURI(),
			Dest: r.Header.Get("Sec-Fetch-Dest"), Status: sw.status, Location: w.Header().Get("Location")})
		a.mu.Unlock()
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// browserTimeout bounds one browser's whole life; stepTimeout bounds one action, so a
// missing element fails fast with the step that waited for it.
const (
	browserTimeout = 60 * time.Second
	stepTimeout    = 15 * time.Second
)

// chromiumPath finds the browser, or skips the test when there is none and CI is not
// "true"; under CI a missing browser fails, so browser tests can never silently vanish.
// Short mode skips browser tests too.
func chromiumPath(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test skipped in short mode")
	}
	candidates := []string{"/usr/bin/chromium"}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			candidates = append(candidates, p)
		}
	}
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Chromium not found (looked for /usr/bin/chromium and chromium on PATH); install the Debian package chromium")
	}
	t.Skip("Chromium not found; install the Debian package chromium (CI=true makes this a failure)")
	return ""
}

// Browser is one Chromium process with one tab, with its own profile and cookie jar.
type Browser struct {
	T   testing.TB
	App *App
	Ctx context.Context // the tab; ends browserTimeout after NewBrowser, or with the test
}

// BrowserOptions change how NewBrowserWith starts Chromium.
type BrowserOptions struct {
	// HostResolverRules is Chromium's --host-resolver-rules, such as
	// "MAP *.gatehouse.test 127.0.0.1", so that names of a test domain reach loopback.
	HostResolverRules string
	// IgnoreCertificateErrors accepts the test's own certificates over https.
	IgnoreCertificateErrors bool
}

// NewBrowser starts a headless Chromium for this test, aimed at app. Each call starts its
// own process, so two browsers in one test are two people who share nothing.
func NewBrowser(t testing.TB, app *App) *Browser {
	t.Helper()
	return NewBrowserWith(t, app, BrowserOptions{})
}

// NewBrowserWith is NewBrowser with options.
func NewBrowserWith(t testing.TB, app *App, o BrowserOptions) *Browser {
	t.Helper()
	path := chromiumPath(t)
	var output testkit.SyncBuffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(&output),
	)
	if o.HostResolverRules != "" {
		opts = append(opts, chromedp.Flag("host-resolver-rules", o.HostResolverRules), chromedp.Flag("no-proxy-server", true))
	}
	if o.IgnoreCertificateErrors {
		opts = append(opts, chromedp.Flag("ignore-certificate-errors", true))
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), browserTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	// chromedp's own messages go to the same buffer: its goroutines may still log after
	// the test has returned, when t.Logf would panic.
	logf := func(format string, args ...any) { fmt.Fprintf(&output, "chromedp: "+format+"\n", args...) }
	tabCtx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelTimeout()
		if t.Failed() {
			t.Logf("chromium output:\n%s", output.String())
		}
	})
	b := &Browser{T: t, App: app, Ctx: tabCtx}
	if err := chromedp.Do(tabCtx); err != nil { // starts the browser and opens the tab
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

// step runs one action with stepTimeout and fails the test, naming what, on error.
func step[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.T.Fatalf("%s: %v", what, err)
	}
	return v
}

// Do runs actions in order, failing the test on the first error.
func (b *Browser) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.T.Helper()
	step(b, what, chromedp.Steps(actions...))
}

// Visit loads path (with its query) on the app, follows redirects, waits for the page to
// load and returns the final response: its Status and URL are the page the browser shows.
func (b *Browser) Visit(path string) *network.Response {
	b.T.Helper()
	return b.Open(b.App.URL + path)
}

// Open is Visit for a whole URL, which may be another site's, such as an app behind the
// portal's sign-in.
func (b *Browser) Open(rawURL string) *network.Response {
	b.T.Helper()
	return step(b, "visit "+rawURL, chromedp.NavigateResponse(rawURL))
}

// Click clicks the first element matching the CSS selector and waits for the page that the
// click loads (a form submission or a link); it returns that page's final response.
func (b *Browser) Click(css string) *network.Response {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(css)))
	if err != nil {
		b.T.Fatalf("click %s: %v", css, err)
	}
	return resp
}

// Fill replaces the value of the field matching the CSS selector by typing value into it.
func (b *Browser) Fill(css, value string) {
	b.T.Helper()
	// chromedp.SetValue(sel, "") fails in chromedp v0.23 (the empty argument reaches the
	// page as undefined), so the field is emptied by script before typing.
	b.Do("fill "+css,
		chromedp.WaitReady(chromedp.CSS(css)),
		chromedp.Evaluate[chromedp.Void](`document.querySelector(`+jsString(css)+`).value = ""`),
		chromedp.SendKeys(chromedp.CSS(css), value))
}

// Value is the current value of the form field matching the CSS selector.
func (b *Browser) Value(css string) string {
	b.T.Helper()
	return step(b, "value of "+css, chromedp.Value(chromedp.CSS(css)))
}

// Text waits until an element matches the CSS selector and returns its visible text.
func (b *Browser) Text(css string) string {
	b.T.Helper()
	return step(b, "text of "+css, chromedp.Text(chromedp.CSS(css)))
}

// WaitVisible waits until an element matching the CSS selector is visible.
func (b *Browser) WaitVisible(css string) {
	b.T.Helper()
	b.Do("wait for "+css, chromedp.WaitVisible(chromedp.CSS(css)))
}

// ExpectText fails the test unless the first element matching the CSS selector shows want.
func (b *Browser) ExpectText(css, want string) {
	b.T.Helper()
	if got := b.Text(css); !strings.Contains(got, want) {
		b.T.Fatalf("%s says %q; want it to contain %q", css, got, want)
	}
}

// Has reports, without waiting, whether the current page has an element matching css.
func (b *Browser) Has(css string) bool {
	b.T.Helper()
	n := step(b, "count "+css, chromedp.Evaluate[int](`document.querySelectorAll(`+jsString(css)+`).length`))
	return n > 0
}

// URL is the address the browser shows now.
func (b *Browser) URL() *url.URL {
	b.T.Helper()
	loc := step(b, "location", chromedp.Location())
	u, err := url.Parse(loc)
	if err != nil {
		b.T.Fatalf("parse location %q: %v", loc, err)
	}
	return u
}

// Cookie returns the browser's cookie for the app named name, if it has one.
func (b *Browser) Cookie(name string) (*network.Cookie, bool) {
	b.T.Helper()
	for _, c := range b.CookiesFor(b.App.URL + "/") {
		if c.Name == name {
			return c, true
		}
	}
	return nil, false
}

// CookiesFor lists the cookies the browser would send to rawURL, HttpOnly ones included.
func (b *Browser) CookiesFor(rawURL string) []*network.Cookie {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{rawURL}})
	if err != nil {
		b.T.Fatalf("get cookies: %v", err)
	}
	return res.Cookies
}

// SignIn fills and sends the sign-in form at /login and returns the response of the page it
// lands on; it does not check the outcome.
func (b *Browser) SignIn(username, password string) *network.Response {
	b.T.Helper()
	if resp := b.Visit("/login"); resp.Status != http.StatusOK {
		b.T.Fatalf("GET /login: status %d", resp.Status)
	}
	return b.SubmitSignIn(username, password)
}

// SubmitSignIn fills and sends the sign-in form already on the page.
func (b *Browser) SubmitSignIn(username, password string) *network.Response {
	b.T.Helper()
	b.Fill("#username", username)
	b.Fill("#password", password)
	return b.Click(`form[action="/login"] button[type=submit]`)
}

// SignOut clicks the header's sign-out button and returns the page it lands on.
func (b *Browser) SignOut() *network.Response {
	b.T.Helper()
	return b.Click(`form[action="/logout"] button[type=submit]`)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\u2028", `\u2028`, "\u2029", `\u2029`)
	return `"` + r.Replace(s) + `"`
}

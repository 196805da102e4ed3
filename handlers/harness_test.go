package handlers

import (
	"bytes"
	"context"
	"crypto/rand"
	"gatehouse/internal/dbtest"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/internal/testkit"
	"gatehouse/mail"
)

const testBase = "http://localhost:8080"

// testApp is the whole portal on a fresh SQLite file with a clock the test moves.
type testApp struct {
	tb   testing.TB
	e    *echo.Echo
	db   *db.DB
	keys *auth.Keyring
	log  *testkit.SyncBuffer
	// hasher counts the password-hash computations the app runs.
	hasher *auth.Hasher
	cfg    Config
	reg    *prometheus.Registry
	mu     sync.Mutex
	now    time.Time
	// With mail on (newMailApp): the real SMTP server the portal sends to, and the outbox's
	// scheduler and sender, which the test runs itself with deliver.
	smtp *testkit.SMTPServer
	mail *mail.Service
	// clockOf, when set, is the app whose clock this one reads (another process on the
	// same machine).
	clockOf *testApp
}

func newTestApp(tb testing.TB, tweak ...func(*Config)) *testApp {
	tb.Helper()
	return buildTestApp(tb, false, tweak...)
}

// newMailApp is newTestApp with mail on, through a real SMTP server on 127.0.0.1.
func newMailApp(tb testing.TB, tweak ...func(*Config)) *testApp {
	tb.Helper()
	return buildTestApp(tb, true, tweak...)
}

// openStore opens a fresh migrated store, SQLite or (in the PostgreSQL pass) PostgreSQL,
// closed when the test ends.
func openStore(tb testing.TB) *db.DB {
	tb.Helper()
	store, err := db.Open(context.Background(), dbtest.DSN(tb, migrateStore))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	return store
}

func migrateStore(dsn string) error {
	store, err := db.Open(context.Background(), dsn)
	if err != nil {
		return err
	}
	return store.Close()
}

func buildTestApp(tb testing.TB, withMail bool, tweak ...func(*Config)) *testApp {
	tb.Helper()
	return buildTestAppOn(tb, openStore(tb), withMail, tweak...)
}

// buildTestAppOn is buildTestApp on a store the test opened.
func buildTestAppOn(tb testing.TB, store *db.DB, withMail bool, tweak ...func(*Config)) *testApp {
	tb.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys, err := auth.NewKeyring(key)
	if err != nil {
		tb.Fatal(err)
	}
	base, _ := url.Parse(testBase)
	a := &testApp{tb: tb, db: store, keys: keys, log: &testkit.SyncBuffer{},
		now: time.Date(2026, 3, 2, 9, 0, 10, 0, time.UTC)}
	a.cfg = Config{BaseURL: base, SessionIdle: time.Hour, SessionMax: 24 * time.Hour, Location: time.UTC}
	for _, f := range tweak {
		f(&a.cfg)
	}
	a.reg = prometheus.NewRegistry()
	a.hasher = auth.NewHasher(testkit.CheapParams, 4)
	logger := slog.New(slog.NewJSONHandler(a.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if withMail {
		a.smtp = testkit.StartSMTP(tb)
		tr := mail.NewTransport(mail.Config{Addr: a.smtp.Addr, From: "Gatehouse <portal@example.com>", TLS: mail.TLSNone})
		a.mail = mail.NewService(mail.NewScheduler(store, a.cfg.BaseURL, a.cfg.Location, a.clock, logger),
			mail.NewSender(store, tr, logger, a.clock, a.cfg.BaseURL.Hostname(), nil), logger)
	}
	a.e = New(a.cfg, Deps{
		Metrics: a.reg,
		DB:      store,
		Log:     logger,
		Hasher:  a.hasher,
		Keys:    keys,
		Now:     a.clock,
		Mail:    a.mail,
	})
	return a
}

// deliver runs what serve's mail loop runs: the scheduler's tick, then the sender, and
// returns how many mails went out.
func (a *testApp) deliver() int {
	a.tb.Helper()
	if _, err := a.mail.Scheduler.Tick(context.Background()); err != nil {
		a.tb.Fatalf("mail tick: %v", err)
	}
	sent, _, err := a.mail.Sender.DeliverDue(context.Background())
	if err != nil {
		a.tb.Fatalf("mail delivery: %v", err)
	}
	return sent
}

// otherProcess is a second portal on the same database file, as another serve process
// would run it: its own connections, change signal and memory, the same key and clock.
// The test drives its change signal, which serve's watcher would otherwise poll.
func (a *testApp) otherProcess() *testApp {
	a.tb.Helper()
	store, err := db.Open(context.Background(), a.db.Path())
	if err != nil {
		a.tb.Fatal(err)
	}
	a.tb.Cleanup(func() { store.Close() })
	b := &testApp{tb: a.tb, db: store, keys: a.keys, log: &testkit.SyncBuffer{}, cfg: a.cfg, reg: prometheus.NewRegistry(),
		hasher: auth.NewHasher(testkit.CheapParams, 4), clockOf: a}
	b.e = New(b.cfg, Deps{
		Metrics: b.reg,
		DB:      store,
		Log:     slog.New(slog.NewJSONHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hasher:  b.hasher,
		Keys:    a.keys,
		Now:     b.clock,
	})
	return b
}

// sync does what serve's change watcher does every poll: it asks the store whether
// another process committed anything.
func (a *testApp) sync() {
	a.tb.Helper()
	if _, err := a.db.Changes().Check(context.Background()); err != nil {
		a.tb.Fatal(err)
	}
}

func (a *testApp) clock() time.Time {
	if a.clockOf != nil {
		return a.clockOf.clock()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.now
}

func (a *testApp) advance(d time.Duration) {
	if a.clockOf != nil {
		a.clockOf.advance(d)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.now = a.now.Add(d)
}

func (a *testApp) createUser(username, role, password string) db.User {
	a.tb.Helper()
	return testkit.CreateUser(a.tb, a.db, db.NewUser{Username: username, Role: role}, password, db.Event{At: a.clock()})
}

// serve runs one request through the whole stack: middleware, router, error handler.
func (a *testApp) serve(req *http.Request) *http.Response {
	rec := httptest.NewRecorder()
	a.e.ServeHTTP(rec, req)
	return rec.Result()
}

// client is a browser: a cookie jar and browser-like fetch metadata on every request.
type client struct {
	app       *testApp
	jar       http.CookieJar
	fetchSite string // Sec-Fetch-Site on POSTs; "" sends none (a script, not a browser)
	lastBody  string
	addr      string // the client's address as the server sees it
}

func (a *testApp) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{app: a, jar: jar, fetchSite: "same-origin", addr: "192.0.2.10:5555"}
}

var baseURL, _ = url.Parse(testBase + "/")

// jarURL is where the jar files the portal's cookies: an https portal's Secure cookies are
// sent back only to https.
func (c *client) jarURL(path string) *url.URL {
	scheme := "http"
	if c.app.cfg.Secure() {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: "localhost:8080", Path: path}
}

func (c *client) do(req *http.Request) *http.Response {
	u := c.jarURL(req.URL.Path)
	for _, ck := range c.jar.Cookies(u) {
		req.AddCookie(ck)
	}
	resp := c.app.serve(req)
	if cks := resp.Cookies(); len(cks) > 0 {
		c.jar.SetCookies(u, cks)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	c.lastBody = string(body)
	return resp
}

func (c *client) get(path string) *http.Response {
	req := httptest.NewRequest(http.MethodGet, testBase+path, nil)
	req.RemoteAddr = c.addr
	return c.do(req)
}

func (c *client) post(path string, form url.Values) *http.Response {
	if form == nil {
		form = url.Values{}
	}
	if !form.Has("_csrf") {
		form.Set("_csrf", c.csrf())
	}
	req := httptest.NewRequest(http.MethodPost, testBase+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = c.addr
	if c.fetchSite != "" {
		req.Header.Set("Sec-Fetch-Site", c.fetchSite)
		req.Header.Set("Origin", testBase)
	}
	return c.do(req)
}

var csrfField = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// csrf returns the token of the last page seen, fetching the login page if none.
func (c *client) csrf() string {
	if m := csrfField.FindStringSubmatch(c.lastBody); m != nil {
		return m[1]
	}
	c.get("/login")
	if m := csrfField.FindStringSubmatch(c.lastBody); m != nil {
		return m[1]
	}
	return ""
}

func (c *client) cookie(name string) string {
	for _, ck := range c.jar.Cookies(c.jarURL("/")) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// login signs in with the password step and fails the test unless it was accepted.
func (c *client) login(username, password string) *http.Response {
	c.app.tb.Helper()
	c.get("/login")
	resp := c.post("/login", url.Values{"username": {username}, "password": {password}})
	if resp.StatusCode != http.StatusSeeOther {
		c.app.tb.Fatalf("login %s: status %d, body %s", username, resp.StatusCode, c.lastBody)
	}
	return resp
}

func body(tb testing.TB, resp *http.Response) string {
	tb.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return string(b)
}

func wantStatus(tb testing.TB, resp *http.Response, want int) {
	tb.Helper()
	if resp.StatusCode != want {
		tb.Fatalf("status %d, want %d; Location %q; body:\n%.2000s", resp.StatusCode, want, resp.Header.Get("Location"), body(tb, resp))
	}
}

func wantRedirect(tb testing.TB, resp *http.Response, prefix string) {
	tb.Helper()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		tb.Fatalf("status %d, want a redirect to %s; body:\n%.1000s", resp.StatusCode, prefix, body(tb, resp))
	}
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, prefix) {
		tb.Fatalf("Location %q, want prefix %q", loc, prefix)
	}
}

func (a *testApp) countRows(table string) int {
	a.tb.Helper()
	n, err := a.db.CountSessions(context.Background())
	if table != "sessions" {
		a.tb.Fatalf("countRows: only sessions supported")
	}
	if err != nil {
		a.tb.Fatal(err)
	}
	return n
}

func hashOf(token string) []byte { return auth.HashToken(token) }

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newGet(path string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, testBase+path, nil)
	req.RemoteAddr = "192.0.2.10:5555"
	return req
}

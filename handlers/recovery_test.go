package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/internal/testkit"
)

const pw = "correct horse battery"

// mailUser adds an account with an address (or none, for "").
func (a *testApp) mailUser(username, role, email string) db.User {
	a.tb.Helper()
	return testkit.CreateUser(a.tb, a.db, db.NewUser{Username: username, Role: role, Email: email}, pw, db.Event{At: a.clock()})
}

// mailedLink is the path and token of the single-use link in the newest mail to addr.
func (a *testApp) mailedLink(addr string) (path, token string) {
	a.tb.Helper()
	return a.mailedLinkAt(testBase, addr)
}

// mailedLinkAt is mailedLink for a portal at base.
func (a *testApp) mailedLinkAt(base, addr string) (path, token string) {
	a.tb.Helper()
	ms := a.smtp.To(addr)
	if len(ms) == 0 {
		a.tb.Fatalf("no mail to %s; got %d mails", addr, len(a.smtp.Messages()))
	}
	link := regexp.MustCompile(regexp.QuoteMeta(base) + `(/[a-z/]+)\?token=([A-Za-z0-9_-]+)`)
	m := link.FindStringSubmatch(ms[len(ms)-1].Part("text/plain"))
	if m == nil {
		a.tb.Fatalf("no link in the mail to %s:\n%s", addr, ms[len(ms)-1].Data)
	}
	return m[1], m[2]
}

// forgot asks for a reset link for username as a fresh browser at addr.
func (a *testApp) forgot(username, addr string) *http.Response {
	a.tb.Helper()
	c := a.client()
	c.addr = addr
	c.get("/login/forgot")
	return c.post("/login/forgot", url.Values{"username": {username}})
}

// openLink follows a mailed link the way a browser does: the first request moves the token
// into a cookie and redirects to the bare path, which shows the page.
func (c *client) openLink(tb testing.TB, path, token string) *http.Response {
	tb.Helper()
	resp := c.get(path + "?token=" + token)
	wantRedirect(tb, resp, path)
	if loc := resp.Header.Get("Location"); loc != path {
		tb.Fatalf("the link redirects to %q, want the bare %s", loc, path)
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		tb.Error("the response to a link with a token may send it on as a Referer")
	}
	return c.get(path)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func TestForgotPasswordAnswersAlikeForEveryName(t *testing.T) {
	a := newMailApp(t)
	a.mailUser("amy", db.RoleStaff, "amy@example.com")
	a.mailUser("noaddr", db.RoleStaff, "")
	names := []string{"nobody", "noaddr", "amy"}
	const rounds = 9
	took := map[string][]time.Duration{}
	var first map[string]string
	hashesBefore := a.hasher.Computations()
	for round := range rounds {
		answers := map[string]string{}
		for _, name := range names {
			c := a.client()
			c.addr = "192.0.2." + itoa64(int64(10+round)) + ":5555"
			c.get("/login/forgot")
			form := url.Values{"username": {name}, "_csrf": {c.csrf()}}
			start := time.Now()
			resp := c.post("/login/forgot", form)
			took[name] = append(took[name], time.Since(start))
			answers[name] = resp.Status + " " + resp.Header.Get("Location") + " " + body(t, resp)
		}
		if first == nil {
			first = answers
		}
		for _, name := range names {
			if answers[name] != answers["amy"] {
				t.Fatalf("round %d: %q answers %q, but amy (with an address) %q", round, name, answers[name], answers["amy"])
			}
		}
		a.deliver()
		a.advance(time.Hour) // past the per-account limit's window
	}
	if !strings.HasPrefix(first["amy"], "303 ") || !strings.Contains(first["amy"], "/login/forgot?sent=1") {
		t.Fatalf("the answer is %q, want 303 to /login/forgot?sent=1", first["amy"])
	}
	if n := a.hasher.Computations() - hashesBefore; n != 0 {
		t.Errorf("asking for a reset link hashed %d passwords; no case may do expensive work", n)
	}
	// The same work for each: one write transaction, no hashing, the mail off the response
	// path. The medians must be of one class; the bound is loose so that a busy machine
	// does not fail it, and tight enough that a hash or an SMTP exchange would.
	var meds []time.Duration
	for _, name := range names {
		meds = append(meds, median(took[name]))
	}
	lo, hi := slices.Min(meds), slices.Max(meds)
	t.Logf("medians over %d tries: nobody %s, noaddr %s, amy %s", rounds, meds[0], meds[1], meds[2])
	if hi > 3*lo+5*time.Millisecond {
		t.Errorf("the answer for one kind of name takes longer: medians %v", meds)
	}
	if got := len(a.smtp.Messages()); got != rounds || len(a.smtp.To("amy@example.com")) != rounds {
		t.Errorf("%d mails went out, want %d, all to amy", got, rounds)
	}
	sent := a.client().get("/login/forgot?sent=1")
	if !strings.Contains(body(t, sent), "If that account has a confirmed address") {
		t.Error("the page after the request does not say what happens next")
	}
}

func TestResetLinkSetsThePasswordOnceAndEndsEverySession(t *testing.T) {
	a := newMailApp(t)
	a.mailUser("amy", db.RoleStaff, "amy@example.com")
	amy := a.client()
	amy.login("amy", pw)
	secret, _ := amy.enroll(t)
	a.advance(time.Minute)
	other := a.client()
	other.loginMFA("amy", pw, auth.TOTPCode(secret, a.clock()))

	wantRedirect(t, a.forgot("AMY", "192.0.2.50:1"), "/login/forgot?sent=1")
	if sent := a.deliver(); sent != 1 {
		t.Fatalf("%d mails sent, want the one link", sent)
	}
	m := a.smtp.To("amy@example.com")[0]
	if m.Header("Auto-Submitted") != "auto-generated" || !strings.Contains(m.Part("text/html"), "/login/reset?token=") {
		t.Fatalf("the reset mail: %s", m.Data)
	}
	path, token := a.mailedLink("amy@example.com")

	b := a.client()
	page := b.openLink(t, path, token)
	wantStatus(t, page, http.StatusOK)
	if !strings.Contains(body(t, page), "amy") || strings.Contains(body(t, page), token) {
		t.Fatal("the reset page does not name the account, or shows the token")
	}
	b.get(path) // opening it again changes nothing
	resp := b.post(path, url.Values{"new_password": {"password"}})
	wantStatus(t, resp, http.StatusUnprocessableEntity)
	resp = b.post(path, url.Values{"new_password": {"a brand new passphrase"}})
	wantRedirect(t, resp, "/login?msg=password-reset")

	for name, c := range map[string]*client{"the first": amy, "the second": other} {
		if r := c.get("/"); r.StatusCode != http.StatusSeeOther {
			t.Errorf("%s session still works after the reset: %d", name, r.StatusCode)
		}
	}
	u, _ := a.db.UserByUsername(context.Background(), "amy")
	if ok, _ := a.hasher.Verify(context.Background(), u.PasswordHash, "a brand new passphrase"); !ok || u.MustChangePassword {
		t.Fatal("the new password was not set as a final one")
	}
	// The second factor is still asked for.
	a.advance(time.Minute)
	c := a.client()
	wantRedirect(t, c.login("amy", "a brand new passphrase"), "/login/mfa")
	resp = c.post("/login/mfa", url.Values{"code": {auth.TOTPCode(secret, a.clock())}})
	wantRedirect(t, resp, "/")

	t.Run("the link works once", func(t *testing.T) {
		again := a.client().openLink(t, path, token)
		wantStatus(t, again, http.StatusGone)
		resp := a.client().post(path, url.Values{"new_password": {"yet another passphrase"}})
		wantStatus(t, resp, http.StatusGone)
		u2, _ := a.db.UserByUsername(context.Background(), "amy")
		if u2.PasswordHash != u.PasswordHash {
			t.Fatal("a spent link set the password again")
		}
	})
	t.Run("the reset is audited", func(t *testing.T) {
		evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "password.reset", Outcome: db.Success})
		if len(evs) != 1 || evs[0].Subject != "amy" || !strings.Contains(evs[0].Detail, "sessions ended") {
			t.Fatalf("audit: %+v", evs)
		}
	})
	t.Run("no log line and no stored row holds the token", func(t *testing.T) {
		if strings.Contains(a.log.String(), token) {
			t.Error("the log holds the reset token")
		}
		rows, _ := a.db.OutboxMails(context.Background(), "")
		for _, r := range rows {
			if strings.Contains(r.Text+r.HTML, token) {
				t.Errorf("outbox row %d still holds the link", r.ID)
			}
		}
	})
}

func TestExpiredResetLinkIsRefused(t *testing.T) {
	a := newMailApp(t)
	a.mailUser("amy", db.RoleStaff, "amy@example.com")
	a.forgot("amy", "192.0.2.50:1")
	a.deliver()
	path, token := a.mailedLink("amy@example.com")
	b := a.client()
	wantStatus(t, b.openLink(t, path, token), http.StatusOK)
	a.advance(resetTTL + time.Second)
	wantStatus(t, b.post(path, url.Values{"new_password": {"a brand new passphrase"}}), http.StatusGone)
	wantStatus(t, a.client().openLink(t, path, token), http.StatusGone)
	if u, _ := a.db.UserByUsername(context.Background(), "amy"); u.MustChangePassword || !verifies(a, u, pw) {
		t.Fatal("an expired link changed the password")
	}
}

func verifies(a *testApp, u db.User, password string) bool {
	ok, _ := a.hasher.Verify(context.Background(), u.PasswordHash, password)
	return ok
}

// A second portal process on the same database: its own handlers, its own store pools.
func (a *testApp) sibling() *testApp {
	a.tb.Helper()
	store, err := db.Open(context.Background(), a.db.Path())
	if err != nil {
		a.tb.Fatal(err)
	}
	a.tb.Cleanup(func() { store.Close() })
	b := &testApp{tb: a.tb, db: store, keys: a.keys, log: &testkit.SyncBuffer{}, hasher: a.hasher, cfg: a.cfg, now: a.clock(),
		smtp: a.smtp, mail: a.mail}
	b.e = New(b.cfg, Deps{DB: store, Log: slog.New(slog.NewJSONHandler(b.log, nil)), Hasher: b.hasher, Keys: a.keys,
		Now: a.clock, Mail: a.mail})
	return b
}

func TestForgotPasswordIsThrottledAcrossProcesses(t *testing.T) {
	a := newMailApp(t)
	b := a.sibling()
	a.mailUser("amy", db.RoleStaff, "amy@example.com")
	for _, name := range []string{"amy", "nobody"} {
		t.Run("per account, for "+name, func(t *testing.T) {
			for i := range resetPerAccount.Hits {
				app := []*testApp{a, b}[i%2]
				wantRedirect(t, app.forgot(name, "192.0.2."+itoa64(int64(100+i))+":1"), "/login/forgot?sent=1")
			}
			resp := b.forgot(name, "192.0.2.99:1")
			wantStatus(t, resp, http.StatusTooManyRequests)
			if resp.Header.Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
		})
	}
	t.Run("per client address, across names", func(t *testing.T) {
		for i := range resetPerClient.Hits {
			app := []*testApp{a, b}[i%2]
			wantRedirect(t, app.forgot("someone"+itoa64(int64(i)), "198.51.100.7:1"), "/login/forgot?sent=1")
		}
		wantStatus(t, a.forgot("someone-else", "198.51.100.7:1"), http.StatusTooManyRequests)
	})
	a.deliver()
	if got := len(a.smtp.To("amy@example.com")); got != resetPerAccount.Hits {
		t.Errorf("amy got %d links, want %d", got, resetPerAccount.Hits)
	}
	a.advance(resetPerAccount.Window)
	wantRedirect(t, b.forgot("amy", "192.0.2.99:1"), "/login/forgot?sent=1")
}

func TestMailOffPagesSayMailIsOff(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, pw)
	if strings.Contains(body(t, a.client().get("/login")), "/login/forgot") {
		t.Error("the sign-in page offers a reset by mail on a portal without mail")
	}
	page := body(t, a.client().get("/login/forgot"))
	if !strings.Contains(page, "Password reset by mail is off") || strings.Contains(page, `action="/login/forgot"`) {
		t.Error("/login/forgot does not say mail is off")
	}
	wantRedirect(t, a.forgot("root", "192.0.2.1:1"), "/login/forgot")
	if rows, _ := a.db.OutboxMails(context.Background(), ""); len(rows) != 0 {
		t.Error("a portal without mail enqueued mail")
	}
	c := a.client()
	c.login("root", pw)
	if !strings.Contains(body(t, c.get("/account/email")), "Mail is off on this portal") {
		t.Error("/account/email does not say mail is off")
	}
	wantStatus(t, c.post("/account/email", url.Values{"email": {"root@example.com"}}), http.StatusConflict)
	if !strings.Contains(body(t, c.get("/admin/notices")), "Mail is off on this portal") {
		t.Error("the notice form does not say mail is off")
	}
}

func TestLoginOffersResetByMailWhenMailIsOn(t *testing.T) {
	a := newMailApp(t)
	if !strings.Contains(body(t, a.client().get("/login")), `href="/login/forgot">Forgot your password?`) {
		t.Error("no \u201cForgot your password?\u201d link on /login")
	}
}

func TestUndeliveredMailShowsOnTheHealthPanel(t *testing.T) {
	a := newMailApp(t)
	a.mailUser("root", db.RoleAdmin, "")
	a.mailUser("amy", db.RoleStaff, "amy@example.com")
	a.smtp.Refuse("amy@example.com")
	a.forgot("amy", "192.0.2.50:1")
	a.deliver()
	admin := a.client()
	admin.login("root", pw)
	page := body(t, admin.get("/admin"))
	row := regexp.MustCompile(`<th scope="row">Mail not delivered</th>\s*<td>(\d+)</td>\s*<td>(\d+)</td>`).FindStringSubmatch(page)
	if row == nil || row[1] != "1" || row[2] != "1" {
		t.Fatalf("the health panel's mail row: %v\n%.3000s", row, page)
	}
	evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "mail.failed"})
	if len(evs) != 1 || !strings.Contains(evs[0].Detail, "550") || strings.Contains(evs[0].Detail, "token=") {
		t.Fatalf("the audit row: %+v", evs)
	}
}

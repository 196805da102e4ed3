package e2e

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"gatehouse/auth"
	"gatehouse/db"
)

var mailLinkRe = regexp.MustCompile(`http://127\.0\.0\.1:\d+(/[A-Za-z0-9/]+(\?token=[A-Za-z0-9_-]+)?)`)

// mailedPath waits for the n-th mail to addr and returns the path (with its query) of the
// portal link in its text.
func mailedPath(t *testing.T, app *App, addr string, n int) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if ms := app.SMTP.To(addr); len(ms) >= n {
			m := mailLinkRe.FindStringSubmatch(ms[n-1].Part("text/plain"))
			if m == nil {
				t.Fatalf("no portal link in the mail to %s:\n%s", addr, ms[n-1].Data)
			}
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail %d to %s within 15 s", n, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A must-read notice mailed to its reader: the link in the mail leads, after signing in,
// to the notice itself, which the reader acknowledges there.
func TestMustReadMailLinkOpensTheNoticeAfterSignIn(t *testing.T) {
	const password = "correct horse battery"
	app := StartMailApp(t)
	root := app.CreateUser(t, db.NewUser{Username: "root", Role: db.RoleAdmin}, password)
	app.CreateUser(t, db.NewUser{Username: "amy", Email: "amy@example.com"}, password)
	n, err := app.Store.CreateNotice(context.Background(), db.NoticeInput{Title: "Fire drill policy", Body: "Read it, please.",
		Kind: db.NoticeMustRead, Severity: db.SeverityWarning, Audience: db.Audience{Everyone: true}, Email: true,
		Remind: db.RemindDaily}, root, db.Event{At: app.Now()})
	if err != nil {
		t.Fatal(err)
	}
	app.Mail.Kick()
	path := mailedPath(t, app, "amy@example.com", 1)
	if path != "/notices/"+itoa(n.ID) {
		t.Fatalf("the mail links to %s, want the notice", path)
	}
	b := NewBrowser(t, app)
	b.Visit(path)
	if b.URL().Path != "/login" || b.URL().Query().Get("next") != path {
		t.Fatalf("a signed-out reader is at %s, want sign-in with next", b.URL())
	}
	b.SubmitSignIn("amy", password)
	if b.URL().Path != path {
		t.Fatalf("after signing in the reader is at %s, want %s", b.URL(), path)
	}
	b.ExpectText("article h1", "Fire drill policy")
	b.ExpectText(`[data-testid="notice-follow-up"]`, "a reminder comes by mail daily")
	b.Click(`article form[action$="/ack"] button[type=submit]`)
	if b.Has(`section[data-must-read="true"]`) {
		t.Fatal("the banner stays after acknowledging")
	}
}

// A forgotten password, from the mailed link to the dashboard: the link's page, a new
// password, and a sign-in that still asks for the second factor.
func TestPasswordResetFromTheMailedLinkToTheDashboard(t *testing.T) {
	const password = "correct horse battery"
	app := StartMailApp(t)
	app.CreateUser(t, db.NewUser{Username: "amy", Email: "amy@example.com"}, password)
	b := NewBrowser(t, app)
	b.SignIn("amy", password)
	b.Visit("/account/mfa")
	secret := strings.TrimSpace(b.Text("#mfa-secret"))
	b.Fill("#code", auth.TOTPCode(secret, app.Now()))
	b.Click(`form[action="/account/mfa"] button[type=submit]`)
	b.WaitVisible(".recovery-code")
	b.SignOut()

	b.Visit("/login")
	b.Click(`a[href="/login/forgot"]`)
	b.Fill("#username", "amy")
	b.Click(`form[action="/login/forgot"] button[type=submit]`)
	b.ExpectText(`[role=status]`, "If that account has a confirmed address")
	link := mailedPath(t, app, "amy@example.com", 1)
	if !strings.HasPrefix(link, "/login/reset?token=") {
		t.Fatalf("the mail links to %s", link)
	}
	if resp := b.Visit(link); resp.Status != http.StatusOK {
		t.Fatalf("the link's page: %d", resp.Status)
	}
	if got := b.URL(); got.Path != "/login/reset" || got.RawQuery != "" {
		t.Fatalf("the browser shows %s: the token must leave the address bar", got)
	}
	b.Fill("#new_password", "a brand new passphrase")
	b.Click(`form[action="/login/reset"] button[type=submit]`)
	b.ExpectText(".flash", "Your password was changed")

	app.Advance(time.Minute) // a fresh time step for the code
	b.SubmitSignIn("amy", "a brand new passphrase")
	if b.URL().Path != "/login/mfa" {
		t.Fatalf("after the new password the browser is at %s; the second step must still be asked", b.URL())
	}
	b.Fill("#code", auth.TOTPCode(secret, app.Now()))
	b.Click(`form[action="/login/mfa"] button[type=submit]`)
	if b.URL().Path != "/" {
		t.Fatalf("after the code the browser is at %s", b.URL())
	}
	b.ExpectText("h1", "Welcome")
	for _, r := range app.Requests() {
		if strings.Contains(r.Location, "token=") {
			t.Errorf("a redirect carried the token on: %s", r)
		}
	}
}

// TestAccessibilityOfMailPages runs axe-core on the pages mail brings, in the light and the
// dark colour scheme.
func TestAccessibilityOfMailPages(t *testing.T) {
	requireAxe(t)
	const password = "correct horse battery"
	app := StartMailApp(t)
	root := app.CreateUser(t, db.NewUser{Username: "root", Role: db.RoleAdmin, Email: "root@example.com"}, password)
	sam := app.CreateUser(t, db.NewUser{Username: "sam", Email: "sam@example.com"}, password)
	app.CreateUser(t, db.NewUser{Username: "nia"}, password)
	n, err := app.Store.CreateNotice(context.Background(), db.NoticeInput{Title: "Code of conduct", Body: "Read it.",
		Kind: db.NoticeMustRead, Severity: db.SeverityInfo, Audience: db.Audience{Everyone: true}, Email: true,
		Remind: db.RemindWeekly, DueAt: app.Now().Add(time.Hour), Renew: 365 * 24 * time.Hour}, root, db.Event{At: app.Now()})
	if err != nil {
		t.Fatal(err)
	}
	b := NewBrowser(t, app)
	check := func() {
		t.Helper()
		b.Axe(t)
		b.darkMode(true)
		b.Axe(t)
		b.darkMode(false)
	}
	visit := func(path string, status int64) {
		t.Helper()
		if resp := b.Visit(path); resp.Status != status {
			t.Fatalf("GET %s: status %d, want %d", path, resp.Status, status)
		}
		check()
	}
	visit("/login", http.StatusOK)
	visit("/login/forgot", http.StatusOK)
	b.Fill("#username", "sam")
	b.Click(`form[action="/login/forgot"] button[type=submit]`)
	check()
	link := mailedPath(t, app, "sam@example.com", 1)
	visit(link, http.StatusOK)
	b.Do("let a short password through to the server",
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#new_password").removeAttribute("minlength")`))
	b.Fill("#new_password", "short")
	b.Click(`form[action="/login/reset"] button[type=submit]`)
	check()
	visit("/login/reset", http.StatusOK)
	visit("/login/reset?token="+auth.NewToken(), http.StatusGone)

	b.SignIn("root", password)
	visit("/account/email", http.StatusOK)
	b.Fill("#email", "rita@example.com")
	b.Click(`form[action="/account/email"] button[type=submit]`)
	check()
	visit(mailedPath(t, app, "rita@example.com", 1), http.StatusOK)
	visit("/admin/users/"+itoa(sam.ID), http.StatusOK)
	visit("/admin/sessions", http.StatusOK)
	visit("/admin/notices/"+itoa(n.ID)+"/edit", http.StatusOK)
	app.Advance(2 * time.Hour) // past the due date: the overdue list leads
	b.SignIn("root", password)
	visit("/admin/notices/"+itoa(n.ID), http.StatusOK)
	visit("/notices/"+itoa(n.ID), http.StatusOK)
}

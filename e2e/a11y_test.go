package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"gatehouse/auth"
	"gatehouse/db"
)

// TestAccessibility runs axe-core on every kind of page the portal has, in the state a person
// meets it: with errors shown, banners of each severity, a preview, a dry run. One browser
// walks them all, so the whole check stays well inside a minute.
func TestAccessibility(t *testing.T) {
	requireAxe(t)
	const password = "correct horse battery"
	app := StartApp(t)
	ctx := context.Background()
	root := app.CreateUser(t, db.NewUser{Username: "root", DisplayName: "Rita Root", Role: db.RoleAdmin}, password)
	sam := app.CreateUser(t, db.NewUser{Username: "sam", DisplayName: "Sam Staff"}, password)
	group, err := app.Store.CreateGroup(ctx, "night shift", db.Event{At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Store.AddGroupMember(ctx, group.ID, sam.ID, db.Event{At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// A banner of every severity and both kinds, so each colour pair is checked.
	notice := func(title, body, kind, severity string) db.Notice {
		n, err := app.Store.CreateNotice(ctx, db.NoticeInput{Title: title, Body: body, Kind: kind, Severity: severity,
			Audience: db.Audience{Everyone: true}}, root, db.Event{At: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	mustRead := notice("Server move tonight", "The portal moves at 22:00.\nDetails: https://wiki.example/move.",
		db.NoticeMustRead, db.SeverityCritical)
	normal := notice("Canteen closed on Friday", "Bring lunch; the kitchen is being repainted.", db.NoticeNormal, db.SeverityInfo)
	notice("New rota from Monday", "See https://wiki.example/rota for your shifts.", db.NoticeNormal, db.SeverityWarning)
	// An app behind forward auth on the portal's own host, which its cookie reaches.
	tools, err := app.Store.CreateApp(ctx, db.AppInput{Host: "127.0.0.1:9443", RequireMFA: true,
		Audience: db.Audience{GroupIDs: []int64{group.ID}}}, db.Event{At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}

	// An empty portal for the first-run page, started before the browser so that it stops
	// after it: the browser may hold a connection open to it.
	fresh := StartApp(t)
	tok := fresh.SetupToken(t)

	b := NewBrowser(t, app)
	// check runs axe on the page as it is, in the light and the dark colour scheme: each page
	// has its own mix of colours (danger buttons, tags, banners), so one dark page is not enough.
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
	idPath := func(format string, id int64) string { return strings.Replace(format, "ID", itoa(id), 1) }

	// Signed out: the sign-in page with a refusal, in light and dark.
	b.Visit("/login")
	if resp := b.SubmitSignIn("root", "wrong password"); resp.Status != http.StatusUnauthorized && resp.Status != http.StatusOK {
		t.Fatalf("a wrong password answered %d", resp.Status)
	}
	b.WaitVisible(`[role=alert]`)
	check()

	// Enrollment, then the recovery codes it shows once.
	b.SignIn("root", password)
	visit("/account/mfa", http.StatusOK)
	secret := strings.TrimSpace(b.Text("#mfa-secret"))
	b.Fill("#code", auth.TOTPCode(secret, app.Now()))
	b.Click(`form[action="/account/mfa"] button[type=submit]`)
	b.WaitVisible(".recovery-code")
	check()

	// Signed out with a message, then the second step.
	b.SignOut()
	check()
	app.Advance(time.Minute) // the confirming code's time step is spent
	b.SignIn("root", password)
	if b.URL().Path != "/login/mfa" {
		t.Fatalf("after the password the browser is at %s, want the second step", b.URL())
	}
	check()
	b.Fill("#code", auth.TOTPCode(secret, app.Now()))
	b.Click(`form[action="/login/mfa"] button[type=submit]`)

	// The dashboard under three banners, wide, narrow and dark.
	if b.URL().Path != "/" {
		t.Fatalf("after the second step the browser is at %s", b.URL())
	}
	b.WaitVisible(`section[data-must-read="true"]`)
	check()
	b.Do("narrow viewport", chromedp.EmulateViewport(375, 800))
	check()
	b.Do("wide viewport", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.ClearDeviceMetricsOverride, cdp.Empty{})
		return err
	}))

	for _, path := range []string{"/account", "/account/password", "/account/sessions", "/account/passkeys", "/notices",
		idPath("/notices/ID", mustRead.ID), idPath("/notices/ID", normal.ID)} {
		visit(path, http.StatusOK)
	}

	// Administration.
	for _, path := range []string{"/admin", "/admin/users?msg=saved", "/admin/users/new",
		idPath("/admin/users/ID", sam.ID), idPath("/admin/users/ID/delete", sam.ID),
		idPath("/admin/users/ID", root.ID),
		"/admin/groups", idPath("/admin/groups/ID", group.ID), idPath("/admin/groups/ID/reset-mfa", group.ID),
		"/admin/notices", idPath("/admin/notices/ID", mustRead.ID), idPath("/admin/notices/ID/edit", mustRead.ID),
		"/admin/sessions", "/admin/audit", "/admin/apps", idPath("/admin/apps/ID", tools.ID)} {
		visit(path, http.StatusOK)
	}
	// The app form with its reach preview, and with a refusal.
	b.Visit("/admin/apps")
	b.Fill("#host", "wiki.example.com")
	b.Click(`form.app-form button[name=preview]`)
	b.WaitVisible(`[role=alert]`)
	check()
	b.Fill("#host", "127.0.0.1:9444")
	b.Click(`form.app-form button[name=preview]`)
	b.WaitVisible(`.preview [role=status]`)
	check()
	// The page forward auth answers a stranger with: this browser is no trusted proxy.
	visit("/auth/verify", http.StatusForbidden)
	// The notice form with its preview.
	b.Visit("/admin/notices")
	b.Fill("#title", "Fire drill at 11:00")
	b.Fill("#body", "Leave by the nearest exit.")
	b.Do("choose must read, warning, everyone",
		chromedp.Click(chromedp.CSS(`input[name=kind][value=must_read]`)),
		chromedp.SetValue(chromedp.CSS(`#severity`), "warning"),
		chromedp.Click(chromedp.CSS(`input[name=audience][value=everyone]`)))
	b.Click(`button[name=preview]`)
	b.WaitVisible(`.preview [role=status]`)
	check()
	// The two-step policy with its dry run.
	visit("/admin/mfa-policy", http.StatusOK)
	b.Do("require two-step for the group",
		chromedp.SetValue(chromedp.CSS("#scope"), "group:"+itoa(group.ID)),
		chromedp.SetValue(chromedp.CSS("#mode"), "required"),
		chromedp.SetValue(chromedp.CSS("#deadline"), "2030-01-01T09:00"))
	b.Click(`form.stack button[type=submit]`)
	b.WaitVisible(`.preview [role=status]`)
	check()

	// The error page.
	visit("/no/such/page", http.StatusNotFound)

	// First-run set-up, on the empty portal.
	if resp := step(b, "visit /setup", chromedp.NavigateResponse(fresh.URL+"/setup?token="+tok)); resp.Status != http.StatusOK {
		t.Fatalf("GET /setup: status %d", resp.Status)
	}
	check()
}

// darkMode makes the page match prefers-color-scheme: dark, or stops doing so.
func (b *Browser) darkMode(on bool) {
	b.T.Helper()
	scheme := "light"
	if on {
		scheme = "dark"
	}
	b.Do("prefers-color-scheme: "+scheme, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	}))
}

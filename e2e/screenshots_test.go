package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"gatehouse/auth"
	"gatehouse/db"
)

// TestScreenshots writes the documentation's screenshots: full-page PNGs, 1280 pixels wide,
// of the pages people ask about, filled with a small believable portal. It runs only when
// GATEHOUSE_SCREENSHOTS names the folder to write to (make screenshots sets docs/screenshots);
// a relative folder is taken from the module root, not from e2e/ where go test runs.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("GATEHOUSE_SCREENSHOTS")
	if dir == "" {
		t.Skip("set GATEHOUSE_SCREENSHOTS to a folder (make screenshots) to write the screenshots")
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("..", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	const password = "correct horse battery"
	app := StartApp(t)
	ctx := context.Background()
	ev := db.Event{At: time.Now()}
	rita := app.CreateUser(t, db.NewUser{Username: "rita", DisplayName: "Rita Okafor", Role: db.RoleAdmin}, password)
	app.CreateUser(t, db.NewUser{Username: "priya", DisplayName: "Priya Shah", Role: db.RolePublisher}, password)
	staff := map[string]db.User{}
	for _, u := range []db.NewUser{
		{Username: "sam", DisplayName: "Sam Lee"}, {Username: "olga", DisplayName: "Olga Petrova"},
		{Username: "tom", DisplayName: "Tom Brennan"}, {Username: "ines", DisplayName: "Inês Duarte"},
	} {
		staff[u.Username] = app.CreateUser(t, u, password)
	}
	night, err := app.Store.CreateGroup(ctx, "night shift", ev)
	if err != nil {
		t.Fatal(err)
	}
	mods, err := app.Store.CreateGroup(ctx, "moderators", ev)
	if err != nil {
		t.Fatal(err)
	}
	for g, names := range map[int64][]string{night.ID: {"sam", "olga", "tom"}, mods.ID: {"ines", "olga"}} {
		for _, n := range names {
			if err := app.Store.AddGroupMember(ctx, g, staff[n].ID, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	notice := func(title, body, kind, severity string) db.Notice {
		n, err := app.Store.CreateNotice(ctx, db.NoticeInput{Title: title, Body: body, Kind: kind, Severity: severity,
			Audience: db.Audience{Everyone: true}}, rita, ev)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	move := notice("Server move tonight",
		"The portal moves to the new rack at 22:00 and is away for about ten minutes.\nWhat to expect: https://wiki.example/server-move",
		db.NoticeMustRead, db.SeverityCritical)
	notice("New rota from Monday", "Night shift starts at 21:30 from next week. Your shifts: https://wiki.example/rota",
		db.NoticeNormal, db.SeverityWarning)
	notice("Canteen closed on Friday", "The kitchen is being repainted. Bring lunch, or try the café on the corner.",
		db.NoticeNormal, db.SeverityInfo)
	if err := app.Store.AckNotice(ctx, move.ID, staff["tom"], db.Event{At: time.Now(), Kind: "notice.acknowledged"}); err != nil {
		t.Fatal(err)
	}

	b := NewBrowser(t, app)
	b.Do("1280 wide", chromedp.EmulateViewport(1280, 800))
	shot := func(name string) {
		t.Helper()
		png := step(b, "screenshot "+name, chromedp.FullScreenshot(100))
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	b.Visit("/login")
	shot("login")

	// Some history for the audit log and the health panel: a mistyped password, then Sam
	// signs in and acknowledges the must-read notice from its banner.
	b.SubmitSignIn("sam", "correct horse stable")
	b.SubmitSignIn("sam", password)
	b.Click(`section[data-notice-id="` + itoa(move.ID) + `"] form[action$="/ack"] button[type=submit]`)
	b.SignOut()

	// Rita turns on two-step verification.
	b.SignIn("rita", password)
	b.Visit("/account/mfa")
	b.WaitVisible("#mfa-qr")
	shot("enrollment")
	secret := strings.TrimSpace(b.Text("#mfa-secret"))
	b.Fill("#code", auth.TOTPCode(secret, app.Now()))
	b.Click(`form[action="/account/mfa"] button[type=submit]`)
	b.WaitVisible(".recovery-code")
	shot("recovery-codes")

	b.Visit("/")
	b.WaitVisible(`section[data-must-read="true"]`)
	shot("dashboard")
	b.Visit("/notices")
	shot("notices")
	// Rita reads her banners, so the admin pages below show only themselves.
	for b.Has(`section[data-notice-id] form button[type=submit]`) {
		b.Click(`section[data-notice-id] form button[type=submit]`)
	}

	// A notice on its way out, previewed with its reach before publishing.
	b.Visit("/admin/notices")
	b.Fill("#title", "Fire drill on Thursday at 11:00")
	b.Fill("#body", "Leave by the nearest exit and meet in the car park.\nFloor plans: https://wiki.example/exits")
	b.Do("choose must read, warning, night shift",
		chromedp.Click(chromedp.CSS(`input[name=kind][value=must_read]`)),
		chromedp.SetValue(chromedp.CSS(`#severity`), "warning"),
		chromedp.Click(chromedp.CSS(`input[name=audience][value="group:`+itoa(night.ID)+`"]`)))
	b.Click(`button[name=preview]`)
	b.WaitVisible(`.preview [role=status]`)
	shot("admin-notice-preview")

	b.Visit("/admin/notices/" + itoa(move.ID))
	shot("receipts")

	// A rollout's dry run: required for the night shift, deadline in a fortnight.
	b.Visit("/admin/mfa-policy")
	deadline := time.Now().AddDate(0, 0, 14).Format("2006-01-02") + "T09:00"
	b.Do("require two-step for the night shift",
		chromedp.SetValue(chromedp.CSS("#scope"), "group:"+itoa(night.ID)),
		chromedp.SetValue(chromedp.CSS("#mode"), "required"),
		chromedp.SetValue(chromedp.CSS("#deadline"), deadline))
	b.Click(`form.stack button[type=submit]`)
	b.WaitVisible(`.preview [role=status]`)
	shot("mfa-policy-dry-run")

	b.Visit("/admin")
	shot("admin-overview")
	b.Visit("/admin/audit")
	shot("audit-log")
}

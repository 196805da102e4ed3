package e2e

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"gatehouse/db"
)

// TestPublisherMustReadNotice is the "days re-posting the same link" failure from the spec:
// a publisher previews and posts a must-read notice in one browser; it follows a reader
// onto every page until they acknowledge it, in their own browser, and the publisher sees
// who has read it and who has not.
func TestPublisherMustReadNotice(t *testing.T) {
	const password = "correct horse battery"
	const link = "https://wiki.example/move?step=1&x=2"
	app := StartApp(t)
	app.CreateUser(t, db.NewUser{Username: "pub", Role: db.RolePublisher}, password)
	app.CreateUser(t, db.NewUser{Username: "sam", Role: db.RoleStaff}, password)
	app.CreateUser(t, db.NewUser{Username: "olga", Role: db.RoleStaff}, password)

	// The publisher writes the notice and previews its reach before publishing.
	pub := NewBrowser(t, app)
	pub.SignIn("pub", password)
	if resp := pub.Visit("/admin/notices"); resp.Status != http.StatusOK {
		t.Fatalf("GET /admin/notices as a publisher: status %d", resp.Status)
	}
	pub.Fill("#title", "Server move tonight")
	pub.Fill("#body", "The portal moves at 22:00 <b>sharp</b>.\nDetails: "+link+".")
	pub.Do("choose must read, critical, everyone",
		chromedp.Click(chromedp.CSS(`input[name=kind][value=must_read]`)),
		chromedp.SetValue(chromedp.CSS(`#severity`), "critical"),
		chromedp.Click(chromedp.CSS(`input[name=audience][value=everyone]`)))

	resp := pub.Click(`button[name=preview]`)
	if resp.Status != http.StatusOK || pub.URL().Path != "/admin/notices" {
		t.Fatalf("preview: status %d at %s, want 200 at /admin/notices", resp.Status, pub.URL())
	}
	pub.ExpectText(`[role=status]`, "3 users will see this, 3 must acknowledge it.")
	if n, err := app.Store.ListNotices(t.Context(), 0, 10, app.Now()); err != nil || len(n) != 0 {
		t.Fatalf("the preview published something: %d notices, %v", len(n), err)
	}
	// The form keeps every choice, so Publish sends what was previewed.
	kept := step(pub, "form after preview", chromedp.Evaluate[[]string](`[
		document.querySelector("#title").value,
		document.querySelector("input[name=kind]:checked").value,
		document.querySelector("#severity").value,
		Array.from(document.querySelectorAll("input[name=audience]:checked")).map(e => e.value).join(","),
		String(document.querySelector("#body").value.includes("\n"))]`))
	if want := []string{"Server move tonight", "must_read", "critical", "everyone", "true"}; strings.Join(kept, "|") != strings.Join(want, "|") {
		t.Fatalf("form after preview: %q, want %q", kept, want)
	}

	resp = pub.Click(`form.notice-form button[type=submit]:not([name=preview])`)
	m := regexp.MustCompile(`^/admin/notices/(\d+)$`).FindStringSubmatch(pub.URL().Path)
	if resp.Status != http.StatusOK || m == nil {
		t.Fatalf("publish: status %d at %s, want 200 at /admin/notices/ID", resp.Status, pub.URL())
	}
	id := m[1]
	pub.ExpectText(`[role=status]`, "published")
	banner := `section[data-must-read="true"][data-notice-id="` + id + `"]`

	// Sam, in a browser of his own, meets the banner on every page.
	sam := NewBrowser(t, app)
	sam.SignIn("sam", password)
	for _, path := range []string{"/", "/notices", "/account/sessions", "/account"} {
		if resp := sam.Visit(path); resp.Status != http.StatusOK {
			t.Fatalf("sam GET %s: status %d", path, resp.Status)
		}
		if !sam.Has(banner) {
			t.Fatalf("sam's %s has no banner %s", path, banner)
		}
	}

	// It is a labelled region, not an alert, and its body is rendered safely: a real link
	// for the URL, a <br> for the line break, and markup shown as text.
	type bannerFacts struct {
		Tag       string   `json:"tag"`
		Label     string   `json:"label"`
		Role      string   `json:"role"`
		Alerts    int      `json:"alerts"`
		Links     []string `json:"links"`
		Breaks    int      `json:"breaks"`
		Bold      int      `json:"bold"`
		Text      string   `json:"text"`
		AckButton string   `json:"ackButton"`
	}
	facts := step(sam, "read the banner", chromedp.Evaluate[bannerFacts](`(() => {
		const b = document.querySelector(`+jsString(banner)+`);
		const body = b.querySelector(".notice-body");
		const ack = b.querySelector('form[action$="/ack"] button[type=submit]');
		return {
			tag: b.tagName,
			label: b.getAttribute("aria-label") || "",
			role: b.getAttribute("role") || "",
			alerts: document.querySelectorAll('[role=alert]').length,
			links: Array.from(body.querySelectorAll("a")).map(a => a.getAttribute("href")),
			breaks: body.querySelectorAll("br").length,
			bold: body.querySelectorAll("b").length,
			text: body.textContent,
			ackButton: ack ? ack.textContent.trim() : "",
		};
	})()`))
	if facts.Tag != "SECTION" || !strings.Contains(facts.Label, "Server move tonight") || facts.Role == "alert" {
		t.Errorf("banner is <%s aria-label=%q role=%q>; want a <section> labelled with the title, not role=alert",
			facts.Tag, facts.Label, facts.Role)
	}
	if facts.Alerts != 0 {
		t.Errorf("the page has %d role=alert elements; a notice is not an error", facts.Alerts)
	}
	if len(facts.Links) != 1 || facts.Links[0] != link {
		t.Errorf("banner body links %q, want exactly [%q] (trailing full stop left out)", facts.Links, link)
	}
	if facts.Breaks != 1 {
		t.Errorf("banner body has %d <br>, want 1 for the line break", facts.Breaks)
	}
	if facts.Bold != 0 || !strings.Contains(facts.Text, "<b>sharp</b>") {
		t.Errorf("markup in the body was interpreted: %d <b> elements, text %q", facts.Bold, facts.Text)
	}
	if facts.AckButton != "I have read this" {
		t.Errorf("banner acknowledge button says %q, want \"I have read this\"", facts.AckButton)
	}
	if sam.Has(banner + ` form[action$="/dismiss"]`) {
		t.Errorf("a must-read banner offers Dismiss")
	}

	// Sam acknowledges from /account and comes back to /account, banner gone for good.
	resp = sam.Click(banner + ` form[action="/notices/` + id + `/ack"] button[type=submit]`)
	if resp.Status != http.StatusOK || sam.URL().Path != "/account" {
		t.Fatalf("after acknowledging: status %d at %s, want 200 at /account", resp.Status, sam.URL())
	}
	if sam.Has(`[data-notice-id="` + id + `"]`) {
		t.Fatalf("the banner is still on /account after acknowledging")
	}
	for _, path := range []string{"/", "/notices"} {
		sam.Visit(path)
		if sam.Has(`section[data-notice-id="` + id + `"]`) {
			t.Fatalf("the banner came back on %s after acknowledging", path)
		}
	}
	// /notices still lists it, as read.
	sam.ExpectText(`li.notice-item[data-notice-id="`+id+`"]`, "Read on")

	// Olga has not read it: her banner stays.
	olga := NewBrowser(t, app)
	olga.SignIn("olga", password)
	for _, path := range []string{"/", "/notices"} {
		olga.Visit(path)
		if !olga.Has(banner) {
			t.Fatalf("olga's %s lost the banner when sam acknowledged", path)
		}
	}

	// The publisher's receipts: sam acknowledged, olga (and pub) not yet.
	if resp := pub.Visit("/admin/notices/" + id); resp.Status != http.StatusOK {
		t.Fatalf("GET /admin/notices/%s: status %d", id, resp.Status)
	}
	for sel, want := range map[string]bool{
		`ul.receipts.acked li[data-user=sam]`:    true,
		`ul.receipts.pending li[data-user=olga]`: true,
		`ul.receipts.pending li[data-user=pub]`:  true,
		`ul.receipts.acked li[data-user=olga]`:   false,
		`ul.receipts.pending li[data-user=sam]`:  false,
	} {
		if got := pub.Has(sel); got != want {
			t.Errorf("receipts: %s present = %v, want %v", sel, got, want)
		}
	}
	pub.ExpectText(`[data-testid=receipt-counts]`, "1 of 3 have acknowledged")
}

package handlers

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"gatehouse/db"
	"gatehouse/views"
)

// post publishes a notice through the form and returns its id.
func (c *client) postNotice(tb testing.TB, form url.Values) int64 {
	tb.Helper()
	c.get("/admin/notices")
	resp := c.post("/admin/notices", form)
	wantRedirect(tb, resp, "/admin/notices/")
	loc := strings.TrimPrefix(resp.Header.Get("Location"), "/admin/notices/")
	id, err := strconv.ParseInt(strings.SplitN(loc, "?", 2)[0], 10, 64)
	if err != nil {
		tb.Fatalf("Location %q", resp.Header.Get("Location"))
	}
	return id
}

func noticeForm(title, body, kind string, audience ...string) url.Values {
	return url.Values{"title": {title}, "body": {body}, "kind": {kind}, "severity": {"warning"}, "audience": audience}
}

var bannerRe = regexp.MustCompile(`<section class="banner [a-z]+" aria-label="[^"]*" data-notice-id="(\d+)" data-must-read="(true|false)">`)

// banners lists the notice ids shown as banners on a page, with their must-read flags.
func banners(tb testing.TB, resp *http.Response) map[string]string {
	tb.Helper()
	out := map[string]string{}
	for _, m := range bannerRe.FindAllStringSubmatch(body(tb, resp), -1) {
		out[m[1]] = m[2]
	}
	return out
}

type noticeWorld struct {
	a                        *testApp
	admin, pub, staff, other *client
	night                    int64 // group id
}

func newNoticeWorld(t *testing.T) noticeWorld {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	a.createUser("pub", db.RolePublisher, "correct horse battery")
	staff := a.createUser("sam", db.RoleStaff, "correct horse battery")
	a.createUser("olga", db.RoleStaff, "correct horse battery")
	w := noticeWorld{a: a, admin: a.client(), pub: a.client(), staff: a.client(), other: a.client()}
	w.admin.login("root", "correct horse battery")
	w.pub.login("pub", "correct horse battery")
	w.staff.login("sam", "correct horse battery")
	w.other.login("olga", "correct horse battery")
	g, err := a.db.CreateGroup(context.Background(), "night shift", db.Event{At: a.clock()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.db.AddGroupMember(context.Background(), g.ID, staff.ID, db.Event{At: a.clock()}); err != nil {
		t.Fatal(err)
	}
	w.night = g.ID
	return w
}

func TestMustReadNoticeLifecycle(t *testing.T) {
	w := newNoticeWorld(t)
	id := w.pub.postNotice(t, noticeForm("Server move", "Read https://wiki.example/move now.", "must_read", "everyone"))
	sid := strconv.FormatInt(id, 10)

	for _, path := range []string{"/", "/account", "/notices", "/account/sessions"} {
		if got := banners(t, w.staff.get(path)); got[sid] != "true" {
			t.Fatalf("%s: banners %v, want must-read %s", path, got, sid)
		}
	}
	t.Run("a must-read notice cannot be dismissed", func(t *testing.T) {
		w.staff.get("/")
		wantStatus(t, w.staff.post("/notices/"+sid+"/dismiss", url.Values{"return": {"/"}}), http.StatusConflict)
		if banners(t, w.staff.get("/"))[sid] == "" {
			t.Fatal("dismiss removed a must-read banner")
		}
	})
	t.Run("acknowledging is for the signed-in user only", func(t *testing.T) {
		w.staff.get("/account")
		resp := w.staff.post("/notices/"+sid+"/ack", url.Values{"return": {"/account"}, "user_id": {"4"}, "user": {"olga"}})
		wantRedirect(t, resp, "/account")
		if banners(t, w.staff.get("/"))[sid] != "" {
			t.Fatal("banner still shown after acknowledging")
		}
		second := w.a.client()
		second.login("sam", "correct horse battery")
		if banners(t, second.get("/"))[sid] != "" {
			t.Fatal("the acknowledgement did not follow the user to another browser")
		}
		if banners(t, w.other.get("/"))[sid] != "true" {
			t.Fatal("another user's banner went away")
		}
		w.staff.get("/")
		wantRedirect(t, w.staff.post("/notices/"+sid+"/ack", url.Values{"return": {"//evil.example"}}), "/")
	})
	t.Run("receipts show who has read it", func(t *testing.T) {
		b := body(t, w.pub.get("/admin/notices/"+sid))
		if !strings.Contains(b, `data-user="sam"`) || !strings.Contains(b, "1 of 4 have acknowledged") {
			t.Fatalf("receipts: %.3000s", b)
		}
		resp := w.pub.get("/admin/notices/" + sid + "/receipts.csv")
		wantStatus(t, resp, http.StatusOK)
		records, err := csv.NewReader(strings.NewReader(body(t, resp))).ReadAll()
		if err != nil || len(records) != 5 {
			t.Fatalf("CSV: %d records, %v", len(records), err)
		}
		states := map[string]string{}
		for _, r := range records[1:] {
			states[r[0]] = r[4]
		}
		if states["sam"] != "acknowledged" || states["olga"] != "not yet" {
			t.Fatalf("CSV states %v", states)
		}
	})
	t.Run("a major edit asks again, a minor one does not", func(t *testing.T) {
		w.pub.get("/admin/notices/" + sid + "/edit")
		form := noticeForm("Server move", "Read https://wiki.example/move now. Typo fixd.", "must_read", "everyone")
		form.Set("minor", "1")
		wantRedirect(t, w.pub.post("/admin/notices/"+sid, form), "/admin/notices/"+sid)
		if banners(t, w.staff.get("/"))[sid] != "" {
			t.Fatal("a minor edit asked the reader again")
		}
		w.pub.get("/admin/notices/" + sid + "/edit")
		wantRedirect(t, w.pub.post("/admin/notices/"+sid, noticeForm("Server move", "The move is now on Friday.", "must_read", "everyone")), "/admin/notices/"+sid)
		if banners(t, w.staff.get("/"))[sid] != "true" {
			t.Fatal("a major edit did not ask again")
		}
		if b := body(t, w.staff.get("/notices")); !strings.Contains(b, "Updated since you read it") {
			t.Fatal("the list does not say the notice changed")
		}
	})
	t.Run("archiving lifts the banner and keeps it readable", func(t *testing.T) {
		w.pub.get("/admin/notices/" + sid)
		wantRedirect(t, w.pub.post("/admin/notices/"+sid+"/archive", nil), "/admin/notices/"+sid)
		if banners(t, w.other.get("/"))[sid] != "" {
			t.Fatal("archived notice still a banner")
		}
		wantStatus(t, w.other.get("/notices/"+sid), http.StatusOK)
		w.other.get("/")
		wantStatus(t, w.other.post("/notices/"+sid+"/ack", nil), http.StatusNotFound)
	})
	t.Run("posting and acknowledging are audited", func(t *testing.T) {
		for _, kind := range []string{"notice.posted", "notice.acknowledged", "notice.edited", "notice.archived"} {
			evs, _ := w.a.db.ListEvents(context.Background(), db.AuditFilter{Kind: kind})
			if len(evs) == 0 {
				t.Errorf("no %s audit row", kind)
			}
		}
	})
}

func TestNormalNoticeDismissal(t *testing.T) {
	w := newNoticeWorld(t)
	id := w.admin.postNotice(t, noticeForm("Lunch", "Pizza on Friday", "normal", "role:staff"))
	sid := strconv.FormatInt(id, 10)
	if banners(t, w.staff.get("/"))[sid] != "false" {
		t.Fatal("staff does not see the normal banner")
	}
	if banners(t, w.pub.get("/"))[sid] != "" {
		t.Fatal("a publisher sees a staff-only notice")
	}
	w.staff.get("/notices")
	wantRedirect(t, w.staff.post("/notices/"+sid+"/dismiss", url.Values{"return": {"/notices"}}), "/notices")
	if banners(t, w.staff.get("/"))[sid] != "" {
		t.Fatal("dismissed banner still shown")
	}
	if banners(t, w.other.get("/"))[sid] == "" {
		t.Fatal("dismissal leaked to another user")
	}
}

func TestNoticeAudienceAndSchedule(t *testing.T) {
	w := newNoticeWorld(t)
	a := w.a
	group := w.admin.postNotice(t, noticeForm("Night shift", "Keys moved", "normal", "group:"+strconv.FormatInt(w.night, 10)))
	pubs := w.admin.postNotice(t, noticeForm("Publishers", "Style guide", "normal", "role:publisher"))
	later := noticeForm("Later", "Not yet", "must_read", "everyone")
	later.Set("starts_at", a.clock().Add(2*time.Hour).Format(views.FormTime))
	later.Set("ends_at", a.clock().Add(4*time.Hour).Format(views.FormTime))
	future := w.admin.postNotice(t, later)

	for _, tc := range []struct {
		name    string
		c       *client
		id      int64
		visible bool
	}{
		{"a group member sees the group's notice", w.staff, group, true},
		{"a non-member does not", w.other, group, false},
		{"a publisher sees the publishers' notice", w.pub, pubs, true},
		{"staff do not", w.staff, pubs, false},
		{"nobody sees a notice before it starts", w.staff, future, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sid := strconv.FormatInt(tc.id, 10)
			_, shown := banners(t, tc.c.get("/"))[sid]
			if shown != tc.visible {
				t.Fatalf("banner shown = %v", shown)
			}
			want := http.StatusNotFound
			if tc.visible {
				want = http.StatusOK
			}
			wantStatus(t, tc.c.get("/notices/"+sid), want)
			if !tc.visible {
				tc.c.get("/")
				wantStatus(t, tc.c.post("/notices/"+sid+"/ack", nil), http.StatusNotFound)
				wantStatus(t, tc.c.post("/notices/"+sid+"/dismiss", nil), http.StatusNotFound)
			}
		})
	}
	t.Run("the scheduled notice shows between its start and end", func(t *testing.T) {
		sid := strconv.FormatInt(future, 10)
		a.advance(3 * time.Hour)
		olga := a.client() // the earlier sessions have idled out
		olga.login("olga", "correct horse battery")
		if banners(t, olga.get("/"))[sid] != "true" {
			t.Fatal("not shown during its window")
		}
		a.advance(50 * time.Minute)
		olga.get("/")
		a.advance(50 * time.Minute)
		if banners(t, olga.get("/"))[sid] != "" {
			t.Fatal("shown after its end")
		}
		wantStatus(t, olga.get("/notices/"+sid), http.StatusOK)
		olga.get("/")
		wantStatus(t, olga.post("/notices/"+sid+"/ack", nil), http.StatusNotFound)
	})
}

func TestNoticeFormRules(t *testing.T) {
	w := newNoticeWorld(t)
	t.Run("staff cannot post or read receipts", func(t *testing.T) {
		wantStatus(t, w.staff.get("/admin/notices"), http.StatusForbidden)
		w.staff.get("/")
		wantStatus(t, w.staff.post("/admin/notices", noticeForm("x", "y", "normal", "everyone")), http.StatusForbidden)
	})
	t.Run("the preview counts reach and publishes nothing", func(t *testing.T) {
		form := noticeForm("Drill", "Fire drill at 3", "must_read", "role:staff", "group:"+strconv.FormatInt(w.night, 10))
		form.Set("preview", "1")
		w.pub.get("/admin/notices")
		resp := w.pub.post("/admin/notices", form)
		wantStatus(t, resp, http.StatusOK)
		b := body(t, resp)
		if !strings.Contains(b, `role="status">2 users will see this, 2 must acknowledge it.`) {
			t.Fatalf("preview: %.3000s", b)
		}
		if rows, _ := w.a.db.ListNotices(context.Background(), 0, 10, w.a.clock()); len(rows) != 0 {
			t.Fatal("preview published")
		}
	})
	for _, tc := range []struct {
		name  string
		form  url.Values
		field string
	}{
		{"no title", noticeForm("", "body", "normal", "everyone"), "title-error"},
		{"no audience", noticeForm("t", "body", "normal"), "audience-error"},
		{"unknown group", noticeForm("t", "body", "normal", "group:999"), "audience-error"},
		{"unknown role", noticeForm("t", "body", "normal", "role:root"), "audience-error"},
		{"end before start", url.Values{"title": {"t"}, "body": {"b"}, "audience": {"everyone"},
			"starts_at": {"2026-03-05T10:00"}, "ends_at": {"2026-03-04T10:00"}}, "ends-error"},
		{"garbled time", url.Values{"title": {"t"}, "body": {"b"}, "audience": {"everyone"}, "starts_at": {"tomorrow"}}, "starts-error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.pub.get("/admin/notices")
			resp := w.pub.post("/admin/notices", tc.form)
			wantStatus(t, resp, http.StatusUnprocessableEntity)
			if !strings.Contains(body(t, resp), `id="`+tc.field+`"`) {
				t.Fatalf("no %s next to the field", tc.field)
			}
		})
	}
	t.Run("another publisher's notice is a 404, an admin sees it", func(t *testing.T) {
		id := w.admin.postNotice(t, noticeForm("Admins only", "x", "normal", "everyone"))
		sid := strconv.FormatInt(id, 10)
		wantStatus(t, w.pub.get("/admin/notices/"+sid), http.StatusNotFound)
		wantStatus(t, w.pub.get("/admin/notices/"+sid+"/receipts.csv"), http.StatusNotFound)
		w.pub.get("/admin/notices")
		wantStatus(t, w.pub.post("/admin/notices/"+sid+"/archive", nil), http.StatusNotFound)
		pid := w.pub.postNotice(t, noticeForm("Mine", "x", "normal", "everyone"))
		wantStatus(t, w.admin.get("/admin/notices/"+strconv.FormatInt(pid, 10)), http.StatusOK)
	})
	t.Run("times are read in the configured zone", func(t *testing.T) {
		a := newTestApp(t, func(c *Config) { c.Location, _ = time.LoadLocation("Europe/Berlin") })
		a.createUser("root", db.RoleAdmin, "correct horse battery")
		c := a.client()
		c.login("root", "correct horse battery")
		form := noticeForm("Zoned", "x", "normal", "everyone")
		form.Set("starts_at", "2026-03-02T12:00")
		id := c.postNotice(t, form)
		n, _ := a.db.NoticeByID(context.Background(), id)
		if want := time.Date(2026, 3, 2, 11, 0, 0, 0, time.UTC); !n.StartsAt.Equal(want) {
			t.Fatalf("starts %v, want %v", n.StartsAt, want)
		}
	})
}

// liveMarkup parses a page as a browser would and reports any script element, event
// handler attribute or javascript: link in it.
func liveMarkup(tb testing.TB, page string) string {
	tb.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		tb.Fatal(err)
	}
	var problem string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			if n.Data == "script" || n.Data == "svg" || (n.Data == "img" && !hasAttr(n, "id", "mfa-qr")) {
				problem = "live <" + n.Data + "> element"
			}
			for _, a := range n.Attr {
				if strings.HasPrefix(a.Key, "on") {
					problem = "event handler " + a.Key
				}
				if (a.Key == "href" || a.Key == "src" || a.Key == "action") &&
					strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:") {
					problem = "javascript: URL in " + a.Key
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return problem
}

func hasAttr(n *html.Node, key, val string) bool {
	for _, a := range n.Attr {
		if a.Key == key && a.Val == val {
			return true
		}
	}
	return false
}

func TestNoticeXSSIsInert(t *testing.T) {
	if liveMarkup(t, `<p><b onclick="x()">a</b></p>`) == "" || liveMarkup(t, `<a href=" JavaScript:x">`) == "" {
		t.Fatal("the detector misses live markup")
	}
	w := newNoticeWorld(t)
	payloads := []string{`<script>alert(1)</script>`, `<img src=x onerror=alert(1)>`, `"><svg onload=alert(1)>`,
		`</title><script>x</script>`, `[x](javascript:alert(1))`, `<a href="JaVaScRiPt:alert(1)">`}
	id := w.pub.postNotice(t, noticeForm(strings.Join(payloads, " "), strings.Join(payloads, "\n"), "must_read", "everyone"))
	sid := strconv.FormatInt(id, 10)
	pages := map[string]*client{"/": w.staff, "/notices": w.staff, "/notices/" + sid: w.staff,
		"/admin/notices": w.pub, "/admin/notices/" + sid: w.pub, "/admin/notices/" + sid + "/edit": w.pub}
	for path, c := range pages {
		t.Run(path, func(t *testing.T) {
			if problem := liveMarkup(t, body(t, c.get(path))); problem != "" {
				t.Fatalf("%s: %s", path, problem)
			}
		})
	}
}

func TestCSVCellsCannotBeFormulas(t *testing.T) {
	for in, want := range map[string]string{"=cmd()": "'=cmd()", "+1": "'+1", "-2": "'-2", "@x": "'@x", "plain": "plain", "": ""} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBannerFailureIsShownAndCounted: when the banners cannot be read, the page still
// renders, but says so where the banners would be, so a reader does not take the missing
// must-read notices for none, and the health panel counts it.
func TestBannerFailureIsShownAndCounted(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	a.createUser("sam", db.RoleStaff, "correct horse battery")
	admin, sam := a.client(), a.client()
	admin.login("root", "correct horse battery")
	sam.login("sam", "correct horse battery")
	if strings.Contains(body(t, sam.get("/account/sessions")), "could not be loaded") {
		t.Fatal("the alert shows while the banners load")
	}

	w := a.rawWriter()
	if _, err := w.Exec(`ALTER TABLE notices RENAME TO notices_away`); err != nil {
		t.Fatal(err)
	}
	a.advance(liveNoticesTTL + time.Second) // past the in-memory copy

	resp := sam.get("/account/sessions")
	wantStatus(t, resp, http.StatusOK)
	b := body(t, resp)
	if !regexp.MustCompile(`<p class="alert" role="alert">[^<]*Notices could not be loaded`).MatchString(b) {
		t.Fatalf("no alert in the banner slot: %.3000s", b)
	}
	page := body(t, admin.get("/admin"))
	m := regexp.MustCompile(`<th scope="row">Notices not loaded</th><td>(\d+)</td><td>(\d+)</td>`).FindStringSubmatch(page)
	if m == nil || m[1] != "1" || m[2] != "1" {
		t.Fatalf("health panel row: %v", m)
	}
}

package handlers

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/db"
)

// The clock the test moves drives a must-read notice through weeks: mailed when it starts,
// a reminder a day to whoever has not acknowledged it, overdue after its due date, the
// banner and the reminders back once an acknowledgement expires, and nothing after it ends.
func TestMustReadNoticeMailsRemindsAndRenewsOverWeeks(t *testing.T) {
	a := newMailApp(t)
	a.mailUser("pub", db.RolePublisher, "pub@example.com")
	a.mailUser("amy", db.RoleStaff, "amy@example.com")
	a.mailUser("bob", db.RoleStaff, "bob@example.com")
	a.mailUser("cat", db.RoleStaff, "")
	pub := a.client()
	pub.login("pub", pw)
	start := a.clock()
	due := start.Add(3 * 24 * time.Hour)
	form := noticeForm("Fire safety policy", "Read the policy at https://wiki.example/fire.", "must_read", "role:staff")
	form.Set("email", "1")
	form.Set("remind", "daily")
	form.Set("due_at", due.Format("2006-01-02T15:04"))
	form.Set("renew_every", "7d")
	form.Set("ends_at", start.Add(20*24*time.Hour).Format("2006-01-02T15:04"))

	pub.get("/admin/notices")
	preview := url.Values{}
	for k, v := range form {
		preview[k] = v
	}
	preview.Set("preview", "1")
	if !strings.Contains(body(t, pub.post("/admin/notices", preview)), "1 in the audience has no address") {
		t.Error("the preview does not say how many have no address")
	}
	id := pub.postNotice(t, form)
	link := "http://localhost:8080/notices/" + strconv.FormatInt(id, 10)

	mails := func(addr string) int { return len(a.smtp.To(addr)) }
	if sent := a.deliver(); sent != 2 {
		t.Fatalf("the start mailed %d, want amy and bob (cat has no address)", sent)
	}
	m := a.smtp.To("amy@example.com")[0]
	if !strings.Contains(m.Part("text/plain"), link) || !strings.HasPrefix(m.Header("Subject"), "Must read: ") ||
		m.Header("List-Unsubscribe") != "" || strings.Contains(m.Part("text/plain"), "token") {
		t.Fatalf("the announcement: %s", m.Data)
	}
	if a.deliver() != 0 {
		t.Fatal("the start was mailed twice")
	}

	a.advance(24*time.Hour + time.Minute)
	if sent := a.deliver(); sent != 2 || mails("amy@example.com") != 2 {
		t.Fatalf("day 1: %d reminders, want 2", sent)
	}
	r := a.smtp.To("bob@example.com")[1]
	if r.Header("List-Unsubscribe") != "<"+link+">" || !strings.Contains(r.Header("Subject"), "Reminder") {
		t.Errorf("the reminder's headers: unsubscribe %q, subject %q", r.Header("List-Unsubscribe"), r.Header("Subject"))
	}
	a.advance(time.Hour)
	if a.deliver() != 0 {
		t.Fatal("a second reminder within one interval")
	}

	amy := a.client()
	amy.login("amy", pw)
	amy.get("/notices/" + strconv.FormatInt(id, 10))
	wantRedirect(t, amy.post("/notices/"+strconv.FormatInt(id, 10)+"/ack", url.Values{"return": {"/"}}), "/")
	a.advance(24 * time.Hour)
	if sent := a.deliver(); sent != 1 || mails("amy@example.com") != 2 || mails("bob@example.com") != 3 {
		t.Fatalf("day 2: %d reminders (amy %d, bob %d), want only bob's", sent, mails("amy@example.com"), mails("bob@example.com"))
	}

	// Before the due date the receipts lead with who has read it; after it, with who is late.
	pub = a.client()
	pub.login("pub", pw)
	page := body(t, pub.get("/admin/notices/"+strconv.FormatInt(id, 10)))
	if strings.Index(page, `class="receipts pending"`) < strings.Index(page, `class="receipts acked"`) || strings.Contains(page, `data-overdue="true"`) {
		t.Error("before the due date, the receipts do not lead with the acknowledgements")
	}
	a.advance(2 * 24 * time.Hour)
	a.mailUser("ann", db.RoleStaff, "")
	pub = a.client() // days have passed: sessions have ended
	pub.login("pub", pw)
	page = body(t, pub.get("/admin/notices/"+strconv.FormatInt(id, 10)))
	if strings.Index(page, `class="receipts pending"`) > strings.Index(page, `class="receipts acked"`) ||
		!strings.Contains(page, `data-user="bob" data-overdue="true"`) || strings.Contains(page, `data-user="amy" data-overdue="true"`) {
		t.Errorf("after the due date, the overdue readers do not come first:\n%.3000s", page)
	}
	resp := pub.get("/admin/notices/" + strconv.FormatInt(id, 10) + "/receipts.csv")
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	overdue := map[string]string{}
	for _, row := range rows[1:] {
		overdue[row[0]] = row[col["overdue"]]
	}
	if _, ok := col["overdue"]; !ok || overdue["bob"] != "yes" || overdue["amy"] != "no" {
		t.Errorf("the CSV's overdue column: %v", rows)
	}

	// Seven days after amy acknowledged, her acknowledgement has expired: the banner is back
	// and so are her reminders.
	a.advance(4*24*time.Hour + time.Hour)
	amy = a.client()
	amy.login("amy", pw)
	if got := banners(t, amy.get("/")); got[strconv.FormatInt(id, 10)] != "true" {
		t.Fatalf("the banner did not come back when the acknowledgement expired: %v", got)
	}
	before := mails("amy@example.com")
	a.deliver()
	if mails("amy@example.com") != before+1 {
		t.Error("no reminder once the acknowledgement expired")
	}
	n, _ := a.db.NoticeByID(context.Background(), id)
	if count, _ := a.db.MustReadOutstanding(context.Background(), a.clock()); count != 4 {
		t.Errorf("%d outstanding acknowledgements, want 4 (amy again, bob, cat, ann) for %q", count, n.Title)
	}

	// After the end, nothing more.
	a.advance(14 * 24 * time.Hour)
	total := len(a.smtp.Messages())
	a.deliver()
	a.advance(48 * time.Hour)
	a.deliver()
	if len(a.smtp.Messages()) != total {
		t.Error("reminders went out after the notice ended")
	}
}

func TestNoticeMailedWhenItsStartComes(t *testing.T) {
	a := newMailApp(t)
	a.mailUser("pub", db.RolePublisher, "")
	a.mailUser("amy", db.RoleStaff, "amy@example.com")
	pub := a.client()
	pub.login("pub", pw)
	form := noticeForm("Canteen closed", "On Friday.", "normal", "everyone")
	form.Set("email", "1")
	form.Set("starts_at", a.clock().Add(2*time.Hour).Format("2006-01-02T15:04"))
	pub.postNotice(t, form)
	if a.deliver() != 0 {
		t.Fatal("a scheduled notice was mailed before it started")
	}
	a.advance(2*time.Hour + time.Minute)
	if a.deliver() != 1 {
		t.Fatal("the notice was not mailed when it started")
	}
	t.Run("reminders, due dates and renewal are for must-read notices", func(t *testing.T) {
		pub := a.client()
		pub.login("pub", pw)
		for field, value := range map[string]string{"remind": "daily", "renew_every": "30d",
			"due_at": a.clock().Add(time.Hour).Format("2006-01-02T15:04")} {
			f := noticeForm("Normal", "Body.", "normal", "everyone")
			f.Set(field, value)
			pub.get("/admin/notices")
			wantStatus(t, pub.post("/admin/notices", f), http.StatusUnprocessableEntity)
		}
		f := noticeForm("Renewal", "Body.", "must_read", "everyone")
		f.Set("renew_every", "1h")
		wantStatus(t, pub.post("/admin/notices", f), http.StatusUnprocessableEntity)
	})
}

package mail

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/db"
	"gatehouse/internal/testkit"
)

// clock is the test's time, moved by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// rig is a store, a clock, a real SMTP server and a sender and scheduler wired to them.
type rig struct {
	t     *testing.T
	ctx   context.Context
	store *db.DB
	clock *clock
	smtp  *testkit.SMTPServer
	send  *Sender
	sched *Scheduler
	base  *url.URL
}

func newRig(t *testing.T) *rig {
	t.Helper()
	store, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r := &rig{t: t, ctx: context.Background(), store: store,
		clock: &clock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}, smtp: testkit.StartSMTP(t)}
	r.base, _ = url.Parse("http://portal.test:8080")
	r.send = r.sender(store)
	r.sched = NewScheduler(store, r.base, time.UTC, r.clock.Now, quietLog())
	return r
}

func (r *rig) sender(store *db.DB) *Sender {
	tr := NewTransport(Config{Addr: r.smtp.Addr, From: "Gatehouse <portal@example.com>", TLS: TLSNone})
	return NewSender(store, tr, quietLog(), r.clock.Now, "portal.test", nil)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (r *rig) user(name, email string, role string) db.User {
	r.t.Helper()
	if role == "" {
		role = db.RoleStaff
	}
	return testkit.CreateUser(r.t, r.store, db.NewUser{Username: name, Role: role, Email: email, PasswordHash: "x"}, "",
		db.Event{At: r.clock.Now()})
}

func (r *rig) enqueue(reason, to string) {
	r.t.Helper()
	if _, err := r.store.EnqueueMail(r.ctx, db.OutboxMail{Reason: reason, Kind: db.MailNotice, To: to,
		Subject: "Hello " + to, Text: "Plain text for " + to, HTML: "<p>HTML for " + to + "</p>"}, r.clock.Now()); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) deliver() (sent, failed int) {
	r.t.Helper()
	sent, failed, err := r.send.DeliverDue(r.ctx)
	if err != nil {
		r.t.Fatalf("DeliverDue: %v", err)
	}
	return sent, failed
}

func (r *rig) outbox(state string) []db.OutboxRow {
	r.t.Helper()
	rows, err := r.store.OutboxMails(r.ctx, state)
	if err != nil {
		r.t.Fatal(err)
	}
	return rows
}

func (r *rig) audit(kind string) []db.Event {
	r.t.Helper()
	evs, err := r.store.ListEvents(r.ctx, db.AuditFilter{Kind: kind})
	if err != nil {
		r.t.Fatal(err)
	}
	return evs
}

func TestOutboxMailIsDeliveredWithItsHeaders(t *testing.T) {
	r := newRig(t)
	r.store.EnqueueMail(r.ctx, db.OutboxMail{Reason: "reminder.7.round.1.user.3", Kind: db.MailReminder, To: "amy@example.com",
		Subject: "Reminder: please read", Text: "Please read it.\nhttp://portal.test:8080/notices/7",
		HTML: "<p>Please read it.</p>", Unsubscribe: "http://portal.test:8080/notices/7"}, r.clock.Now())
	if sent, failed := r.deliver(); sent != 1 || failed != 0 {
		t.Fatalf("sent %d, failed %d", sent, failed)
	}
	m := r.smtp.WaitFor(1, 5*time.Second)[0]
	for header, want := range map[string]string{
		"Auto-Submitted":   "auto-generated",
		"Message-Id":       "<gatehouse.reminder.7.round.1.user.3@portal.test>",
		"List-Unsubscribe": "<http://portal.test:8080/notices/7>",
		"Subject":          "Reminder: please read",
		"To":               "<amy@example.com>",
	} {
		if got := m.Header(header); got != want {
			t.Errorf("%s: %q, want %q", header, got, want)
		}
	}
	if d, err := time.Parse(time.RFC1123Z, m.Header("Date")); err != nil || !d.Equal(r.clock.Now()) {
		t.Errorf("Date %q (%v), want the sender's now", m.Header("Date"), err)
	}
	if !strings.Contains(m.Part("text/plain"), "Please read it.") || !strings.Contains(m.Part("text/html"), "<p>Please read it.</p>") {
		t.Errorf("want a text part and an HTML alternative:\n%s", m.Data)
	}
	if rows := r.outbox(db.MailSent); len(rows) != 1 || !strings.Contains(rows[0].Answer, "OK") {
		t.Errorf("the row does not record the server's answer: %+v", rows)
	}
	if sent, _ := r.deliver(); sent != 0 || len(r.smtp.Messages()) != 1 {
		t.Error("a delivered mail went out again")
	}
}

func TestMailIsRetriedAfterTheServerComesBack(t *testing.T) {
	r := newRig(t)
	r.user("amy", "amy@example.com", "")
	r.smtp.Stop()
	r.enqueue("notice.1.user.1", "amy@example.com")
	if sent, failed := r.deliver(); sent != 0 || failed != 1 {
		t.Fatalf("with the server down: sent %d, failed %d", sent, failed)
	}
	rows := r.outbox(db.MailPending)
	if len(rows) != 1 || rows[0].Attempts != 1 || !rows[0].NextAt.Equal(r.clock.Now().Add(Retries[0])) {
		t.Fatalf("after one failure: %+v, want pending, retried in %s", rows, Retries[0])
	}
	if Retries[0] > time.Minute {
		t.Errorf("the first retry comes after %s; it must come within a minute", Retries[0])
	}
	evs := r.audit("mail.failed")
	if len(evs) != 1 || evs[0].Outcome != db.Failure || !strings.Contains(evs[0].Detail, "attempt 1 of") ||
		!strings.Contains(evs[0].Detail, "connect") {
		t.Fatalf("the failure is not audited with why: %+v", evs)
	}
	r.smtp.Start()
	if sent, _ := r.deliver(); sent != 0 {
		t.Fatal("a mail was retried before its time")
	}
	r.clock.Advance(Retries[0])
	if sent, failed := r.deliver(); sent != 1 || failed != 0 {
		t.Fatalf("after the server came back: sent %d, failed %d", sent, failed)
	}
	if got := len(r.smtp.WaitFor(1, 5*time.Second)); got != 1 {
		t.Fatalf("%d mails arrived, want 1", got)
	}
}

func TestMailIsGivenUpAfterADayOfRetries(t *testing.T) {
	r := newRig(t)
	r.smtp.Stop()
	r.enqueue("notice.1.user.1", "amy@example.com")
	var waited time.Duration
	for attempt := 1; attempt <= Attempts(); attempt++ {
		if _, failed := r.deliver(); failed != 1 {
			t.Fatalf("attempt %d was not made", attempt)
		}
		if attempt < Attempts() {
			r.clock.Advance(Retries[attempt-1])
			waited += Retries[attempt-1]
		}
	}
	if max := Retries[len(Retries)-1]; max != 24*time.Hour {
		t.Errorf("the back-off ends at %s, want a day", max)
	}
	failed := r.outbox(db.MailFailed)
	if len(failed) != 1 || failed[0].Attempts != Attempts() {
		t.Fatalf("after %d attempts over %s: %+v, want it given up", Attempts(), waited, r.outbox(""))
	}
	evs := r.audit("mail.failed")
	if len(evs) != Attempts() || !strings.Contains(evs[0].Detail, "given up after") {
		t.Fatalf("the last failure does not say it gave up: %+v", evs[0])
	}
	r.clock.Advance(48 * time.Hour)
	if _, failed := r.deliver(); failed != 0 {
		t.Error("a mail given up was tried again")
	}
}

func TestRefusedRecipientIsAuditedAndTheOthersDelivered(t *testing.T) {
	r := newRig(t)
	r.smtp.Refuse("gone@example.com")
	r.enqueue("notice.1.user.1", "amy@example.com")
	r.enqueue("notice.1.user.2", "gone@example.com")
	r.enqueue("notice.1.user.3", "bob@example.com")
	sent, failed := r.deliver()
	if sent != 2 || failed != 1 {
		t.Fatalf("sent %d, failed %d; want 2 and 1", sent, failed)
	}
	r.smtp.WaitFor(2, 5*time.Second)
	if len(r.smtp.To("amy@example.com")) != 1 || len(r.smtp.To("bob@example.com")) != 1 || len(r.smtp.To("gone@example.com")) != 0 {
		t.Fatalf("delivered: %+v", r.smtp.Messages())
	}
	// 550 is final: no point asking again.
	failedRows := r.outbox(db.MailFailed)
	if len(failedRows) != 1 || failedRows[0].To != "gone@example.com" || !strings.Contains(failedRows[0].LastError, "550") {
		t.Fatalf("the refused mail: %+v", r.outbox(""))
	}
	evs := r.audit("mail.failed")
	if len(evs) != 1 || evs[0].Subject != "gone@example.com" || !strings.Contains(evs[0].Detail, "550") ||
		!strings.Contains(evs[0].Detail, "no such mailbox") {
		t.Fatalf("the refusal is not audited with the server's answer: %+v", evs)
	}
	if strings.Contains(evs[0].Detail, "Plain text") {
		t.Error("the audit row quotes the mail's text")
	}
}

func TestTwoSendersOnOneDatabaseSendEachMailOnce(t *testing.T) {
	r := newRig(t)
	// A second process on the same file: its own pools, its own sender.
	other, err := db.Open(context.Background(), r.store.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const mails = 30
	for i := range mails {
		r.enqueue("notice.1.user."+itoa(i), "reader"+itoa(i)+"@example.com")
	}
	senders := []*Sender{r.send, r.sender(other)}
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.DeliverDue(r.ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got := r.smtp.WaitFor(mails, 10*time.Second)
	seen := map[string]int{}
	for _, m := range got {
		seen[m.To[0]]++
	}
	for addr, n := range seen {
		if n != 1 {
			t.Errorf("%s got %d copies", addr, n)
		}
	}
	if len(got) != mails || len(r.outbox(db.MailSent)) != mails {
		t.Fatalf("%d arrived, %d recorded sent; want %d", len(got), len(r.outbox(db.MailSent)), mails)
	}
}

func TestAClaimThatRanOutMakesTheMailDueAgain(t *testing.T) {
	r := newRig(t)
	r.enqueue("notice.1.user.1", "amy@example.com")
	// A sender claims the mail and dies before sending it.
	if claimed, err := r.store.ClaimMail(r.ctx, r.clock.Now(), lease, 10); err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	if sent, _ := r.deliver(); sent != 0 {
		t.Fatal("a claimed mail was sent by another sender while the claim held")
	}
	r.clock.Advance(lease)
	if sent, _ := r.deliver(); sent != 1 {
		t.Fatal("a mail whose claim ran out was never sent")
	}
}

func TestDeliveredLinkIsScrubbed(t *testing.T) {
	r := newRig(t)
	u := r.user("amy", "amy@example.com", "")
	link := "http://portal.test:8080/login/reset?token=live-secret-token"
	mailed, err := r.store.RequestPasswordReset(r.ctx, db.ResetRequest{UsernameKey: "amy", Client: "192.0.2.1",
		TokenHash: []byte("0123456789abcdef0123456789abcdef"), TTL: 30 * time.Minute,
		Mail:       db.OutboxMail{Subject: "Reset", Text: "Open " + link, HTML: "<a href=\"" + link + "\">reset</a>"},
		PerAccount: db.Limit{Hits: 3, Window: time.Hour}, PerClient: db.Limit{Hits: 10, Window: time.Hour},
		Event: db.Event{At: r.clock.Now(), Kind: "password.reset_requested"}})
	if err != nil || !mailed {
		t.Fatalf("reset request for %s: %v %v", u.Username, mailed, err)
	}
	r.deliver()
	if m := r.smtp.WaitFor(1, 5*time.Second)[0]; !strings.Contains(m.Part("text/plain"), link) {
		t.Fatalf("the mail lacks the link:\n%s", m.Data)
	}
	rows := r.outbox("")
	if len(rows) != 1 || strings.Contains(rows[0].Text+rows[0].HTML, "live-secret-token") || rows[0].Text != db.ScrubbedBody {
		t.Fatalf("the delivered row still holds the link: %+v", rows)
	}
}

func TestUndeliveredLinkIsScrubbedWhenItExpires(t *testing.T) {
	r := newRig(t)
	r.user("amy", "amy@example.com", "")
	r.smtp.Stop()
	_, err := r.store.RequestPasswordReset(r.ctx, db.ResetRequest{UsernameKey: "amy", Client: "192.0.2.1",
		TokenHash: []byte("0123456789abcdef0123456789abcdef"), TTL: 30 * time.Minute,
		Mail:       db.OutboxMail{Subject: "Reset", Text: "token=live-secret-token", HTML: "token=live-secret-token"},
		PerAccount: db.Limit{Hits: 3, Window: time.Hour}, PerClient: db.Limit{Hits: 10, Window: time.Hour},
		Event: db.Event{At: r.clock.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	r.deliver()
	r.clock.Advance(31 * time.Minute)
	if _, err := r.sched.Tick(r.ctx); err != nil {
		t.Fatal(err)
	}
	rows := r.outbox("")
	if len(rows) != 1 || rows[0].State != db.MailExpired || strings.Contains(rows[0].Text+rows[0].HTML, "live-secret-token") {
		t.Fatalf("the expired row: %+v", rows)
	}
	r.smtp.Start()
	r.clock.Advance(time.Hour)
	if sent, _ := r.deliver(); sent != 0 {
		t.Error("a dead link was mailed after all")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

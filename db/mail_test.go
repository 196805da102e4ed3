package db

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestEmailBelongsToOneAccountWhateverItsCase(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	amy, err := d.CreateUser(ctx, NewUser{Username: "amy", Role: RoleStaff, PasswordHash: "h", Email: "Amy@Example.com"}, event("", t0))
	if err != nil || amy.Email != "Amy@Example.com" {
		t.Fatalf("create with an address: %+v %v", amy, err)
	}
	_, err = d.CreateUser(ctx, NewUser{Username: "bob", Role: RoleStaff, PasswordHash: "h", Email: "amy@example.COM"}, event("", t0))
	if !errors.Is(err, ErrEmailTaken) {
		t.Fatalf("a second account with the address: %v, want ErrEmailTaken", err)
	}
	_, err = d.CreateUser(ctx, NewUser{Username: "AMY", Role: RoleStaff, PasswordHash: "h", Email: "amy@example.com"}, event("", t0))
	if !errors.Is(err, ErrEmailTaken) {
		t.Fatalf("an account whose name and address are both taken: %v, want ErrEmailTaken on either store", err)
	}
	if _, err = d.CreateUser(ctx, NewUser{Username: "Amy", Role: RoleStaff, PasswordHash: "h", Email: "other@example.com"}, event("", t0)); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("a taken name with a free address: %v, want ErrDuplicate", err)
	}
	bob := mkUser(t, d, "bob")
	if err := d.SetEmail(ctx, bob.ID, "AMY@example.com", event("user.email_set", t0)); !errors.Is(err, ErrEmailTaken) {
		t.Fatalf("SetEmail to a taken address: %v", err)
	}
	if err := d.SetEmail(ctx, amy.ID, "amy@example.com", event("user.email_set", t0)); err != nil {
		t.Fatalf("a new case of one's own address: %v", err)
	}
	if err := d.SetEmail(ctx, amy.ID, "", event("user.email_set", t0)); err != nil {
		t.Fatal(err)
	}
	if err := d.SetEmail(ctx, bob.ID, "amy@example.com", event("user.email_set", t0)); err != nil {
		t.Fatalf("a freed address: %v", err)
	}
	if err := d.SetEmail(ctx, 999, "x@example.com", event("user.email_set", t0)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an unknown user: %v", err)
	}
}

func resetRequest(key string, hash []byte, at time.Time) ResetRequest {
	return ResetRequest{UsernameKey: key, Client: "192.0.2.1", TokenHash: hash, TTL: 30 * time.Minute,
		Mail: OutboxMail{Subject: "s", Text: "link", HTML: "link"}, PerAccount: Limit{Hits: 3, Window: time.Hour},
		PerClient: Limit{Hits: 10, Window: time.Hour}, Event: event("password.reset_requested", at)}
}

func TestResetTokenWorksOnceAndNotAfterItsTime(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	u, _ := d.CreateUser(ctx, NewUser{Username: "amy", Role: RoleStaff, PasswordHash: "old", Email: "amy@example.com"}, event("", t0))
	mkSession(t, d, u.ID, StageFull, t0)
	first, second := newTokenHash(t), newTokenHash(t)
	for _, h := range [][]byte{first, second} {
		if mailed, err := d.RequestPasswordReset(ctx, resetRequest("amy", h, t0)); err != nil || !mailed {
			t.Fatalf("request: %v %v", mailed, err)
		}
	}
	if _, err := d.ResetPassword(ctx, first, "new", event("password.reset", t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if n := len(sessionIDs(t, d, u.ID)); n != 0 {
		t.Errorf("%d sessions outlived the reset", n)
	}
	for name, h := range map[string][]byte{"the spent token": first, "the other outstanding token": second} {
		if _, err := d.ResetPassword(ctx, h, "again", event("password.reset", t0.Add(2*time.Minute))); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s reset the password again: %v", name, err)
		}
	}
	third := newTokenHash(t)
	d.RequestPasswordReset(ctx, resetRequest("amy", third, t0.Add(3*time.Minute)))
	if _, err := d.ResetPassword(ctx, third, "late", event("password.reset", t0.Add(34*time.Minute))); !errors.Is(err, ErrNotFound) {
		t.Errorf("an expired token worked: %v", err)
	}
	if got, _ := d.UserByID(ctx, u.ID); got.PasswordHash != "new" {
		t.Errorf("password hash %q, want the first reset's", got.PasswordHash)
	}
}

func TestResetRequestDoesTheSameWritesForEveryName(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	d.CreateUser(ctx, NewUser{Username: "amy", Role: RoleStaff, PasswordHash: "h", Email: "amy@example.com"}, event("", t0))
	mkUser(t, d, "noaddr")
	for _, key := range []string{"amy", "noaddr", "nobody"} {
		before := count(t, d, `SELECT COALESCE(SUM(hits), 0) FROM rate_limits`) + auditCount(t, d, "password.reset_requested")
		if _, err := d.RequestPasswordReset(ctx, resetRequest(key, newTokenHash(t), t0)); err != nil {
			t.Fatal(err)
		}
		if after := count(t, d, `SELECT COALESCE(SUM(hits), 0) FROM rate_limits`) + auditCount(t, d, "password.reset_requested"); after-before != 3 {
			t.Errorf("%s: %d hits counted and rows audited, want 3 (one hit on each limit, one audit row)", key, after-before)
		}
	}
	if n := count(t, d, `SELECT COUNT(*) FROM outbox`); n != 1 {
		t.Errorf("%d mails, want amy's only", n)
	}
}

func TestAcknowledgementExpiresAfterRenewEvery(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	author := mkUser(t, d, "pub")
	amy := mkUser(t, d, "amy")
	n, err := d.CreateNotice(ctx, NoticeInput{Title: "Policy", Body: "b", Kind: NoticeMustRead, Severity: SeverityInfo,
		Audience: Audience{Everyone: true}, Renew: 7 * 24 * time.Hour}, author, event("notice.posted", t0))
	if err != nil {
		t.Fatal(err)
	}
	acked := func(at time.Time) bool {
		st, err := d.ReaderStateOf(ctx, amy.ID, []int64{n.ID}, at)
		if err != nil {
			t.Fatal(err)
		}
		return st.Acked[n.ID]
	}
	if err := d.AckNotice(ctx, n.ID, amy, event("notice.acknowledged", t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if !acked(t0.Add(7*24*time.Hour)) || acked(t0.Add(7*24*time.Hour+time.Hour)) {
		t.Fatal("the acknowledgement does not last exactly renew_every")
	}
	later := t0.Add(8 * 24 * time.Hour)
	if out, _ := d.MustReadOutstanding(ctx, later); out != 2 {
		t.Errorf("outstanding at day 8: %d, want 2 (amy again, and pub)", out)
	}
	if err := d.AckNotice(ctx, n.ID, amy, event("notice.acknowledged", later)); err != nil {
		t.Fatal(err)
	}
	if !acked(later.Add(6 * 24 * time.Hour)) {
		t.Fatal("acknowledging again did not renew it")
	}
	// A longer interval set later makes the same acknowledgement last longer.
	if _, err := d.UpdateNotice(ctx, n.ID, NoticeInput{Title: n.Title, Body: n.Body, Kind: n.Kind, Severity: n.Severity,
		Audience: n.Audience, Renew: 30 * 24 * time.Hour}, author, true, event("notice.edited", later)); err != nil {
		t.Fatal(err)
	}
	if !acked(later.Add(20 * 24 * time.Hour)) {
		t.Fatal("a longer renewal did not extend the acknowledgement")
	}
}

func TestNoticeIsAnnouncedOnceAndRemindedOncePerRound(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	author := mkUser(t, d, "pub")
	d.CreateUser(ctx, NewUser{Username: "amy", Role: RoleStaff, PasswordHash: "h", Email: "amy@example.com"}, event("", t0))
	n, _ := d.CreateNotice(ctx, NoticeInput{Title: "P", Body: "b", Kind: NoticeMustRead, Severity: SeverityInfo,
		Audience: Audience{Everyone: true}, Email: true, Remind: RemindDaily}, author, event("notice.posted", t0))
	due, _ := d.NoticesToAnnounce(ctx, t0)
	if len(due) != 1 {
		t.Fatalf("%d notices to announce", len(due))
	}
	for i, want := range []int{1, 0} {
		if k, err := d.AnnounceNotice(ctx, due[0], OutboxMail{Subject: "s", Text: "t", HTML: "h"}, t0); err != nil || k != want {
			t.Fatalf("announce %d: %d mails (%v), want %d", i+1, k, err, want)
		}
	}
	day1 := t0.Add(25 * time.Hour)
	round, _ := ReminderRound(n, day1)
	for i, want := range []int{1, 0} {
		if k, err := d.EnqueueReminders(ctx, n, round, OutboxMail{Subject: "r", Text: "t", HTML: "h"}, day1); err != nil || k != want {
			t.Fatalf("remind %d: %d (%v), want %d", i+1, k, err, want)
		}
	}
	if left, _ := d.NoticesToAnnounce(ctx, t0); len(left) != 0 {
		t.Error("an announced notice is still due")
	}
}

// A password set by any path (the user's change, an admin's temporary one, the command
// line) kills the reset links still out: none may set the password again afterwards.
func TestSettingAPasswordKillsOutstandingResetLinks(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	u, _ := d.CreateUser(ctx, NewUser{Username: "amy", Role: RoleStaff, PasswordHash: "old", Email: "amy@example.com"}, event("", t0))
	h := newTokenHash(t)
	d.RequestPasswordReset(ctx, resetRequest("amy", h, t0))
	if err := d.SetPassword(ctx, u.ID, "temporary", true, -1, event("user.password_set", t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ResetPassword(ctx, h, "attacker", event("password.reset", t0.Add(2*time.Minute))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a reset link outlived a new password: %v", err)
	}
	if n := count(t, d, `SELECT COUNT(*) FROM outbox WHERE state = 'pending'`); n != 0 {
		t.Errorf("%d reset mails still waiting to go out", n)
	}
}

// A reminder still waiting to go out (the server was down) is dropped when the reader
// acknowledges, and every mail about a notice when it is archived.
func TestAcknowledgingDropsTheReminderStillWaiting(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	author := mkUser(t, d, "pub")
	amy, _ := d.CreateUser(ctx, NewUser{Username: "amy", Role: RoleStaff, PasswordHash: "h", Email: "amy@example.com"}, event("", t0))
	d.CreateUser(ctx, NewUser{Username: "bob", Role: RoleStaff, PasswordHash: "h", Email: "bob@example.com"}, event("", t0))
	n, _ := d.CreateNotice(ctx, NoticeInput{Title: "P", Body: "b", Kind: NoticeMustRead, Severity: SeverityInfo,
		Audience: Audience{Everyone: true}, Remind: RemindWeekly}, author, event("notice.posted", t0))
	week := t0.Add(8 * 24 * time.Hour)
	if k, err := d.EnqueueReminders(ctx, n, 1, OutboxMail{Subject: "r", Text: "t", HTML: "h"}, week); err != nil || k != 2 {
		t.Fatalf("reminders: %d %v", k, err)
	}
	if err := d.AckNotice(ctx, n.ID, amy, event("notice.acknowledged", week)); err != nil {
		t.Fatal(err)
	}
	pending := func() []string {
		return column[string](t, d, `SELECT to_addr FROM outbox WHERE state = 'pending' ORDER BY to_addr`)
	}
	if got := pending(); len(got) != 1 || got[0] != "bob@example.com" {
		t.Fatalf("waiting after amy acknowledged: %v, want bob's only", got)
	}
	if err := d.ArchiveNotice(ctx, n.ID, event("notice.archived", week)); err != nil {
		t.Fatal(err)
	}
	if got := pending(); len(got) != 0 {
		t.Fatalf("waiting after the notice was archived: %v", got)
	}
}

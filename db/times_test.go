package db

import (
	"context"
	"gatehouse/internal/dbtest"
	"strings"
	"testing"
	"time"
)

// corruptWorld is one of everything that stores a time, on a fresh database.
type corruptWorld struct {
	d         *DB
	amy       User
	tokenHash []byte
	group     Group
	notice    Notice
}

func newCorruptWorld(t *testing.T) corruptWorld {
	t.Helper()
	ctx := context.Background()
	w := corruptWorld{d: openTest(t), tokenHash: newTokenHash(t)}
	d := w.d
	w.amy = mkUser(t, d, "amy")
	s, err := d.StartSession(ctx, NewSession{TokenHash: w.tokenHash, UserID: w.amy.ID, Stage: StageFull},
		event("signin.password", t0))
	if err != nil {
		t.Fatal(err)
	}
	mkFactor(t, d, w.amy, s.ID)
	if w.group, err = d.CreateGroup(ctx, "ops", event("group.created", t0)); err != nil {
		t.Fatal(err)
	}
	if err := d.AddGroupMember(ctx, w.group.ID, w.amy.ID, event("group.member_added", t0)); err != nil {
		t.Fatal(err)
	}
	w.notice, err = d.CreateNotice(ctx, NoticeInput{Title: "t", Body: "b", Kind: NoticeMustRead, Severity: SeverityInfo,
		StartsAt: t0.Add(-time.Hour), Audience: Audience{Everyone: true}}, w.amy, event("notice.posted", t0))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AckNotice(ctx, w.notice.ID, w.amy, event("notice.acknowledged", t0)); err != nil {
		t.Fatal(err)
	}
	if err := d.SetMFARule(ctx, MFARule{Role: RoleStaff, Mode: MFARequired, Deadline: t0}, event("mfa.policy_changed", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.BeginSignInAttempt(ctx, "amy", t0, func(int) time.Duration { return time.Hour }); err != nil {
		t.Fatal(err)
	}
	return w
}

// reads are the store's reads of each kind of stored time.
func (w corruptWorld) reads() map[string]func() error {
	ctx, d := context.Background(), w.d
	return map[string]func() error{
		"UserByID":           func() error { _, err := d.UserByID(ctx, w.amy.ID); return err },
		"ListUsers":          func() error { _, err := d.ListUsers(ctx); return err },
		"SessionByTokenHash": func() error { _, _, err := d.SessionByTokenHash(ctx, w.tokenHash); return err },
		"ListSessions":       func() error { _, err := d.ListSessions(ctx, w.amy.ID); return err },
		"FactorOf":           func() error { _, err := d.FactorOf(ctx, w.amy.ID); return err },
		"GroupByID":          func() error { _, err := d.GroupByID(ctx, w.group.ID); return err },
		"ListGroups":         func() error { _, err := d.ListGroups(ctx); return err },
		"GroupsOf":           func() error { _, err := d.GroupsOf(ctx, w.amy.ID); return err },
		"NoticeByID":         func() error { _, err := d.NoticeByID(ctx, w.notice.ID); return err },
		"LiveNotices":        func() error { _, err := d.LiveNotices(ctx, t0); return err },
		"NoticesFor":         func() error { _, err := d.NoticesFor(ctx, w.amy, t0); return err },
		"NoticeReceipts":     func() error { _, err := d.NoticeReceipts(ctx, w.notice, t0); return err },
		"MFARules":           func() error { _, err := d.MFARules(ctx); return err },
		"ThrottleOf":         func() error { _, _, err := d.ThrottleOf(ctx, "amy"); return err },
		"ListEvents":         func() error { _, err := d.ListEvents(ctx, AuditFilter{Kind: "test.event"}); return err },
	}
}

// TestCorruptStoredTimeIsAnError: a stored time that does not parse fails the read with an
// error naming the column, instead of passing for the zero time (which reads as "never",
// as long expired, or as the start of every range).
func TestCorruptStoredTimeIsAnError(t *testing.T) {
	for _, tc := range []struct {
		column, corrupt string
		reads           []string
	}{
		{"created_at", `UPDATE users SET created_at = 'soon'`, []string{"UserByID", "ListUsers", "SessionByTokenHash", "NoticeReceipts"}},
		{"last_login_at", `UPDATE users SET last_login_at = '2026-13-01T00:00:00.000Z'`, []string{"UserByID", "SessionByTokenHash"}},
		{"last_seen_at", `UPDATE sessions SET last_seen_at = 'x'`, []string{"SessionByTokenHash", "ListSessions"}},
		{"created_at", `UPDATE mfa_factors SET created_at = ''`, []string{"FactorOf"}},
		{"created_at", `UPDATE groups SET created_at = 'x'`, []string{"GroupByID", "ListGroups", "GroupsOf"}},
		{"starts_at", `UPDATE notices SET starts_at = '2026-03-02'`, []string{"NoticeByID", "NoticesFor"}},
		{"ends_at", `UPDATE notices SET ends_at = 'never'`, []string{"NoticeByID", "LiveNotices", "NoticesFor"}},
		{"acknowledged_at", `UPDATE notice_acks SET acknowledged_at = 'x'`, []string{"NoticesFor", "NoticeReceipts"}},
		{"deadline", `UPDATE mfa_rules SET deadline = 'x'`, []string{"MFARules"}},
		{"locked_until", `UPDATE login_throttle SET locked_until = 'x'`, []string{"ThrottleOf"}},
		{"at", `INSERT INTO audit_log (at, event, outcome) VALUES ('x', 'test.event', 'success')`, []string{"ListEvents"}},
	} {
		t.Run(tc.column, func(t *testing.T) {
			w := newCorruptWorld(t)
			reads := w.reads()
			for _, name := range tc.reads {
				if err := reads[name](); err != nil {
					t.Fatalf("%s before the corruption: %v", name, err)
				}
			}
			if _, err := w.d.write.Exec(tc.corrupt); err != nil {
				t.Fatal(err)
			}
			for _, name := range tc.reads {
				err := reads[name]()
				if err == nil || !strings.Contains(err.Error(), `"`+tc.column+`"`) {
					t.Errorf("%s after %q: %v, want an error naming column %s", name, tc.corrupt, err, tc.column)
				}
			}
		})
	}
}

// TestCorruptGroupIDIsAnError: a membership whose group id is not a number fails the
// session read instead of silently leaving the user out of that group's audiences.
func TestCorruptGroupIDIsAnError(t *testing.T) {
	dbtest.SQLiteOnly(t)
	w := newCorruptWorld(t)
	raw := rawOpen(t, w.d.Path()) // without foreign_keys, as another program might write
	if _, err := raw.Exec(`INSERT INTO group_members (group_id, user_id) VALUES ('ops', ?)`, w.amy.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.d.SessionByTokenHash(context.Background(), w.tokenHash); err == nil || !strings.Contains(err.Error(), "group ids") {
		t.Errorf("session read: %v, want an error about the group ids", err)
	}
}

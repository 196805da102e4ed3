package db

import (
	"context"
	"testing"
)

// TestNoticeProgressCountsActiveReadersOfTheCurrentVersion: the progress a notice list
// shows is its receipts page's: active users in the audience, and those of them who
// acknowledged the version that is current.
func TestNoticeProgressCountsActiveReadersOfTheCurrentVersion(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	amy, bob, cat := mkUser(t, d, "amy"), mkUser(t, d, "bob"), mkUser(t, d, "cat")
	n, err := d.CreateNotice(ctx, NoticeInput{Title: "t", Body: "b", Kind: NoticeMustRead, Severity: SeverityInfo,
		StartsAt: t0, Audience: Audience{Everyone: true}}, amy, Event{At: t0})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []User{amy, bob, cat} {
		if err := d.AckNotice(ctx, n.ID, u, Event{At: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.SetDisabled(ctx, cat.ID, true, Event{At: t0}); err != nil {
		t.Fatal(err)
	}
	if acked, readers, err := d.NoticeProgress(ctx, n); err != nil || acked != 2 || readers != 2 {
		t.Fatalf("progress %d of %d (%v), want 2 of 2: a disabled reader counts in neither", acked, readers, err)
	}
	edited, err := d.UpdateNotice(ctx, n.ID, NoticeInput{Title: "t2", Body: "b", Kind: NoticeMustRead, Severity: SeverityInfo,
		StartsAt: t0, Audience: Audience{Everyone: true}}, amy, false, Event{At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if acked, readers, err := d.NoticeProgress(ctx, edited); err != nil || acked != 0 || readers != 2 {
		t.Fatalf("after an edit that asks again: %d of %d (%v), want 0 of 2", acked, readers, err)
	}
	if acked, readers, err := d.NoticeProgress(ctx, Notice{ID: n.ID, Version: 1, Audience: Audience{Roles: []string{RoleAdmin}}}); err != nil || acked != 0 || readers != 0 {
		t.Fatalf("an audience of no one: %d of %d (%v), want 0 of 0", acked, readers, err)
	}
}

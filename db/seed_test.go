package db

import (
	"context"
	"strings"
	"testing"

	"gatehouse/auth"
)

// TestSeedBench: the benchmark portal holds what was asked for, every receipt is by a
// member of its notice's audience, and the store reads it back.
func TestSeedBench(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	size := BenchSize{Users: 40, Sessions: 60, Notices: 30, Current: 4, Scheduled: 2, Receipts: 120, Dismissals: 50}
	seed, err := d.SeedBench(ctx, size, "hash", t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(seed.Usernames) != 40 || len(seed.Tokens) != 60 || seed.Acks+seed.Dismissals != 120 || seed.Dismissals < 50 {
		t.Fatalf("seeded %d users, %d tokens, %d acks and %d dismissals", len(seed.Usernames), len(seed.Tokens), seed.Acks, seed.Dismissals)
	}
	for query, want := range map[string]int{
		`SELECT COUNT(*) FROM users`:    40,
		`SELECT COUNT(*) FROM sessions`: 60,
		`SELECT COUNT(*) FROM notices`:  30,
		`SELECT COUNT(*) FROM notices WHERE archived_at IS NULL AND starts_at <= ?1 AND ends_at > ?1`: 4,
		`SELECT COUNT(*) FROM notices WHERE starts_at > ?1`:                                           2,
		`SELECT COUNT(*) FROM notice_acks`:                                                            seed.Acks,
		`SELECT COUNT(*) FROM notice_dismissals`:                                                      seed.Dismissals,
		`SELECT COUNT(*) FROM notice_acks k JOIN notices n ON n.id = k.notice_id JOIN users u ON u.id = k.user_id
			WHERE n.kind = 'must_read' AND n.starts_at <= ?1 AND ` + inNoticeAudience("u.role", "u.id"): seed.Acks,
		`SELECT COUNT(*) FROM notice_dismissals x JOIN notices n ON n.id = x.notice_id JOIN users u ON u.id = x.user_id
			WHERE n.kind = 'normal' AND n.starts_at <= ?1 AND ` + inNoticeAudience("u.role", "u.id"): seed.Dismissals,
		`SELECT COUNT(*) FROM notices n WHERE n.revision != (SELECT COUNT(*) FROM notice_revisions r WHERE r.notice_id = n.id)`: 0,
	} {
		var args []any
		if strings.Contains(query, "?1") {
			args = append(args, FormatTime(t0))
		}
		if got := count(t, d, query, args...); got != want {
			t.Errorf("%s: %d, want %d", query, got, want)
		}
	}
	s, u, err := d.SessionByTokenHash(ctx, auth.HashToken(seed.Tokens[41]))
	if err != nil || u.Username != seed.Usernames[1] || s.Stage != StageFull {
		t.Errorf("session 41: %+v of %q, %v; want user %s's", s, u.Username, err, seed.Usernames[1])
	}
	if ns, err := d.NoticesFor(ctx, u, t0); err != nil || len(ns) == 0 {
		t.Errorf("NoticesFor: %d, %v", len(ns), err)
	}
	if again, err := d.SeedBench(ctx, size, "hash", t0); err == nil {
		t.Errorf("a second seed of the same portal: %d users, no error", len(again.Usernames))
	}
}

package db

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func TestAudit(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)

	t.Run("an event is stored with every field", func(t *testing.T) {
		ev := Event{At: t0, ActorID: 7, Actor: "alice", Kind: "signin", Subject: "alice", ClientAddr: "192.0.2.9",
			Outcome: Failure, Detail: "wrong password", RequestID: "req-1"}
		if err := d.Audit(ctx, ev); err != nil {
			t.Fatal(err)
		}
		evs, err := d.ListEvents(ctx, AuditFilter{Kind: "signin"})
		if err != nil || len(evs) != 1 {
			t.Fatalf("ListEvents = %+v, %v", evs, err)
		}
		ev.ID = evs[0].ID
		if evs[0] != ev {
			t.Errorf("stored %+v, want %+v", evs[0], ev)
		}
	})
	t.Run("the outcome defaults to success and a missing actor id to none", func(t *testing.T) {
		if err := d.Audit(ctx, Event{At: t0, Kind: "cli.thing"}); err != nil {
			t.Fatal(err)
		}
		evs, _ := d.ListEvents(ctx, AuditFilter{Kind: "cli.thing"})
		if len(evs) != 1 || evs[0].Outcome != Success || evs[0].ActorID != 0 {
			t.Errorf("ListEvents = %+v", evs)
		}
		if n := count(t, d, `SELECT COUNT(*) FROM audit_log WHERE event = 'cli.thing' AND actor_id IS NULL`); n != 1 {
			t.Error("actor id 0 not stored as NULL")
		}
	})
	t.Run("an event without a kind writes nothing", func(t *testing.T) {
		before := count(t, d, `SELECT COUNT(*) FROM audit_log`)
		if err := d.Audit(ctx, Event{At: t0, Actor: "nobody"}); err != nil {
			t.Fatal(err)
		}
		if after := count(t, d, `SELECT COUNT(*) FROM audit_log`); after != before {
			t.Errorf("audit rows %d → %d", before, after)
		}
	})
	t.Run("an unknown outcome is refused", func(t *testing.T) {
		if err := d.Audit(ctx, Event{At: t0, Kind: "odd", Outcome: "maybe"}); err == nil {
			t.Error("Audit accepted outcome maybe")
		}
	})
}

func TestAuditLogIsAppendOnly(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	if err := d.Audit(ctx, event("signin", t0)); err != nil {
		t.Fatal(err)
	}
	before := dump(t, d, `SELECT * FROM audit_log`)
	for _, q := range []string{
		`UPDATE audit_log SET outcome = 'failure'`,
		`UPDATE audit_log SET actor = 'someone else' WHERE event = 'signin'`,
	} {
		_, err := d.write.ExecContext(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the append-only refusal", q, err)
		}
	}
	if after := dump(t, d, `SELECT * FROM audit_log`); after != before {
		t.Errorf("audit log changed:\n%s\nwas:\n%s", after, before)
	}
}

func TestAuditTextHasNoControlCharacters(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	// Each of these would let a username or header start what looks like a new log line,
	// or hide text from whoever reads the log.
	hostile := []struct {
		name string
		text string
	}{
		{"a line feed", "eve\n2026-03-02 admin signin success"},
		{"a carriage return", "eve\rroot"},
		{"a tab and a NUL", "eve\t\x00x"},
		{"an escape sequence", "eve\x1b[2Jroot"},
		{"DEL", "eve\x7f"},
		{"a C1 next-line control", "eve\u0085root"},
		{"a C1 control-sequence introducer", "eve\u009b2J"},
		{"a Unicode line separator", "eve\u2028root"},
		{"a Unicode paragraph separator", "eve\u2029root"},
		{"a byte that is not UTF-8", "eve\x85root"},
	}
	for i, h := range hostile {
		t.Run(h.name+" is replaced", func(t *testing.T) {
			kind := "hostile." + string(rune('a'+i))
			ev := Event{At: t0, Kind: kind, Actor: h.text, Subject: h.text, ClientAddr: h.text, Detail: h.text, RequestID: h.text}
			if err := d.Audit(ctx, ev); err != nil {
				t.Fatal(err)
			}
			var actor, subject, addr, detail, rid string
			if err := d.read.QueryRow(`SELECT actor, subject, client_addr, detail, request_id FROM audit_log WHERE event = ?`,
				kind).Scan(&actor, &subject, &addr, &detail, &rid); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{actor, subject, addr, detail, rid} {
				if !utf8.ValidString(s) {
					t.Errorf("stored invalid UTF-8 %q", s)
				}
				if strings.ContainsFunc(s, func(r rune) bool {
					return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
				}) {
					t.Errorf("stored %q", s)
				}
				if !strings.HasPrefix(s, "eve") || !strings.Contains(s, "\uFFFD") {
					t.Errorf("stored %q, want the text with the control marked", s)
				}
			}
		})
	}
	t.Run("ordinary text is kept as it is", func(t *testing.T) {
		name := "Zoë O'Brien <zoe@example.org> 日本"
		if err := d.Audit(ctx, Event{At: t0, Kind: "plain", Actor: name}); err != nil {
			t.Fatal(err)
		}
		if evs, _ := d.ListEvents(ctx, AuditFilter{Kind: "plain"}); len(evs) != 1 || evs[0].Actor != name {
			t.Errorf("ListEvents = %+v", evs)
		}
	})
}

func TestListEvents(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	for i, e := range []struct{ kind, actor string }{
		{"signin", "alice"}, {"signout", "alice"}, {"signin", "bob"}, {"signin", "alice"},
	} {
		if err := d.Audit(ctx, Event{At: t0.Add(time.Duration(i) * time.Minute), Kind: e.kind, Actor: e.actor}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		filter AuditFilter
		want   []string // actor@minute, newest first
	}{
		{"no filter lists everything newest first", AuditFilter{}, []string{"alice@3", "bob@2", "alice@1", "alice@0"}},
		{"a kind filter keeps that kind only", AuditFilter{Kind: "signin"}, []string{"alice@3", "bob@2", "alice@0"}},
		{"an actor filter keeps that actor only", AuditFilter{Actor: "alice"}, []string{"alice@3", "alice@1", "alice@0"}},
		{"both filters combine", AuditFilter{Kind: "signin", Actor: "bob"}, []string{"bob@2"}},
		{"a limit keeps the newest", AuditFilter{Limit: 2}, []string{"alice@3", "bob@2"}},
		{"an unknown kind lists nothing", AuditFilter{Kind: "nothing"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := d.ListEvents(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ev := range evs {
				got = append(got, ev.Actor+"@"+string(rune('0'+int(ev.At.Sub(t0)/time.Minute))))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPurgeAuditKeepsWhatIsInDate(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, age := range []time.Duration{500 * 24 * time.Hour, 401 * 24 * time.Hour, 399 * 24 * time.Hour, time.Hour} {
		if err := d.Audit(ctx, Event{At: now.Add(-age), Kind: "signin.password", Actor: "a", Subject: age.String()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.AddEventCounts(ctx, now.Add(-500*24*time.Hour), map[string]int64{"csrf_refused": 3}); err != nil {
		t.Fatal(err)
	}
	if err := d.AddEventCounts(ctx, now, map[string]int64{"csrf_refused": 2}); err != nil {
		t.Fatal(err)
	}
	n, err := d.PurgeAudit(ctx, now.Add(-400*24*time.Hour), Event{At: now, Actor: "system", Kind: "audit.purged"})
	if err != nil || n != 2 {
		t.Fatalf("purged %d, %v; want 2", n, err)
	}
	left, _ := d.ListEvents(ctx, AuditFilter{Kind: "signin.password"})
	if len(left) != 2 {
		t.Fatalf("%d in-date rows left, want 2", len(left))
	}
	purged, _ := d.ListEvents(ctx, AuditFilter{Kind: "audit.purged"})
	if len(purged) != 1 || !strings.Contains(purged[0].Detail, "2 audit rows") {
		t.Fatalf("the purge is not audited: %+v", purged)
	}
	counts, _ := d.EventCountsSince(ctx, now.Add(-1000*24*time.Hour))
	if counts["csrf_refused"] != 2 {
		t.Fatalf("counters after purge %v", counts)
	}
	if n, _ := d.PurgeAudit(ctx, now.Add(-400*24*time.Hour), Event{At: now, Actor: "system", Kind: "audit.purged"}); n != 0 {
		t.Fatal("a second purge found rows")
	}
	if purged, _ := d.ListEvents(ctx, AuditFilter{Kind: "audit.purged"}); len(purged) != 1 {
		t.Fatal("an empty purge wrote an audit row")
	}
}

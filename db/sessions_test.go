package db

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStartSession(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	u := mkUser(t, d, "alice")

	token := make([]byte, 32)
	rand.Read(token)
	sum := sha256.Sum256(token)
	hash := sum[:]
	s, err := d.StartSession(ctx, NewSession{TokenHash: hash, UserID: u.ID, Stage: StageFull,
		ClientAddr: "198.51.100.7", UserAgent: "Firefox\nInjected: yes"}, event("signin", t0))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("only the given hash is stored", func(t *testing.T) {
		var stored []byte
		if err := d.read.QueryRow(`SELECT token_hash FROM sessions WHERE id = ?`, s.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(stored, hash) {
			t.Errorf("token_hash = %x, want %x", stored, hash)
		}
		if all := dump(t, d, `SELECT * FROM sessions`); strings.Contains(all, string(token)) ||
			bytes.Contains([]byte(all), token) {
			t.Error("the raw token appears in the sessions table")
		}
	})
	t.Run("SessionByTokenHash returns the session joined with its user", func(t *testing.T) {
		got, gotU, err := d.SessionByTokenHash(ctx, hash)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != s.ID || got.UserID != u.ID || got.Stage != StageFull || !got.CreatedAt.Equal(t0) ||
			!got.LastSeenAt.Equal(t0) || got.ClientAddr != "198.51.100.7" {
			t.Errorf("session = %+v", got)
		}
		if strings.ContainsAny(got.UserAgent, "\r\n") {
			t.Errorf("user agent stored with a line break: %q", got.UserAgent)
		}
		wantU := u
		wantU.LastLoginAt = t0 // a full session records the sign-in
		if !reflect.DeepEqual(gotU, wantU) {
			t.Errorf("user = %+v, want %+v", gotU, wantU)
		}
	})
	t.Run("an unknown hash is ErrNotFound", func(t *testing.T) {
		if _, _, err := d.SessionByTokenHash(ctx, newTokenHash(t)); !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("a partial session does not count as a sign-in", func(t *testing.T) {
		bob := mkUser(t, d, "bob")
		mkSession(t, d, bob.ID, StageMFA, t0)
		if got, _ := d.UserByID(ctx, bob.ID); !got.LastLoginAt.IsZero() {
			t.Errorf("LastLoginAt = %v after the password step alone", got.LastLoginAt)
		}
	})
	t.Run("a reused hash is refused", func(t *testing.T) {
		_, err := d.StartSession(ctx, NewSession{TokenHash: hash, UserID: u.ID, Stage: StageFull}, event("signin.dup", t0))
		if err == nil {
			t.Error("two sessions share one token hash")
		}
		if n := auditCount(t, d, "signin.dup"); n != 0 {
			t.Errorf("%d audit rows for a session that was not started", n)
		}
	})
	t.Run("a session for a missing user is refused", func(t *testing.T) {
		if _, err := d.StartSession(ctx, NewSession{TokenHash: newTokenHash(t), UserID: 999, Stage: StageFull}, Event{At: t0}); err == nil {
			t.Error("session started for a user that does not exist")
		}
	})
}

func TestPromoteSession(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice := mkUser(t, d, "alice")
	bob := mkUser(t, d, "bob")

	t.Run("the partial row is replaced by a new full one", func(t *testing.T) {
		oldHash := newTokenHash(t)
		partial, err := d.StartSession(ctx, NewSession{TokenHash: oldHash, UserID: alice.ID, Stage: StageMFA}, Event{At: t0})
		if err != nil {
			t.Fatal(err)
		}
		newHash := newTokenHash(t)
		at := t0.Add(time.Minute)
		full, err := d.PromoteSession(ctx, partial.ID, NewSession{TokenHash: newHash, UserID: alice.ID, Stage: StageMFA},
			event("signin.mfa", at))
		if err != nil {
			t.Fatal(err)
		}
		if full.ID == partial.ID || full.Stage != StageFull {
			t.Errorf("promoted session = %+v, want a new full session", full)
		}
		if _, _, err := d.SessionByTokenHash(ctx, oldHash); !errors.Is(err, ErrNotFound) {
			t.Errorf("the pre-MFA token still works: %v", err)
		}
		got, u, err := d.SessionByTokenHash(ctx, newHash)
		if err != nil || got.ID != full.ID || got.Stage != StageFull {
			t.Errorf("new token = %+v, %v", got, err)
		}
		if !u.LastLoginAt.Equal(at) {
			t.Errorf("LastLoginAt = %v, want %v", u.LastLoginAt, at)
		}
		if n := auditCount(t, d, "signin.mfa"); n != 1 {
			t.Errorf("%d audit rows, want 1", n)
		}
	})
	t.Run("a partial session revoked meanwhile cannot be promoted", func(t *testing.T) {
		partial := mkSession(t, d, alice.ID, StageMFA, t0)
		if err := d.EndSession(ctx, partial.ID); err != nil {
			t.Fatal(err)
		}
		before := sessionIDs(t, d, alice.ID)
		_, err := d.PromoteSession(ctx, partial.ID, NewSession{TokenHash: newTokenHash(t), UserID: alice.ID},
			event("signin.mfa.late", t0))
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
		if after := sessionIDs(t, d, alice.ID); !slices.Equal(before, after) {
			t.Errorf("sessions changed from %v to %v", before, after)
		}
		if n := auditCount(t, d, "signin.mfa.late"); n != 0 {
			t.Errorf("%d audit rows for a refused promotion", n)
		}
	})
	t.Run("another user's partial session cannot be promoted", func(t *testing.T) {
		partial := mkSession(t, d, bob.ID, StageMFA, t0)
		_, err := d.PromoteSession(ctx, partial.ID, NewSession{TokenHash: newTokenHash(t), UserID: alice.ID}, Event{At: t0})
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
		if ids := sessionIDs(t, d, bob.ID); !slices.Contains(ids, partial.ID) {
			t.Error("bob's partial session was deleted")
		}
	})
}

func TestRevokeUserSession(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice := mkUser(t, d, "alice")
	bob := mkUser(t, d, "bob")
	mine := mkSession(t, d, alice.ID, StageFull, t0)
	theirs := mkSession(t, d, bob.ID, StageFull, t0)

	t.Run("another user's session id is ErrNotFound and the row stays", func(t *testing.T) {
		err := d.RevokeUserSession(ctx, alice.ID, theirs.ID, event("session.revoked", t0))
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
		if ids := sessionIDs(t, d, bob.ID); !slices.Equal(ids, []int64{theirs.ID}) {
			t.Errorf("bob's sessions = %v", ids)
		}
		if n := auditCount(t, d, "session.revoked"); n != 0 {
			t.Errorf("%d audit rows for a refused revoke", n)
		}
	})
	t.Run("the user's own session is deleted and audited", func(t *testing.T) {
		if err := d.RevokeUserSession(ctx, alice.ID, mine.ID, event("session.revoked", t0)); err != nil {
			t.Fatal(err)
		}
		if ids := sessionIDs(t, d, alice.ID); len(ids) != 0 {
			t.Errorf("alice's sessions = %v", ids)
		}
		if n := auditCount(t, d, "session.revoked"); n != 1 {
			t.Errorf("%d audit rows, want 1", n)
		}
	})
	t.Run("revoking it twice is ErrNotFound", func(t *testing.T) {
		if err := d.RevokeUserSession(ctx, alice.ID, mine.ID, Event{At: t0}); !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
}

func TestRevokeSessions(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice := mkUser(t, d, "alice")
	bob := mkUser(t, d, "bob")
	a1 := mkSession(t, d, alice.ID, StageFull, t0)
	mkSession(t, d, alice.ID, StageFull, t0)
	mkSession(t, d, alice.ID, StageMFA, t0)
	b1 := mkSession(t, d, bob.ID, StageFull, t0)

	n, err := d.RevokeSessions(ctx, alice.ID, a1.ID, event("sessions.revoked", t0))
	if err != nil || n != 2 {
		t.Fatalf("RevokeSessions keeping one = %d, %v; want 2", n, err)
	}
	if ids := sessionIDs(t, d, alice.ID); !slices.Equal(ids, []int64{a1.ID}) {
		t.Errorf("alice's sessions = %v, want [%d]", ids, a1.ID)
	}
	evs, _ := d.ListEvents(ctx, AuditFilter{Kind: "sessions.revoked"})
	if len(evs) != 1 || evs[0].Detail != "2 sessions ended" {
		t.Errorf("audit = %+v, want one row saying 2 sessions ended", evs)
	}
	if n, err := d.RevokeSessions(ctx, alice.ID, 0, Event{At: t0}); err != nil || n != 1 {
		t.Errorf("RevokeSessions keeping none = %d, %v; want 1", n, err)
	}
	if ids := sessionIDs(t, d, bob.ID); !slices.Equal(ids, []int64{b1.ID}) {
		t.Errorf("bob's sessions = %v, want [%d]", ids, b1.ID)
	}
}

// seedEverything fills every table with rows belonging to several users, so a test can
// prove which of them an operation touched.
func seedEverything(tb testing.TB, d *DB) []User {
	tb.Helper()
	ctx := context.Background()
	if err := d.SetSetupToken(ctx, newTokenHash(tb), t0); err != nil {
		tb.Fatal(err)
	}
	if err := d.SetKeyCanary(ctx, []byte("canary")); err != nil {
		tb.Fatal(err)
	}
	var us []User
	for _, name := range []string{"alice", "bob", "carol"} {
		u := mkUser(tb, d, name)
		s := mkSession(tb, d, u.ID, StageFull, t0)
		if name != "carol" {
			mkFactor(tb, d, u, s.ID)
			codes, _ := d.UnusedRecoveryCodes(ctx, u.ID)
			if ok, err := d.UseRecoveryCode(ctx, u.ID, codes[0].ID, t0); !ok || err != nil {
				tb.Fatalf("UseRecoveryCode = %v, %v", ok, err)
			}
		}
		// Started after the factor, which ends the user's other sessions.
		mkSession(tb, d, u.ID, StageMFA, t0)
		if _, err := d.BeginSignInAttempt(ctx, name, t0, func(int) time.Duration { return 0 }); err != nil {
			tb.Fatal(err)
		}
		us = append(us, u)
	}
	return us
}

func TestRevokeAllSessionsTouchesNothingElse(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	us := seedEverything(t, d)
	if n, _ := d.CountSessions(ctx); n != 6 {
		t.Fatalf("seeded %d sessions, want 6", n)
	}

	before := snapshot(t, d, "sessions", "audit_log")
	n, err := d.RevokeAllSessions(ctx, event("sessions.revoked.all", t0))
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Errorf("RevokeAllSessions = %d, want 6", n)
	}
	assertSameSnapshot(t, before, snapshot(t, d, "sessions", "audit_log"))
	if n, _ := d.CountSessions(ctx); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	evs, _ := d.ListEvents(ctx, AuditFilter{Kind: "sessions.revoked.all"})
	if len(evs) != 1 || evs[0].Detail != "6 sessions ended" {
		t.Errorf("audit = %+v, want one row saying 6 sessions ended", evs)
	}
	// Everyone can sign in again as before: the account, its hash and its factor answer.
	for _, u := range us {
		got, err := d.UserByUsername(ctx, u.Username)
		if err != nil || got.PasswordHash != u.PasswordHash || got.Disabled || got.HasMFA() != (u.Username != "carol") {
			t.Errorf("after revoking all, %s = %+v, %v", u.Username, got, err)
		}
	}
}

func TestRevokingLeavesPendingEnrollmentDead(t *testing.T) {
	// Ending sessions touches no table but sessions: a pending secret stays, but with its
	// session gone it can never be confirmed, and the active factor is untouched.
	ctx := context.Background()
	d := openTest(t)
	u := mkUser(t, d, "alice")
	s := mkSession(t, d, u.ID, StageFull, t0)
	mkFactor(t, d, u, s.ID)
	s2 := mkSession(t, d, u.ID, StageFull, t0)
	if err := d.StartEnrollment(ctx, Pending{UserID: u.ID, SessionID: s2.ID, SecretEnc: []byte("next"),
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	factors := dump(t, d, `SELECT * FROM mfa_factors`)
	pending := dump(t, d, `SELECT * FROM mfa_pending`)
	if _, err := d.RevokeAllSessions(ctx, Event{At: t0}); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, d, `SELECT * FROM mfa_pending`); got != pending {
		t.Errorf("revoking sessions changed mfa_pending")
	}
	if got := dump(t, d, `SELECT * FROM mfa_factors`); got != factors {
		t.Errorf("active factor changed:\n%s\nwas:\n%s", got, factors)
	}
	s3 := mkSession(t, d, u.ID, StageFull, t0)
	if err := d.ActivateFactor(ctx, u.ID, s3.ID, []byte("next"), 1, nil, Event{At: t0}); !errors.Is(err, ErrPendingChanged) {
		t.Fatalf("a new session confirmed another session's pending secret: %v", err)
	}
}

func TestDeletingAUserCascades(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	us := seedEverything(t, d)
	alice, bob := us[0], us[1]
	s := mkSession(t, d, alice.ID, StageFull, t0)
	if err := d.StartEnrollment(ctx, Pending{UserID: alice.ID, SessionID: s.ID, SecretEnc: []byte("p"),
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	owned := []string{"sessions", "mfa_factors", "mfa_pending", "recovery_codes"}
	others := map[string]string{}
	for _, table := range owned {
		if n := count(t, d, `SELECT COUNT(*) FROM `+table+` WHERE user_id = ?`, alice.ID); n == 0 {
			t.Fatalf("seed has no %s rows for alice", table)
		}
		others[table] = dump(t, d, `SELECT * FROM `+table+` WHERE user_id != ?`, alice.ID)
	}
	auditBefore := dump(t, d, `SELECT * FROM audit_log`)

	if _, err := d.write.Exec(`DELETE FROM users WHERE id = ?`, alice.ID); err != nil {
		t.Fatal(err)
	}
	for _, table := range owned {
		if n := count(t, d, `SELECT COUNT(*) FROM `+table+` WHERE user_id = ?`, alice.ID); n != 0 {
			t.Errorf("%d %s rows outlived their user", n, table)
		}
		if got := dump(t, d, `SELECT * FROM `+table+` WHERE user_id != ?`, alice.ID); got != others[table] {
			t.Errorf("other users' %s rows changed", table)
		}
	}
	// The audit trail outlives the accounts it names.
	if got := dump(t, d, `SELECT * FROM audit_log`); got != auditBefore {
		t.Error("deleting a user changed the audit log")
	}
	if _, err := d.UserByID(ctx, bob.ID); err != nil {
		t.Errorf("bob: %v", err)
	}
}

func TestPurgeExpiredSessions(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	u := mkUser(t, d, "alice")
	now := t0.Add(48 * time.Hour)
	idle, maxAge, partial := time.Hour, 24*time.Hour, 10*time.Minute

	start := func(stage string, created, seen time.Time) int64 {
		t.Helper()
		s := mkSession(t, d, u.ID, stage, created)
		if err := d.TouchSession(ctx, s.ID, seen); err != nil {
			t.Fatal(err)
		}
		return s.ID
	}
	live := start(StageFull, now.Add(-2*time.Hour), now.Add(-5*time.Minute))
	idleAtLimit := start(StageFull, now.Add(-2*time.Hour), now.Add(-idle))
	freshPartial := start(StageMFA, now.Add(-2*time.Minute), now.Add(-2*time.Minute))
	start(StageFull, now.Add(-3*time.Hour), now.Add(-idle-time.Millisecond))      // idle too long
	start(StageFull, now.Add(-maxAge-time.Second), now.Add(-time.Minute))         // past the absolute limit
	start(StageMFA, now.Add(-partial-time.Second), now.Add(-partial-time.Second)) // second step never done
	start(StageFull, now.Add(2*time.Hour), now.Add(2*time.Hour))                  // made while the clock ran ahead
	start(StageFull, now.Add(-time.Hour), now.Add(time.Hour))                     // seen while the clock ran ahead
	withinSkew := start(StageFull, now.Add(ClockSkew/2), now.Add(ClockSkew/2))    // another machine's small drift

	n, err := d.PurgeExpiredSessions(ctx, now, SessionLimits{Idle: idle, Max: maxAge, Partial: partial})
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("purged %d sessions, want 5", n)
	}
	want := []int64{live, idleAtLimit, freshPartial, withinSkew}
	slices.Sort(want)
	if ids := sessionIDs(t, d, u.ID); !slices.Equal(ids, want) {
		t.Errorf("remaining sessions = %v, want %v", ids, want)
	}
}

func TestSessionHousekeeping(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	u := mkUser(t, d, "alice")
	older := mkSession(t, d, u.ID, StageFull, t0)
	newer := mkSession(t, d, u.ID, StageFull, t0.Add(time.Minute))

	t.Run("ListSessions returns newest first", func(t *testing.T) {
		ss, err := d.ListSessions(ctx, u.ID)
		if err != nil || len(ss) != 2 || ss[0].ID != newer.ID || ss[1].ID != older.ID {
			t.Errorf("ListSessions = %+v, %v", ss, err)
		}
	})
	t.Run("TouchSession moves last seen only", func(t *testing.T) {
		at := t0.Add(30 * time.Minute)
		if err := d.TouchSession(ctx, older.ID, at); err != nil {
			t.Fatal(err)
		}
		ss, _ := d.ListSessions(ctx, u.ID)
		got := ss[1]
		if !got.LastSeenAt.Equal(at) || !got.CreatedAt.Equal(t0) {
			t.Errorf("after touch: %+v", got)
		}
	})
	t.Run("EndSession deletes and tolerates a missing row", func(t *testing.T) {
		if err := d.EndSession(ctx, older.ID); err != nil {
			t.Fatal(err)
		}
		if err := d.EndSession(ctx, older.ID); err != nil {
			t.Errorf("second EndSession: %v", err)
		}
		if n, _ := d.CountSessions(ctx); n != 1 {
			t.Errorf("CountSessions = %d, want 1", n)
		}
	})
}

func TestSessionIDsAreNeverReused(t *testing.T) {
	// Ids end up in revoke URLs and token bindings, so an id seen once must never name a
	// later session, even after the newest row was deleted.
	ctx := context.Background()
	d := openTest(t)
	alice := mkUser(t, d, "alice")
	bob := mkUser(t, d, "bob")
	seen := map[int64]bool{}
	for i := range 10 {
		owner := alice.ID
		if i%2 == 1 {
			owner = bob.ID
		}
		s := mkSession(t, d, owner, StageFull, t0)
		if s.ID <= 0 || seen[s.ID] {
			t.Fatalf("session %d got id %d, already used or not positive", i, s.ID)
		}
		seen[s.ID] = true
		if err := d.EndSession(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSessionLookupCarriesGroupsAndRuleScope(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	u := mkUser(t, d, "alice")
	hash := newTokenHash(t)
	if _, err := d.StartSession(ctx, NewSession{TokenHash: hash, UserID: u.ID, Stage: StageFull}, Event{At: t0}); err != nil {
		t.Fatal(err)
	}
	_, got, err := d.SessionByTokenHash(ctx, hash)
	if err != nil || len(got.GroupIDs) != 0 || got.MFARuleScoped {
		t.Fatalf("fresh user: %+v, %v", got, err)
	}
	g1, _ := d.CreateGroup(ctx, "one", Event{At: t0})
	g2, _ := d.CreateGroup(ctx, "two", Event{At: t0})
	_ = d.AddGroupMember(ctx, g1.ID, u.ID, Event{At: t0})
	_ = d.AddGroupMember(ctx, g2.ID, u.ID, Event{At: t0})
	if err := d.SetMFARule(ctx, MFARule{GroupID: g2.ID, Mode: MFAOptional}, Event{At: t0, Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	_, got, _ = d.SessionByTokenHash(ctx, hash)
	if len(got.GroupIDs) != 2 || !got.MFARuleScoped {
		t.Fatalf("with groups and a rule: %+v", got)
	}
}

func TestSessionsByTokenHashesFindsEveryKnownOne(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice, bob := mkUser(t, d, "alice"), mkUser(t, d, "bob")
	var hashes [][]byte
	want := map[int64]int64{} // session id → user id
	for i := range 3 * sessionLookupBatch {
		hashes = append(hashes, newTokenHash(t)) // unknown
		if i == 5 || i == sessionLookupBatch+7 || i == 3*sessionLookupBatch-1 {
			owner := alice.ID
			if i > sessionLookupBatch {
				owner = bob.ID
			}
			h := newTokenHash(t)
			s, err := d.StartSession(ctx, NewSession{TokenHash: h, UserID: owner, Stage: StageFull}, Event{At: t0})
			if err != nil {
				t.Fatal(err)
			}
			hashes = append(hashes, h)
			want[s.ID] = owner
		}
	}
	got, err := d.SessionsByTokenHashes(ctx, hashes)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("found %d sessions, want %d", len(got), len(want))
	}
	for _, su := range got {
		if want[su.Session.ID] != su.User.ID || su.Session.UserID != su.User.ID || su.User.Username == "" {
			t.Errorf("session %+v with user %+v", su.Session, su.User)
		}
	}
	if got, err := d.SessionsByTokenHashes(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("no hashes: %v, %v", got, err)
	}
}

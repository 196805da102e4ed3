package db

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"gatehouse/auth"
)

func newCredential(tb testing.TB) auth.PasskeyCredential {
	tb.Helper()
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return auth.PasskeyCredential{ID: id, PublicKey: []byte("cose-key"), Flags: 0x45, Transports: []string{"internal", "usb"},
		AttestationFormat: "none"}
}

// mkPasskey registers a new passkey for u from session keep and returns it.
func mkPasskey(tb testing.TB, d *DB, u User, keep int64, name string) Passkey {
	tb.Helper()
	np := NewPasskey{UserID: u.ID, Name: name, Credential: newCredential(tb)}
	id, _, err := d.AddPasskey(context.Background(), np, codeHashes(u.Username+"-pk", 10), keep, event("passkey.added", t0))
	if err != nil {
		tb.Fatalf("AddPasskey: %v", err)
	}
	ps, err := d.PasskeysOf(context.Background(), u.ID)
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range ps {
		if p.ID == id {
			return p
		}
	}
	tb.Fatalf("passkey %d not stored", id)
	return Passkey{}
}

func TestAddPasskey(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice := mkUser(t, d, "alice")
	keep := mkSession(t, d, alice.ID, StageFull, t0)
	other := mkSession(t, d, alice.ID, StageFull, t0)
	if _, err := d.ResetMFA(ctx, alice.ID, Event{At: t0}); err != nil { // alice must enroll again
		t.Fatal(err)
	}
	keep = mkSession(t, d, alice.ID, StageFull, t0)
	other = mkSession(t, d, alice.ID, StageFull, t0)

	cred := newCredential(t)
	id, first, err := d.AddPasskey(ctx, NewPasskey{UserID: alice.ID, Name: "Laptop", Credential: cred},
		codeHashes("first", 10), keep.ID, event("passkey.added", t0))
	if err != nil || !first || id <= 0 {
		t.Fatalf("AddPasskey = %d, %v, %v", id, first, err)
	}
	t.Run("the first factor issues the recovery codes, ends other sessions and the enrollment mark", func(t *testing.T) {
		if cs, _ := d.UnusedRecoveryCodes(ctx, alice.ID); len(cs) != 10 {
			t.Errorf("%d recovery codes", len(cs))
		}
		if ids := sessionIDs(t, d, alice.ID); !slices.Equal(ids, []int64{keep.ID}) {
			t.Errorf("sessions %v, want only %d (not %d)", ids, keep.ID, other.ID)
		}
		u, _ := d.UserByID(ctx, alice.ID)
		if !u.HasMFA() || u.HasTOTP || u.Passkeys != 1 || u.MustEnrollMFA || !slices.Equal(u.FactorKinds(), []string{FactorPasskey}) {
			t.Errorf("alice = %+v", u)
		}
		if auditCount(t, d, "passkey.added") != 1 {
			t.Error("no audit row")
		}
	})
	t.Run("it is stored as given", func(t *testing.T) {
		p, err := d.PasskeyByCredentialID(ctx, cred.ID)
		if err != nil || p.ID != id || p.UserID != alice.ID || p.Name != "Laptop" || !p.CreatedAt.Equal(t0) || !p.LastUsedAt.IsZero() ||
			string(p.Credential.PublicKey) != "cose-key" || p.Credential.Flags != 0x45 ||
			!slices.Equal(p.Credential.Transports, []string{"internal", "usb"}) || p.Credential.AttestationFormat != "none" {
			t.Errorf("stored %+v, %v", p, err)
		}
	})
	t.Run("a further passkey keeps the codes and the sessions", func(t *testing.T) {
		before := dump(t, d, `SELECT * FROM recovery_codes WHERE user_id = ?`, alice.ID)
		again := mkSession(t, d, alice.ID, StageFull, t0)
		_, first, err := d.AddPasskey(ctx, NewPasskey{UserID: alice.ID, Name: "Phone", Credential: newCredential(t)},
			codeHashes("second", 10), keep.ID, Event{At: t0})
		if err != nil || first {
			t.Fatalf("second AddPasskey = %v, %v", first, err)
		}
		if dump(t, d, `SELECT * FROM recovery_codes WHERE user_id = ?`, alice.ID) != before {
			t.Error("the recovery codes changed")
		}
		if ids := sessionIDs(t, d, alice.ID); !slices.Contains(ids, again.ID) {
			t.Error("another session ended")
		}
	})
	t.Run("a credential id is registered once across all accounts", func(t *testing.T) {
		bob := mkUser(t, d, "bob")
		before := dump(t, d, `SELECT * FROM passkeys`)
		for _, owner := range []User{alice, bob} {
			_, _, err := d.AddPasskey(ctx, NewPasskey{UserID: owner.ID, Name: "Copy", Credential: cred}, codeHashes("x", 10),
				0, event("passkey.added", t0))
			if !errors.Is(err, ErrDuplicate) {
				t.Errorf("registering alice's credential for %s: %v", owner.Username, err)
			}
		}
		if dump(t, d, `SELECT * FROM passkeys`) != before {
			t.Error("a duplicate changed the passkeys")
		}
		if cs, _ := d.UnusedRecoveryCodes(ctx, bob.ID); len(cs) != 0 {
			t.Error("a refused registration issued codes")
		}
	})
}

func TestPasskeyChallengesAreSingleUseAndBound(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice := mkUser(t, d, "alice")
	s := mkSession(t, d, alice.ID, StageFull, t0)
	browser := []byte("hash of the browser's cookie")
	begin := func(key string, b PasskeyBinding, at time.Time) {
		t.Helper()
		err := d.StartPasskeyChallenge(ctx, PasskeyChallenge{Key: []byte(key), Purpose: PasskeySignIn, Binding: b,
			State: []byte("state-" + key), CreatedAt: at, ExpiresAt: at.Add(auth.PasskeyChallengeTTL)})
		if err != nil {
			t.Fatal(err)
		}
	}
	begin("pre", PasskeyBinding{Browser: browser}, t0)
	begin("in", PasskeyBinding{SessionID: s.ID}, t0)

	tests := []struct {
		name    string
		key     string
		purpose string
		binding PasskeyBinding
		at      time.Time
		want    error
	}{
		{"another browser's cookie finds nothing", "pre", PasskeySignIn, PasskeyBinding{Browser: []byte("other")}, t0, ErrChallengeGone},
		{"no cookie finds nothing", "pre", PasskeySignIn, PasskeyBinding{}, t0, ErrChallengeGone},
		{"another session finds nothing", "in", PasskeySignIn, PasskeyBinding{SessionID: s.ID + 1}, t0, ErrChallengeGone},
		{"another purpose finds nothing", "pre", PasskeyRegister, PasskeyBinding{Browser: browser}, t0, ErrChallengeGone},
		{"its browser takes it", "pre", PasskeySignIn, PasskeyBinding{Browser: browser}, t0.Add(time.Minute), nil},
		{"a second answer finds nothing", "pre", PasskeySignIn, PasskeyBinding{Browser: browser}, t0.Add(time.Minute), ErrChallengeGone},
		{"its session takes it", "in", PasskeySignIn, PasskeyBinding{SessionID: s.ID}, t0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := d.TakePasskeyChallenge(ctx, []byte(tt.key), tt.purpose, tt.binding, tt.at)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil && string(ch.State) != "state-"+tt.key {
				t.Errorf("state %q", ch.State)
			}
		})
	}
	t.Run("five minutes is the limit, and one from a clock that ran ahead is expired", func(t *testing.T) {
		begin("late", PasskeyBinding{Browser: browser}, t0)
		if _, err := d.TakePasskeyChallenge(ctx, []byte("late"), PasskeySignIn, PasskeyBinding{Browser: browser},
			t0.Add(auth.PasskeyChallengeTTL)); !errors.Is(err, ErrChallengeExpired) {
			t.Errorf("at five minutes: %v", err)
		}
		begin("ahead", PasskeyBinding{Browser: browser}, t0.Add(time.Hour))
		if _, err := d.TakePasskeyChallenge(ctx, []byte("ahead"), PasskeySignIn, PasskeyBinding{Browser: browser},
			t0); !errors.Is(err, ErrChallengeExpired) {
			t.Errorf("from the future: %v", err)
		}
		if n := count(t, d, `SELECT COUNT(*) FROM passkey_challenges`); n != 0 {
			t.Errorf("%d ceremonies left", n)
		}
	})
	t.Run("expired ceremonies go when a new one starts, and with housekeeping", func(t *testing.T) {
		begin("old", PasskeyBinding{Browser: browser}, t0)
		begin("new", PasskeyBinding{Browser: browser}, t0.Add(time.Hour))
		if n := count(t, d, `SELECT COUNT(*) FROM passkey_challenges`); n != 1 {
			t.Errorf("%d ceremonies, want 1", n)
		}
		if n, err := d.PurgeExpiredPasskeyChallenges(ctx, t0.Add(2*time.Hour)); err != nil || n != 1 {
			t.Errorf("purged %d, %v", n, err)
		}
	})
}

func TestPasskeyUseChecksTheCounter(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice := mkUser(t, d, "alice")
	bob := mkUser(t, d, "bob")
	p := mkPasskey(t, d, alice, 0, "Key")
	use := func(u User, n uint32) error {
		return d.RecordPasskeyUse(ctx, u.ID, auth.PasskeyUse{CredentialID: p.Credential.ID, SignCount: n, Flags: 0x55}, t0.Add(time.Minute))
	}
	if err := use(alice, 0); err != nil {
		t.Errorf("a counter that stays 0: %v", err)
	}
	if err := use(alice, 0); err != nil {
		t.Errorf("a counter that stays 0, again: %v", err)
	}
	if err := use(alice, 5); err != nil {
		t.Errorf("5: %v", err)
	}
	for _, n := range []uint32{5, 4, 0} {
		if err := use(alice, n); !errors.Is(err, ErrSignCountStale) {
			t.Errorf("%d after 5: %v", n, err)
		}
	}
	if err := use(bob, 9); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob using alice's credential: %v", err)
	}
	got, _ := d.PasskeyByCredentialID(ctx, p.Credential.ID)
	if got.Credential.SignCount != 5 || got.Credential.Flags != 0x55 || !got.LastUsedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("after use %+v", got)
	}
}

func TestRemovingTheLastFactorRemovesTheCodes(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice := mkUser(t, d, "alice")
	bob := mkUser(t, d, "bob")
	keep := mkSession(t, d, alice.ID, StageFull, t0)
	laptop := mkPasskey(t, d, alice, keep.ID, "Laptop")
	phone := mkPasskey(t, d, alice, keep.ID, "Phone")
	mkPasskey(t, d, bob, 0, "Bob's")
	other := mkSession(t, d, alice.ID, StageFull, t0)
	bobBefore := othersSnapshot(t, d, alice.ID)

	if _, err := d.RemovePasskey(ctx, bob.ID, laptop.ID, false, 0, Event{At: t0}); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob removing alice's passkey: %v", err)
	}
	last, err := d.RemovePasskey(ctx, alice.ID, laptop.ID, true, keep.ID, event("passkey.removed", t0))
	if err != nil || last {
		t.Fatalf("removing one of two = %v, %v", last, err)
	}
	if cs, _ := d.UnusedRecoveryCodes(ctx, alice.ID); len(cs) != 10 {
		t.Errorf("%d codes after removing one of two", len(cs))
	}
	if ids := sessionIDs(t, d, alice.ID); !slices.Equal(ids, []int64{keep.ID}) || slices.Contains(ids, other.ID) {
		t.Errorf("sessions %v, want only %d", ids, keep.ID)
	}
	before := dump(t, d, `SELECT * FROM passkeys`)
	if _, err := d.RemovePasskey(ctx, alice.ID, phone.ID, true, keep.ID, Event{At: t0}); !errors.Is(err, ErrLastFactor) {
		t.Errorf("removing the last factor under a rule: %v", err)
	}
	if dump(t, d, `SELECT * FROM passkeys`) != before {
		t.Error("a refused removal changed the passkeys")
	}
	if last, err := d.RemovePasskey(ctx, alice.ID, phone.ID, false, keep.ID, event("passkey.removed", t0)); err != nil || !last {
		t.Fatalf("removing the last = %v, %v", last, err)
	}
	if cs, _ := d.UnusedRecoveryCodes(ctx, alice.ID); len(cs) != 0 {
		t.Errorf("%d codes outlived the last factor", len(cs))
	}
	if u, _ := d.UserByID(ctx, alice.ID); u.HasMFA() {
		t.Errorf("alice still has a factor: %+v", u)
	}
	assertSameSnapshot(t, bobBefore, othersSnapshot(t, d, alice.ID))
	if n := count(t, d, `SELECT COUNT(*) FROM audit_log WHERE event = 'passkey.removed' AND detail LIKE '%Phone%'`); n != 1 {
		t.Errorf("%d audit rows name the removed passkey", n)
	}

	t.Run("with an authenticator app left, the codes stay", func(t *testing.T) {
		carol := mkUser(t, d, "carol")
		s := mkSession(t, d, carol.ID, StageFull, t0)
		mkFactor(t, d, carol, s.ID)
		p := mkPasskey(t, d, carol, s.ID, "Key")
		if last, err := d.RemovePasskey(ctx, carol.ID, p.ID, true, s.ID, Event{At: t0}); err != nil || last {
			t.Fatalf("RemovePasskey = %v, %v", last, err)
		}
		if cs, _ := d.UnusedRecoveryCodes(ctx, carol.ID); len(cs) != 5 {
			t.Errorf("%d codes, want the app's 5", len(cs))
		}
	})
	t.Run("turning the app off leaves passkeys and codes", func(t *testing.T) {
		dave := mkUser(t, d, "dave")
		s := mkSession(t, d, dave.ID, StageFull, t0)
		mkFactor(t, d, dave, s.ID)
		mkPasskey(t, d, dave, s.ID, "Key")
		if err := d.DisableMFA(ctx, dave.ID, s.ID, Event{At: t0}); err != nil {
			t.Fatal(err)
		}
		u, _ := d.UserByID(ctx, dave.ID)
		if u.HasTOTP || u.Passkeys != 1 || !u.HasMFA() {
			t.Errorf("dave = %+v", u)
		}
		if cs, _ := d.UnusedRecoveryCodes(ctx, dave.ID); len(cs) != 5 {
			t.Errorf("%d codes left", len(cs))
		}
	})
}

func TestResetRemovesPasskeysAndRevokingTouchesNone(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice, bob := mfaFixture(t, d)
	s := mkSession(t, d, alice.ID, StageFull, t0)
	mkPasskey(t, d, alice, s.ID, "Key")
	mkPasskey(t, d, bob, 0, "Key")
	erin := mkUser(t, d, "erin") // a passkey and nothing else
	mkPasskey(t, d, erin, 0, "Key")
	if err := d.StartPasskeyChallenge(ctx, PasskeyChallenge{Key: []byte("k"), Purpose: PasskeyRegister, UserID: alice.ID,
		Binding: PasskeyBinding{SessionID: s.ID}, State: []byte("s"), CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}

	passkeys := dump(t, d, `SELECT * FROM passkeys`)
	if _, err := d.RevokeAllSessions(ctx, Event{At: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.RevokeSessions(ctx, bob.ID, 0, Event{At: t0}); err != nil {
		t.Fatal(err)
	}
	if dump(t, d, `SELECT * FROM passkeys`) != passkeys {
		t.Fatal("revoking sessions changed a passkey")
	}

	if had, err := d.ResetMFA(ctx, erin.ID, event("mfa.reset", t0)); err != nil || !had {
		t.Errorf("reset of a passkey-only user = %v, %v; want a factor removed", had, err)
	}
	bobBefore := othersSnapshot(t, d, alice.ID)
	if _, err := d.ResetMFA(ctx, alice.ID, event("mfa.reset", t0)); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"passkeys", "passkey_challenges", "recovery_codes", "mfa_factors"} {
		if n := count(t, d, `SELECT COUNT(*) FROM `+table+` WHERE user_id = ?`, alice.ID); n != 0 {
			t.Errorf("%d %s rows left for alice", n, table)
		}
	}
	assertSameSnapshot(t, bobBefore, othersSnapshot(t, d, alice.ID))
}

// Every count of enrolled users says what User.HasMFA says: a passkey-only user is
// enrolled, for the rollout, the dry run, the bulk reset, the session lookup and the users
// an app that requires two-step verification lets through alike.
func TestAPasskeyCountsAsEnrolledEverywhere(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	g, err := d.CreateGroup(ctx, "night shift", Event{At: t0})
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]User{}
	for _, name := range []string{"app", "key", "both", "none"} {
		u := mkUser(t, d, name)
		s := mkSession(t, d, u.ID, StageFull, t0)
		if name == "app" || name == "both" {
			mkFactor(t, d, u, s.ID)
		}
		if name == "key" || name == "both" {
			mkPasskey(t, d, u, s.ID, "Key")
		}
		if err := d.AddGroupMember(ctx, g.ID, u.ID, Event{At: t0}); err != nil {
			t.Fatal(err)
		}
		users[name] = u
	}
	counts, err := d.ScopeCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, scope := range []Scope{{Role: RoleStaff}, {GroupID: g.ID}} {
		if c := counts[scope]; c.Members != 4 || c.Enrolled != 3 {
			t.Errorf("%+v: %+v, want 4 members, 3 enrolled", scope, c)
		}
	}
	if names, err := d.UnenrolledInScope(ctx, Scope{GroupID: g.ID}); err != nil || !slices.Equal(names, []string{"none"}) {
		t.Errorf("unenrolled = %v, %v", names, err)
	}
	if n, err := d.GroupFactorCount(ctx, g.ID); err != nil || n != 3 {
		t.Errorf("GroupFactorCount = %d, %v", n, err)
	}
	all, err := d.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"app": {FactorTOTP}, "key": {FactorPasskey}, "both": {FactorTOTP, FactorPasskey}, "none": {}}
	for _, u := range all {
		if !slices.Equal(u.FactorKinds(), want[u.Username]) || u.HasMFA() != (u.Username != "none") {
			t.Errorf("%s: kinds %v, HasMFA %v", u.Username, u.FactorKinds(), u.HasMFA())
		}
	}
	if r, err := d.ReachOf(ctx, Audience{GroupIDs: []int64{g.ID}}); err != nil || r != (AppReach{Users: 4, WithFactor: 3}) {
		t.Errorf("the app form's preview: %+v, %v", r, err)
	}
	app, err := d.CreateApp(ctx, AppInput{Host: "wiki.example.com", RequireMFA: true, Audience: Audience{GroupIDs: []int64{g.ID}}},
		event("app.added", t0))
	if err != nil {
		t.Fatal(err)
	}
	if reaches, err := d.AppReaches(ctx); err != nil || reaches[app.ID] != (AppReach{Users: 4, WithFactor: 3}) {
		t.Errorf("the apps list: %+v, %v", reaches, err)
	}
	if n, err := d.BulkResetMFA(ctx, g.ID, 3, event("mfa.reset", t0)); err != nil || n != 3 {
		t.Fatalf("BulkResetMFA = %d, %v", n, err)
	}
	if u, _ := d.UserByID(ctx, users["key"].ID); u.HasMFA() || !u.MustEnrollMFA {
		t.Errorf("the passkey-only member after a bulk reset: %+v", u)
	}
}

func TestRenamePasskey(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice := mkUser(t, d, "alice")
	bob := mkUser(t, d, "bob")
	p := mkPasskey(t, d, alice, 0, "Laptop")
	if err := d.RenamePasskey(ctx, bob.ID, p.ID, "Mine now", Event{At: t0}); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob renaming alice's passkey: %v", err)
	}
	if err := d.RenamePasskey(ctx, alice.ID, p.ID, "Work laptop", event("passkey.renamed", t0)); err != nil {
		t.Fatal(err)
	}
	got, _ := d.PasskeyByCredentialID(ctx, p.Credential.ID)
	if got.Name != "Work laptop" {
		t.Errorf("name %q", got.Name)
	}
	if n := count(t, d, `SELECT COUNT(*) FROM audit_log WHERE event = 'passkey.renamed' AND detail = 'Laptop → Work laptop'`); n != 1 {
		t.Errorf("%d audit rows", n)
	}
}

func TestPasskeyHandleIsRandomAndKept(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice := mkUser(t, d, "alice")
	bob := mkUser(t, d, "bob")
	if _, err := d.PasskeyHandleOf(ctx, alice.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("before any registration: %v", err)
	}
	h1, err := d.PasskeyHandle(ctx, alice.ID)
	if err != nil || len(h1) != 64 {
		t.Fatalf("handle %x, %v", h1, err)
	}
	if h2, _ := d.PasskeyHandle(ctx, alice.ID); string(h2) != string(h1) {
		t.Error("the handle changed")
	}
	if hb, _ := d.PasskeyHandle(ctx, bob.ID); string(hb) == string(h1) {
		t.Error("two accounts share a handle")
	}
	if got, _ := d.PasskeyHandleOf(ctx, alice.ID); string(got) != string(h1) {
		t.Error("PasskeyHandleOf disagrees")
	}
	mkPasskey(t, d, alice, 0, "Key")
	if err := d.DeleteUser(ctx, alice.ID, Event{At: t0}); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"passkeys", "passkey_handles"} {
		if n := count(t, d, `SELECT COUNT(*) FROM `+table+` WHERE user_id = ?`, alice.ID); n != 0 {
			t.Errorf("%d %s rows outlived the account", n, table)
		}
	}
}

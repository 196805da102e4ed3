package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// othersSnapshot dumps every MFA and session row not belonging to userID.
func othersSnapshot(tb testing.TB, d *DB, userID int64) map[string]string {
	tb.Helper()
	snap := map[string]string{}
	for _, table := range []string{"users", "sessions", "mfa_factors", "mfa_pending", "recovery_codes", "passkeys"} {
		col := "user_id"
		if table == "users" {
			col = "id"
		}
		snap[table] = dump(tb, d, `SELECT * FROM `+table+` WHERE `+col+` != ?`, userID)
	}
	return snap
}

// codeHashes returns n distinct stand-in hashes, sorted like unusedHashes returns them.
func codeHashes(prefix string, n int) []string {
	var hs []string
	for i := range n {
		hs = append(hs, fmt.Sprintf("%s-%d", prefix, i))
	}
	slices.Sort(hs)
	return hs
}

func unusedHashes(tb testing.TB, d *DB, userID int64) []string {
	tb.Helper()
	cs, err := d.UnusedRecoveryCodes(context.Background(), userID)
	if err != nil {
		tb.Fatal(err)
	}
	var hs []string
	for _, c := range cs {
		hs = append(hs, c.Hash)
	}
	slices.Sort(hs)
	return hs
}

func TestClaimTOTPStep(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice := mkUser(t, d, "alice")
	bob := mkUser(t, d, "bob")
	mkFactor(t, d, alice, mkSession(t, d, alice.ID, StageFull, t0).ID) // last step 100
	mkFactor(t, d, bob, mkSession(t, d, bob.ID, StageFull, t0).ID)

	// The steps run in order: each row sees what the ones before it claimed.
	steps := []struct {
		name string
		step int64
		want bool
	}{
		{"the step used to confirm enrollment is refused", 100, false},
		{"a newer step is accepted", 101, true},
		{"the same step a second time is refused", 101, false},
		{"an older step is refused", 99, false},
		{"a step further ahead is accepted", 105, true},
		{"a step between the old and the newest claim is refused", 103, false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			ok, err := d.ClaimTOTPStep(ctx, alice.ID, s.step)
			if err != nil || ok != s.want {
				t.Errorf("ClaimTOTPStep(%d) = %v, %v; want %v", s.step, ok, err, s.want)
			}
		})
	}
	t.Run("other users' steps are their own", func(t *testing.T) {
		if f, _ := d.FactorOf(ctx, bob.ID); f.LastStep != 100 {
			t.Errorf("bob's last step = %d, want 100", f.LastStep)
		}
		if ok, _ := d.ClaimTOTPStep(ctx, bob.ID, 101); !ok {
			t.Error("bob cannot use a step alice used")
		}
	})
	t.Run("a user without a factor claims nothing", func(t *testing.T) {
		carol := mkUser(t, d, "carol")
		if ok, err := d.ClaimTOTPStep(ctx, carol.ID, 1000); ok || err != nil {
			t.Errorf("ClaimTOTPStep = %v, %v; want false", ok, err)
		}
	})
}

func TestClaimTOTPStepConcurrent(t *testing.T) {
	d := openTest(t)
	u := mkUser(t, d, "alice")
	mkFactor(t, d, u, mkSession(t, d, u.ID, StageFull, t0).ID)
	const n = 20
	oks := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { oks[i], errs[i] = d.ClaimTOTPStep(context.Background(), u.ID, 200) })
	}
	wg.Wait()
	won := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		if oks[i] {
			won++
		}
	}
	if won != 1 {
		t.Errorf("%d of %d racing claims of one step succeeded, want 1", won, n)
	}
}

func TestPendingEnrollment(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice := mkUser(t, d, "alice")
	bob := mkUser(t, d, "bob")
	s1 := mkSession(t, d, alice.ID, StageFull, t0)
	s2 := mkSession(t, d, alice.ID, StageFull, t0)
	bobS := mkSession(t, d, bob.ID, StageFull, t0)
	expires := t0.Add(10 * time.Minute)
	if err := d.StartEnrollment(ctx, Pending{UserID: alice.ID, SessionID: s1.ID, SecretEnc: []byte("one"),
		CreatedAt: t0, ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name          string
		user, session int64
		now           time.Time
		want          string // "" means ErrNotFound
	}{
		{"the user and session that started it see it", alice.ID, s1.ID, t0.Add(time.Minute), "one"},
		{"another session of the same user does not", alice.ID, s2.ID, t0.Add(time.Minute), ""},
		{"another user with the same session id does not", bob.ID, s1.ID, t0.Add(time.Minute), ""},
		{"another user from their own session does not", bob.ID, bobS.ID, t0.Add(time.Minute), ""},
		{"it is gone at its expiry time", alice.ID, s1.ID, expires, ""},
		{"it is still there for a clock a little behind", alice.ID, s1.ID, t0.Add(-ClockSkew / 2), "one"},
		{"it is gone once the clock stepped back past when it was made", alice.ID, s1.ID, t0.Add(-time.Hour), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := d.PendingOf(ctx, tt.user, tt.session, tt.now)
			if tt.want == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("PendingOf = %+v, %v; want ErrNotFound", p, err)
				}
				return
			}
			if err != nil || string(p.SecretEnc) != tt.want || !p.CreatedAt.Equal(t0) || !p.ExpiresAt.Equal(expires) {
				t.Errorf("PendingOf = %+v, %v", p, err)
			}
		})
	}
	t.Run("starting again replaces the user's pending secret and session", func(t *testing.T) {
		if err := d.StartEnrollment(ctx, Pending{UserID: alice.ID, SessionID: s2.ID, SecretEnc: []byte("two"),
			CreatedAt: t0, ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.PendingOf(ctx, alice.ID, s1.ID, t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("the first session still sees a pending secret: %v", err)
		}
		if p, err := d.PendingOf(ctx, alice.ID, s2.ID, t0); err != nil || string(p.SecretEnc) != "two" {
			t.Errorf("PendingOf = %+v, %v; want secret two", p, err)
		}
		if n := count(t, d, `SELECT COUNT(*) FROM mfa_pending WHERE user_id = ?`, alice.ID); n != 1 {
			t.Errorf("%d pending rows for alice, want 1", n)
		}
	})
	t.Run("HasSealedData counts pending secrets", func(t *testing.T) {
		if ok, err := d.HasSealedData(ctx); err != nil || !ok {
			t.Errorf("HasSealedData = %v, %v; want true", ok, err)
		}
	})
}

func TestActivateFactor(t *testing.T) {
	ctx := context.Background()
	expires := t0.Add(10 * time.Minute)

	type fixture struct {
		d              *DB
		alice, bob     User
		current, other Session
		bobSession     Session
		othersBefore   map[string]string
	}
	setup := func(t *testing.T) fixture {
		t.Helper()
		d := openTest(t)
		f := fixture{d: d, alice: mkUser(t, d, "alice"), bob: mkUser(t, d, "bob")}
		f.bobSession = mkSession(t, d, f.bob.ID, StageFull, t0)
		mkFactor(t, d, f.bob, f.bobSession.ID)
		// Bob is halfway through replacing his factor, so a pending row of his exists too.
		if err := d.StartEnrollment(ctx, Pending{UserID: f.bob.ID, SessionID: f.bobSession.ID,
			SecretEnc: []byte("bob-next"), CreatedAt: t0, ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
		f.current = mkSession(t, d, f.alice.ID, StageFull, t0)
		f.other = mkSession(t, d, f.alice.ID, StageFull, t0)
		if err := d.StartEnrollment(ctx, Pending{UserID: f.alice.ID, SessionID: f.current.ID,
			SecretEnc: []byte("alice-secret"), CreatedAt: t0, ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
		f.othersBefore = othersSnapshot(t, d, f.alice.ID)
		return f
	}

	refusals := []struct {
		name    string
		user    func(f fixture) int64
		session func(f fixture) int64
		secret  string
		at      time.Time
	}{
		{"a secret other than the pending one is refused",
			func(f fixture) int64 { return f.alice.ID }, func(f fixture) int64 { return f.current.ID }, "replaced-secret", t0.Add(time.Minute)},
		{"an expired pending secret is refused",
			func(f fixture) int64 { return f.alice.ID }, func(f fixture) int64 { return f.current.ID }, "alice-secret", expires},
		{"another session of the user cannot confirm it",
			func(f fixture) int64 { return f.alice.ID }, func(f fixture) int64 { return f.other.ID }, "alice-secret", t0.Add(time.Minute)},
		{"another user cannot confirm it with alice's session",
			func(f fixture) int64 { return f.bob.ID }, func(f fixture) int64 { return f.current.ID }, "alice-secret", t0.Add(time.Minute)},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			before := snapshot(t, f.d)
			err := f.d.ActivateFactor(ctx, tt.user(f), tt.session(f), []byte(tt.secret), 7, codeHashes("c", 10),
				event("mfa.enrolled", tt.at))
			if !errors.Is(err, ErrPendingChanged) {
				t.Errorf("err = %v, want ErrPendingChanged", err)
			}
			assertSameSnapshot(t, before, snapshot(t, f.d))
		})
	}

	t.Run("the pending secret becomes alice's factor and nobody else's", func(t *testing.T) {
		f := setup(t)
		codes := codeHashes("alice-code", 10)
		at := t0.Add(time.Minute)
		if err := f.d.ActivateFactor(ctx, f.alice.ID, f.current.ID, []byte("alice-secret"), 7, codes,
			event("mfa.enrolled", at)); err != nil {
			t.Fatal(err)
		}
		fac, err := f.d.FactorOf(ctx, f.alice.ID)
		if err != nil || string(fac.SecretEnc) != "alice-secret" || fac.LastStep != 7 || !fac.CreatedAt.Equal(at) {
			t.Errorf("FactorOf = %+v, %v", fac, err)
		}
		if got := unusedHashes(t, f.d, f.alice.ID); !slices.Equal(got, codes) {
			t.Errorf("recovery codes = %v, want %v", got, codes)
		}
		if _, err := f.d.PendingOf(ctx, f.alice.ID, f.current.ID, at); !errors.Is(err, ErrNotFound) {
			t.Errorf("pending row survived activation: %v", err)
		}
		if ids := sessionIDs(t, f.d, f.alice.ID); !slices.Equal(ids, []int64{f.current.ID}) {
			t.Errorf("alice's sessions = %v, want only the current %d", ids, f.current.ID)
		}
		assertSameSnapshot(t, f.othersBefore, othersSnapshot(t, f.d, f.alice.ID))
		if n := auditCount(t, f.d, "mfa.enrolled"); n != 1 {
			t.Errorf("%d audit rows, want 1", n)
		}
		if u, _ := f.d.UserByID(ctx, f.alice.ID); !u.HasMFA() {
			t.Error("HasMFA false after activation")
		}
		if err := f.d.ActivateFactor(ctx, f.alice.ID, f.current.ID, []byte("alice-secret"), 8, codes, Event{At: at}); !errors.Is(err, ErrPendingChanged) {
			t.Errorf("a second confirmation of the same pending secret: err = %v, want ErrPendingChanged", err)
		}
	})

	t.Run("re-enrolling replaces the factor, its step and its codes", func(t *testing.T) {
		f := setup(t)
		oldCodes, _ := f.d.UnusedRecoveryCodes(ctx, f.bob.ID)
		if err := f.d.ActivateFactor(ctx, f.bob.ID, f.bobSession.ID, []byte("bob-next"), 3, codeHashes("bob-new", 10),
			Event{At: t0}); err != nil {
			t.Fatal(err)
		}
		fac, _ := f.d.FactorOf(ctx, f.bob.ID)
		if string(fac.SecretEnc) != "bob-next" || fac.LastStep != 3 {
			t.Errorf("factor = %+v, want the new secret at step 3", fac)
		}
		// Ids, not hashes, are what gets spent, so an old id must not come back on a new code.
		for _, c := range oldCodes {
			if ok, _ := f.d.UseRecoveryCode(ctx, f.bob.ID, c.ID, t0); ok {
				t.Errorf("old code id %d still spends a code", c.ID)
			}
		}
		if got := unusedHashes(t, f.d, f.bob.ID); !slices.Equal(got, codeHashes("bob-new", 10)) {
			t.Errorf("codes = %v", got)
		}
	})
}

func TestConcurrentEnrollmentsStayWithTheirUsers(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	const n = 10
	users := make([]User, n)
	sessions := make([]Session, n)
	for i := range n {
		users[i] = mkUser(t, d, fmt.Sprintf("user%d", i))
		sessions[i] = mkSession(t, d, users[i].ID, StageFull, t0)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			u, s := users[i], sessions[i]
			secret := []byte(fmt.Sprintf("secret-of-%d", u.ID))
			p := Pending{UserID: u.ID, SessionID: s.ID, SecretEnc: secret, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
			if errs[i] = d.StartEnrollment(ctx, p); errs[i] != nil {
				return
			}
			errs[i] = d.ActivateFactor(ctx, u.ID, s.ID, secret, 1, codeHashes(u.Username, 2), Event{At: t0})
		})
	}
	wg.Wait()
	for i, u := range users {
		if errs[i] != nil {
			t.Fatalf("%s: %v", u.Username, errs[i])
		}
		f, err := d.FactorOf(ctx, u.ID)
		if want := fmt.Sprintf("secret-of-%d", u.ID); err != nil || string(f.SecretEnc) != want {
			t.Errorf("%s has factor %q, %v; want %q", u.Username, f.SecretEnc, err, want)
		}
		if got := unusedHashes(t, d, u.ID); !slices.Equal(got, codeHashes(u.Username, 2)) {
			t.Errorf("%s has codes %v", u.Username, got)
		}
		if ids := sessionIDs(t, d, u.ID); !slices.Equal(ids, []int64{sessions[i].ID}) {
			t.Errorf("%s has sessions %v", u.Username, ids)
		}
	}
}

func TestRecoveryCodes(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice := mkUser(t, d, "alice")
	bob := mkUser(t, d, "bob")
	mkFactor(t, d, alice, mkSession(t, d, alice.ID, StageFull, t0).ID)
	mkFactor(t, d, bob, mkSession(t, d, bob.ID, StageFull, t0).ID)
	aliceCodes, _ := d.UnusedRecoveryCodes(ctx, alice.ID)
	bobCodes, _ := d.UnusedRecoveryCodes(ctx, bob.ID)
	if len(aliceCodes) != 5 || len(bobCodes) != 5 {
		t.Fatalf("seeded %d and %d codes, want 5 each", len(aliceCodes), len(bobCodes))
	}

	t.Run("a code works once", func(t *testing.T) {
		if ok, err := d.UseRecoveryCode(ctx, alice.ID, aliceCodes[0].ID, t0); !ok || err != nil {
			t.Fatalf("first use = %v, %v", ok, err)
		}
		if ok, err := d.UseRecoveryCode(ctx, alice.ID, aliceCodes[0].ID, t0); ok || err != nil {
			t.Errorf("second use = %v, %v; want false", ok, err)
		}
		if cs, _ := d.UnusedRecoveryCodes(ctx, alice.ID); len(cs) != 4 || slices.Contains(cs, aliceCodes[0]) {
			t.Errorf("unused codes = %+v", cs)
		}
	})
	t.Run("another user's code id is refused and stays unused", func(t *testing.T) {
		if ok, err := d.UseRecoveryCode(ctx, alice.ID, bobCodes[0].ID, t0); ok || err != nil {
			t.Errorf("UseRecoveryCode = %v, %v; want false", ok, err)
		}
		if cs, _ := d.UnusedRecoveryCodes(ctx, bob.ID); !slices.Equal(cs, bobCodes) {
			t.Errorf("bob's codes = %+v, want %+v", cs, bobCodes)
		}
	})
	t.Run("a new set replaces the old one entirely", func(t *testing.T) {
		bobBefore := dump(t, d, `SELECT * FROM recovery_codes WHERE user_id = ?`, bob.ID)
		fresh := codeHashes("fresh", 10)
		if err := d.ReplaceRecoveryCodes(ctx, alice.ID, fresh, event("mfa.codes.replaced", t0)); err != nil {
			t.Fatal(err)
		}
		if got := unusedHashes(t, d, alice.ID); !slices.Equal(got, fresh) {
			t.Errorf("codes = %v, want %v", got, fresh)
		}
		for _, c := range aliceCodes[1:] {
			if ok, _ := d.UseRecoveryCode(ctx, alice.ID, c.ID, t0); ok {
				t.Errorf("old code %d still works", c.ID)
			}
		}
		if n := count(t, d, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?`, alice.ID); n != len(fresh) {
			t.Errorf("%d code rows for alice, want %d (the old set, used or not, is gone)", n, len(fresh))
		}
		if got := dump(t, d, `SELECT * FROM recovery_codes WHERE user_id = ?`, bob.ID); got != bobBefore {
			t.Error("bob's codes changed")
		}
		if n := auditCount(t, d, "mfa.codes.replaced"); n != 1 {
			t.Errorf("%d audit rows, want 1", n)
		}
	})
	t.Run("a user without a factor gets no codes", func(t *testing.T) {
		carol := mkUser(t, d, "carol")
		if err := d.ReplaceRecoveryCodes(ctx, carol.ID, codeHashes("x", 3), Event{At: t0}); !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
		if cs, _ := d.UnusedRecoveryCodes(ctx, carol.ID); len(cs) != 0 {
			t.Errorf("carol has codes %+v", cs)
		}
	})
}

// mfaFixture gives alice and bob a factor, codes, a pending re-enrollment and two sessions.
func mfaFixture(tb testing.TB, d *DB) (alice, bob User) {
	tb.Helper()
	ctx := context.Background()
	for _, name := range []string{"alice", "bob"} {
		u := mkUser(tb, d, name)
		s := mkSession(tb, d, u.ID, StageFull, t0)
		mkFactor(tb, d, u, s.ID)
		mkSession(tb, d, u.ID, StageMFA, t0)
		if err := d.StartEnrollment(ctx, Pending{UserID: u.ID, SessionID: s.ID, SecretEnc: []byte("next"),
			CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
			tb.Fatal(err)
		}
		if name == "alice" {
			alice = u
		} else {
			bob = u
		}
	}
	return alice, bob
}

func TestResetMFA(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice, bob := mfaFixture(t, d)
	bobBefore := othersSnapshot(t, d, alice.ID)

	had, err := d.ResetMFA(ctx, alice.ID, event("mfa.reset", t0))
	if err != nil || !had {
		t.Fatalf("ResetMFA = %v, %v; want true", had, err)
	}
	for _, table := range []string{"mfa_factors", "mfa_pending", "recovery_codes", "sessions"} {
		if n := count(t, d, `SELECT COUNT(*) FROM `+table+` WHERE user_id = ?`, alice.ID); n != 0 {
			t.Errorf("%d %s rows left for alice", n, table)
		}
	}
	assertSameSnapshot(t, bobBefore, othersSnapshot(t, d, alice.ID))
	if _, err := d.FactorOf(ctx, bob.ID); err != nil {
		t.Errorf("bob's factor: %v", err)
	}
	if u, _ := d.UserByID(ctx, alice.ID); u.HasMFA() || u.PasswordHash != alice.PasswordHash {
		t.Errorf("alice after reset = %+v", u)
	}
	if n := auditCount(t, d, "mfa.reset"); n != 1 {
		t.Errorf("%d audit rows, want 1", n)
	}
	if had, err := d.ResetMFA(ctx, alice.ID, Event{At: t0}); err != nil || had {
		t.Errorf("second ResetMFA = %v, %v; want false", had, err)
	}
}

func TestDisableMFA(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice, _ := mfaFixture(t, d)
	keep := mkSession(t, d, alice.ID, StageFull, t0)
	bobBefore := othersSnapshot(t, d, alice.ID)

	if err := d.DisableMFA(ctx, alice.ID, keep.ID, event("mfa.disabled", t0)); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"mfa_factors", "mfa_pending", "recovery_codes"} {
		if n := count(t, d, `SELECT COUNT(*) FROM `+table+` WHERE user_id = ?`, alice.ID); n != 0 {
			t.Errorf("%d %s rows left for alice", n, table)
		}
	}
	if ids := sessionIDs(t, d, alice.ID); !slices.Equal(ids, []int64{keep.ID}) {
		t.Errorf("alice's sessions = %v, want only %d", ids, keep.ID)
	}
	assertSameSnapshot(t, bobBefore, othersSnapshot(t, d, alice.ID))
	if n := auditCount(t, d, "mfa.disabled"); n != 1 {
		t.Errorf("%d audit rows, want 1", n)
	}
}

func TestKeyCanary(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	if _, err := d.KeyCanary(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("KeyCanary on a fresh database: err = %v, want ErrNotFound", err)
	}
	if ok, err := d.HasSealedData(ctx); err != nil || ok {
		t.Errorf("HasSealedData on a fresh database = %v, %v", ok, err)
	}
	if err := d.SetKeyCanary(ctx, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := d.SetKeyCanary(ctx, []byte("second")); !errors.Is(err, ErrDuplicate) {
		t.Errorf("second SetKeyCanary: err = %v, want ErrDuplicate", err)
	}
	// A second key must never overwrite the canary of the key that sealed the data.
	if c, err := d.KeyCanary(ctx); err != nil || !bytes.Equal(c, []byte("first")) {
		t.Errorf("KeyCanary = %q, %v; want first", c, err)
	}
}

func TestResealSecrets(t *testing.T) {
	ctx := context.Background()
	var alice, bob User
	setup := func(t *testing.T) *DB {
		t.Helper()
		d := openTest(t)
		alice, bob = mfaFixture(t, d) // two factors and two pending secrets
		if err := d.SetKeyCanary(ctx, []byte("old-canary")); err != nil {
			t.Fatal(err)
		}
		return d
	}
	aad := func(id int64) []byte { return []byte(fmt.Sprintf("user-%d", id)) }

	t.Run("every secret and the canary move to the new key together", func(t *testing.T) {
		d := setup(t)
		var seen []string
		reseal := func(sealed, a []byte) ([]byte, error) {
			seen = append(seen, string(a))
			return append([]byte("new:"), sealed...), nil
		}
		text := "CAST(secret_enc AS TEXT)"
		if d.IsPostgres() {
			text = "convert_from(secret_enc, 'UTF8')"
		}
		before := dump(t, d, `SELECT user_id, 'new:' || `+text+` FROM mfa_factors
			UNION ALL SELECT user_id, 'new:' || `+text+` FROM mfa_pending`)
		n, err := d.ResealSecrets(ctx, reseal, aad, []byte("new-canary"), event("key.rotated", t0))
		if err != nil || n != 4 {
			t.Fatalf("ResealSecrets = %d, %v; want 4", n, err)
		}
		after := dump(t, d, `SELECT user_id, `+text+` FROM mfa_factors
			UNION ALL SELECT user_id, `+text+` FROM mfa_pending`)
		if after != before {
			t.Errorf("secrets after reseal:\n%s\nwant:\n%s", after, before)
		}
		slices.Sort(seen)
		want := []string{string(aad(alice.ID)), string(aad(alice.ID)), string(aad(bob.ID)), string(aad(bob.ID))}
		slices.Sort(want)
		if !slices.Equal(seen, want) {
			t.Errorf("resealed with associated data %v, want %v", seen, want)
		}
		if c, _ := d.KeyCanary(ctx); string(c) != "new-canary" {
			t.Errorf("canary = %q", c)
		}
		if evs, _ := d.ListEvents(ctx, AuditFilter{Kind: "key.rotated"}); len(evs) != 1 || evs[0].Detail != "4 secrets re-encrypted" {
			t.Errorf("audit = %+v", evs)
		}
	})
	t.Run("one failure leaves every secret and the canary as they were", func(t *testing.T) {
		d := setup(t)
		calls := 0
		reseal := func(sealed, a []byte) ([]byte, error) {
			calls++
			if calls == 3 {
				return nil, errors.New("cannot open")
			}
			return append([]byte("new:"), sealed...), nil
		}
		before := snapshot(t, d)
		if _, err := d.ResealSecrets(ctx, reseal, aad, []byte("new-canary"), event("key.rotated", t0)); err == nil {
			t.Fatal("ResealSecrets succeeded")
		}
		assertSameSnapshot(t, before, snapshot(t, d))
	})
}

func TestResetRequiresEnrollingAgain(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	u := mkUser(t, d, "alice")
	s := mkSession(t, d, u.ID, StageFull, t0)
	mkFactor(t, d, u, s.ID)
	if _, err := d.ResetMFA(ctx, u.ID, Event{At: t0}); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.UserByID(ctx, u.ID); !got.MustEnrollMFA || got.HasMFA() {
		t.Fatalf("after reset: %+v", got)
	}
	s2 := mkSession(t, d, u.ID, StageFull, t0)
	mkFactor(t, d, u, s2.ID)
	if got, _ := d.UserByID(ctx, u.ID); got.MustEnrollMFA || !got.HasMFA() {
		t.Fatalf("after enrolling again: %+v", got)
	}
}

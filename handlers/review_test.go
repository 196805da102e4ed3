package handlers

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// wrongPassword posts one wrong password for username from a fresh browser and address.
func (a *testApp) wrongPassword(tb testing.TB, username string, i int) *http.Response {
	tb.Helper()
	c := a.client()
	c.addr = "198.51.100." + strconv.Itoa(i%250+1) + ":4000"
	c.get("/login")
	return c.post("/login", url.Values{"username": {username}, "password": {"wrong guess " + strconv.Itoa(i)}})
}

// An attacker who knows only a username spreads wrong passwords over a few minutes, each
// one after the lock of the one before has passed. Once the back-off passes, the owner's
// password and code must reach the dashboard: a right password never lengthens the lock.
func TestBackoffPassingLetsAnMFAUserBackIn(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	secret, _ := c.enroll(t)

	for i := 1; i <= lockAfter+3; i++ {
		resp := a.wrongPassword(t, "alice", i)
		wantStatus(t, resp, http.StatusUnauthorized)
		a.advance(signInBackoff(i) + time.Second)
	}
	s := a.client()
	wantRedirect(t, s.login("alice", "correct horse battery"), "/login/mfa")
	a.advance(20 * time.Second) // typing the code
	s.get("/login/mfa")
	resp := s.post("/login/mfa", url.Values{"code": {auth.TOTPCode(secret, a.clock())}})
	wantRedirect(t, resp, "/")
	wantStatus(t, s.get("/"), http.StatusOK)

	t.Run("a sign-in that was refused during the lock works after it", func(t *testing.T) {
		for i := 1; i <= lockAfter; i++ {
			a.wrongPassword(t, "alice", i)
		}
		s := a.client()
		s.get("/login")
		wantStatus(t, s.post("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"}}), http.StatusTooManyRequests)
		a.advance(signInBackoff(lockAfter) + time.Second)
		a.advance(30 * time.Second) // a fresh time step for the code
		wantRedirect(t, a.client().loginMFA("alice", "correct horse battery", auth.TOTPCode(secret, a.clock())), "/")
	})
}

// A session cookie is all a thief has; with it alone the authenticator must stay the
// owner's: no new key, no new recovery codes.
func TestStolenSessionCannotReplaceTheAuthenticator(t *testing.T) {
	a := newTestApp(t)
	alice := a.createUser("alice", db.RoleStaff, "correct horse battery")
	owner := a.client()
	owner.login("alice", "correct horse battery")
	secret, codes := owner.enroll(t)
	a.advance(time.Minute)
	thief := a.client()
	wantRedirect(t, thief.loginMFA("alice", "correct horse battery", auth.TOTPCode(secret, a.clock())), "/")
	before, err := a.db.FactorOf(context.Background(), alice.ID)
	if err != nil {
		t.Fatal(err)
	}

	thief.get("/account/mfa")
	wantStatus(t, thief.post("/account/mfa/restart", nil), http.StatusUnprocessableEntity)
	if strings.Contains(body(t, thief.get("/account/mfa")), `id="mfa-secret"`) {
		t.Fatal("a new key was shown without the password")
	}
	wantStatus(t, thief.post("/account/mfa", url.Values{"code": {"123456"}}), http.StatusConflict)
	if strings.Contains(thief.lastBody, `id="mfa-secret"`) {
		t.Fatal("confirming with nothing pending started a new key")
	}
	thief.get("/account/mfa")
	wantStatus(t, thief.post("/account/mfa/recovery-codes", nil), http.StatusUnprocessableEntity)
	wantStatus(t, thief.post("/account/mfa/recovery-codes", url.Values{"password": {"wrong horse battery"}}), http.StatusUnprocessableEntity)

	after, err := a.db.FactorOf(context.Background(), alice.ID)
	if err != nil || string(after.SecretEnc) != string(before.SecretEnc) {
		t.Fatalf("the factor changed without the password (%v)", err)
	}
	wantStatus(t, owner.get("/"), http.StatusOK) // the owner was not signed out
	a.advance(time.Minute)
	wantRedirect(t, a.client().loginMFA("alice", "correct horse battery", codes[0]), "/")

	t.Run("with the password, the owner may start over and make new codes", func(t *testing.T) {
		owner.get("/account/mfa")
		wantRedirect(t, owner.post("/account/mfa/replace", url.Values{"password": {"correct horse battery"}}), "/account/mfa")
		first := secretRe.FindStringSubmatch(body(t, owner.get("/account/mfa")))[1]
		wantStatus(t, owner.post("/account/mfa/restart", nil), http.StatusUnprocessableEntity)
		wantRedirect(t, owner.post("/account/mfa/restart", url.Values{"password": {"correct horse battery"}}), "/account/mfa")
		if again := secretRe.FindStringSubmatch(body(t, owner.get("/account/mfa")))[1]; again == first {
			t.Fatal("starting over kept the same key")
		}
		codes := recoveryRe.FindAllString(body(t, owner.get("/account/mfa")), -1)
		if len(codes) != 0 {
			t.Fatal("codes shown before any were made")
		}
		owner.get("/account/mfa")
		wantRedirect(t, owner.post("/account/mfa/recovery-codes", url.Values{"password": {"correct horse battery"}}), "/account/mfa")
		if n := len(recoveryRe.FindAllString(body(t, owner.get("/account/mfa")), -1)); n != recoveryCodeCount {
			t.Fatalf("%d new recovery codes shown", n)
		}
	})
}

// Every place that asks a signed-in user for their password again counts the guesses
// against the account like a sign-in, and is refused like one while the account is locked.
func TestPasswordRechecksAreThrottled(t *testing.T) {
	for _, tc := range []struct {
		name, path, field string
		mfa               bool
	}{
		{"password change", "/account/password", "current_password", false},
		{"moving to a new authenticator", "/account/mfa/replace", "password", true},
		{"turning two-step verification off", "/account/mfa/disable", "password", true},
		{"making new recovery codes", "/account/mfa/recovery-codes", "password", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestApp(t)
			a.createUser("alice", db.RoleStaff, "correct horse battery")
			c := a.client()
			c.login("alice", "correct horse battery")
			if tc.mfa {
				c.enroll(t)
			}
			form := func(pw string) url.Values {
				return url.Values{tc.field: {pw}, "new_password": {"a brand new passphrase"}}
			}
			var resp *http.Response
			for i := 1; i <= lockAfter+5; i++ {
				c.get("/account")
				resp = c.post(tc.path, form("wrong horse battery "+strconv.Itoa(i)))
				if i <= lockAfter && resp.StatusCode != http.StatusUnprocessableEntity {
					t.Fatalf("guess %d: status %d, want 422", i, resp.StatusCode)
				}
			}
			wantStatus(t, resp, http.StatusTooManyRequests)
			if resp.Header.Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
			c.get("/account")
			wantStatus(t, c.post(tc.path, form("correct horse battery")), http.StatusTooManyRequests)
			s := a.client()
			s.get("/login")
			wantStatus(t, s.post("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"}}), http.StatusTooManyRequests)
		})
	}
}

// An address that knows one password must not buy fresh guesses at every other account by
// signing in with it now and then.
func TestOneRightPasswordDoesNotResetTheAddressBudget(t *testing.T) {
	a := newTestApp(t)
	a.createUser("mallory", db.RoleStaff, "correct horse battery")
	c := a.client()
	guess := func(i int) *http.Response {
		c.get("/login")
		return c.post("/login", url.Values{"username": {"victim" + strconv.Itoa(i)}, "password": {"spray"}})
	}
	for i := 0; i < addrFailLimit-1; i++ {
		wantStatus(t, guess(i), http.StatusUnauthorized)
	}
	c.login("mallory", "correct horse battery")
	c.post("/logout", nil)
	wantStatus(t, guess(addrFailLimit), http.StatusUnauthorized)
	wantStatus(t, guess(addrFailLimit+1), http.StatusTooManyRequests)

	t.Run("the budget decays on its own", func(t *testing.T) {
		a.advance(addrFailWindow + time.Second)
		wantStatus(t, guess(addrFailLimit+2), http.StatusUnauthorized)
	})
}

// A clock that stepped back must not let a session, or a key shown for enrollment, live
// for as long as the clock lags: stored times from the future count as expired.
func TestTimesFromTheFutureAreExpired(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	a.advance(3 * time.Hour) // the clock runs ahead
	c := a.client()
	c.login("alice", "correct horse battery")
	a.advance(-3 * time.Hour) // and steps back
	resp := c.get("/")
	wantRedirect(t, resp, "/login")
	if !strings.Contains(resp.Header.Get("Location"), "ended=1") {
		t.Errorf("a session from the future was not ended: %s", resp.Header.Get("Location"))
	}
	t.Run("a small drift between machines is tolerated", func(t *testing.T) {
		a.advance(db.ClockSkew / 2)
		s := a.client()
		s.login("alice", "correct horse battery")
		a.advance(-db.ClockSkew / 2)
		wantStatus(t, s.get("/"), http.StatusOK)
	})
}

// A wrong recovery code must cost one password-hash computation, not one per unused code:
// it is typed at an unauthenticated step and the hashing budget is shared.
func TestWrongRecoveryCodeCostsOneHash(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	_, codes := c.enroll(t)
	s := a.client()
	wantRedirect(t, s.login("alice", "correct horse battery"), "/login/mfa")
	s.get("/login/mfa")
	before := a.hasher.Computations()
	wantStatus(t, s.post("/login/mfa", url.Values{"code": {"22222-33333"}}), http.StatusUnauthorized)
	if n := a.hasher.Computations() - before; n != 1 {
		t.Errorf("a wrong recovery code cost %d hash computations, want 1", n)
	}
	before = a.hasher.Computations()
	wantRedirect(t, s.post("/login/mfa", url.Values{"code": {codes[7]}}), "/")
	if n := a.hasher.Computations() - before; n != 1 {
		t.Errorf("a right recovery code cost %d hash computations, want 1", n)
	}
	t.Run("a spent code stays spent", func(t *testing.T) {
		a.advance(time.Minute)
		wantStatus(t, a.client().loginMFA("alice", "correct horse battery", codes[7]), http.StatusUnauthorized)
	})
}

// The copy of live notices is reloaded when the clock steps back before the time it was
// read: a notice that had "ended" by the clock that ran ahead is current again.
func TestLiveNoticesReloadAfterTheClockStepsBack(t *testing.T) {
	a := newTestApp(t)
	root := a.createUser("root", db.RoleAdmin, "correct horse battery")
	a.createUser("sam", db.RoleStaff, "correct horse battery")
	n, err := a.db.CreateNotice(context.Background(), db.NoticeInput{Title: "Fire drill", Body: "At noon.",
		Kind: db.NoticeMustRead, Severity: db.SeverityWarning, EndsAt: a.clock().Add(2 * time.Hour),
		Audience: db.Audience{Everyone: true}}, root, db.Event{At: a.clock()})
	if err != nil {
		t.Fatal(err)
	}
	a.advance(3 * time.Hour)
	ahead := a.client()
	ahead.login("sam", "correct horse battery")
	if got := banners(t, ahead.get("/")); len(got) != 0 {
		t.Fatalf("an ended notice shows: %v", got)
	}
	a.advance(-3 * time.Hour)
	now := a.client()
	now.login("sam", "correct horse battery")
	if got := banners(t, now.get("/")); got[strconv.FormatInt(n.ID, 10)] != "true" {
		t.Fatalf("after the clock stepped back, the current notice is missing: %v", got)
	}
}

// Counts wait at most flushEvery before they are saved, also when the clock stepped back.
func TestCountersFlushAfterTheClockStepsBack(t *testing.T) {
	a := newTestApp(t)
	k := newCounters(a.db, slogDiscard(), a.clock)
	a.advance(-2 * time.Hour)
	k.add(countCSRF)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		got, err := a.db.EventCountsSince(context.Background(), a.clock().Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got[countCSRF] == 1 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("a count made after the clock stepped back was not saved")
}

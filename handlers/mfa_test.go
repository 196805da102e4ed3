package handlers

import (
	"context"
	"encoding/base32"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

var (
	secretRe   = regexp.MustCompile(`<code id="mfa-secret"[^>]*>([A-Z2-7]+)</code>`)
	qrRe       = regexp.MustCompile(`<img id="mfa-qr"[^>]*src="data:image/png;base64,[A-Za-z0-9+/=]+"`)
	recoveryRe = regexp.MustCompile(`<code class="recovery-code">([^<]+)</code>`)
)

// enroll takes a signed-in client through enrollment and returns the secret and the
// recovery codes shown.
func (c *client) enroll(tb testing.TB) (string, []string) {
	tb.Helper()
	resp := c.get("/account/mfa")
	wantStatus(tb, resp, http.StatusOK)
	b := body(tb, resp)
	m := secretRe.FindStringSubmatch(b)
	if m == nil || !qrRe.MatchString(b) {
		tb.Fatalf("enrollment page lacks the QR or the secret: %.2000s", b)
	}
	secret := m[1]
	resp = c.post("/account/mfa", url.Values{"code": {auth.TOTPCode(secret, c.app.clock())}})
	wantRedirect(tb, resp, "/account/mfa")
	b = body(tb, c.get("/account/mfa"))
	var codes []string
	for _, m := range recoveryRe.FindAllStringSubmatch(b, -1) {
		codes = append(codes, html.UnescapeString(m[1]))
	}
	if len(codes) != recoveryCodeCount {
		tb.Fatalf("want %d recovery codes after enrollment, got %d: %.2000s", recoveryCodeCount, len(codes), b)
	}
	return secret, codes
}

// loginMFA completes both steps with code and reports the final response.
func (c *client) loginMFA(username, password, code string) *http.Response {
	c.app.tb.Helper()
	resp := c.login(username, password)
	wantRedirect(c.app.tb, resp, "/login/mfa")
	c.get("/login/mfa")
	return c.post("/login/mfa", url.Values{"code": {code}})
}

func TestEnrollmentAndSecondStep(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")

	resp := c.get("/account/mfa")
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatal("enrollment page is cacheable")
	}
	first := secretRe.FindStringSubmatch(body(t, resp))[1]
	if again := secretRe.FindStringSubmatch(body(t, c.get("/account/mfa")))[1]; again != first {
		t.Fatal("reloading the page replaced a secret the user may have scanned")
	}
	if raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(first); err != nil || len(raw) < 20 {
		t.Fatalf("secret decodes to %d bytes (%v), want ≥ 20", len(raw), err)
	}

	t.Run("a wrong code keeps the pending secret", func(t *testing.T) {
		resp := c.post("/account/mfa", url.Values{"code": {"000000"}})
		wantStatus(t, resp, http.StatusUnprocessableEntity)
		b := body(t, resp)
		if secretRe.FindStringSubmatch(b)[1] != first || !strings.Contains(b, `role="alert"`) {
			t.Fatal("a wrong code lost the secret or said nothing")
		}
		if u, _ := a.db.UserByUsername(context.Background(), "alice"); u.HasMFA() {
			t.Fatal("MFA active after a wrong code")
		}
	})

	secret, codes := c.enroll(t)
	if secret != first {
		t.Fatal("enrollment confirmed a different secret than the one shown")
	}
	t.Run("recovery codes are shown once", func(t *testing.T) {
		if b := body(t, c.get("/account/mfa")); recoveryRe.MatchString(b) {
			t.Fatal("codes shown a second time")
		}
	})
	t.Run("after confirmation the secret is not shown again", func(t *testing.T) {
		b := body(t, c.get("/account/mfa"))
		if strings.Contains(b, secret) || qrRe.MatchString(b) {
			t.Fatal("an active secret is still displayed")
		}
	})
	t.Run("the confirming code cannot sign in", func(t *testing.T) {
		s := a.client()
		wantStatus(t, s.loginMFA("alice", "correct horse battery", auth.TOTPCode(secret, a.clock())), http.StatusUnauthorized)
	})
	t.Run("the password step alone reaches only the second step and sign-out", func(t *testing.T) {
		s := a.client()
		s.login("alice", "correct horse battery")
		for _, path := range []string{"/", "/account", "/account/sessions", "/account/mfa", "/account/password"} {
			wantRedirect(t, s.get(path), "/login/mfa")
		}
		before := a.countRows("sessions")
		s.get("/login/mfa")
		token := s.csrf()
		for _, path := range []string{"/account/password", "/account/mfa/recovery-codes", "/account/sessions/revoke-others",
			"/account/mfa/disable", "/account/mfa"} {
			resp := s.post(path, url.Values{"_csrf": {token}, "current_password": {"correct horse battery"},
				"new_password": {"another long passphrase"}, "password": {"correct horse battery"}})
			wantRedirect(t, resp, "/login/mfa")
		}
		if after := a.countRows("sessions"); after != before {
			t.Fatal("a partial session changed sessions")
		}
		if left, _ := a.db.UnusedRecoveryCodes(context.Background(), 1); len(left) != recoveryCodeCount {
			t.Fatal("a partial session changed recovery codes")
		}
		wantRedirect(t, s.post("/logout", url.Values{"_csrf": {token}}), "/login")
	})
	t.Run("the token rotates at the second step", func(t *testing.T) {
		a.advance(30 * time.Second)
		s := a.client()
		s.login("alice", "correct horse battery")
		partial := s.cookie("gatehouse_session")
		s.get("/login/mfa")
		resp := s.post("/login/mfa", url.Values{"code": {auth.TOTPCode(secret, a.clock())}})
		wantRedirect(t, resp, "/")
		full := s.cookie("gatehouse_session")
		if full == partial || full == "" {
			t.Fatal("the second step kept the partial token")
		}
		replay := a.client()
		replay.jar.SetCookies(baseURL, []*http.Cookie{{Name: "gatehouse_session", Value: partial}})
		wantRedirect(t, replay.get("/"), "/login")
		wantStatus(t, s.get("/"), http.StatusOK)
	})
	t.Run("a recovery code works once", func(t *testing.T) {
		s := a.client()
		wantRedirect(t, s.loginMFA("alice", "correct horse battery", strings.ToUpper(codes[0])), "/")
		s2 := a.client()
		wantStatus(t, s2.loginMFA("alice", "correct horse battery", codes[0]), http.StatusUnauthorized)
		if left, _ := a.db.UnusedRecoveryCodes(context.Background(), 1); len(left) != recoveryCodeCount-1 {
			t.Fatalf("%d codes left", len(left))
		}
	})
	t.Run("new recovery codes kill the old set", func(t *testing.T) {
		c.get("/account/mfa")
		wantRedirect(t, c.post("/account/mfa/recovery-codes", url.Values{"password": {"correct horse battery"}}), "/account/mfa")
		fresh := recoveryRe.FindAllStringSubmatch(body(t, c.get("/account/mfa")), -1)
		if len(fresh) != recoveryCodeCount {
			t.Fatalf("%d new codes shown", len(fresh))
		}
		s := a.client()
		wantStatus(t, s.loginMFA("alice", "correct horse battery", codes[1]), http.StatusUnauthorized)
		s2 := a.client()
		wantRedirect(t, s2.loginMFA("alice", "correct horse battery", html.UnescapeString(fresh[0][1])), "/")
	})
	t.Run("nothing secret is stored in the clear", func(t *testing.T) {
		assertNotStored(t, a, append([]string{secret}, codes...))
	})
}

// assertNotStored searches every text and blob column of every table for the values.
func assertNotStored(t *testing.T, a *testApp, values []string) {
	t.Helper()
	raw := a.rawDB()
	names, err := a.db.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range names {
		rows, err := raw.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			_ = rows.Scan(ptrs...)
			for _, v := range vals {
				s := strings.ToLower(fmt.Sprint(v))
				if b, ok := v.([]byte); ok {
					s = strings.ToLower(string(b))
				}
				for _, secret := range values {
					if strings.Contains(s, strings.ToLower(auth.NormalizeRecoveryCode(secret))) && auth.NormalizeRecoveryCode(secret) != "" ||
						strings.Contains(s, strings.ToLower(secret)) {
						t.Fatalf("table %s holds %q in the clear", table, secret)
					}
				}
			}
		}
		rows.Close()
	}
}

func TestTOTPWindowAndReplay(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	secret, _ := c.enroll(t)
	a.advance(10 * time.Minute)
	now := a.clock()
	at := func(steps int) string { return auth.TOTPCode(secret, now.Add(time.Duration(steps)*30*time.Second)) }

	for _, tc := range []struct {
		name string
		code string
		want int
	}{
		{"two steps back is refused", at(-2), http.StatusUnauthorized},
		{"two steps ahead is refused", at(2), http.StatusUnauthorized},
		{"one step back is accepted", at(-1), http.StatusSeeOther},
		{"the current step is accepted", at(0), http.StatusSeeOther},
		{"the current code again is a replay", at(0), http.StatusUnauthorized},
		{"an older unused step after a newer one is refused", at(-1), http.StatusUnauthorized},
		{"one step ahead is accepted", at(1), http.StatusSeeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := a.client().loginMFA("alice", "correct horse battery", tc.code)
			wantStatus(t, resp, tc.want)
		})
	}
	t.Run("a replay is audited", func(t *testing.T) {
		evs, err := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "mfa.replay_refused"})
		if err != nil || len(evs) == 0 {
			t.Fatalf("no replay audit row: %v", err)
		}
	})
	t.Run("two racing requests with one code: exactly one wins", func(t *testing.T) {
		a.advance(5 * time.Minute)
		code := auth.TOTPCode(secret, a.clock())
		clients := []*client{a.client(), a.client()}
		for _, s := range clients {
			wantRedirect(t, s.login("alice", "correct horse battery"), "/login/mfa")
			s.get("/login/mfa")
		}
		var wg sync.WaitGroup
		results := make([]int, len(clients))
		for i, s := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = s.post("/login/mfa", url.Values{"code": {code}}).StatusCode
			}()
		}
		wg.Wait()
		won := 0
		for _, r := range results {
			if r == http.StatusSeeOther {
				won++
			}
		}
		if won != 1 {
			t.Fatalf("results %v: %d requests accepted the same code", results, won)
		}
	})
}

func TestSecondStepFailuresShareTheAccountThrottle(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	secret, codes := c.enroll(t)
	a.advance(time.Minute)
	wrong := 0
	for round := 0; wrong < lockAfter && round < 5; round++ {
		s := a.client() // a fresh sign-in each round
		wantRedirect(t, s.login("alice", "correct horse battery"), "/login/mfa")
		s.get("/login/mfa")
		for i := 0; i < 4 && wrong < lockAfter; i++ {
			wantStatus(t, s.post("/login/mfa", url.Values{"code": {"123456"}}), http.StatusUnauthorized)
			wrong++
		}
	}
	// Locked now: neither the right password nor a right code nor a recovery code gets in.
	s := a.client()
	s.get("/login")
	wantStatus(t, s.post("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"}}), http.StatusTooManyRequests)
	t.Run("a partial session started before the lock cannot finish either", func(t *testing.T) {
		a.advance(time.Hour)
		if _, err := a.db.ClearThrottle(context.Background(), "alice", db.Event{}); err != nil {
			t.Fatal(err)
		}
		p := a.client()
		wantRedirect(t, p.login("alice", "correct horse battery"), "/login/mfa")
		p.get("/login/mfa")
		for i := 0; i < lockAfter; i++ {
			p.post("/login/mfa", url.Values{"code": {"654321"}})
		}
		wantStatus(t, p.post("/login/mfa", url.Values{"code": {auth.TOTPCode(secret, a.clock())}}), http.StatusTooManyRequests)
		wantStatus(t, p.post("/login/mfa", url.Values{"code": {codes[0]}}), http.StatusTooManyRequests)
	})
}

func TestEnrollmentNeverCrossesUsers(t *testing.T) {
	a := newTestApp(t)
	const n = 20
	clients := make([]*client, n)
	for i := range clients {
		a.createUser(fmt.Sprintf("user%02d", i), db.RoleStaff, "correct horse battery")
		clients[i] = a.client()
		clients[i].login(fmt.Sprintf("user%02d", i), "correct horse battery")
	}
	secrets := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := c.get("/account/mfa")
			m := secretRe.FindStringSubmatch(body(t, resp))
			if m == nil {
				errs <- "no secret shown"
				return
			}
			secrets[i] = m[1]
			resp = c.post("/account/mfa", url.Values{"code": {auth.TOTPCode(m[1], a.clock())}})
			if resp.StatusCode != http.StatusSeeOther {
				errs <- fmt.Sprintf("user%02d: confirm status %d", i, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	seen := map[string]bool{}
	for _, s := range secrets {
		if seen[s] {
			t.Fatal("two users were given the same secret")
		}
		seen[s] = true
	}
	a.advance(time.Minute)
	for i := range clients {
		name := fmt.Sprintf("user%02d", i)
		other := secrets[(i+1)%n]
		wantStatus(t, a.client().loginMFA(name, "correct horse battery", auth.TOTPCode(other, a.clock())), http.StatusUnauthorized)
		wantRedirect(t, a.client().loginMFA(name, "correct horse battery", auth.TOTPCode(secrets[i], a.clock())), "/")
	}
}

func TestChangingAnActiveFactorAsksForThePassword(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	oldSecret, _ := c.enroll(t)

	c.get("/account/mfa")
	wantStatus(t, c.post("/account/mfa/disable", url.Values{"password": {"wrong horse battery"}}), http.StatusUnprocessableEntity)
	wantStatus(t, c.post("/account/mfa/replace", url.Values{"password": {""}}), http.StatusUnprocessableEntity)
	if u, _ := a.db.UserByUsername(context.Background(), "alice"); !u.HasMFA() {
		t.Fatal("a refused change turned MFA off")
	}

	t.Run("replacing keeps the old factor until the new one is confirmed", func(t *testing.T) {
		c.get("/account/mfa")
		wantRedirect(t, c.post("/account/mfa/replace", url.Values{"password": {"correct horse battery"}}), "/account/mfa")
		b := body(t, c.get("/account/mfa"))
		newSecret := secretRe.FindStringSubmatch(b)[1]
		if newSecret == oldSecret {
			t.Fatal("the replacement reused the old secret")
		}
		a.advance(time.Minute)
		wantRedirect(t, a.client().loginMFA("alice", "correct horse battery", auth.TOTPCode(oldSecret, a.clock())), "/")
		a.advance(time.Minute)
		wantRedirect(t, c.post("/account/mfa", url.Values{"code": {auth.TOTPCode(newSecret, a.clock())}}), "/account/mfa")
		a.advance(time.Minute)
		wantStatus(t, a.client().loginMFA("alice", "correct horse battery", auth.TOTPCode(oldSecret, a.clock())), http.StatusUnauthorized)
		wantRedirect(t, a.client().loginMFA("alice", "correct horse battery", auth.TOTPCode(newSecret, a.clock())), "/")
	})
	t.Run("turning it off with the password", func(t *testing.T) {
		c.get("/account/mfa")
		wantRedirect(t, c.post("/account/mfa/disable", url.Values{"password": {"correct horse battery"}}), "/account")
		a.client().login("alice", "correct horse battery")
		if resp := a.client().login("alice", "correct horse battery"); resp.Header.Get("Location") != "/" {
			t.Fatalf("sign-in still asks for a second step: %s", resp.Header.Get("Location"))
		}
	})
}

func TestResetMFAEndsSessionsAndReenrolls(t *testing.T) {
	a := newTestApp(t)
	alice := a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	c.enroll(t)
	if _, err := a.db.ResetMFA(context.Background(), alice.ID, db.Event{At: a.clock(), Kind: "mfa.reset"}); err != nil {
		t.Fatal(err)
	}
	wantRedirect(t, c.get("/"), "/login")
	s := a.client()
	if loc := s.login("alice", "correct horse battery").Header.Get("Location"); loc != "/account/mfa" {
		t.Fatalf("after a reset, sign-in goes to %q, want enrollment", loc)
	}
	resp, hops := follow(s, "/notices", 5)
	if hops != 1 || resp.StatusCode != http.StatusOK || !strings.Contains(s.lastBody, `id="mfa-secret"`) {
		t.Fatal("a reset user reached another page before enrolling again")
	}
	s.enroll(t)
	wantStatus(t, s.get("/"), http.StatusOK)
	t.Run("turning it off yourself does not force re-enrollment", func(t *testing.T) {
		s.get("/account/mfa")
		wantRedirect(t, s.post("/account/mfa/disable", url.Values{"password": {"correct horse battery"}}), "/account")
		if loc := a.client().login("alice", "correct horse battery").Header.Get("Location"); loc != "/" {
			t.Fatalf("after turning it off, sign-in goes to %q", loc)
		}
	})
}

// A stolen session of a user who signs in with passkeys cannot bind an authenticator app of
// its own: a visit starts nothing, and a new key, like a key confirmed, takes the password.
func TestAddingAnAppBesidePasskeysTakesThePassword(t *testing.T) {
	a := newTestApp(t)
	alice := a.createUser("alice", db.RoleStaff, "correct horse battery")
	owner := a.client()
	owner.login("alice", "correct horse battery")
	key := newKey()
	owner.mustRegisterPasskey(t, key, "Laptop", "")
	thief := a.client()
	wantSignedInTo(t, thief.passkeyLogin(t, key), "/")
	ctx := context.Background()
	_, codesBefore, _ := a.db.AccountCounts(ctx, alice.ID)

	b := body(t, thief.get("/account/mfa"))
	if secretRe.MatchString(b) || !strings.Contains(b, `id="add-app-password"`) {
		t.Fatalf("a visit started an enrollment or offered no password form:\n%s", b)
	}
	wantStatus(t, thief.post("/account/mfa", url.Values{"code": {"123456"}}), http.StatusConflict)
	wantStatus(t, thief.post("/account/mfa/restart", nil), http.StatusUnprocessableEntity)
	wantStatus(t, thief.post("/account/mfa/restart", url.Values{"password": {"wrong horse battery"}}), http.StatusUnprocessableEntity)
	thief.get("/account/mfa")
	if b := body(t, thief.get("/account/mfa")); secretRe.MatchString(b) {
		t.Fatal("a refused restart left a key to confirm")
	}
	if u, _ := a.db.UserByUsername(ctx, "alice"); u.HasTOTP {
		t.Fatal("an app was bound without the password")
	}
	if _, left, _ := a.db.AccountCounts(ctx, alice.ID); left != codesBefore {
		t.Fatalf("recovery codes changed: %d, were %d", left, codesBefore)
	}
	wantStatus(t, owner.get("/"), http.StatusOK)

	t.Run("with the password the app is added", func(t *testing.T) {
		owner.get("/account/mfa")
		wantRedirect(t, owner.post("/account/mfa/restart", url.Values{"password": {"correct horse battery"}}), "/account/mfa")
		m := secretRe.FindStringSubmatch(body(t, owner.get("/account/mfa")))
		if m == nil {
			t.Fatal("no key shown after the password")
		}
		wantRedirect(t, owner.post("/account/mfa", url.Values{"code": {auth.TOTPCode(m[1], a.clock())}}), "/account/mfa")
		if u, _ := a.db.UserByUsername(ctx, "alice"); !u.HasTOTP || u.Passkeys != 1 {
			t.Fatalf("app %v, passkeys %d", u.HasTOTP, u.Passkeys)
		}
		wantRedirect(t, thief.get("/"), "/login")
	})
}

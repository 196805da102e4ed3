package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/internal/softauthn"
)

// newKey is a software authenticator for the test portal's origin.
func newKey() *softauthn.Authenticator { return softauthn.New(testBase) }

// tokenOf loads path and returns the CSRF token its page carries, as the script reads it.
func (c *client) tokenOf(tb testing.TB, path string) string {
	tb.Helper()
	resp := c.get(path)
	wantStatus(tb, resp, http.StatusOK)
	m := csrfField.FindStringSubmatch(c.lastBody)
	if m == nil {
		tb.Fatalf("%s has no CSRF token", path)
	}
	return m[1]
}

// postJSON posts v as the passkey script does: JSON, with the page's token in a header.
func (c *client) postJSON(path, token string, v any) *http.Response {
	b, err := json.Marshal(v)
	if err != nil {
		c.app.tb.Fatal(err)
	}
	return c.postBody(path, token, "application/json", b)
}

func (c *client) postBody(path, token, contentType string, body []byte) *http.Response {
	req := httptest.NewRequest(http.MethodPost, testBase+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-CSRF-Token", token)
	req.RemoteAddr = c.addr
	if c.fetchSite != "" {
		req.Header.Set("Sec-Fetch-Site", c.fetchSite)
		req.Header.Set("Origin", testBase)
	}
	return c.do(req)
}

// jsonAnswer decodes a JSON response, failing the test on anything else.
func jsonAnswer(tb testing.TB, resp *http.Response) map[string]string {
	tb.Helper()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Fatalf("status %d answered %q, not JSON: %.500s", resp.StatusCode, ct, body(tb, resp))
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(body(tb, resp)), &m); err != nil {
		tb.Fatalf("answer %.500s: %v", body(tb, resp), err)
	}
	return m
}

// refused asserts a JSON refusal with status and words for the page's alert.
func refused(tb testing.TB, resp *http.Response, status int) map[string]string {
	tb.Helper()
	if resp.StatusCode != status {
		tb.Fatalf("status %d, want %d: %.500s", resp.StatusCode, status, body(tb, resp))
	}
	m := jsonAnswer(tb, resp)
	if m["error"] == "" || m["request_id"] != resp.Header.Get("X-Request-ID") {
		tb.Fatalf("refusal %v does not say why or name its request", m)
	}
	return m
}

// passkeyOptions begins a ceremony at path and returns its options.
func (c *client) passkeyOptions(tb testing.TB, path, token string, fields map[string]string) []byte {
	tb.Helper()
	if fields == nil {
		fields = map[string]string{}
	}
	resp := c.postJSON(path, token, fields)
	wantStatus(tb, resp, http.StatusOK)
	return []byte(body(tb, resp))
}

// registerPasskey adds a passkey named name from the passkeys page, as the script would,
// and returns the final answer.
func (c *client) registerPasskey(tb testing.TB, key *softauthn.Authenticator, name, password string) *http.Response {
	tb.Helper()
	token := c.tokenOf(tb, passkeysPage)
	opts := c.passkeyOptions(tb, "/account/passkeys/options", token, map[string]string{"passkey_name": name, "password": password})
	_, answer, err := key.Register(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return c.postJSON("/account/passkeys", token, map[string]any{"credential": json.RawMessage(answer), "passkey_name": name})
}

// mustRegisterPasskey is registerPasskey that must succeed.
func (c *client) mustRegisterPasskey(tb testing.TB, key *softauthn.Authenticator, name, password string) {
	tb.Helper()
	resp := c.registerPasskey(tb, key, name, password)
	wantStatus(tb, resp, http.StatusOK)
	if got := jsonAnswer(tb, resp)["redirect"]; !strings.HasPrefix(got, passkeysPage) {
		tb.Fatalf("after registering the script is sent to %q", got)
	}
}

// passkeyLogin signs in from /login with key alone; it returns the final answer.
func (c *client) passkeyLogin(tb testing.TB, key *softauthn.Authenticator) *http.Response {
	tb.Helper()
	token := c.tokenOf(tb, "/login")
	answer, err := key.SignIn(c.passkeyOptions(tb, "/login/passkey/options", token, nil))
	if err != nil {
		tb.Fatal(err)
	}
	return c.postJSON("/login/passkey", token, map[string]any{"credential": json.RawMessage(answer)})
}

// passkeySecondStep answers the second step with key after the password step.
func (c *client) passkeySecondStep(tb testing.TB, key *softauthn.Authenticator) *http.Response {
	tb.Helper()
	token := c.tokenOf(tb, "/login/mfa")
	answer, err := key.SignIn(c.passkeyOptions(tb, "/login/mfa/passkey/options", token, nil))
	if err != nil {
		tb.Fatal(err)
	}
	return c.postJSON("/login/mfa/passkey", token, map[string]any{"credential": json.RawMessage(answer)})
}

func wantSignedInTo(tb testing.TB, resp *http.Response, target string) {
	tb.Helper()
	wantStatus(tb, resp, http.StatusOK)
	if got := jsonAnswer(tb, resp)["redirect"]; got != target {
		tb.Fatalf("signed in and sent to %q, want %q", got, target)
	}
}

var passkeyRowRe = regexp.MustCompile(`<tr data-passkey-id="(\d+)">`)

func auditRows(tb testing.TB, a *testApp, kind, outcome string) []db.Event {
	tb.Helper()
	evs, err := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: kind, Outcome: outcome})
	if err != nil {
		tb.Fatal(err)
	}
	return evs
}

func TestPasskeyRegistrationAndBothWaysToSignIn(t *testing.T) {
	a := newTestApp(t)
	alice := a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	key := newKey()

	page := body(t, c.get(passkeysPage))
	for _, want := range []string{`name="passkey_name"`, `id="passkey-add"`, `src="/static/js/passkeys.js"`} {
		if !strings.Contains(page, want) {
			t.Fatalf("the passkeys page lacks %s", want)
		}
	}
	c.mustRegisterPasskey(t, key, "Work laptop", "")

	var codes []string
	t.Run("the first passkey issues ten recovery codes, shown once", func(t *testing.T) {
		b := body(t, c.get(passkeysPage+"?msg=passkey-added"))
		for _, m := range recoveryRe.FindAllStringSubmatch(b, -1) {
			codes = append(codes, html.UnescapeString(m[1]))
		}
		if len(codes) != recoveryCodeCount {
			t.Fatalf("%d recovery codes shown: %.3000s", len(codes), b)
		}
		if n := len(recoveryRe.FindAllString(body(t, c.get(passkeysPage)), -1)); n != 0 {
			t.Fatalf("the codes were shown again (%d)", n)
		}
		rows := passkeyRowRe.FindAllStringSubmatch(b, -1)
		if len(rows) != 1 || !strings.Contains(b, "Work laptop") || !strings.Contains(b, "never") {
			t.Fatalf("the list: %.3000s", b)
		}
		u, _ := a.db.UserByID(context.Background(), alice.ID)
		if !u.HasMFA() || u.HasTOTP || u.Passkeys != 1 {
			t.Fatalf("alice = %+v", u)
		}
		if len(auditRows(t, a, "passkey.added", db.Success)) != 1 {
			t.Fatal("no passkey.added audit row")
		}
	})
	t.Run("a password-less sign-in gives a full session under a new token and lands on /", func(t *testing.T) {
		before := c.cookie(sessionCookieBase)
		s := a.client()
		wantSignedInTo(t, s.passkeyLogin(t, key), "/")
		after := s.cookie(sessionCookieBase)
		if after == "" || after == before {
			t.Fatal("no new session token")
		}
		b := body(t, s.get("/"))
		if !strings.Contains(b, "Welcome") || !strings.Contains(b, "1 passkey") {
			t.Fatalf("dashboard: %.2000s", b)
		}
		evs := auditRows(t, a, "signin.passkey", db.Success)
		if len(evs) != 1 || evs[0].Subject != "alice" || evs[0].ActorID != alice.ID {
			t.Fatalf("audit %+v", evs)
		}
		if out := a.scrape(t); !strings.Contains(out, `gatehouse_signins_total{outcome="success",step="passkey"} 1`) {
			t.Fatalf("metrics:\n%s", grep(out, "signins"))
		}
		if b := body(t, s.get(passkeysPage)); strings.Count(b, ">never<") != 0 {
			t.Fatalf("the last use is not shown: %.2000s", b)
		}
	})
	t.Run("after the password, the passkey is the second step", func(t *testing.T) {
		s := a.client()
		wantRedirect(t, s.login("alice", "correct horse battery"), "/login/mfa")
		partial := s.cookie(sessionCookieBase)
		b := body(t, s.get("/login/mfa"))
		if !strings.Contains(b, `id="passkey-signin"`) || !strings.Contains(b, `name="code"`) {
			t.Fatalf("the second step offers no passkey beside the code field: %.2000s", b)
		}
		wantSignedInTo(t, s.passkeySecondStep(t, key), "/")
		if s.cookie(sessionCookieBase) == partial {
			t.Fatal("the partial session's token was kept")
		}
		wantStatus(t, s.get("/"), http.StatusOK)
		evs := auditRows(t, a, "signin.passkey", db.Success)
		if len(evs) != 2 || !strings.Contains(evs[0].Detail, "second step") {
			t.Fatalf("audit %+v", evs)
		}
	})
	t.Run("a recovery code completes the second step of a passkey-only account", func(t *testing.T) {
		wantRedirect(t, a.client().loginMFA("alice", "correct horse battery", codes[0]), "/")
	})
	t.Run("the second step of a passkey keeps its next, and a forced password change comes first", func(t *testing.T) {
		s := a.client()
		s.get("/login?next=/notices")
		resp := s.post("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"}, "next": {"/notices"}})
		wantRedirect(t, resp, "/login/mfa?next=%2Fnotices")
		token := s.tokenOf(t, "/login/mfa?next=/notices")
		answer, _ := key.SignIn(s.passkeyOptions(t, "/login/mfa/passkey/options", token, nil))
		wantSignedInTo(t, s.postJSON("/login/mfa/passkey", token, map[string]any{"credential": json.RawMessage(answer),
			"next": "/notices"}), "/notices")

		hash := a.hashOf(t, "temporary password 1")
		if err := a.db.SetPassword(context.Background(), alice.ID, hash, true, -1, db.Event{At: a.clock()}); err != nil {
			t.Fatal(err)
		}
		wantSignedInTo(t, a.client().passkeyLogin(t, key), "/account/password")
	})
}

func (a *testApp) hashOf(tb testing.TB, password string) string {
	tb.Helper()
	h, err := a.hasher.Hash(context.Background(), password)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// A sign-in answer is good once: sending it again, or an answer to a challenge another
// browser asked for, or one past five minutes, signs nobody in, and each refusal is a 4xx
// with words and an audit row.
func TestPasskeyChallengesAreSingleUseBoundAndShortLived(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	key := newKey()
	c.mustRegisterPasskey(t, key, "Key", "")

	t.Run("a replayed assertion", func(t *testing.T) {
		s := a.client()
		token := s.tokenOf(t, "/login")
		answer, _ := key.SignIn(s.passkeyOptions(t, "/login/passkey/options", token, nil))
		cookies := s.jar.Cookies(s.jarURL("/"))
		body := map[string]any{"credential": json.RawMessage(answer)}
		wantSignedInTo(t, s.postJSON("/login/passkey", token, body), "/")
		// The attacker replays the very request, cookie and all.
		r := a.client()
		r.jar.SetCookies(r.jarURL("/"), cookies)
		before := a.countRows("sessions")
		refused(t, r.postJSON("/login/passkey", token, body), http.StatusBadRequest)
		if a.countRows("sessions") != before || r.cookie(sessionCookieBase) != "" {
			t.Fatal("a replayed answer made a session")
		}
		if evs := auditRows(t, a, "signin.passkey", db.Failure); len(evs) != 1 || !strings.Contains(evs[0].Detail, "replayed") {
			t.Fatalf("audit %+v", evs)
		}
	})
	t.Run("racing replays: exactly one wins", func(t *testing.T) {
		s := a.client()
		token := s.tokenOf(t, "/login")
		answer, _ := key.SignIn(s.passkeyOptions(t, "/login/passkey/options", token, nil))
		raw, _ := json.Marshal(map[string]any{"credential": json.RawMessage(answer)})
		cookies := s.jar.Cookies(s.jarURL("/"))
		const n = 8
		statuses := make(chan int, n)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := httptest.NewRequest(http.MethodPost, testBase+"/login/passkey", bytes.NewReader(raw))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-CSRF-Token", token)
				req.Header.Set("Sec-Fetch-Site", "same-origin")
				req.RemoteAddr = s.addr
				for _, ck := range cookies {
					req.AddCookie(ck)
				}
				statuses <- a.serve(req).StatusCode
			}()
		}
		wg.Wait()
		close(statuses)
		ok := 0
		for st := range statuses {
			switch st {
			case http.StatusOK:
				ok++
			case http.StatusBadRequest:
			default:
				t.Errorf("a racing replay answered %d", st)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of %d racing answers signed in, want exactly 1", ok, n)
		}
	})
	t.Run("a challenge another browser asked for", func(t *testing.T) {
		victim, attacker := a.client(), a.client()
		token := victim.tokenOf(t, "/login")
		answer, _ := key.SignIn(victim.passkeyOptions(t, "/login/passkey/options", token, nil))
		attackerToken := attacker.tokenOf(t, "/login")
		attacker.passkeyOptions(t, "/login/passkey/options", attackerToken, nil) // a cookie of its own
		refused(t, attacker.postJSON("/login/passkey", attackerToken, map[string]any{"credential": json.RawMessage(answer)}),
			http.StatusBadRequest)
		if attacker.cookie(sessionCookieBase) != "" {
			t.Fatal("the answer signed another browser in")
		}
	})
	t.Run("a second step begun in another session", func(t *testing.T) {
		one, two := a.client(), a.client()
		one.login("alice", "correct horse battery")
		two.login("alice", "correct horse battery")
		token := one.tokenOf(t, "/login/mfa")
		answer, _ := key.SignIn(one.passkeyOptions(t, "/login/mfa/passkey/options", token, nil))
		refused(t, two.postJSON("/login/mfa/passkey", two.tokenOf(t, "/login/mfa"), map[string]any{"credential": json.RawMessage(answer)}),
			http.StatusBadRequest)
		wantStatus(t, two.get("/"), http.StatusSeeOther) // still partial
	})
	t.Run("an expired challenge", func(t *testing.T) {
		s := a.client()
		token := s.tokenOf(t, "/login")
		answer, _ := key.SignIn(s.passkeyOptions(t, "/login/passkey/options", token, nil))
		a.advance(auth.PasskeyChallengeTTL + time.Second)
		m := refused(t, s.postJSON("/login/passkey", token, map[string]any{"credential": json.RawMessage(answer)}), http.StatusBadRequest)
		if !strings.Contains(m["error"], "expired") {
			t.Fatalf("refusal %v", m)
		}
		if evs := auditRows(t, a, "signin.passkey", db.Failure); !strings.Contains(evs[0].Detail, "expired") {
			t.Fatalf("audit %+v", evs[0])
		}
	})
	t.Run("the browser's cookie is short-lived, strict and HttpOnly", func(t *testing.T) {
		s := a.client()
		resp := s.postJSON("/login/passkey/options", s.tokenOf(t, "/login"), map[string]string{})
		var ck *http.Cookie
		for _, x := range resp.Cookies() {
			if x.Name == passkeyCookieBase {
				ck = x
			}
		}
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.MaxAge != 300 || ck.Path != "/" {
			t.Fatalf("cookie %+v", ck)
		}
	})
}

// One user's authenticator never signs in as, or registers to, another user.
func TestPasskeysNeverCrossAccounts(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	bob := a.createUser("bob", db.RoleStaff, "correct horse battery")
	aliceKey, bobKey := newKey(), newKey()
	ca, cb := a.client(), a.client()
	ca.login("alice", "correct horse battery")
	cb.login("bob", "correct horse battery")
	ca.mustRegisterPasskey(t, aliceKey, "Alice's", "")
	cb.mustRegisterPasskey(t, bobKey, "Bob's", "")

	t.Run("the password-less sign-in signs in the key's owner", func(t *testing.T) {
		s := a.client()
		wantSignedInTo(t, s.passkeyLogin(t, bobKey), "/")
		if b := body(t, s.get("/")); !strings.Contains(b, "Welcome, bob") {
			t.Fatalf("bob's key signed in someone else: %.1000s", b)
		}
	})
	t.Run("at bob's second step, alice's key is refused", func(t *testing.T) {
		s := a.client()
		s.login("bob", "correct horse battery")
		token := s.tokenOf(t, "/login/mfa")
		opts := s.passkeyOptions(t, "/login/mfa/passkey/options", token, nil)
		answer := aliceKey.Assert(aliceKey.Credentials[0], softauthn.Challenge(opts))
		refused(t, s.postJSON("/login/mfa/passkey", token, map[string]any{"credential": json.RawMessage(answer)}), http.StatusUnauthorized)
		wantStatus(t, s.get("/"), http.StatusSeeOther)
	})
	t.Run("a key whose user handle names another account is refused", func(t *testing.T) {
		forged := newKey()
		forged.Credentials = []*softauthn.Credential{{ID: aliceKey.Credentials[0].ID, Key: aliceKey.Credentials[0].Key,
			RPID: "localhost", UserHandle: bobKey.Credentials[0].UserHandle, SignCount: 100}}
		refused(t, a.client().passkeyLogin(t, forged), http.StatusUnauthorized)
	})
	t.Run("an unknown credential is refused", func(t *testing.T) {
		// A key registered nowhere answers with a credential of its own.
		stranger := newKey()
		cred, _, _ := stranger.Register([]byte(`{"publicKey":{"challenge":"AAAA","rp":{"id":"localhost"},"user":{"id":"AAAA"}}}`))
		s := a.client()
		token := s.tokenOf(t, "/login")
		o := s.passkeyOptions(t, "/login/passkey/options", token, nil)
		answer := stranger.Assert(cred, softauthn.Challenge(o))
		refused(t, s.postJSON("/login/passkey", token, map[string]any{"credential": json.RawMessage(answer)}), http.StatusUnauthorized)
		if evs := auditRows(t, a, "signin.passkey", db.Failure); len(evs) == 0 || evs[0].Detail != "unknown credential" {
			t.Fatalf("audit %+v", evs)
		}
	})
	t.Run("a credential already registered is refused for anyone", func(t *testing.T) {
		// Bob's browser presents alice's credential as a new one.
		token := cb.tokenOf(t, passkeysPage)
		opts := cb.passkeyOptions(t, "/account/passkeys/options", token, map[string]string{"passkey_name": "Stolen", "password": "correct horse battery"})
		var o struct {
			PublicKey struct {
				Challenge string `json:"challenge"`
			} `json:"publicKey"`
		}
		_ = json.Unmarshal(opts, &o)
		cred := *aliceKey.Credentials[0]
		cred.UserHandle = bobKey.Credentials[0].UserHandle
		answer, err := aliceKey.RegistrationAnswer(&cred, o.PublicKey.Challenge)
		if err != nil {
			t.Fatal(err)
		}
		refused(t, cb.postJSON("/account/passkeys", token, map[string]any{"credential": json.RawMessage(answer),
			"passkey_name": "Stolen"}), http.StatusConflict)
		keys, _ := a.db.PasskeysOf(context.Background(), bob.ID)
		if len(keys) != 1 {
			t.Fatalf("bob has %d passkeys", len(keys))
		}
		if evs := auditRows(t, a, "passkey.added", db.Failure); len(evs) != 1 || evs[0].Subject != "bob" {
			t.Fatalf("audit %+v", evs)
		}
	})
	t.Run("nobody renames or removes another user's passkey", func(t *testing.T) {
		aliceKeys, _ := a.db.PasskeysOf(context.Background(), 1)
		id := itoa64(aliceKeys[0].ID)
		cb.get(passkeysPage)
		wantStatus(t, cb.post(passkeysPage+"/"+id+"/rename", url.Values{"passkey_name": {"Mine"}}), http.StatusNotFound)
		cb.get(passkeysPage)
		wantStatus(t, cb.post(passkeysPage+"/"+id+"/remove", url.Values{"password": {"correct horse battery"}}), http.StatusNotFound)
		if after, _ := a.db.PasskeysOf(context.Background(), 1); len(after) != 1 || after[0].Name != "Alice's" {
			t.Fatalf("alice's passkeys %+v", after)
		}
	})
	t.Run("a disabled account's passkey signs nobody in", func(t *testing.T) {
		if _, err := a.db.SetDisabled(context.Background(), bob.ID, true, db.Event{At: a.clock()}); err != nil {
			t.Fatal(err)
		}
		refused(t, a.client().passkeyLogin(t, bobKey), http.StatusUnauthorized)
		if evs := auditRows(t, a, "signin.passkey", db.Failure); evs[0].Detail != "account disabled" || evs[0].Subject != "bob" {
			t.Fatalf("audit %+v", evs[0])
		}
	})
}

func TestPasskeyCounterRegressionIsACloneWarning(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	c := a.client()
	c.login("root", "correct horse battery")
	key := newKey()
	c.mustRegisterPasskey(t, key, "Key", "")
	wantSignedInTo(t, a.client().passkeyLogin(t, key), "/")
	wantSignedInTo(t, a.client().passkeyLogin(t, key), "/")

	clone := newKey()
	copied := *key.Credentials[0]
	copied.SignCount = 0 // the copy counts from where it was taken
	clone.Credentials = []*softauthn.Credential{&copied}
	s := a.client()
	m := refused(t, s.passkeyLogin(t, clone), http.StatusUnauthorized)
	if !strings.Contains(m["error"], "copy") || s.cookie(sessionCookieBase) != "" {
		t.Fatalf("refusal %v", m)
	}
	if evs := auditRows(t, a, "passkey.clone_warning", db.Failure); len(evs) != 1 || evs[0].Subject != "root" {
		t.Fatalf("audit %+v", evs)
	}
	stored, _ := a.db.PasskeyByCredentialID(context.Background(), copied.ID)
	if stored.Credential.SignCount != 2 {
		t.Fatalf("the counter moved to %d", stored.Credential.SignCount)
	}
	t.Run("the health panel shows it", func(t *testing.T) {
		admin := a.client()
		wantSignedInTo(t, admin.passkeyLogin(t, key), "/")
		b := body(t, admin.get("/admin"))
		if !regexp.MustCompile(`Passkey clone warnings</th>\s*<td>1</td>`).MatchString(b) {
			t.Fatalf("health panel: %.4000s", b)
		}
	})
	t.Run("a key that never counts is fine", func(t *testing.T) {
		quiet := newKey()
		quiet.Counts = false
		c.mustRegisterPasskey(t, quiet, "Phone", "correct horse battery")
		for range 3 {
			wantSignedInTo(t, a.client().passkeyLogin(t, quiet), "/")
		}
	})
}

// Bad input to the passkey endpoints is a 4xx with JSON words and an audit row, never a
// 500, and stores nothing.
func TestBadPasskeyAnswersAreRefusedWithoutA500(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	token := c.tokenOf(t, passkeysPage)
	c.passkeyOptions(t, "/account/passkeys/options", token, map[string]string{"passkey_name": "Key"})

	huge := `{"credential":{"id":"` + strings.Repeat("A", maxCredentialBytes) + `"},"passkey_name":"Key"}`
	tests := []struct {
		name        string
		path        string
		contentType string
		body        string
		status      int
	}{
		{"an oversized credential", "/account/passkeys", "application/json", huge, http.StatusRequestEntityTooLarge},
		{"a body past the portal's limit", "/account/passkeys", "application/json", `{"x":"` + strings.Repeat("A", bodyLimit) + `"}`, http.StatusRequestEntityTooLarge},
		{"a malformed credential", "/account/passkeys", "application/json", `{"credential":{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{}},"passkey_name":"Key"}`, http.StatusBadRequest},
		{"not JSON", "/account/passkeys", "application/json", `{"credential":`, http.StatusBadRequest},
		{"unknown fields", "/account/passkeys", "application/json", `{"credential":{},"admin":true}`, http.StatusBadRequest},
		{"invalid UTF-8", "/account/passkeys", "application/json", "{\"passkey_name\":\"\xff\"}", http.StatusBadRequest},
		{"a form instead of JSON", "/account/passkeys", "application/x-www-form-urlencoded", "credential=x", http.StatusUnsupportedMediaType},
		{"another body type", "/login/passkey", "text/plain", "{}", http.StatusUnsupportedMediaType},
		{"a malformed sign-in", "/login/passkey", "application/json", `{"credential":{"id":"!!"}}`, http.StatusBadRequest},
		{"an oversized sign-in", "/login/passkey", "application/json", `{"credential":"` + strings.Repeat("A", maxCredentialBytes) + `"}`, http.StatusRequestEntityTooLarge},
		{"a name too long", "/account/passkeys/options", "application/json", `{"passkey_name":"` + strings.Repeat("x", 65) + `"}`, http.StatusUnprocessableEntity},
		{"a name on two lines", "/account/passkeys/options", "application/json", `{"passkey_name":"a\nb"}`, http.StatusUnprocessableEntity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			audits := len(auditRows(t, a, "", ""))
			resp := c.postBody(tt.path, token, tt.contentType, []byte(tt.body))
			refused(t, resp, tt.status)
			keys, _ := a.db.PasskeysOf(context.Background(), 1)
			if len(keys) != 0 {
				t.Fatal("a passkey was stored")
			}
			credentialRefusal := tt.status == http.StatusBadRequest && strings.Contains(tt.body, `"credential":{"id"`) ||
				tt.status == http.StatusRequestEntityTooLarge && len(tt.body) < bodyLimit
			if got := len(auditRows(t, a, "", "")); credentialRefusal && got != audits+1 {
				t.Fatalf("%d audit rows written, want 1", got-audits)
			}
		})
	}
	if strings.Contains(a.log.String(), `"status":500`) {
		t.Fatal("a bad answer was a server error")
	}
}

// A passkey sign-in counts against the account like a password: a locked account is
// refused even with the right key, a failure stays counted, and a success clears the count.
func TestPasskeySignInsShareTheAccountThrottle(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	key := newKey()
	c.mustRegisterPasskey(t, key, "Key", "")

	for i := 1; i <= lockAfter; i++ {
		a.wrongPassword(t, "alice", i)
	}
	for _, try := range []func() *http.Response{
		func() *http.Response { return a.client().passkeyLogin(t, key) },
		func() *http.Response {
			s := a.client()
			s.addr = "203.0.113.9:1000"
			return s.passkeyLogin(t, key)
		},
	} {
		resp := try()
		refused(t, resp, http.StatusTooManyRequests)
		if resp.Header.Get("Retry-After") == "" {
			t.Fatal("no Retry-After")
		}
	}
	a.advance(signInBackoff(lockAfter) + time.Second)
	wantSignedInTo(t, a.client().passkeyLogin(t, key), "/")
	if failures, _, _ := a.db.ThrottleOf(context.Background(), "alice"); failures != 0 {
		t.Fatalf("%d failures left after a passkey sign-in", failures)
	}

	t.Run("a failed second step stays counted", func(t *testing.T) {
		s := a.client()
		s.login("alice", "correct horse battery")
		token := s.tokenOf(t, "/login/mfa")
		s.passkeyOptions(t, "/login/mfa/passkey/options", token, nil)
		other := newKey()
		cred, _, _ := other.Register([]byte(`{"publicKey":{"challenge":"AAAA","rp":{"id":"localhost"},"user":{"id":"AAAA"}}}`))
		opts := s.passkeyOptions(t, "/login/mfa/passkey/options", token, nil)
		refused(t, s.postJSON("/login/mfa/passkey", token, map[string]any{
			"credential": json.RawMessage(other.Assert(cred, softauthn.Challenge(opts)))}), http.StatusUnauthorized)
		if failures, _, _ := a.db.ThrottleOf(context.Background(), "alice"); failures != 1 {
			t.Fatalf("%d failures after a refused second step, want 1", failures)
		}
	})
	t.Run("an address spraying answers is throttled", func(t *testing.T) {
		s := a.client()
		s.addr = "198.51.100.200:1"
		for i := 0; i < addrFailLimit; i++ {
			token := s.tokenOf(t, "/login")
			s.postJSON("/login/passkey", token, map[string]any{"credential": map[string]string{"id": "x"}})
		}
		refused(t, s.postJSON("/login/passkey/options", s.tokenOf(t, "/login"), map[string]string{}), http.StatusTooManyRequests)
	})
}

// The JSON endpoints need the CSRF token and refuse cross-site requests like every form.
func TestPasskeyEndpointsRefuseForeignRequests(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	signedIn := a.client()
	signedIn.login("alice", "correct horse battery")
	signedIn.get(passkeysPage)
	for _, path := range []string{"/login/passkey/options", "/login/passkey", "/account/passkeys/options", "/account/passkeys",
		"/login/mfa/passkey/options", "/login/mfa/passkey"} {
		for _, tc := range []struct {
			site, token string
		}{{"cross-site", "take the page's"}, {"", ""}, {"", "forged.token"}} {
			c := signedIn
			if strings.HasPrefix(path, "/login") {
				c = a.client()
				c.get("/login")
			}
			token := tc.token
			if token == "take the page's" {
				token = c.csrf()
			}
			c.fetchSite = tc.site
			refused(t, c.postJSON(path, token, map[string]string{}), http.StatusForbidden)
			c.fetchSite = "same-origin"
		}
	}
	t.Run("a script without fetch metadata passes with the page's token", func(t *testing.T) {
		c := a.client()
		token := c.tokenOf(t, "/login")
		c.fetchSite = ""
		wantStatus(t, c.postJSON("/login/passkey/options", token, map[string]string{}), http.StatusOK)
	})
	t.Run("signed out, the account endpoints answer 401 in JSON, not a redirect", func(t *testing.T) {
		c := a.client()
		refused(t, c.postJSON("/account/passkeys/options", c.tokenOf(t, "/login"), map[string]string{}), http.StatusUnauthorized)
		refused(t, c.postJSON("/login/mfa/passkey/options", c.tokenOf(t, "/login"), map[string]string{}), http.StatusUnauthorized)
	})
}

func TestRemovingPasskeysAsksForThePasswordAndKeepsARequiredFactor(t *testing.T) {
	a := newTestApp(t)
	alice := a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	laptop, phone := newKey(), newKey()
	c.mustRegisterPasskey(t, laptop, "Laptop", "")
	other := a.client()
	wantSignedInTo(t, other.passkeyLogin(t, laptop), "/")
	a.advance(time.Minute) // the list is oldest first
	c.mustRegisterPasskey(t, phone, "Phone", "correct horse battery")
	ids := passkeyRowRe.FindAllStringSubmatch(body(t, c.get(passkeysPage)), -1)
	if len(ids) != 2 {
		t.Fatalf("%d rows", len(ids))
	}
	first := ids[0][1]

	t.Run("renaming", func(t *testing.T) {
		c.get(passkeysPage)
		wantStatus(t, c.post(passkeysPage+"/"+first+"/rename", url.Values{"passkey_name": {" "}}), http.StatusUnprocessableEntity)
		wantRedirect(t, c.post(passkeysPage+"/"+first+"/rename", url.Values{"passkey_name": {"Old laptop"}}), passkeysPage)
		if b := body(t, c.get(passkeysPage)); !strings.Contains(b, "Old laptop") {
			t.Fatal("not renamed")
		}
		if len(auditRows(t, a, "passkey.renamed", db.Success)) != 1 {
			t.Fatal("no audit row")
		}
	})
	t.Run("a wrong password removes nothing", func(t *testing.T) {
		c.get(passkeysPage)
		wantStatus(t, c.post(passkeysPage+"/"+first+"/remove", url.Values{"password": {"wrong horse battery"}}), http.StatusUnprocessableEntity)
		wantStatus(t, c.post(passkeysPage+"/"+first+"/remove", nil), http.StatusUnprocessableEntity)
		if keys, _ := a.db.PasskeysOf(context.Background(), alice.ID); len(keys) != 2 {
			t.Fatal("a passkey went")
		}
	})
	t.Run("with the password it goes, and other sessions end", func(t *testing.T) {
		c.get(passkeysPage)
		wantRedirect(t, c.post(passkeysPage+"/"+first+"/remove", url.Values{"password": {"correct horse battery"}}), passkeysPage)
		wantRedirect(t, other.get("/"), "/login")
		if _, left, _ := a.db.AccountCounts(context.Background(), alice.ID); left != recoveryCodeCount {
			t.Fatalf("%d codes left with a passkey still on", left)
		}
		refused(t, a.client().passkeyLogin(t, laptop), http.StatusUnauthorized)
		if len(auditRows(t, a, "passkey.removed", db.Success)) != 1 {
			t.Fatal("no audit row")
		}
	})
	last := passkeyRowRe.FindStringSubmatch(body(t, c.get(passkeysPage)))[1]
	t.Run("the last one stays while a rule requires two-step verification", func(t *testing.T) {
		if err := a.db.SetMFARule(context.Background(), db.MFARule{Role: db.RoleStaff, Mode: db.MFARequired,
			Deadline: a.clock().Add(-time.Hour)}, db.Event{At: a.clock()}); err != nil {
			t.Fatal(err)
		}
		c.get(passkeysPage)
		resp := c.post(passkeysPage+"/"+last+"/remove", url.Values{"password": {"correct horse battery"}})
		wantStatus(t, resp, http.StatusConflict)
		if !strings.Contains(body(t, resp), `role="alert"`) {
			t.Fatal("the refusal is not an alert")
		}
		if keys, _ := a.db.PasskeysOf(context.Background(), alice.ID); len(keys) != 1 {
			t.Fatal("the last passkey went")
		}
	})
	t.Run("without a rule, removing the last one removes the recovery codes", func(t *testing.T) {
		if err := a.db.SetMFARule(context.Background(), db.MFARule{Role: db.RoleStaff, Mode: db.MFAOff}, db.Event{At: a.clock()}); err != nil {
			t.Fatal(err)
		}
		c.get(passkeysPage)
		wantRedirect(t, c.post(passkeysPage+"/"+last+"/remove", url.Values{"password": {"correct horse battery"}}), "/account")
		if _, left, _ := a.db.AccountCounts(context.Background(), alice.ID); left != 0 {
			t.Fatalf("%d codes outlived the last factor", left)
		}
		wantRedirect(t, a.client().login("alice", "correct horse battery"), "/")
	})
}

// A stolen session alone cannot add a passkey to an account that has a factor: the
// password is asked again, and counted like a sign-in.
func TestAddingAPasskeyToAnEnrolledAccountTakesThePassword(t *testing.T) {
	a := newTestApp(t)
	alice := a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	c.enroll(t)
	token := c.tokenOf(t, passkeysPage)
	for _, pw := range []string{"", "wrong horse battery"} {
		refused(t, c.postJSON("/account/passkeys/options", token, map[string]string{"passkey_name": "Thief", "password": pw}),
			http.StatusUnprocessableEntity)
	}
	if failures, _, _ := a.db.ThrottleOf(context.Background(), "alice"); failures != 1 {
		t.Fatalf("%d failures counted, want the wrong password's 1", failures)
	}
	c.mustRegisterPasskey(t, newKey(), "Mine", "correct horse battery")
	if n := len(recoveryRe.FindAllString(body(t, c.get(passkeysPage)), -1)); n != 0 {
		t.Fatal("a second factor issued new recovery codes")
	}
	u, _ := a.db.UserByID(context.Background(), alice.ID)
	if !u.HasTOTP || u.Passkeys != 1 {
		t.Fatalf("alice = %+v", u)
	}
	t.Run("turning the app off keeps the passkey, even under a rule", func(t *testing.T) {
		if err := a.db.SetMFARule(context.Background(), db.MFARule{Role: db.RoleStaff, Mode: db.MFARequired,
			Deadline: a.clock().Add(-time.Hour)}, db.Event{At: a.clock()}); err != nil {
			t.Fatal(err)
		}
		c.get("/account/mfa")
		wantRedirect(t, c.post("/account/mfa/disable", url.Values{"password": {"correct horse battery"}}), "/account?msg=totp-removed")
		u, _ := a.db.UserByID(context.Background(), alice.ID)
		if u.HasTOTP || u.Passkeys != 1 {
			t.Fatalf("alice = %+v", u)
		}
		if _, left, _ := a.db.AccountCounts(context.Background(), alice.ID); left != recoveryCodeCount {
			t.Fatalf("%d recovery codes left", left)
		}
		wantStatus(t, c.get("/"), http.StatusOK) // still enrolled: no enrollment step
	})
	t.Run("a passkey-only user makes new recovery codes on the passkeys page", func(t *testing.T) {
		c.get(passkeysPage)
		wantRedirect(t, c.post("/account/mfa/recovery-codes", url.Values{"password": {"correct horse battery"}, "return": {"passkeys"}}), passkeysPage)
		if n := len(recoveryRe.FindAllString(body(t, c.get(passkeysPage)), -1)); n != recoveryCodeCount {
			t.Fatalf("%d new codes shown", n)
		}
	})
}

// Under a required rule past its deadline, or after a reset, the passkeys page is open
// beside the enrollment page, each offers the other, and a passkey ends the step.
func TestAUserWhoMustEnrollMayUseAPasskey(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	owl := a.createUser("owl", db.RoleStaff, "correct horse battery")
	if err := a.db.SetMFARule(context.Background(), db.MFARule{Role: db.RoleStaff, Mode: db.MFARequired,
		Deadline: a.clock().Add(-time.Hour)}, db.Event{At: a.clock()}); err != nil {
		t.Fatal(err)
	}
	c := a.client()
	wantRedirect(t, c.login("owl", "correct horse battery"), "/account/mfa")
	if b := body(t, c.get("/account/mfa")); !strings.Contains(b, `href="/account/passkeys"`) {
		t.Fatal("enrollment does not offer a passkey")
	}
	b := body(t, c.get(passkeysPage))
	if !strings.Contains(b, `href="/account/mfa"`) || !strings.Contains(b, "needs two-step verification") {
		t.Fatalf("the passkeys page: %.2000s", b)
	}
	wantRedirect(t, c.get("/notices"), "/account/mfa")
	key := newKey()
	c.mustRegisterPasskey(t, key, "Key", "")
	wantStatus(t, c.get("/notices"), http.StatusOK)

	t.Run("the rollout counts the passkey-only user as enrolled", func(t *testing.T) {
		admin := a.client()
		admin.login("root", "correct horse battery")
		admin.get("/admin/mfa-policy")
		b := body(t, admin.post("/admin/mfa-policy", url.Values{"scope": {"role:staff"}, "mode": {"required"},
			"deadline": {"2020-01-01T00:00"}}))
		if !strings.Contains(b, "affects 1 user in role staff; 1 already use two-step verification") {
			t.Fatalf("dry run: %.3000s", b)
		}
		list := body(t, admin.get("/admin/users"))
		if !regexp.MustCompile(`owl</a></td>(?s:.*?)<td>passkey</td>`).MatchString(list) {
			t.Fatalf("the user list: %.3000s", list)
		}
		page := body(t, admin.get("/admin/users/"+itoa64(owl.ID)))
		if !strings.Contains(page, `data-passkey-id="`) || !strings.Contains(page, "Key") {
			t.Fatalf("the admin user page lists no passkey: %.3000s", page)
		}
	})
	t.Run("an admin's reset removes the passkey and ends the sessions; revoking sessions does not", func(t *testing.T) {
		admin := a.client()
		admin.login("root", "correct horse battery")
		admin.get("/admin/users/" + itoa64(owl.ID))
		wantRedirect(t, admin.post("/admin/users/"+itoa64(owl.ID)+"/revoke-sessions", nil), "/admin/users/")
		if keys, _ := a.db.PasskeysOf(context.Background(), owl.ID); len(keys) != 1 {
			t.Fatal("revoking sessions removed a passkey")
		}
		wantSignedInTo(t, a.client().passkeyLogin(t, key), "/")
		admin.get("/admin/users/" + itoa64(owl.ID))
		wantRedirect(t, admin.post("/admin/users/"+itoa64(owl.ID)+"/reset-mfa", nil), "/admin/users/")
		if keys, _ := a.db.PasskeysOf(context.Background(), owl.ID); len(keys) != 0 {
			t.Fatal("the reset left a passkey")
		}
		refused(t, a.client().passkeyLogin(t, key), http.StatusUnauthorized)
		s := a.client()
		wantRedirect(t, s.login("owl", "correct horse battery"), "/account/mfa")
		wantStatus(t, s.get(passkeysPage), http.StatusOK)
	})
}

// With an IP-literal base URL passkeys are off: the pages say so and offer no button, the
// endpoints refuse in words, and password and TOTP work as before.
func TestPasskeysAreOffForAnIPBaseURL(t *testing.T) {
	a := newTestApp(t, func(c *Config) { c.BaseURL, _ = url.Parse("http://127.0.0.1:8080") })
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	if b := body(t, c.get("/login")); strings.Contains(b, "passkey-login") {
		t.Fatal("the sign-in page offers a passkey")
	}
	c.login("alice", "correct horse battery")
	b := body(t, c.get(passkeysPage))
	if !strings.Contains(b, "only for a host name") || !strings.Contains(b, "IP address") || strings.Contains(b, `id="passkey-add"`) {
		t.Fatalf("the passkeys page: %.2000s", b)
	}
	refused(t, c.postJSON("/account/passkeys/options", c.tokenOf(t, passkeysPage), map[string]string{"passkey_name": "Key"}),
		http.StatusConflict)
	secret, _ := c.enroll(t)
	a.advance(time.Minute)
	wantRedirect(t, a.client().loginMFA("alice", "correct horse battery", auth.TOTPCode(secret, a.clock())), "/")
}

// Without JavaScript, nothing of passkeys shows: the buttons are rendered hidden for the
// script to reveal, the script is a file, and the forms are as before.
func TestPasskeyButtonsAreHiddenUntilTheScriptRuns(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	c.mustRegisterPasskey(t, newKey(), "Key", "")
	pages := map[string]string{"/login": `id="passkey-login"`, passkeysPage: `id="passkey-add"`}
	s := a.client()
	s.login("alice", "correct horse battery")
	pages["/login/mfa"] = `id="passkey-signin"`
	for path, button := range pages {
		client := a.client()
		switch path {
		case passkeysPage:
			client = c
		case "/login/mfa":
			client = s
		}
		b := body(t, client.get(path))
		tag := regexp.MustCompile(`<button[^>]*` + regexp.QuoteMeta(button) + `[^>]*>`).FindString(b)
		if tag == "" || !strings.Contains(tag, " hidden") || !strings.Contains(tag, `type="button"`) {
			t.Errorf("%s: button %q", path, tag)
		}
		if regexp.MustCompile(`<script>|<script [^>]*>[^<]`).MatchString(b) || !strings.Contains(b, `<script src="/static/js/passkeys.js" defer></script>`) {
			t.Errorf("%s: the script is not only the file", path)
		}
	}
	resp := c.get("/static/js/passkeys.js")
	wantStatus(t, resp, http.StatusOK)
	if js, _ := io.ReadAll(resp.Body); !strings.Contains(string(js), "navigator.credentials") {
		t.Fatal("the script is not served")
	}
}

// The passkey script talks to the portal with fetch, which the CSP allows to the portal's
// own origin and nowhere else; scripts stay files of the portal, never inline.
func TestPasskeyScriptMayCallOnlyThePortal(t *testing.T) {
	a := newTestApp(t)
	csp := a.client().get("/login").Header.Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	if directives["connect-src"] != "'self'" || directives["script-src"] != "'self'" || directives["default-src"] != "'none'" {
		t.Fatalf("CSP %q", csp)
	}
}

// A passkey's name is the user's text: shown escaped on every page, refused on two lines.
func TestPasskeyNameIsInert(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	c := a.client()
	c.login("root", "correct horse battery")
	const name = `<script>alert(1)</script>`
	c.mustRegisterPasskey(t, newKey(), name, "")
	for _, path := range []string{passkeysPage, "/admin/users/1"} {
		b := body(t, c.get(path))
		if strings.Contains(b, name) || !strings.Contains(b, html.EscapeString(name)) {
			t.Errorf("%s does not escape the name", path)
		}
	}
}

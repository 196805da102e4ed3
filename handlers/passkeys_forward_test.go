package handlers

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"gatehouse/db"
	"gatehouse/internal/softauthn"
)

// tokenOf loads the portal's page at path and returns the CSRF token it carries, as the
// passkey script reads it.
func (b *browser) tokenOf(path string) string {
	b.tb.Helper()
	wantStatus(b.tb, b.get(b.portalURL(path)), http.StatusOK)
	m := csrfField.FindStringSubmatch(b.lastBody)
	if m == nil {
		b.tb.Fatalf("%s has no CSRF token", path)
	}
	return m[1]
}

// postJSON posts v to the portal as the passkey script does: JSON, with the page's token
// in a header.
func (b *browser) postJSON(path, token string, v any) *http.Response {
	b.tb.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		b.tb.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, b.portalURL(path), strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", token)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", b.portalURL(""))
	req.RemoteAddr = "192.0.2.10:5555"
	u, _ := url.Parse(b.portalURL(path))
	return b.send(req, u)
}

// ceremony runs a passkey ceremony from the page at page: options from begin with fields,
// the authenticator's answer to finish with next, as the script sends them.
func (b *browser) ceremony(page, begin, finish string, fields map[string]string, answer func([]byte) []byte,
	next string) *http.Response {
	b.tb.Helper()
	token := b.tokenOf(page)
	if fields == nil {
		fields = map[string]string{}
	}
	if next != "" {
		fields["next"] = next
	}
	resp := b.postJSON(begin, token, fields)
	wantStatus(b.tb, resp, http.StatusOK)
	done := map[string]any{"credential": json.RawMessage(answer([]byte(body(b.tb, resp))))}
	if name, ok := fields["passkey_name"]; ok {
		done["passkey_name"] = name
	}
	if next != "" {
		done["next"] = next
	}
	return b.postJSON(finish, token, done)
}

// registerPasskey adds a passkey to the signed-in account from the passkeys page (at
// page, which may carry next), and returns the script's final answer.
func (b *browser) registerPasskey(key *softauthn.Authenticator, page, password, next string) *http.Response {
	b.tb.Helper()
	return b.ceremony(page, "/account/passkeys/options", "/account/passkeys",
		map[string]string{"passkey_name": "Laptop", "password": password}, func(opts []byte) []byte {
			_, answer, err := key.Register(opts)
			if err != nil {
				b.tb.Fatal(err)
			}
			return answer
		}, next)
}

// passkeySignIn signs in from /login with key alone, or, after the password step, answers
// /login/mfa with it (secondStep); next goes with the answer as the pages' hidden field.
func (b *browser) passkeySignIn(key *softauthn.Authenticator, secondStep bool, next string) *http.Response {
	b.tb.Helper()
	page, begin, finish := "/login", "/login/passkey/options", "/login/passkey"
	if secondStep {
		page, begin, finish = "/login/mfa", "/login/mfa/passkey/options", "/login/mfa/passkey"
	}
	if next != "" {
		page += "?" + url.Values{"next": {next}}.Encode()
	}
	return b.ceremony(page, begin, finish, nil, func(opts []byte) []byte {
		answer, err := key.SignIn(opts)
		if err != nil {
			b.tb.Fatal(err)
		}
		return answer
	}, next)
}

// redirectOf is where the script is sent after a ceremony that succeeded.
func (b *browser) redirectOf(resp *http.Response) string {
	b.tb.Helper()
	wantStatus(b.tb, resp, http.StatusOK)
	return jsonAnswer(b.tb, resp)["redirect"]
}

// passkeyWorld is a portal with --cookie-domain at base, an app within the domain that
// requires two-step verification, and amy with a passkey (and her password) and no other
// factor.
type passkeyWorld struct {
	a   *testApp
	key *softauthn.Authenticator
}

func newPasskeyWorld(t *testing.T, base string) passkeyWorld {
	t.Helper()
	a := newTestApp(t, forwardConfig(t, base, "example.com"))
	a.createUser("amy", db.RoleStaff, "correct horse battery")
	a.addApp(t, db.AppInput{Host: appHost, RequireMFA: true})
	w := passkeyWorld{a: a, key: softauthn.New(base)}
	b := a.browser()
	b.signIn("amy", "correct horse battery", "")
	if got := b.redirectOf(b.registerPasskey(w.key, passkeysPage, "", "")); !strings.HasPrefix(got, passkeysPage) {
		t.Fatalf("after registering the script is sent to %q", got)
	}
	return w
}

// TestPasskeySessionsRecordTheCookieScope: with --cookie-domain, a session started by a
// passkey (alone, or as the second step) records the scope its cookie is set for, like one
// started by a password or a code. A session recorded as host-only would be taken, at the
// very next request, for a cookie from before the setting changed: ended, and the browser
// sent to sign in again.
func TestPasskeySessionsRecordTheCookieScope(t *testing.T) {
	for _, base := range []string{"http://portal.example.com", "https://portal.example.com"} {
		for _, secondStep := range []bool{false, true} {
			name := base + ", the passkey alone"
			if secondStep {
				name = base + ", the passkey as the second step"
			}
			t.Run(name, func(t *testing.T) {
				w := newPasskeyWorld(t, base)
				b := w.a.browser()
				if secondStep {
					wantRedirect(t, b.signIn("amy", "correct horse battery", ""), "/login/mfa")
				}
				if got := b.redirectOf(b.passkeySignIn(w.key, secondStep, "")); got != "/" {
					t.Fatalf("signed in and sent to %q", got)
				}
				scheme, _, _ := strings.Cut(base, ":")
				wantStatus(t, b.get(base+"/"), http.StatusOK)
				wantStatus(t, b.get(scheme+"://"+appHost+"/"), http.StatusOK)
				if !strings.Contains(b.lastBody, "Remote-User: amy") {
					t.Fatalf("the app got: %s", b.lastBody)
				}
				var scope string
				if err := w.a.rawDB().QueryRow(`SELECT cookie_scope FROM sessions WHERE stage = ?`, db.StageFull).
					Scan(&scope); err != nil || scope != "example.com" {
					t.Fatalf("the session's recorded scope is %q (%v), want example.com", scope, err)
				}
			})
		}
	}
}

// TestPasskeySignInsLeadOnToTheApp: a passkey sign-in, alone or as the second step, goes on
// to next like a password or a code does: to a registered app's URL, a local path, and
// nowhere else; an app that would refuse the user is refused in the script's answer.
func TestPasskeySignInsLeadOnToTheApp(t *testing.T) {
	for _, secondStep := range []bool{false, true} {
		name := "the passkey alone"
		if secondStep {
			name = "the passkey as the second step"
		}
		t.Run(name, func(t *testing.T) {
			w := newPasskeyWorld(t, portalBase)
			for _, tc := range []struct{ next, want string }{
				{appURL, appURL},
				{"/notices", "/notices"},
				{"http://evil.example/", "/"},
				{"//evil.example/", "/"},
			} {
				b := w.a.browser()
				if secondStep {
					form := url.Values{"username": {"amy"}, "password": {"correct horse battery"}, "next": {tc.next}}
					b.get(portalBase + "/login")
					wantRedirect(t, b.post("/login", form), "/login/mfa")
				}
				if got := b.redirectOf(b.passkeySignIn(w.key, secondStep, tc.next)); got != tc.want {
					t.Fatalf("next %q: signed in and sent to %q, want %q", tc.next, got, tc.want)
				}
			}
			b := w.a.browser()
			b.passkeySignIn(w.key, false, appURL)
			wantStatus(t, b.get(appURL), http.StatusOK)

			// An app that would refuse the user says so to the script, as its page would.
			w.a.addApp(t, db.AppInput{Host: "admin.example.com", Audience: db.Audience{Roles: []string{db.RoleAdmin}}})
			b = w.a.browser()
			if secondStep {
				b.signIn("amy", "correct horse battery", "")
			}
			m := refused(t, b.passkeySignIn(w.key, secondStep, "http://admin.example.com/"), http.StatusForbidden)
			if !strings.Contains(m["error"], "may not open admin.example.com") {
				t.Fatalf("the refusal says %q", m["error"])
			}
		})
	}
}

// TestPasskeyEnrollmentLeadsOnToTheApp: a user who must enroll on the way to an app may do
// so with a passkey: the authenticator page links to the passkeys page with next (and back,
// and on from the question it asks a visitor from another site), the passkeys page carries
// next through the registration, and the page that shows the recovery codes links on to
// the app, as the authenticator page does after a code.
func TestPasskeyEnrollmentLeadsOnToTheApp(t *testing.T) {
	a := newForwardApp(t)
	a.createUser("amy", db.RoleStaff, "correct horse battery")
	a.addApp(t, db.AppInput{Host: appHost})
	if err := a.db.SetMFARule(t.Context(), db.MFARule{Role: db.RoleStaff, Mode: db.MFARequired, Deadline: a.clock().Add(-1)},
		db.Event{At: a.clock()}); err != nil {
		t.Fatal(err)
	}
	b := a.browser()
	enroll := "/account/mfa?next=" + url.QueryEscape(appURL)
	if loc := b.signIn("amy", "correct horse battery", appURL).Header.Get("Location"); loc != enroll {
		t.Fatalf("after sign-in: Location %q, want %q", loc, enroll)
	}
	passkeys := passkeysPage + "?next=" + url.QueryEscape(appURL)
	// Arriving from another site, the page asks before it starts, and its link keeps next.
	req := httptest.NewRequest(http.MethodGet, portalBase+enroll, nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	u, _ := url.Parse(portalBase + enroll)
	wantStatus(t, b.send(req, u), http.StatusOK)
	if !strings.Contains(b.lastBody, `href="`+strings.ReplaceAll(enroll, "&", "&amp;")+`"`) {
		t.Fatalf("the page for a visitor from another site loses next: %s", b.lastBody)
	}
	wantStatus(t, b.get(portalBase+enroll), http.StatusOK)
	if !strings.Contains(b.lastBody, `href="`+strings.ReplaceAll(passkeys, "&", "&amp;")+`"`) {
		t.Fatalf("the authenticator page does not offer a passkey with next: %s", b.lastBody)
	}
	wantStatus(t, b.get(portalBase+passkeys), http.StatusOK)
	if !strings.Contains(b.lastBody, `href="`+strings.ReplaceAll(enroll, "&", "&amp;")+`"`) {
		t.Fatalf("the passkeys page does not offer the authenticator app with next: %s", b.lastBody)
	}
	if !strings.Contains(b.lastBody, `name="next" value="`+strings.ReplaceAll(appURL, "&", "&amp;")+`"`) {
		t.Fatalf("the passkey form does not carry next: %s", b.lastBody)
	}

	key := softauthn.New(portalBase)
	got := b.redirectOf(b.registerPasskey(key, passkeys, "", appURL))
	want := passkeysPage + "?" + url.Values{"msg": {"passkey-added"}, "next": {appURL}}.Encode()
	if got != want {
		t.Fatalf("after registering the script is sent to %q, want %q", got, want)
	}
	wantStatus(t, b.get(portalBase+got), http.StatusOK)
	if n := len(recoveryRe.FindAllString(b.lastBody, -1)); n != recoveryCodeCount {
		t.Fatalf("%d recovery codes shown: %s", n, b.lastBody)
	}
	if link := b.continueLink(); link != appURL {
		t.Fatalf("Continue leads to %q", link)
	}
	wantStatus(t, b.get(appURL), http.StatusOK)
}

// TestPasskeySignInCarriesOnlyAValidNextToAStep: a passkey sign-in with a step pending
// (here a password an admin set) goes to that step first, carrying next on only when it
// may be followed, as a password sign-in does.
func TestPasskeySignInCarriesOnlyAValidNextToAStep(t *testing.T) {
	w := newPasskeyWorld(t, portalBase)
	amy, err := w.a.db.UserByUsername(t.Context(), "amy")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.a.db.SetPassword(t.Context(), amy.ID, amy.PasswordHash, true, 0, db.Event{At: w.a.clock()}); err != nil {
		t.Fatal(err)
	}
	for next, want := range map[string]string{
		appURL:                 stepPassword + "?next=" + url.QueryEscape(appURL),
		"http://evil.example/": stepPassword,
		"//evil.example/":      stepPassword,
	} {
		b := w.a.browser()
		if got := b.redirectOf(b.passkeySignIn(w.key, false, next)); got != want {
			t.Errorf("next %q: sent to %q, want %q", next, got, want)
		}
	}
}

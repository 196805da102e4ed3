package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"gatehouse/db"
)

const pw = "correct horse battery"

// addAuthenticator gives the browser's tab Chromium's virtual authenticator: a platform
// authenticator (CTAP2, internal transport) that keeps discoverable credentials and
// verifies its user, as a laptop's fingerprint reader does. Each browser has its own.
func (b *Browser) addAuthenticator() webauthn.AuthenticatorID {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		b.T.Fatalf("enable webauthn: %v", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		}})
	if err != nil {
		b.T.Fatalf("add virtual authenticator: %v", err)
	}
	return res.AuthenticatorID
}

// passkeys lists the credentials the authenticator holds.
func (b *Browser) passkeys(id webauthn.AuthenticatorID) []*webauthn.Credential {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		b.T.Fatalf("get credentials: %v", err)
	}
	return res.Credentials
}

// waitPath waits until the browser shows path: a passkey ceremony ends with the script
// sending the browser on, after a round trip of its own.
func (b *Browser) waitPath(path string) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, stepTimeout)
	defer cancel()
	var at string
	for {
		loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname + "|" + document.readyState + "|" +
			((document.querySelector("#passkey-error:not([hidden])") || {}).textContent || "")`))
		if err != nil {
			b.T.Fatalf("waiting for %s (at %s): %v", path, at, err)
		}
		parts := strings.SplitN(loc, "|", 3)
		at = parts[0]
		if parts[2] != "" {
			b.T.Fatalf("waiting for %s, the page says: %s", path, parts[2])
		}
		if at == path && parts[1] == "complete" {
			return
		}
		select {
		case <-ctx.Done():
			b.T.Fatalf("the browser stayed at %s, want %s", at, path)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// passkeyError waits for the passkey alert and returns what it says.
func (b *Browser) passkeyError() string {
	b.T.Helper()
	b.WaitVisible("#passkey-error")
	return b.Text("#passkey-error")
}

// addPasskey registers a passkey named name on the passkeys page; password is asked once
// the account has a factor.
func (b *Browser) addPasskey(name, password string) {
	b.T.Helper()
	b.Visit("/account/passkeys")
	b.WaitVisible("#passkey-add")
	b.Fill("#passkey_name", name)
	if password != "" {
		b.Fill("#passkey-password", password)
	}
	b.Do("add a passkey", chromedp.Click(chromedp.CSS("#passkey-add")))
	b.waitPath("/account/passkeys")
	b.WaitVisible(`tr[data-passkey-id]`)
}

// passkeySignIn clicks the passkey button of /login and waits for where it leads.
func (b *Browser) passkeySignIn(path string) {
	b.T.Helper()
	if resp := b.Visit("/login"); resp.Status != http.StatusOK {
		b.T.Fatalf("GET /login: %d", resp.Status)
	}
	b.WaitVisible("#passkey-login")
	b.Do("sign in with a passkey", chromedp.Click(chromedp.CSS("#passkey-login")))
	b.waitPath(path)
}

func TestPasskeyRegistrationAndSignInThroughChromium(t *testing.T) {
	app := StartApp(t, Localhost())
	alice := app.CreateUser(t, db.NewUser{Username: "alice", DisplayName: "Alice Liddell"}, pw)
	b := NewBrowser(t, app)
	id := b.addAuthenticator()
	b.SignIn("alice", pw)
	b.addPasskey("Work laptop", "")

	if n := step(b, "count codes", chromedp.Evaluate[int](`document.querySelectorAll(".recovery-code").length`)); n != 10 {
		t.Fatalf("%d recovery codes shown after the first passkey, want 10", n)
	}
	b.ExpectText(`tr[data-passkey-id]`, "Work laptop")
	creds := b.passkeys(id)
	if len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
		t.Fatalf("the authenticator holds %+v", creds)
	}
	keys, err := app.Store.PasskeysOf(context.Background(), alice.ID)
	if err != nil || len(keys) != 1 || string(keys[0].Credential.ID) != string(creds[0].CredentialID) {
		t.Fatalf("stored %+v, %v", keys, err)
	}

	t.Run("a password-less sign-in lands on the dashboard", func(t *testing.T) {
		b.SignOut()
		b.passkeySignIn("/")
		b.ExpectText("h1", "Alice Liddell")
		if s, _ := app.Store.ListSessions(context.Background(), alice.ID); len(s) != 1 || s[0].Stage != db.StageFull {
			t.Fatalf("sessions %+v", s)
		}
	})
	t.Run("after the password, the passkey is the second step", func(t *testing.T) {
		b.SignOut()
		b.SignIn("alice", pw)
		if b.URL().Path != "/login/mfa" {
			t.Fatalf("after the password the browser is at %s", b.URL())
		}
		b.WaitVisible("#passkey-signin")
		b.Do("use the passkey", chromedp.Click(chromedp.CSS("#passkey-signin")))
		b.waitPath("/")
		b.ExpectText("h1", "Welcome")
	})
	t.Run("removing it takes the password, and the key no longer signs in", func(t *testing.T) {
		b.Visit("/account/passkeys")
		b.Fill(`tr[data-passkey-id] input[type=password]`, pw)
		b.Click(`tr[data-passkey-id] button.danger`)
		if b.Has(`tr[data-passkey-id]`) {
			t.Fatal("the passkey is still listed")
		}
		b.SignOut()
		b.Visit("/login")
		b.WaitVisible("#passkey-login")
		b.Do("try the removed passkey", chromedp.Click(chromedp.CSS("#passkey-login")))
		if msg := b.passkeyError(); !strings.Contains(msg, "did not sign you in") {
			t.Fatalf("the page says %q", msg)
		}
		if b.URL().Path != "/login" {
			t.Fatalf("a removed passkey moved the browser to %s", b.URL())
		}
	})
}

// Two people, two browsers, two authenticators: each key signs in its owner only, and at
// someone else's second step a key offers nothing.
func TestTwoUsersPasskeysNeverCross(t *testing.T) {
	app := StartApp(t, Localhost())
	app.CreateUser(t, db.NewUser{Username: "alice", DisplayName: "Alice Liddell"}, pw)
	app.CreateUser(t, db.NewUser{Username: "bob", DisplayName: "Bob Builder"}, pw)
	alice, bob := NewBrowser(t, app), NewBrowser(t, app)
	alice.addAuthenticator()
	bob.addAuthenticator()
	alice.SignIn("alice", pw)
	alice.addPasskey("Alice's laptop", "")
	bob.SignIn("bob", pw)
	bob.addPasskey("Bob's laptop", "")
	alice.SignOut()
	bob.SignOut()

	alice.passkeySignIn("/")
	alice.ExpectText("h1", "Alice Liddell")
	bob.passkeySignIn("/")
	bob.ExpectText("h1", "Bob Builder")

	// Alice's browser, with bob's password, reaches bob's second step: her key holds no
	// credential of bob's, so the passkey gets nowhere and bob stays signed out here.
	alice.SignOut()
	alice.SignIn("bob", pw)
	alice.WaitVisible("#passkey-signin")
	alice.Do("use alice's key for bob", chromedp.Click(chromedp.CSS("#passkey-signin")))
	msg := alice.passkeyError()
	if alice.URL().Path != "/login/mfa" || msg == "" {
		t.Fatalf("alice's key at bob's second step: at %s, %q", alice.URL(), msg)
	}
	if resp := alice.Visit("/"); alice.URL().Path != "/login/mfa" {
		t.Fatalf("bob's account opened in alice's browser: %d at %s", resp.Status, alice.URL())
	}
}

// An admin's reset removes the passkeys: the key no longer signs in, and the user sets up
// a factor again at the next sign-in, where the passkeys page is open to them. A passkey
// alone counts as enrolled for the rollout.
func TestResetAndRolloutWithPasskeys(t *testing.T) {
	app := StartApp(t, Localhost())
	ctx := context.Background()
	app.CreateUser(t, db.NewUser{Username: "root", Role: db.RoleAdmin}, pw)
	owl := app.CreateUser(t, db.NewUser{Username: "owl", DisplayName: "Owl"}, pw)
	g, err := app.Store.CreateGroup(ctx, "night shift", db.Event{At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Store.AddGroupMember(ctx, g.ID, owl.ID, db.Event{At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	member := NewBrowser(t, app)
	member.addAuthenticator()
	member.SignIn("owl", pw)
	member.addPasskey("Owl's phone", "")

	admin := NewBrowser(t, app)
	admin.SignIn("root", pw)
	admin.Visit("/admin/mfa-policy")
	admin.Do("require two-step for the group",
		chromedp.SetValue(chromedp.CSS("#scope"), "group:"+itoa(g.ID)),
		chromedp.SetValue(chromedp.CSS("#mode"), "required"),
		chromedp.SetValue(chromedp.CSS("#deadline"), "2020-01-01T00:00"))
	admin.Click(`form.stack button[type=submit]`)
	if got := admin.Text(`.preview [role="status"]`); !strings.Contains(got, "1 already use two-step verification") {
		t.Fatalf("the dry run says %q", got)
	}
	admin.Click(`.preview button[type=submit]`)
	admin.Visit("/admin/mfa-policy")
	if got := admin.Text("main"); !strings.Contains(got, "night shift") {
		t.Fatalf("policy page: %q", got)
	}

	// Enrolled with a passkey alone, owl is past the rule: the second step, then the dashboard.
	member.SignOut()
	member.SignIn("owl", pw)
	member.WaitVisible("#passkey-signin")
	member.Do("use the passkey", chromedp.Click(chromedp.CSS("#passkey-signin")))
	member.waitPath("/")

	t.Run("reset-mfa removes the passkey and sends owl to enroll again", func(t *testing.T) {
		admin.Visit("/admin/users/" + itoa(owl.ID))
		admin.ExpectText(`tr[data-passkey-id]`, "Owl's phone")
		admin.Click(`form[action$="/reset-mfa"] button`)
		if keys, _ := app.Store.PasskeysOf(ctx, owl.ID); len(keys) != 0 {
			t.Fatalf("passkeys after the reset: %+v", keys)
		}
		member.Visit("/")
		if member.URL().Path != "/login" {
			t.Fatalf("owl's session survived the reset: at %s", member.URL())
		}
		member.Visit("/login")
		member.WaitVisible("#passkey-login")
		member.Do("try the old passkey", chromedp.Click(chromedp.CSS("#passkey-login")))
		if msg := member.passkeyError(); !strings.Contains(msg, "did not sign you in") {
			t.Fatalf("the page says %q", msg)
		}
		member.SignIn("owl", pw)
		if member.URL().Path != "/account/mfa" {
			t.Fatalf("after the reset owl signs in to %s, want enrollment", member.URL())
		}
		member.addPasskey("Owl's new phone", "")
		member.Visit("/notices")
		if member.URL().Path != "/notices" {
			t.Fatalf("a new passkey did not end the enrollment step: at %s", member.URL())
		}
	})
}

// axe-core on the passkey pages, light and dark: the list with its forms and the codes a
// first passkey shows, and the sign-in pages with their buttons showing.
func TestPasskeyPagesAreAccessible(t *testing.T) {
	requireAxe(t)
	app := StartApp(t, Localhost())
	app.CreateUser(t, db.NewUser{Username: "alice"}, pw)
	b := NewBrowser(t, app)
	b.addAuthenticator()
	check := func() {
		t.Helper()
		b.Axe(t)
		b.darkMode(true)
		b.Axe(t)
		b.darkMode(false)
	}
	b.Visit("/login")
	b.WaitVisible("#passkey-login")
	check()
	b.SignIn("alice", pw)
	b.Visit("/account/passkeys")
	b.WaitVisible("#passkey-add")
	check()
	b.addPasskey("Work laptop", "")
	b.WaitVisible(".recovery-code")
	check()
	b.Visit("/account/passkeys")
	b.Fill(`tr[data-passkey-id] input[type=password]`, "wrong horse battery")
	b.Click(`tr[data-passkey-id] button.danger`)
	b.WaitVisible(`[role=alert]`)
	check()
	b.SignOut()
	b.SignIn("alice", pw)
	b.WaitVisible("#passkey-signin")
	check()
	// The script's alert with a refusal: the key's passkey was reset away meanwhile.
	alice, err := app.Store.UserByUsername(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Store.ResetMFA(context.Background(), alice.ID, db.Event{At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	b.Visit("/login")
	b.WaitVisible("#passkey-login")
	b.Do("sign in with a removed passkey", chromedp.Click(chromedp.CSS("#passkey-login")))
	b.passkeyError()
	check()
}

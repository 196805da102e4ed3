package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"gatehouse/auth"
	"gatehouse/db"
)

// TestEnrollThroughThePageThenSignInWithACode walks the whole second factor in a real
// browser: scan (read) the key, confirm with a code, keep the recovery codes, sign out,
// and sign in again with both steps.
func TestEnrollThroughThePageThenSignInWithACode(t *testing.T) {
	app := StartApp(t)
	app.CreateUser(t, db.NewUser{Username: "alice"}, "correct horse battery")
	b := NewBrowser(t, app)
	b.SignIn("alice", "correct horse battery")

	if resp := b.Visit("/account/mfa"); resp.Status != http.StatusOK {
		t.Fatalf("GET /account/mfa: %d", resp.Status)
	}
	b.WaitVisible("#mfa-qr")
	if src := step(b, "qr src", chromedp.Evaluate[string](`document.querySelector("#mfa-qr").src`)); !strings.HasPrefix(src, "data:image/png;base64,") {
		t.Fatalf("QR src %.40q", src)
	}
	secret := strings.TrimSpace(b.Text("#mfa-secret"))
	if len(secret) != 32 {
		t.Fatalf("secret %q", secret)
	}
	b.Fill("#code", auth.TOTPCode(secret, app.Now()))
	resp := b.Click(`form[action="/account/mfa"] button[type=submit]`)
	if resp.Status != http.StatusOK || b.URL().Path != "/account/mfa" {
		t.Fatalf("after confirming: status %d at %s", resp.Status, b.URL())
	}
	n := step(b, "count codes", chromedp.Evaluate[int](`document.querySelectorAll(".recovery-code").length`))
	if n != 10 {
		t.Fatalf("%d recovery codes shown, want 10", n)
	}
	recovery := strings.TrimSpace(b.Text(".recovery-code"))

	b.SignOut()
	app.Advance(time.Minute) // the confirming code's time step is spent
	resp = b.SignIn("alice", "correct horse battery")
	if b.URL().Path != "/login/mfa" || resp.Status != http.StatusOK {
		t.Fatalf("after the password: %d at %s, want the second step", resp.Status, b.URL())
	}
	b.Fill("#code", auth.TOTPCode(secret, app.Now()))
	b.Click(`form[action="/login/mfa"] button[type=submit]`)
	if b.URL().Path != "/" {
		t.Fatalf("after the code the browser is at %s", b.URL())
	}
	b.ExpectText("h1", "Welcome")

	t.Run("a recovery code signs in once", func(t *testing.T) {
		b.SignOut()
		b.SignIn("alice", "correct horse battery")
		b.Fill("#code", recovery)
		b.Click(`form[action="/login/mfa"] button[type=submit]`)
		b.ExpectText("h1", "Welcome")
		left, err := app.Store.UnusedRecoveryCodes(context.Background(), 1)
		if err != nil || len(left) != 9 {
			t.Fatalf("%d codes left, %v", len(left), err)
		}
	})
}

package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"gatehouse/db"
)

// focusFacts describe the element that has the focus and how it shows it.
type focusFacts struct {
	Tag          string  `json:"tag"`
	Class        string  `json:"class"`
	Text         string  `json:"text"`
	FocusVisible bool    `json:"focusVisible"`
	OutlineStyle string  `json:"outlineStyle"`
	OutlineWidth float64 `json:"outlineWidth"`
	InMain       bool    `json:"inMain"`
	OnScreen     bool    `json:"onScreen"`
}

func (f focusFacts) String() string {
	return "<" + f.Tag + " class=" + f.Class + "> " + strings.TrimSpace(f.Text)
}

const focusedJS = `(() => {
	const e = document.activeElement;
	const s = getComputedStyle(e);
	const r = e.getBoundingClientRect();
	return {
		tag: e.tagName.toLowerCase(),
		class: e.className,
		text: (e.textContent || "").slice(0, 60),
		focusVisible: e.matches(":focus-visible"),
		outlineStyle: s.outlineStyle,
		outlineWidth: parseFloat(s.outlineWidth) || 0,
		inMain: !!e.closest("main"),
		onScreen: r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth,
	};
})()`

// press sends keys to whatever has the focus and returns what has it afterwards.
func (b *Browser) press(keys string) focusFacts {
	b.T.Helper()
	b.Do("press "+strings.NewReplacer("\t", "Tab", "\r", "Enter").Replace(keys), chromedp.KeyEvent(keys))
	return step(b, "read the focus", chromedp.Evaluate[focusFacts](focusedJS))
}

// TestKeyboardOnly signs in without a mouse, then checks that the first Tab reaches a visible
// skip link, that it leads into the main content, and that every focused control shows a
// focus ring.
func TestKeyboardOnly(t *testing.T) {
	const password = "correct horse battery"
	app := StartApp(t)
	app.CreateUser(t, db.NewUser{Username: "kim", DisplayName: "Kim Keys"}, password)
	b := NewBrowser(t, app)

	b.Visit("/login")
	b.Do("type the username", chromedp.Focus(chromedp.CSS("#username")), chromedp.KeyEvent("kim"))
	b.Do("type the password", chromedp.Focus(chromedp.CSS("#password")), chromedp.KeyEvent(password))
	ctx, cancel := context.WithTimeout(b.Ctx, stepTimeout)
	resp, err := chromedp.RunResponse(ctx, chromedp.KeyEvent("\r"))
	cancel()
	if err != nil {
		t.Fatalf("press Enter in the password field: %v", err)
	}
	if resp.Status != http.StatusOK || b.URL().Path != "/" {
		t.Fatalf("after Enter: status %d at %s, want the dashboard", resp.Status, b.URL())
	}
	b.ExpectText("h1", "Welcome, Kim Keys")

	shows := func(f focusFacts) {
		t.Helper()
		if !f.FocusVisible || f.OutlineStyle == "none" || f.OutlineWidth < 2 {
			t.Errorf("%s has the focus but shows no ring: :focus-visible %v, outline %s %.0fpx",
				f, f.FocusVisible, f.OutlineStyle, f.OutlineWidth)
		}
		if !f.OnScreen {
			t.Errorf("%s has the focus but is off screen", f)
		}
	}

	// The first Tab on a page reaches the skip link, shown on screen with a ring.
	f := b.press("\t")
	if f.Tag != "a" || f.Class != "skip" {
		t.Fatalf("the first Tab focused %s, want the skip link", f)
	}
	shows(f)

	// The header's controls show the ring too: a link, and the sign-out button styled as one.
	seen := map[string]bool{}
	for range 12 {
		f = b.press("\t")
		if f.InMain {
			break
		}
		shows(f)
		seen[f.Tag] = true
	}
	if !seen["a"] || !seen["button"] {
		t.Errorf("tabbing through the header reached %v, want links and the sign-out button", seen)
	}

	// The skip link skips the header: the next Tab lands inside the main content.
	b.Visit("/")
	if f := b.press("\t"); f.Class != "skip" {
		t.Fatalf("the first Tab focused %s, want the skip link", f)
	}
	b.press("\r")
	if f := b.press("\t"); !f.InMain {
		t.Fatalf("after the skip link, Tab focused %s outside the main content", f)
	} else {
		shows(f)
	}
}

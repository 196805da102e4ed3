package auth

import (
	"regexp"
	"strings"
	"testing"
)

var recoveryCodeRE = regexp.MustCompile(`^[023456789abcdefghjkmnpqrstuvwxyz]{5}-[023456789abcdefghjkmnpqrstuvwxyz]{5}$`)

func TestRecoveryAlphabet(t *testing.T) {
	t.Run("the alphabet has 32 distinct symbols without confusable ones", func(t *testing.T) {
		if len(recoveryAlphabet) != 32 {
			t.Fatalf("alphabet has %d symbols", len(recoveryAlphabet))
		}
		seen := map[rune]bool{}
		for _, r := range recoveryAlphabet {
			if seen[r] {
				t.Errorf("%q repeated", r)
			}
			seen[r] = true
		}
		if strings.ContainsAny(recoveryAlphabet, "1ilo") {
			t.Error("alphabet contains 1, i, l or o")
		}
	})
}

func TestNewRecoveryCodes(t *testing.T) {
	t.Run("codes are ten symbols in two groups of five", func(t *testing.T) {
		codes := NewRecoveryCodes(10)
		if len(codes) != 10 {
			t.Fatalf("got %d codes", len(codes))
		}
		for _, c := range codes {
			if !recoveryCodeRE.MatchString(c) {
				t.Errorf("code %q has the wrong format", c)
			}
		}
	})

	t.Run("1000 codes are distinct and use every symbol", func(t *testing.T) {
		codes := NewRecoveryCodes(1000)
		seen := map[string]bool{}
		symbols := map[rune]int{}
		for _, c := range codes {
			if seen[c] {
				t.Fatalf("code %q repeated", c)
			}
			seen[c] = true
			for _, r := range strings.ReplaceAll(c, "-", "") {
				symbols[r]++
			}
		}
		// 10,000 symbols average 312 each; a biased mapping would starve
		// some of them.
		for _, r := range recoveryAlphabet {
			if n := symbols[r]; n < 200 {
				t.Errorf("symbol %q appeared only %d times", r, n)
			}
		}
	})

	t.Run("zero or negative counts give no codes", func(t *testing.T) {
		if n := len(NewRecoveryCodes(0)); n != 0 {
			t.Errorf("got %d codes", n)
		}
		if n := len(NewRecoveryCodes(-1)); n != 0 {
			t.Errorf("got %d codes", n)
		}
	})

	t.Run("a generated code normalizes to itself without the hyphen", func(t *testing.T) {
		for _, c := range NewRecoveryCodes(20) {
			if got := NormalizeRecoveryCode(c); got != strings.ReplaceAll(c, "-", "") {
				t.Errorf("NormalizeRecoveryCode(%q) = %q", c, got)
			}
			if !LooksLikeRecoveryCode(c) || !LooksLikeRecoveryCode(strings.ToUpper(c)) {
				t.Errorf("%q does not look like a recovery code", c)
			}
		}
	})
}

func TestNormalizeRecoveryCode(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"the canonical form is kept", "abcde23456", "abcde23456"},
		{"the display form loses its hyphen", "abcde-23456", "abcde23456"},
		{"capitals are lowered", "ABCDE-23456", "abcde23456"},
		{"spaces and extra hyphens are removed", " ab cd-e-2345 6 ", "abcde23456"},
		{"a tab is removed", "abcde\t23456", "abcde23456"},
		{"a typed o is read as zero", "o0oOo-23456", "0000023456"},
		{"too short is refused", "abcde-2345", ""},
		{"too long is refused", "abcde-234567", ""},
		{"empty is refused", "", ""},
		{"only separators are refused", " - - ", ""},
		{"a one is refused", "abcde-12345", ""},
		{"an i is refused", "abcde-i2345", ""},
		{"an l is refused", "abcde-l2345", ""},
		{"punctuation is refused", "abcde_23456", ""},
		{"a six-digit TOTP code is refused", "123456", ""},
		{"a spaced TOTP code is refused", "234 567", ""},
		{"fullwidth letters are refused", "ａｂｃｄｅ23456", ""},
		{"the Kelvin sign is not read as k", "\u212abcde23456", ""},
		{"a NUL byte is refused", "abcde\x0023456", ""},
		{"eleven symbols are refused even with separators", "abcde-23456-7", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := NormalizeRecoveryCode(tc.in); got != tc.want {
				t.Errorf("NormalizeRecoveryCode(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := LooksLikeRecoveryCode(tc.in); got != (tc.want != "") {
				t.Errorf("LooksLikeRecoveryCode(%q) = %v", tc.in, got)
			}
		})
	}
}

package auth

import (
	"strings"
	"testing"
	"time"
)

// FuzzValidTokenShape checks the cookie gate: whatever a client sends, a value that passes
// is exactly a 43-character base64url token, and checking never panics.
func FuzzValidTokenShape(f *testing.F) {
	f.Add(NewToken())
	f.Add("")
	f.Add(strings.Repeat("A", 43))
	f.Add(strings.Repeat("A", 44))
	f.Add("garbage!")
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidTokenShape(s) {
			return
		}
		if len(s) != 43 || strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("accepted %q", s)
		}
		if len(HashToken(s)) != 32 {
			t.Fatal("hash is not SHA-256")
		}
	})
}

// FuzzRecoveryCodeInput checks that normalising typed input never panics and only ever
// yields "" or a well-formed code.
func FuzzRecoveryCodeInput(f *testing.F) {
	for _, c := range NewRecoveryCodes(3) {
		f.Add(c)
	}
	f.Add(" ABCDE-FGHJK ")
	f.Add("o0o0o-o0o0o")
	f.Add("ÅÅÅÅÅ-ÅÅÅÅÅ")
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeRecoveryCode(s)
		if n == "" {
			return
		}
		if len(n) != recoveryCodeLen || strings.Trim(n, recoveryAlphabet) != "" {
			t.Fatalf("NormalizeRecoveryCode(%q) = %q", s, n)
		}
		if NormalizeRecoveryCode(n) != n {
			t.Fatalf("not idempotent: %q", n)
		}
	})
}

// FuzzCheckTOTP feeds arbitrary code input: only six digits after removing spaces can
// ever match, and nothing panics.
func FuzzCheckTOTP(f *testing.F) {
	secret := "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	f.Add(TOTPCode(secret, now))
	f.Add("12 34 56")
	f.Add("١٢٣٤٥٦") // non-ASCII digits
	f.Add("")
	f.Fuzz(func(t *testing.T, code string) {
		step, ok := CheckTOTP(secret, code, now)
		if !ok {
			return
		}
		digits := strings.Join(strings.Fields(code), "")
		if len(digits) != 6 || strings.Trim(digits, "0123456789") != "" {
			t.Fatalf("accepted %q", code)
		}
		if d := step - TOTPStep(now); d < -1 || d > 1 {
			t.Fatalf("accepted step %d away", d)
		}
	})
}

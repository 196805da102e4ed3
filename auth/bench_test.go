package auth

import (
	"testing"
	"time"
)

// BenchmarkCheckTOTP is the second sign-in step's code check (three HMACs at most).
func BenchmarkCheckTOTP(b *testing.B) {
	secret := NewTOTPSecret()
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	code := TOTPCode(secret, now.Add(-30*time.Second)) // the worst case: the last step tried
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := CheckTOTP(secret, code, now); !ok {
			b.Fatal("refused")
		}
	}
}

// BenchmarkTokenHash is what every request does with its session cookie before the lookup.
func BenchmarkTokenHash(b *testing.B) {
	tok := NewToken()
	b.ReportAllocs()
	for b.Loop() {
		if !ValidTokenShape(tok) || len(HashToken(tok)) != 32 {
			b.Fatal("bad token")
		}
	}
}

package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckEmail(t *testing.T) {
	long := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".org" // 254 bytes
	tests := []struct {
		name, typed, want string
		ok                bool
	}{
		{"a plain address", "amy@example.com", "amy@example.com", true},
		{"surrounding spaces are trimmed", "  amy@example.com ", "amy@example.com", true},
		{"a host without a dot", "amy@localhost", "amy@localhost", true},
		{"254 bytes", long, long, true},
		{"255 bytes", "x" + long, "", false},
		{"an empty field", " ", "", false},
		{"a display name", "Amy <amy@example.com>", "", false},
		{"angle brackets alone", "<amy@example.com>", "", false},
		{"a comment", "amy@example.com (Amy)", "", false},
		{"no at sign", "amy.example.com", "", false},
		{"two addresses", "amy@example.com, bob@example.com", "", false},
		{"a line break", "amy@example.com\nBcc: x@example.com", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckEmail(tc.typed)
			var pe *PolicyError
			if tc.ok != (err == nil) || (err != nil && !errors.As(err, &pe)) || got != tc.want {
				t.Fatalf("CheckEmail(%q) = %q, %v; want %q, ok %v", tc.typed, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestEmailKeyIgnoresCaseOfTheWholeAddress(t *testing.T) {
	if EmailKey("Amy.Smith@Example.COM") != EmailKey("amy.smith@example.com") {
		t.Fatal("two spellings of one address have different keys")
	}
}

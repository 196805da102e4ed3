package main

import (
	"testing"
	"time"
)

// FuzzParseDuration checks the settings parser: never a panic, never a non-positive
// duration accepted.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"1h", "24h", "2d", "1.5d", "0", "-1h", "1d12h", "d", "999999999999d", "1e3d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDuration(s)
		if err == nil && d <= 0 {
			t.Fatalf("parseDuration(%q) = %v", s, d)
		}
		_ = time.Duration(d)
	})
}

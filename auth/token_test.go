package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestNewToken(t *testing.T) {
	t.Run("a token is 32 random bytes in unpadded URL-safe base64", func(t *testing.T) {
		tok := NewToken()
		if len(tok) != 43 {
			t.Fatalf("token %q has length %d", tok, len(tok))
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(tok)
		if err != nil || len(raw) != 32 {
			t.Fatalf("token %q decodes to %d bytes, %v", tok, len(raw), err)
		}
		if !ValidTokenShape(tok) {
			t.Errorf("ValidTokenShape(%q) = false", tok)
		}
	})

	t.Run("1000 tokens are distinct and well shaped", func(t *testing.T) {
		seen := make(map[string]bool, 1000)
		for range 1000 {
			tok := NewToken()
			if seen[tok] {
				t.Fatalf("token %q repeated", tok)
			}
			if !ValidTokenShape(tok) {
				t.Fatalf("token %q has the wrong shape", tok)
			}
			seen[tok] = true
		}
	})
}

func TestValidTokenShape(t *testing.T) {
	good := NewToken()
	cases := map[string]string{
		"empty":                   "",
		"one short":               good[:42],
		"one long":                good + "A",
		"standard base64 plus":    "+" + good[1:],
		"standard base64 slash":   "/" + good[1:],
		"padding":                 good[:42] + "=",
		"a space":                 " " + good[1:],
		"a dot":                   "." + good[1:],
		"a NUL byte":              "\x00" + good[1:],
		"a non-ASCII letter":      "é" + good[2:],
		"a cookie with its name":  "session=" + good,
		"a quoted cookie value":   `"` + good[1:42] + `"`,
		"43 characters of emoji":  strings.Repeat("🔑", 10) + "abc",
		"43 runes of multibyte":   strings.Repeat("ж", 43),
		"a high byte in position": good[:20] + "\xff" + good[21:],
	}
	for name, s := range cases {
		t.Run("a value with "+name+" is refused", func(t *testing.T) {
			if ValidTokenShape(s) {
				t.Errorf("ValidTokenShape(%q) = true", s)
			}
		})
	}

	t.Run("the whole URL-safe alphabet is accepted", func(t *testing.T) {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		for i := 0; i < len(alphabet); i += 21 {
			s := (alphabet + alphabet)[i : i+43]
			if !ValidTokenShape(s) {
				t.Errorf("ValidTokenShape(%q) = false", s)
			}
		}
	})
}

func TestHashToken(t *testing.T) {
	t.Run("the hash is SHA-256 of the token text", func(t *testing.T) {
		tok := NewToken()
		want := sha256.Sum256([]byte(tok))
		if got := HashToken(tok); !bytes.Equal(got, want[:]) {
			t.Errorf("HashToken = %x, want %x", got, want)
		}
	})

	t.Run("the hash matches the FIPS 180-2 test vector", func(t *testing.T) {
		got := hex.EncodeToString(HashToken("abc"))
		const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
		if got != want {
			t.Errorf("HashToken(abc) = %s, want %s", got, want)
		}
	})

	t.Run("different tokens hash differently", func(t *testing.T) {
		if bytes.Equal(HashToken(NewToken()), HashToken(NewToken())) {
			t.Error("two tokens share a hash")
		}
	})
}

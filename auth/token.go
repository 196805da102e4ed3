package auth

import (
	"crypto/sha256"
	"encoding/base64"
)

// tokenLen is the length of a NewToken value: 32 bytes in unpadded base64.
const tokenLen = 43

// NewToken returns a new random token of 32 bytes from crypto/rand, encoded
// as unpadded URL-safe base64 (43 characters). It is used for session tokens
// and one-time setup tokens.
func NewToken() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(32))
}

// HashToken returns the SHA-256 of token. Only this hash is stored, so a
// leaked database does not yield working tokens; a fast hash suffices because
// tokens carry 256 bits of entropy.
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// ValidTokenShape reports whether s has the length and alphabet of a
// NewToken value, so malformed cookies are refused before any lookup.
func ValidTokenShape(s string) bool {
	if len(s) != tokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

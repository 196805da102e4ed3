package auth

import "strings"

// recoveryAlphabet has 32 symbols, so each random byte maps to one symbol
// with its low five bits and no bias. It is the digits and lowercase letters
// without 1, i, l and o, which are easily confused in print. That leaves 31,
// so 0 stays in as the 32nd: of the lookalikes it is the least ambiguous,
// and NormalizeRecoveryCode reads a typed o as 0.
const recoveryAlphabet = "023456789abcdefghjkmnpqrstuvwxyz"

// recoveryCodeLen is the number of symbols in a code: 50 bits of entropy.
const recoveryCodeLen = 10

// recoverySymbol maps an input byte to its alphabet symbol, or 0 if invalid.
var recoverySymbol = func() [256]byte {
	var t [256]byte
	for i := 0; i < len(recoveryAlphabet); i++ {
		c := recoveryAlphabet[i]
		t[c] = c
		if 'a' <= c && c <= 'z' {
			t[c-'a'+'A'] = c
		}
	}
	t['o'], t['O'] = '0', '0'
	return t
}()

// NewRecoveryCodes returns n distinct random recovery codes formatted as
// "xxxxx-xxxxx". Callers store only Hasher hashes of the normalized codes.
func NewRecoveryCodes(n int) []string {
	codes := make([]string, 0, max(n, 0))
	seen := make(map[string]bool, max(n, 0))
	for len(codes) < n {
		raw := randomBytes(recoveryCodeLen)
		for i, b := range raw {
			raw[i] = recoveryAlphabet[b&31]
		}
		code := string(raw[:5]) + "-" + string(raw[5:])
		// A repeat is astronomically unlikely, but two equal codes would
		// be one code counted twice.
		if seen[code] {
			continue
		}
		seen[code] = true
		codes = append(codes, code)
	}
	return codes
}

// NormalizeRecoveryCode returns the canonical form of a typed recovery code:
// lowercase, without spaces or hyphens, and with o read as 0. It returns ""
// unless the result is exactly ten symbols of the recovery alphabet.
func NormalizeRecoveryCode(s string) string {
	var b strings.Builder
	b.Grow(recoveryCodeLen)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '-' || c == '\t' {
			continue
		}
		sym := recoverySymbol[c]
		if sym == 0 || b.Len() == recoveryCodeLen {
			return ""
		}
		b.WriteByte(sym)
	}
	if b.Len() != recoveryCodeLen {
		return ""
	}
	return b.String()
}

// LooksLikeRecoveryCode reports whether s is a well-formed recovery code, to
// tell it apart from a TOTP code typed into the same field.
func LooksLikeRecoveryCode(s string) bool {
	return NormalizeRecoveryCode(s) != ""
}

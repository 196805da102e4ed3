package auth

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Password length limits, counted in characters (runes) rather than bytes so
// that non-Latin scripts and emoji are not penalised. The upper limit only
// keeps requests bounded; it is far above any password a person types.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 1024
)

// productName is refused as a whole password because it is the first thing
// an attacker of this site would try.
const productName = "gatehouse"

// PolicyError explains why a new password was refused.
type PolicyError struct {
	// Reason is a plain sentence meant to be shown to the user as is.
	Reason string
}

func (e *PolicyError) Error() string {
	return "auth: password refused: " + e.Reason
}

// CheckPassword reports whether password may be set for username, returning
// a *PolicyError if not. It follows current guidance (NIST SP 800-63B): a
// length floor, a list of known-breached passwords and no composition rules.
// Any Unicode text is allowed, including spaces and emoji, and nothing is
// ever truncated.
func CheckPassword(password, username string) error {
	if !utf8.ValidString(password) {
		return &PolicyError{Reason: "The password contains characters that could not be read. Type it again."}
	}
	n := utf8.RuneCountInString(password)
	if n < MinPasswordLen {
		return &PolicyError{Reason: fmt.Sprintf("Use at least %d characters.", MinPasswordLen)}
	}
	if n > MaxPasswordLen {
		return &PolicyError{Reason: fmt.Sprintf("Use at most %d characters.", MaxPasswordLen)}
	}
	if IsCommonPassword(password) {
		return &PolicyError{Reason: "This password is on a list of commonly used passwords. Choose one that is harder to guess."}
	}
	trimmed := strings.TrimSpace(password)
	if username != "" && strings.EqualFold(trimmed, strings.TrimSpace(username)) {
		return &PolicyError{Reason: "Do not use your username as your password."}
	}
	if strings.EqualFold(trimmed, productName) {
		return &PolicyError{Reason: "Do not use the name of this site as your password."}
	}
	return nil
}

//go:embed common-passwords.txt
var commonPasswordsFile string

var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	m := make(map[string]struct{}, 16384)
	for line := range strings.Lines(commonPasswordsFile) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m[line] = struct{}{}
	}
	return m
})

// IsCommonPassword reports whether p is on the embedded list of common
// passwords, ignoring case and surrounding spaces (which people add to
// reach a length limit).
func IsCommonPassword(p string) bool {
	list := commonPasswords()
	lower := strings.ToLower(p)
	if _, ok := list[lower]; ok {
		return true
	}
	_, ok := list[strings.TrimSpace(lower)]
	return ok
}

// MaxUsernameLen is the longest username, in characters.
const MaxUsernameLen = 64

// CheckUsername returns a *PolicyError unless u is an acceptable username: 1 to 64
// letters, digits and . - _ @. Usernames are typed at sign-in and named in audit rows, so
// they stay short and plain.
func CheckUsername(u string) error {
	switch {
	case u == "":
		return &PolicyError{Reason: "Enter a username."}
	case utf8.RuneCountInString(u) > MaxUsernameLen:
		return &PolicyError{Reason: "Use at most 64 characters."}
	}
	for _, r := range u {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '-' || r == '_' || r == '@') {
			return &PolicyError{Reason: "Use letters, digits, and . - _ @ only."}
		}
	}
	return nil
}

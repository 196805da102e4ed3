package auth

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
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

// PolicyError explains why a new password, username or display name was refused. The
// Check functions return no other error, so the web and the command line can both show
// Reason as their whole answer.
type PolicyError struct {
	// Reason is a plain sentence meant to be shown to the user as is.
	Reason string
}

func (e *PolicyError) Error() string {
	return "auth: refused: " + e.Reason
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
	if username != "" && UsernameKey(trimmed) == UsernameKey(strings.TrimSpace(username)) {
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

// MaxDisplayNameLen is the longest display name, in characters.
const MaxDisplayNameLen = 100

// CheckDisplayName returns a *PolicyError unless name, as it will be stored (trimmed), is
// at most MaxDisplayNameLen characters on one line. Empty is fine: the username is shown
// instead.
func CheckDisplayName(name string) error {
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxDisplayNameLen || !SingleLine(name) {
		return &PolicyError{Reason: fmt.Sprintf("Use at most %d characters on one line.", MaxDisplayNameLen)}
	}
	return nil
}

// SingleLine reports whether s has no control characters: names and titles are shown on
// one line, stored as typed, and must not smuggle line breaks into logs or CSV.
func SingleLine(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 })
}

// MaxUsernameLen is the longest username, in characters.
const MaxUsernameLen = 64

// NormalizeUsername is the form of a typed username that is stored and shown: NFKC, so
// fullwidth and other compatibility forms become their plain letters and a decomposed é the
// precomposed one, with case kept as typed.
func NormalizeUsername(u string) string { return norm.NFKC.String(u) }

// UsernameKey is what decides whether two usernames name the same account: NFKC, then full
// Unicode case folding (É and é, ß and ss, the Kelvin sign and k), then NFKC again because
// folding can leave a string unnormalised. Uniqueness, look-up by name and the sign-in
// throttle all compare keys, so every variant of a name is one account with one throttle.
func UsernameKey(u string) string {
	// A Caser keeps state between calls, so each call gets its own.
	return norm.NFKC.String(cases.Fold().String(norm.NFKC.String(u)))
}

// CheckUsername returns a *PolicyError unless u is an acceptable username: 1 to 64 letters,
// digits and . - _ @ once normalised (NormalizeUsername, the form that is stored), with all
// its letters and digits from one script. Usernames are typed at sign-in and named in audit
// rows, so they stay short and plain; one script per name refuses look-alikes such as a
// Cyrillic а among Latin letters, which would pass for another user's name.
func CheckUsername(u string) error {
	if !utf8.ValidString(u) {
		return &PolicyError{Reason: "The username contains characters that could not be read. Type it again."}
	}
	u = NormalizeUsername(u)
	switch {
	case u == "":
		return &PolicyError{Reason: "Enter a username."}
	case utf8.RuneCountInString(u) > MaxUsernameLen:
		return &PolicyError{Reason: fmt.Sprintf("Use at most %d characters.", MaxUsernameLen)}
	}
	for _, r := range u {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '-' || r == '_' || r == '@') {
			return &PolicyError{Reason: "Use letters, digits, and . - _ @ only."}
		}
	}
	first := ""
	for _, r := range u {
		s := scriptOf(r)
		switch {
		case s == "":
		case first == "":
			first = s
		case s != first:
			return &PolicyError{Reason: fmt.Sprintf("Use letters from one script only: this name mixes %s and %s characters, so it could pass for another name.", first, s)}
		}
	}
	return nil
}

// cjkScripts are written together in one name: Japanese mixes Han, Hiragana and Katakana,
// Chinese Han and Bopomofo, Korean Han and Hangul.
var cjkScripts = []*unicode.RangeTable{unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul, unicode.Bopomofo}

// scriptOf names the script of r for CheckUsername, or "" for Common and Inherited runes
// (ASCII digits, punctuation, combining marks, the kana length mark), which go with any.
func scriptOf(r rune) string {
	if unicode.In(r, unicode.Common, unicode.Inherited) {
		return ""
	}
	if unicode.In(r, cjkScripts...) {
		return "Chinese, Japanese or Korean"
	}
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) { // scripts do not overlap, so the first match is the only one
			return name
		}
	}
	return "Unknown"
}

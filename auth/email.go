package auth

import (
	"net/mail"
	"strings"
)

// MaxEmailLen is the longest address, in bytes: the most a forward or reverse path can carry
// (RFC 5321, 4.5.3.1.3), less its angle brackets.
const MaxEmailLen = 254

// CheckEmail reads a typed address and returns it as it will be stored, or a *PolicyError.
// It must be a bare address (no display name, no comment, no angle brackets) that
// net/mail reads back unchanged, on one line, of at most MaxEmailLen bytes.
func CheckEmail(typed string) (string, error) {
	addr := strings.TrimSpace(typed)
	switch {
	case addr == "":
		return "", &PolicyError{Reason: "Enter an address such as name@example.com."}
	case len(addr) > MaxEmailLen:
		return "", &PolicyError{Reason: "Use an address of at most 254 characters."}
	case !SingleLine(addr):
		return "", &PolicyError{Reason: "Keep the address on one line."}
	}
	parsed, err := mail.ParseAddress(addr)
	if err != nil || parsed.Name != "" || parsed.Address != addr || !strings.Contains(addr, "@") {
		return "", &PolicyError{Reason: "That is not an address such as name@example.com. Give the address alone, without a name or brackets."}
	}
	return addr, nil
}

// EmailKey is what makes two addresses one: the whole address lower-cased. The local part
// is case-sensitive in theory only; no mail system people use treats Amy@ and amy@ as two
// mailboxes, and one mailbox must not hold two accounts.
func EmailKey(addr string) string { return strings.ToLower(strings.TrimSpace(addr)) }

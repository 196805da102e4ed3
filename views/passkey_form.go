package views

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"gatehouse/auth"
	"gatehouse/db"
)

// MaxPasskeyNameLen is the longest passkey name, in characters.
const MaxPasskeyNameLen = 64

// PasskeyNameForm is the field passkey_name, which names a passkey when it is added and
// when it is renamed.
type PasskeyNameForm struct {
	Name  string
	Error string
}

// Validate trims the name and checks it: 1 to MaxPasskeyNameLen characters on one line, as
// the name is listed on the account and admin pages and in audit rows.
func (f *PasskeyNameForm) Validate() bool {
	f.Name = strings.TrimSpace(f.Name)
	if f.Name == "" || utf8.RuneCountInString(f.Name) > MaxPasskeyNameLen || !auth.SingleLine(f.Name) {
		f.Error = fmt.Sprintf("Give the passkey a name of at most %d characters, such as \"Work laptop\".", MaxPasskeyNameLen)
	}
	return f.Error == ""
}

// FactorWords says which second factors u has, for status lines: "an authenticator app",
// "2 passkeys", "an authenticator app and 1 passkey", or "" for none.
func FactorWords(u db.User) string {
	var parts []string
	if u.HasTOTP {
		parts = append(parts, "an authenticator app")
	}
	switch {
	case u.Passkeys == 1:
		parts = append(parts, "1 passkey")
	case u.Passkeys > 1:
		parts = append(parts, strconv.Itoa(u.Passkeys)+" passkeys")
	}
	return strings.Join(parts, " and ")
}

package views

import (
	"errors"
	"strings"

	"gatehouse/auth"
)

// AccountFields are the fields of a form that makes an account: the first-run form and
// the admin's create-user form. The password is never rendered back, so it is not part of
// the form's state.
type AccountFields struct {
	Username    string
	DisplayName string
	Errors      map[string]string
}

// Validate applies the rules of a new account, which the command line applies too: the
// username as it will be stored (trimmed, normalised) must pass auth.CheckUsername, the
// password auth.CheckPassword and the trimmed display name auth.CheckDisplayName. The
// refusals go in f.Errors under the field names, and the username and display name are
// left as they will be stored.
func (f *AccountFields) Validate(password string) bool {
	f.Errors = map[string]string{}
	f.Username = auth.NormalizeUsername(strings.TrimSpace(f.Username))
	f.DisplayName = strings.TrimSpace(f.DisplayName)
	refuse(f.Errors, "username", auth.CheckUsername(f.Username))
	refuse(f.Errors, "password", auth.CheckPassword(password, f.Username))
	refuse(f.Errors, "display_name", auth.CheckDisplayName(f.DisplayName))
	return len(f.Errors) == 0
}

// NewUserForm is the admin's create-user form. Its Validate leaves the role to the
// handler: the select offers only valid ones.
type NewUserForm struct {
	AccountFields
	Role  string
	Email string // optional; as typed, then as it will be stored
}

// ValidateEmail checks the optional address after Validate, recording its refusal.
func (f *NewUserForm) ValidateEmail() bool {
	if strings.TrimSpace(f.Email) == "" {
		f.Email = ""
		return len(f.Errors) == 0
	}
	addr, err := auth.CheckEmail(f.Email)
	refuse(f.Errors, "email", err)
	if err == nil {
		f.Email = addr
	}
	return len(f.Errors) == 0
}

// refuse records a rule's refusal next to field. The rules refuse with a
// *auth.PolicyError, whose reason is written for the person at the form.
func refuse(errs map[string]string, field string, err error) {
	var pe *auth.PolicyError
	switch {
	case errors.As(err, &pe):
		errs[field] = pe.Reason
	case err != nil:
		errs[field] = "This cannot be used here."
	}
}

package views

import (
	"errors"
	"strings"

	"gatehouse/auth"
)

// NewUserForm is the admin's create-user form. The initial password is never rendered
// back, so it is not part of the form's state.
type NewUserForm struct {
	Username    string
	DisplayName string
	Role        string
	Errors      map[string]string
}

// Validate checks the new account with the rules every account has (see accountFields);
// the role is the handler's to check, as the select offers only valid ones.
func (f *NewUserForm) Validate(password string) bool {
	f.Errors = map[string]string{}
	f.Username, f.DisplayName = accountFields(f.Errors, f.Username, f.DisplayName, password)
	return len(f.Errors) == 0
}

// accountFields applies the rules of a new account, which the command line applies too:
// the username as it will be stored (trimmed, normalised) must pass auth.CheckUsername,
// the password auth.CheckPassword and the trimmed display name auth.CheckDisplayName. It
// puts refusals in errs under the field names and returns the username and display name
// as they will be stored.
func accountFields(errs map[string]string, username, displayName, password string) (string, string) {
	username = auth.NormalizeUsername(strings.TrimSpace(username))
	displayName = strings.TrimSpace(displayName)
	refuse(errs, "username", auth.CheckUsername(username))
	refuse(errs, "password", auth.CheckPassword(password, username))
	refuse(errs, "display_name", auth.CheckDisplayName(displayName))
	return username, displayName
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

package views

import "gatehouse/auth"

// PasswordForm is the password change form's state. The passwords are never rendered back.
type PasswordForm struct {
	Forced bool   // the account must change its password before anything else
	Next   string // where to go once it is changed: a local path or an app's URL
	Errors map[string]string
}

// CheckCurrent records a problem unless a current password was typed. Whether it is the
// right one is the handler's to ask, through the sign-in throttle, before Validate: a
// wrong current password is what the page reports first.
func (f *PasswordForm) CheckCurrent(current string) bool {
	f.Errors = map[string]string{}
	if current == "" {
		f.Errors["current_password"] = "Enter your current password."
	}
	return len(f.Errors) == 0
}

// RefuseCurrent records that the current password typed is not the account's.
func (f *PasswordForm) RefuseCurrent() {
	f.Errors = map[string]string{"current_password": "That is not your current password."}
}

// Validate checks the new password of username once the current one is confirmed: it
// must pass the password policy and differ from the current one.
func (f *PasswordForm) Validate(current, next, username string) bool {
	f.Errors = map[string]string{}
	refuse(f.Errors, "new_password", auth.CheckPassword(next, username))
	if len(f.Errors) == 0 && next == current {
		f.Errors["new_password"] = "Choose a password different from the current one."
	}
	return len(f.Errors) == 0
}

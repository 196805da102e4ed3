package views

// SetupForm is the first-run form's state. The password is never rendered back.
type SetupForm struct {
	Token       string
	Username    string
	DisplayName string
	Errors      map[string]string
}

// Validate checks the first administrator's account with the rules every account has (see
// accountFields); the token is the handler's to check, against the store.
func (f *SetupForm) Validate(password string) bool {
	f.Errors = map[string]string{}
	f.Username, f.DisplayName = accountFields(f.Errors, f.Username, f.DisplayName, password)
	return len(f.Errors) == 0
}

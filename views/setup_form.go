package views

// SetupForm is the first-run form's state; its Validate is that of every new account
// (AccountFields), and the token is the handler's to check, against the store.
type SetupForm struct {
	Token string
	AccountFields
}

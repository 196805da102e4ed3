package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

// accountShow handles GET /account: the user's own account, with the two-step rule that
// applies to them.
func (h *Handler) accountShow(c echo.Context) error {
	u, _ := currentUser(c)
	_, left, err := h.db.AccountCounts(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	rule, err := h.ruleFor(c, u)
	if err != nil {
		return err
	}
	p := h.pageFor(c, "Your account")
	return render(c, http.StatusOK, views.AccountPage(p, views.AccountInfo{RecoveryLeft: left, Rule: ruleWords(p, rule)}))
}

// ruleWords says in a sentence which two-step rule applies and where it comes from.
func ruleWords(p views.Page, r db.EffectiveRule) string {
	switch {
	case r.Mode == db.MFARequired && r.Paused:
		return "required (" + r.Source + "), but enforcement is paused"
	case r.Mode == db.MFARequired:
		return "required from " + p.When(r.Deadline) + " (" + r.Source + ")"
	case r.Mode == db.MFAOptional:
		return "optional, and recommended (" + r.Source + ")"
	}
	return "not required"
}

// passwordEdit handles GET /account/password, which a user whose password an admin set must
// finish first.
func (h *Handler) passwordEdit(c echo.Context) error {
	u, _ := currentUser(c)
	next, err := h.nextValue(c)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.PasswordPage(h.pageFor(c, "Change your password"),
		views.PasswordForm{Forced: u.MustChangePassword, Next: next}))
}

// passwordUpdate handles POST /account/password: it changes the password after checking the
// current one, and signs out every other session of the user.
func (h *Handler) passwordUpdate(c echo.Context) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	s, _ := currentSession(c)
	current := c.FormValue("current_password")
	next := c.FormValue("new_password")
	then, err := h.nextValue(c)
	if err != nil {
		return err
	}
	f := views.PasswordForm{Forced: u.MustChangePassword, Next: then}
	again := func() error {
		return render(c, http.StatusUnprocessableEntity, views.PasswordPage(h.pageWithStatus(c, "Change your password", http.StatusUnprocessableEntity), f))
	}
	if !f.CheckCurrent(current) {
		return again()
	}
	ok, err := h.confirmPassword(c, u, current, "password.changed")
	if err != nil {
		return err
	}
	if !ok {
		f.RefuseCurrent()
		return again()
	}
	if !f.Validate(current, next, u.Username) {
		return again()
	}
	hash, err := h.hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	ev := h.event(c, "password.changed", u.Username)
	ev.Detail = "other sessions ended"
	if err := h.db.SetPassword(ctx, u.ID, hash, false, s.ID, ev); err != nil {
		return err
	}
	if then != "" {
		// A forced change was a step of signing in: carry on to where the user was going.
		u.MustChangePassword = false
		c.Set(userKey, u)
		return h.continueTo(c, then)
	}
	return c.Redirect(http.StatusSeeOther, "/account?msg=password-changed")
}

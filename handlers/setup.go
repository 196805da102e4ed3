package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/views"
)

var errSetupLink = &userError{Status: http.StatusForbidden,
	Message: "This setup link is not valid: it was mistyped, or a newer one was printed.",
	Hint:    "Restart `gatehouse serve` on a database with no users; it prints a new setup link."}

// setupAvailable answers 404 once any user exists: the page is gone for good, not merely
// refused.
func (h *Handler) setupAvailable(c echo.Context) error {
	n, err := h.db.CountUsers(c.Request().Context())
	if err != nil {
		return err
	}
	if n > 0 {
		return errNotFound
	}
	return nil
}

// setupForm handles GET /setup: the first-run form, for the link `gatehouse serve` printed
// while no user exists.
func (h *Handler) setupForm(c echo.Context) error {
	if err := h.setupAvailable(c); err != nil {
		return err
	}
	token := c.QueryParam("token")
	ok, err := h.db.SetupTokenValid(c.Request().Context(), auth.HashToken(token))
	if err != nil {
		return err
	}
	if !ok {
		return errSetupLink
	}
	return render(c, http.StatusOK, views.SetupPage(h.pageFor(c, "First administrator"), views.SetupForm{Token: token}))
}

// setupSubmit handles POST /setup: it creates the first administrator and signs them in.
// Only the printed link's token opens it, and only while no user exists.
func (h *Handler) setupSubmit(c echo.Context) error {
	ctx := c.Request().Context()
	if err := h.setupAvailable(c); err != nil {
		return err
	}
	f := views.SetupForm{Token: c.FormValue("token"), AccountFields: accountFields(c)}
	ok, err := h.db.SetupTokenValid(ctx, auth.HashToken(f.Token))
	if err != nil {
		return err
	}
	if !ok {
		return errSetupLink
	}
	password := c.FormValue("password")
	if !f.Validate(password) {
		return render(c, http.StatusUnprocessableEntity, views.SetupPage(h.pageWithStatus(c, "First administrator", http.StatusUnprocessableEntity), f))
	}
	hash, err := h.hasher.Hash(ctx, password)
	if err != nil {
		return err
	}
	ev := h.event(c, "setup.completed", f.Username)
	ev.Actor = f.Username
	u, err := h.db.CompleteSetup(ctx, auth.HashToken(f.Token), db.NewUser{Username: f.Username,
		DisplayName: f.DisplayName, Role: db.RoleAdmin, PasswordHash: hash}, ev)
	if errors.Is(err, db.ErrSetupDone) {
		return errNotFound // someone else finished setup first
	}
	if err != nil {
		return err
	}
	signin := h.event(c, "signin.password", u.Username)
	signin.ActorID, signin.Actor, signin.Detail = u.ID, u.Username, "first administrator created"
	if err := h.startSession(c, u, db.StageFull, signin); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/?msg=welcome")
}

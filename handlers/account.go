package handlers

import (
	"errors"
	"net/http"
	"sort"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/views"
)

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

func (h *Handler) passwordEdit(c echo.Context) error {
	u, _ := currentUser(c)
	return render(c, http.StatusOK, views.PasswordPage(h.pageFor(c, "Change your password"),
		views.PasswordForm{Forced: u.MustChangePassword}))
}

// passwordUpdate changes the password after checking the current one, and signs out every
// other session of the user.
func (h *Handler) passwordUpdate(c echo.Context) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	s, _ := currentSession(c)
	current := c.FormValue("current_password")
	next := c.FormValue("new_password")
	f := views.PasswordForm{Forced: u.MustChangePassword, Errors: map[string]string{}}
	again := func() error {
		return render(c, http.StatusUnprocessableEntity, views.PasswordPage(h.pageWithStatus(c, "Change your password", http.StatusUnprocessableEntity), f))
	}
	if current == "" {
		f.Errors["current_password"] = "Enter your current password."
		return again()
	}
	ok, err := h.confirmPassword(c, u, current, "password.changed")
	if err != nil {
		return err
	}
	if !ok {
		f.Errors["current_password"] = "That is not your current password."
		return again()
	}
	var pe *auth.PolicyError
	if err := auth.CheckPassword(next, u.Username); errors.As(err, &pe) {
		f.Errors["new_password"] = pe.Reason
		return again()
	} else if err != nil {
		return err
	}
	if next == current {
		f.Errors["new_password"] = "Choose a password different from the current one."
		return again()
	}
	hash, err := h.hasher.Hash(ctx, next)
	if errors.Is(err, auth.ErrBusy) {
		return busy(c, err)
	}
	if err != nil {
		return err
	}
	ev := h.event(c, "password.changed", u.Username)
	ev.Detail = "other sessions ended"
	if err := h.db.SetPassword(ctx, u.ID, hash, false, s.ID, ev); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/account?msg=password-changed")
}

func (h *Handler) sessionsIndex(c echo.Context) error {
	u, _ := currentUser(c)
	me, _ := currentSession(c)
	ss, err := h.db.ListSessions(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	rows := make([]views.SessionRow, 0, len(ss))
	for _, s := range ss {
		rows = append(rows, views.SessionRow{Session: s, Current: s.ID == me.ID, Browser: browserSummary(s.UserAgent)})
	}
	// The current session first: it is the one people look for.
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Current && !rows[j].Current })
	return render(c, http.StatusOK, views.SessionsPage(h.pageFor(c, "Sessions"), rows))
}

// sessionRevoke ends one of the user's own sessions. The delete is keyed by the user's id
// too, so another user's session id is a 404, exactly like an id that never existed.
func (h *Handler) sessionRevoke(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	ev := h.event(c, "session.revoked", u.Username)
	ev.Detail = "session " + c.Param("id")
	err = h.db.RevokeUserSession(c.Request().Context(), u.ID, id, ev)
	if errors.Is(err, db.ErrNotFound) {
		return errNotFound
	}
	if err != nil {
		return err
	}
	me, _ := currentSession(c)
	if id == me.ID {
		h.clearSessionCookies(c)
		return c.Redirect(http.StatusSeeOther, "/login?out=1")
	}
	return c.Redirect(http.StatusSeeOther, "/account/sessions?msg=session-revoked")
}

func (h *Handler) sessionsRevokeOthers(c echo.Context) error {
	u, _ := currentUser(c)
	me, _ := currentSession(c)
	ev := h.event(c, "sessions.revoked", u.Username)
	if _, err := h.db.RevokeSessions(c.Request().Context(), u.ID, me.ID, ev); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/account/sessions?msg=sessions-revoked")
}

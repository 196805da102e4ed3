package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

// adminSessions handles GET /admin/sessions: how many sessions exist, and the form that
// signs everyone out.
func (h *Handler) adminSessions(c echo.Context) error {
	return h.renderAdminSessions(c, http.StatusOK, "", "")
}

func (h *Handler) renderAdminSessions(c echo.Context, status int, problem, typed string) error {
	stats, err := h.db.SessionCounts(c.Request().Context())
	if err != nil {
		return err
	}
	others := max(stats.Total-1, 0) // the admin's own session stays
	return render(c, status, views.AdminSessionsPage(h.pageWithStatus(c, "Sessions", status),
		views.AdminSessions{Stats: stats, Others: others, Error: problem, Confirm: typed}))
}

// adminSessionsRevokeAll handles POST /admin/sessions/revoke-all: it signs everyone but the
// acting admin out. It touches only session rows (and the audit log) and aborts if more
// sessions exist than the admin was shown.
func (h *Handler) adminSessionsRevokeAll(c echo.Context) error {
	expected, ok := typedConfirmation(c, views.SignOutPhrase)
	if !ok {
		return h.renderAdminSessions(c, http.StatusUnprocessableEntity,
			"Type \u201c"+views.SignOutPhrase+"\u201d exactly to confirm. Nothing was changed.", c.FormValue("confirm"))
	}
	me, _ := currentSession(c)
	n, err := h.db.RevokeAllSessionsExcept(c.Request().Context(), me.ID, expected, h.event(c, "sessions.revoked_all", "everyone"))
	if errors.Is(err, db.ErrCountChanged) {
		return h.renderAdminSessions(c, http.StatusConflict,
			"More sessions exist now than you were shown, so nothing was changed. Check the new count and confirm again.", "")
	}
	if err != nil {
		return err
	}
	h.log.Info("everyone signed out", "sessions", n, "request_id", requestID(c))
	return c.Redirect(http.StatusSeeOther, "/admin/sessions?msg=saved")
}

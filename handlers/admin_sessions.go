package handlers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

// adminSessions handles GET /admin/sessions: how many sessions exist, the most recent
// ones across users (filtered by user and address) with a sign-out button each, and the
// form that signs everyone out.
func (h *Handler) adminSessions(c echo.Context) error {
	return h.renderAdminSessions(c, http.StatusOK, "", "")
}

// recentSessions is how many sessions /admin/sessions lists at most.
const recentSessions = 200

func (h *Handler) renderAdminSessions(c echo.Context, status int, problem, typed string) error {
	ctx := c.Request().Context()
	stats, err := h.db.SessionCounts(ctx)
	if err != nil {
		return err
	}
	v := views.AdminSessions{Stats: stats, Others: max(stats.Total-1, 0), // the admin's own session stays
		Error: problem, Confirm: typed, User: strings.TrimSpace(c.QueryParam("user")),
		Addr: strings.TrimSpace(c.QueryParam("addr")), Limit: recentSessions}
	found, err := h.db.RecentSessions(ctx, db.SessionFilter{User: v.User, Addr: v.Addr, Limit: recentSessions})
	if err != nil {
		return err
	}
	me, _ := currentSession(c)
	for _, f := range found {
		v.Rows = append(v.Rows, views.SessionRow{Session: f.Session, Current: f.Session.ID == me.ID,
			Browser: browserSummary(f.Session.UserAgent), Username: f.User.Username})
	}
	return render(c, status, views.AdminSessionsPage(h.pageWithStatus(c, "Sessions", status), v))
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

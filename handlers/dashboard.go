package handlers

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"gatehouse/views"
)

// dashboard handles GET /, the signed-in user's start page. With next naming an app that
// waits for must-read notices (forward auth's detour), it is where they are read: once
// none is left, the browser goes on to the app.
func (h *Handler) dashboard(c echo.Context) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	var d views.Dashboard
	if next := c.QueryParam("next"); next != "" {
		target, app, ok, err := h.appNext(ctx, next)
		if err != nil {
			return err
		}
		if ok {
			decision, err := h.appDecision(c, app, target)
			if err != nil {
				return err
			}
			switch decision.Verdict {
			case forwardPass:
				return c.Redirect(http.StatusSeeOther, target)
			case forwardMustRead:
				d.ContinueTo = app.Host
				letFormsLeadTo(c, target) // acknowledging the last notice goes on to the app
			}
		}
	}
	sessions, codes, err := h.accountCountsOf(c, u.ID)
	if err != nil {
		return err
	}
	d.Sessions, d.RecoveryLeft = sessions, codes
	return render(c, http.StatusOK, views.DashboardPage(h.pageFor(c, "Dashboard"), d))
}

// healthz handles GET /healthz: the process is up; whether the database answers is
// readyz's question.
func (h *Handler) healthz(c echo.Context) error {
	return c.String(http.StatusOK, "ok\n")
}

// readyz handles GET /readyz: 200 only while the database answers a read.
func (h *Handler) readyz(c echo.Context) error {
	if err := h.db.Ping(c.Request().Context()); err != nil {
		noteCause(c, fmt.Errorf("not ready: %w", err))
		return c.String(http.StatusServiceUnavailable, "database unavailable\n")
	}
	return c.String(http.StatusOK, "ready\n")
}

package handlers

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"gatehouse/views"
)

// dashboard handles GET /, the signed-in user's start page.
func (h *Handler) dashboard(c echo.Context) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	sessions, codes, err := h.db.AccountCounts(ctx, u.ID)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.DashboardPage(h.pageFor(c, "Dashboard"),
		views.Dashboard{Sessions: sessions, RecoveryLeft: codes}))
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

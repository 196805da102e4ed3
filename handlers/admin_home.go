package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

// healthRows are the rows of the health panel: audited events are counted from the audit
// log, the others from the hourly counters.
var healthRows = []struct {
	label   string
	filter  db.AuditFilter
	counter string
}{
	{label: "Failed sign-ins", filter: db.AuditFilter{Kinds: []string{"signin.password", "signin.mfa", "signin.recovery_code",
		"signin.passkey"}, Outcome: db.Failure}},
	{label: "Passkey clone warnings", filter: db.AuditFilter{Kind: "passkey.clone_warning"}},
	{label: "Throttled attempts", filter: db.AuditFilter{Kind: "signin.throttled"}},
	{label: "Refused code replays", filter: db.AuditFilter{Kind: "mfa.replay_refused"}},
	{label: "Stale cookies cleared", counter: countStaleCookie},
	{label: "Refused forms (CSRF)", counter: countCSRF},
	{label: "Server errors (5xx)", counter: countServerError},
	{label: "Notices not loaded", counter: countBannersLost},
	{label: "Mail not delivered", filter: db.AuditFilter{Kind: "mail.failed"}},
}

// adminHome handles GET /admin: the health panel and the counts an admin checks first.
func (h *Handler) adminHome(c echo.Context) error {
	ctx := c.Request().Context()
	now := h.now()
	hourAgo, dayAgo := now.Add(-time.Hour), now.Add(-24*time.Hour)
	// This process's counts are written first, so the panel shows only what is stored and
	// agrees with every other process's panel.
	h.counts.flush(ctx)
	// Counters are kept per hour, so "last hour" means this clock hour and the one before.
	hourCounts, err := h.db.EventCountsSince(ctx, hourAgo)
	if err != nil {
		return err
	}
	dayCounts, err := h.db.EventCountsSince(ctx, dayAgo)
	if err != nil {
		return err
	}
	var home views.AdminHome
	for _, r := range healthRows {
		row := views.HealthRow{Label: r.label}
		if r.counter != "" {
			row.Hour, row.Day = hourCounts[r.counter], dayCounts[r.counter]
		} else {
			f := r.filter
			f.From = hourAgo
			n, err := h.db.CountEvents(ctx, f)
			if err != nil {
				return err
			}
			f.From = dayAgo
			m, err := h.db.CountEvents(ctx, f)
			if err != nil {
				return err
			}
			row.Hour, row.Day = int64(n), int64(m)
		}
		home.Health = append(home.Health, row)
	}
	if home.Users, err = h.db.CountUsers(ctx); err != nil {
		return err
	}
	if home.Sessions, err = h.db.SessionCounts(ctx); err != nil {
		return err
	}
	if home.Paused, err = h.db.MFAPaused(ctx); err != nil {
		return err
	}
	return render(c, http.StatusOK, views.AdminHomePage(h.pageFor(c, "Administration"), home))
}

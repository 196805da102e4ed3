package handlers

import (
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

// healthKinds are the rows of the health panel: audited events are counted from the audit
// log, the others from the hourly counters.
var healthRows = []struct {
	label   string
	filter  db.AuditFilter
	counter string
}{
	{label: "Failed sign-ins", filter: db.AuditFilter{Kinds: []string{"signin.password", "signin.mfa", "signin.recovery_code"}, Outcome: db.Failure}},
	{label: "Throttled attempts", filter: db.AuditFilter{Kind: "signin.throttled"}},
	{label: "Refused code replays", filter: db.AuditFilter{Kind: "mfa.replay_refused"}},
	{label: "Stale cookies cleared", counter: countStaleCookie},
	{label: "Refused forms (CSRF)", counter: countCSRF},
	{label: "Server errors (5xx)", counter: countServerError},
	{label: "Notices not loaded", counter: countBannersLost},
}

func (h *Handler) adminHome(c echo.Context) error {
	ctx := c.Request().Context()
	now := h.now()
	hourAgo, dayAgo := now.Add(-time.Hour), now.Add(-24*time.Hour)
	// Counters are kept per hour, so "last hour" means this clock hour and the one before.
	hourCounts, err := h.db.EventCountsSince(ctx, hourAgo)
	if err != nil {
		return err
	}
	dayCounts, err := h.db.EventCountsSince(ctx, dayAgo)
	if err != nil {
		return err
	}
	for kind, n := range h.counts.pending() {
		hourCounts[kind] += n
		dayCounts[kind] += n
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

// typedConfirmation checks the typed phrase and the count the admin was shown.
func typedConfirmation(c echo.Context, phrase string) (expected int, ok bool) {
	typed := strings.ToLower(strings.Join(strings.Fields(c.FormValue("confirm")), " "))
	n, err := strconv.Atoi(c.FormValue("expected"))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, typed == strings.ToLower(phrase)
}

// adminSessionsRevokeAll signs everyone but the acting admin out. It touches only session
// rows (and the audit log) and aborts if more sessions exist than the admin was shown.
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

const auditPageSize = 50

// auditQuery reads the audit filters; a malformed time is reported, not ignored.
func (h *Handler) auditQuery(c echo.Context) (views.AuditQuery, db.AuditFilter, string) {
	q := views.AuditQuery{Actor: strings.TrimSpace(c.QueryParam("actor")), Subject: strings.TrimSpace(c.QueryParam("subject")),
		Kind: strings.TrimSpace(c.QueryParam("kind")), Outcome: c.QueryParam("outcome"),
		From: c.QueryParam("from"), To: c.QueryParam("to")}
	f := db.AuditFilter{Actor: q.Actor, Subject: q.Subject, Kind: q.Kind}
	if q.Outcome == db.Success || q.Outcome == db.Failure {
		f.Outcome = q.Outcome
	}
	var problem string
	var err error
	if f.From, err = h.parseFormTime(q.From); err != nil {
		problem = "The start time is not a date and time; it was ignored."
	}
	if f.To, err = h.parseFormTime(q.To); err != nil {
		problem = "The end time is not a date and time; it was ignored."
	}
	if id, err := strconv.ParseInt(c.QueryParam("before"), 10, 64); err == nil && id > 0 {
		f.BeforeID = id
	}
	return q, f, problem
}

func (h *Handler) adminAudit(c echo.Context) error {
	ctx := c.Request().Context()
	q, f, problem := h.auditQuery(c)
	total, err := h.db.CountEvents(ctx, db.AuditFilter{Actor: f.Actor, Subject: f.Subject, Kind: f.Kind,
		Outcome: f.Outcome, From: f.From, To: f.To})
	if err != nil {
		return err
	}
	f.Limit = auditPageSize + 1
	evs, err := h.db.ListEvents(ctx, f)
	if err != nil {
		return err
	}
	v := views.AuditView{Query: q, Total: total, Error: problem, Events: evs}
	if len(evs) > auditPageSize {
		v.Events = evs[:auditPageSize]
		v.NextID = v.Events[auditPageSize-1].ID
	}
	return render(c, http.StatusOK, views.AdminAuditPage(h.pageFor(c, "Audit log"), v))
}

func (h *Handler) adminAuditCSV(c echo.Context) error {
	_, f, _ := h.auditQuery(c)
	f.Limit = 100000
	evs, err := h.db.ListEvents(c.Request().Context(), f)
	if err != nil {
		return err
	}
	hd := c.Response().Header()
	hd.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	hd.Set(echo.HeaderContentDisposition, `attachment; filename="gatehouse-audit.csv"`)
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	_ = w.Write([]string{"id", "time", "event", "outcome", "actor", "subject", "client_addr", "detail", "request_id"})
	for _, e := range evs {
		_ = w.Write([]string{strconv.FormatInt(e.ID, 10), e.At.UTC().Format(time.RFC3339), e.Kind, e.Outcome,
			csvCell(e.Actor), csvCell(e.Subject), csvCell(e.ClientAddr), csvCell(e.Detail), e.RequestID})
	}
	w.Flush()
	return w.Error()
}

// adminUserDeleteForm asks for the username to be typed before deleting the account.
func (h *Handler) adminUserDeleteForm(c echo.Context) error {
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	return h.renderConfirmDelete(c, u, http.StatusOK, "")
}

func (h *Handler) renderConfirmDelete(c echo.Context, u db.User, status int, problem string) error {
	id := strconv.FormatInt(u.ID, 10)
	return render(c, status, views.ConfirmBulkPage(h.pageWithStatus(c, "Delete "+u.Username, status), views.ConfirmBulk{
		Title: "Delete the account",
		Summary: fmt.Sprintf("This deletes %s with their sessions, two-step factor, recovery codes, group memberships and read receipts. "+
			"Audit entries keep the username. This cannot be undone.", u.Username),
		Action: "/admin/users/" + id + "/delete", Phrase: u.Username, Count: 1, Error: problem, Cancel: "/admin/users/" + id}))
}

func (h *Handler) adminUserDelete(c echo.Context) error {
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	if _, ok := typedConfirmation(c, u.Username); !ok {
		return h.renderConfirmDelete(c, u, http.StatusUnprocessableEntity, "Type the username exactly to confirm. Nothing was changed.")
	}
	if me, _ := currentUser(c); me.ID == u.ID {
		return h.renderConfirmDelete(c, u, http.StatusConflict, "You cannot delete your own account; another admin, or the command line, can.")
	}
	err = h.db.DeleteUser(c.Request().Context(), u.ID, h.event(c, "user.deleted", u.Username))
	switch {
	case errors.Is(err, db.ErrLastAdmin):
		return h.renderConfirmDelete(c, u, http.StatusConflict, "This is the last active admin. Make someone else an admin first.")
	case errors.Is(err, db.ErrNotFound):
		return errNotFound
	case err != nil:
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/users?msg=saved")
}

// adminGroupResetForm shows how many members' factors a bulk reset would remove.
func (h *Handler) adminGroupResetForm(c echo.Context) error {
	g, err := h.adminGroup(c)
	if err != nil {
		return err
	}
	return h.renderGroupReset(c, g, http.StatusOK, "")
}

func (h *Handler) renderGroupReset(c echo.Context, g db.Group, status int, problem string) error {
	with, err := h.db.GroupFactorCount(c.Request().Context(), g.ID)
	if err != nil {
		return err
	}
	id := strconv.FormatInt(g.ID, 10)
	return render(c, status, views.ConfirmBulkPage(h.pageWithStatus(c, "Reset two-step verification", status), views.ConfirmBulk{
		Title: "Reset two-step verification",
		Summary: fmt.Sprintf("This removes the authenticator and recovery codes of %d members of %s and signs them out; "+
			"they set up a new authenticator at their next sign-in. Passwords are untouched.", with, g.Name),
		Action: "/admin/groups/" + id + "/reset-mfa", Phrase: g.Name, Count: with, Error: problem, Cancel: "/admin/groups/" + id}))
}

func (h *Handler) adminGroupReset(c echo.Context) error {
	g, err := h.adminGroup(c)
	if err != nil {
		return err
	}
	expected, ok := typedConfirmation(c, g.Name)
	if !ok {
		return h.renderGroupReset(c, g, http.StatusUnprocessableEntity, "Type the group's name exactly to confirm. Nothing was changed.")
	}
	ev := h.event(c, "mfa.reset", "")
	ev.Detail = "bulk reset for group " + g.Name + "; sessions ended"
	_, err = h.db.BulkResetMFA(c.Request().Context(), g.ID, expected, ev)
	if errors.Is(err, db.ErrCountChanged) {
		return h.renderGroupReset(c, g, http.StatusConflict,
			"More members have two-step verification now than you were shown, so nothing was changed. Check the new count and confirm again.")
	}
	if err != nil {
		return err
	}
	if me, _ := currentUser(c); me.HasMFA {
		if _, err := h.db.FactorOf(c.Request().Context(), me.ID); errors.Is(err, db.ErrNotFound) {
			h.clearSessionCookies(c) // the admin reset their own factor along with the group's
			return c.Redirect(http.StatusSeeOther, "/login?ended=1")
		}
	}
	return c.Redirect(http.StatusSeeOther, "/admin/groups/"+strconv.FormatInt(g.ID, 10)+"?msg=saved")
}

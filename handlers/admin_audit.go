package handlers

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

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
	if f.From, err = views.ParseFormTime(q.From, h.cfg.Location); err != nil {
		problem = "The start time is not a date and time; it was ignored."
	}
	if f.To, err = views.ParseFormTime(q.To, h.cfg.Location); err != nil {
		problem = "The end time is not a date and time; it was ignored."
	}
	if id, err := strconv.ParseInt(c.QueryParam("before"), 10, 64); err == nil && id > 0 {
		f.BeforeID = id
	}
	return q, f, problem
}

// adminAudit handles GET /admin/audit: the audit log, filtered, a page at a time, newest
// first.
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

// adminAuditCSV handles GET /admin/audit.csv: the filtered audit log as a spreadsheet.
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

package handlers

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

// audienceOptions lists every audience a notice may have: everyone, each role, each group.
func (h *Handler) audienceOptions(ctx context.Context) ([]views.AudienceOption, map[int64]string, error) {
	opts := []views.AudienceOption{{Value: "everyone", Label: "Everyone"}}
	for _, r := range db.Roles {
		opts = append(opts, views.AudienceOption{Value: db.ScopeValue(r, 0), Label: "Role: " + r})
	}
	groups, err := h.db.ListGroups(ctx)
	if err != nil {
		return nil, nil, err
	}
	names := make(map[int64]string, len(groups))
	for _, g := range groups {
		names[g.ID] = g.Name
		opts = append(opts, views.AudienceOption{Value: db.ScopeValue("", g.ID),
			Label: "Group: " + g.Name + " (" + strconv.Itoa(g.Members) + ")"})
	}
	return opts, names, nil
}

// readNoticeForm fills f with the notice form's fields as posted; f.Validate checks them.
func readNoticeForm(c echo.Context, f views.NoticeForm) views.NoticeForm {
	form, _ := c.FormParams()
	f.Title, f.Body = c.FormValue("title"), c.FormValue("body")
	f.Kind, f.Severity = c.FormValue("kind"), c.FormValue("severity")
	f.StartsAt, f.EndsAt = c.FormValue("starts_at"), c.FormValue("ends_at")
	f.Audience = form["audience"]
	f.Minor = c.FormValue("minor") != ""
	f.Email = c.FormValue("email") != ""
	f.Remind, f.DueAt, f.Renew = c.FormValue("remind"), c.FormValue("due_at"), c.FormValue("renew_every")
	return f
}

// adminNoticesIndex handles GET /admin/notices: the write form and the notices posted, all
// of them for an admin, their own for a publisher.
func (h *Handler) adminNoticesIndex(c echo.Context) error {
	opts, _, err := h.audienceOptions(c.Request().Context())
	if err != nil {
		return err
	}
	f := views.NoticeForm{Kind: db.NoticeNormal, Severity: db.SeverityInfo, Remind: db.RemindNone, Options: opts}
	return h.renderNoticesIndex(c, http.StatusOK, f)
}

func (h *Handler) renderNoticesIndex(c echo.Context, status int, f views.NoticeForm) error {
	u, _ := currentUser(c)
	author := u.ID
	if u.IsAdmin() {
		author = 0 // admins see everyone's
	}
	rows, err := h.db.ListNotices(c.Request().Context(), author, 200, h.now())
	if err != nil {
		return err
	}
	f.MailOn = h.mailOn()
	return render(c, status, views.AdminNoticesPage(h.pageWithStatus(c, "Notices", status), f, rows))
}

// preview fills the form's banner preview and reach counts.
func (h *Handler) preview(c echo.Context, f *views.NoticeForm, in db.NoticeInput) error {
	u, _ := currentUser(c)
	reach, err := h.db.AudienceReach(c.Request().Context(), in.Audience)
	if err != nil {
		return err
	}
	n := db.Notice{ID: f.ID, Title: in.Title, Body: in.Body, Kind: in.Kind, Severity: in.Severity, AuthorName: u.Username}
	pv := &views.NoticePreview{Notice: n, Reach: reach.Users, NoAddress: reach.NoAddress}
	if n.MustRead() {
		pv.MustAck = reach.Users
	}
	f.Preview, f.NoAddress = pv, &reach.NoAddress
	return nil
}

// adminNoticesCreate handles POST /admin/notices: it publishes at once (303); the preview
// button only refreshes the form.
func (h *Handler) adminNoticesCreate(c echo.Context) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	opts, groups, err := h.audienceOptions(ctx)
	if err != nil {
		return err
	}
	f := readNoticeForm(c, views.NoticeForm{Options: opts})
	in, ok := f.Validate(h.now(), h.cfg.Location, groups)
	if !ok {
		return h.renderNoticesIndex(c, http.StatusUnprocessableEntity, f)
	}
	if c.FormValue("preview") != "" {
		if err := h.preview(c, &f, in); err != nil {
			return err
		}
		return h.renderNoticesIndex(c, http.StatusOK, f)
	}
	n, err := h.db.CreateNotice(ctx, in, u, h.event(c, "notice.posted", ""))
	h.mail.Kick()                       // a notice to be mailed that starts now is mailed now
	if errors.Is(err, db.ErrNotFound) { // a chosen group was deleted meanwhile
		f.Errors["audience"] = "One of the chosen groups was just deleted. Choose again."
		return h.renderNoticesIndex(c, http.StatusUnprocessableEntity, f)
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/notices/"+strconv.FormatInt(n.ID, 10)+"?msg=notice-posted")
}

// managedNotice loads :id for someone allowed to manage it; others get the same 404 as for
// a missing notice.
func (h *Handler) managedNotice(c echo.Context) (db.Notice, error) {
	n, err := byPathID(c, h.db.NoticeByID)
	if err != nil {
		return db.Notice{}, err
	}
	if u, _ := currentUser(c); !n.ManagedBy(u) {
		return db.Notice{}, errNotFound
	}
	return n, nil
}

func (h *Handler) receiptsOf(ctx context.Context, n db.Notice) (views.NoticeReceipts, error) {
	_, groups, err := h.audienceOptions(ctx)
	if err != nil {
		return views.NoticeReceipts{}, err
	}
	rs, err := h.db.NoticeReceipts(ctx, n, h.now())
	if err != nil {
		return views.NoticeReceipts{}, err
	}
	out := views.NoticeReceipts{Notice: n, Audience: db.DescribeAudience(n.Audience, groups)}
	byGroup := map[string]*views.GroupProgress{}
	for _, r := range rs {
		if r.AckedAt.IsZero() {
			out.Pending = append(out.Pending, r)
		} else {
			out.Acked = append(out.Acked, r)
		}
		for _, g := range r.Groups {
			gp := byGroup[g]
			if gp == nil {
				gp = &views.GroupProgress{Name: g}
				byGroup[g] = gp
			}
			gp.Total++
			if !r.AckedAt.IsZero() {
				gp.Acked++
			}
		}
	}
	// Once the notice is due, the readers who are late come first: they are who to chase.
	sort.SliceStable(out.Pending, func(i, j int) bool { return out.Pending[i].Overdue && !out.Pending[j].Overdue })
	for _, gp := range byGroup {
		out.Groups = append(out.Groups, *gp)
	}
	sort.Slice(out.Groups, func(i, j int) bool { return out.Groups[i].Name < out.Groups[j].Name })
	return out, nil
}

// adminNoticeShow handles GET /admin/notices/:id: who has read the notice, overall and by
// group.
func (h *Handler) adminNoticeShow(c echo.Context) error {
	n, err := h.managedNotice(c)
	if err != nil {
		return err
	}
	r, err := h.receiptsOf(c.Request().Context(), n)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.AdminNoticePage(h.pageFor(c, n.Title), r))
}

// adminNoticeEdit handles GET /admin/notices/:id/edit: the edit form, filled from the
// notice.
func (h *Handler) adminNoticeEdit(c echo.Context) error {
	n, err := h.managedNotice(c)
	if err != nil {
		return err
	}
	opts, _, err := h.audienceOptions(c.Request().Context())
	if err != nil {
		return err
	}
	f := views.NoticeFormFrom(n, h.cfg.Location)
	f.Options, f.MailOn = opts, h.mailOn()
	reach, err := h.db.AudienceReach(c.Request().Context(), n.Audience)
	if err != nil {
		return err
	}
	f.NoAddress = &reach.NoAddress
	return render(c, http.StatusOK, views.AdminNoticeEditPage(h.pageFor(c, "Edit notice"), f))
}

// adminNoticeUpdate handles POST /admin/notices/:id: it saves an edit; the preview button
// only refreshes the form.
func (h *Handler) adminNoticeUpdate(c echo.Context) error {
	ctx := c.Request().Context()
	n, err := h.managedNotice(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	opts, groups, err := h.audienceOptions(ctx)
	if err != nil {
		return err
	}
	f := readNoticeForm(c, views.NoticeForm{ID: n.ID, MustRead: n.MustRead(), Options: opts, MailOn: h.mailOn()})
	in, ok := f.ValidateEdit(n, h.now(), h.cfg.Location, groups)
	if !ok {
		return render(c, http.StatusUnprocessableEntity, views.AdminNoticeEditPage(h.pageWithStatus(c, "Edit notice", http.StatusUnprocessableEntity), f))
	}
	if c.FormValue("preview") != "" {
		if err := h.preview(c, &f, in); err != nil {
			return err
		}
		return render(c, http.StatusOK, views.AdminNoticeEditPage(h.pageFor(c, "Edit notice"), f))
	}
	_, err = h.db.UpdateNotice(ctx, n.ID, in, u, f.Minor, h.event(c, "notice.edited", ""))
	h.mail.Kick() // mailing switched on for a notice that has started goes out now
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/notices/"+strconv.FormatInt(n.ID, 10)+"?msg=notice-updated")
}

// adminNoticeArchive handles POST /admin/notices/:id/archive: the notice stops showing as a
// banner; archiving it twice changes nothing.
func (h *Handler) adminNoticeArchive(c echo.Context) error {
	n, err := h.managedNotice(c)
	if err != nil {
		return err
	}
	err = h.db.ArchiveNotice(c.Request().Context(), n.ID, h.event(c, "notice.archived", ""))
	if err != nil && !errors.Is(err, db.ErrNotFound) { // already archived: nothing to do
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/notices/"+strconv.FormatInt(n.ID, 10)+"?msg=notice-archived")
}

// adminNoticeReceiptsCSV handles GET /admin/notices/:id/receipts.csv: the receipts as a
// spreadsheet, one row per reader.
func (h *Handler) adminNoticeReceiptsCSV(c echo.Context) error {
	n, err := h.managedNotice(c)
	if err != nil {
		return err
	}
	rs, err := h.db.NoticeReceipts(c.Request().Context(), n, h.now())
	if err != nil {
		return err
	}
	hd := c.Response().Header()
	hd.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	hd.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="notice-%d-receipts.csv"`, n.ID))
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	_ = w.Write([]string{"username", "display_name", "role", "groups", "state", "acknowledged_at", "version", "overdue"})
	for _, r := range rs {
		state, at, version := "not yet", "", ""
		switch {
		case !r.AckedAt.IsZero():
			state, at, version = "acknowledged", r.AckedAt.UTC().Format(time.RFC3339), strconv.Itoa(r.AckedVersion)
		case !r.DismissedAt.IsZero():
			state = "dismissed"
		}
		overdue := "no"
		if r.Overdue {
			overdue = "yes"
		}
		_ = w.Write([]string{csvCell(r.User.Username), csvCell(r.User.DisplayName), r.User.Role, csvCell(strings.Join(r.Groups, ", ")),
			state, at, version, overdue})
	}
	w.Flush()
	return w.Error()
}

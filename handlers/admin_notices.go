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
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

const (
	maxTitleLen = 200
	maxBodyLen  = 10000
	formTime    = "2006-01-02T15:04"
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

// parseFormTime reads a datetime-local value in the portal's zone; "" is the zero time.
func (h *Handler) parseFormTime(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{formTime, "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, v, h.cfg.Location); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("bad time")
}

func (h *Handler) formatFormTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(h.cfg.Location).Format(formTime)
}

// parseNoticeForm validates the notice form; the returned form carries any field errors.
func (h *Handler) parseNoticeForm(c echo.Context, f views.NoticeForm, groups map[int64]string) (views.NoticeForm, db.NoticeInput) {
	form, _ := c.FormParams()
	f.Title = strings.TrimSpace(c.FormValue("title"))
	f.Body = strings.TrimSpace(strings.ReplaceAll(c.FormValue("body"), "\r\n", "\n"))
	f.Kind = c.FormValue("kind")
	f.Severity = c.FormValue("severity")
	f.StartsAt = c.FormValue("starts_at")
	f.EndsAt = c.FormValue("ends_at")
	f.Audience = form["audience"]
	f.Minor = c.FormValue("minor") != ""
	f.Errors = map[string]string{}
	in := db.NoticeInput{Title: f.Title, Body: f.Body, Kind: f.Kind, Severity: f.Severity}
	switch n := utf8.RuneCountInString(f.Title); {
	case n == 0:
		f.Errors["title"] = "Give the notice a title."
	case n > maxTitleLen:
		f.Errors["title"] = fmt.Sprintf("Use at most %d characters.", maxTitleLen)
	case !singleLine(f.Title):
		f.Errors["title"] = "Keep the title on one line."
	}
	switch n := utf8.RuneCountInString(f.Body); {
	case n == 0:
		f.Errors["body"] = "Write the message."
	case n > maxBodyLen:
		f.Errors["body"] = fmt.Sprintf("Use at most %d characters.", maxBodyLen)
	}
	if f.Kind == "" {
		f.Kind, in.Kind = db.NoticeNormal, db.NoticeNormal
	}
	if f.Severity == "" {
		f.Severity, in.Severity = db.SeverityInfo, db.SeverityInfo
	}
	if f.Kind != db.NoticeNormal && f.Kind != db.NoticeMustRead {
		f.Errors["kind"] = "Choose normal or must read."
	}
	if f.Severity != db.SeverityInfo && f.Severity != db.SeverityWarning && f.Severity != db.SeverityCritical {
		f.Errors["severity"] = "Choose info, warning or critical."
	}
	aud, ok := db.ParseAudience(f.Audience, groups)
	switch {
	case !ok:
		f.Errors["audience"] = "One of the chosen audiences does not exist any more. Choose again."
	case aud.Empty():
		f.Errors["audience"] = "Choose who should see the notice."
	}
	in.Audience = aud
	var err error
	if in.StartsAt, err = h.parseFormTime(f.StartsAt); err != nil {
		f.Errors["starts_at"] = "Enter a date and time, or leave it empty to start now."
	}
	if in.EndsAt, err = h.parseFormTime(f.EndsAt); err != nil {
		f.Errors["ends_at"] = "Enter a date and time, or leave it empty for no end."
	}
	start := in.StartsAt
	if start.IsZero() {
		start = h.now()
	}
	if !in.EndsAt.IsZero() && f.Errors["ends_at"] == "" {
		switch {
		case !in.EndsAt.After(start):
			f.Errors["ends_at"] = "The end must be after the start."
		case !in.EndsAt.After(h.now()):
			f.Errors["ends_at"] = "The end is in the past, so nobody would see the notice."
		}
	}
	return f, in
}

// canManage reports whether u may edit a notice and see its receipts: its author, or an admin.
func canManage(u db.User, n db.Notice) bool {
	return u.Role == db.RoleAdmin || (n.AuthorID != 0 && n.AuthorID == u.ID)
}

func (h *Handler) adminNoticesIndex(c echo.Context) error {
	opts, _, err := h.audienceOptions(c.Request().Context())
	if err != nil {
		return err
	}
	f := views.NoticeForm{Kind: db.NoticeNormal, Severity: db.SeverityInfo, Options: opts}
	return h.renderNoticesIndex(c, http.StatusOK, f)
}

func (h *Handler) renderNoticesIndex(c echo.Context, status int, f views.NoticeForm) error {
	u, _ := currentUser(c)
	author := u.ID
	if u.Role == db.RoleAdmin {
		author = 0 // admins see everyone's
	}
	rows, err := h.db.ListNotices(c.Request().Context(), author, 200)
	if err != nil {
		return err
	}
	return render(c, status, views.AdminNoticesPage(h.pageWithStatus(c, "Notices", status), f, rows))
}

// preview fills the form's banner preview and reach counts.
func (h *Handler) preview(c echo.Context, f *views.NoticeForm, in db.NoticeInput) error {
	u, _ := currentUser(c)
	reach, err := h.db.AudienceSize(c.Request().Context(), in.Audience)
	if err != nil {
		return err
	}
	n := db.Notice{ID: f.ID, Title: in.Title, Body: in.Body, Kind: in.Kind, Severity: in.Severity, AuthorName: u.Username}
	pv := &views.NoticePreview{Notice: n, Reach: reach}
	if n.MustRead() {
		pv.MustAck = reach
	}
	f.Preview = pv
	return nil
}

// adminNoticesCreate publishes at once (303); the preview button only refreshes the form.
func (h *Handler) adminNoticesCreate(c echo.Context) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	opts, groups, err := h.audienceOptions(ctx)
	if err != nil {
		return err
	}
	f, in := h.parseNoticeForm(c, views.NoticeForm{Options: opts}, groups)
	if len(f.Errors) > 0 {
		return h.renderNoticesIndex(c, http.StatusUnprocessableEntity, f)
	}
	if c.FormValue("preview") != "" {
		if err := h.preview(c, &f, in); err != nil {
			return err
		}
		return h.renderNoticesIndex(c, http.StatusOK, f)
	}
	n, err := h.db.CreateNotice(ctx, in, u, h.event(c, "notice.posted", ""))
	h.live.invalidate()
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
	id, err := pathID(c)
	if err != nil {
		return db.Notice{}, err
	}
	n, err := h.db.NoticeByID(c.Request().Context(), id)
	if errors.Is(err, db.ErrNotFound) {
		return db.Notice{}, errNotFound
	}
	if err != nil {
		return db.Notice{}, err
	}
	if u, _ := currentUser(c); !canManage(u, n) {
		return db.Notice{}, errNotFound
	}
	return n, nil
}

func (h *Handler) receiptsOf(ctx context.Context, n db.Notice) (views.NoticeReceipts, error) {
	_, groups, err := h.audienceOptions(ctx)
	if err != nil {
		return views.NoticeReceipts{}, err
	}
	rs, err := h.db.NoticeReceipts(ctx, n)
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
	for _, gp := range byGroup {
		out.Groups = append(out.Groups, *gp)
	}
	sort.Slice(out.Groups, func(i, j int) bool { return out.Groups[i].Name < out.Groups[j].Name })
	return out, nil
}

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

func (h *Handler) adminNoticeEdit(c echo.Context) error {
	n, err := h.managedNotice(c)
	if err != nil {
		return err
	}
	opts, _, err := h.audienceOptions(c.Request().Context())
	if err != nil {
		return err
	}
	f := views.NoticeForm{ID: n.ID, MustRead: n.MustRead(), Title: n.Title, Body: n.Body, Kind: n.Kind,
		Severity: n.Severity, StartsAt: h.formatFormTime(n.StartsAt), EndsAt: h.formatFormTime(n.EndsAt),
		Audience: db.AudienceValues(n.Audience), Options: opts}
	return render(c, http.StatusOK, views.AdminNoticeEditPage(h.pageFor(c, "Edit notice"), f))
}

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
	f, in := h.parseNoticeForm(c, views.NoticeForm{ID: n.ID, MustRead: n.MustRead(), Options: opts}, groups)
	if in.StartsAt.IsZero() {
		in.StartsAt = n.StartsAt
	}
	// An edit may keep an end time that has passed only if it was already there.
	if f.Errors["ends_at"] != "" && in.EndsAt.Equal(n.EndsAt) && in.EndsAt.After(in.StartsAt) {
		delete(f.Errors, "ends_at")
	}
	if len(f.Errors) > 0 {
		return render(c, http.StatusUnprocessableEntity, views.AdminNoticeEditPage(h.pageWithStatus(c, "Edit notice", http.StatusUnprocessableEntity), f))
	}
	if c.FormValue("preview") != "" {
		if err := h.preview(c, &f, in); err != nil {
			return err
		}
		return render(c, http.StatusOK, views.AdminNoticeEditPage(h.pageFor(c, "Edit notice"), f))
	}
	_, err = h.db.UpdateNotice(ctx, n.ID, in, u, f.Minor, h.event(c, "notice.edited", ""))
	h.live.invalidate()
	if errors.Is(err, db.ErrNotFound) {
		return errNotFound
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/notices/"+strconv.FormatInt(n.ID, 10)+"?msg=notice-updated")
}

func (h *Handler) adminNoticeArchive(c echo.Context) error {
	n, err := h.managedNotice(c)
	if err != nil {
		return err
	}
	err = h.db.ArchiveNotice(c.Request().Context(), n.ID, h.event(c, "notice.archived", ""))
	h.live.invalidate()
	if err != nil && !errors.Is(err, db.ErrNotFound) { // already archived: nothing to do
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/notices/"+strconv.FormatInt(n.ID, 10)+"?msg=notice-archived")
}

// csvCell keeps a cell from being read as a formula by spreadsheet programs.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func (h *Handler) adminNoticeReceiptsCSV(c echo.Context) error {
	n, err := h.managedNotice(c)
	if err != nil {
		return err
	}
	rs, err := h.db.NoticeReceipts(c.Request().Context(), n)
	if err != nil {
		return err
	}
	hd := c.Response().Header()
	hd.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	hd.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="notice-%d-receipts.csv"`, n.ID))
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	_ = w.Write([]string{"username", "display_name", "role", "groups", "state", "acknowledged_at", "version"})
	for _, r := range rs {
		state, at, version := "not yet", "", ""
		switch {
		case !r.AckedAt.IsZero():
			state, at, version = "acknowledged", r.AckedAt.UTC().Format(time.RFC3339), strconv.Itoa(r.AckedVersion)
		case !r.DismissedAt.IsZero():
			state = "dismissed"
		}
		_ = w.Write([]string{csvCell(r.User.Username), csvCell(r.User.DisplayName), r.User.Role, csvCell(strings.Join(r.Groups, ", ")), state, at, version})
	}
	w.Flush()
	return w.Error()
}

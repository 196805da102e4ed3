package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

// readAppForm fills f with the app form's fields as posted; f.Validate checks them.
func readAppForm(c echo.Context, f views.AppForm) views.AppForm {
	form, _ := c.FormParams()
	f.Host = c.FormValue("host")
	f.Audience = form["audience"]
	f.RequireMFA = c.FormValue("require_mfa") != ""
	f.MustReadFirst = c.FormValue("must_read_first") != ""
	return f
}

func (h *Handler) cookieScope() views.CookieScope {
	r := h.cfg.cookieReach()
	return views.CookieScope{PortalHost: r.PortalHost, Domain: r.Domain}
}

// adminAppsIndex handles GET /admin/apps: the apps behind forward auth and the form that
// registers one.
func (h *Handler) adminAppsIndex(c echo.Context) error {
	opts, _, err := h.audienceOptions(c.Request().Context())
	if err != nil {
		return err
	}
	return h.renderApps(c, http.StatusOK, views.AppForm{Audience: []string{"everyone"}, Options: opts})
}

func (h *Handler) renderApps(c echo.Context, status int, f views.AppForm) error {
	ctx := c.Request().Context()
	apps, err := h.db.ListApps(ctx)
	if err != nil {
		return err
	}
	reaches, err := h.db.AppReaches(ctx)
	if err != nil {
		return err
	}
	_, groups, err := h.audienceOptions(ctx)
	if err != nil {
		return err
	}
	reach := h.cfg.cookieReach()
	rows := make([]views.AppRow, len(apps))
	for i, a := range apps {
		rows[i] = views.AppRow{App: a, Audience: db.DescribeAudience(a.Audience, groups), Reach: reaches[a.ID],
			CookieMisses: !reach.Reaches(a.Host)}
	}
	return render(c, status, views.AdminAppsPage(h.pageWithStatus(c, "Apps", status), f, rows, h.cookieScope()))
}

// appPreview fills the form's reach preview: how many users the audience lets pass.
func (h *Handler) appPreview(c echo.Context, f *views.AppForm, in db.AppInput) error {
	r, err := h.db.ReachOf(c.Request().Context(), in.Audience)
	if err != nil {
		return err
	}
	f.Preview = &views.AppPreview{Reach: r, RequireMFA: in.RequireMFA}
	return nil
}

// appWriteRefused puts a store refusal of an app's write next to its field, and reports
// whether err was one.
func appWriteRefused(f *views.AppForm, err error) bool {
	switch {
	case errors.Is(err, db.ErrDuplicate):
		f.Errors["host"] = "An app is registered at that host already."
	case errors.Is(err, db.ErrAudienceGone):
		f.Errors["audience"] = "One of the chosen groups was just deleted. Choose again."
	default:
		return false
	}
	return true
}

// adminAppsCreate handles POST /admin/apps: it registers an app (303), or with the preview
// button only shows how many users may pass.
func (h *Handler) adminAppsCreate(c echo.Context) error {
	ctx := c.Request().Context()
	opts, groups, err := h.audienceOptions(ctx)
	if err != nil {
		return err
	}
	f := readAppForm(c, views.AppForm{Options: opts})
	in, ok := f.Validate(groups, h.cfg.cookieReach())
	if !ok {
		return h.renderApps(c, http.StatusUnprocessableEntity, f)
	}
	if c.FormValue("preview") != "" {
		if err := h.appPreview(c, &f, in); err != nil {
			return err
		}
		return h.renderApps(c, http.StatusOK, f)
	}
	ev := h.event(c, "app.added", in.Host)
	ev.Detail = db.DescribeApp(in, groups)
	_, err = h.db.CreateApp(ctx, in, ev)
	if appWriteRefused(&f, err) {
		return h.renderApps(c, http.StatusUnprocessableEntity, f)
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/apps?msg=app-added")
}

// adminAppEdit handles GET /admin/apps/:id: the app's form, filled from it.
func (h *Handler) adminAppEdit(c echo.Context) error {
	app, err := byPathID(c, h.db.AppByID)
	if err != nil {
		return err
	}
	opts, _, err := h.audienceOptions(c.Request().Context())
	if err != nil {
		return err
	}
	f := views.AppFormFrom(app)
	f.Options = opts
	return render(c, http.StatusOK, views.AdminAppPage(h.pageFor(c, app.Host), app.Host, f, h.cookieScope()))
}

// adminAppUpdate handles POST /admin/apps/:id: it saves the app's host, audience and
// switches (303); the preview button only shows how many users may pass.
func (h *Handler) adminAppUpdate(c echo.Context) error {
	ctx := c.Request().Context()
	app, err := byPathID(c, h.db.AppByID)
	if err != nil {
		return err
	}
	opts, groups, err := h.audienceOptions(ctx)
	if err != nil {
		return err
	}
	f := readAppForm(c, views.AppForm{ID: app.ID, Options: opts})
	again := func(status int) error {
		return render(c, status, views.AdminAppPage(h.pageWithStatus(c, app.Host, status), app.Host, f, h.cookieScope()))
	}
	in, ok := f.Validate(groups, h.cfg.cookieReach())
	if !ok {
		return again(http.StatusUnprocessableEntity)
	}
	if c.FormValue("preview") != "" {
		if err := h.appPreview(c, &f, in); err != nil {
			return err
		}
		return again(http.StatusOK)
	}
	ev := h.event(c, "app.changed", in.Host)
	ev.Detail = db.DescribeApp(in, groups)
	_, err = h.db.UpdateApp(ctx, app.ID, in, ev)
	if appWriteRefused(&f, err) {
		return again(http.StatusUnprocessableEntity)
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/apps?msg=app-updated")
}

// adminAppDelete handles POST /admin/apps/:id/delete: the app's host is refused from its
// next request on.
func (h *Handler) adminAppDelete(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	if err := h.db.DeleteApp(c.Request().Context(), id, h.event(c, "app.removed", "")); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/apps?msg=app-removed")
}

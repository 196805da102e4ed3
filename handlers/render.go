package handlers

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

// render writes a whole page or nothing: it renders into a buffer first, so a failing
// component leaves the response untouched for the error page.
func render(c echo.Context, status int, page templ.Component) error {
	buf := templ.GetBuffer()
	defer templ.ReleaseBuffer(buf)
	if err := page.Render(c.Request().Context(), buf); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// flashes maps the short keys that a redirect may carry to fixed sentences, so a link can
// never put words of its own on a page.
var flashes = map[string]string{
	"password-changed":   "Your password was changed. Your other sessions were signed out.",
	"session-revoked":    "That session was signed out.",
	"sessions-revoked":   "All your other sessions were signed out.",
	"mfa-disabled":       "Two-step verification is off.",
	"mfa-enabled":        "Two-step verification is on.",
	"welcome":            "Your administrator account is ready.",
	"saved":              "Saved.",
	"notice-posted":      "The notice is published.",
	"notice-updated":     "The notice is updated.",
	"notice-archived":    "The notice is archived: it no longer shows as a banner.",
	"password-reset":     "Your password was changed and every session of your account was signed out. Sign in with the new password; your second step is asked for as usual.",
	"email-sent":         "A confirmation link is on its way to the new address. Your address changes once you open it.",
	"email-confirmed":    "Your new address is confirmed.",
	"email-removed":      "Your address was removed. The portal sends you no more mail.",
	"temporary-password": "The temporary password is set and the user's sessions were signed out. At their next sign-in they must choose their own.",
	"totp-removed":       "The authenticator app is removed. Your passkeys still sign you in.",
	"passkey-removed":    "The passkey is removed.",
	"passkey-renamed":    "The passkey is renamed.",
	"passkey-added":      "The passkey is added.",
	"app-added":          "The app is registered: its proxy's requests are answered from now on.",
	"app-updated":        "The app is saved.",
	"app-removed":        "The app is removed: every request to it is refused from now on.",
}

// pageWithStatus is pageFor for a page answered with an error status, which shows the
// request id like the error pages do. It notes the refusal, so the access log has a cause
// for the line every error status gets.
func (h *Handler) pageWithStatus(c echo.Context, title string, status int) views.Page {
	if _, noted := c.Get(causeKey).(error); !noted && status >= 400 {
		noteCause(c, fmt.Errorf("refused: page %q shown again with its problems", title))
	}
	p := h.pageFor(c, title)
	p.Status = status
	return p
}

// pageFor builds the common page data from the request.
func (h *Handler) pageFor(c echo.Context, title string) views.Page {
	p := views.Page{
		Title:     title,
		CSRF:      csrfToken(c),
		RequestID: requestID(c),
		Status:    http.StatusOK,
		Location:  h.cfg.Location,
		Path:      returnPath(c),
		Flash:     flashes[c.QueryParam("msg")],
		Now:       h.now(),
	}
	if u, ok := currentUser(c); ok {
		p.Me = &u
		s, _ := currentSession(c)
		p.Partial = s.Stage != db.StageFull
		if !p.Partial {
			h.loadBanners(c, &p, u)
			p.MFADeadline = h.mfaWarning(c, u, p.Now)
		}
	}
	return p
}

// loadBanners fills the page's banner slot. On a failure the page still renders (a broken
// banner query must not take every page down with it), but the slot says the notices could
// not be loaded, and the failure is logged and counted for the health panel; a client that
// went away is neither an error nor counted.
func (h *Handler) loadBanners(c echo.Context, p *views.Page, u db.User) {
	banners, err := h.bannersFor(c, u, p.Now)
	if err != nil {
		p.BannersFailed = true
		h.logFault(c, slog.LevelError, "banners failed", err)
		if !clientGone(c, err) {
			h.counts.add(countBannersLost)
		}
		return
	}
	p.Banners = banners
}

// returnPath is where a banner's form brings the reader back: this page. A page rendered
// in answer to a POST (a form with errors, a preview) comes back to the same path by GET.
func returnPath(c echo.Context) string {
	if c.Request().Method != http.MethodGet {
		return safeNext(c.Request().URL.Path)
	}
	return safeNext(c.Request().URL.RequestURI())
}

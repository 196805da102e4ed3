package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
)

// A mailed link (/login/reset?token=…, /account/email/confirm?token=…) carries its token in
// the address, where it could end up in the browser's history, in a Referer sent to the
// page's assets, or in a log line. So the first request moves the token into a cookie
// scoped to the page's path and redirects to the bare path at once; the form that spends it
// reads it from there. The access log writes paths only, never queries.

// linkCookieName is the cookie of a mailed link's token for the page at path: Secure-only
// under https, and bound to that page.
func (h *Handler) linkCookieName(base string) string {
	if h.cfg.Secure() {
		return "__Secure-" + base
	}
	return base
}

// takeLinkToken moves a token in the query into the link cookie and redirects to path
// without it (done is true; the redirect is the answer). Otherwise it returns the token the
// cookie holds, "" for none. A value not shaped like a token never reaches the cookie.
func (h *Handler) takeLinkToken(c echo.Context, base, path string, ttl time.Duration) (token string, done bool, err error) {
	if q := c.QueryParam("token"); q != "" || c.QueryParams().Has("token") {
		// Nothing on the way out may carry the address the token came in.
		c.Response().Header().Set("Referrer-Policy", "no-referrer")
		if auth.ValidTokenShape(q) {
			c.SetCookie(&http.Cookie{Name: h.linkCookieName(base), Value: q, Path: path, MaxAge: int(ttl / time.Second),
				HttpOnly: true, Secure: h.cfg.Secure(), SameSite: http.SameSiteLaxMode})
		} else {
			h.endLinkToken(c, base, path)
		}
		return "", true, c.Redirect(http.StatusSeeOther, path)
	}
	return h.linkToken(c, base), false, nil
}

// linkToken is the token in the link cookie, or "".
func (h *Handler) linkToken(c echo.Context, base string) string {
	ck, err := c.Cookie(h.linkCookieName(base))
	if err != nil || !auth.ValidTokenShape(ck.Value) {
		return ""
	}
	return ck.Value
}

// endLinkToken drops the link cookie once its token is spent or useless.
func (h *Handler) endLinkToken(c echo.Context, base, path string) {
	c.SetCookie(&http.Cookie{Name: h.linkCookieName(base), Value: "", Path: path, MaxAge: -1,
		HttpOnly: true, Secure: h.cfg.Secure(), SameSite: http.SameSiteLaxMode})
}

// linkURL is the absolute address of a mailed link to path with token.
func (h *Handler) linkURL(path, token string) string {
	return h.cfg.BaseURL.String() + path + "?token=" + token
}

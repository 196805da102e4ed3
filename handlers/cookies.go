package handlers

import (
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"
)

const sessionCookieBase = "gatehouse_session"

// cookieVariant is a session cookie the portal may have set, under some name and scope.
type cookieVariant struct {
	Name   string
	Path   string
	Domain string
}

// sessionCookieHistory lists every name, path and domain under which the portal has ever
// set its session cookie. Whichever is not the current one is legacy: expired whenever it
// shows up, never trusted, so a cookie change can never leave a browser with two competing
// sessions. Add to this list whenever the cookie's name or scope changes.
var sessionCookieHistory = []cookieVariant{
	{Name: "gatehouse_session", Path: "/"},
	{Name: "__Host-gatehouse_session", Path: "/"},
	{Name: "__Secure-gatehouse_session", Path: "/"},
}

// sessionCookieName is the current name: the __Host- prefix under https pins the cookie to
// this host, path / and Secure.
func (h *Handler) sessionCookieName() string {
	return h.hostCookieName(sessionCookieBase)
}

func (h *Handler) legacyCookies() []cookieVariant {
	current := h.sessionCookieName()
	return slices.DeleteFunc(slices.Clone(sessionCookieHistory), func(v cookieVariant) bool {
		return v.Name == current && v.Path == "/" && v.Domain == ""
	})
}

// setSessionCookie starts the browser's session; its pre-session, which only signed-out
// forms use, ends here.
func (h *Handler) setSessionCookie(c echo.Context, token string) {
	// No Expires or Max-Age: the cookie dies with the browser, and the server enforces the
	// idle and absolute limits whatever the browser keeps.
	c.SetCookie(&http.Cookie{
		Name:     h.sessionCookieName(),
		Value:    token,
		Path:     "/",
		HttpOnly: true,
		Secure:   h.cfg.Secure(),
		SameSite: http.SameSiteLaxMode,
	})
	h.endPreSession(c)
}

// expireCookie tells the browser to drop a cookie; Name, Path and Domain must match the
// ones it was set with, or the browser keeps it.
func expireCookie(c echo.Context, v cookieVariant, secure bool) {
	c.SetCookie(&http.Cookie{
		Name:     v.Name,
		Value:    "",
		Path:     v.Path,
		Domain:   v.Domain,
		MaxAge:   -1,
		Expires:  time.Unix(0, 0),
		HttpOnly: true,
		// Browsers refuse a prefixed cookie without Secure, even one that deletes.
		Secure:   secure || hasSecurePrefix(v.Name),
		SameSite: http.SameSiteLaxMode,
	})
}

func hasSecurePrefix(name string) bool {
	return len(name) > 7 && (name[:7] == "__Host-" || (len(name) > 9 && name[:9] == "__Secure-"))
}

// clearSessionCookies expires the current session cookie and every legacy variant.
func (h *Handler) clearSessionCookies(c echo.Context) {
	expireCookie(c, cookieVariant{Name: h.sessionCookieName(), Path: "/"}, h.cfg.Secure())
	for _, v := range h.legacyCookies() {
		expireCookie(c, v, h.cfg.Secure())
	}
}

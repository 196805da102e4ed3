package handlers

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/net/publicsuffix"
)

const sessionCookieBase = "gatehouse_session"

// cookieVariant is a session cookie the portal may have set, under some name and scope.
// An empty Domain is a cookie of the host that set it only.
type cookieVariant struct {
	Name   string
	Path   string
	Domain string
}

// sessionCookieHistory lists every name and path under which the portal has ever set its
// session cookie. Each was set for the portal's host only or, with --cookie-domain, with a
// Domain: cookieVariants adds those. Whichever is not the current one is legacy: expired
// whenever it shows up, never trusted, so a cookie change can never leave a browser with
// two competing sessions. Add to this list whenever the cookie's name or path changes.
var sessionCookieHistory = []cookieVariant{
	{Name: "gatehouse_session", Path: "/"},
	{Name: "__Host-gatehouse_session", Path: "/"},
	{Name: "__Secure-gatehouse_session", Path: "/"},
}

// sessionCookieName is the current name. For the portal's host only, the __Host- prefix
// under https pins the cookie to this host, path / and Secure; a cookie with a Domain
// cannot carry __Host-, so under https it is __Secure-, which still demands Secure.
func (h *Handler) sessionCookieName() string {
	if h.cfg.CookieDomain == "" {
		return h.hostCookieName(sessionCookieBase)
	}
	if h.cfg.Secure() {
		return "__Secure-" + sessionCookieBase
	}
	return sessionCookieBase
}

// currentCookie is the variant the portal sets now.
func (h *Handler) currentCookie() cookieVariant {
	return cookieVariant{Name: h.sessionCookieName(), Path: "/", Domain: h.cfg.CookieDomain}
}

// legacyName reports whether name is a session cookie name the portal no longer sets. The
// current name under another Domain is legacy too, but a request does not say a cookie's
// Domain: the session's recorded scope tells those apart (resolveSession).
func (h *Handler) legacyName(name string) bool {
	current := h.sessionCookieName()
	return name != current && slices.ContainsFunc(sessionCookieHistory, func(v cookieVariant) bool { return v.Name == name })
}

// portalHost is the host name browsers reach the portal at.
func (h *Handler) portalHost() string { return h.cfg.BaseURL.Hostname() }

// cookieDomains lists every Domain a session cookie seen by a browser at host may have been
// set with: the configured one, and host and each of its parents above the public suffix
// (portal.example.com and example.com, never com). A cookie is deleted only by a Set-Cookie
// with its own Domain, and once --cookie-domain is changed or turned off the old value is
// not known; the old one had to hold the portal's host, so it is among these.
func (h *Handler) cookieDomains(host string) []string {
	var out []string
	if h.cfg.CookieDomain != "" {
		out = append(out, h.cfg.CookieDomain)
	}
	if host == "" || net.ParseIP(host) != nil {
		return out // an address has no parent, and browsers refuse Domain on one
	}
	suffix, _ := publicsuffix.PublicSuffix(host)
	for d := host; d != suffix && strings.HasSuffix(d, "."+suffix); {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
		_, parent, ok := strings.Cut(d, ".")
		if !ok {
			break
		}
		d = parent
	}
	return out
}

// cookieVariants lists every session cookie a browser at host may hold from the portal:
// each name of the history, for the host only and under each of cookieDomains.
func (h *Handler) cookieVariants(host string) []cookieVariant {
	domains := h.cookieDomains(host)
	var out []cookieVariant
	for _, v := range sessionCookieHistory {
		out = append(out, v)
		if strings.HasPrefix(v.Name, "__Host-") {
			continue // a __Host- cookie never has a Domain
		}
		for _, d := range domains {
			out = append(out, cookieVariant{Name: v.Name, Path: v.Path, Domain: d})
		}
	}
	return out
}

// mayBeTakenFor reports whether a browser at host may treat the cookies a and b as one:
// same name and path, and the same Domain, or one without Domain and the other with host
// itself as its Domain (RFC 6265 keys cookies by name, domain and path, and a cookie
// without Domain has the host as its domain). Deleting one such cookie may delete the other.
func mayBeTakenFor(a, b cookieVariant, host string) bool {
	if a.Name != b.Name || a.Path != b.Path {
		return false
	}
	return a.Domain == b.Domain || a.Domain == "" && b.Domain == host || b.Domain == "" && a.Domain == host
}

// setSessionCookie starts the browser's session; its pre-session, which only signed-out
// forms use, ends here.
func (h *Handler) setSessionCookie(c echo.Context, token string) {
	// No Expires or Max-Age: the cookie dies with the browser, and the server enforces the
	// idle and absolute limits whatever the browser keeps.
	v := h.currentCookie()
	c.SetCookie(&http.Cookie{
		Name:     v.Name,
		Value:    token,
		Path:     v.Path,
		Domain:   v.Domain,
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
	return strings.HasPrefix(name, "__Host-") || strings.HasPrefix(name, "__Secure-")
}

// expireLegacyCookies expires, for a browser at host, every session cookie variant but the
// current one, which holds a valid session and stays.
func (h *Handler) expireLegacyCookies(c echo.Context, host string) {
	current := h.currentCookie()
	for _, v := range h.cookieVariants(host) {
		if !mayBeTakenFor(v, current, host) {
			expireCookie(c, v, h.cfg.Secure())
		}
	}
}

// clearSessionCookies expires the current session cookie and every legacy variant on the
// portal's host.
func (h *Handler) clearSessionCookies(c echo.Context) {
	h.clearSessionCookiesAt(c, h.portalHost())
}

// clearSessionCookiesAt expires every session cookie variant a browser at host may hold.
func (h *Handler) clearSessionCookiesAt(c echo.Context, host string) {
	for _, v := range h.cookieVariants(host) {
		expireCookie(c, v, h.cfg.Secure())
	}
}

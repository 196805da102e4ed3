package handlers

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

const csrfCookieName = "_csrf"

// csrf protects every unsafe request with echo's CSRF middleware: a browser's
// Sec-Fetch-Site decides first (same-origin passes, cross-site is refused, same-site falls
// back to the token); without it, the form token must match the cookie.
//
// echo compares the two values as a plain double submit, which an attacker who can plant a
// cookie could satisfy with a value of their own. So before echo runs, the cookie must
// carry an HMAC that binds it to this portal's key and to the current session; any other
// value is replaced with a fresh signed one, and a planted pair stops matching. A request
// without Sec-Fetch-Site that names a foreign Origin is refused outright.
func (h *Handler) csrf() echo.MiddlewareFunc {
	check := middleware.CSRFWithConfig(middleware.CSRFConfig{
		TokenLookup:    "form:_csrf,header:X-CSRF-Token",
		CookieName:     csrfCookieName,
		CookiePath:     "/",
		CookieHTTPOnly: true,
		CookieSecure:   h.cfg.Secure(),
		CookieSameSite: http.SameSiteStrictMode,
		CookieMaxAge:   86400,
		ErrorHandler: func(err error, c echo.Context) error {
			return csrfRefusal(err)
		},
	})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		guarded := check(next)
		return func(c echo.Context) error {
			req := c.Request()
			// POST is the only unsafe method any route accepts; the others get their 405.
			if isUnsafe(req.Method) && req.Method != http.MethodPost {
				return next(c)
			}
			if isUnsafe(req.Method) {
				switch site := req.Header.Get(echo.HeaderSecFetchSite); site {
				case "cross-site":
					return csrfRefusal(echo.NewHTTPError(http.StatusForbidden, "cross-site request"))
				case "":
					if origin := req.Header.Get(echo.HeaderOrigin); origin != "" && !h.sameOrigin(origin, req) {
						return csrfRefusal(echo.NewHTTPError(http.StatusForbidden, "foreign origin "+origin))
					}
				}
			}
			binding := h.csrfBinding(c)
			token := ""
			if ck, err := req.Cookie(csrfCookieName); err == nil && h.csrfTokenValid(ck.Value, binding) {
				token = ck.Value
			} else {
				token = h.newCSRFToken(binding)
				replaceRequestCookie(req, csrfCookieName, token)
				// echo sets the cookie itself when it checks tokens, that is when the
				// browser sent no Sec-Fetch-Site; otherwise it is ours to set.
				if req.Header.Get(echo.HeaderSecFetchSite) != "" {
					c.SetCookie(&http.Cookie{Name: csrfCookieName, Value: token, Path: "/", HttpOnly: true,
						Secure: h.cfg.Secure(), SameSite: http.SameSiteStrictMode, MaxAge: 86400})
				}
			}
			c.Set(csrfKey, token)
			return guarded(c)
		}
	}
}

func csrfRefusal(cause error) error {
	return &userError{Status: http.StatusForbidden,
		Message: "This form was refused because it did not come from this portal's own page, or it had expired.",
		Hint:    "Go back, reload the page and send the form again. If you followed a link from another site, open the portal directly.",
		Cause:   cause, Count: countCSRF}
}

func isUnsafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// sameOrigin compares an Origin header with the configured base URL, or failing that the
// request's own host: "null" and look-alike hosts do not match.
func (h *Handler) sameOrigin(origin string, req *http.Request) bool {
	if h.cfg.BaseURL != nil && strings.EqualFold(origin, h.cfg.BaseURL.Scheme+"://"+h.cfg.BaseURL.Host) {
		return true
	}
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	return strings.EqualFold(origin, scheme+"://"+req.Host)
}

// csrfBinding ties tokens to the session, so a token from before sign-in, or from
// someone else's session, is not accepted after it.
func (h *Handler) csrfBinding(c echo.Context) string {
	if s, ok := currentSession(c); ok {
		return "s" + strconv.FormatInt(s.ID, 10)
	}
	return "anon"
}

func (h *Handler) csrfMAC(nonce, binding string) string {
	m := hmac.New(sha256.New, h.csrfKey)
	m.Write([]byte(nonce))
	m.Write([]byte{0})
	m.Write([]byte(binding))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (h *Handler) newCSRFToken(binding string) string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	nonce := base64.RawURLEncoding.EncodeToString(b[:])
	return nonce + "." + h.csrfMAC(nonce, binding)
}

func (h *Handler) csrfTokenValid(token, binding string) bool {
	nonce, mac, ok := strings.Cut(token, ".")
	if !ok || len(token) > 128 {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(h.csrfMAC(nonce, binding)))
}

// replaceRequestCookie swaps one cookie of the incoming request, so the middleware after
// this one sees the value that is valid for this request.
func replaceRequestCookie(req *http.Request, name, value string) {
	kept := make([]string, 0, 4)
	for _, ck := range req.Cookies() {
		if ck.Name != name {
			kept = append(kept, ck.String())
		}
	}
	kept = append(kept, (&http.Cookie{Name: name, Value: value}).String())
	req.Header.Set("Cookie", strings.Join(kept, "; "))
}

// csrfToken is the token forms on this page must carry.
func csrfToken(c echo.Context) string {
	t, _ := c.Get(csrfKey).(string)
	return t
}

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

	"gatehouse/auth"
)

// The token cookie and the pre-session cookie keep their bare names over plain http, where
// browsers refuse a prefixed cookie; under https they carry __Host-, so only this host, over
// https, can set them: a sibling host or a plain-http response cannot plant one.
const (
	csrfCookieBase       = "_csrf"
	presessionCookieBase = "gatehouse_presession"
	csrfCookieMaxAge     = 86400
)

// hostCookieName is the name a cookie of the portal's own host goes by.
func (h *Handler) hostCookieName(base string) string {
	if h.cfg.Secure() {
		return "__Host-" + base
	}
	return base
}

// csrf protects every unsafe request with echo's CSRF middleware: a browser's
// Sec-Fetch-Site decides first (same-origin passes, cross-site is refused, same-site falls
// back to the token); without it, the form token must match the cookie.
//
// echo compares the two values as a plain double submit, which an attacker who can plant a
// cookie could satisfy with a value of their own. So before echo runs, the cookie must
// carry an HMAC that binds it to this portal's key and to the current session, or before
// sign-in to the browser's pre-session; any other value is replaced with a fresh signed
// one, and a planted pair stops matching. A request without Sec-Fetch-Site that names a
// foreign Origin is refused outright.
func (h *Handler) csrf() echo.MiddlewareFunc {
	cookieName := h.hostCookieName(csrfCookieBase)
	check := middleware.CSRFWithConfig(middleware.CSRFConfig{
		TokenLookup:    "form:_csrf,header:X-CSRF-Token",
		CookieName:     cookieName,
		CookiePath:     "/",
		CookieHTTPOnly: true,
		CookieSecure:   h.cfg.Secure(),
		CookieSameSite: http.SameSiteStrictMode,
		CookieMaxAge:   csrfCookieMaxAge,
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
			if err := h.foreignRequest(req); err != nil {
				return err
			}
			if cookieName != csrfCookieBase {
				h.expireBareCSRFCookie(c)
			}
			token := h.signedCSRFCookie(c, cookieName)
			// echo reads the first value under the name only: make it the valid one.
			if ck, err := req.Cookie(cookieName); err != nil || ck.Value != token {
				replaceRequestCookie(req, cookieName, token)
			}
			c.Set(csrfKey, token)
			return guarded(c)
		}
	}
}

// foreignRequest refuses an unsafe request that the browser marks cross-site, or that
// names a foreign Origin where the browser sends no Sec-Fetch-Site.
func (h *Handler) foreignRequest(req *http.Request) error {
	if !isUnsafe(req.Method) {
		return nil
	}
	switch site := req.Header.Get(echo.HeaderSecFetchSite); site {
	case "cross-site":
		return csrfRefusal(echo.NewHTTPError(http.StatusForbidden, "cross-site request"))
	case "":
		if origin := req.Header.Get(echo.HeaderOrigin); origin != "" && !h.sameOrigin(origin, req) {
			return csrfRefusal(echo.NewHTTPError(http.StatusForbidden, "foreign origin "+origin))
		}
	}
	return nil
}

// signedCSRFCookie returns the token cookie the browser sent that is signed for this
// session or pre-session, or else a fresh one.
func (h *Handler) signedCSRFCookie(c echo.Context, cookieName string) string {
	req := c.Request()
	binding := h.csrfBinding(c)
	for _, ck := range req.Cookies() {
		if ck.Name == cookieName && h.csrfTokenValid(ck.Value, binding) {
			return ck.Value
		}
	}
	token := h.newCSRFToken(binding)
	// echo sets the cookie itself when it checks tokens, that is when the browser sent no
	// Sec-Fetch-Site; otherwise it is ours to set.
	if req.Header.Get(echo.HeaderSecFetchSite) != "" {
		c.SetCookie(&http.Cookie{Name: cookieName, Value: token, Path: "/", HttpOnly: true,
			Secure: h.cfg.Secure(), SameSite: http.SameSiteStrictMode, MaxAge: csrfCookieMaxAge})
	}
	return token
}

// expireBareCSRFCookie drops the unprefixed token cookie a browser may still hold from
// before the portal moved to https; it is never read there.
func (h *Handler) expireBareCSRFCookie(c echo.Context) {
	if _, err := c.Request().Cookie(csrfCookieBase); err == nil {
		c.SetCookie(&http.Cookie{Name: csrfCookieBase, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
			Secure: true, SameSite: http.SameSiteStrictMode})
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
// someone else's session, is not accepted after it. Before sign-in, tokens are tied to the
// browser's pre-session: a token the portal gave another browser (an attacker's, planted
// with its cookie) does not sign this one in to the attacker's account.
func (h *Handler) csrfBinding(c echo.Context) string {
	if s, ok := currentSession(c); ok {
		return "s" + strconv.FormatInt(s.ID, 10)
	}
	return "p" + h.preSession(c)
}

// preSession returns the random value that stands for a signed-out browser, and issues a
// new one with this response when the browser has none. Several values under the name mean
// someone added one (a sibling host can, over plain http): none is trusted, so a form token
// bound to the planted value does not pass.
func (h *Handler) preSession(c echo.Context) string {
	name := h.hostCookieName(presessionCookieBase)
	value, n := "", 0
	for _, ck := range c.Request().Cookies() {
		if ck.Name == name {
			value, n = ck.Value, n+1
		}
	}
	if n == 1 && auth.ValidTokenShape(value) {
		return value
	}
	value = auth.NewToken()
	c.SetCookie(&http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true,
		Secure: h.cfg.Secure(), SameSite: http.SameSiteStrictMode, MaxAge: csrfCookieMaxAge})
	return value
}

// endPreSession expires the pre-session cookie once a session exists, so that tokens from
// before this sign-in do not come back to life after the next sign-out.
func (h *Handler) endPreSession(c echo.Context) {
	c.SetCookie(&http.Cookie{Name: h.hostCookieName(presessionCookieBase), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: h.cfg.Secure(), SameSite: http.SameSiteStrictMode})
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

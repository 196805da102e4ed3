package handlers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// requestID gives every request a fresh id, in the X-Request-ID header, on error pages and
// in log lines. An id sent by the client is ignored: it could forge or inject log entries.
func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

func assignRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		var b [12]byte
		_, _ = rand.Read(b[:])
		c.Response().Header().Set(echo.HeaderXRequestID, hex.EncodeToString(b[:]))
		return next(c)
	}
}

// accessLog writes one line per request after the error handler has run, and it is the
// only place that logs a response's outcome: every response of 400 or more gets its one
// line here, at warning level for 4xx and error for 5xx, with the cause that handleError
// or the handler noted. A client that went away is not our fault and logs at info.
func (h *Handler) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err) // renders the error page now, so the status below is the real one
		}
		elapsed := time.Since(start)
		h.metrics.observe(c, elapsed)
		req, status := c.Request(), c.Response().Status
		cause, _ := c.Get(causeKey).(error)
		attrs := []any{"method", req.Method, "path", req.URL.Path, "status", status,
			"dur_ms", elapsed.Milliseconds(), "request_id", requestID(c)}
		level, msg := slog.LevelDebug, "request"
		switch {
		case clientGone(c, cause):
			level, msg = slog.LevelInfo, "request canceled"
		case status >= 500 || cause != nil && status < 400:
			level, msg = slog.LevelError, "request failed"
		case status >= 400:
			level, msg = slog.LevelWarn, "request refused"
		}
		if level >= slog.LevelWarn {
			attrs = append(attrs, "client", c.RealIP())
		}
		if cause != nil {
			attrs = append(attrs, "err", cause)
			var p *panicked
			if errors.As(cause, &p) {
				attrs = append(attrs, "stack", string(p.stack))
			}
		}
		h.log.Log(req.Context(), level, msg, attrs...)
		return nil
	}
}

// causeKey holds why a response has an error status, for the access log.
const causeKey = "gatehouse.cause"

// noteCause records why this response has an error status: the error handleError turned
// into a page, or the refusal a handler rendered itself. The access log writes it.
func noteCause(c echo.Context, cause error) {
	c.Set(causeKey, cause)
}

// clientGone reports whether err, or the request's own context, says the client went away.
// SQLite may report a canceled context as its own "interrupted" error, so the request's
// context decides too.
func clientGone(c echo.Context, err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(c.Request().Context().Err(), context.Canceled)
}

// logFault logs a failure that did not stop the request (a banner query, a session touch):
// at level, or at info when the client went away, which is no fault of ours.
func (h *Handler) logFault(c echo.Context, level slog.Level, msg string, err error, attrs ...any) {
	if clientGone(c, err) {
		level = slog.LevelInfo
	}
	h.log.Log(c.Request().Context(), level, msg, append([]any{"err", err, "request_id", requestID(c)}, attrs...)...)
}

// panicked is the cause of a 500 that was a panic; its stack goes to the log only.
type panicked struct {
	value any
	stack []byte
}

func (p *panicked) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// recoverPanic turns a panic into a 500 page; the stack goes to the log only.
func (h *Handler) recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				err = &userError{Status: http.StatusInternalServerError,
					Message: defaultMessages[http.StatusInternalServerError][0],
					Hint:    defaultMessages[http.StatusInternalServerError][1],
					Cause:   &panicked{value: r, stack: debug.Stack()}}
			}
		}()
		return next(c)
	}
}

// securityHeaders sets the headers every response carries. No inline script is allowed
// anywhere, and scripts may fetch from the portal alone (the passkey script posts its
// ceremonies); X-XSS-Protection is deliberately absent (deprecated, and harmful in old
// browsers). Everything but static assets is no-store: pages carry personal data, secrets
// (QR codes, recovery codes) or session changes.
//
// echo applies its middleware anew for every request, so the headers are made once, by
// newSecurityHeaders, and only copied here.
func (h *Handler) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// Every response shares the values: each slice is full (len = cap), so a later Add
		// to the same header copies it instead of writing into it, and Set replaces it.
		hd := c.Response().Header()
		for k, v := range h.fixedHeaders {
			hd[k] = v[:len(v):len(v)]
		}
		if !strings.HasPrefix(c.Request().URL.Path, "/static/") {
			hd["Cache-Control"] = noStore
		}
		return next(c)
	}
}

var noStore = []string{"no-store"}

// newSecurityHeaders are the headers of every response.
func newSecurityHeaders(secure bool) http.Header {
	fixed := http.Header{}
	fixed.Set("Content-Security-Policy", contentSecurityPolicy())
	fixed.Set("X-Content-Type-Options", "nosniff")
	fixed.Set("X-Frame-Options", "DENY")
	fixed.Set("Referrer-Policy", "same-origin")
	fixed.Set("Cross-Origin-Opener-Policy", "same-origin")
	fixed.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	if secure {
		fixed.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
	return fixed
}

// contentSecurityPolicy is the policy every response carries. Forms post to the portal
// only, and browsers hold the redirects after a form's POST to form-action too; formOrigins
// are the other origins such a redirect may reach (an app behind forward auth that a
// sign-in leads on to, see letFormsLeadTo).
func contentSecurityPolicy(formOrigins ...string) string {
	formAction := strings.Join(append([]string{"'self'"}, formOrigins...), " ")
	return "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"form-action " + formAction + "; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
}

// maxFieldBytes bounds any one form field; only notice bodies come near it.
const maxFieldBytes = 64 << 10

// parseForm reads a POST body once, within bodyLimit, and refuses invalid UTF-8, NUL bytes
// and oversized fields before any handler sees them, so nothing malformed is ever stored.
// The checks cover only what ParseForm reads, a urlencoded body; the handlers' FormValue
// would also read a multipart body, so any other kind is refused before it gets there.
func parseForm(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if err := checkText(req.URL.Query(), "The address"); err != nil {
			return err
		}
		if req.Method != http.MethodPost {
			return next(c)
		}
		if err := checkBodyType(c); err != nil {
			return err
		}
		if req.ContentLength > bodyLimit {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge)
		}
		req.Body = http.MaxBytesReader(c.Response(), req.Body, bodyLimit)
		if isJSONBody(req) {
			if err := readJSONBody(c); err != nil {
				return err
			}
			return next(c)
		}
		if err := req.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return echo.NewHTTPError(http.StatusRequestEntityTooLarge).SetInternal(err)
			}
			return badRequest("The form could not be read.").(*userError).withCause(err)
		}
		if err := checkText(req.Form, "The form"); err != nil {
			return err
		}
		return next(c)
	}
}

// checkText refuses names or values that are not valid UTF-8, hold a NUL, or are longer
// than any field of the portal; what names the source ("The form") for the message.
func checkText(values url.Values, what string) error {
	for name, vals := range values {
		if !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
			return badRequest(what + " contained text that is not valid UTF-8, or a NUL character.")
		}
		for _, v := range vals {
			if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				return badRequest(what + " contained text that is not valid UTF-8, or a NUL character.")
			}
			if len(v) > maxFieldBytes {
				return &userError{Status: http.StatusRequestEntityTooLarge, Message: what + " holds a field that is too long.",
					Hint: "Shorten the text and try again."}
			}
		}
	}
	return nil
}

// formBody is the one body type every form of the portal sends; jsonBody is what the
// passkey script sends to the routes of jsonRoutes.
const (
	formBody = "application/x-www-form-urlencoded"
	jsonBody = "application/json"
)

func isJSONBody(req *http.Request) bool {
	mediaType, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	return err == nil && mediaType == jsonBody
}

// jsonBodyKey holds the body of a JSON request, read and checked by readJSONBody.
const jsonBodyKey = "gatehouse.json_body"

// readJSONBody reads a JSON body within bodyLimit and refuses invalid UTF-8 and NUL bytes,
// as parseForm does for forms; the handler decodes what it kept.
func readJSONBody(c echo.Context) error {
	req := c.Request()
	b, err := io.ReadAll(req.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge).SetInternal(err)
	}
	if err != nil {
		return badRequest("The request could not be read.").(*userError).withCause(err)
	}
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return badRequest("The request contained text that is not valid UTF-8, or a NUL character.")
	}
	c.Set(jsonBodyKey, b)
	req.Body = io.NopCloser(bytes.NewReader(b))
	return nil
}

// checkBodyType refuses a POST whose body is anything but a urlencoded form: only that kind
// passes the input checks above. A POST with no body and no Content-Type (a bare button
// submitted by a script) carries nothing to check and passes.
func checkBodyType(c echo.Context) error {
	req := c.Request()
	ct := req.Header.Get(echo.HeaderContentType)
	if ct == "" && req.ContentLength == 0 {
		return nil
	}
	mediaType, _, err := mime.ParseMediaType(ct)
	if err == nil && bodyTypeAllowed(c.Path(), mediaType) {
		return nil
	}
	return &userError{Status: http.StatusUnsupportedMediaType,
		Message: defaultMessages[http.StatusUnsupportedMediaType][0],
		Hint:    defaultMessages[http.StatusUnsupportedMediaType][1],
		Cause:   fmt.Errorf("body type %.100q", ct)}
}

// bodyTypeAllowed says which body type a route accepts. Every route takes forms; the
// routes of a passkey ceremony, and only they, take JSON too, and decode it themselves.
func bodyTypeAllowed(route, mediaType string) bool {
	return mediaType == formBody || mediaType == jsonBody && jsonRoutes[route]
}

// jsonRoutes are the POST routes the passkey script calls with a JSON body. They answer in
// JSON, refusals included (see handleError).
var jsonRoutes = map[string]bool{
	"/account/passkeys/options":  true,
	"/account/passkeys":          true,
	"/login/passkey/options":     true,
	"/login/passkey":             true,
	"/login/mfa/passkey/options": true,
	"/login/mfa/passkey":         true,
}

// isJSONRoute reports whether the request is a POST to one of jsonRoutes, whose answers,
// refusals included, are JSON for the script.
func isJSONRoute(c echo.Context) bool {
	return c.Request().Method == http.MethodPost && jsonRoutes[c.Path()]
}

func (e *userError) withCause(err error) error {
	e2 := *e
	e2.Cause = err
	return &e2
}

package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/views"
)

// userError is a refusal with words meant for the person at the browser. Cause, if any,
// goes to the log only.
type userError struct {
	Status  int
	Message string
	Hint    string
	Cause   error
	Count   string // a health-panel counter this refusal adds to, if any
}

func (e *userError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Message, e.Cause)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Message)
}

func (e *userError) Unwrap() error { return e.Cause }

var (
	errForbidden = &userError{Status: http.StatusForbidden,
		Message: "You do not have permission to open this page.",
		Hint:    "If you think you should, ask an administrator."}
	errNotFound = &userError{Status: http.StatusNotFound,
		Message: "There is nothing here.",
		Hint:    "The address may be mistyped, or the item was removed or is not meant for you."}
	// errBusy answers a request that found every password-hashing slot taken for too long.
	// It is a 429, not a 5xx: nothing is broken, the portal is shedding a burst of sign-ins
	// so that every other page stays fast, and the client should come back after
	// Retry-After.
	errBusy = &userError{Status: http.StatusTooManyRequests,
		Message: "The portal is handling many sign-ins right now.",
		Hint:    "Try again in a few seconds.", Count: countThrottled}

	// errUnavailable answers a request the database server could not serve because it
	// cannot be reached or went away: a 503 that says so, without the driver's words,
	// which name servers and addresses. The pool reconnects by itself when it returns.
	errUnavailable = &userError{Status: http.StatusServiceUnavailable,
		Message: "The portal cannot reach its database right now.",
		Hint:    "Nothing you did caused this. Try again in a minute; if it keeps happening, give an administrator the request id below."}
)

// jsonRefusal is how a JSON route words a refusal.
type jsonRefusal struct {
	Error     string `json:"error"`
	Hint      string `json:"hint,omitempty"`
	RequestID string `json:"request_id"`
}

// busyRetryAfter is the Retry-After of errBusy, in seconds: a burst of sign-ins is over
// in moments.
const busyRetryAfter = "5"

// unavailableRetryAfter is the Retry-After of errUnavailable, in seconds: a database
// server restarting is back within moments to a minute.
const unavailableRetryAfter = "10"

func badRequest(msg string) error {
	return &userError{Status: http.StatusBadRequest, Message: msg,
		Hint: "Go back, correct the form and send it again."}
}

// tooMany is a throttled refusal; it sets Retry-After and says when to try again.
func tooMany(c echo.Context, wait time.Duration, what string) error {
	secs := int(wait.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	return &userError{Status: http.StatusTooManyRequests, Message: what,
		Hint: "Try again in " + humanWait(wait) + "."}
}

func humanWait(d time.Duration) string {
	switch {
	case d <= time.Minute:
		return "a minute"
	case d < time.Hour:
		return strconv.Itoa(int((d+time.Minute-1)/time.Minute)) + " minutes"
	default:
		return "an hour"
	}
}

// defaultMessages are the plain words for statuses raised outside our handlers (unknown
// routes, wrong methods, oversized bodies).
var defaultMessages = map[int][2]string{
	http.StatusBadRequest:            {"The request could not be understood.", "Go back and try again."},
	http.StatusForbidden:             {errForbidden.Message, errForbidden.Hint},
	http.StatusNotFound:              {errNotFound.Message, errNotFound.Hint},
	http.StatusMethodNotAllowed:      {"This address does not accept that kind of request.", "Use the links and buttons on the pages."},
	http.StatusRequestEntityTooLarge: {"What you sent is too large.", "Forms here accept at most 1 MiB; shorten the text and try again."},
	http.StatusUnsupportedMediaType:  {"This address accepts only the portal's own forms.", "Go back to the page and send the form from there."},
	http.StatusTooManyRequests:       {"Too many requests.", "Wait a little and try again."},
	http.StatusServiceUnavailable:    {"The portal is busy.", "Try again in a few seconds."},
	http.StatusInternalServerError:   {"Something went wrong on our side.", "Nothing you did caused this. Try again; if it keeps happening, give an administrator the request id below."},
}

// handleError is echo's HTTPErrorHandler: every 4xx and 5xx becomes a page in the
// portal's style with the request id. The cause is noted for the access log, which writes
// it under the same id.
func (h *Handler) handleError(err error, c echo.Context) {
	noteCause(c, err)
	if c.Response().Committed {
		return
	}
	if clientGone(c, err) {
		return // nobody is there to read a page
	}
	ue := refusal(err)
	switch ue {
	case errBusy:
		c.Response().Header().Set("Retry-After", busyRetryAfter)
	case errUnavailable:
		c.Response().Header().Set("Retry-After", unavailableRetryAfter)
	}
	if ue.Count != "" {
		h.counts.add(ue.Count)
	}
	if ue.Status >= 500 {
		h.counts.add(countServerError)
	}
	p := h.pageFor(c, http.StatusText(ue.Status))
	p.Status = ue.Status
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(ue.Status)
		return
	}
	if isJSONRoute(c) {
		// The passkey script shows these words in the page's alert.
		_ = c.JSON(ue.Status, jsonRefusal{Error: ue.Message, Hint: ue.Hint, RequestID: requestID(c)})
		return
	}
	if rerr := render(c, ue.Status, views.ErrorPage(p, ue.Message, ue.Hint)); rerr != nil {
		noteCause(c, errors.Join(err, fmt.Errorf("error page: %w", rerr)))
		_ = c.String(ue.Status, ue.Message+"\nRequest id: "+requestID(c))
	}
}

// refusal is what the error page says for err, mapped here once: an unreachable database
// as a 503 (whatever wraps it), a userError as it is, the store's not-found as a 404 and
// the hasher's busy as a 429, an echo error by its status, and anything else as a 500. A
// status without words of its own gets the plain ones.
func refusal(err error) *userError {
	var ue *userError
	var he *echo.HTTPError
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, db.ErrUnavailable):
		return errUnavailable
	case errors.As(err, &ue):
		if ue.Message != "" {
			return ue
		}
		status = ue.Status
	case errors.As(err, &he):
		status = he.Code
	case errors.Is(err, auth.ErrBusy):
		return errBusy
	case errors.Is(err, db.ErrNotFound):
		return errNotFound
	}
	d, ok := defaultMessages[status]
	if !ok {
		d = [2]string{http.StatusText(status), ""}
	}
	count := ""
	if ue != nil {
		count = ue.Count
	}
	return &userError{Status: status, Message: d[0], Hint: d[1], Count: count}
}

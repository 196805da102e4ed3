package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

// safeNext returns target if it is a path on this site that is worth returning to, and "/"
// otherwise. Anything that a browser could read as another host (//host, /\host, schemes,
// encoded or control-character variants) is refused, and so are the sign-in and sign-out
// pages, which would only loop.
func safeNext(target string) string {
	if target == "" || len(target) > maxNextLen || target[0] != '/' {
		return "/"
	}
	if len(target) > 1 && (target[1] == '/' || target[1] == '\\') {
		return "/"
	}
	for _, r := range target {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	// The decoded path must hold the same line: %2F%2F or %5C could turn into a host.
	p := u.Path
	if strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || strings.ContainsFunc(p, func(r rune) bool {
		return r < 0x20 || r == 0x7f || r == '\\'
	}) {
		return "/"
	}
	switch {
	case p == "/login", strings.HasPrefix(p, "/login/"), p == "/logout", p == "/setup":
		return "/"
	}
	return u.RequestURI()
}

// appNext reads target as the address of a registered app, which is where `next` may lead
// off the portal and nowhere else: an absolute URL with the base URL's scheme or https, no
// user, and a host registered as an app. It returns the URL as the portal redirects to it,
// its host spelt as registered, and the app; ok is false for anything else.
func (h *Handler) appNext(ctx context.Context, target string) (string, db.App, bool, error) {
	if len(target) > maxNextLen || !strings.HasPrefix(strings.ToLower(target), "http") ||
		strings.ContainsFunc(target, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '\\' }) {
		return "", db.App{}, false, nil
	}
	u, err := url.Parse(target)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" ||
		(u.Scheme != "https" && u.Scheme != h.cfg.BaseURL.Scheme) {
		return "", db.App{}, false, nil
	}
	host, err := db.ParseAppHost(u.Host)
	if err != nil {
		return "", db.App{}, false, nil
	}
	app, err := h.db.AppByHost(ctx, host)
	if errors.Is(err, db.ErrNotFound) {
		return "", db.App{}, false, nil
	}
	if err != nil {
		return "", db.App{}, false, err
	}
	u.Host = host
	if u.Path == "" {
		u.Path = "/"
	}
	return u.String(), app, true, nil
}

// nextValue is the request's `next` (form or query) as it may be carried on: a registered
// app's URL, a local path that safeNext keeps, or "" for the dashboard. The page that
// carries an app's URL on lets its forms lead there (letFormsLeadTo).
func (h *Handler) nextValue(c echo.Context) (string, error) {
	return h.nextOf(c, c.FormValue("next"))
}

// nextOf is v as nextValue would carry it on, for a next that comes in a JSON body.
func (h *Handler) nextOf(c echo.Context, v string) (string, error) {
	target, _, ok, err := h.appNext(c.Request().Context(), v)
	if err != nil {
		return "", err
	}
	if ok {
		letFormsLeadTo(c, target)
		return target, nil
	}
	if n := safeNext(v); n != "/" {
		return n, nil
	}
	return "", nil
}

// letFormsLeadTo lets this page's forms lead on to next when it is an app's URL: a form
// whose answer redirects to the app (signing in, a step of it, acknowledging the last
// must-read notice) would otherwise be stopped by the page's form-action. next comes from
// nextValue, so an absolute one is a registered app's, its host made only of letters,
// digits, dots, hyphens and a port.
func letFormsLeadTo(c echo.Context, next string) {
	u, err := url.Parse(next)
	if err != nil || u.Host == "" {
		return
	}
	c.Response().Header().Set("Content-Security-Policy", contentSecurityPolicy(u.Scheme+"://"+u.Host))
}

// continueTo sends a signed-in user on to next, a value of nextValue: first to a pending
// step (which passes next on), else to the local path or the app. For an app, the
// decision forward auth would make is made here first, so that the browser never bounces
// between the app and the portal: a user with a must-read notice to acknowledge goes to the
// start page (which sends them on once it is read), one the app would refuse is told so
// here, and an app the session cookie does not reach gets a page explaining that.
func (h *Handler) continueTo(c echo.Context, next string) error {
	target, err := h.continueTarget(c, next)
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, target)
}

// continueTarget is where continueTo sends the user, for an answer that is not a redirect
// (the passkey script's); a refusal by the app is the error.
func (h *Handler) continueTarget(c echo.Context, next string) (string, error) {
	step, err := h.pendingStep(c)
	if err != nil {
		return "", err
	}
	if step != "" {
		return views.WithNext(step, next), nil
	}
	target, app, ok, err := h.appNext(c.Request().Context(), next)
	if err != nil {
		return "", err
	}
	if !ok {
		return safeNext(next), nil
	}
	d, err := h.appDecision(c, app, target)
	if err != nil {
		return "", err
	}
	switch d.Verdict {
	case forwardPass:
		return target, nil
	case forwardMustRead:
		return views.WithNext("/", target), nil
	}
	return "", appRefusal(d, app.Host)
}

// appDecision is decideForward for the signed-in user of this request and app, as the
// app's next request would get it. The user's groups are read afresh: after sign-in, the
// user in the context was read without them.
func (h *Handler) appDecision(c echo.Context, app db.App, target string) (forwardDecision, error) {
	ctx := c.Request().Context()
	if reach := h.cfg.cookieReach(); !reach.Reaches(app.Host) {
		return forwardDecision{}, errCookieMisses(app.Host, reach)
	}
	u, _ := currentUser(c)
	groups, err := h.db.GroupIDsOf(ctx, u.ID)
	if err != nil {
		return forwardDecision{}, err
	}
	u.GroupIDs = groups
	step, err := h.pendingStep(c)
	if err != nil {
		return forwardDecision{}, err
	}
	in := forwardInput{TrustedPeer: true, Session: fullSession, User: u, StepPending: step != "", AppFound: true,
		App: app, Original: target}
	if app.MustReadFirst {
		if in.MustReadDue, err = h.mustReadOutstanding(c, u, h.now()); err != nil {
			return forwardDecision{}, err
		}
	}
	return decideForward(h.cfg.BaseURL, in), nil
}

// errCookieMisses answers a user sent to an app that the session cookie does not reach:
// the app would never see the sign-in and would send them back to sign in, for ever.
func errCookieMisses(host string, reach db.CookieReach) error {
	hint := "An administrator must start the portal with --cookie-domain set to a domain that holds both " +
		reach.PortalHost + " and " + db.HostName(host) + "."
	if reach.Domain != "" {
		hint = "The portal's cookie domain is " + reach.Domain + ". An administrator must change --cookie-domain to one that also holds " +
			db.HostName(host) + ", or move the app."
	}
	return &userError{Status: http.StatusConflict,
		Message: "You are signed in, but " + host + " cannot use this sign-in: the portal's sign-in cookie does not reach it.",
		Hint:    hint,
		Cause:   fmt.Errorf("the session cookie (domain %q) does not reach the app host %q", reach.Domain, host)}
}

// appRefusal is the portal's page for a user whom the app refuses.
func appRefusal(d forwardDecision, host string) error {
	if d.Refusal == refusedNoFactor {
		return &userError{Status: http.StatusForbidden,
			Message: host + " asks for two-step verification, and your account has none yet.",
			Hint:    "Turn it on at Account › Two-step verification, then open the app again.",
			Cause:   errors.New(d.Reason)}
	}
	return &userError{Status: http.StatusForbidden, Message: "Your account may not open " + host + ".",
		Hint: "If you think it should, ask an administrator.", Cause: errors.New(d.Reason)}
}

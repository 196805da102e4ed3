package handlers

import (
	"log/slog"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
)

// currentUser returns the user of a valid session (full or partial).
func currentUser(c echo.Context) (db.User, bool) {
	u, ok := c.Get(userKey).(db.User)
	return u, ok
}

func currentSession(c echo.Context) (db.Session, bool) {
	s, ok := c.Get(sessionKey).(db.Session)
	return s, ok
}

// echo's context store is keyed by strings; these unexported names keep ours apart.
const (
	sessionKey      = "gatehouse.session"
	userKey         = "gatehouse.user"
	sessionEndedKey = "gatehouse.session_ended"
	csrfKey         = "gatehouse.csrf"
)

func sessionEnded(c echo.Context) bool {
	v, _ := c.Get(sessionEndedKey).(bool)
	return v
}

// loadSession resolves the session cookie of a request to the portal and puts the session
// and its user in the context; see readSession.
func (h *Handler) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r, err := h.readSession(c, h.portalHost())
		if err != nil {
			return err
		}
		if r.ended {
			c.Set(sessionEndedKey, true)
		}
		if r.found {
			c.Set(sessionKey, r.session)
			c.Set(userKey, r.user)
			c.Set(ruleScopeKnownKey, true)
		}
		return next(c)
	}
}

// sessionRead is what a request's cookies say about its session.
type sessionRead struct {
	session db.Session
	user    db.User
	found   bool
	// ended: a session cookie was sent, but no valid session goes with it any more. Every
	// variant was expired, so the next request comes without it.
	ended bool
}

// readSession resolves the session cookie of a request from a browser at host (the
// portal's, or an app's for forward auth). Every value sent under the current name is
// tried and the newest valid session wins, so cookie order never changes the decision and a
// stale duplicate cannot shadow a good one. Legacy names are expired on sight, and so is a
// session issued under another cookie scope than the current one (see resolveSession). If
// a cookie was sent but none is valid, all variants are expired and the request goes on as
// signed out, marked so the login page can say the session ended. A valid session is
// marked as seen at most once every touchInterval: the only write a page view or an app's
// request makes.
func (h *Handler) readSession(c echo.Context, host string) (sessionRead, error) {
	req := c.Request()
	current := h.sessionCookieName()
	var values, legacyValues []string
	for _, ck := range req.Cookies() {
		switch {
		case ck.Name == current:
			values = append(values, ck.Value)
		case h.legacyName(ck.Name):
			legacyValues = append(legacyValues, ck.Value)
		}
	}
	legacy := len(legacyValues) > 0
	if legacy {
		// Never trusted, and ended: its token must not come back under the current name.
		if err := h.endSessionsOf(c, legacyValues, "its cookie came under a name the portal no longer sets"); err != nil {
			return sessionRead{}, err
		}
	}
	var r sessionRead
	if len(values) > 0 {
		s, u, otherScope, err := h.resolveSession(c, values)
		if err != nil {
			return sessionRead{}, err
		}
		legacy = legacy || otherScope
		r.session, r.user, r.found = s, u, s.ID != 0
	}
	switch {
	case r.found && legacy:
		h.expireLegacyCookies(c, host)
		h.counts.add(countStaleCookie)
	case !r.found && (legacy || len(values) > 0):
		h.clearSessionCookiesAt(c, host)
		h.counts.add(countStaleCookie)
		h.log.Info("stale session cookie cleared", "request_id", requestID(c))
		r.ended = true
	}
	if r.found {
		if now := h.now(); now.Sub(r.session.LastSeenAt) >= touchInterval {
			if err := h.db.TouchSession(req.Context(), r.session.ID, now); err != nil {
				h.logFault(c, slog.LevelWarn, "session touch failed", err)
			}
		}
	}
	return r, nil
}

// endSessionsOf ends, with an audit row saying why, the sessions whose tokens are among
// values.
func (h *Handler) endSessionsOf(c echo.Context, values []string, why string) error {
	ctx := c.Request().Context()
	found, err := h.db.SessionsByTokenHashes(ctx, tokenHashes(values))
	if err != nil {
		return err
	}
	for _, f := range found {
		ev := h.event(c, "session.expired", f.User.Username)
		ev.ActorID, ev.Actor, ev.Detail = f.User.ID, f.User.Username, why
		if err := h.db.EndSessionAudited(ctx, f.Session.ID, ev); err != nil {
			return err
		}
	}
	return nil
}

// tokenHashes hashes the values shaped like a token, once each.
func tokenHashes(values []string) [][]byte {
	seen := make(map[string]bool, len(values))
	var hashes [][]byte
	for _, v := range values {
		if seen[v] || !auth.ValidTokenShape(v) {
			continue
		}
		seen[v] = true
		hashes = append(hashes, auth.HashToken(v))
	}
	return hashes
}

// resolveSession finds the newest live session among the values sent. Any number of values
// is considered (a plain-http path lets anyone plant cookies, and a planted crowd must not
// push the valid one out), at a bounded cost: duplicates and values not shaped like a
// token are dropped before the lookup, which reads the rest in batches (one read for any
// real browser, a handful for a header filled to the server's limit).
//
// A session issued under another cookie scope than the current configuration's is a
// cookie from before --cookie-domain changed: over plain http its name is the current one,
// so only the scope recorded with the session tells. It is ended like an expired one, and
// otherScope says so, so that every variant of the cookie is expired.
func (h *Handler) resolveSession(c echo.Context, values []string) (best db.Session, bestUser db.User, otherScope bool, err error) {
	ctx := c.Request().Context()
	hashes := tokenHashes(values)
	if len(hashes) == 0 {
		return db.Session{}, db.User{}, false, nil
	}
	found, err := h.lookupSessions(c, hashes)
	if err != nil {
		return db.Session{}, db.User{}, false, err
	}
	for _, f := range found {
		s, u := f.Session, f.User
		why := h.sessionDead(s, u)
		if why == "" && s.CookieScope != h.cfg.CookieDomain {
			why = "its cookie was issued for " + scopeWords(s.CookieScope) + ", and the portal now sets it for " +
				scopeWords(h.cfg.CookieDomain)
			otherScope = true
		}
		if why != "" {
			ev := h.event(c, "session.expired", u.Username)
			ev.ActorID, ev.Actor, ev.Detail = u.ID, u.Username, why
			if err := h.db.EndSessionAudited(ctx, s.ID, ev); err != nil {
				return db.Session{}, db.User{}, false, err
			}
			continue
		}
		newer := s.CreatedAt.After(best.CreatedAt) || s.CreatedAt.Equal(best.CreatedAt) && s.ID > best.ID
		if best.ID == 0 || newer {
			best, bestUser = s, u
		}
	}
	return best, bestUser, otherScope, nil
}

// scopeWords names a cookie scope in an audit detail.
func scopeWords(scope string) string {
	if scope == "" {
		return "the portal's host only"
	}
	return "the domain " + scope
}

// sessionDead applies the server-side limits (idle, absolute, partial, disabled account,
// times from a clock that has since stepped back) and says which one ended the session,
// or "" while it lives.
func (h *Handler) sessionDead(s db.Session, u db.User) string {
	now := h.now()
	switch {
	case u.Disabled:
		return "account disabled"
	case db.FromFuture(s.CreatedAt, now) || db.FromFuture(s.LastSeenAt, now):
		return "made or used while the clock was ahead"
	case now.Sub(s.LastSeenAt) > h.cfg.SessionIdle:
		return "idle limit reached"
	case now.Sub(s.CreatedAt) > h.cfg.SessionMax:
		return "absolute limit reached"
	case s.Stage == db.StageMFA && now.Sub(s.CreatedAt) > PartialSessionMax:
		return "second step not completed in time"
	}
	return ""
}

// loginRedirect sends a browser to sign in, at most once: the login page itself never
// redirects for a bad cookie, so this cannot loop.
func (h *Handler) loginRedirect(c echo.Context) error {
	q := url.Values{}
	if sessionEnded(c) {
		q.Set("ended", "1")
	}
	if c.Request().Method == http.MethodGet {
		if next := safeNext(c.Request().URL.RequestURI()); next != "/" {
			q.Set("next", next)
		}
	}
	target := "/login"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	return c.Redirect(http.StatusSeeOther, target)
}

// requireFull lets through only a fully signed-in user whose account has no step pending
// (a forced password change, a required MFA enrollment): those are sent to that step.
func (h *Handler) requireFull(next echo.HandlerFunc) echo.HandlerFunc {
	return h.requireSession("", next)
}

// requireStep is requireFull for the page of one pending step: it is open while that step
// (or none) is pending, so the page that resolves a step never redirects to itself.
func (h *Handler) requireStep(step string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return h.requireSession(step, next)
	}
}

func (h *Handler) requireSession(allowed string, next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		s, ok := currentSession(c)
		switch {
		case (!ok || s.Stage != db.StageFull) && isJSONRoute(c):
			return errSessionGone // a script's request: a redirect would only hand it a page
		case !ok:
			return h.loginRedirect(c)
		case s.Stage != db.StageFull:
			return c.Redirect(http.StatusSeeOther, "/login/mfa")
		}
		target, err := h.pendingStep(c)
		if err != nil {
			return err
		}
		if target != "" && target != allowed {
			if isJSONRoute(c) {
				return &userError{Status: http.StatusConflict, Message: "Your account has a step to finish first.",
					Hint: "Reload the page."}
			}
			return c.Redirect(http.StatusSeeOther, target)
		}
		return next(c)
	}
}

// errSessionGone answers a script whose session ended, or never passed its second step.
var errSessionGone = &userError{Status: http.StatusUnauthorized, Message: "Your session has ended.",
	Hint: "Reload the page and sign in again."}

// requireCapability answers 403 unless the signed-in user is allowed, by a capability of
// their role such as db.User.IsAdmin. It runs after requireFull, so the user is known.
func requireCapability(allowed func(db.User) bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			u, ok := currentUser(c)
			if !ok {
				return echo.NewHTTPError(http.StatusForbidden)
			}
			if !allowed(u) {
				return errForbidden
			}
			return next(c)
		}
	}
}

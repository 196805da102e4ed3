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

// loadSession resolves the session cookie. Every value sent under the current name is
// tried and the newest valid session wins, so cookie order never changes the decision and a
// stale duplicate cannot shadow a good one. Legacy names are expired on sight. If a cookie
// was sent but none is valid, all variants are expired and the request goes on as signed
// out, marked so the login page can say the session ended.
func (h *Handler) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		current := h.sessionCookieName()
		var values []string
		legacy := false
		legacyNames := h.legacyCookies()
		for _, ck := range req.Cookies() {
			if ck.Name == current {
				values = append(values, ck.Value)
				continue
			}
			for _, v := range legacyNames {
				if ck.Name == v.Name {
					legacy = true
				}
			}
		}
		if legacy {
			for _, v := range legacyNames {
				expireCookie(c, v, h.cfg.Secure())
			}
			h.counts.add(countStaleCookie)
		}
		if len(values) == 0 {
			if legacy {
				c.Set(sessionEndedKey, true)
			}
			return next(c)
		}
		s, u, err := h.resolveSession(c, values)
		if err != nil {
			return err
		}
		if s.ID == 0 {
			h.clearSessionCookies(c)
			c.Set(sessionEndedKey, true)
			h.counts.add(countStaleCookie)
			h.log.Info("stale session cookie cleared", "request_id", requestID(c))
			return next(c)
		}
		if now := h.now(); now.Sub(s.LastSeenAt) >= touchInterval {
			if err := h.db.TouchSession(req.Context(), s.ID, now); err != nil {
				h.logFault(c, slog.LevelWarn, "session touch failed", err)
			}
		}
		c.Set(sessionKey, s)
		c.Set(userKey, u)
		c.Set(ruleScopeKnownKey, true)
		return next(c)
	}
}

// resolveSession finds the newest live session among the values sent. Any number of values
// is considered (a plain-http path lets anyone plant cookies, and a planted crowd must not
// push the valid one out), at a bounded cost: duplicates and values not shaped like a
// token are dropped before the lookup, which reads the rest in batches (one read for any
// real browser, a handful for a header filled to the server's limit).
func (h *Handler) resolveSession(c echo.Context, values []string) (db.Session, db.User, error) {
	ctx := c.Request().Context()
	seen := make(map[string]bool, len(values))
	var hashes [][]byte
	for _, v := range values {
		if seen[v] || !auth.ValidTokenShape(v) {
			continue
		}
		seen[v] = true
		hashes = append(hashes, auth.HashToken(v))
	}
	if len(hashes) == 0 {
		return db.Session{}, db.User{}, nil
	}
	found, err := h.db.SessionsByTokenHashes(ctx, hashes)
	if err != nil {
		return db.Session{}, db.User{}, err
	}
	var best db.Session
	var bestUser db.User
	for _, f := range found {
		s, u := f.Session, f.User
		if why := h.sessionDead(s, u); why != "" {
			ev := h.event(c, "session.expired", u.Username)
			ev.ActorID, ev.Actor, ev.Detail = u.ID, u.Username, why
			if err := h.db.EndSessionAudited(ctx, s.ID, ev); err != nil {
				return db.Session{}, db.User{}, err
			}
			continue
		}
		newer := s.CreatedAt.After(best.CreatedAt) || s.CreatedAt.Equal(best.CreatedAt) && s.ID > best.ID
		if best.ID == 0 || newer {
			best, bestUser = s, u
		}
	}
	return best, bestUser, nil
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

package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/views"
)

// lockAfter is the consecutive failure that first locks an account: every attempt after it,
// with the right password or not, from any address, waits out the back-off.
const lockAfter = 10

// signInBackoff locks for a minute at the lockAfter-th consecutive failure and doubles with
// each further one, up to an hour: at most about 16 guesses an hour once an attack starts,
// far under the hundred that NIST SP 800-63B allows, while a user who mistypes is back in a
// minute.
func signInBackoff(failures int) time.Duration {
	if failures < lockAfter {
		return 0
	}
	d := time.Minute << min(failures-lockAfter, 6)
	return min(d, time.Hour)
}

// hashWait bounds how long a sign-in waits for a free password-hashing slot.
const hashWait = 3 * time.Second

func (h *Handler) loginForm(c echo.Context) error {
	if s, ok := currentSession(c); ok && s.Stage == db.StageFull {
		return c.Redirect(http.StatusSeeOther, safeNext(c.QueryParam("next")))
	}
	f := views.LoginForm{Next: nextParam(c)}
	switch {
	case sessionEnded(c) || c.QueryParam("ended") == "1":
		f.Notice = "Your session has ended. Please sign in again."
	case c.QueryParam("out") == "1":
		f.Notice = "You have signed out."
	}
	return render(c, http.StatusOK, views.LoginPage(h.pageFor(c, "Sign in"), f))
}

// nextParam is the validated return path, or "" for the dashboard.
func nextParam(c echo.Context) string {
	n := safeNext(c.FormValue("next"))
	if n == "/" {
		return ""
	}
	return n
}

// errSignIn is deliberately one message for unknown users, wrong passwords and disabled
// accounts, so the page says nothing about which accounts exist.
const errSignIn = "That username and password do not match an active account."

func (h *Handler) loginSubmit(c echo.Context) error {
	ctx := c.Request().Context()
	username := strings.TrimSpace(c.FormValue("username"))
	password := c.FormValue("password")
	f := views.LoginForm{Username: username, Next: nextParam(c)}
	if username == "" || password == "" || len([]rune(username)) > auth.MaxUsernameLen || len([]rune(password)) > auth.MaxPasswordLen {
		f.Error = errSignIn
		return render(c, http.StatusUnauthorized, views.LoginPage(h.pageWithStatus(c, "Sign in", http.StatusUnauthorized), f))
	}
	addr := c.RealIP()
	now := h.now()
	if wait := h.addrs.wait(addr, now); wait > 0 {
		h.throttled(c, "password")
		h.audit(c, h.failure(c, "signin.throttled", username, "client address throttled"))
		return tooMany(c, wait, "Too many failed sign-in attempts from your network.")
	}
	// Every variant of a name (case, width, accent encoding) counts against one account.
	key := auth.UsernameKey(username)
	attempt, err := h.db.BeginSignInAttempt(ctx, key, now, signInBackoff)
	if err != nil {
		return err
	}
	if attempt.Wait > 0 {
		h.throttled(c, "password")
		h.audit(c, h.failure(c, "signin.throttled", username, "account throttled"))
		return tooMany(c, attempt.Wait, "Too many failed sign-in attempts for this account.")
	}

	u, err := h.db.UserByUsername(ctx, username)
	ok := false
	reason := ""
	// Password hashing is the one expensive thing a stranger can ask for; waiting for a
	// slot is bounded, so a flood queues briefly and then gets a 503, never the whole server.
	hctx, cancel := context.WithTimeout(ctx, hashWait)
	defer cancel()
	switch {
	case errors.Is(err, db.ErrNotFound):
		if err := h.hasher.VerifyDummy(hctx, password); err != nil {
			return err
		}
		reason = "unknown user"
	case err != nil:
		return err
	default:
		ok, err = h.hasher.Verify(hctx, u.PasswordHash, password)
		if err != nil {
			return err
		}
		if !ok {
			reason = "wrong password"
		} else if u.Disabled {
			ok, reason = false, "account disabled"
		}
	}
	if !ok {
		h.addrs.fail(addr, now)
		detail := reason
		if attempt.Failures >= lockAfter {
			detail += "; account locked"
		}
		h.audit(c, h.failure(c, "signin.password", username, detail))
		h.metrics.signin("password", "failure")
		f.Error = errSignIn
		return render(c, http.StatusUnauthorized, views.LoginPage(h.pageWithStatus(c, "Sign in", http.StatusUnauthorized), f))
	}

	// The address's budget is left to decay on its own: one known password must not buy an
	// address fresh guesses at every other account.
	h.metrics.signin("password", "success")
	// Only a complete sign-in clears the account's failures; with a second step to come,
	// this attempt is merely given back, so failed codes keep counting across sign-ins.
	if u.HasMFA {
		err = h.db.ReleaseSignInAttempt(ctx, attempt)
	} else {
		_, err = h.db.ClearThrottle(ctx, key, db.Event{})
	}
	if err != nil {
		return err
	}
	if h.hasher.NeedsRehash(u.PasswordHash) {
		h.rehash(ctx, c, u, password)
	}
	stage := db.StageFull
	if u.HasMFA {
		stage = db.StageMFA
	}
	ev := h.event(c, "signin.password", u.Username)
	ev.ActorID, ev.Actor = u.ID, u.Username
	if stage == db.StageMFA {
		ev.Detail = "password accepted; second step pending"
	}
	if err := h.startSession(c, u, stage, ev); err != nil {
		return err
	}
	if stage == db.StageMFA {
		target := "/login/mfa"
		if f.Next != "" {
			target += "?" + url.Values{"next": {f.Next}}.Encode()
		}
		return c.Redirect(http.StatusSeeOther, target)
	}
	return h.afterSignIn(c, u, f.Next)
}

// afterSignIn sends a fully signed-in user straight to a pending step (a forced password
// change, a required enrollment) or else to where they were going.
func (h *Handler) afterSignIn(c echo.Context, u db.User, next string) error {
	c.Set(userKey, u)
	c.Set(ruleScopeKnownKey, false) // this user was read without the session's extras
	step, err := h.pendingStep(c)
	if err != nil {
		return err
	}
	if step != "" {
		return c.Redirect(http.StatusSeeOther, step)
	}
	return c.Redirect(http.StatusSeeOther, safeNext(next))
}

// startSession ends whatever session this browser had, then issues a new token: a token
// known before sign-in is never the one after it (no fixation).
func (h *Handler) startSession(c echo.Context, u db.User, stage string, ev db.Event) error {
	ctx := c.Request().Context()
	if old, ok := currentSession(c); ok {
		if err := h.db.EndSession(ctx, old.ID); err != nil {
			return err
		}
	}
	token := auth.NewToken()
	_, err := h.db.StartSession(ctx, db.NewSession{TokenHash: auth.HashToken(token), UserID: u.ID, Stage: stage,
		ClientAddr: c.RealIP(), UserAgent: truncate(c.Request().UserAgent(), 512)}, ev)
	if err != nil {
		return err
	}
	h.setSessionCookie(c, token)
	return nil
}

func (h *Handler) rehash(ctx context.Context, c echo.Context, u db.User, password string) {
	hash, err := h.hasher.Hash(ctx, password)
	if err == nil {
		err = h.db.UpdatePasswordHash(ctx, u.ID, u.PasswordHash, hash)
	}
	if err != nil {
		h.logFault(c, slog.LevelWarn, "password rehash failed", err, "user_id", u.ID)
	}
}

// throttled counts a refused attempt for the health panel and metrics.
func (h *Handler) throttled(c echo.Context, step string) {
	h.metrics.signin(step, "throttled")
	h.counts.add(countThrottled)
}

// logout ends this session server-side and clears the cookie. It works, and answers the
// same way, whether or not the session was still valid, so it can never loop.
func (h *Handler) logout(c echo.Context) error {
	if s, ok := currentSession(c); ok {
		if err := h.db.EndSession(c.Request().Context(), s.ID); err != nil {
			return err
		}
		u, _ := currentUser(c)
		h.audit(c, h.event(c, "signout", u.Username))
	}
	h.clearSessionCookies(c)
	return c.Redirect(http.StatusSeeOther, "/login?out=1")
}

// truncate shortens header text for storage to valid UTF-8 of at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}

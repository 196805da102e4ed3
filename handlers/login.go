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

// loginForm handles GET /login: the sign-in form, saying why the user is here when a
// session ended; a signed-in user goes on to where they were going, which may be an app
// behind forward auth (see continueTo).
func (h *Handler) loginForm(c echo.Context) error {
	next, err := h.nextValue(c)
	if err != nil {
		return err
	}
	if s, ok := currentSession(c); ok && s.Stage == db.StageFull {
		return h.continueTo(c, next)
	}
	f := views.LoginForm{Next: next, MailOn: h.mailOn(), Passkeys: h.passkeys != nil}
	switch {
	case sessionEnded(c) || c.QueryParam("ended") == "1":
		f.Notice = "Your session has ended. Please sign in again."
	case c.QueryParam("out") == "1":
		f.Notice = "You have signed out."
	}
	return render(c, http.StatusOK, views.LoginPage(h.pageFor(c, "Sign in"), f))
}

// errSignIn is deliberately one message for unknown users, wrong passwords and disabled
// accounts, so the page says nothing about which accounts exist.
const errSignIn = "That username and password do not match an active account."

// loginSubmit handles POST /login, the password step of signing in: the address and the
// account must not be throttled, the password must match an active account, and then a
// session starts, full or waiting for the second step.
func (h *Handler) loginSubmit(c echo.Context) error {
	username := strings.TrimSpace(c.FormValue("username"))
	password := c.FormValue("password")
	next, err := h.nextValue(c)
	if err != nil {
		return err
	}
	f := views.LoginForm{Username: username, Next: next, Passkeys: h.passkeys != nil}
	if username == "" || password == "" || len([]rune(username)) > auth.MaxUsernameLen || len([]rune(password)) > auth.MaxPasswordLen {
		return h.renderSignInRefused(c, f)
	}
	now := h.now()
	attempt, err := h.admitSignIn(c, username, now)
	if err != nil {
		return err
	}
	u, refusal, err := h.checkPassword(c, username, password)
	if err != nil {
		return err
	}
	if refusal != "" {
		h.signInFailed(c, username, refusal, attempt, now)
		return h.renderSignInRefused(c, f)
	}
	return h.passwordAccepted(c, u, password, attempt, f.Next)
}

// admitSignIn refuses a sign-in from an address or for an account that is throttled, and
// otherwise counts the attempt against the account before any password is checked.
func (h *Handler) admitSignIn(c echo.Context, username string, now time.Time) (db.Attempt, error) {
	if wait := h.addrs.wait(c.RealIP(), now); wait > 0 {
		h.throttled(c, "password")
		h.audit(c, h.failure(c, "signin.throttled", username, "client address throttled"))
		return db.Attempt{}, tooMany(c, wait, "Too many failed sign-in attempts from your network.")
	}
	// Every variant of a name (case, width, accent encoding) counts against one account.
	attempt, err := h.db.BeginSignInAttempt(c.Request().Context(), auth.UsernameKey(username), now, signInBackoff)
	if err != nil {
		return db.Attempt{}, err
	}
	if attempt.Wait > 0 {
		h.throttled(c, "password")
		h.audit(c, h.failure(c, "signin.throttled", username, "account throttled"))
		return db.Attempt{}, tooMany(c, attempt.Wait, "Too many failed sign-in attempts for this account.")
	}
	return attempt, nil
}

// checkPassword looks the account up and checks the password, and says why a sign-in is
// refused ("" when it is not). An unknown user costs the same hashing as a known one.
//
// Password hashing is the one expensive thing a stranger can ask for; waiting for a slot
// is bounded, so a flood queues briefly and is then refused with a 429, never the whole
// server.
func (h *Handler) checkPassword(c echo.Context, username, password string) (db.User, string, error) {
	ctx := c.Request().Context()
	u, err := h.db.UserByUsername(ctx, username)
	hctx, cancel := context.WithTimeout(ctx, hashWait)
	defer cancel()
	if errors.Is(err, db.ErrNotFound) {
		return db.User{}, "unknown user", h.hasher.VerifyDummy(hctx, password)
	}
	if err != nil {
		return db.User{}, "", err
	}
	ok, err := h.hasher.Verify(hctx, u.PasswordHash, password)
	switch {
	case err != nil:
		return db.User{}, "", err
	case !ok:
		return db.User{}, "wrong password", nil
	case u.Disabled:
		return db.User{}, "account disabled", nil
	}
	return u, "", nil
}

// signInFailed counts a refused password step against the address and audits why; the
// account's count was already taken by admitSignIn.
func (h *Handler) signInFailed(c echo.Context, username, reason string, attempt db.Attempt, now time.Time) {
	h.addrs.fail(c.RealIP(), now)
	if attempt.Failures >= lockAfter {
		reason += "; account locked"
	}
	h.audit(c, h.failure(c, "signin.password", username, reason))
	h.metrics.signin("password", "failure")
}

func (h *Handler) renderSignInRefused(c echo.Context, f views.LoginForm) error {
	f.Error, f.MailOn = errSignIn, h.mailOn()
	return render(c, http.StatusUnauthorized, views.LoginPage(h.pageWithStatus(c, "Sign in", http.StatusUnauthorized), f))
}

// passwordAccepted settles the account's throttle and starts the session: a full one, or
// one that waits for the second step.
func (h *Handler) passwordAccepted(c echo.Context, u db.User, password string, attempt db.Attempt, next string) error {
	ctx := c.Request().Context()
	// The address's budget is left to decay on its own: one known password must not buy an
	// address fresh guesses at every other account.
	h.metrics.signin("password", "success")
	// Only a complete sign-in clears the account's failures; with a second step to come,
	// this attempt is merely given back, so failed codes keep counting across sign-ins.
	var err error
	if u.HasMFA() {
		err = h.db.ReleaseSignInAttempt(ctx, attempt)
	} else {
		_, err = h.db.ClearThrottle(ctx, attempt.Username, db.Event{})
	}
	if err != nil {
		return err
	}
	if h.hasher.NeedsRehash(u.PasswordHash) {
		h.rehash(ctx, c, u, password)
	}
	ev := h.event(c, "signin.password", u.Username)
	ev.ActorID, ev.Actor = u.ID, u.Username
	if !u.HasMFA() {
		if err := h.startSession(c, u, db.StageFull, ev); err != nil {
			return err
		}
		return h.afterSignIn(c, u, next)
	}
	ev.Detail = "password accepted; second step pending"
	if err := h.startSession(c, u, db.StageMFA, ev); err != nil {
		return err
	}
	target := "/login/mfa"
	if next != "" {
		target += "?" + url.Values{"next": {next}}.Encode()
	}
	return c.Redirect(http.StatusSeeOther, target)
}

// afterSignIn sends a fully signed-in user straight to a pending step (a forced password
// change, a required enrollment), which passes next on, or else to where they were going.
func (h *Handler) afterSignIn(c echo.Context, u db.User, next string) error {
	target, err := h.signInTarget(c, u, next)
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, target)
}

// signInTarget is where afterSignIn sends a user (see continueTarget); a passkey sign-in
// tells its script.
func (h *Handler) signInTarget(c echo.Context, u db.User, next string) (string, error) {
	c.Set(userKey, u)
	c.Set(ruleScopeKnownKey, false) // this user was read without the session's extras
	return h.continueTarget(c, next)
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
	if _, err := h.db.StartSession(ctx, h.newSession(c, u, token, stage), ev); err != nil {
		return err
	}
	h.setSessionCookie(c, token)
	return nil
}

// newSession is the row of a session about to be set in this browser's cookie under token,
// with the scope that cookie is set for (see db.Session.CookieScope).
func (h *Handler) newSession(c echo.Context, u db.User, token, stage string) db.NewSession {
	return db.NewSession{TokenHash: auth.HashToken(token), UserID: u.ID, Stage: stage, ClientAddr: c.RealIP(),
		UserAgent: truncate(c.Request().UserAgent(), 512), CookieScope: h.currentCookie().Domain}
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

// logout handles POST /logout: it ends this session server-side and clears the cookie. It
// works, and answers the same way, whether or not the session was still valid, so it can
// never loop.
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

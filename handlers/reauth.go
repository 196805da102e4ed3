package handlers

import (
	"context"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
)

// confirmPassword asks a signed-in user's password again before a change to what signs
// them in (the password itself, a factor, recovery codes). Each check counts against the
// account's sign-in throttle exactly like a sign-in, so a stolen session cannot guess the
// password here without limit: a locked account gets the same 429, a wrong password is a
// failure, and a right one gives its attempt back without clearing earlier failures, which
// may be an attacker's. kind names the audit event of a refusal.
func (h *Handler) confirmPassword(c echo.Context, u db.User, password, kind string) (bool, error) {
	if password == "" || len([]rune(password)) > auth.MaxPasswordLen {
		return false, nil // not a guess that could be right, so not counted
	}
	ctx := c.Request().Context()
	attempt, err := h.db.BeginSignInAttempt(ctx, auth.UsernameKey(u.Username), h.now(), signInBackoff)
	if err != nil {
		return false, err
	}
	if attempt.Wait > 0 {
		h.throttled(c, "reauth")
		h.audit(c, h.failure(c, "signin.throttled", u.Username, "password confirmation throttled"))
		return false, tooMany(c, attempt.Wait, "Too many failed attempts for this account.")
	}
	hctx, cancel := context.WithTimeout(ctx, hashWait)
	defer cancel()
	ok, err := h.hasher.Verify(hctx, u.PasswordHash, password)
	if err != nil {
		return false, err
	}
	if !ok {
		detail := "password wrong"
		if attempt.Failures >= lockAfter {
			detail += "; account locked"
		}
		h.audit(c, h.failure(c, kind, u.Username, detail))
		return false, nil
	}
	return true, h.db.ReleaseSignInAttempt(ctx, attempt)
}

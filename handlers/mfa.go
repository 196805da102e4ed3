package handlers

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/views"
)

func totpAAD(userID int64) []byte { return auth.TOTPSecretAAD(userID) }

const recoveryCodeCount = 10

// loginMFAForm handles GET /login/mfa, the second step; only a partial session reaches it.
func (h *Handler) loginMFAForm(c echo.Context) error {
	if _, ok, err := h.secondStepSession(c); !ok {
		return err
	}
	f, err := h.mfaForm(c)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.LoginMFAPage(h.pageFor(c, "Two-step verification"), f))
}

// mfaForm is the second step's form for the user of this partial session: a code field,
// and a passkey button when the user has a passkey the portal can ask for; both carry next
// on.
func (h *Handler) mfaForm(c echo.Context) (views.MFAForm, error) {
	u, _ := currentUser(c)
	next, err := h.nextValue(c)
	if err != nil {
		return views.MFAForm{}, err
	}
	return views.MFAForm{Next: next, HasTOTP: u.HasTOTP,
		Passkey: u.Passkeys > 0 && h.passkeys != nil, PasskeysOff: u.Passkeys > 0 && h.passkeys == nil}, nil
}

// secondStepSession returns the session waiting for its second step. Without one, the
// request is answered here and the error is what to return: a stranger is sent to sign in
// and a full session to the dashboard.
func (h *Handler) secondStepSession(c echo.Context) (db.Session, bool, error) {
	s, ok := currentSession(c)
	switch {
	case !ok:
		return s, false, h.loginRedirect(c)
	case s.Stage == db.StageFull:
		return s, false, c.Redirect(http.StatusSeeOther, "/")
	}
	return s, true, nil
}

const errCode = "That code did not work. Check your authenticator's clock, or use a recovery code."

// loginMFASubmit handles POST /login/mfa: a TOTP or recovery code completes a partial
// session, which is then issued a new token. Failed codes count against the account like
// failed passwords.
func (h *Handler) loginMFASubmit(c echo.Context) error {
	ctx := c.Request().Context()
	s, ok, err := h.secondStepSession(c)
	if !ok {
		return err
	}
	u, _ := currentUser(c)
	f, err := h.mfaForm(c)
	if err != nil {
		return err
	}
	again := func(status int, msg string) error {
		f.Error = msg
		return render(c, status, views.LoginMFAPage(h.pageWithStatus(c, "Two-step verification", status), f))
	}
	code := strings.TrimSpace(c.FormValue("code"))
	if code == "" || len(code) > 64 {
		return again(http.StatusUnauthorized, errCode)
	}
	key := auth.UsernameKey(u.Username) // the key the password step counted under
	attempt, err := h.db.BeginSignInAttempt(ctx, key, h.now(), signInBackoff)
	if err != nil {
		return err
	}
	if attempt.Wait > 0 {
		h.throttled(c, "mfa")
		h.audit(c, h.failure(c, "signin.throttled", u.Username, "second step throttled"))
		return tooMany(c, attempt.Wait, "Too many failed attempts for this account.")
	}

	kind, ok, err := h.checkSecondFactor(ctx, c, u, code)
	if err != nil {
		return err
	}
	if !ok {
		h.metrics.signin("mfa", "failure")
		return again(http.StatusUnauthorized, errCode)
	}
	h.metrics.signin(strings.TrimPrefix(kind, "signin."), "success")
	if _, err := h.db.ClearThrottle(ctx, key, db.Event{}); err != nil {
		return err
	}
	ev := h.event(c, kind, u.Username)
	token := auth.NewToken()
	_, err = h.db.PromoteSession(ctx, s.ID, h.newSession(c, u, token, db.StageFull), ev)
	if errors.Is(err, db.ErrNotFound) {
		h.clearSessionCookies(c)
		return c.Redirect(http.StatusSeeOther, "/login?ended=1")
	}
	if err != nil {
		return err
	}
	h.setSessionCookie(c, token)
	return h.afterSignIn(c, u, f.Next)
}

// checkSecondFactor accepts a TOTP code once, or an unused recovery code once, and audits
// the outcome. It returns the audit kind of a success.
func (h *Handler) checkSecondFactor(ctx context.Context, c echo.Context, u db.User, code string) (string, bool, error) {
	compact := strings.Join(strings.Fields(code), "")
	if len(compact) == 6 && strings.Trim(compact, "0123456789") == "" {
		return h.checkTOTPCode(ctx, c, u, compact)
	}
	return h.checkRecoveryCode(ctx, c, u, code)
}

// checkTOTPCode accepts a code of the user's authenticator once: a code of a time step
// already used is a replay, refused and counted.
func (h *Handler) checkTOTPCode(ctx context.Context, c echo.Context, u db.User, compact string) (string, bool, error) {
	f, err := h.db.FactorOf(ctx, u.ID)
	if errors.Is(err, db.ErrNotFound) {
		h.audit(c, h.failure(c, "signin.mfa", u.Username, "no factor enrolled"))
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	secret, err := h.keys.Open(f.SecretEnc, totpAAD(u.ID))
	if err != nil {
		return "", false, err
	}
	step, ok := auth.CheckTOTP(string(secret), compact, h.now())
	if !ok {
		h.audit(c, h.failure(c, "signin.mfa", u.Username, "wrong code"))
		return "", false, nil
	}
	claimed, err := h.db.ClaimTOTPStep(ctx, u.ID, step)
	if err != nil {
		return "", false, err
	}
	if !claimed {
		h.counts.add(countReplay)
		h.audit(c, h.failure(c, "mfa.replay_refused", u.Username, "code of an already used time step"))
		noteCause(c, fmt.Errorf("totp replay refused, user %d", u.ID))
		return "", false, nil
	}
	return "signin.mfa", true, nil
}

// checkRecoveryCode accepts an unused recovery code once.
func (h *Handler) checkRecoveryCode(ctx context.Context, c echo.Context, u db.User, code string) (string, bool, error) {
	normal := auth.NormalizeRecoveryCode(code)
	if normal == "" {
		h.audit(c, h.failure(c, "signin.mfa", u.Username, "malformed code"))
		return "", false, nil
	}
	codes, err := h.db.UnusedRecoveryCodes(ctx, u.ID)
	if err != nil {
		return "", false, err
	}
	hashes := make([]string, len(codes))
	for i, rc := range codes {
		hashes[i] = rc.Hash
	}
	i, err := h.hasher.MatchSet(ctx, hashes, normal)
	if err != nil {
		return "", false, err
	}
	if i >= 0 {
		// Spending is a compare-and-set, so of two racing requests with one code only one wins.
		used, err := h.db.UseRecoveryCode(ctx, u.ID, codes[i].ID, h.now())
		if err != nil {
			return "", false, err
		}
		if used {
			return "signin.recovery_code", true, nil
		}
	}
	h.audit(c, h.failure(c, "signin.recovery_code", u.Username, "unknown or used recovery code"))
	return "", false, nil
}

// mfaShow handles GET /account/mfa, the enrollment page. It shows, in order of precedence:
// fresh recovery codes just made; the enrollment in progress for this session (reloading
// shows the same key, so a key already scanned stays the one to confirm); the status of an
// active factor; or a new enrollment. A cross-site navigation never starts one, so no other
// site can make a GET here write anything.
func (h *Handler) mfaShow(c echo.Context) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	s, _ := currentSession(c)
	next, err := h.nextValue(c)
	if err != nil {
		return err
	}
	e := views.Enrollment{Active: u.HasTOTP, Username: u.Username, Codes: h.takeRevealedCodes(c, s.ID, stepMFA),
		Passkeys: u.Passkeys, Next: next}
	pending, err := h.db.PendingOf(ctx, u.ID, s.ID, h.now())
	switch {
	case err == nil:
		if err := h.fillEnrollment(&e, u, pending.SecretEnc); err != nil {
			return err
		}
	case !errors.Is(err, db.ErrNotFound):
		return err
	case u.HasTOTP:
		_, left, err := h.db.AccountCounts(ctx, u.ID)
		if err != nil {
			return err
		}
		e.RecoveryLeft = left
	case u.HasMFA():
		// Passkeys only: an app beside them is a change of factor, so it waits for the
		// password instead of starting on a visit.
		e.AddApp = true
	case c.Request().Header.Get(echo.HeaderSecFetchSite) == "cross-site":
		e.CrossSite = true
	default:
		enc, err := h.startEnrollment(ctx, u, s)
		if err != nil {
			return err
		}
		if err := h.fillEnrollment(&e, u, enc); err != nil {
			return err
		}
	}
	return render(c, http.StatusOK, views.MFAPage(h.pageFor(c, "Two-step verification"), e))
}

// startEnrollment makes a new secret for exactly this user and session.
func (h *Handler) startEnrollment(ctx context.Context, u db.User, s db.Session) ([]byte, error) {
	enc, err := h.keys.Seal([]byte(auth.NewTOTPSecret()), totpAAD(u.ID))
	if err != nil {
		return nil, err
	}
	now := h.now()
	err = h.db.StartEnrollment(ctx, db.Pending{UserID: u.ID, SessionID: s.ID, SecretEnc: enc,
		CreatedAt: now, ExpiresAt: now.Add(enrollmentTTL)})
	return enc, err
}

func (h *Handler) fillEnrollment(e *views.Enrollment, u db.User, enc []byte) error {
	secret, err := h.keys.Open(enc, totpAAD(u.ID))
	if err != nil {
		return err
	}
	png, err := auth.QRPNG(auth.TOTPURI(u.Username, string(secret)))
	if err != nil {
		return err
	}
	e.Secret = string(secret)
	e.SecretGrouped = auth.FormatSecret(string(secret))
	e.QRDataURI = "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
	e.Replacing = u.HasTOTP
	return nil
}

// mfaConfirm handles POST /account/mfa: it activates the pending secret of this user and
// session after a correct code.
func (h *Handler) mfaConfirm(c echo.Context) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	s, _ := currentSession(c)
	again := func(msg string, enc []byte) error { return h.renderEnrollmentAgain(c, u, msg, enc) }
	pending, err := h.db.PendingOf(ctx, u.ID, s.ID, h.now())
	if errors.Is(err, db.ErrNotFound) {
		return h.enrollmentGone(c, u, s)
	}
	if err != nil {
		return err
	}
	secret, err := h.keys.Open(pending.SecretEnc, totpAAD(u.ID))
	if err != nil {
		return err
	}
	step, ok := auth.CheckTOTP(string(secret), c.FormValue("code"), h.now())
	if !ok {
		h.audit(c, h.failure(c, "mfa.enrolled", u.Username, "wrong confirmation code"))
		return again("That code did not match. Check that the app shows the account "+u.Username+" and that your phone's clock is right, then try the current code.", pending.SecretEnc)
	}
	codes := auth.NewRecoveryCodes(recoveryCodeCount)
	hashes, err := h.hashCodes(ctx, codes)
	if err != nil {
		return err
	}
	ev := h.event(c, "mfa.enrolled", u.Username)
	if u.HasTOTP {
		ev.Detail = "authenticator replaced; other sessions ended"
	} else {
		ev.Detail = "other sessions ended"
	}
	err = h.db.ActivateFactor(ctx, u.ID, s.ID, pending.SecretEnc, step, hashes, ev)
	if errors.Is(err, db.ErrPendingChanged) {
		return again("The key changed in another tab. Add the key shown below, then enter its code.", pending.SecretEnc)
	}
	if err != nil {
		return err
	}
	if err := h.revealCodes(c, s.ID, codes, stepMFA); err != nil {
		return err
	}
	// The codes come first; the page that shows them links on to where the user was going.
	next, err := h.nextValue(c)
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, views.WithNext("/account/mfa", next))
}

// enrollmentGone answers a confirmation whose pending key expired or was replaced. For a
// user who has a factor (an app or passkeys), a new key is a change of factor: it takes the
// password again, so nothing posted here can start one. Anyone else gets a new key to add.
func (h *Handler) enrollmentGone(c echo.Context, u db.User, s db.Session) error {
	if u.HasTOTP {
		return h.renderMFAStatus(c, u, http.StatusConflict,
			"That change of authenticator expired or was replaced. To move to a new authenticator, give your password again.")
	}
	if u.HasMFA() {
		return h.renderMFAStatus(c, u, http.StatusConflict,
			"That setup expired or was replaced. To add an authenticator app, give your password again.")
	}
	enc, err := h.startEnrollment(c.Request().Context(), u, s)
	if err != nil {
		return err
	}
	return h.renderEnrollmentAgain(c, u, "That setup had expired or was replaced. Add the new key shown below to your app, then enter its code.", enc)
}

// renderEnrollmentAgain shows the enrollment of the key enc with a problem above its form.
func (h *Handler) renderEnrollmentAgain(c echo.Context, u db.User, problem string, enc []byte) error {
	next, err := h.nextValue(c)
	if err != nil {
		return err
	}
	e := views.Enrollment{Active: u.HasTOTP, Username: u.Username, Next: next}
	if err := h.fillEnrollment(&e, u, enc); err != nil {
		return err
	}
	e.Error = problem
	return render(c, http.StatusUnprocessableEntity, views.MFAPage(h.pageWithStatus(c, "Two-step verification",
		http.StatusUnprocessableEntity), e))
}

// hashCodes hashes a new set of recovery codes as one set, so a typed code is checked
// against all of them with one derivation.
func (h *Handler) hashCodes(ctx context.Context, codes []string) ([]string, error) {
	normal := make([]string, len(codes))
	for i, code := range codes {
		normal[i] = auth.NormalizeRecoveryCode(code)
	}
	return h.hasher.HashSet(ctx, normal)
}

// mfaRestart handles POST /account/mfa/restart: it replaces this session's pending key with
// a new one. For a user who has a factor, a new key is a change of factor (moving to a new
// app, or adding one beside passkeys), so it asks for the password like mfaReplace.
func (h *Handler) mfaRestart(c echo.Context) error {
	u, _ := currentUser(c)
	if u.HasTOTP {
		return h.mfaReplace(c)
	}
	s, _ := currentSession(c)
	if u.HasMFA() {
		if ok, err := h.factorPasswordConfirmed(c, u, "mfa.enrolled"); !ok {
			return err
		}
	}
	return h.newEnrollment(c, u, s)
}

// newEnrollment gives this session a new key to add, and shows it.
func (h *Handler) newEnrollment(c echo.Context, u db.User, s db.Session) error {
	if _, err := h.startEnrollment(c.Request().Context(), u, s); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/account/mfa")
}

// mfaRecoveryCodes handles POST /account/mfa/recovery-codes: it makes a new set of recovery
// codes after the password is given again: a new set is as good as the factor, and the old
// set dies in the same write. They are shown on the passkeys page when the user has no
// authenticator app or asked from there (field return=passkeys), else on this one.
func (h *Handler) mfaRecoveryCodes(c echo.Context) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	s, _ := currentSession(c)
	if !u.HasMFA() {
		return errNoRecoveryCodes
	}
	back := stepMFA
	if !u.HasTOTP || c.FormValue("return") == "passkeys" {
		back = passkeysPage
	}
	if back == passkeysPage {
		ok, err := h.confirmPassword(c, u, c.FormValue("password"), "mfa.recovery_codes")
		if err != nil {
			return err
		}
		if !ok {
			return h.renderPasskeys(c, u, http.StatusUnprocessableEntity, "That is not your password. Nothing was changed.")
		}
	} else if ok, err := h.factorPasswordConfirmed(c, u, "mfa.recovery_codes"); !ok {
		return err
	}
	codes := auth.NewRecoveryCodes(recoveryCodeCount)
	hashes, err := h.hashCodes(ctx, codes)
	if err != nil {
		return err
	}
	err = h.db.ReplaceRecoveryCodes(ctx, u.ID, hashes, h.event(c, "mfa.recovery_codes", u.Username))
	if errors.Is(err, db.ErrNotFound) {
		return errNoRecoveryCodes
	}
	if err != nil {
		return err
	}
	if err := h.revealCodes(c, s.ID, codes, back); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, back)
}

var errNoRecoveryCodes = &userError{Status: http.StatusConflict,
	Message: "Two-step verification is off, so there are no recovery codes to replace.",
	Hint:    "Turn it on first at Account › Two-step verification."}

// factorPasswordConfirmed asks for the password again before a change of factor (see
// confirmPassword). When it is not confirmed, the answer is already given or is the error
// returned, which is then the handler's to return.
func (h *Handler) factorPasswordConfirmed(c echo.Context, u db.User, kind string) (bool, error) {
	ok, err := h.confirmPassword(c, u, c.FormValue("password"), kind)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, h.renderMFAStatus(c, u, http.StatusUnprocessableEntity, "That is not your password. Nothing was changed.")
	}
	return true, nil
}

// renderMFAStatus shows the page of an active factor with a refusal above its forms: the
// app's status, or for a user with passkeys only, the offer to add an app.
func (h *Handler) renderMFAStatus(c echo.Context, u db.User, status int, problem string) error {
	e := views.Enrollment{Active: u.HasTOTP, AddApp: !u.HasTOTP, Username: u.Username, PasswordError: problem,
		Passkeys: u.Passkeys}
	if u.HasTOTP {
		_, left, err := h.db.AccountCounts(c.Request().Context(), u.ID)
		if err != nil {
			return err
		}
		e.RecoveryLeft = left
	}
	return render(c, status, views.MFAPage(h.pageWithStatus(c, "Two-step verification", status), e))
}

// mfaReplace handles POST /account/mfa/replace: it starts moving to a new authenticator;
// the old one keeps working until the new one is confirmed.
func (h *Handler) mfaReplace(c echo.Context) error {
	u, _ := currentUser(c)
	s, _ := currentSession(c)
	if !u.HasTOTP {
		return c.Redirect(http.StatusSeeOther, "/account/mfa")
	}
	if ok, err := h.factorPasswordConfirmed(c, u, "mfa.replace"); !ok {
		return err
	}
	return h.newEnrollment(c, u, s)
}

// mfaDisable handles POST /account/mfa/disable: it turns the authenticator app off after
// the password is given again, unless it is the last factor and a rule requires one.
func (h *Handler) mfaDisable(c echo.Context) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	s, _ := currentSession(c)
	if !u.HasTOTP {
		return c.Redirect(http.StatusSeeOther, "/account/mfa")
	}
	if rule, err := h.ruleFor(c, u); err != nil {
		return err
	} else if rule.Required() && u.Passkeys == 0 {
		return &userError{Status: http.StatusConflict,
			Message: "Two-step verification is required for your account (" + rule.Source + "), so it cannot be turned off.",
			Hint:    "You can move to a new authenticator instead."}
	}
	if ok, err := h.factorPasswordConfirmed(c, u, "mfa.disabled"); !ok {
		return err
	}
	ev := h.event(c, "mfa.disabled", u.Username)
	ev.Detail = "turned off by the user; other sessions ended"
	if err := h.db.DisableMFA(ctx, u.ID, s.ID, ev); err != nil {
		return err
	}
	if u.Passkeys > 0 {
		return c.Redirect(http.StatusSeeOther, "/account?msg=totp-removed")
	}
	return c.Redirect(http.StatusSeeOther, "/account?msg=mfa-disabled")
}

const revealCookie = "gatehouse_recovery"

// revealCodes hands freshly made recovery codes to the next view of page only, sealed in a
// short-lived cookie bound to this session: the plain codes are never stored server-side,
// and the page that shows them expires the cookie, so they are shown once.
func (h *Handler) revealCodes(c echo.Context, sessionID int64, codes []string, page string) error {
	sealed, err := h.keys.Seal([]byte(strings.Join(codes, " ")), revealAAD(sessionID))
	if err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{Name: revealCookie, Value: base64.RawURLEncoding.EncodeToString(sealed),
		Path: page, MaxAge: int((10 * time.Minute).Seconds()), HttpOnly: true,
		Secure: h.cfg.Secure(), SameSite: http.SameSiteStrictMode})
	return nil
}

func revealAAD(sessionID int64) []byte {
	return []byte("recovery-reveal:session:" + strconv.FormatInt(sessionID, 10))
}

// takeRevealedCodes reads the codes revealCodes handed to page, and expires them.
func (h *Handler) takeRevealedCodes(c echo.Context, sessionID int64, page string) []string {
	ck, err := c.Cookie(revealCookie)
	if err != nil {
		return nil
	}
	c.SetCookie(&http.Cookie{Name: revealCookie, Value: "", Path: page, MaxAge: -1, HttpOnly: true,
		Secure: h.cfg.Secure(), SameSite: http.SameSiteStrictMode})
	sealed, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return nil
	}
	plain, err := h.keys.Open(sealed, revealAAD(sessionID))
	if err != nil {
		return nil
	}
	return strings.Fields(string(plain))
}

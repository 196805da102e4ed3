package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/views"
)

// passkeysPage is the page of the user's passkeys, which, like the enrollment page, stays
// open while a rule or a reset requires a factor.
const passkeysPage = "/account/passkeys"

// maxCredentialBytes bounds a browser's answer to a ceremony. A real one is a few KiB at
// most (an attestation with a certificate chain); anything larger is refused unread.
const maxCredentialBytes = 64 << 10

// passkeyCookieBase is the cookie that binds a sign-in without a session to the browser
// that asked for it: a random value whose SHA-256 is stored with the ceremony.
const passkeyCookieBase = "gatehouse_passkey"

// relyingParty configures passkeys from the base URL, or leaves them off, saying so once,
// when it names an IP address.
func relyingParty(cfg Config, log *slog.Logger) *auth.RelyingParty {
	if cfg.BaseURL == nil {
		return nil
	}
	rp, err := auth.NewRelyingParty(cfg.BaseURL)
	if err != nil {
		log.Info("passkeys are off", "reason", err, "base_url", cfg.BaseURL.String())
		return nil
	}
	return rp
}

var (
	errPasskeysOff = &userError{Status: http.StatusConflict,
		Message: "Passkeys are not available on this portal: it is reached by an IP address, and browsers accept passkeys only for a host name.",
		Hint:    "Sign in with your password and code instead."}
	errPasskeyAgain = &userError{Status: http.StatusBadRequest,
		Message: "That passkey request expired or was already used.", Hint: "Try again."}
	errPasskeyMalformed = &userError{Status: http.StatusBadRequest,
		Message: "The browser's answer could not be read.", Hint: "Try again, or use another way to sign in."}
	errPasskeyTooLarge = &userError{Status: http.StatusRequestEntityTooLarge,
		Message: "The browser's answer is too large.", Hint: "Try again, or use another way to sign in."}
	errPasskeyRefused = &userError{Status: http.StatusUnauthorized,
		Message: "That passkey did not sign you in.", Hint: "Try again, or use another way to sign in."}
	errNoPasskey     = &userError{Status: http.StatusConflict, Message: "Your account has no passkey.", Hint: "Enter a code instead."}
	errPasskeyCloned = &userError{Status: http.StatusUnauthorized,
		Message: "That passkey was refused: its counter says a copy of it may be in use.",
		Hint:    "Sign in another way and tell an administrator."}
)

// refusalOf is the refusal err words, or errPasskeyMalformed.
func refusalOf(err error) *userError {
	var ue *userError
	if errors.As(err, &ue) {
		return ue
	}
	return errPasskeyMalformed
}

// withCause is e with why it was refused, for the log.
func withCause(e *userError, why string) error { return e.withCause(errors.New(why)) }

// passkeyRequest is what the script posts: the browser's answer to a ceremony and the
// fields of the page it came from.
type passkeyRequest struct {
	Credential json.RawMessage `json:"credential"`
	Name       string          `json:"passkey_name"`
	Password   string          `json:"password"`
	Next       string          `json:"next"`
}

// readPasskeyRequest decodes the JSON body the middleware read and checked; anything but
// JSON, or JSON of another shape, is refused.
func readPasskeyRequest(c echo.Context) (passkeyRequest, error) {
	var r passkeyRequest
	if !isJSONBody(c.Request()) {
		return r, &userError{Status: http.StatusUnsupportedMediaType, Message: "This address accepts only the passkey script's requests.",
			Hint: "Reload the page and try again."}
	}
	b, _ := c.Get(jsonBodyKey).([]byte)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, badRequest("The request could not be read.").(*userError).withCause(err)
	}
	return r, nil
}

// owner is u as the ceremonies see it: their user handle and their passkeys.
func (h *Handler) owner(ctx context.Context, u db.User, handle []byte) (auth.PasskeyOwner, []db.Passkey, error) {
	keys, err := h.db.PasskeysOf(ctx, u.ID)
	if err != nil {
		return auth.PasskeyOwner{}, nil, err
	}
	o := auth.PasskeyOwner{Handle: handle, Name: u.Username, DisplayName: u.Name()}
	for _, k := range keys {
		o.Credentials = append(o.Credentials, k.Credential)
	}
	return o, keys, nil
}

// startCeremony stores a ceremony begun for this browser and hands its options to the script.
func (h *Handler) startCeremony(c echo.Context, cer auth.Ceremony, purpose string, userID int64, b db.PasskeyBinding) error {
	now := h.now()
	err := h.db.StartPasskeyChallenge(c.Request().Context(), db.PasskeyChallenge{Key: cer.Key, Purpose: purpose,
		UserID: userID, Binding: b, State: cer.State, CreatedAt: now, ExpiresAt: now.Add(auth.PasskeyChallengeTTL)})
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, cer.Options)
}

// passkeysIndex handles GET /account/passkeys: the user's passkeys, with rename and remove,
// the form that adds one, and the recovery codes a first passkey just issued.
func (h *Handler) passkeysIndex(c echo.Context) error {
	u, _ := currentUser(c)
	s, _ := currentSession(c)
	return h.renderPasskeysWith(c, u, http.StatusOK, "", h.takeRevealedCodes(c, s.ID, passkeysPage))
}

// renderPasskeys shows the passkeys page with a problem above the list.
func (h *Handler) renderPasskeys(c echo.Context, u db.User, status int, problem string) error {
	return h.renderPasskeysWith(c, u, status, problem, nil)
}

func (h *Handler) renderPasskeysWith(c echo.Context, u db.User, status int, problem string, codes []string) error {
	ctx := c.Request().Context()
	keys, err := h.db.PasskeysOf(ctx, u.ID)
	if err != nil {
		return err
	}
	_, left, err := h.db.AccountCounts(ctx, u.ID)
	if err != nil {
		return err
	}
	step, err := h.pendingStep(c)
	if err != nil {
		return err
	}
	next, err := h.nextValue(c)
	if err != nil {
		return err
	}
	v := views.Passkeys{Passkeys: keys, Unavailable: h.passkeys == nil, Codes: codes, RecoveryLeft: left,
		MustEnroll: step == stepMFA, Error: problem, Next: next}
	return render(c, status, views.PasskeysPage(h.pageWithStatus(c, "Passkeys", status), v))
}

// passkeyRegisterOptions handles POST /account/passkeys/options, the start of adding a
// passkey: it checks the name and, for a user who already has a factor, the password (a
// stolen session alone must not add a key of its own), and answers the options for
// navigator.credentials.create, the ceremony bound to this session.
func (h *Handler) passkeyRegisterOptions(c echo.Context) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	s, _ := currentSession(c)
	if h.passkeys == nil {
		return errPasskeysOff
	}
	r, err := readPasskeyRequest(c)
	if err != nil {
		return err
	}
	if _, err := checkedPasskeyName(r.Name); err != nil {
		return err
	}
	if u.HasMFA() {
		ok, err := h.confirmPassword(c, u, r.Password, "passkey.added")
		if err != nil {
			return err
		}
		if !ok {
			return &userError{Status: http.StatusUnprocessableEntity, Message: "That is not your password. Nothing was changed.",
				Hint: "Adding a passkey to an account that has two-step verification takes the password again."}
		}
	}
	handle, err := h.db.PasskeyHandle(ctx, u.ID)
	if err != nil {
		return err
	}
	return h.startSessionCeremony(c, u, s, handle, db.PasskeyRegister, h.passkeys.BeginRegistration)
}

// checkedPasskeyName is the name the passkey form's rule makes of name, or its refusal.
func checkedPasskeyName(name string) (string, error) {
	f := views.PasskeyNameForm{Name: name}
	if !f.Validate() {
		return "", &userError{Status: http.StatusUnprocessableEntity, Message: f.Error, Hint: "Change the name and try again."}
	}
	return f.Name, nil
}

// startSessionCeremony begins, with begin, a ceremony over u's passkeys under handle, bound
// to the session s.
func (h *Handler) startSessionCeremony(c echo.Context, u db.User, s db.Session, handle []byte, purpose string,
	begin func(auth.PasskeyOwner) (auth.Ceremony, error)) error {
	o, _, err := h.owner(c.Request().Context(), u, handle)
	if err != nil {
		return err
	}
	cer, err := begin(o)
	if err != nil {
		return err
	}
	return h.startCeremony(c, cer, purpose, u.ID, db.PasskeyBinding{SessionID: s.ID})
}

// passkeyRegister handles POST /account/passkeys, the end of adding a passkey: the
// browser's answer must answer this session's ceremony, once, within its time, for a
// credential no account holds yet. The first factor of any kind issues the recovery codes,
// which the passkeys page then shows once.
func (h *Handler) passkeyRegister(c echo.Context) error {
	u, _ := currentUser(c)
	s, _ := currentSession(c)
	if h.passkeys == nil {
		return errPasskeysOff
	}
	r, reg, err := h.readRegistration(c, u)
	if err != nil {
		return err
	}
	cred, err := h.finishRegistration(c, u, s, reg)
	if err != nil {
		return err
	}
	if err := h.storePasskey(c, u, s, r.Name, cred); err != nil {
		return err
	}
	// The codes come first; the page that shows them links on to where the user was going.
	next, err := h.nextOf(c, r.Next)
	if err != nil {
		return err
	}
	q := url.Values{"msg": {"passkey-added"}}
	if next != "" {
		q.Set("next", next)
	}
	return c.JSON(http.StatusOK, map[string]string{"redirect": passkeysPage + "?" + q.Encode()})
}

// registrationRefused audits a refused registration of u's and answers the script with e.
func (h *Handler) registrationRefused(c echo.Context, u db.User, e *userError, why string) error {
	h.audit(c, h.failure(c, "passkey.added", u.Username, why))
	return withCause(e, "passkey registration refused: "+why)
}

// readRegistration reads the browser's answer to a registration and the passkey's name,
// refusing one too large or malformed; the request it returns carries the checked name.
func (h *Handler) readRegistration(c echo.Context, u db.User) (passkeyRequest, *auth.Registration, error) {
	r, err := readPasskeyRequest(c)
	if err != nil {
		return r, nil, err
	}
	if len(r.Credential) > maxCredentialBytes {
		return r, nil, h.registrationRefused(c, u, errPasskeyTooLarge, fmt.Sprintf("answer of %d bytes", len(r.Credential)))
	}
	if r.Name, err = checkedPasskeyName(r.Name); err != nil {
		return r, nil, err
	}
	reg, err := auth.ParseRegistration(r.Credential)
	if err != nil {
		return r, nil, h.registrationRefused(c, u, errPasskeyMalformed, err.Error())
	}
	return r, reg, nil
}

// finishRegistration checks that reg answers this session's ceremony for u, once and in
// time, and returns the new credential.
func (h *Handler) finishRegistration(c echo.Context, u db.User, s db.Session, reg *auth.Registration) (auth.PasskeyCredential, error) {
	ctx := c.Request().Context()
	ch, err := h.db.TakePasskeyChallenge(ctx, reg.ChallengeKey(), db.PasskeyRegister, db.PasskeyBinding{SessionID: s.ID}, h.now())
	if err := ceremonyGone(err); err != nil {
		return auth.PasskeyCredential{}, h.registrationRefused(c, u, errPasskeyAgain, err.Error())
	}
	if ch.UserID != u.ID {
		return auth.PasskeyCredential{}, h.registrationRefused(c, u, errPasskeyAgain, "the ceremony was begun for another account")
	}
	handle, err := h.db.PasskeyHandleOf(ctx, u.ID)
	if err != nil {
		return auth.PasskeyCredential{}, err
	}
	o, _, err := h.owner(ctx, u, handle)
	if err != nil {
		return auth.PasskeyCredential{}, err
	}
	cred, err := h.passkeys.FinishRegistration(o, ch.State, reg)
	if err != nil {
		return auth.PasskeyCredential{}, h.registrationRefused(c, u, &userError{Status: http.StatusBadRequest,
			Message: "The passkey could not be added.", Hint: "Try again, or use another authenticator."}, err.Error())
	}
	return cred, nil
}

// storePasskey adds the credential under name, with recovery codes that are kept, and
// shown once on the passkeys page, only when it is the user's first factor.
func (h *Handler) storePasskey(c echo.Context, u db.User, s db.Session, name string, cred auth.PasskeyCredential) error {
	ctx := c.Request().Context()
	codes := auth.NewRecoveryCodes(recoveryCodeCount)
	hashes, err := h.hashCodes(ctx, codes)
	if err != nil {
		return err
	}
	ev := h.event(c, "passkey.added", u.Username)
	ev.Detail = "passkey " + name
	_, first, err := h.db.AddPasskey(ctx, db.NewPasskey{UserID: u.ID, Name: name, Credential: cred}, hashes, s.ID, ev)
	if errors.Is(err, db.ErrDuplicate) {
		return h.registrationRefused(c, u, &userError{Status: http.StatusConflict, Message: "This passkey is already registered.",
			Hint: "Use another authenticator, or keep the one you have."}, "credential already registered")
	}
	if err != nil || !first {
		return err
	}
	return h.revealCodes(c, s.ID, codes, passkeysPage)
}

// ceremonyGone words what TakePasskeyChallenge refused for the audit log, or is nil.
func ceremonyGone(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, db.ErrChallengeGone):
		return errors.New("no ceremony of this browser waits for this answer: replayed, begun elsewhere or never begun")
	case errors.Is(err, db.ErrChallengeExpired):
		return errors.New("the ceremony expired")
	}
	return err
}

// passkeyByPath loads the user's passkey named by :id: anyone else's, or none, is a 404.
func (h *Handler) passkeyByPath(c echo.Context, u db.User) (db.Passkey, error) {
	id, err := pathID(c)
	if err != nil {
		return db.Passkey{}, err
	}
	keys, err := h.db.PasskeysOf(c.Request().Context(), u.ID)
	if err != nil {
		return db.Passkey{}, err
	}
	for _, k := range keys {
		if k.ID == id {
			return k, nil
		}
	}
	return db.Passkey{}, errNotFound
}

// passkeyRename handles POST /account/passkeys/:id/rename (field passkey_name).
func (h *Handler) passkeyRename(c echo.Context) error {
	u, _ := currentUser(c)
	k, err := h.passkeyByPath(c, u)
	if err != nil {
		return err
	}
	f := views.PasskeyNameForm{Name: c.FormValue("passkey_name")}
	if !f.Validate() {
		return h.renderPasskeys(c, u, http.StatusUnprocessableEntity, f.Error)
	}
	if err := h.db.RenamePasskey(c.Request().Context(), u.ID, k.ID, f.Name, h.event(c, "passkey.renamed", u.Username)); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, passkeysPage+"?msg=passkey-renamed")
}

// passkeyRemove handles POST /account/passkeys/:id/remove: it removes the passkey once the
// password is given again, like turning the authenticator app off, and signs out the
// user's other sessions. The last factor of any kind cannot go while a rule requires one;
// when it goes, the recovery codes go with it.
func (h *Handler) passkeyRemove(c echo.Context) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	s, _ := currentSession(c)
	k, err := h.passkeyByPath(c, u)
	if err != nil {
		return err
	}
	rule, err := h.ruleFor(c, u)
	if err != nil {
		return err
	}
	ok, err := h.confirmPassword(c, u, c.FormValue("password"), "passkey.removed")
	if err != nil {
		return err
	}
	if !ok {
		return h.renderPasskeys(c, u, http.StatusUnprocessableEntity, "That is not your password. Nothing was changed.")
	}
	ev := h.event(c, "passkey.removed", u.Username)
	ev.Detail = "other sessions ended"
	last, err := h.db.RemovePasskey(ctx, u.ID, k.ID, rule.Required(), s.ID, ev)
	if errors.Is(err, db.ErrLastFactor) {
		noteCause(c, err)
		return h.renderPasskeys(c, u, http.StatusConflict, "Two-step verification is required for your account ("+rule.Source+
			"), so your last passkey cannot be removed. Add another passkey or an authenticator app first.")
	}
	if err != nil {
		return err
	}
	if last {
		return c.Redirect(http.StatusSeeOther, "/account?msg=mfa-disabled")
	}
	return c.Redirect(http.StatusSeeOther, passkeysPage+"?msg=passkey-removed")
}

// passkeySecondStepOptions handles POST /login/mfa/passkey/options: for the user of this
// partial session, the options for navigator.credentials.get naming their passkeys, the
// ceremony bound to the session.
func (h *Handler) passkeySecondStepOptions(c echo.Context) error {
	s, u, err := h.passkeyStepSession(c)
	if err != nil {
		return err
	}
	if _, err := readPasskeyRequest(c); err != nil {
		return err
	}
	handle, err := h.db.PasskeyHandleOf(c.Request().Context(), u.ID)
	if errors.Is(err, db.ErrNotFound) {
		return errNoPasskey
	}
	if err != nil {
		return err
	}
	return h.startSessionCeremony(c, u, s, handle, db.PasskeySecondStep, func(o auth.PasskeyOwner) (auth.Ceremony, error) {
		if len(o.Credentials) == 0 {
			return auth.Ceremony{}, errNoPasskey
		}
		return h.passkeys.BeginSecondStep(o)
	})
}

// passkeyStepSession is the partial session a passkey's second step completes, and its
// user; the script is told when there is none, or passkeys are off.
func (h *Handler) passkeyStepSession(c echo.Context) (db.Session, db.User, error) {
	s, ok := currentSession(c)
	if !ok || s.Stage != db.StageMFA {
		return s, db.User{}, errSessionGone
	}
	u, _ := currentUser(c)
	if h.passkeys == nil {
		return s, u, errPasskeysOff
	}
	return s, u, nil
}

// passkeySecondStep handles POST /login/mfa/passkey: an answer signed by one of the user's
// passkeys completes the partial session exactly like a TOTP code, under a new token. It
// counts against the account's throttle first, like a code, and a failure stays counted.
func (h *Handler) passkeySecondStep(c echo.Context) error {
	ctx := c.Request().Context()
	s, u, err := h.passkeyStepSession(c)
	if err != nil {
		return err
	}
	now := h.now()
	if err := h.addressThrottled(c, u.Username, now); err != nil {
		return err
	}
	attempt, err := h.beginPasskeyAttempt(c, u, now, "second step throttled", "Too many failed attempts for this account.")
	if err != nil {
		return err
	}
	r, err := readPasskeyRequest(c)
	if err != nil {
		return h.passkeyFailed(c, u.Username, "unreadable request: "+err.Error(), refusalOf(err))
	}
	a, err := h.parseAssertion(c, u.Username, r)
	if err != nil {
		return err
	}
	ch, err := h.db.TakePasskeyChallenge(ctx, a.ChallengeKey(), db.PasskeySecondStep, db.PasskeyBinding{SessionID: s.ID}, now)
	if err := ceremonyGone(err); err != nil {
		return h.passkeyFailed(c, u.Username, err.Error(), errPasskeyAgain)
	}
	if ch.UserID != u.ID {
		return h.passkeyFailed(c, u.Username, "the ceremony was begun for another account", errPasskeyAgain)
	}
	name, err := h.verifyAssertion(c, u, ch.State, a)
	if err != nil {
		return err
	}
	if err := h.completeSecondStep(c, s, u, attempt, name); err != nil {
		return err
	}
	return h.signedIn(c, u, r.Next)
}

// completeSecondStep promotes the partial session s to a full one under a new token, once
// a passkey of u's answered: the account's failures are forgotten, as after a code.
func (h *Handler) completeSecondStep(c echo.Context, s db.Session, u db.User, attempt db.Attempt, passkey string) error {
	ctx := c.Request().Context()
	if _, err := h.db.ClearThrottle(ctx, attempt.Username, db.Event{}); err != nil {
		return err
	}
	h.metrics.signin("passkey", "success")
	ev := h.event(c, "signin.passkey", u.Username)
	ev.Detail = "second step; passkey " + passkey
	token := auth.NewToken()
	_, err := h.db.PromoteSession(ctx, s.ID, h.newSession(c, u, token, db.StageFull), ev)
	if errors.Is(err, db.ErrNotFound) {
		h.clearSessionCookies(c)
		return errSessionGone
	}
	if err != nil {
		return err
	}
	h.setSessionCookie(c, token)
	return nil
}

// addressThrottled refuses a passkey step from an address that failed too often, naming
// subject in the audit log when the account is known.
func (h *Handler) addressThrottled(c echo.Context, subject string, now time.Time) error {
	if wait := h.addrs.wait(c.RealIP(), now); wait > 0 {
		h.throttled(c, "passkey")
		h.audit(c, h.failure(c, "signin.throttled", subject, "client address throttled"))
		return tooMany(c, wait, "Too many failed sign-in attempts from your network.")
	}
	return nil
}

// beginPasskeyAttempt counts a passkey answer against u's account like a password or a
// code, refusing it, with why in the audit log and what for the user, while the account
// waits out earlier failures.
func (h *Handler) beginPasskeyAttempt(c echo.Context, u db.User, now time.Time, why, what string) (db.Attempt, error) {
	attempt, err := h.db.BeginSignInAttempt(c.Request().Context(), auth.UsernameKey(u.Username), now, signInBackoff)
	if err != nil {
		return db.Attempt{}, err
	}
	if attempt.Wait > 0 {
		h.throttled(c, "passkey")
		h.audit(c, h.failure(c, "signin.throttled", u.Username, why))
		return db.Attempt{}, tooMany(c, attempt.Wait, what)
	}
	return attempt, nil
}

// signedIn tells the script where a complete sign-in goes: a pending step first, as after
// a password, then next, read as a form's would be.
func (h *Handler) signedIn(c echo.Context, u db.User, next string) error {
	next, err := h.nextOf(c, next)
	if err != nil {
		return err
	}
	target, err := h.signInTarget(c, u, next)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"redirect": target})
}

// passkeySignInOptions handles POST /login/passkey/options, the start of signing in with a
// passkey alone: the options for navigator.credentials.get, for any discoverable passkey
// that verifies its user. The ceremony is bound to this browser by a short-lived
// SameSite=Strict cookie, whose SHA-256 is stored with it.
func (h *Handler) passkeySignInOptions(c echo.Context) error {
	if h.passkeys == nil {
		return errPasskeysOff
	}
	if err := h.addressThrottled(c, "", h.now()); err != nil {
		return err
	}
	if _, err := readPasskeyRequest(c); err != nil {
		return err
	}
	cer, err := h.passkeys.BeginSignIn()
	if err != nil {
		return err
	}
	token := auth.NewToken()
	c.SetCookie(&http.Cookie{Name: h.hostCookieName(passkeyCookieBase), Value: token, Path: "/",
		MaxAge: int(auth.PasskeyChallengeTTL.Seconds()), HttpOnly: true, Secure: h.cfg.Secure(), SameSite: http.SameSiteStrictMode})
	sum := sha256.Sum256([]byte(token))
	return h.startCeremony(c, cer, db.PasskeySignIn, 0, db.PasskeyBinding{Browser: sum[:]})
}

// passkeyBrowser is the binding of this browser's sign-in ceremony: the SHA-256 of its
// cookie, which is expired now, as the ceremony answers once. Several values under the
// name mean one was planted: none is trusted.
func (h *Handler) passkeyBrowser(c echo.Context) db.PasskeyBinding {
	name := h.hostCookieName(passkeyCookieBase)
	value, n := "", 0
	for _, ck := range c.Request().Cookies() {
		if ck.Name == name {
			value, n = ck.Value, n+1
		}
	}
	if n > 0 {
		c.SetCookie(&http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: h.cfg.Secure(),
			SameSite: http.SameSiteStrictMode})
	}
	if n != 1 || !auth.ValidTokenShape(value) {
		return db.PasskeyBinding{}
	}
	sum := sha256.Sum256([]byte(value))
	return db.PasskeyBinding{Browser: sum[:]}
}

// passkeySignIn handles POST /login/passkey: a discoverable passkey that verified its
// user signs in without the password, into a full session under a new token, and then goes
// where a password sign-in would. Once the credential names the account, the attempt
// counts against the account's throttle like a password; every failure counts against the
// address.
func (h *Handler) passkeySignIn(c echo.Context) error {
	ctx := c.Request().Context()
	if h.passkeys == nil {
		return errPasskeysOff
	}
	now := h.now()
	if err := h.addressThrottled(c, "", now); err != nil {
		return err
	}
	browser := h.passkeyBrowser(c)
	r, err := readPasskeyRequest(c)
	if err != nil {
		return h.passkeyFailed(c, "", "unreadable request: "+err.Error(), refusalOf(err))
	}
	a, err := h.parseAssertion(c, "", r)
	if err != nil {
		return err
	}
	ch, err := h.db.TakePasskeyChallenge(ctx, a.ChallengeKey(), db.PasskeySignIn, browser, now)
	if err := ceremonyGone(err); err != nil {
		return h.passkeyFailed(c, "", err.Error(), errPasskeyAgain)
	}
	u, attempt, err := h.passkeyAccount(c, a, now)
	if err != nil {
		return err
	}
	name, err := h.verifyAssertion(c, u, ch.State, a)
	if err != nil {
		return err
	}
	if _, err := h.db.ClearThrottle(ctx, attempt.Username, db.Event{}); err != nil {
		return err
	}
	h.metrics.signin("passkey", "success")
	ev := h.event(c, "signin.passkey", u.Username)
	ev.ActorID, ev.Actor, ev.Detail = u.ID, u.Username, "without a password; passkey "+name
	if err := h.startSession(c, u, db.StageFull, ev); err != nil {
		return err
	}
	return h.signedIn(c, u, r.Next)
}

// passkeyAccount is the account whose passkey made the answer a, once the attempt counts
// against it; an unknown credential, a throttled account or a disabled one is refused.
func (h *Handler) passkeyAccount(c echo.Context, a *auth.Assertion, now time.Time) (db.User, db.Attempt, error) {
	ctx := c.Request().Context()
	k, err := h.db.PasskeyByCredentialID(ctx, a.CredentialID())
	if errors.Is(err, db.ErrNotFound) {
		return db.User{}, db.Attempt{}, h.passkeyFailed(c, "", "unknown credential", errPasskeyRefused)
	}
	if err != nil {
		return db.User{}, db.Attempt{}, err
	}
	u, err := h.db.UserByID(ctx, k.UserID)
	if err != nil {
		return db.User{}, db.Attempt{}, err
	}
	attempt, err := h.beginPasskeyAttempt(c, u, now, "account throttled", "Too many failed sign-in attempts for this account.")
	if err != nil {
		return db.User{}, db.Attempt{}, err
	}
	if u.Disabled {
		return db.User{}, db.Attempt{}, h.passkeyFailed(c, u.Username, "account disabled", errPasskeyRefused)
	}
	return u, attempt, nil
}

// parseAssertion reads the browser's answer to a sign-in, refusing one too large or
// malformed as a failed sign-in of subject.
func (h *Handler) parseAssertion(c echo.Context, subject string, r passkeyRequest) (*auth.Assertion, error) {
	if len(r.Credential) > maxCredentialBytes {
		return nil, h.passkeyFailed(c, subject, fmt.Sprintf("answer of %d bytes", len(r.Credential)), errPasskeyTooLarge)
	}
	a, err := auth.ParseAssertion(r.Credential)
	if err != nil {
		return nil, h.passkeyFailed(c, subject, err.Error(), errPasskeyMalformed)
	}
	return a, nil
}

// verifyAssertion checks an answer against the ceremony's state and u's passkeys, and
// records the use: the credential must be u's and its counter must move on. A counter
// that does not is refused and audited as a clone warning. It returns the passkey's name.
func (h *Handler) verifyAssertion(c echo.Context, u db.User, state []byte, a *auth.Assertion) (string, error) {
	ctx := c.Request().Context()
	handle, err := h.db.PasskeyHandleOf(ctx, u.ID)
	if errors.Is(err, db.ErrNotFound) {
		return "", h.passkeyFailed(c, u.Username, "the account has no passkey", errPasskeyRefused)
	}
	if err != nil {
		return "", err
	}
	o, keys, err := h.owner(ctx, u, handle)
	if err != nil {
		return "", err
	}
	use, err := h.passkeys.FinishSignIn(o, state, a)
	if err == nil {
		err = h.db.RecordPasskeyUse(ctx, u.ID, use, h.now())
	}
	name := ""
	for _, k := range keys {
		if bytes.Equal(k.Credential.ID, a.CredentialID()) {
			name = k.Name
		}
	}
	switch {
	case errors.Is(err, auth.ErrPasskeyCloned), errors.Is(err, db.ErrSignCountStale):
		h.addrs.fail(c.RealIP(), h.now())
		h.metrics.signin("passkey", "failure")
		h.counts.add(countPasskeyClone)
		h.audit(c, h.failure(c, "passkey.clone_warning", u.Username,
			"sign counter "+strconv.FormatUint(uint64(use.SignCount), 10)+" did not move past the stored one; passkey "+name))
		return "", withCause(errPasskeyCloned, "passkey sign-in refused: "+err.Error())
	case errors.Is(err, auth.ErrPasskeyRefused), errors.Is(err, db.ErrNotFound):
		return "", h.passkeyFailed(c, u.Username, err.Error(), errPasskeyRefused)
	case err != nil:
		return "", err
	}
	return name, nil
}

// passkeyFailed counts a refused passkey sign-in against the address (and, through the
// attempt already begun, the account), audits why and answers the script with e.
func (h *Handler) passkeyFailed(c echo.Context, subject, why string, e *userError) error {
	h.addrs.fail(c.RealIP(), h.now())
	h.metrics.signin("passkey", "failure")
	h.audit(c, h.failure(c, "signin.passkey", subject, why))
	return withCause(e, "passkey sign-in refused: "+why)
}

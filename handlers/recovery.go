package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/views"
)

// resetTTL is how long a mailed password-reset link works.
const resetTTL = 30 * time.Minute

// Password-reset requests are limited per name (existing or not, so the limit reveals
// nothing) and per client address, in the database, so every process on it counts
// together: a few mails an hour to one account, and one address cannot spray many.
var (
	resetPerAccount = db.Limit{Hits: 3, Window: time.Hour}
	resetPerClient  = db.Limit{Hits: 10, Window: time.Hour}
)

const (
	resetPath   = "/login/reset"
	resetCookie = "gatehouse_reset"
)

// forgotForm handles GET /login/forgot: the page that mails a password-reset link, or that
// says mail is off.
func (h *Handler) forgotForm(c echo.Context) error {
	f := views.ForgotForm{MailOn: h.mailOn(), Sent: c.QueryParam("sent") == "1"}
	return render(c, http.StatusOK, views.ForgotPage(h.pageFor(c, "Forgot your password?"), f))
}

// forgotSubmit handles POST /login/forgot (field username). Its answer is the same 303 for
// every name, whether the account exists, has an address, or neither, and so is the work
// behind it: the link and its mail are made for every name, and one transaction counts the
// request and writes the audit row in every case, adding the link only for an account
// with an address. The mail goes out from the outbox, off the response's path, and no
// password is hashed.
func (h *Handler) forgotSubmit(c echo.Context) error {
	if !h.mailOn() {
		return c.Redirect(http.StatusSeeOther, "/login/forgot")
	}
	username := strings.TrimSpace(c.FormValue("username"))
	if username == "" || len([]rune(username)) > auth.MaxUsernameLen {
		f := views.ForgotForm{MailOn: true, Username: username, Error: "Enter your username."}
		return render(c, http.StatusUnprocessableEntity, views.ForgotPage(
			h.pageWithStatus(c, "Forgot your password?", http.StatusUnprocessableEntity), f))
	}
	token := auth.NewToken()
	content, err := views.ResetMail(auth.NormalizeUsername(username), h.linkURL(resetPath, token), resetTTL)
	if err != nil {
		return err
	}
	ev := h.event(c, "password.reset_requested", username)
	_, err = h.db.RequestPasswordReset(c.Request().Context(), db.ResetRequest{
		UsernameKey: auth.UsernameKey(username), Client: c.RealIP(), TokenHash: auth.HashToken(token), TTL: resetTTL,
		Mail:       db.OutboxMail{Subject: content.Subject, Text: content.Text, HTML: content.HTML},
		PerAccount: resetPerAccount, PerClient: resetPerClient, Event: ev})
	var limited *db.RateLimited
	if errors.As(err, &limited) {
		h.throttled(c, "reset")
		h.audit(c, h.failure(c, "password.reset_requested", username, "throttled"))
		return tooMany(c, limited.Wait, "Too many password-reset requests for this account or from your network.")
	}
	if err != nil {
		return err
	}
	h.mail.Kick()
	return c.Redirect(http.StatusSeeOther, "/login/forgot?sent=1")
}

// resetForm handles GET /login/reset: the mailed link's page, which asks for the new
// password. The link's token is moved off the address first (takeLinkToken).
func (h *Handler) resetForm(c echo.Context) error {
	token, done, err := h.takeLinkToken(c, resetCookie, resetPath, resetTTL)
	if done {
		return err
	}
	u, err := h.resetUser(c.Request().Context(), token)
	if errors.Is(err, db.ErrNotFound) {
		return h.renderResetGone(c)
	}
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.ResetPage(h.pageFor(c, "Choose a new password"), views.ResetForm{Username: u.Username}))
}

func (h *Handler) resetUser(ctx context.Context, token string) (db.User, error) {
	if token == "" {
		return db.User{}, db.ErrNotFound
	}
	return h.db.ResetTokenUser(ctx, auth.HashToken(token), h.now())
}

// renderResetGone answers a link that does not work (used, expired, replaced, unknown): 410,
// with a way to ask for a new one.
func (h *Handler) renderResetGone(c echo.Context) error {
	h.endLinkToken(c, resetCookie, resetPath)
	return render(c, http.StatusGone, views.ResetPage(h.pageWithStatus(c, "Choose a new password", http.StatusGone), views.ResetForm{}))
}

// resetSubmit handles POST /login/reset (field new_password): it spends the link's token
// once. The password must pass the policy; then it is set, every session of the user ends,
// and the user signs in afresh, second step included.
func (h *Handler) resetSubmit(c echo.Context) error {
	ctx := c.Request().Context()
	token := h.linkToken(c, resetCookie)
	u, err := h.resetUser(ctx, token)
	if errors.Is(err, db.ErrNotFound) {
		h.audit(c, h.failure(c, "password.reset", "", "link unknown, used or expired"))
		return h.renderResetGone(c)
	}
	if err != nil {
		return err
	}
	password := c.FormValue("new_password")
	f := views.ResetForm{Username: u.Username, Errors: map[string]string{}}
	if err := auth.CheckPassword(password, u.Username); err != nil {
		var pe *auth.PolicyError
		if !errors.As(err, &pe) {
			return err
		}
		f.Errors["new_password"] = pe.Reason
		return render(c, http.StatusUnprocessableEntity, views.ResetPage(
			h.pageWithStatus(c, "Choose a new password", http.StatusUnprocessableEntity), f))
	}
	hash, err := h.hasher.Hash(ctx, password)
	if err != nil {
		return err
	}
	_, err = h.db.ResetPassword(ctx, auth.HashToken(token), hash, h.event(c, "password.reset", u.Username))
	if errors.Is(err, db.ErrNotFound) { // spent by another request meanwhile
		return h.renderResetGone(c)
	}
	if err != nil {
		return err
	}
	h.endLinkToken(c, resetCookie, resetPath)
	if me, ok := currentUser(c); ok && me.ID == u.ID {
		h.clearSessionCookies(c) // this browser's session ended with the others
	}
	return c.Redirect(http.StatusSeeOther, "/login?msg=password-reset")
}

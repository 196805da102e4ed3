package handlers

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/views"
)

// confirmTTL is how long the link that confirms a new address works: a day, since it may
// wait in a mailbox the user checks once a day, and it changes where reset links go only
// after the user opened it.
const confirmTTL = 24 * time.Hour

// confirmLimit bounds the confirmation mails one user may have sent, so nobody can use the
// portal to flood a stranger's mailbox.
var confirmLimit = db.Limit{Hits: 5, Window: time.Hour}

const (
	confirmPath   = "/account/email/confirm"
	confirmCookie = "gatehouse_confirm"
)

// accountEmailShow handles GET /account/email: the user's own address, a change waiting
// for its link, and the form to ask for one.
func (h *Handler) accountEmailShow(c echo.Context) error {
	return h.renderAccountEmail(c, http.StatusOK, views.EmailForm{})
}

func (h *Handler) renderAccountEmail(c echo.Context, status int, f views.EmailForm) error {
	u, _ := currentUser(c)
	f.MailOn = h.mailOn()
	p, err := h.db.PendingEmailOf(c.Request().Context(), u.ID, h.now())
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return err
	}
	f.Pending = p
	return render(c, status, views.AccountEmailPage(h.pageWithStatus(c, "Your address", status), f))
}

// accountEmailUpdate handles POST /account/email (field email): it mails a confirmation
// link to the new address; the address changes only once that link is opened, so nobody
// can point an account's reset links at a mailbox they do not hold.
func (h *Handler) accountEmailUpdate(c echo.Context) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	f := views.EmailForm{Email: c.FormValue("email")}
	again := func(status int, problem string) error {
		f.Error = problem
		return h.renderAccountEmail(c, status, f)
	}
	if !h.mailOn() {
		return again(http.StatusConflict, "Mail is off on this portal, so a new address cannot be confirmed.")
	}
	addr, err := auth.CheckEmail(f.Email)
	var pe *auth.PolicyError
	if errors.As(err, &pe) {
		return again(http.StatusUnprocessableEntity, pe.Reason)
	}
	if auth.EmailKey(addr) == auth.EmailKey(u.Email) {
		return again(http.StatusUnprocessableEntity, "That is your address already.")
	}
	token := auth.NewToken()
	content, err := views.ConfirmMail(u.Username, addr, h.linkURL(confirmPath, token), confirmTTL)
	if err != nil {
		return err
	}
	err = h.db.RequestEmailChange(ctx, db.EmailChange{UserID: u.ID, Email: addr, TokenHash: auth.HashToken(token),
		TTL: confirmTTL, Mail: db.OutboxMail{Subject: content.Subject, Text: content.Text, HTML: content.HTML},
		Limit: confirmLimit, Event: h.event(c, "email.change_requested", u.Username)})
	var limited *db.RateLimited
	switch {
	case errors.Is(err, db.ErrEmailTaken):
		return again(http.StatusConflict, "That address belongs to another account.")
	case errors.As(err, &limited):
		return tooMany(c, limited.Wait, "Too many confirmation mails asked for.")
	case err != nil:
		return err
	}
	h.mail.Kick()
	return c.Redirect(http.StatusSeeOther, "/account/email?msg=email-sent")
}

// accountEmailRemove handles POST /account/email/remove: the user's address goes at once,
// and with it all mail to them.
func (h *Handler) accountEmailRemove(c echo.Context) error {
	u, _ := currentUser(c)
	if err := h.db.SetEmail(c.Request().Context(), u.ID, "", h.event(c, "email.removed", u.Username)); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/account/email?msg=email-removed")
}

// emailConfirmForm handles GET /account/email/confirm: the page a confirmation link opens,
// with the button that confirms. Opening it changes nothing (no GET changes state); the
// token is moved off the address first (takeLinkToken). It needs no session: the link is
// the proof.
func (h *Handler) emailConfirmForm(c echo.Context) error {
	token, done, err := h.takeLinkToken(c, confirmCookie, confirmPath, confirmTTL)
	if done {
		return err
	}
	return h.renderEmailConfirm(c, token, http.StatusOK, "")
}

func (h *Handler) renderEmailConfirm(c echo.Context, token string, status int, problem string) error {
	var f views.EmailConfirm
	if token != "" {
		u, addr, err := h.db.ConfirmTokenInfo(c.Request().Context(), auth.HashToken(token), h.now())
		if err != nil && !errors.Is(err, db.ErrNotFound) {
			return err
		}
		f.Username, f.Email = u.Username, addr
	}
	if f.Username == "" {
		h.endLinkToken(c, confirmCookie, confirmPath)
		status = http.StatusGone
	}
	f.Error = problem
	return render(c, status, views.EmailConfirmPage(h.pageWithStatus(c, "Confirm your address", status), f))
}

// emailConfirm handles POST /account/email/confirm: it spends the confirmation token once,
// makes its address the account's, and tells the old address.
func (h *Handler) emailConfirm(c echo.Context) error {
	token := h.linkToken(c, confirmCookie)
	if token == "" {
		return h.renderEmailConfirm(c, "", http.StatusGone, "")
	}
	notify := func(username, old, addr string) db.OutboxMail {
		content, err := views.EmailChangedMail(username, old, addr)
		if err != nil {
			return db.OutboxMail{Subject: "Your Gatehouse address was changed", Text: "Your address was changed to " + addr + "."}
		}
		return db.OutboxMail{Subject: content.Subject, Text: content.Text, HTML: content.HTML}
	}
	u, err := h.db.ConfirmEmail(c.Request().Context(), auth.HashToken(token), notify, h.event(c, "email.changed", ""))
	switch {
	case errors.Is(err, db.ErrNotFound):
		h.audit(c, h.failure(c, "email.changed", "", "link unknown, used or expired"))
		return h.renderEmailConfirm(c, "", http.StatusGone, "")
	case errors.Is(err, db.ErrEmailTaken):
		return h.renderEmailConfirm(c, token, http.StatusConflict, "That address now belongs to another account, so it cannot be yours.")
	case err != nil:
		return err
	}
	h.endLinkToken(c, confirmCookie, confirmPath)
	h.mail.Kick()
	if me, ok := currentUser(c); ok && me.ID == u.ID {
		return c.Redirect(http.StatusSeeOther, "/account/email?msg=email-confirmed")
	}
	return c.Redirect(http.StatusSeeOther, "/login?msg=email-confirmed")
}

package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/views"
)

// adminUsersIndex handles GET /admin/users: every account, narrowed by a search over
// username, display name and groups.
func (h *Handler) adminUsersIndex(c echo.Context) error {
	ctx := c.Request().Context()
	users, err := h.db.ListUsers(ctx)
	if err != nil {
		return err
	}
	groups, err := h.db.GroupNamesByUser(ctx)
	if err != nil {
		return err
	}
	locked, err := h.db.LockedUsernames(ctx, h.now())
	if err != nil {
		return err
	}
	q := strings.ToLower(strings.TrimSpace(c.QueryParam("q")))
	rows := make([]views.AdminUserRow, 0, len(users))
	for _, u := range users {
		if q != "" && !strings.Contains(strings.ToLower(u.Username), q) && !strings.Contains(strings.ToLower(u.DisplayName), q) &&
			!slices.ContainsFunc(groups[u.ID], func(g string) bool { return strings.Contains(strings.ToLower(g), q) }) {
			continue
		}
		rows = append(rows, views.AdminUserRow{User: u, Groups: strings.Join(groups[u.ID], ", "),
			Throttled: locked[auth.UsernameKey(u.Username)]})
	}
	return render(c, http.StatusOK, views.AdminUsersPage(h.pageFor(c, "Users"), rows, c.QueryParam("q")))
}

// adminUser loads the user named by :id; unknown or malformed ids are 404s.
func (h *Handler) adminUser(c echo.Context) (db.User, error) { return byPathID(c, h.db.UserByID) }

// adminUserShow handles GET /admin/users/:id: one account, with the actions an admin may
// take on it.
func (h *Handler) adminUserShow(c echo.Context) error {
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	return h.renderAdminUser(c, u, http.StatusOK, "")
}

func (h *Handler) renderAdminUser(c echo.Context, u db.User, status int, problem string) error {
	return h.renderAdminUserWith(c, u, status, views.AdminUser{Error: problem})
}

// renderAdminUserWith shows the user's page with a's problems (and fields as typed) in it.
func (h *Handler) renderAdminUserWith(c echo.Context, u db.User, status int, a views.AdminUser) error {
	ctx := c.Request().Context()
	sessions, codes, err := h.db.AccountCounts(ctx, u.ID)
	if err != nil {
		return err
	}
	failures, until, err := h.db.ThrottleOf(ctx, auth.UsernameKey(u.Username))
	if err != nil {
		return err
	}
	ss, err := h.db.ListSessions(ctx, u.ID)
	if err != nil {
		return err
	}
	me, _ := currentSession(c)
	for _, s := range ss {
		a.SessionRows = append(a.SessionRows, views.SessionRow{Session: s, Current: s.ID == me.ID,
			Browser: browserSummary(s.UserAgent), Username: u.Username})
	}
	keys, err := h.db.PasskeysOf(ctx, u.ID)
	if err != nil {
		return err
	}
	p := h.pageWithStatus(c, u.Username, status)
	a.User, a.Sessions, a.RecoveryLeft, a.Failures, a.Passkeys = u, sessions, codes, failures, keys
	if until.After(h.now()) {
		a.LockedUntil = p.When(until)
	}
	return render(c, status, views.AdminUserPage(p, a))
}

// adminUserDisable handles POST /admin/users/:id/disable: the account is signed out
// everywhere and cannot sign in until enabled. Admins do not disable themselves here, so
// nobody locks themselves out with one click.
func (h *Handler) adminUserDisable(c echo.Context) error {
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	if me, _ := currentUser(c); u.ID == me.ID {
		return h.renderAdminUser(c, u, http.StatusConflict, "You cannot disable your own account here; another admin, or the command line, can.")
	}
	if _, err := h.db.DisableUser(c.Request().Context(), u.ID, h.event(c, "user.disabled", u.Username)); err != nil {
		return h.userActionFailed(c, u, err)
	}
	return backToUser(c, u)
}

// adminUserEnable handles POST /admin/users/:id/enable: the account may sign in again.
func (h *Handler) adminUserEnable(c echo.Context) error {
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	if _, err := h.db.SetDisabled(c.Request().Context(), u.ID, false, h.event(c, "user.enabled", u.Username)); err != nil {
		return h.userActionFailed(c, u, err)
	}
	return backToUser(c, u)
}

// adminUserUnlock handles POST /admin/users/:id/unlock: it clears the account's failed
// sign-ins, and with them any lock.
func (h *Handler) adminUserUnlock(c echo.Context) error {
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	ev := h.event(c, "user.unlocked", u.Username)
	if _, err := h.db.ClearThrottle(c.Request().Context(), auth.UsernameKey(u.Username), ev); err != nil {
		return h.userActionFailed(c, u, err)
	}
	return backToUser(c, u)
}

// adminUserRevokeSessions handles POST /admin/users/:id/revoke-sessions: the user is
// signed out everywhere. An admin doing this to themselves keeps this tab, like "sign out
// other sessions".
func (h *Handler) adminUserRevokeSessions(c echo.Context) error {
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	keep := int64(0)
	if me, _ := currentUser(c); u.ID == me.ID {
		s, _ := currentSession(c)
		keep = s.ID
	}
	if _, err := h.db.RevokeSessions(c.Request().Context(), u.ID, keep, h.event(c, "sessions.revoked", u.Username)); err != nil {
		return h.userActionFailed(c, u, err)
	}
	return backToUser(c, u)
}

// adminUserResetMFA handles POST /admin/users/:id/reset-mfa: the authenticator app, the
// passkeys and the recovery codes go, and so do the user's sessions; they enroll again at
// their next sign-in.
func (h *Handler) adminUserResetMFA(c echo.Context) error {
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	ev := h.event(c, "mfa.reset", u.Username)
	ev.Detail = "reset by an admin; sessions ended"
	if _, err := h.db.ResetMFA(c.Request().Context(), u.ID, ev); err != nil {
		return h.userActionFailed(c, u, err)
	}
	if me, _ := currentUser(c); u.ID == me.ID {
		h.clearSessionCookies(c) // this session ended with the others
		return c.Redirect(http.StatusSeeOther, "/login?ended=1")
	}
	return backToUser(c, u)
}

// adminUserEmail handles POST /admin/users/:id/email (field email): the admin sets the
// user's address, or removes it when the field is empty. An admin's word counts as
// confirmed, so no link is mailed.
func (h *Handler) adminUserEmail(c echo.Context) error {
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	typed := c.FormValue("email")
	addr := ""
	if strings.TrimSpace(typed) != "" {
		var pe *auth.PolicyError
		if addr, err = auth.CheckEmail(typed); errors.As(err, &pe) {
			return h.renderAdminUserWith(c, u, http.StatusUnprocessableEntity, views.AdminUser{Email: typed, EmailError: pe.Reason})
		}
	}
	err = h.db.SetEmail(c.Request().Context(), u.ID, addr, h.event(c, "user.email_set", u.Username))
	if errors.Is(err, db.ErrEmailTaken) {
		return h.renderAdminUserWith(c, u, http.StatusConflict, views.AdminUser{Email: typed,
			EmailError: "That address belongs to another account."})
	}
	if err != nil {
		return err
	}
	return backToUser(c, u)
}

// adminUserTemporaryPassword handles POST /admin/users/:id/temporary-password (field
// new_password): for a user who forgot theirs. The password must pass the policy; every
// session of the user ends, and their next sign-in must choose a new password before it
// reaches anything else (the forced change of a password an admin set). The second factor
// is untouched.
func (h *Handler) adminUserTemporaryPassword(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	if me, _ := currentUser(c); me.ID == u.ID {
		return h.renderAdminUser(c, u, http.StatusConflict, "Change your own password at Account › Change your password.")
	}
	password := c.FormValue("new_password")
	var pe *auth.PolicyError
	if err := auth.CheckPassword(password, u.Username); errors.As(err, &pe) {
		return h.renderAdminUserWith(c, u, http.StatusUnprocessableEntity, views.AdminUser{PasswordErr: pe.Reason})
	} else if err != nil {
		return err
	}
	hash, err := h.hasher.Hash(ctx, password)
	if err != nil {
		return err
	}
	ev := h.event(c, "user.password_set", u.Username)
	ev.Detail = "temporary password set by an admin; to be changed at the next sign-in; all sessions ended"
	if err := h.db.SetPassword(ctx, u.ID, hash, true, -1, ev); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/users/"+strconv.FormatInt(u.ID, 10)+"?msg=temporary-password")
}

// adminUserSessionRevoke handles POST /admin/users/:id/sessions/:sid/revoke: it ends one
// session of the user. The delete is keyed by both ids, so a session of anyone else under
// this user's path is the same 404 as one that does not exist. It returns to the page the
// button was on (the user's, or /admin/sessions).
func (h *Handler) adminUserSessionRevoke(c echo.Context) error {
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	sid, err := strconv.ParseInt(c.Param("sid"), 10, 64)
	if err != nil || sid <= 0 {
		return errNotFound
	}
	ev := h.event(c, "session.revoked", u.Username)
	ev.Detail = "session " + c.Param("sid") + "; by an admin"
	if err := h.db.RevokeUserSession(c.Request().Context(), u.ID, sid, ev); err != nil {
		return err
	}
	if me, _ := currentSession(c); me.ID == sid {
		h.clearSessionCookies(c)
		return c.Redirect(http.StatusSeeOther, "/login?out=1")
	}
	back := safeNext(c.FormValue("return"))
	if !strings.HasPrefix(back, "/admin/") {
		back = "/admin/users/" + strconv.FormatInt(u.ID, 10)
	}
	return c.Redirect(http.StatusSeeOther, withMsg(back, "session-revoked"))
}

// withMsg adds a flash key to a local path, replacing any it had.
func withMsg(path, msg string) string {
	u, err := url.Parse(path)
	if err != nil {
		return path
	}
	q := u.Query()
	q.Set("msg", msg)
	u.RawQuery = q.Encode()
	return u.String()
}

// adminUserRole handles POST /admin/users/:id/role: it changes the user's role, refusing
// to demote the last active admin.
func (h *Handler) adminUserRole(c echo.Context) error {
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	role := c.FormValue("role")
	if !db.ValidRole(role) {
		return badRequest("Choose staff, publisher or admin.")
	}
	if err := h.db.SetRole(c.Request().Context(), u.ID, role, h.event(c, "user.role_changed", u.Username)); err != nil {
		return h.userActionFailed(c, u, err)
	}
	u.Role = role
	if me, _ := currentUser(c); u.ID == me.ID && !u.IsAdmin() {
		// Reached only when another admin exists; still, say plainly what just happened.
		return c.Redirect(http.StatusSeeOther, "/?msg=saved")
	}
	return backToUser(c, u)
}

// userActionFailed answers an action on a user's page that did not happen: the page again
// when it would have left no active admin, else the error.
func (h *Handler) userActionFailed(c echo.Context, u db.User, err error) error {
	if errors.Is(err, db.ErrLastAdmin) {
		return h.renderAdminUser(c, u, http.StatusConflict, "This is the last active admin. Make someone else an admin first.")
	}
	return err
}

// backToUser returns to the user's page after an action on it.
func backToUser(c echo.Context, u db.User) error {
	return c.Redirect(http.StatusSeeOther, "/admin/users/"+strconv.FormatInt(u.ID, 10)+"?msg=saved")
}

// adminUserNew handles GET /admin/users/new, the create-user form.
func (h *Handler) adminUserNew(c echo.Context) error {
	return render(c, http.StatusOK, views.AdminNewUserPage(h.pageFor(c, "Add a user"), views.NewUserForm{Role: db.RoleStaff}))
}

// adminUserCreate handles POST /admin/users: it adds an account with an initial password
// that the user must replace at first sign-in: an admin never knows a user's lasting
// password.
func (h *Handler) adminUserCreate(c echo.Context) error {
	ctx := c.Request().Context()
	f := views.NewUserForm{AccountFields: accountFields(c), Role: c.FormValue("role"), Email: c.FormValue("email")}
	if !db.ValidRole(f.Role) {
		return badRequest("Choose staff, publisher or admin.")
	}
	again := func() error {
		return render(c, http.StatusUnprocessableEntity, views.AdminNewUserPage(h.pageWithStatus(c, "Add a user", http.StatusUnprocessableEntity), f))
	}
	password := c.FormValue("password")
	if ok := f.Validate(password); !f.ValidateEmail() || !ok {
		return again()
	}
	hash, err := h.hasher.Hash(ctx, password)
	if err != nil {
		return err
	}
	ev := h.event(c, "user.created", f.Username)
	ev.Detail = "role " + f.Role + "; initial password must be changed"
	if f.Email != "" {
		ev.Detail += "; address " + f.Email
	}
	u, err := h.db.CreateUser(ctx, db.NewUser{Username: f.Username, DisplayName: f.DisplayName, Role: f.Role,
		PasswordHash: hash, MustChangePassword: true, Email: f.Email}, ev)
	if errors.Is(err, db.ErrDuplicate) {
		f.Errors["username"] = "That username is taken."
		return again()
	}
	if errors.Is(err, db.ErrEmailTaken) {
		f.Errors["email"] = "That address belongs to another account."
		return again()
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/users/"+strconv.FormatInt(u.ID, 10)+"?msg=saved")
}

// adminUserDeleteForm handles GET /admin/users/:id/delete: it asks for the username to be
// typed before deleting the account.
func (h *Handler) adminUserDeleteForm(c echo.Context) error {
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	return h.renderConfirmDelete(c, u, http.StatusOK, "")
}

func (h *Handler) renderConfirmDelete(c echo.Context, u db.User, status int, problem string) error {
	id := strconv.FormatInt(u.ID, 10)
	return render(c, status, views.ConfirmBulkPage(h.pageWithStatus(c, "Delete "+u.Username, status), views.ConfirmBulk{
		Title: "Delete the account",
		Summary: fmt.Sprintf("This deletes %s with their sessions, two-step factor, recovery codes, group memberships and read receipts. "+
			"Audit entries keep the username. This cannot be undone.", u.Username),
		Action: "/admin/users/" + id + "/delete", Phrase: u.Username, Count: 1, Error: problem, Cancel: "/admin/users/" + id}))
}

// adminUserDelete handles POST /admin/users/:id/delete: it deletes the account once its
// username is typed, never the acting admin's own nor the last active admin.
func (h *Handler) adminUserDelete(c echo.Context) error {
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	if _, ok := typedConfirmation(c, u.Username); !ok {
		return h.renderConfirmDelete(c, u, http.StatusUnprocessableEntity, "Type the username exactly to confirm. Nothing was changed.")
	}
	if me, _ := currentUser(c); me.ID == u.ID {
		return h.renderConfirmDelete(c, u, http.StatusConflict, "You cannot delete your own account; another admin, or the command line, can.")
	}
	err = h.db.DeleteUser(c.Request().Context(), u.ID, h.event(c, "user.deleted", u.Username))
	if errors.Is(err, db.ErrLastAdmin) {
		return h.renderConfirmDelete(c, u, http.StatusConflict, "This is the last active admin. Make someone else an admin first.")
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/users?msg=saved")
}

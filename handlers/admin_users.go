package handlers

import (
	"errors"
	"fmt"
	"net/http"
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
	ctx := c.Request().Context()
	sessions, codes, err := h.db.AccountCounts(ctx, u.ID)
	if err != nil {
		return err
	}
	failures, until, err := h.db.ThrottleOf(ctx, auth.UsernameKey(u.Username))
	if err != nil {
		return err
	}
	keys, err := h.db.PasskeysOf(ctx, u.ID)
	if err != nil {
		return err
	}
	p := h.pageWithStatus(c, u.Username, status)
	a := views.AdminUser{User: u, Sessions: sessions, RecoveryLeft: codes, Failures: failures, Error: problem, Passkeys: keys}
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
	f := views.NewUserForm{AccountFields: accountFields(c), Role: c.FormValue("role")}
	if !db.ValidRole(f.Role) {
		return badRequest("Choose staff, publisher or admin.")
	}
	again := func() error {
		return render(c, http.StatusUnprocessableEntity, views.AdminNewUserPage(h.pageWithStatus(c, "Add a user", http.StatusUnprocessableEntity), f))
	}
	password := c.FormValue("password")
	if !f.Validate(password) {
		return again()
	}
	hash, err := h.hasher.Hash(ctx, password)
	if err != nil {
		return err
	}
	ev := h.event(c, "user.created", f.Username)
	ev.Detail = "role " + f.Role + "; initial password must be changed"
	u, err := h.db.CreateUser(ctx, db.NewUser{Username: f.Username, DisplayName: f.DisplayName, Role: f.Role,
		PasswordHash: hash, MustChangePassword: true}, ev)
	if errors.Is(err, db.ErrDuplicate) {
		f.Errors["username"] = "That username is taken."
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

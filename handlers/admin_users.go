package handlers

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/views"
)

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
func (h *Handler) adminUser(c echo.Context) (db.User, error) {
	id, err := pathID(c)
	if err != nil {
		return db.User{}, err
	}
	u, err := h.db.UserByID(c.Request().Context(), id)
	if errors.Is(err, db.ErrNotFound) {
		return db.User{}, errNotFound
	}
	return u, err
}

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
	p := h.pageWithStatus(c, u.Username, status)
	a := views.AdminUser{User: u, Sessions: sessions, RecoveryLeft: codes, Failures: failures, Error: problem}
	if until.After(h.now()) {
		a.LockedUntil = p.When(until)
	}
	return render(c, status, views.AdminUserPage(p, a))
}

// adminUserAction runs one of the buttons on a user's page and comes back to it.
func (h *Handler) adminUserAction(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := h.adminUser(c)
	if err != nil {
		return err
	}
	me, _ := currentUser(c)
	back := "/admin/users/" + strconv.FormatInt(u.ID, 10)
	ev := h.event(c, "", u.Username)
	switch action := c.Param("action"); action {
	case "disable":
		if u.ID == me.ID {
			return h.renderAdminUser(c, u, http.StatusConflict, "You cannot disable your own account here; another admin, or the command line, can.")
		}
		ev.Kind = "user.disabled"
		_, err = h.db.DisableUser(ctx, u.ID, ev)
	case "enable":
		ev.Kind = "user.enabled"
		_, err = h.db.SetDisabled(ctx, u.ID, false, ev)
	case "unlock":
		ev.Kind = "user.unlocked"
		_, err = h.db.ClearThrottle(ctx, auth.UsernameKey(u.Username), ev)
	case "revoke-sessions":
		ev.Kind = "sessions.revoked"
		keep := int64(0)
		if u.ID == me.ID {
			s, _ := currentSession(c)
			keep = s.ID // signing yourself out everywhere keeps this tab, like "sign out other sessions"
		}
		_, err = h.db.RevokeSessions(ctx, u.ID, keep, ev)
	case "reset-mfa":
		ev.Kind = "mfa.reset"
		ev.Detail = "reset by an admin; sessions ended"
		_, err = h.db.ResetMFA(ctx, u.ID, ev)
	case "delete":
		return h.adminUserDelete(c)
	case "role":
		role := c.FormValue("role")
		if !db.ValidRole(role) {
			return badRequest("Choose staff, publisher or admin.")
		}
		ev.Kind = "user.role_changed"
		err = h.db.SetRole(ctx, u.ID, role, ev)
	default:
		return errNotFound
	}
	if errors.Is(err, db.ErrLastAdmin) {
		return h.renderAdminUser(c, u, http.StatusConflict, "This is the last active admin. Make someone else an admin first.")
	}
	if err != nil {
		return err
	}
	if u.ID == me.ID && c.Param("action") == "role" && c.FormValue("role") != db.RoleAdmin {
		// Reached only when another admin exists; still, say plainly what just happened.
		return c.Redirect(http.StatusSeeOther, "/?msg=saved")
	}
	if u.ID == me.ID && c.Param("action") == "reset-mfa" {
		h.clearSessionCookies(c)
		return c.Redirect(http.StatusSeeOther, "/login?ended=1")
	}
	return c.Redirect(http.StatusSeeOther, back+"?msg=saved")
}

func (h *Handler) adminUserNew(c echo.Context) error {
	return render(c, http.StatusOK, views.AdminNewUserPage(h.pageFor(c, "Add a user"), views.NewUserForm{Role: db.RoleStaff}))
}

// adminUserCreate adds an account with an initial password that the user must replace at
// first sign-in: an admin never knows a user's lasting password.
func (h *Handler) adminUserCreate(c echo.Context) error {
	ctx := c.Request().Context()
	f := views.NewUserForm{
		Username:    auth.NormalizeUsername(strings.TrimSpace(c.FormValue("username"))), // as it will be stored
		DisplayName: strings.TrimSpace(c.FormValue("display_name")),
		Role:        c.FormValue("role"),
		Errors:      map[string]string{},
	}
	if msg := validUsername(f.Username); msg != "" {
		f.Errors["username"] = msg
	}
	if !db.ValidRole(f.Role) {
		return badRequest("Choose staff, publisher or admin.")
	}
	password := c.FormValue("password")
	var pe *auth.PolicyError
	if err := auth.CheckPassword(password, f.Username); errors.As(err, &pe) {
		f.Errors["password"] = pe.Reason
	} else if err != nil {
		return err
	}
	again := func() error {
		return render(c, http.StatusUnprocessableEntity, views.AdminNewUserPage(h.pageWithStatus(c, "Add a user", http.StatusUnprocessableEntity), f))
	}
	if len([]rune(f.DisplayName)) > 100 || !singleLine(f.DisplayName) {
		f.Errors["display_name"] = "Use at most 100 characters on one line."
	}
	if len(f.Errors) > 0 {
		return again()
	}
	hash, err := h.hasher.Hash(ctx, password)
	if errors.Is(err, auth.ErrBusy) {
		return busy(c, err)
	}
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

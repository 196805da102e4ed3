package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

// adminGroupsIndex handles GET /admin/groups: every group, and the new-group form.
func (h *Handler) adminGroupsIndex(c echo.Context) error {
	return h.renderGroups(c, http.StatusOK, views.GroupForm{})
}

func (h *Handler) renderGroups(c echo.Context, status int, f views.GroupForm) error {
	groups, err := h.db.ListGroups(c.Request().Context())
	if err != nil {
		return err
	}
	return render(c, status, views.AdminGroupsPage(h.pageWithStatus(c, "Groups", status), groups, f))
}

// adminGroupsCreate handles POST /admin/groups: it creates a group with a unique name.
func (h *Handler) adminGroupsCreate(c echo.Context) error {
	f := views.GroupForm{Name: c.FormValue("name")}
	if !f.Validate() {
		return h.renderGroups(c, http.StatusUnprocessableEntity, f)
	}
	g, err := h.db.CreateGroup(c.Request().Context(), f.Name, h.event(c, "group.created", f.Name))
	if errors.Is(err, db.ErrDuplicate) {
		f.Error = "A group with that name exists."
		return h.renderGroups(c, http.StatusUnprocessableEntity, f)
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/groups/"+strconv.FormatInt(g.ID, 10)+"?msg=saved")
}

// adminGroup loads the group named by :id; unknown or malformed ids are 404s.
func (h *Handler) adminGroup(c echo.Context) (db.Group, error) { return byPathID(c, h.db.GroupByID) }

// adminGroupShow handles GET /admin/groups/:id: the group's members.
func (h *Handler) adminGroupShow(c echo.Context) error {
	g, err := h.adminGroup(c)
	if err != nil {
		return err
	}
	return h.renderGroup(c, g, http.StatusOK, "")
}

func (h *Handler) renderGroup(c echo.Context, g db.Group, status int, problem string) error {
	members, err := h.db.GroupMembers(c.Request().Context(), g.ID)
	if err != nil {
		return err
	}
	return render(c, status, views.AdminGroupPage(h.pageWithStatus(c, g.Name, status), g, members, problem))
}

// adminGroupAddMember handles POST /admin/groups/:id/members: it adds a user, named by
// username; adding a member twice changes nothing.
func (h *Handler) adminGroupAddMember(c echo.Context) error {
	ctx := c.Request().Context()
	g, err := h.adminGroup(c)
	if err != nil {
		return err
	}
	u, err := h.db.UserByUsername(ctx, strings.TrimSpace(c.FormValue("username")))
	if errors.Is(err, db.ErrNotFound) {
		return h.renderGroup(c, g, http.StatusUnprocessableEntity, "There is no user with that username.")
	}
	if err != nil {
		return err
	}
	ev := h.event(c, "group.member_added", u.Username)
	ev.Detail = "group " + g.Name
	if err := h.db.AddGroupMember(ctx, g.ID, u.ID, ev); err != nil && !errors.Is(err, db.ErrNotFound) {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/groups/"+strconv.FormatInt(g.ID, 10)+"?msg=saved")
}

// adminGroupRemoveMember handles POST /admin/groups/:id/members/:uid/remove: the user
// leaves the group.
func (h *Handler) adminGroupRemoveMember(c echo.Context) error {
	g, err := h.adminGroup(c)
	if err != nil {
		return err
	}
	uid, err := strconv.ParseInt(c.Param("uid"), 10, 64)
	if err != nil || uid <= 0 {
		return errNotFound
	}
	ev := h.event(c, "group.member_removed", "user "+c.Param("uid"))
	ev.Detail = "group " + g.Name
	if err := h.db.RemoveGroupMember(c.Request().Context(), g.ID, uid, ev); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/groups/"+strconv.FormatInt(g.ID, 10)+"?msg=saved")
}

// adminGroupDelete handles POST /admin/groups/:id/delete: the group goes, and with it its
// memberships and its place in notice audiences and rules.
func (h *Handler) adminGroupDelete(c echo.Context) error {
	g, err := h.adminGroup(c)
	if err != nil {
		return err
	}
	err = h.db.DeleteGroup(c.Request().Context(), g.ID, h.event(c, "group.deleted", g.Name))
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/groups?msg=saved")
}

// adminGroupResetForm handles GET /admin/groups/:id/reset-mfa: it shows how many members'
// factors a bulk reset would remove.
func (h *Handler) adminGroupResetForm(c echo.Context) error {
	g, err := h.adminGroup(c)
	if err != nil {
		return err
	}
	return h.renderGroupReset(c, g, http.StatusOK, "")
}

func (h *Handler) renderGroupReset(c echo.Context, g db.Group, status int, problem string) error {
	with, err := h.db.GroupFactorCount(c.Request().Context(), g.ID)
	if err != nil {
		return err
	}
	id := strconv.FormatInt(g.ID, 10)
	return render(c, status, views.ConfirmBulkPage(h.pageWithStatus(c, "Reset two-step verification", status), views.ConfirmBulk{
		Title: "Reset two-step verification",
		Summary: fmt.Sprintf("This removes the authenticator app, passkeys and recovery codes of %d members of %s and signs them out; "+
			"they set up a new authenticator at their next sign-in. Passwords are untouched.", with, g.Name),
		Action: "/admin/groups/" + id + "/reset-mfa", Phrase: g.Name, Count: with, Error: problem, Cancel: "/admin/groups/" + id}))
}

// adminGroupReset handles POST /admin/groups/:id/reset-mfa: it removes the factors of the
// members it showed, once the group's name is typed, and aborts if more members have one by
// now.
func (h *Handler) adminGroupReset(c echo.Context) error {
	g, err := h.adminGroup(c)
	if err != nil {
		return err
	}
	expected, ok := typedConfirmation(c, g.Name)
	if !ok {
		return h.renderGroupReset(c, g, http.StatusUnprocessableEntity, "Type the group's name exactly to confirm. Nothing was changed.")
	}
	ev := h.event(c, "mfa.reset", "")
	ev.Detail = "bulk reset for group " + g.Name + "; sessions ended"
	_, err = h.db.BulkResetMFA(c.Request().Context(), g.ID, expected, ev)
	if errors.Is(err, db.ErrCountChanged) {
		return h.renderGroupReset(c, g, http.StatusConflict,
			"More members have two-step verification now than you were shown, so nothing was changed. Check the new count and confirm again.")
	}
	if err != nil {
		return err
	}
	if me, _ := currentUser(c); me.HasMFA() {
		now, err := h.db.UserByID(c.Request().Context(), me.ID)
		if err != nil {
			return err
		}
		if !now.HasMFA() {
			h.clearSessionCookies(c) // the admin reset their own factors along with the group's
			return c.Redirect(http.StatusSeeOther, "/login?ended=1")
		}
	}
	return c.Redirect(http.StatusSeeOther, "/admin/groups/"+strconv.FormatInt(g.ID, 10)+"?msg=saved")
}

package handlers

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

func (h *Handler) adminGroupsIndex(c echo.Context) error {
	return h.renderGroups(c, http.StatusOK, "", "")
}

func (h *Handler) renderGroups(c echo.Context, status int, name, problem string) error {
	groups, err := h.db.ListGroups(c.Request().Context())
	if err != nil {
		return err
	}
	return render(c, status, views.AdminGroupsPage(h.pageWithStatus(c, "Groups", status), groups, name, problem))
}

func (h *Handler) adminGroupsCreate(c echo.Context) error {
	name := strings.TrimSpace(c.FormValue("name"))
	if name == "" || utf8.RuneCountInString(name) > 64 || !singleLine(name) {
		return h.renderGroups(c, http.StatusUnprocessableEntity, name, "Give the group a name of at most 64 characters.")
	}
	g, err := h.db.CreateGroup(c.Request().Context(), name, h.event(c, "group.created", name))
	if errors.Is(err, db.ErrDuplicate) {
		return h.renderGroups(c, http.StatusUnprocessableEntity, name, "A group with that name exists.")
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/groups/"+strconv.FormatInt(g.ID, 10)+"?msg=saved")
}

func (h *Handler) adminGroup(c echo.Context) (db.Group, error) {
	id, err := pathID(c)
	if err != nil {
		return db.Group{}, err
	}
	return h.db.GroupByID(c.Request().Context(), id)
}

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

func (h *Handler) adminGroupDelete(c echo.Context) error {
	g, err := h.adminGroup(c)
	if err != nil {
		return err
	}
	err = h.db.DeleteGroup(c.Request().Context(), g.ID, h.event(c, "group.deleted", g.Name))
	h.live.invalidate() // audiences that named the group changed
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/groups?msg=saved")
}

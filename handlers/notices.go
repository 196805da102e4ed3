package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

// noticesIndex handles GET /notices: the notices meant for the user.
func (h *Handler) noticesIndex(c echo.Context) error {
	u, _ := currentUser(c)
	ns, err := h.db.NoticesFor(c.Request().Context(), u, h.now())
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.NoticesPage(h.pageFor(c, "Notices"), ns))
}

// noticeShow handles GET /notices/:id: one notice, for its audience; anyone else, and
// anyone before it starts, gets the same 404 as for an id that does not exist.
func (h *Handler) noticeShow(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	now := h.now()
	n, err := h.db.NoticeFor(c.Request().Context(), id, u, now)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.NoticePage(h.pageFor(c, n.Title), n, n.Current(now)))
}

// backTo is the local page a banner form returns to.
func backTo(c echo.Context) string { return safeNext(c.FormValue("return")) }

// noticeAck handles POST /notices/:id/ack: it records, for the signed-in user only, that
// they read the notice. The user comes from the session, never from the form, so nobody can
// acknowledge for someone else.
func (h *Handler) noticeAck(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	ev := h.event(c, "notice.acknowledged", "")
	if err := h.db.AckNotice(c.Request().Context(), id, u, ev); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, backTo(c))
}

// noticeDismiss handles POST /notices/:id/dismiss: the banner of a normal notice goes away
// for the user; a must-read one stays until acknowledged.
func (h *Handler) noticeDismiss(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	err = h.db.DismissNotice(c.Request().Context(), id, u, h.now())
	if errors.Is(err, db.ErrNotDismissable) {
		return &userError{Status: http.StatusConflict, Message: "A must-read notice cannot be dismissed.",
			Hint: "Read it, then choose \u201cI have read this\u201d."}
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, backTo(c))
}

package handlers

import (
	"net/http"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"

	"gatehouse/views"
)

// sessionsIndex handles GET /account/sessions: the user's own sessions, this one first.
func (h *Handler) sessionsIndex(c echo.Context) error {
	u, _ := currentUser(c)
	me, _ := currentSession(c)
	ss, err := h.db.ListSessions(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	rows := make([]views.SessionRow, 0, len(ss))
	for _, s := range ss {
		rows = append(rows, views.SessionRow{Session: s, Current: s.ID == me.ID, Browser: browserSummary(s.UserAgent)})
	}
	// The current session first: it is the one people look for.
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Current && !rows[j].Current })
	return render(c, http.StatusOK, views.SessionsPage(h.pageFor(c, "Sessions"), rows))
}

// sessionRevoke handles POST /account/sessions/:id/revoke: it ends one of the user's own
// sessions. The delete is keyed by the user's id too, so another user's session id is a
// 404, exactly like an id that never existed.
func (h *Handler) sessionRevoke(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	ev := h.event(c, "session.revoked", u.Username)
	ev.Detail = "session " + c.Param("id")
	if err := h.db.RevokeUserSession(c.Request().Context(), u.ID, id, ev); err != nil {
		return err
	}
	me, _ := currentSession(c)
	if id == me.ID {
		h.clearSessionCookies(c)
		return c.Redirect(http.StatusSeeOther, "/login?out=1")
	}
	return c.Redirect(http.StatusSeeOther, "/account/sessions?msg=session-revoked")
}

// sessionsRevokeOthers handles POST /account/sessions/revoke-others: every session of the
// user but this one ends.
func (h *Handler) sessionsRevokeOthers(c echo.Context) error {
	u, _ := currentUser(c)
	me, _ := currentSession(c)
	ev := h.event(c, "sessions.revoked", u.Username)
	if _, err := h.db.RevokeSessions(c.Request().Context(), u.ID, me.ID, ev); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/account/sessions?msg=sessions-revoked")
}

// browserSummary turns a User-Agent into a few words people recognise.
func browserSummary(ua string) string {
	browser := "Unknown browser"
	switch {
	case strings.Contains(ua, "Edg/"):
		browser = "Edge"
	case strings.Contains(ua, "Firefox/"):
		browser = "Firefox"
	case strings.Contains(ua, "Chrome/") || strings.Contains(ua, "Chromium/"):
		browser = "Chrome"
	case strings.Contains(ua, "Safari/"):
		browser = "Safari"
	case strings.HasPrefix(ua, "curl/"):
		browser = "curl"
	}
	system := ""
	switch {
	case strings.Contains(ua, "Android"):
		system = "Android"
	case strings.Contains(ua, "iPhone") || strings.Contains(ua, "iPad"):
		system = "iOS"
	case strings.Contains(ua, "Windows"):
		system = "Windows"
	case strings.Contains(ua, "Mac OS X") || strings.Contains(ua, "Macintosh"):
		system = "macOS"
	case strings.Contains(ua, "Linux"):
		system = "Linux"
	}
	if system == "" {
		return browser
	}
	return browser + " on " + system
}

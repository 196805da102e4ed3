package handlers

import (
	"log/slog"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
)

// event starts an audit record for this request.
func (h *Handler) event(c echo.Context, kind, subject string) db.Event {
	ev := db.Event{At: h.now(), Kind: kind, Subject: subject, ClientAddr: c.RealIP(), RequestID: requestID(c),
		Outcome: db.Success}
	if u, ok := currentUser(c); ok {
		ev.ActorID, ev.Actor = u.ID, u.Username
	}
	return ev
}

// failure starts the audit record of a refusal, with why in its detail.
func (h *Handler) failure(c echo.Context, kind, subject, detail string) db.Event {
	ev := h.event(c, kind, subject)
	ev.Outcome, ev.Detail = db.Failure, detail
	return ev
}

// audit records an event that is not part of a larger write; a failure is logged, never
// hidden, but does not undo what the user already did.
func (h *Handler) audit(c echo.Context, ev db.Event) {
	if err := h.db.Audit(c.Request().Context(), ev); err != nil {
		h.logFault(c, slog.LevelError, "audit write failed", err, "event", ev.Kind)
	}
}

package db

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Outcomes of an audited event.
const (
	Success = "success"
	Failure = "failure"
)

// Event is one audit record. A zero Kind means "nothing to audit", so write methods can
// take an Event unconditionally.
type Event struct {
	ID         int64
	At         time.Time
	ActorID    int64 // 0 for the command line or an anonymous client
	Actor      string
	Kind       string
	Subject    string
	ClientAddr string
	Outcome    string
	Detail     string
	RequestID  string
}

// Audit appends one event on its own.
func (d *DB) Audit(ctx context.Context, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error { return insertEvent(ctx, tx, ev) })
}

// insertEvent is called inside the transaction of the change it records, so the change and
// its audit row commit together or not at all.
func insertEvent(ctx context.Context, tx *sql.Tx, ev Event) error {
	if ev.Kind == "" {
		return nil
	}
	if ev.Outcome == "" {
		ev.Outcome = Success
	}
	var actorID any
	if ev.ActorID != 0 {
		actorID = ev.ActorID
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_log (at, actor_id, actor, event, subject, client_addr,
		outcome, detail, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		FormatTime(ev.At), actorID, clean(ev.Actor), ev.Kind, clean(ev.Subject), clean(ev.ClientAddr),
		ev.Outcome, clean(ev.Detail), clean(ev.RequestID))
	if err != nil {
		return fmt.Errorf("db: audit %s: %w", ev.Kind, err)
	}
	return nil
}

// clean keeps control characters out of audit text so one row always reads as one entry,
// whatever a username or header contained. Invalid UTF-8 goes too (strings.Map replaces it),
// since a byte such as 0x85 is a line break to a viewer that reads it as Latin-1.
func clean(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, isControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}

// isControl covers C0, DEL and C1 (whose U+0085 is a line break) and the Unicode line and
// paragraph separators.
func isControl(r rune) bool { return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' }

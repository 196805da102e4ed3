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

// AuditFilter narrows ListEvents; zero fields match everything.
type AuditFilter struct {
	Kind     string
	Kinds    []string // any of these kinds
	Actor    string
	Subject  string
	Outcome  string
	From     time.Time
	To       time.Time
	BeforeID int64 // for the next page: only rows older than this id
	Limit    int
}

func (f AuditFilter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) { conds = append(conds, cond); args = append(args, arg) }
	if f.Kind != "" {
		if strings.HasSuffix(f.Kind, ".*") {
			add("lower(event) LIKE lower(?) ESCAPE '\\'", escapeLike(strings.TrimSuffix(f.Kind, "*"))+"%")
		} else {
			add("event = ?", f.Kind)
		}
	}
	if len(f.Kinds) > 0 {
		conds = append(conds, "event IN ("+placeholders(len(f.Kinds))+")")
		for _, k := range f.Kinds {
			args = append(args, k)
		}
	}
	if f.Actor != "" {
		add("lower(actor) = lower(?)", f.Actor)
	}
	if f.Subject != "" {
		add("lower(subject) LIKE lower(?) ESCAPE '\\'", "%"+escapeLike(f.Subject)+"%")
	}
	if f.Outcome != "" {
		add("outcome = ?", f.Outcome)
	}
	if !f.From.IsZero() {
		add("at >= ?", FormatTime(f.From))
	}
	if !f.To.IsZero() {
		add("at < ?", FormatTime(f.To))
	}
	if f.BeforeID > 0 {
		add("id < ?", f.BeforeID)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ListEvents returns matching events, newest first.
func (d *DB) ListEvents(ctx context.Context, f AuditFilter) ([]Event, error) {
	if f.Limit <= 0 || f.Limit > 100000 {
		f.Limit = 100
	}
	where, args := f.where()
	evs, err := queryList(ctx, d, func(row rowScanner) (ev Event, err error) {
		err = row.Scan(&ev.ID, timeCol(&ev.At), &ev.ActorID, &ev.Actor, &ev.Kind, &ev.Subject, &ev.ClientAddr,
			&ev.Outcome, &ev.Detail, &ev.RequestID)
		return ev, err
	}, `SELECT id, at, COALESCE(actor_id, 0), actor, event, subject, client_addr,
		outcome, detail, request_id FROM audit_log`+where+` ORDER BY id DESC LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("db: list audit: %w", err)
	}
	return evs, nil
}

// CountEvents counts matching events.
func (d *DB) CountEvents(ctx context.Context, f AuditFilter) (int, error) {
	where, args := f.where()
	var n int
	if err := d.queryRow(ctx, `SELECT COUNT(*) FROM audit_log`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("db: count audit: %w", err)
	}
	return n, nil
}

// PurgeAudit deletes audit rows older than cutoff and records that it did, in the same
// transaction: the log shows its own trimming.
func (d *DB) PurgeAudit(ctx context.Context, cutoff time.Time, ev Event) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE at < ?`, FormatTime(cutoff))
		if err != nil {
			return fmt.Errorf("db: purge audit: %w", err)
		}
		if n, _ = res.RowsAffected(); n == 0 {
			return nil
		}
		ev.Detail = fmt.Sprintf("%d audit rows older than %s purged", n, FormatTime(cutoff))
		if _, err := tx.ExecContext(ctx, `DELETE FROM event_counts WHERE hour < ?`, FormatTime(cutoff)); err != nil {
			return fmt.Errorf("db: purge counts: %w", err)
		}
		return insertEvent(ctx, tx, ev)
	})
	return n, err
}

// AddEventCounts adds counts to their hour buckets.
func (d *DB) AddEventCounts(ctx context.Context, hour time.Time, counts map[string]int64) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		h := FormatTime(hour.UTC().Truncate(time.Hour))
		for kind, n := range counts {
			if n == 0 {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO event_counts (kind, hour, n) VALUES (?, ?, ?)
				ON CONFLICT (kind, hour) DO UPDATE SET n = event_counts.n + excluded.n`, kind, h, n); err != nil {
				return fmt.Errorf("db: event counts: %w", err)
			}
		}
		return nil
	})
}

// EventCountsSince sums the counts of each kind from the hour containing since.
func (d *DB) EventCountsSince(ctx context.Context, since time.Time) (map[string]int64, error) {
	rows, err := d.query(ctx, `SELECT kind, SUM(n) FROM event_counts WHERE hour >= ? GROUP BY kind`,
		FormatTime(since.UTC().Truncate(time.Hour)))
	if err != nil {
		return nil, fmt.Errorf("db: event counts: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return nil, fmt.Errorf("db: event counts: %w", err)
		}
		out[k] = n
	}
	return out, rows.Err()
}

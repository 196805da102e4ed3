package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrCountChanged aborts a bulk action whose row count grew after the admin saw it: the
// admin confirmed a number, and more than that must never be touched.
var ErrCountChanged = errors.New("db: the number of affected rows changed since it was shown")

// DeleteUser removes an account with its sessions, factor, recovery codes, receipts and
// memberships (by cascade). Audit rows keep the username as text; notices keep their
// author's name. The last active admin cannot be deleted.
func (d *DB) DeleteUser(ctx context.Context, userID int64, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		var username, key, role string
		var disabled bool
		err := tx.QueryRowContext(ctx, `SELECT username, username_key, role, disabled FROM users WHERE id = ?`,
			userID).Scan(&username, &key, &role, &disabled)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("db: delete user %d: %w", userID, err)
		}
		if role == RoleAdmin && !disabled {
			n, err := activeAdminsOtherThan(ctx, tx, userID)
			if err != nil {
				return err
			}
			if n == 0 {
				return ErrLastAdmin
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, userID); err != nil {
			return fmt.Errorf("db: delete user %d: %w", userID, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM login_throttle WHERE username = ?`, key); err != nil {
			return fmt.Errorf("db: delete user %d: %w", userID, err)
		}
		ev.Subject = username
		return insertEvent(ctx, tx, ev)
	})
}

// SessionStats summarises live sessions for the admin sessions page.
type SessionStats struct {
	Total   int
	Users   int
	Partial int
}

// SessionCounts counts sessions.
func (d *DB) SessionCounts(ctx context.Context) (SessionStats, error) {
	var s SessionStats
	err := d.queryRow(ctx, `SELECT COUNT(*), COUNT(DISTINCT user_id),
		COALESCE(SUM(stage = 'mfa'), 0) FROM sessions`).Scan(&s.Total, &s.Users, &s.Partial)
	if err != nil {
		return SessionStats{}, fmt.Errorf("db: session counts: %w", err)
	}
	return s, nil
}

// RevokeAllSessionsExcept signs everyone out but keepID, in one transaction that refuses
// to delete more than expected rows.
func (d *DB) RevokeAllSessionsExcept(ctx context.Context, keepID int64, expected int, ev Event) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var count int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE id != ?`, keepID).Scan(&count); err != nil {
			return fmt.Errorf("db: revoke all: %w", err)
		}
		if count > expected {
			return ErrCountChanged
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id != ?`, keepID)
		if err != nil {
			return fmt.Errorf("db: revoke all: %w", err)
		}
		n, _ = res.RowsAffected()
		ev.Detail = fmt.Sprintf("%d sessions ended; accounts, passwords and MFA untouched", n)
		return insertEvent(ctx, tx, ev)
	})
	return n, err
}

// GroupMembersWithMFA lists the members of a group who have a factor.
func (d *DB) GroupMembersWithMFA(ctx context.Context, groupID int64) ([]User, error) {
	members, err := d.GroupMembers(ctx, groupID)
	if err != nil {
		return nil, err
	}
	var with []User
	for _, u := range members {
		if u.HasMFA {
			with = append(with, u)
		}
	}
	return with, nil
}

// BulkResetMFA resets the factor of every member of a group who has one, in one
// transaction that refuses to touch more users than expected. Each user gets their own
// audit row, so the log stays searchable by subject.
func (d *DB) BulkResetMFA(ctx context.Context, groupID int64, expected int, ev Event) (int, error) {
	n := 0
	err := d.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT u.id, u.username FROM users u JOIN group_members m ON m.user_id = u.id
			JOIN mfa_factors f ON f.user_id = u.id WHERE m.group_id = ? ORDER BY u.id`, groupID)
		if err != nil {
			return fmt.Errorf("db: bulk reset: %w", err)
		}
		type target struct {
			id   int64
			name string
		}
		var targets []target
		for rows.Next() {
			var t target
			if err := rows.Scan(&t.id, &t.name); err != nil {
				rows.Close()
				return fmt.Errorf("db: bulk reset: %w", err)
			}
			targets = append(targets, t)
		}
		rows.Close()
		if len(targets) > expected {
			return ErrCountChanged
		}
		for _, t := range targets {
			for _, q := range []string{
				`DELETE FROM mfa_factors WHERE user_id = ?`,
				`DELETE FROM mfa_pending WHERE user_id = ?`,
				`DELETE FROM recovery_codes WHERE user_id = ?`,
				`DELETE FROM sessions WHERE user_id = ?`,
				`UPDATE users SET must_enroll_mfa = 1 WHERE id = ?`,
			} {
				if _, err := tx.ExecContext(ctx, q, t.id); err != nil {
					return fmt.Errorf("db: bulk reset of %d: %w", t.id, err)
				}
			}
			one := ev
			one.Subject = t.name
			if err := insertEvent(ctx, tx, one); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

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
			add("event LIKE ? ESCAPE '\\'", escapeLike(strings.TrimSuffix(f.Kind, "*"))+"%")
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
		add("actor = ? COLLATE NOCASE", f.Actor)
	}
	if f.Subject != "" {
		add("subject LIKE ? ESCAPE '\\'", "%"+escapeLike(f.Subject)+"%")
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
	rows, err := d.query(ctx, `SELECT id, at, COALESCE(actor_id, 0), actor, event, subject, client_addr,
		outcome, detail, request_id FROM audit_log`+where+` ORDER BY id DESC LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("db: list audit: %w", err)
	}
	defer rows.Close()
	var evs []Event
	for rows.Next() {
		var ev Event
		if err := rows.Scan(&ev.ID, timeCol(&ev.At), &ev.ActorID, &ev.Actor, &ev.Kind, &ev.Subject, &ev.ClientAddr,
			&ev.Outcome, &ev.Detail, &ev.RequestID); err != nil {
			return nil, fmt.Errorf("db: list audit: %w", err)
		}
		evs = append(evs, ev)
	}
	return evs, rows.Err()
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
				ON CONFLICT (kind, hour) DO UPDATE SET n = n + excluded.n`, kind, h, n); err != nil {
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

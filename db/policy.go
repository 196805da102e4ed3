package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// MFA rule modes, from least to most strict.
const (
	MFAOff      = "off"
	MFAOptional = "optional"
	MFARequired = "required"
)

// ValidMFAMode reports whether m is a rule mode.
func ValidMFAMode(m string) bool { return m == MFAOff || m == MFAOptional || m == MFARequired }

// MFARule is the rule for one role or one group.
type MFARule struct {
	Role      string // set for a role rule
	GroupID   int64  // set for a group rule
	GroupName string
	Mode      string
	Deadline  time.Time // required rules only
	UpdatedAt time.Time
	UpdatedBy string
}

// Scope names what the rule covers, for people.
func (r MFARule) Scope() string {
	if r.Role != "" {
		return "role " + r.Role
	}
	return "group " + r.GroupName
}

func (r MFARule) String() string {
	if r.Mode == MFARequired {
		return "required from " + r.Deadline.UTC().Format(time.RFC3339)
	}
	return r.Mode
}

const ruleColumns = `COALESCE(r.role, ''), COALESCE(r.group_id, 0), COALESCE(g.name, ''), r.mode,
	r.deadline, r.updated_at, r.updated_by`

func scanRule(s scanner) (MFARule, error) {
	var r MFARule
	if err := s.Scan(&r.Role, &r.GroupID, &r.GroupName, &r.Mode, nullTimeCol(&r.Deadline), timeCol(&r.UpdatedAt),
		&r.UpdatedBy); err != nil {
		return MFARule{}, err
	}
	return r, nil
}

func (d *DB) queryRules(ctx context.Context, where string, args ...any) ([]MFARule, error) {
	rows, err := d.query(ctx, `SELECT `+ruleColumns+` FROM mfa_rules r
		LEFT JOIN groups g ON g.id = r.group_id `+where+` ORDER BY r.role IS NULL, r.role, g.name`, args...)
	if err != nil {
		return nil, fmt.Errorf("db: mfa rules: %w", err)
	}
	defer rows.Close()
	var rs []MFARule
	for rows.Next() {
		r, err := scanRule(rows)
		if err != nil {
			return nil, fmt.Errorf("db: mfa rules: %w", err)
		}
		rs = append(rs, r)
	}
	return rs, rows.Err()
}

// MFARules returns every stored rule.
func (d *DB) MFARules(ctx context.Context) ([]MFARule, error) { return d.queryRules(ctx, "") }

// MFARulesFor returns the rules that apply to u: its role's and its groups'.
func (d *DB) MFARulesFor(ctx context.Context, u User) ([]MFARule, error) {
	return d.queryRules(ctx, `WHERE r.role = ? OR r.group_id IN (SELECT m.group_id FROM group_members m WHERE m.user_id = ?)`,
		u.Role, u.ID)
}

// SetMFARule stores the rule for its scope, replacing the one before, and audits both.
func (d *DB) SetMFARule(ctx context.Context, r MFARule, ev Event) error {
	if !ValidMFAMode(r.Mode) {
		return fmt.Errorf("db: mfa rule: unknown mode %q", r.Mode)
	}
	if (r.Role == "") == (r.GroupID == 0) {
		return errors.New("db: mfa rule: name exactly one role or group")
	}
	if r.Role != "" && !ValidRole(r.Role) {
		return fmt.Errorf("db: mfa rule: unknown role %q", r.Role)
	}
	if (r.Mode == MFARequired) == r.Deadline.IsZero() {
		return errors.New("db: mfa rule: a required rule needs a deadline, and only it")
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		var role, group any
		where := `r.role = ?`
		arg := any(r.Role)
		if r.Role != "" {
			role = r.Role
		} else {
			group, where, arg = r.GroupID, `r.group_id = ?`, r.GroupID
			if err := tx.QueryRowContext(ctx, `SELECT name FROM groups WHERE id = ?`, r.GroupID).Scan(&r.GroupName); errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			} else if err != nil {
				return fmt.Errorf("db: mfa rule: %w", err)
			}
		}
		before := "off (no rule)"
		old, err := scanRule(tx.QueryRowContext(ctx, `SELECT `+ruleColumns+` FROM mfa_rules r
			LEFT JOIN groups g ON g.id = r.group_id WHERE `+where, arg))
		if err == nil {
			before = old.String()
		} else if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("db: mfa rule: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM mfa_rules AS r WHERE `+where, arg); err != nil {
			return fmt.Errorf("db: mfa rule: %w", err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO mfa_rules (role, group_id, mode, deadline, updated_at, updated_by)
			VALUES (?, ?, ?, ?, ?, ?)`, role, group, r.Mode, nullTime(r.Deadline), FormatTime(ev.At), ev.Actor)
		if err != nil {
			return fmt.Errorf("db: mfa rule: %w", err)
		}
		ev.Subject = r.Scope()
		ev.Detail = before + " → " + r.String()
		return insertEvent(ctx, tx, ev)
	})
}

const pausedKey = "mfa_enforcement_paused"

// MFAPaused reports whether enforcement is suspended.
func (d *DB) MFAPaused(ctx context.Context) (bool, error) {
	var v string
	err := d.queryRow(ctx, `SELECT value FROM settings WHERE key = ?`, pausedKey).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("db: mfa paused: %w", err)
	}
	return v == "1", nil
}

// SetMFAPaused suspends or resumes enforcement without touching any rule.
func (d *DB) SetMFAPaused(ctx context.Context, paused bool, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
			pausedKey, strconv.Itoa(boolInt(paused)), FormatTime(ev.At))
		if err != nil {
			return fmt.Errorf("db: mfa pause: %w", err)
		}
		return insertEvent(ctx, tx, ev)
	})
}

// ScopeMembers returns the active users a role or group rule covers.
func (d *DB) ScopeMembers(ctx context.Context, role string, groupID int64) ([]User, error) {
	q := `SELECT ` + userColumns + ` FROM users u WHERE u.disabled = 0 AND `
	var arg any
	if role != "" {
		q, arg = q+`u.role = ?`, role
	} else {
		q, arg = q+`u.id IN (SELECT m.user_id FROM group_members m WHERE m.group_id = ?)`, groupID
	}
	rows, err := d.query(ctx, q+` ORDER BY u.username`, arg)
	if err != nil {
		return nil, fmt.Errorf("db: scope members: %w", err)
	}
	defer rows.Close()
	var us []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("db: scope members: %w", err)
		}
		us = append(us, u)
	}
	return us, rows.Err()
}

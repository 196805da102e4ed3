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

func scanRule(s rowScanner) (MFARule, error) {
	var r MFARule
	if err := s.Scan(&r.Role, &r.GroupID, &r.GroupName, &r.Mode, nullTimeCol(&r.Deadline), timeCol(&r.UpdatedAt),
		&r.UpdatedBy); err != nil {
		return MFARule{}, err
	}
	return r, nil
}

func (d *DB) queryRules(ctx context.Context, where string, args ...any) ([]MFARule, error) {
	rs, err := queryList(ctx, d, scanRule, `SELECT `+ruleColumns+` FROM mfa_rules r
		LEFT JOIN groups g ON g.id = r.group_id `+where+` ORDER BY r.role IS NULL, r.role, g.name`, args...)
	if err != nil {
		return nil, fmt.Errorf("db: mfa rules: %w", err)
	}
	return rs, nil
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

// EffectiveRule is the rule that applies to one user: the strictest of their role's and
// groups' rules; among required ones, the earliest deadline.
type EffectiveRule struct {
	Mode     string
	Deadline time.Time
	Source   string // the scope the rule came from
	Paused   bool
}

func strictness(mode string) int {
	switch mode {
	case MFARequired:
		return 2
	case MFAOptional:
		return 1
	}
	return 0
}

// Strictest combines the rules that apply to one user into the one that counts.
func Strictest(rules []MFARule) EffectiveRule {
	best := EffectiveRule{Mode: MFAOff}
	for _, r := range rules {
		s, b := strictness(r.Mode), strictness(best.Mode)
		if s > b || (s == b && r.Mode == MFARequired && r.Deadline.Before(best.Deadline)) {
			best = EffectiveRule{Mode: r.Mode, Deadline: r.Deadline, Source: r.Scope()}
		}
	}
	return best
}

// Required reports whether the user must have a factor (now or from the deadline).
func (r EffectiveRule) Required() bool { return r.Mode == MFARequired }

// EnforcedAt reports whether, at now, a user without a factor must enroll before anything
// else. A paused rollout enforces nothing.
func (r EffectiveRule) EnforcedAt(now time.Time) bool {
	return r.Required() && !r.Paused && !now.Before(r.Deadline)
}

// EffectiveRuleFor reads the rules that apply to u and whether enforcement is paused.
func (d *DB) EffectiveRuleFor(ctx context.Context, u User) (EffectiveRule, error) {
	rules, err := d.MFARulesFor(ctx, u)
	if err != nil {
		return EffectiveRule{}, err
	}
	rule := Strictest(rules)
	if rule.Required() {
		if rule.Paused, err = d.MFAPaused(ctx); err != nil {
			return EffectiveRule{}, err
		}
	}
	return rule, nil
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

// Scope is one role or one group: what an MFA rule covers.
type Scope struct {
	Role    string // set for a role
	GroupID int64  // set for a group
}

// ScopeCount is how many active users a scope holds and how many of them have a factor of
// any kind.
type ScopeCount struct {
	Members  int
	Enrolled int
}

// ScopeCounts counts, in one read, the active members of every role and every group and
// how many of them have a factor: the progress of an MFA rollout. A role without active
// users, or a group that does not exist, is missing, which reads as zero.
func (d *DB) ScopeCounts(ctx context.Context) (map[Scope]ScopeCount, error) {
	enrolled := `SUM(CASE WHEN ` + hasSecondFactor("u.id") + ` THEN 1 ELSE 0 END)`
	rows, err := d.query(ctx, `SELECT u.role, 0, COUNT(*), `+enrolled+` FROM users u
			WHERE u.disabled = 0 GROUP BY u.role
		UNION ALL SELECT '', m.group_id, COUNT(*), `+enrolled+` FROM group_members m
			JOIN users u ON u.id = m.user_id AND u.disabled = 0 GROUP BY m.group_id`)
	if err != nil {
		return nil, fmt.Errorf("db: scope counts: %w", err)
	}
	defer rows.Close()
	counts := map[Scope]ScopeCount{}
	for rows.Next() {
		var s Scope
		var c ScopeCount
		if err := rows.Scan(&s.Role, &s.GroupID, &c.Members, &c.Enrolled); err != nil {
			return nil, fmt.Errorf("db: scope counts: %w", err)
		}
		counts[s] = c
	}
	return counts, rows.Err()
}

// UnenrolledInScope returns the usernames of the active users of a role or group who have
// no factor, by username: whom a required rule would send to enrollment.
func (d *DB) UnenrolledInScope(ctx context.Context, s Scope) ([]string, error) {
	q := `SELECT u.username FROM users u WHERE u.disabled = 0
		AND NOT ` + hasSecondFactor("u.id") + ` AND `
	var arg any
	if s.Role != "" {
		q, arg = q+`u.role = ?`, s.Role
	} else {
		q, arg = q+`u.id IN (SELECT m.user_id FROM group_members m WHERE m.group_id = ?)`, s.GroupID
	}
	names, err := queryList(ctx, d, scanOne[string], q+` ORDER BY u.username`, arg)
	if err != nil {
		return nil, fmt.Errorf("db: unenrolled users: %w", err)
	}
	return names, nil
}

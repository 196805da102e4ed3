package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The audience rule says who a notice is for: an audience reaches a user if it is everyone,
// or names the user's role, or names a group the user is in. Reaches states it in Go, for
// the banners kept in memory; reachesSQL states it once in SQL, for every query. Audience
// values in forms ("everyone", "role:NAME", "group:ID") are read and written here too.

// Audience says who a notice is for: everyone, or any of some roles and groups.
type Audience struct {
	Everyone bool
	Roles    []string
	GroupIDs []int64
}

// add records one notice_audience row.
func (a *Audience) add(everyone bool, role string, group int64) {
	switch {
	case everyone:
		a.Everyone = true
	case role != "":
		a.Roles = append(a.Roles, role)
	case group != 0:
		a.GroupIDs = append(a.GroupIDs, group)
	}
}

// Empty reports whether the audience names nobody.
func (a Audience) Empty() bool { return !a.Everyone && len(a.Roles) == 0 && len(a.GroupIDs) == 0 }

// Reaches reports whether the audience includes a user with this role and these groups.
func (a Audience) Reaches(role string, groups []int64) bool {
	if a.Everyone || slices.Contains(a.Roles, role) {
		return true
	}
	return slices.ContainsFunc(a.GroupIDs, func(g int64) bool { return slices.Contains(groups, g) })
}

// reachesSQL is the audience rule as an SQL condition on a user, whose role and id are the
// SQL expressions role and id (a joined users row's columns, or placeholders). The audience
// comes as its parts: everyone, a condition, and roles and groups, each an SQL list (a
// subquery or placeholders; an empty list matches nothing).
func reachesSQL(role, id, everyone, roles, groups string) string {
	return `(` + everyone + ` OR ` + role + ` IN (` + roles + `) OR EXISTS (SELECT 1 FROM group_members m
		WHERE m.user_id = ` + id + ` AND m.group_id IN (` + groups + `)))`
}

// inNoticeAudience is "the user (role, id as in reachesSQL) is in the audience stored for
// notice n".
func inNoticeAudience(role, id string) string {
	return inStoredAudience(noticeAudience, "n.id", role, id)
}

// audienceTable names a table of audience rows (everyone, role, group_id) and the column
// that says whose audience a row belongs to: notices and apps store theirs alike.
type audienceTable struct{ name, owner string }

var (
	noticeAudience = audienceTable{"notice_audience", "notice_id"}
	appAudience    = audienceTable{"app_audience", "app_id"}
)

// storedAudience reads the audience stored in t for owner.
func (d *DB) storedAudience(ctx context.Context, t audienceTable, owner int64) (Audience, error) {
	rows, err := d.query(ctx, `SELECT everyone, COALESCE(role, ''), COALESCE(group_id, 0)
		FROM `+t.name+` WHERE `+t.owner+` = ? ORDER BY role, group_id`, owner)
	if err != nil {
		return Audience{}, fmt.Errorf("db: %s of %d: %w", t.name, owner, err)
	}
	defer rows.Close()
	var a Audience
	for rows.Next() {
		var everyone bool
		var role string
		var group int64
		if err := rows.Scan(&everyone, &role, &group); err != nil {
			return Audience{}, fmt.Errorf("db: %s of %d: %w", t.name, owner, err)
		}
		a.add(everyone, role, group)
	}
	return a, rows.Err()
}

// inStoredAudience is "the user (role, id as in reachesSQL) is in the audience stored in t
// for the row whose id is the SQL expression owner".
func inStoredAudience(t audienceTable, owner, role, id string) string {
	of := ` FROM ` + t.name + ` a WHERE a.` + t.owner + ` = ` + owner
	return reachesSQL(role, id, `EXISTS (SELECT 1`+of+` AND a.everyone = 1)`, `SELECT a.role`+of, `SELECT a.group_id`+of)
}

// ErrAudienceGone refuses an audience naming a group that no longer exists; it is an
// ErrNotFound too.
var ErrAudienceGone = errors.New("db: a group of the audience no longer exists")

// writeStoredAudience replaces the audience stored in t for owner with a. A group that no
// longer exists is ErrAudienceGone, so a choice made on a form is never dropped silently.
func writeStoredAudience(ctx context.Context, tx *sql.Tx, t audienceTable, owner int64, a Audience) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+t.name+` WHERE `+t.owner+` = ?`, owner); err != nil {
		return fmt.Errorf("db: %s of %d: %w", t.name, owner, err)
	}
	if a.Everyone {
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+t.name+` (`+t.owner+`, everyone) VALUES (?, 1)`, owner); err != nil {
			return fmt.Errorf("db: %s of %d: %w", t.name, owner, err)
		}
	}
	for _, r := range a.Roles {
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+t.name+` (`+t.owner+`, role) VALUES (?, ?)
			ON CONFLICT DO NOTHING`, owner, r); err != nil {
			return fmt.Errorf("db: %s of %d: %w", t.name, owner, err)
		}
	}
	for _, g := range a.GroupIDs {
		res, err := tx.ExecContext(ctx, `INSERT INTO `+t.name+` (`+t.owner+`, group_id)
			SELECT ?, id FROM groups WHERE id = ? ON CONFLICT DO NOTHING`, owner, g)
		if err != nil {
			return fmt.Errorf("db: %s of %d: %w", t.name, owner, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("db: %s of %d: group %d: %w (%w)", t.name, owner, g, ErrAudienceGone, ErrNotFound)
		}
	}
	return nil
}

// inAudience is "user u is in audience a", for an audience not stored (yet): the reach
// preview of a notice being written.
func inAudience(a Audience) (string, []any) {
	everyone := "1 = 0"
	if a.Everyone {
		everyone = "1 = 1"
	}
	args := make([]any, 0, len(a.Roles)+len(a.GroupIDs))
	for _, r := range a.Roles {
		args = append(args, r)
	}
	for _, g := range a.GroupIDs {
		args = append(args, g)
	}
	return reachesSQL("u.role", "u.id", everyone, placeholders(len(a.Roles)), placeholders(len(a.GroupIDs))), args
}

// placeholders is a list of n placeholders for IN (…). An empty list is NULL, which no value
// is IN, since PostgreSQL refuses IN () (SQLite would read it as the same "nothing").
func placeholders(n int) string {
	if n == 0 {
		return "NULL"
	}
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// ParseScope reads the value naming one role ("role:NAME", a known role) or one group
// ("group:ID", an id that may exist): the scope of an audience part or of an MFA rule.
func ParseScope(v string) (role string, group int64, ok bool) {
	kind, arg, _ := strings.Cut(v, ":")
	switch kind {
	case "role":
		if ValidRole(arg) {
			return arg, 0, true
		}
	case "group":
		if id, err := strconv.ParseInt(arg, 10, 64); err == nil && id > 0 {
			return "", id, true
		}
	}
	return "", 0, false
}

// ScopeValue is the value ParseScope reads back: "role:NAME" when role is set, else
// "group:ID".
func ScopeValue(role string, group int64) string {
	if role != "" {
		return "role:" + role
	}
	return "group:" + strconv.FormatInt(group, 10)
}

// everyoneValue is the audience value for everyone.
const everyoneValue = "everyone"

// ParseAudience reads audience values (everyone, role:NAME, group:ID, for a group in
// groups); an unknown value refuses the lot (false), so a form never drops a choice
// silently. Repeats count once, and everyone includes every role and group.
func ParseAudience(values []string, groups map[int64]string) (Audience, bool) {
	var a Audience
	for _, v := range values {
		if v == everyoneValue {
			a.Everyone = true
			continue
		}
		role, group, ok := ParseScope(v)
		if _, known := groups[group]; !ok || (group != 0 && !known) {
			return Audience{}, false
		}
		if role != "" && !slices.Contains(a.Roles, role) {
			a.Roles = append(a.Roles, role)
		}
		if group != 0 && !slices.Contains(a.GroupIDs, group) {
			a.GroupIDs = append(a.GroupIDs, group)
		}
	}
	if a.Everyone {
		a.Roles, a.GroupIDs = nil, nil
	}
	return a, true
}

// AudienceValues are the form values of a, which ParseAudience reads back.
func AudienceValues(a Audience) []string {
	if a.Everyone {
		return []string{everyoneValue}
	}
	var vs []string
	for _, r := range a.Roles {
		vs = append(vs, ScopeValue(r, 0))
	}
	for _, g := range a.GroupIDs {
		vs = append(vs, ScopeValue("", g))
	}
	return vs
}

// DescribeAudience names a for people: "everyone", "role staff, group ops", or "nobody".
func DescribeAudience(a Audience, groups map[int64]string) string {
	if a.Everyone {
		return "everyone"
	}
	var parts []string
	for _, r := range a.Roles {
		parts = append(parts, "role "+r)
	}
	for _, g := range a.GroupIDs {
		name, ok := groups[g]
		if !ok {
			name = "#" + strconv.FormatInt(g, 10)
		}
		parts = append(parts, "group "+name)
	}
	if len(parts) == 0 {
		return "nobody"
	}
	return strings.Join(parts, ", ")
}

package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Group is a named set of users.
type Group struct {
	ID        int64
	Name      string
	Members   int
	CreatedAt time.Time
}

// CreateGroup adds a group; a taken name (case-insensitive) is ErrDuplicate.
func (d *DB) CreateGroup(ctx context.Context, name string, ev Event) (Group, error) {
	var g Group
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if g, err = insertGroup(ctx, tx, name, ev.At); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	})
	return g, err
}

func insertGroup(ctx context.Context, tx *sql.Tx, name string, at time.Time) (Group, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO groups (name, created_at) VALUES (?, ?) RETURNING id`,
		name, FormatTime(at)).Scan(&id)
	if isUniqueViolation(err) {
		return Group{}, ErrDuplicate
	}
	if err != nil {
		return Group{}, fmt.Errorf("db: create group %q: %w", name, err)
	}
	return Group{ID: id, Name: name, CreatedAt: at}, nil
}

// scanGroup reads id, name, created_at and the member count.
func scanGroup(row rowScanner) (Group, error) {
	var g Group
	err := row.Scan(&g.ID, &g.Name, timeCol(&g.CreatedAt), &g.Members)
	return g, err
}

// ListGroups returns every group with its member count, by name.
func (d *DB) ListGroups(ctx context.Context) ([]Group, error) {
	gs, err := queryList(ctx, d, scanGroup, `SELECT g.id, g.name, g.created_at,
		(SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) FROM groups g ORDER BY g.name`)
	if err != nil {
		return nil, fmt.Errorf("db: list groups: %w", err)
	}
	return gs, nil
}

// GroupByID returns one group or ErrNotFound.
func (d *DB) GroupByID(ctx context.Context, id int64) (Group, error) {
	g, err := scanGroup(d.queryRow(ctx, `SELECT g.id, g.name, g.created_at,
		(SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) FROM groups g WHERE g.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Group{}, ErrNotFound
	}
	if err != nil {
		return Group{}, fmt.Errorf("db: group %d: %w", id, err)
	}
	return g, nil
}

// GroupByName returns the group of that name, matched as names are unique (ignoring the
// case of ASCII letters), or ErrNotFound.
func (d *DB) GroupByName(ctx context.Context, name string) (Group, error) {
	g, err := scanGroup(d.queryRow(ctx, `SELECT g.id, g.name, g.created_at,
		(SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) FROM groups g WHERE lower(g.name) = lower(?)`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Group{}, ErrNotFound
	}
	if err != nil {
		return Group{}, fmt.Errorf("db: group %q: %w", name, err)
	}
	return g, nil
}

// GroupMembers returns the users of a group, by username.
func (d *DB) GroupMembers(ctx context.Context, groupID int64) ([]User, error) {
	us, err := queryList(ctx, d, scanUser, `SELECT `+userColumns+` FROM users u
		JOIN group_members m ON m.user_id = u.id WHERE m.group_id = ? ORDER BY u.username`, groupID)
	if err != nil {
		return nil, fmt.Errorf("db: members of %d: %w", groupID, err)
	}
	return us, nil
}

// GroupsOf returns the groups a user belongs to.
func (d *DB) GroupsOf(ctx context.Context, userID int64) ([]Group, error) {
	gs, err := queryList(ctx, d, scanGroup, `SELECT g.id, g.name, g.created_at,
		(SELECT COUNT(*) FROM group_members o WHERE o.group_id = g.id) FROM groups g
		JOIN group_members m ON m.group_id = g.id WHERE m.user_id = ? ORDER BY g.name`, userID)
	if err != nil {
		return nil, fmt.Errorf("db: groups of %d: %w", userID, err)
	}
	return gs, nil
}

// AddGroupMember puts a user in a group; being there already is not an error.
func (d *DB) AddGroupMember(ctx context.Context, groupID, userID int64, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		added, err := insertMember(ctx, tx, groupID, userID)
		if err != nil {
			return err
		}
		if !added {
			var exists int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM group_members WHERE group_id = ? AND user_id = ?`,
				groupID, userID).Scan(&exists); err != nil {
				return fmt.Errorf("db: add member: %w", err)
			}
			if exists == 0 {
				return ErrNotFound
			}
			return nil
		}
		return insertEvent(ctx, tx, ev)
	})
}

// insertMember puts a user in a group, reporting false when the user is there already or
// the user or the group does not exist.
func insertMember(ctx context.Context, tx *sql.Tx, groupID, userID int64) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO group_members (group_id, user_id)
		SELECT g.id, u.id FROM groups g, users u WHERE g.id = ? AND u.id = ? ON CONFLICT DO NOTHING`, groupID, userID)
	if err != nil {
		return false, fmt.Errorf("db: add member %d to %d: %w", userID, groupID, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// RemoveGroupMember takes a user out of a group.
func (d *DB) RemoveGroupMember(ctx context.Context, groupID, userID int64, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE group_id = ? AND user_id = ?`, groupID, userID)
		if err != nil {
			return fmt.Errorf("db: remove member %d from %d: %w", userID, groupID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return insertEvent(ctx, tx, ev)
	})
}

// DeleteGroup removes a group, its memberships, and the audiences and rules that named it.
func (d *DB) DeleteGroup(ctx context.Context, groupID int64, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM groups WHERE id = ?`, groupID)
		if err != nil {
			return fmt.Errorf("db: delete group %d: %w", groupID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return insertEvent(ctx, tx, ev)
	})
}

// GroupNamesByUser maps each user in any group to their group names, sorted.
func (d *DB) GroupNamesByUser(ctx context.Context) (map[int64][]string, error) {
	return d.groupNames(ctx, "", nil)
}

// groupNames maps users to their group names, sorted, for the users u (a users row) that
// meet the condition cond, or every user when cond is empty. Each name is a value of its
// own, so a name with a comma in it stays one name.
func (d *DB) groupNames(ctx context.Context, cond string, args []any) (map[int64][]string, error) {
	q := `SELECT m.user_id, g.name FROM group_members m JOIN groups g ON g.id = m.group_id`
	if cond != "" {
		q += ` JOIN users u ON u.id = m.user_id WHERE ` + cond
	}
	rows, err := d.query(ctx, q+` ORDER BY m.user_id, g.name`, args...)
	if err != nil {
		return nil, fmt.Errorf("db: group names: %w", err)
	}
	defer rows.Close()
	out := map[int64][]string{}
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, fmt.Errorf("db: group names: %w", err)
		}
		out[id] = append(out[id], name)
	}
	return out, rows.Err()
}

package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gatehouse/auth"
)

// ErrUsernamesCollide stops the upgrade that gives usernames their keys when existing
// accounts would become one: which of them to keep is for a person to decide.
var ErrUsernamesCollide = errors.New("db: existing usernames would become one account (they differ only in case, width or accent encoding)")

// keyUsernames is the Go step of migration 6: it fills users.username_key, re-keys the
// sign-in throttle and only then creates the unique index, so that a collision is refused
// by name instead of as a constraint failure.
func keyUsernames(ctx context.Context, tx *sql.Tx) error {
	type user struct {
		id   int64
		name string
	}
	var users []user
	err := eachRow(ctx, tx, `SELECT id, username FROM users ORDER BY id`, func(rows *sql.Rows) error {
		var u user
		err := rows.Scan(&u.id, &u.name)
		users = append(users, u)
		return err
	})
	if err != nil {
		return fmt.Errorf("db: key usernames: %w", err)
	}

	names := make([]string, len(users))
	for i, u := range users {
		names[i] = u.name
	}
	if err := usernameCollisions(names); err != nil {
		return err
	}

	for _, u := range users {
		if _, err := tx.ExecContext(ctx, `UPDATE users SET username_key = ? WHERE id = ?`, auth.UsernameKey(u.name), u.id); err != nil {
			return fmt.Errorf("db: key username %q: %w", u.name, err)
		}
	}
	if err := rekeyThrottle(ctx, tx); err != nil {
		return fmt.Errorf("db: re-key sign-in throttle: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE UNIQUE INDEX users_username_key ON users (username_key)`); err != nil {
		return fmt.Errorf("db: index username keys: %w", err)
	}
	return nil
}

// UsernameCollisions returns ErrUsernamesCollide, naming them, if existing usernames share
// a key: the upgrade to username keys would refuse them. check asks it of a database that
// serve would migrate, without changing anything.
func (d *DB) UsernameCollisions(ctx context.Context) error {
	names, err := queryList(ctx, d, scanOne[string], `SELECT username FROM users ORDER BY id`)
	if err != nil {
		return fmt.Errorf("db: usernames: %w", err)
	}
	return usernameCollisions(names)
}

// usernameCollisions names every set of names that share a key, in the order given (id
// order), so a refusal lists them the same way every time.
func usernameCollisions(names []string) error {
	namesByKey := map[string][]string{}
	var keys []string
	for _, n := range names {
		k := auth.UsernameKey(n)
		if namesByKey[k] == nil {
			keys = append(keys, k)
		}
		namesByKey[k] = append(namesByKey[k], n)
	}
	var collisions []string
	for _, k := range keys {
		if same := namesByKey[k]; len(same) > 1 {
			collisions = append(collisions, quotedList(same))
		}
	}
	if len(collisions) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s; with the previous Gatehouse version, rename or delete (gatehouse user delete NAME) all but one of each, then start this version again; nothing was changed",
		ErrUsernamesCollide, strings.Join(collisions, "; "))
}

// rekeyThrottle rewrites login_throttle under username keys. The older binary keyed it by
// strings.ToLower of what was typed, so one account may have several rows; they become one
// with the most failures, the latest failure and the latest lock, so no lock is shortened.
func rekeyThrottle(ctx context.Context, tx *sql.Tx) error {
	type entry struct {
		failures int
		last     string
		locked   sql.NullString
	}
	merged := map[string]*entry{}
	err := eachRow(ctx, tx, `SELECT username, failures, last_failure, locked_until FROM login_throttle`, func(rows *sql.Rows) error {
		var name string
		var e entry
		if err := rows.Scan(&name, &e.failures, &e.last, &e.locked); err != nil {
			return err
		}
		k := auth.UsernameKey(name)
		m, ok := merged[k]
		if !ok {
			merged[k] = &e
			return nil
		}
		m.failures = max(m.failures, e.failures)
		m.last = max(m.last, e.last) // fixed-width UTC times sort as strings
		if e.locked.Valid && (!m.locked.Valid || e.locked.String > m.locked.String) {
			m.locked = e.locked
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM login_throttle`); err != nil {
		return err
	}
	for k, e := range merged {
		if _, err := tx.ExecContext(ctx, `INSERT INTO login_throttle (username, failures, last_failure, locked_until)
			VALUES (?, ?, ?, ?)`, k, e.failures, e.last, e.locked); err != nil {
			return fmt.Errorf("%q: %w", k, err)
		}
	}
	return nil
}

// eachRow calls fn for every row of query, reading them all before the caller writes.
func eachRow(ctx context.Context, tx *sql.Tx, query string, fn func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// quotedList renders names as "a", "b" and "c".
func quotedList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

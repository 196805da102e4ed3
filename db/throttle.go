package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Backoff says how long an account stays locked after its n-th consecutive failure
// (0: not locked).
type Backoff func(failures int) time.Duration

// throttleMemory is how long a run of failures is remembered without a new one.
const throttleMemory = 24 * time.Hour

// BeginSignInAttempt counts an attempt on username before its credentials are checked and
// reports how long to wait if the account is locked. Counting first, in one transaction,
// means a burst of parallel guesses cannot all slip in before the first one is recorded; a
// success then clears the count with ClearThrottle.
func (d *DB) BeginSignInAttempt(ctx context.Context, username string, now time.Time, backoff Backoff) (failures int, wait time.Duration, err error) {
	err = d.tx(ctx, func(tx *sql.Tx) error {
		var last string
		var locked sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT failures, last_failure, locked_until FROM login_throttle WHERE username = ?`,
			username).Scan(&failures, &last, &locked)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			failures = 0
		case err != nil:
			return fmt.Errorf("db: throttle %q: %w", username, err)
		default:
			if locked.Valid {
				if until := mustTime(locked.String); now.Before(until) {
					wait = until.Sub(now)
					return nil
				}
			}
			if now.Sub(mustTime(last)) > throttleMemory {
				failures = 0
			}
		}
		failures++
		var lockedUntil any
		if lock := backoff(failures); lock > 0 {
			lockedUntil = FormatTime(now.Add(lock))
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO login_throttle (username, failures, last_failure, locked_until)
			VALUES (?, ?, ?, ?) ON CONFLICT (username) DO UPDATE SET failures = excluded.failures,
			last_failure = excluded.last_failure, locked_until = excluded.locked_until`,
			username, failures, FormatTime(now), lockedUntil)
		if err != nil {
			return fmt.Errorf("db: throttle %q: %w", username, err)
		}
		return nil
	})
	return failures, wait, err
}

// ClearThrottle forgets the failures of username (after a success, or an unlock) and
// reports whether there were any.
func (d *DB) ClearThrottle(ctx context.Context, username string, ev Event) (bool, error) {
	var had bool
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM login_throttle WHERE username = ?`, username)
		if err != nil {
			return fmt.Errorf("db: clear throttle %q: %w", username, err)
		}
		n, _ := res.RowsAffected()
		had = n > 0
		return insertEvent(ctx, tx, ev)
	})
	return had, err
}

// ThrottleOf reports the recorded failures and lock of username.
func (d *DB) ThrottleOf(ctx context.Context, username string) (failures int, lockedUntil time.Time, err error) {
	var locked sql.NullString
	err = d.queryRow(ctx, `SELECT failures, locked_until FROM login_throttle WHERE username = ?`,
		username).Scan(&failures, &locked)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("db: throttle %q: %w", username, err)
	}
	if locked.Valid {
		lockedUntil = mustTime(locked.String)
	}
	return failures, lockedUntil, nil
}

// PurgeThrottle forgets failure runs that ended before cutoff and are no longer locked.
func (d *DB) PurgeThrottle(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM login_throttle WHERE last_failure < ?
			AND (locked_until IS NULL OR locked_until < ?)`, FormatTime(now.Add(-throttleMemory)), FormatTime(now))
		if err != nil {
			return fmt.Errorf("db: purge throttle: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

// ReleaseSignInAttempt gives back the attempt counted by BeginSignInAttempt when a step
// succeeded but sign-in is not complete (the password was right, the second step is still
// to come): second-step failures then keep adding up across fresh sign-ins.
func (d *DB) ReleaseSignInAttempt(ctx context.Context, username string, backoff Backoff) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		var failures int
		err := tx.QueryRowContext(ctx, `SELECT failures FROM login_throttle WHERE username = ?`, username).Scan(&failures)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("db: release attempt %q: %w", username, err)
		}
		failures = max(failures-1, 0)
		q := `UPDATE login_throttle SET failures = ? WHERE username = ?`
		if backoff(failures) == 0 {
			q = `UPDATE login_throttle SET failures = ?, locked_until = NULL WHERE username = ?`
		}
		if _, err := tx.ExecContext(ctx, q, failures, username); err != nil {
			return fmt.Errorf("db: release attempt %q: %w", username, err)
		}
		return nil
	})
}

// LockedUsernames returns the keys (auth.UsernameKey) of the names locked at now: the
// throttle is keyed by username key, which is what every caller passes in as username.
func (d *DB) LockedUsernames(ctx context.Context, now time.Time) (map[string]bool, error) {
	rows, err := d.query(ctx, `SELECT username FROM login_throttle WHERE locked_until > ?`, FormatTime(now))
	if err != nil {
		return nil, fmt.Errorf("db: locked names: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("db: locked names: %w", err)
		}
		out[n] = true
	}
	return out, rows.Err()
}

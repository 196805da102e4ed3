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

// Attempt is one attempt on an account, counted as a failure before its credentials are
// checked. It remembers what it wrote, so a step that succeeded can give back exactly this
// attempt and nothing another request did meanwhile.
type Attempt struct {
	Username string
	Failures int           // consecutive failures, this attempt included
	Wait     time.Duration // > 0: the account is locked; the attempt was not counted
	wroteAt  string        // the last_failure this attempt stored
	prevAt   string        // the last_failure before it ("" for a new row)
	lock     string        // the locked_until it stored ("" for none)
}

// BeginSignInAttempt counts an attempt on username before its credentials are checked and
// reports how long to wait if the account is locked. Counting first, in one transaction,
// means a burst of parallel guesses cannot all slip in before the first one is recorded; a
// success then clears the count with ClearThrottle, or gives the attempt back with
// ReleaseSignInAttempt. A row written by a clock that has since stepped back (its last
// failure lies ahead of now) is treated as expired, like every stored time from the future.
func (d *DB) BeginSignInAttempt(ctx context.Context, username string, now time.Time, backoff Backoff) (Attempt, error) {
	a := Attempt{Username: username}
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var last string
		var locked sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT failures, last_failure, locked_until FROM login_throttle WHERE username = ?`,
			username).Scan(&a.Failures, &last, &locked)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			a.Failures = 0
		case err != nil:
			return fmt.Errorf("db: throttle %q: %w", username, err)
		default:
			lastAt, err := ParseTime(last)
			if err != nil {
				return fmt.Errorf("db: throttle %q: %w", username, err)
			}
			a.prevAt = last
			switch {
			case FromFuture(lastAt, now) || now.Sub(lastAt) > throttleMemory:
				a.Failures = 0
			case locked.Valid:
				until, err := ParseTime(locked.String)
				if err != nil {
					return fmt.Errorf("db: throttle %q: %w", username, err)
				}
				if now.Before(until) {
					a.Wait = until.Sub(now)
					return nil
				}
			}
		}
		a.Failures++
		a.wroteAt = FormatTime(now)
		var lockedUntil any
		if lock := backoff(a.Failures); lock > 0 {
			a.lock = FormatTime(now.Add(lock))
			lockedUntil = a.lock
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO login_throttle (username, failures, last_failure, locked_until)
			VALUES (?, ?, ?, ?) ON CONFLICT (username) DO UPDATE SET failures = excluded.failures,
			last_failure = excluded.last_failure, locked_until = excluded.locked_until`,
			username, a.Failures, a.wroteAt, lockedUntil)
		if err != nil {
			return fmt.Errorf("db: throttle %q: %w", username, err)
		}
		return nil
	})
	return a, err
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
	err = d.queryRow(ctx, `SELECT failures, locked_until FROM login_throttle WHERE username = ?`,
		username).Scan(&failures, nullTimeCol(&lockedUntil))
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("db: throttle %q: %w", username, err)
	}
	return failures, lockedUntil, nil
}

// PurgeThrottle forgets failure runs that ended before cutoff and are no longer locked.
func (d *DB) PurgeThrottle(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM login_throttle WHERE (last_failure < ?
			AND (locked_until IS NULL OR locked_until < ?)) OR last_failure > ?`,
			FormatTime(now.Add(-throttleMemory)), FormatTime(now), FormatTime(now.Add(ClockSkew)))
		if err != nil {
			return fmt.Errorf("db: purge throttle: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

// ReleaseSignInAttempt gives back an attempt counted by BeginSignInAttempt whose step
// succeeded while sign-in is not complete (the password was right and the second step is
// still to come, or a signed-in user confirmed their password): the failure count goes
// down by one, so second-step failures keep adding up across fresh sign-ins, and the lock
// this attempt armed is lifted. The lock before it had passed, or the attempt would have
// waited, so a right password never lengthens a lock; a lock armed since by another
// request stays.
func (d *DB) ReleaseSignInAttempt(ctx context.Context, a Attempt) error {
	if a.Wait > 0 || a.wroteAt == "" {
		return nil // a refused attempt was never counted
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		var failures int
		var last string
		var locked sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT failures, last_failure, locked_until FROM login_throttle WHERE username = ?`,
			a.Username).Scan(&failures, &last, &locked)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // cleared meanwhile
		}
		if err != nil {
			return fmt.Errorf("db: release attempt %q: %w", a.Username, err)
		}
		failures = max(failures-1, 0)
		if failures == 0 {
			_, err = tx.ExecContext(ctx, `DELETE FROM login_throttle WHERE username = ?`, a.Username)
		} else {
			var lockedUntil any
			if locked.Valid && locked.String != a.lock {
				lockedUntil = locked.String // armed by a later attempt
			}
			if last == a.wroteAt && a.prevAt != "" {
				last = a.prevAt
			}
			_, err = tx.ExecContext(ctx, `UPDATE login_throttle SET failures = ?, last_failure = ?, locked_until = ?
				WHERE username = ?`, failures, last, lockedUntil, a.Username)
		}
		if err != nil {
			return fmt.Errorf("db: release attempt %q: %w", a.Username, err)
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

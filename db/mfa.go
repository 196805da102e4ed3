package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Every statement here that changes a factor or recovery code names the user id it acts
// for, taken from the caller's session; none touches more than that user's rows.

// Factor is a user's active TOTP factor, its secret still sealed.
type Factor struct {
	UserID    int64
	SecretEnc []byte
	LastStep  int64
	CreatedAt time.Time
}

// FactorOf returns the user's active factor or ErrNotFound.
func (d *DB) FactorOf(ctx context.Context, userID int64) (Factor, error) {
	f := Factor{UserID: userID}
	err := d.queryRow(ctx, `SELECT secret_enc, last_step, created_at FROM mfa_factors WHERE user_id = ?`,
		userID).Scan(&f.SecretEnc, &f.LastStep, timeCol(&f.CreatedAt))
	if errors.Is(err, sql.ErrNoRows) {
		return Factor{}, ErrNotFound
	}
	if err != nil {
		return Factor{}, fmt.Errorf("db: factor of %d: %w", userID, err)
	}
	return f, nil
}

// ClaimTOTPStep records that a code of time step was accepted for userID. It is a
// compare-and-set: it succeeds only if no code of this or a later step was accepted
// before, so a code is never accepted twice, even by two racing requests.
func (d *DB) ClaimTOTPStep(ctx context.Context, userID, step int64) (bool, error) {
	var ok bool
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE mfa_factors SET last_step = ? WHERE user_id = ? AND last_step < ?`,
			step, userID, step)
		if err != nil {
			return fmt.Errorf("db: claim step for %d: %w", userID, err)
		}
		n, _ := res.RowsAffected()
		ok = n == 1
		return nil
	})
	return ok, err
}

// Pending is an enrollment started but not confirmed.
type Pending struct {
	UserID    int64
	SessionID int64
	SecretEnc []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// PendingOf returns the user's unexpired enrollment started from sessionID; one started
// while the clock ran ahead counts as expired.
func (d *DB) PendingOf(ctx context.Context, userID, sessionID int64, now time.Time) (Pending, error) {
	p := Pending{UserID: userID, SessionID: sessionID}
	err := d.queryRow(ctx, `SELECT secret_enc, created_at, expires_at FROM mfa_pending
		WHERE user_id = ? AND session_id = ? AND expires_at > ? AND created_at <= ?`,
		userID, sessionID, FormatTime(now), FormatTime(now.Add(ClockSkew))).
		Scan(&p.SecretEnc, timeCol(&p.CreatedAt), timeCol(&p.ExpiresAt))
	if errors.Is(err, sql.ErrNoRows) {
		return Pending{}, ErrNotFound
	}
	if err != nil {
		return Pending{}, fmt.Errorf("db: pending enrollment of %d: %w", userID, err)
	}
	return p, nil
}

// StartEnrollment stores a new pending secret for userID from sessionID, replacing any
// earlier pending one of that user (a factor already active stays active until confirmed).
func (d *DB) StartEnrollment(ctx context.Context, p Pending) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO mfa_pending (user_id, session_id, secret_enc, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET session_id = excluded.session_id,
			secret_enc = excluded.secret_enc, created_at = excluded.created_at, expires_at = excluded.expires_at`,
			p.UserID, p.SessionID, p.SecretEnc, FormatTime(p.CreatedAt), FormatTime(p.ExpiresAt))
		if err != nil {
			return fmt.Errorf("db: start enrollment for %d: %w", p.UserID, err)
		}
		return nil
	})
}

// ErrPendingChanged means the pending secret was replaced or expired between showing it and
// confirming it; the user must confirm the secret now shown.
var ErrPendingChanged = errors.New("db: enrollment changed or expired")

// ActivateFactor turns the user's pending secret into the active factor, with step as the
// already-used time step (so the confirming code cannot sign in again) and a fresh set of
// recovery codes. secretEnc must equal the pending row, so a confirmation made against a
// secret that another tab has since replaced fails instead of activating the wrong one.
// Other sessions of the user end, since the account's factor changed.
func (d *DB) ActivateFactor(ctx context.Context, userID, sessionID int64, secretEnc []byte, step int64, codeHashes []string, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM mfa_pending WHERE user_id = ? AND session_id = ?
			AND secret_enc = ? AND expires_at > ? AND created_at <= ?`, userID, sessionID, secretEnc, FormatTime(ev.At),
			FormatTime(ev.At.Add(ClockSkew)))
		if err != nil {
			return fmt.Errorf("db: activate factor for %d: %w", userID, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrPendingChanged
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO mfa_factors (user_id, secret_enc, last_step, created_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET secret_enc = excluded.secret_enc,
			last_step = excluded.last_step, created_at = excluded.created_at`,
			userID, secretEnc, step, FormatTime(ev.At))
		if err != nil {
			return fmt.Errorf("db: activate factor for %d: %w", userID, err)
		}
		if err := replaceRecoveryCodes(ctx, tx, userID, codeHashes); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET must_enroll_mfa = 0 WHERE id = ?`, userID); err != nil {
			return fmt.Errorf("db: activate factor for %d: %w", userID, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id != ?`, userID, sessionID); err != nil {
			return fmt.Errorf("db: end other sessions of %d: %w", userID, err)
		}
		return insertEvent(ctx, tx, ev)
	})
}

func replaceRecoveryCodes(ctx context.Context, tx *sql.Tx, userID int64, hashes []string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("db: replace recovery codes of %d: %w", userID, err)
	}
	for _, h := range hashes {
		if _, err := insertRandomID(ctx, tx, `INSERT INTO recovery_codes (id, user_id, code_hash) VALUES (?, ?, ?)`,
			userID, h); err != nil {
			return fmt.Errorf("db: replace recovery codes of %d: %w", userID, err)
		}
	}
	return nil
}

// ReplaceRecoveryCodes makes a new set for a user who has a factor of any kind; the old set
// dies.
func (d *DB) ReplaceRecoveryCodes(ctx context.Context, userID int64, hashes []string, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		var has bool
		err := tx.QueryRowContext(ctx, `SELECT `+hasSecondFactor("u.id")+` FROM users u WHERE u.id = ?`, userID).Scan(&has)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("db: recovery codes of %d: %w", userID, err)
		}
		if !has {
			return ErrNotFound
		}
		if err := replaceRecoveryCodes(ctx, tx, userID, hashes); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	})
}

// RecoveryCode is one stored (hashed) recovery code.
type RecoveryCode struct {
	ID   int64
	Hash string
}

// UnusedRecoveryCodes returns the user's codes that are still valid.
func (d *DB) UnusedRecoveryCodes(ctx context.Context, userID int64) ([]RecoveryCode, error) {
	cs, err := queryList(ctx, d, func(row rowScanner) (c RecoveryCode, err error) {
		err = row.Scan(&c.ID, &c.Hash)
		return c, err
	}, `SELECT id, code_hash FROM recovery_codes WHERE user_id = ? AND used_at IS NULL ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("db: recovery codes of %d: %w", userID, err)
	}
	return cs, nil
}

// UseRecoveryCode marks a code used; it fails (false) if the code was already used, so two
// racing requests cannot both spend it.
func (d *DB) UseRecoveryCode(ctx context.Context, userID, codeID int64, now time.Time) (bool, error) {
	var ok bool
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE recovery_codes SET used_at = ? WHERE id = ? AND user_id = ? AND used_at IS NULL`,
			FormatTime(now), codeID, userID)
		if err != nil {
			return fmt.Errorf("db: use recovery code of %d: %w", userID, err)
		}
		n, _ := res.RowsAffected()
		ok = n == 1
		return nil
	})
	return ok, err
}

// hasSecondFactor is the one definition, in SQL, of "has a second factor": an authenticator
// app (hasTOTP) or at least one passkey (passkeyCount). userID is the expression naming
// the user's id in the surrounding query. Every query that counts or picks enrolled users
// uses it; the user columns that every read of a user (the session lookup, so the rollout
// gate, included) scans are its two parts, which User.HasMFA combines the same way.
func hasSecondFactor(userID string) string {
	return `(` + hasTOTP(userID) + ` OR ` + passkeyCount(userID) + ` > 0)`
}

func hasTOTP(userID string) string {
	return `EXISTS (SELECT 1 FROM mfa_factors sf WHERE sf.user_id = ` + userID + `)`
}

func passkeyCount(userID string) string {
	return `(SELECT COUNT(*) FROM passkeys sp WHERE sp.user_id = ` + userID + `)`
}

// factorKind is one kind of second factor: the table of the factors themselves and the
// table of what is under way toward one (an enrollment or a ceremony). Adding a kind of
// factor is adding it here and to hasSecondFactor.
type factorKind struct{ held, underWay string }

var (
	appFactor     = factorKind{held: "mfa_factors", underWay: "mfa_pending"}
	passkeyFactor = factorKind{held: "passkeys", underWay: "passkey_challenges"}
	everyFactor   = []factorKind{appFactor, passkeyFactor}
)

// removeFactors is the one place that decides what removing factors deletes: the user's
// factors of the given kinds, what is under way toward them, and the recovery codes once no
// factor of any kind is left. It reports whether there was a factor of those kinds and
// whether none of any kind is left.
func removeFactors(ctx context.Context, tx *sql.Tx, userID int64, kinds ...factorKind) (hadFactor, noneLeft bool, err error) {
	for _, k := range kinds {
		res, err := tx.ExecContext(ctx, `DELETE FROM `+k.held+` WHERE user_id = ?`, userID)
		if err != nil {
			return false, false, fmt.Errorf("db: remove factor of %d: %w", userID, err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			hadFactor = true
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+k.underWay+` WHERE user_id = ?`, userID); err != nil {
			return false, false, fmt.Errorf("db: remove factor of %d: %w", userID, err)
		}
	}
	noneLeft, err = dropCodesWithoutFactor(ctx, tx, userID)
	return hadFactor, noneLeft, err
}

// dropCodesWithoutFactor deletes the user's recovery codes once no factor of any kind is
// left: they stand in for a factor and must not outlive the last one. It reports whether no
// factor is left. removeFactors ends with it, and so does removing a single passkey.
func dropCodesWithoutFactor(ctx context.Context, tx *sql.Tx, userID int64) (noneLeft bool, err error) {
	var has bool
	if err := tx.QueryRowContext(ctx, `SELECT `+hasSecondFactor("u.id")+` FROM users u WHERE u.id = ?`,
		userID).Scan(&has); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("db: factors of %d: %w", userID, err)
	}
	if has {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
		return false, fmt.Errorf("db: recovery codes of %d: %w", userID, err)
	}
	return true, nil
}

// resetFactor is an admin's or the command line's reset: the factor goes, every session of
// the user ends, and the user must enroll again at the next sign-in.
func resetFactor(ctx context.Context, tx *sql.Tx, userID int64) (hadFactor bool, err error) {
	if hadFactor, _, err = removeFactors(ctx, tx, userID, everyFactor...); err != nil {
		return false, err
	}
	for _, q := range []string{
		`DELETE FROM sessions WHERE user_id = ?`,
		`UPDATE users SET must_enroll_mfa = 1 WHERE id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, userID); err != nil {
			return false, fmt.Errorf("db: reset mfa of %d: %w", userID, err)
		}
	}
	return hadFactor, nil
}

// ResetMFA removes the user's factors of every kind (authenticator app and passkeys), what
// is in progress for them and the recovery codes, and ends the user's sessions, in one
// transaction with its audit row.
func (d *DB) ResetMFA(ctx context.Context, userID int64, ev Event) (hadFactor bool, err error) {
	err = d.tx(ctx, func(tx *sql.Tx) error {
		if hadFactor, err = resetFactor(ctx, tx, userID); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	})
	return hadFactor, err
}

// KeyCanary returns the stored canary, or ErrNotFound on a database that has none yet.
func (d *DB) KeyCanary(ctx context.Context) ([]byte, error) {
	var c []byte
	err := d.queryRow(ctx, `SELECT value FROM key_canary WHERE id = 1`).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("db: key canary: %w", err)
	}
	return c, nil
}

// SetKeyCanary stores the canary once; an existing one is kept (ErrDuplicate).
func (d *DB) SetKeyCanary(ctx context.Context, c []byte) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO key_canary (id, value) VALUES (1, ?)`, c)
		if isUniqueViolation(err) {
			return ErrDuplicate
		}
		if err != nil {
			return fmt.Errorf("db: key canary: %w", err)
		}
		return nil
	})
}

// HasSealedData reports whether anything encrypted with the key file is stored.
func (d *DB) HasSealedData(ctx context.Context) (bool, error) {
	var n int
	err := d.queryRow(ctx, `SELECT (SELECT COUNT(*) FROM mfa_factors) + (SELECT COUNT(*) FROM mfa_pending)`).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("db: sealed data: %w", err)
	}
	return n > 0, nil
}

// DisableMFA turns a user's authenticator app off at their own request: the factor and any
// pending enrollment go, the recovery codes too when no passkey is left, and every session
// but keepSessionID ends.
func (d *DB) DisableMFA(ctx context.Context, userID, keepSessionID int64, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, _, err := removeFactors(ctx, tx, userID, appFactor); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id != ?`, userID, keepSessionID); err != nil {
			return fmt.Errorf("db: disable mfa of %d: %w", userID, err)
		}
		return insertEvent(ctx, tx, ev)
	})
}

// Reseal re-encrypts one sealed value; aad is the associated data it was sealed with.
type Reseal func(sealed, aad []byte) ([]byte, error)

// ResealSecrets re-encrypts every stored TOTP secret and replaces the key canary, all in one
// transaction: after it, every secret opens with the new key, or (on any error) every
// secret still opens with the old one. It returns how many secrets it re-encrypted.
func (d *DB) ResealSecrets(ctx context.Context, reseal Reseal, aadFor func(userID int64) []byte, canary []byte, ev Event) (int, error) {
	n := 0
	err := d.tx(ctx, func(tx *sql.Tx) error {
		for _, table := range []string{"mfa_factors", "mfa_pending"} {
			rows, err := tx.QueryContext(ctx, `SELECT user_id, secret_enc FROM `+table)
			if err != nil {
				return fmt.Errorf("db: reseal %s: %w", table, err)
			}
			type row struct {
				userID int64
				enc    []byte
			}
			var all []row
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.userID, &r.enc); err != nil {
					rows.Close()
					return fmt.Errorf("db: reseal %s: %w", table, err)
				}
				all = append(all, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("db: reseal %s: %w", table, err)
			}
			for _, r := range all {
				fresh, err := reseal(r.enc, aadFor(r.userID))
				if err != nil {
					return fmt.Errorf("db: reseal secret of user %d: %w", r.userID, err)
				}
				if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET secret_enc = ? WHERE user_id = ?`, fresh, r.userID); err != nil {
					return fmt.Errorf("db: reseal %s: %w", table, err)
				}
				n++
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO key_canary (id, value) VALUES (1, ?)
			ON CONFLICT (id) DO UPDATE SET value = excluded.value`, canary); err != nil {
			return fmt.Errorf("db: replace key canary: %w", err)
		}
		ev.Detail = fmt.Sprintf("%d secrets re-encrypted", n)
		return insertEvent(ctx, tx, ev)
	})
	return n, err
}

// PurgeExpiredEnrollments forgets pending secrets that can no longer be confirmed.
func (d *DB) PurgeExpiredEnrollments(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM mfa_pending WHERE expires_at <= ? OR created_at > ?
			OR session_id NOT IN (SELECT id FROM sessions)`, FormatTime(now), FormatTime(now.Add(ClockSkew)))
		if err != nil {
			return fmt.Errorf("db: purge enrollments: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

// GroupFactorCount counts the members of a group, disabled ones too, who have a factor of
// any kind: the users a bulk reset of the group would reach.
func (d *DB) GroupFactorCount(ctx context.Context, groupID int64) (int, error) {
	var n int
	err := d.queryRow(ctx, `SELECT COUNT(*) FROM group_members m WHERE m.group_id = ? AND `+
		hasSecondFactor("m.user_id"), groupID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("db: factors in group %d: %w", groupID, err)
	}
	return n, nil
}

// BulkResetMFA resets the factors of every member of a group who has one, in one
// transaction that refuses to touch more users than expected. Each user gets their own
// audit row, so the log stays searchable by subject.
func (d *DB) BulkResetMFA(ctx context.Context, groupID int64, expected int, ev Event) (int, error) {
	n := 0
	err := d.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT u.id, u.username FROM users u JOIN group_members m ON m.user_id = u.id
			WHERE m.group_id = ? AND `+hasSecondFactor("u.id")+` ORDER BY u.id`, groupID)
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
			if _, err := resetFactor(ctx, tx, t.id); err != nil {
				return err
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

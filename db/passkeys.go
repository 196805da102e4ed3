package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"gatehouse/auth"
)

// Every statement here that changes a passkey names the user id it acts for, taken from the
// caller's session (or, for a sign-in, from the credential's own row); none touches more
// than that user's rows.

// Passkey is a registered credential with what the account pages show of it.
type Passkey struct {
	ID         int64
	UserID     int64
	Name       string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero when never
	Credential auth.PasskeyCredential
}

const passkeyColumns = `id, user_id, name, created_at, last_used_at, credential_id, public_key, sign_count, flags,
	transports, aaguid, attestation_format`

func scanPasskey(row rowScanner) (Passkey, error) {
	var p Passkey
	var count int64
	var flags int
	var transports string
	c := &p.Credential
	if err := row.Scan(&p.ID, &p.UserID, &p.Name, timeCol(&p.CreatedAt), nullTimeCol(&p.LastUsedAt), &c.ID, &c.PublicKey,
		&count, &flags, &transports, &c.AAGUID, &c.AttestationFormat); err != nil {
		return Passkey{}, err
	}
	c.SignCount, c.Flags = uint32(count), byte(flags)
	if transports != "" {
		c.Transports = strings.Split(transports, ",")
	}
	return p, nil
}

// PasskeysOf returns the user's passkeys, oldest first.
func (d *DB) PasskeysOf(ctx context.Context, userID int64) ([]Passkey, error) {
	ps, err := queryList(ctx, d, scanPasskey, `SELECT `+passkeyColumns+` FROM passkeys WHERE user_id = ?
		ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("db: passkeys of %d: %w", userID, err)
	}
	return ps, nil
}

// PasskeyByCredentialID returns the passkey a credential id names, whoever holds it, or
// ErrNotFound.
func (d *DB) PasskeyByCredentialID(ctx context.Context, credentialID []byte) (Passkey, error) {
	p, err := scanPasskey(d.queryRow(ctx, `SELECT `+passkeyColumns+` FROM passkeys WHERE credential_id = ?`, credentialID))
	if errors.Is(err, sql.ErrNoRows) {
		return Passkey{}, ErrNotFound
	}
	if err != nil {
		return Passkey{}, fmt.Errorf("db: passkey by credential: %w", err)
	}
	return p, nil
}

// passkeyHandleLen is the length of a WebAuthn user handle, the most the standard allows.
const passkeyHandleLen = 64

// PasskeyHandle returns the user's WebAuthn user handle, drawing one the first time.
func (d *DB) PasskeyHandle(ctx context.Context, userID int64) ([]byte, error) {
	var handle []byte
	err := d.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT handle FROM passkey_handles WHERE user_id = ?`, userID).Scan(&handle)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		handle = make([]byte, passkeyHandleLen)
		if _, err := rand.Read(handle); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO passkey_handles (user_id, handle) VALUES (?, ?)`, userID, handle)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: passkey handle of %d: %w", userID, err)
	}
	return handle, nil
}

// PasskeyHandleOf returns the user's WebAuthn user handle, or ErrNotFound when the user
// never began a registration.
func (d *DB) PasskeyHandleOf(ctx context.Context, userID int64) ([]byte, error) {
	var handle []byte
	err := d.queryRow(ctx, `SELECT handle FROM passkey_handles WHERE user_id = ?`, userID).Scan(&handle)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("db: passkey handle of %d: %w", userID, err)
	}
	return handle, nil
}

// What a passkey ceremony is for.
const (
	PasskeyRegister   = "register"
	PasskeySecondStep = "second_step"
	PasskeySignIn     = "sign_in"
)

// PasskeyBinding is the browser a ceremony belongs to: its session, or before sign-in the
// SHA-256 of the cookie it was given. Exactly one is set.
type PasskeyBinding struct {
	SessionID int64
	Browser   []byte
}

// PasskeyChallenge is a passkey ceremony in progress.
type PasskeyChallenge struct {
	Key       []byte // the SHA-256 of the challenge
	Purpose   string
	UserID    int64 // 0 for a sign-in that names no account yet
	Binding   PasskeyBinding
	State     []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

var (
	// ErrChallengeGone means no ceremony of this browser waits for this answer: it was
	// never begun, was begun by another browser, or was already answered.
	ErrChallengeGone = errors.New("db: no passkey ceremony of this browser waits for this answer")
	// ErrChallengeExpired means the ceremony was found but is past its time, or was begun
	// while the clock ran ahead; it is gone now too.
	ErrChallengeExpired = errors.New("db: the passkey ceremony expired")
)

// StartPasskeyChallenge stores a ceremony in progress; ceremonies past their time go at
// the same moment, so the table holds only live ones however many are begun.
func (d *DB) StartPasskeyChallenge(ctx context.Context, ch PasskeyChallenge) error {
	b := ch.Binding
	if (b.SessionID == 0) == (b.Browser == nil) {
		return errors.New("db: a passkey ceremony is bound to a session or a browser, exactly one")
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM passkey_challenges WHERE expires_at <= ?`, FormatTime(ch.CreatedAt)); err != nil {
			return fmt.Errorf("db: passkey ceremony: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO passkey_challenges (challenge_hash, purpose, user_id, session_id,
			browser_hash, state, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			ch.Key, ch.Purpose, nullID(ch.UserID), nullID(b.SessionID), b.Browser, ch.State,
			FormatTime(ch.CreatedAt), FormatTime(ch.ExpiresAt))
		if err != nil {
			return fmt.Errorf("db: passkey ceremony: %w", err)
		}
		return nil
	})
}

// TakePasskeyChallenge returns the ceremony of purpose that key names and that belongs to
// binding, and deletes it in the same transaction: it answers once, right or wrong, so a
// replayed answer finds nothing (ErrChallengeGone). One past its time, or made while the
// clock ran ahead, is deleted and ErrChallengeExpired.
func (d *DB) TakePasskeyChallenge(ctx context.Context, key []byte, purpose string, b PasskeyBinding, now time.Time) (PasskeyChallenge, error) {
	ch := PasskeyChallenge{Key: key, Purpose: purpose, Binding: b}
	if b.SessionID == 0 && b.Browser == nil {
		return PasskeyChallenge{}, ErrChallengeGone // a browser with nothing to show began nothing
	}
	where, arg := `session_id = ?`, any(b.SessionID)
	if b.SessionID == 0 {
		where, arg = `browser_hash = ?`, b.Browser
	}
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var userID sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT user_id, state, created_at, expires_at FROM passkey_challenges
			WHERE challenge_hash = ? AND purpose = ? AND `+where, key, purpose, arg).
			Scan(&userID, &ch.State, timeCol(&ch.CreatedAt), timeCol(&ch.ExpiresAt))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrChallengeGone
		}
		if err != nil {
			return fmt.Errorf("db: passkey ceremony: %w", err)
		}
		ch.UserID = userID.Int64
		if _, err := tx.ExecContext(ctx, `DELETE FROM passkey_challenges WHERE challenge_hash = ?`, key); err != nil {
			return fmt.Errorf("db: passkey ceremony: %w", err)
		}
		return nil
	})
	if err != nil {
		return PasskeyChallenge{}, err
	}
	if !now.Before(ch.ExpiresAt) || FromFuture(ch.CreatedAt, now) {
		return PasskeyChallenge{}, ErrChallengeExpired
	}
	return ch, nil
}

// PurgeExpiredPasskeyChallenges forgets ceremonies that can no longer be answered.
func (d *DB) PurgeExpiredPasskeyChallenges(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM passkey_challenges WHERE expires_at <= ? OR created_at > ?`,
			FormatTime(now), FormatTime(now.Add(ClockSkew)))
		if err != nil {
			return fmt.Errorf("db: purge passkey ceremonies: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

// NewPasskey is a verified registration to store.
type NewPasskey struct {
	UserID     int64
	Name       string
	Credential auth.PasskeyCredential
}

// AddPasskey stores a new passkey for np.UserID. A credential id already registered, to
// this account or any other, is ErrDuplicate. When the passkey is the user's first factor
// of any kind, codeHashes become their recovery codes, the mark that they must enroll goes,
// and every other session but keepSessionID ends, as turning on an authenticator app does;
// first says so.
func (d *DB) AddPasskey(ctx context.Context, np NewPasskey, codeHashes []string, keepSessionID int64, ev Event) (id int64, first bool, err error) {
	c := np.Credential
	err = d.tx(ctx, func(tx *sql.Tx) error {
		var had bool
		if err := tx.QueryRowContext(ctx, `SELECT `+hasSecondFactor("u.id")+` FROM users u WHERE u.id = ?`,
			np.UserID).Scan(&had); errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return fmt.Errorf("db: add passkey for %d: %w", np.UserID, err)
		}
		id, err = insertRandomID(ctx, tx, `INSERT INTO passkeys (id, user_id, credential_id, public_key, sign_count,
			flags, transports, aaguid, attestation_format, name, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			np.UserID, c.ID, c.PublicKey, int64(c.SignCount), int(c.Flags), strings.Join(c.Transports, ","), c.AAGUID,
			c.AttestationFormat, clean(np.Name), FormatTime(ev.At))
		if isUniqueViolation(err) {
			return ErrDuplicate
		}
		if err != nil {
			return fmt.Errorf("db: add passkey for %d: %w", np.UserID, err)
		}
		if first = !had; first {
			if err := replaceRecoveryCodes(ctx, tx, np.UserID, codeHashes); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE users SET must_enroll_mfa = 0 WHERE id = ?`, np.UserID); err != nil {
				return fmt.Errorf("db: add passkey for %d: %w", np.UserID, err)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id != ?`, np.UserID, keepSessionID); err != nil {
				return fmt.Errorf("db: end other sessions of %d: %w", np.UserID, err)
			}
			ev.Detail += "; the first factor: recovery codes issued, other sessions ended"
		}
		return insertEvent(ctx, tx, ev)
	})
	return id, first, err
}

// ErrSignCountStale means another answer moved the passkey's counter as far or further
// while this one was checked: two answers from one counter value, which a cloned key gives.
var ErrSignCountStale = errors.New("db: the passkey's sign counter moved on meanwhile")

// RecordPasskeyUse stores what a verified answer changed about userID's passkey: the sign
// counter (a compare-and-set, so of two answers with one counter value only one passes,
// while a counter that stays 0 always passes), the flags and the time of use. A passkey
// removed meanwhile is ErrNotFound.
func (d *DB) RecordPasskeyUse(ctx context.Context, userID int64, use auth.PasskeyUse, now time.Time) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		var stored int64
		err := tx.QueryRowContext(ctx, `SELECT sign_count FROM passkeys WHERE user_id = ? AND credential_id = ?`,
			userID, use.CredentialID).Scan(&stored)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("db: passkey use of %d: %w", userID, err)
		}
		count := int64(use.SignCount)
		if count <= stored && (count != 0 || stored != 0) {
			return ErrSignCountStale
		}
		_, err = tx.ExecContext(ctx, `UPDATE passkeys SET sign_count = ?, flags = ?, last_used_at = ?
			WHERE user_id = ? AND credential_id = ?`, count, int(use.Flags), FormatTime(now), userID, use.CredentialID)
		if err != nil {
			return fmt.Errorf("db: passkey use of %d: %w", userID, err)
		}
		return nil
	})
}

// ErrLastFactor refuses to remove a user's last second factor while a rule requires one.
var ErrLastFactor = errors.New("db: the last second factor cannot be removed while two-step verification is required")

// RemovePasskey deletes one of userID's passkeys (another user's id is ErrNotFound) and ends
// every session of the user but keepSessionID. When it was the last factor of any kind the
// recovery codes go too, or, with keepOne, nothing changes and the answer is ErrLastFactor.
// ev.Detail gets the passkey's name.
func (d *DB) RemovePasskey(ctx context.Context, userID, passkeyID int64, keepOne bool, keepSessionID int64, ev Event) (lastFactor bool, err error) {
	err = d.tx(ctx, func(tx *sql.Tx) error {
		var name string
		err := tx.QueryRowContext(ctx, `SELECT name FROM passkeys WHERE id = ? AND user_id = ?`, passkeyID, userID).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("db: remove passkey %d: %w", passkeyID, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM passkeys WHERE id = ? AND user_id = ?`, passkeyID, userID); err != nil {
			return fmt.Errorf("db: remove passkey %d: %w", passkeyID, err)
		}
		if lastFactor, err = dropCodesWithoutFactor(ctx, tx, userID); err != nil {
			return err
		}
		if lastFactor && keepOne {
			return ErrLastFactor
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id != ?`, userID, keepSessionID); err != nil {
			return fmt.Errorf("db: remove passkey %d: %w", passkeyID, err)
		}
		if ev.Detail != "" {
			ev.Detail += "; "
		}
		ev.Detail += "passkey " + name
		return insertEvent(ctx, tx, ev)
	})
	return lastFactor, err
}

// RenamePasskey renames one of userID's passkeys; another user's id is ErrNotFound.
func (d *DB) RenamePasskey(ctx context.Context, userID, passkeyID int64, name string, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		var old string
		err := tx.QueryRowContext(ctx, `SELECT name FROM passkeys WHERE id = ? AND user_id = ?`, passkeyID, userID).Scan(&old)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("db: rename passkey %d: %w", passkeyID, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE passkeys SET name = ? WHERE id = ? AND user_id = ?`,
			clean(name), passkeyID, userID); err != nil {
			return fmt.Errorf("db: rename passkey %d: %w", passkeyID, err)
		}
		ev.Detail = old + " → " + name
		return insertEvent(ctx, tx, ev)
	})
}

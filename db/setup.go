package db

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gatehouse/auth"
)

// ErrSetupDone means an account exists, so the first-run page is closed for good.
var ErrSetupDone = errors.New("db: setup already done")

// SetSetupToken stores the hash of a fresh one-time setup token, replacing any earlier one,
// but only while no user exists.
func (d *DB) SetSetupToken(ctx context.Context, hash []byte, now time.Time) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
			return fmt.Errorf("db: setup token: %w", err)
		}
		if n > 0 {
			return ErrSetupDone
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO setup_token (id, token_hash, created_at) VALUES (1, ?, ?)
			ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at`,
			hash, FormatTime(now))
		if err != nil {
			return fmt.Errorf("db: setup token: %w", err)
		}
		return nil
	})
}

// SetupTokenValid reports whether hash matches the live setup token.
func (d *DB) SetupTokenValid(ctx context.Context, hash []byte) (bool, error) {
	var stored []byte
	err := d.queryRow(ctx, `SELECT token_hash FROM setup_token WHERE id = 1
		AND NOT EXISTS (SELECT 1 FROM users)`).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("db: setup token: %w", err)
	}
	return subtle.ConstantTimeCompare(stored, hash) == 1, nil
}

// CompleteSetup creates the first admin and burns the token in one transaction. A wrong or
// used token, or any existing user, is ErrSetupDone: only one first admin can ever exist.
func (d *DB) CompleteSetup(ctx context.Context, tokenHash []byte, nu NewUser, ev Event) (User, error) {
	var id int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var stored []byte
		err := tx.QueryRowContext(ctx, `SELECT token_hash FROM setup_token WHERE id = 1
			AND NOT EXISTS (SELECT 1 FROM users)`).Scan(&stored)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrSetupDone
		}
		if err != nil {
			return fmt.Errorf("db: setup: %w", err)
		}
		if subtle.ConstantTimeCompare(stored, tokenHash) != 1 {
			return ErrSetupDone
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM setup_token`); err != nil {
			return fmt.Errorf("db: setup: %w", err)
		}
		if id, err = insertUser(ctx, tx, nu, ev.At); err != nil {
			return err
		}
		ev.Subject = auth.NormalizeUsername(nu.Username)
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return User{}, err
	}
	return d.UserByID(ctx, id)
}

// ClearSetupToken removes any setup token (a user was made another way).
func (d *DB) ClearSetupToken(ctx context.Context) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM setup_token`)
		return err
	})
}

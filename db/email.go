package db

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"gatehouse/auth"
)

// ErrEmailTaken refuses an address that another account has: one mailbox, one account, so
// a reset link can only ever reach the account it was asked for.
var ErrEmailTaken = errors.New("db: that address belongs to another account")

// RateLimited refuses a request over a Limit; Wait is how long until the window ends.
type RateLimited struct{ Wait time.Duration }

func (e *RateLimited) Error() string {
	return fmt.Sprintf("db: rate limited for %s", e.Wait.Round(time.Second))
}

// emailValues are the email and email_key columns of addr: both NULL for no address.
func emailValues(addr string) (email, key any) {
	if addr == "" {
		return nil, nil
	}
	return addr, auth.EmailKey(addr)
}

// emailTaken reports whether an account other than exceptUser has addr.
func emailTaken(ctx context.Context, tx *sql.Tx, addr string, exceptUser int64) bool {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE email_key = ? AND id != ?`,
		auth.EmailKey(addr), exceptUser).Scan(&n)
	return err == nil && n > 0
}

// tokenReason is the outbox reason of the mail carrying a token: its kind and a prefix of
// the token's hash, which names the link without being it.
func tokenReason(kind string, tokenHash []byte) string {
	return kind + "." + hex.EncodeToString(tokenHash[:min(len(tokenHash), 12)])
}

// SetEmail sets userID's address, or removes it when addr is "", as confirmed: the word of
// an admin or of the command line, or a user removing their own. An address that another
// account has is ErrEmailTaken.
func (d *DB) SetEmail(ctx context.Context, userID int64, addr string, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		var old string
		err := tx.QueryRowContext(ctx, `SELECT COALESCE(email, '') FROM users WHERE id = ?`, userID).Scan(&old)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("db: set email of %d: %w", userID, err)
		}
		if addr != "" && emailTaken(ctx, tx, addr, userID) {
			return ErrEmailTaken
		}
		email, key := emailValues(addr)
		_, err = tx.ExecContext(ctx, `UPDATE users SET email = ?, email_key = ?, updated_at = ? WHERE id = ?`,
			email, key, FormatTime(ev.At), userID)
		if isUniqueViolation(err) {
			return ErrEmailTaken
		}
		if err != nil {
			return fmt.Errorf("db: set email of %d: %w", userID, err)
		}
		if ev.Detail == "" {
			ev.Detail = describeChange(old, addr)
		}
		return insertEvent(ctx, tx, ev)
	})
}

func describeChange(old, new string) string {
	if old == "" {
		old = "none"
	}
	if new == "" {
		new = "none"
	}
	return old + " → " + new
}

// ResetRequest is a request for a password-reset link, as typed at /login/forgot.
type ResetRequest struct {
	UsernameKey string // auth.UsernameKey of the name typed
	Client      string // the client address, for its own limit
	TokenHash   []byte
	TTL         time.Duration
	// Mail is the message with the link; To, UserID, Reason and ExpiresAt are filled in
	// here, for the account the name belongs to.
	Mail       OutboxMail
	PerAccount Limit
	PerClient  Limit
	Event      Event
}

// RequestPasswordReset counts the request against the name and the client address and,
// when the name is an active account with an address, stores the link's token and enqueues
// its mail, all in one transaction. It does the same writes whether or not the account
// exists or has an address (the counts and the audit row), so its answer and its time say
// nothing about the account. Over a limit it is *RateLimited, for every name alike.
func (d *DB) RequestPasswordReset(ctx context.Context, r ResetRequest) (mailed bool, err error) {
	err = d.tx(ctx, func(tx *sql.Tx) error {
		now := r.Event.At
		for _, l := range []struct {
			key   string
			limit Limit
		}{{"reset-client:" + r.Client, r.PerClient}, {"reset-account:" + r.UsernameKey, r.PerAccount}} {
			wait, err := hitLimit(ctx, tx, l.key, l.limit, now)
			if err != nil {
				return err
			}
			if wait > 0 {
				return &RateLimited{Wait: wait}
			}
		}
		var userID int64
		var email string
		err := tx.QueryRowContext(ctx, `SELECT id, COALESCE(email, '') FROM users WHERE username_key = ? AND disabled = 0`,
			r.UsernameKey).Scan(&userID, &email)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("db: reset request: %w", err)
		}
		ev := r.Event
		ev.Detail = "nothing sent: no such active account, or it has no address"
		if userID != 0 && email != "" {
			expires := now.Add(r.TTL)
			if _, err := tx.ExecContext(ctx, `INSERT INTO email_tokens (token_hash, purpose, user_id, created_at, expires_at)
				VALUES (?, 'reset', ?, ?, ?)`, r.TokenHash, userID, FormatTime(now), FormatTime(expires)); err != nil {
				return fmt.Errorf("db: reset request: %w", err)
			}
			m := r.Mail
			m.Reason, m.Kind, m.UserID, m.To, m.Secret, m.ExpiresAt = tokenReason(MailReset, r.TokenHash), MailReset, userID, email, true, expires
			if _, err := insertOutbox(ctx, tx, m, now); err != nil {
				return err
			}
			ev.Detail = "link mailed"
			mailed = true
		}
		return insertEvent(ctx, tx, ev)
	})
	return mailed, err
}

// liveToken is the condition on email_tokens t that its link still works at the two
// placeholders (now, now plus ClockSkew): unexpired, and not made by a clock that ran ahead.
const liveToken = `t.expires_at > ? AND t.created_at <= ?`

// ResetTokenUser returns the active account a password-reset token is for, or ErrNotFound
// for a token that is unknown, used, expired or of a disabled account.
func (d *DB) ResetTokenUser(ctx context.Context, tokenHash []byte, now time.Time) (User, error) {
	u, err := scanUser(d.queryRow(ctx, `SELECT `+userColumns+` FROM email_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.token_hash = ? AND t.purpose = 'reset' AND u.disabled = 0 AND `+liveToken,
		tokenHash, FormatTime(now), FormatTime(now.Add(ClockSkew))))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("db: reset token: %w", err)
	}
	return u, nil
}

// ResetPassword spends a password-reset token: the password becomes passwordHash (final),
// every session of the user ends, every other reset link of theirs dies and the mails that
// carried them are scrubbed, with the audit row, in one transaction. A token that is
// unknown, used, expired or of a disabled account is ErrNotFound and changes nothing. The
// second factor is untouched: the next sign-in asks for it as always.
func (d *DB) ResetPassword(ctx context.Context, tokenHash []byte, passwordHash string, ev Event) (User, error) {
	var userID int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		now := ev.At
		err := tx.QueryRowContext(ctx, `DELETE FROM email_tokens WHERE token_hash = ? AND purpose = 'reset'
			AND expires_at > ? AND created_at <= ? AND user_id IN (SELECT id FROM users WHERE disabled = 0)
			RETURNING user_id`, tokenHash, FormatTime(now), FormatTime(now.Add(ClockSkew))).Scan(&userID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("db: reset password: %w", err)
		}
		if err := endPasswordLinks(ctx, tx, userID, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, must_change_password = 0, updated_at = ?
			WHERE id = ?`, passwordHash, FormatTime(now), userID); err != nil {
			return fmt.Errorf("db: reset password of %d: %w", userID, err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
		if err != nil {
			return fmt.Errorf("db: reset password of %d: %w", userID, err)
		}
		n, _ := res.RowsAffected()
		var username string
		if err := tx.QueryRowContext(ctx, `SELECT username FROM users WHERE id = ?`, userID).Scan(&username); err != nil {
			return fmt.Errorf("db: reset password of %d: %w", userID, err)
		}
		ev.ActorID, ev.Actor, ev.Subject = userID, username, username
		ev.Detail = fmt.Sprintf("password reset by a mailed link; %d sessions ended", n)
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return User{}, err
	}
	return d.UserByID(ctx, userID)
}

// endPasswordLinks kills every outstanding password-reset link of userID and scrubs the
// mails that carried them: once the password is set, by any path, no older link may set it
// again.
func endPasswordLinks(ctx context.Context, tx *sql.Tx, userID int64, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM email_tokens WHERE user_id = ? AND purpose = 'reset'`, userID); err != nil {
		return fmt.Errorf("db: end reset links of %d: %w", userID, err)
	}
	if err := cancelMail(ctx, tx, now, `kind = 'reset' AND user_id = ?`, userID); err != nil {
		return err
	}
	return scrubMail(ctx, tx, `kind = 'reset' AND user_id = ?`, userID)
}

// EmailChange is a user's request to use a new address, which takes effect once the link
// mailed to it is opened.
type EmailChange struct {
	UserID    int64
	Email     string
	TokenHash []byte
	TTL       time.Duration
	// Mail is the confirmation; To, Reason, ExpiresAt are filled in here.
	Mail  OutboxMail
	Limit Limit // how many confirmations one user may ask for
	Event Event
}

// RequestEmailChange stores the confirmation token of a new address and enqueues its mail,
// replacing any change still waiting (its link dies and its mail is scrubbed). The old
// address stays until the link is opened. An address another account has is ErrEmailTaken.
func (d *DB) RequestEmailChange(ctx context.Context, ch EmailChange) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		now := ch.Event.At
		if emailTaken(ctx, tx, ch.Email, ch.UserID) {
			return ErrEmailTaken
		}
		wait, err := hitLimit(ctx, tx, "confirm-user:"+strconv.FormatInt(ch.UserID, 10), ch.Limit, now)
		if err != nil {
			return err
		}
		if wait > 0 {
			return &RateLimited{Wait: wait}
		}
		if err := endConfirmLinks(ctx, tx, ch.UserID, now); err != nil {
			return err
		}
		expires := now.Add(ch.TTL)
		if _, err := tx.ExecContext(ctx, `INSERT INTO email_tokens (token_hash, purpose, user_id, email, created_at, expires_at)
			VALUES (?, 'confirm', ?, ?, ?, ?)`, ch.TokenHash, ch.UserID, ch.Email, FormatTime(now), FormatTime(expires)); err != nil {
			return fmt.Errorf("db: email change of %d: %w", ch.UserID, err)
		}
		m := ch.Mail
		m.Reason, m.Kind, m.UserID, m.To, m.Secret, m.ExpiresAt = tokenReason(MailConfirm, ch.TokenHash), MailConfirm, ch.UserID, ch.Email, true, expires
		if _, err := insertOutbox(ctx, tx, m, now); err != nil {
			return err
		}
		ev := ch.Event
		ev.Detail = "confirmation mailed to " + ch.Email
		return insertEvent(ctx, tx, ev)
	})
}

func endConfirmLinks(ctx context.Context, tx *sql.Tx, userID int64, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM email_tokens WHERE user_id = ? AND purpose = 'confirm'`, userID); err != nil {
		return fmt.Errorf("db: end confirmation links of %d: %w", userID, err)
	}
	if err := cancelMail(ctx, tx, now, `kind = 'confirm' AND user_id = ?`, userID); err != nil {
		return err
	}
	return scrubMail(ctx, tx, `kind = 'confirm' AND user_id = ?`, userID)
}

// PendingEmail is an address waiting for its confirmation link to be opened.
type PendingEmail struct {
	Email     string
	ExpiresAt time.Time
}

// PendingEmailOf returns the user's address change still waiting, or ErrNotFound.
func (d *DB) PendingEmailOf(ctx context.Context, userID int64, now time.Time) (PendingEmail, error) {
	var p PendingEmail
	err := d.queryRow(ctx, `SELECT t.email, t.expires_at FROM email_tokens t WHERE t.user_id = ? AND t.purpose = 'confirm'
		AND `+liveToken+` ORDER BY t.created_at DESC LIMIT 1`, userID, FormatTime(now), FormatTime(now.Add(ClockSkew))).
		Scan(&p.Email, timeCol(&p.ExpiresAt))
	if errors.Is(err, sql.ErrNoRows) {
		return PendingEmail{}, ErrNotFound
	}
	if err != nil {
		return PendingEmail{}, fmt.Errorf("db: pending email of %d: %w", userID, err)
	}
	return p, nil
}

// ConfirmTokenInfo returns the account and the new address a confirmation token is for, or
// ErrNotFound for a token that is unknown, used or expired.
func (d *DB) ConfirmTokenInfo(ctx context.Context, tokenHash []byte, now time.Time) (User, string, error) {
	var addr string
	row := d.queryRow(ctx, `SELECT `+userColumns+`, t.email FROM email_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.token_hash = ? AND t.purpose = 'confirm' AND `+liveToken, tokenHash, FormatTime(now), FormatTime(now.Add(ClockSkew)))
	var u User
	err := row.Scan(u.columns(&addr)...)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, "", ErrNotFound
	}
	if err != nil {
		return User{}, "", fmt.Errorf("db: confirmation token: %w", err)
	}
	return u, addr, nil
}

// ConfirmEmail spends a confirmation token: the account's address becomes the one the link
// was mailed to, and the old address, if any, is told so by the mail notify makes, in one
// transaction with the audit row. A token that is unknown, used or expired is ErrNotFound;
// an address taken meanwhile is ErrEmailTaken, and the link still works once it is free.
func (d *DB) ConfirmEmail(ctx context.Context, tokenHash []byte, notify func(username, old, new string) OutboxMail, ev Event) (User, error) {
	var userID int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		now := ev.At
		var addr string
		err := tx.QueryRowContext(ctx, `DELETE FROM email_tokens WHERE token_hash = ? AND purpose = 'confirm'
			AND expires_at > ? AND created_at <= ? RETURNING user_id, email`,
			tokenHash, FormatTime(now), FormatTime(now.Add(ClockSkew))).Scan(&userID, &addr)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("db: confirm email: %w", err)
		}
		var old, username string
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(email, ''), username FROM users WHERE id = ?`, userID).Scan(&old, &username); err != nil {
			return fmt.Errorf("db: confirm email of %d: %w", userID, err)
		}
		if emailTaken(ctx, tx, addr, userID) {
			return ErrEmailTaken
		}
		email, key := emailValues(addr)
		_, err = tx.ExecContext(ctx, `UPDATE users SET email = ?, email_key = ?, updated_at = ? WHERE id = ?`,
			email, key, FormatTime(now), userID)
		if isUniqueViolation(err) {
			return ErrEmailTaken
		}
		if err != nil {
			return fmt.Errorf("db: confirm email of %d: %w", userID, err)
		}
		if err := endConfirmLinks(ctx, tx, userID, now); err != nil {
			return err
		}
		if old != "" && auth.EmailKey(old) != auth.EmailKey(addr) && notify != nil {
			m := notify(username, old, addr)
			m.Reason, m.Kind, m.UserID, m.To = tokenReason(MailEmailChanged, tokenHash), MailEmailChanged, userID, old
			if _, err := insertOutbox(ctx, tx, m, now); err != nil {
				return err
			}
		}
		ev.ActorID, ev.Actor, ev.Subject = userID, username, username
		ev.Detail = describeChange(old, addr) + "; confirmed by the mailed link"
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return User{}, err
	}
	return d.UserByID(ctx, userID)
}

// PurgeEmailTokens forgets links that expired, or were made by a clock that ran ahead.
func (d *DB) PurgeEmailTokens(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM email_tokens WHERE expires_at <= ? OR created_at > ?`,
			FormatTime(now), FormatTime(now.Add(ClockSkew)))
		if err != nil {
			return fmt.Errorf("db: purge links: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

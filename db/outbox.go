package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Kinds of mail, as the outbox records them.
const (
	MailNotice       = "notice"        // a notice announced to its audience when it starts
	MailReminder     = "reminder"      // a must-read notice not yet acknowledged
	MailReset        = "reset"         // a password-reset link
	MailConfirm      = "confirm"       // the confirmation link of a new address
	MailEmailChanged = "email_changed" // the old address told that it was replaced
)

// Mail states: pending until a sender delivers it (sent), gives up on it (failed), finds it
// past its expiry (expired), or a later change makes it pointless (cancelled).
const (
	MailPending   = "pending"
	MailSent      = "sent"
	MailFailed    = "failed"
	MailExpired   = "expired"
	MailCancelled = "cancelled"
)

// ScrubbedBody replaces the text of a delivered or expired mail that held a single-use link,
// so a copy of the database never holds a link that still works.
const ScrubbedBody = "(This mail held a single-use link. It was removed once the mail was delivered or the link expired.)"

// OutboxMail is one mail to enqueue. Reason names why it is sent, uniquely: the same
// reason never enqueues twice, however often or from however many processes it is asked.
type OutboxMail struct {
	Reason      string
	Kind        string
	UserID      int64 // 0: none
	NoticeID    int64 // 0: none
	To          string
	Subject     string
	Text        string
	HTML        string
	Unsubscribe string // a List-Unsubscribe URL, or ""
	Secret      bool   // the body holds a live single-use link
	ExpiresAt   time.Time
}

// insertOutbox enqueues m, due at once, inside the transaction of the change that causes it;
// a mail of the same reason already there is kept and false returned.
func insertOutbox(ctx context.Context, tx *sql.Tx, m OutboxMail, now time.Time) (bool, error) {
	ts := FormatTime(now)
	res, err := tx.ExecContext(ctx, `INSERT INTO outbox (reason, kind, user_id, notice_id, to_addr, subject, text_body,
		html_body, unsubscribe, secret, next_attempt_at, expires_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (reason) DO NOTHING`,
		m.Reason, m.Kind, nullID(m.UserID), nullID(m.NoticeID), m.To, m.Subject, m.Text, m.HTML, m.Unsubscribe,
		boolInt(m.Secret), ts, nullTime(m.ExpiresAt), ts, ts)
	if err != nil {
		return false, fmt.Errorf("db: enqueue mail %s: %w", m.Reason, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// EnqueueMail writes one mail on its own, for a change that has no row of its own.
func (d *DB) EnqueueMail(ctx context.Context, m OutboxMail, now time.Time) (bool, error) {
	var added bool
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var err error
		added, err = insertOutbox(ctx, tx, m, now)
		return err
	})
	return added, err
}

// QueuedMail is a claimed outbox row, ready to send.
type QueuedMail struct {
	ID          int64
	Reason      string
	Kind        string
	To          string
	Subject     string
	Text        string
	HTML        string
	Unsubscribe string
	Attempts    int // failed attempts so far
	Claim       string
	ClaimedTill time.Time
}

// ClaimMail claims up to limit due mails for lease, each with a compare-and-set on
// claimed_until, so that of several senders on one database exactly one gets each row;
// a lease that ran out (its sender died mid-send) makes the row due again. Mails past their
// expiry are not claimed: ExpireMail ends them.
func (d *DB) ClaimMail(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]QueuedMail, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	claim := hex.EncodeToString(b[:])
	ts, until := FormatTime(now), FormatTime(now.Add(lease))
	var out []QueuedMail
	err := d.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?
			AND (claimed_until IS NULL OR claimed_until <= ? OR claimed_until > ?)
			AND (expires_at IS NULL OR expires_at > ?) ORDER BY next_attempt_at, id LIMIT ?`,
			ts, ts, FormatTime(now.Add(lease+ClockSkew)), ts, limit)
		if err != nil {
			return fmt.Errorf("db: claim mail: %w", err)
		}
		ids, err := scanIDs(rows)
		if err != nil {
			return fmt.Errorf("db: claim mail: %w", err)
		}
		for _, id := range ids {
			// The condition is the claim itself: a row someone else claimed meanwhile (on
			// a store where this read did not lock it) is left to them.
			res, err := tx.ExecContext(ctx, `UPDATE outbox SET claimed_until = ?, claim = ?, updated_at = ?
				WHERE id = ? AND state = 'pending' AND (claimed_until IS NULL OR claimed_until <= ? OR claimed_until > ?)`,
				until, claim, ts, id, ts, FormatTime(now.Add(lease+ClockSkew)))
			if err != nil {
				return fmt.Errorf("db: claim mail %d: %w", id, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue
			}
			m := QueuedMail{ID: id, Claim: claim, ClaimedTill: now.Add(lease)}
			err = tx.QueryRowContext(ctx, `SELECT reason, kind, to_addr, subject, text_body, html_body, unsubscribe, attempts
				FROM outbox WHERE id = ?`, id).Scan(&m.Reason, &m.Kind, &m.To, &m.Subject, &m.Text, &m.HTML, &m.Unsubscribe, &m.Attempts)
			if err != nil {
				return fmt.Errorf("db: claim mail %d: %w", id, err)
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func scanIDs(rows *sql.Rows) ([]int64, error) {
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// ErrClaimLost means a mail's lease ran out and another sender claimed it: what this sender
// did with it is no longer its to record.
var ErrClaimLost = errors.New("db: the claim on this mail was lost")

// MarkMailSent records that the server accepted mail id under claim, with its answer. A
// body holding a single-use link is scrubbed in the same write.
func (d *DB) MarkMailSent(ctx context.Context, id int64, claim string, now time.Time, answer string) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		ts := FormatTime(now)
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'sent', sent_at = ?, updated_at = ?, claimed_until = NULL,
			answer = ?, last_error = '',
			text_body = CASE WHEN secret = 1 THEN ? ELSE text_body END,
			html_body = CASE WHEN secret = 1 THEN ? ELSE html_body END
			WHERE id = ? AND claim = ? AND state = 'pending'`, ts, ts, clean(answer), ScrubbedBody, ScrubbedBody, id, claim)
		if err != nil {
			return fmt.Errorf("db: mark mail %d sent: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrClaimLost
		}
		return nil
	})
}

// MailFailure is one failed attempt at a mail: the server's answer (or why there was
// none), and when to try again; a zero RetryAt gives up.
type MailFailure struct {
	At      time.Time
	Answer  string
	RetryAt time.Time
}

// MarkMailFailed records a failed attempt at mail id under claim, with its audit row in the
// same transaction: the mail is due again at f.RetryAt, or given up for good (failed, and
// scrubbed if it held a link).
func (d *DB) MarkMailFailed(ctx context.Context, id int64, claim string, f MailFailure, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		ts := FormatTime(f.At)
		var res sql.Result
		var err error
		if f.RetryAt.IsZero() {
			res, err = tx.ExecContext(ctx, `UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?,
				claimed_until = NULL, updated_at = ?,
				text_body = CASE WHEN secret = 1 THEN ? ELSE text_body END,
				html_body = CASE WHEN secret = 1 THEN ? ELSE html_body END
				WHERE id = ? AND claim = ? AND state = 'pending'`, clean(f.Answer), ts, ScrubbedBody, ScrubbedBody, id, claim)
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = ?, claimed_until = NULL,
				next_attempt_at = ?, updated_at = ? WHERE id = ? AND claim = ? AND state = 'pending'`,
				clean(f.Answer), FormatTime(f.RetryAt), ts, id, claim)
		}
		if err != nil {
			return fmt.Errorf("db: mark mail %d failed: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrClaimLost
		}
		return insertEvent(ctx, tx, ev)
	})
}

// ReleaseMail gives back a claim unused (the sender stopped before trying), so the mail is
// due again at once instead of when the lease runs out.
func (d *DB) ReleaseMail(ctx context.Context, id int64, claim string) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET claimed_until = NULL WHERE id = ? AND claim = ? AND state = 'pending'`,
			id, claim); err != nil {
			return fmt.Errorf("db: release mail %d: %w", id, err)
		}
		return nil
	})
}

// ExpireMail ends every pending mail whose expiry has passed (a link that no longer works,
// a reminder whose interval is over), scrubbing the bodies that held a link, and reports
// how many it ended. A mail being sent right now (claimed) is left to its sender.
func (d *DB) ExpireMail(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		ts := FormatTime(now)
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'expired', updated_at = ?,
			text_body = CASE WHEN secret = 1 THEN ? ELSE text_body END,
			html_body = CASE WHEN secret = 1 THEN ? ELSE html_body END
			WHERE state = 'pending' AND expires_at IS NOT NULL AND expires_at <= ?
			AND (claimed_until IS NULL OR claimed_until <= ?)`, ts, ScrubbedBody, ScrubbedBody, ts, ts)
		if err != nil {
			return fmt.Errorf("db: expire mail: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

// cancelMail ends the pending mails a condition names, scrubbing any link; a mail mid-send
// goes out, since nothing can stop it.
func cancelMail(ctx context.Context, tx *sql.Tx, now time.Time, cond string, args ...any) error {
	ts := FormatTime(now)
	_, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'cancelled', updated_at = ?,
		text_body = CASE WHEN secret = 1 THEN ? ELSE text_body END,
		html_body = CASE WHEN secret = 1 THEN ? ELSE html_body END
		WHERE state = 'pending' AND (claimed_until IS NULL OR claimed_until <= ?) AND `+cond,
		append([]any{ts, ScrubbedBody, ScrubbedBody, ts}, args...)...)
	if err != nil {
		return fmt.Errorf("db: cancel mail: %w", err)
	}
	return nil
}

// scrubMail replaces the bodies of the mails a condition names, whatever their state: their
// link died, so no copy should keep it.
func scrubMail(ctx context.Context, tx *sql.Tx, cond string, args ...any) error {
	_, err := tx.ExecContext(ctx, `UPDATE outbox SET text_body = ?, html_body = ? WHERE secret = 1 AND `+cond,
		append([]any{ScrubbedBody, ScrubbedBody}, args...)...)
	if err != nil {
		return fmt.Errorf("db: scrub mail: %w", err)
	}
	return nil
}

// PurgeMail forgets mails that were sent, given up, expired or cancelled before cutoff.
// Reasons that must never come back (a notice announced, a reminder of a past interval) are
// kept elsewhere or belong to a time that has passed, so forgetting the row sends nothing.
func (d *DB) PurgeMail(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE state != 'pending' AND updated_at < ?`, FormatTime(cutoff))
		if err != nil {
			return fmt.Errorf("db: purge mail: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

// OutboxRow is a mail as the outbox holds it, for tests and the health panel.
type OutboxRow struct {
	ID        int64
	Reason    string
	Kind      string
	UserID    int64
	NoticeID  int64
	To        string
	Subject   string
	Text      string
	HTML      string
	State     string
	Attempts  int
	LastError string
	Answer    string
	NextAt    time.Time
	ExpiresAt time.Time
}

// OutboxMails lists the outbox, oldest first, narrowed to one state unless state is "".
func (d *DB) OutboxMails(ctx context.Context, state string) ([]OutboxRow, error) {
	rs, err := queryList(ctx, d, func(row rowScanner) (r OutboxRow, err error) {
		err = row.Scan(&r.ID, &r.Reason, &r.Kind, &r.UserID, &r.NoticeID, &r.To, &r.Subject, &r.Text, &r.HTML, &r.State,
			&r.Attempts, &r.LastError, &r.Answer, timeCol(&r.NextAt), nullTimeCol(&r.ExpiresAt))
		return r, err
	}, `SELECT id, reason, kind, COALESCE(user_id, 0), COALESCE(notice_id, 0), to_addr, subject, text_body, html_body,
		state, attempts, last_error, answer, next_attempt_at, expires_at FROM outbox
		WHERE (? = '' OR state = ?) ORDER BY id`, state, state)
	if err != nil {
		return nil, fmt.Errorf("db: outbox: %w", err)
	}
	return rs, nil
}

// MailCounts counts the outbox by state, for metrics.
func (d *DB) MailCounts(ctx context.Context) (map[string]int, error) {
	rows, err := d.query(ctx, `SELECT state, COUNT(*) FROM outbox GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("db: mail counts: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("db: mail counts: %w", err)
		}
		out[s] = n
	}
	return out, rows.Err()
}

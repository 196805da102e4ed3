package db

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"
)

// liveNotice is the condition on notice n that it shows as a banner at the two
// placeholders (now, now): not archived, started and not ended.
const liveNotice = `n.archived_at IS NULL AND n.ends_at > ? AND n.starts_at <= ?`

// noticesWith returns the live notices at now that also meet cond, with their audiences.
func (d *DB) noticesWith(ctx context.Context, now time.Time, cond string) ([]Notice, error) {
	ts := FormatTime(now)
	ns, err := queryList(ctx, d, func(row rowScanner) (Notice, error) { return scanNotice(row) },
		`SELECT `+noticeColumns+` FROM notices n WHERE `+liveNotice+` AND `+cond+` ORDER BY n.id`, ts, ts)
	if err != nil {
		return nil, err
	}
	for i := range ns {
		if ns[i].Audience, err = d.audienceOf(ctx, ns[i].ID); err != nil {
			return nil, err
		}
	}
	return ns, nil
}

// NoticesToAnnounce returns the notices to be mailed to their audience at now: marked to be
// mailed, started, not ended or archived, and not mailed yet.
func (d *DB) NoticesToAnnounce(ctx context.Context, now time.Time) ([]Notice, error) {
	ns, err := d.noticesWith(ctx, now, `n.email = 1 AND n.mailed_at IS NULL`)
	if err != nil {
		return nil, fmt.Errorf("db: notices to announce: %w", err)
	}
	return ns, nil
}

// readersToMail is the SELECT of one mail per active reader with an address in the stored
// audience of notice n (the join condition supplies n), with cond narrowing the readers.
// Its placeholders: the reason prefix, subject, text, html, unsubscribe, next attempt,
// expiry, created, updated, then those of cond.
func readersToMail(kind, cond string) string {
	return `SELECT ? || CAST(u.id AS TEXT), '` + kind + `', u.id, n.id, u.email, ?, ?, ?, ?, 0, ?, ?, ?, ?
		FROM notices n JOIN users u ON u.disabled = 0 AND u.email IS NOT NULL
		WHERE ` + inNoticeAudience("u.role", "u.id") + ` AND ` + cond
}

const outboxInsert = `INSERT INTO outbox (reason, kind, user_id, notice_id, to_addr, subject, text_body, html_body,
	unsubscribe, secret, next_attempt_at, expires_at, created_at, updated_at) `

// AnnounceNotice enqueues the mail m to every active reader of notice n with an address,
// and marks n mailed, in one transaction, so that a crash before the commit mails nobody
// and a crash after it loses no one. It does nothing (0) when n was mailed meanwhile or has
// changed since it was read (its revision), since m was written from what was read.
func (d *DB) AnnounceNotice(ctx context.Context, n Notice, m OutboxMail, now time.Time) (int, error) {
	var count int
	err := d.tx(ctx, func(tx *sql.Tx) error {
		ts := FormatTime(now)
		res, err := tx.ExecContext(ctx, `UPDATE notices SET mailed_at = ? WHERE id = ? AND revision = ? AND email = 1
			AND mailed_at IS NULL AND `+liveNoticeUnaliased, ts, n.ID, n.Revision, ts, ts)
		if err != nil {
			return fmt.Errorf("db: announce notice %d: %w", n.ID, err)
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return nil
		}
		prefix := MailNotice + "." + strconv.FormatInt(n.ID, 10) + ".user."
		res, err = tx.ExecContext(ctx, outboxInsert+readersToMail(MailNotice, `n.id = ?`)+` ON CONFLICT (reason) DO NOTHING`,
			prefix, m.Subject, m.Text, m.HTML, m.Unsubscribe, ts, nullTime(n.EndsAt), ts, ts, n.ID)
		if err != nil {
			return fmt.Errorf("db: announce notice %d: %w", n.ID, err)
		}
		k, _ := res.RowsAffected()
		count = int(k)
		return nil
	})
	return count, err
}

// liveNoticeUnaliased is liveNotice for a statement on notices without the n alias.
const liveNoticeUnaliased = `archived_at IS NULL AND ends_at > ? AND starts_at <= ?`

// NoticesToRemind returns the current must-read notices that remind their readers.
func (d *DB) NoticesToRemind(ctx context.Context, now time.Time) ([]Notice, error) {
	ns, err := d.noticesWith(ctx, now, `n.kind = 'must_read' AND n.remind != 'none'`)
	if err != nil {
		return nil, fmt.Errorf("db: notices to remind: %w", err)
	}
	return ns, nil
}

// ReminderRound is which interval of a reminding notice now falls in: 0 is the first
// interval after its start (no reminder yet), 1 the next, and so on; Ends is when that
// interval is over and the next reminder is due.
func ReminderRound(n Notice, now time.Time) (round int, ends time.Time) {
	every := RemindInterval(n.Remind)
	if every <= 0 || now.Before(n.StartsAt) {
		return 0, time.Time{}
	}
	round = int(now.Sub(n.StartsAt) / every)
	return round, n.StartsAt.Add(time.Duration(round+1) * every)
}

// EnqueueReminders enqueues the reminder m of round (ReminderRound, 1 or more) of notice n
// to every active reader with an address in its audience who has not acknowledged it now
// (acknowledgedNow), at most once per reader and round whoever asks; each expires with the
// round, so a reminder that could not go out in its interval gives way to the next one. It
// reports how many it added.
func (d *DB) EnqueueReminders(ctx context.Context, n Notice, round int, m OutboxMail, now time.Time) (int, error) {
	if round < 1 {
		return 0, nil
	}
	_, ends := ReminderRound(n, now)
	if !n.EndsAt.IsZero() && n.EndsAt.Before(ends) {
		ends = n.EndsAt
	}
	var count int
	err := d.tx(ctx, func(tx *sql.Tx) error {
		ts := FormatTime(now)
		prefix := MailReminder + "." + strconv.FormatInt(n.ID, 10) + ".round." + strconv.Itoa(round) + ".user."
		res, err := tx.ExecContext(ctx, outboxInsert+readersToMail(MailReminder, `n.id = ? AND n.kind = 'must_read'
			AND n.remind = ? AND `+liveNotice+` AND NOT EXISTS (SELECT 1 FROM notice_acks k
			WHERE k.notice_id = n.id AND k.user_id = u.id AND `+acknowledgedNow+`)`)+` ON CONFLICT (reason) DO NOTHING`,
			prefix, m.Subject, m.Text, m.HTML, m.Unsubscribe, ts, FormatTime(ends), ts, ts, n.ID, n.Remind, ts, ts, ts)
		if err != nil {
			return fmt.Errorf("db: reminders of notice %d: %w", n.ID, err)
		}
		k, _ := res.RowsAffected()
		count = int(k)
		return nil
	})
	return count, err
}

package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Notice kinds and severities.
const (
	NoticeNormal   = "normal"
	NoticeMustRead = "must_read"

	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"

	RemindNone   = "none"
	RemindDaily  = "daily"
	RemindWeekly = "weekly"
)

// RemindInterval is the time between two reminders of a notice that reminds at r, or 0.
func RemindInterval(r string) time.Duration {
	switch r {
	case RemindDaily:
		return 24 * time.Hour
	case RemindWeekly:
		return 7 * 24 * time.Hour
	}
	return 0
}

var (
	// ErrNotDismissable refuses dismissing a must-read notice: it can only be acknowledged.
	ErrNotDismissable = errors.New("db: a must-read notice cannot be dismissed")
)

// Notice is a message to an audience, shown as a banner while current.
type Notice struct {
	ID         int64
	AuthorID   int64
	AuthorName string
	Title      string
	Body       string
	Kind       string
	Severity   string
	StartsAt   time.Time
	EndsAt     time.Time // zero: no end
	Version    int
	Revision   int
	ArchivedAt time.Time // zero: not archived
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Audience   Audience
	Email      bool          // mailed to its audience when it starts
	Remind     string        // RemindNone, RemindDaily or RemindWeekly; must-read only
	DueAt      time.Time     // zero: none; afterwards readers who have not acknowledged are overdue
	RenewEvery time.Duration // 0: an acknowledgement stands for good
	MailedAt   time.Time     // when its start was mailed; zero: not yet
}

// MustRead reports whether readers must acknowledge the notice.
func (n Notice) MustRead() bool { return n.Kind == NoticeMustRead }

// Current reports whether the notice shows as a banner at now.
func (n Notice) Current(now time.Time) bool {
	return n.ArchivedAt.IsZero() && !now.Before(n.StartsAt) && (n.EndsAt.IsZero() || now.Before(n.EndsAt))
}

// Overdue reports whether a reader who has not acknowledged the notice is late at now.
func (n Notice) Overdue(now time.Time) bool {
	return n.MustRead() && !n.DueAt.IsZero() && !now.Before(n.DueAt)
}

// ackExpiry is when an acknowledgement given at at stops counting: renew_every after it,
// or never.
func (n Notice) ackExpiry(at time.Time) string {
	if n.RenewEvery <= 0 {
		return noEnd
	}
	return FormatTime(at.Add(n.RenewEvery))
}

// acknowledgedNow is the one rule for "reader k has acknowledged notice n now", where the
// placeholder is now: an acknowledgement of the notice's current version that has not
// expired under renew_every. Banners, receipts, must-read counts and reminders all ask it.
const acknowledgedNow = `k.version = n.version AND k.expires_at > ?`

// State names where the notice is in its life at now: "archived", "scheduled" (not
// started), "ended", or "showing".
func (n Notice) State(now time.Time) string {
	switch {
	case !n.ArchivedAt.IsZero():
		return "archived"
	case now.Before(n.StartsAt):
		return "scheduled"
	case !n.EndsAt.IsZero() && !now.Before(n.EndsAt):
		return "ended"
	}
	return "showing"
}

// ManagedBy reports whether u may edit or archive the notice and see its receipts: its
// author, or an admin.
func (n Notice) ManagedBy(u User) bool {
	return u.IsAdmin() || (n.AuthorID != 0 && n.AuthorID == u.ID)
}

// NoticeInput is what an author writes.
type NoticeInput struct {
	Title    string
	Body     string
	Kind     string
	Severity string
	StartsAt time.Time // zero: now
	EndsAt   time.Time
	Audience Audience
	Email    bool          // also mail it to its audience when it starts
	Remind   string        // RemindNone (or ""), RemindDaily or RemindWeekly; must-read only
	DueAt    time.Time     // zero: none
	Renew    time.Duration // RenewEvery; 0: none
}

func remindValue(r string) string {
	if r == "" {
		return RemindNone
	}
	return r
}

// noEnd is how a notice without an end time is stored.
const noEnd = "9999-12-31T23:59:59.999Z"

func endValue(t time.Time) string {
	if t.IsZero() {
		return noEnd
	}
	return FormatTime(t)
}

const noticeColumns = `n.id, COALESCE(n.author_id, 0), n.author_name, n.title, n.body, n.kind, n.severity,
	n.starts_at, n.ends_at, n.version, n.revision, n.archived_at, n.created_at, n.updated_at,
	n.email, n.remind, n.due_at, n.renew_every, n.mailed_at`

func scanNotice(s rowScanner, extra ...any) (Notice, error) {
	var n Notice
	var renew int64
	dest := append([]any{&n.ID, &n.AuthorID, &n.AuthorName, &n.Title, &n.Body, &n.Kind, &n.Severity,
		timeCol(&n.StartsAt), endCol(&n.EndsAt), &n.Version, &n.Revision, nullTimeCol(&n.ArchivedAt),
		timeCol(&n.CreatedAt), timeCol(&n.UpdatedAt), &n.Email, &n.Remind, nullTimeCol(&n.DueAt), &renew,
		nullTimeCol(&n.MailedAt)}, extra...)
	if err := s.Scan(dest...); err != nil {
		return Notice{}, err
	}
	n.RenewEvery = time.Duration(renew) * time.Second
	return n, nil
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return FormatTime(t)
}

func writeAudience(ctx context.Context, tx *sql.Tx, noticeID int64, a Audience) error {
	return writeStoredAudience(ctx, tx, noticeAudience, noticeID, a)
}

func writeRevision(ctx context.Context, tx *sql.Tx, n Notice, editor User, minor bool, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO notice_revisions (notice_id, revision, version, title, body, kind,
		severity, editor_id, editor_name, minor, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		n.ID, n.Revision, n.Version, n.Title, n.Body, n.Kind, n.Severity, editor.ID, editor.Username, boolInt(minor), FormatTime(at))
	if err != nil {
		return fmt.Errorf("db: revision of notice %d: %w", n.ID, err)
	}
	return nil
}

// CreateNotice publishes a notice, with its audience, first revision and audit row, in
// one transaction.
func (d *DB) CreateNotice(ctx context.Context, in NoticeInput, author User, ev Event) (Notice, error) {
	if in.StartsAt.IsZero() {
		in.StartsAt = ev.At
	}
	n := Notice{AuthorID: author.ID, AuthorName: author.Username, Title: in.Title, Body: in.Body,
		Kind: in.Kind, Severity: in.Severity, StartsAt: in.StartsAt, EndsAt: in.EndsAt, Version: 1, Revision: 1,
		CreatedAt: ev.At, UpdatedAt: ev.At, Audience: in.Audience, Email: in.Email, Remind: remindValue(in.Remind),
		DueAt: in.DueAt, RenewEvery: in.Renew}
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if n.ID, err = insertNotice(ctx, tx, n); err != nil {
			return err
		}
		if err := writeRevision(ctx, tx, n, author, false, ev.At); err != nil {
			return err
		}
		ev.Subject = fmt.Sprintf("notice %d", n.ID)
		if ev.Detail == "" {
			ev.Detail = in.Kind + ", " + in.Severity + ": " + in.Title
		}
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return Notice{}, err
	}
	return n, nil
}

// insertNotice stores n as it is, with its audience, and returns its id.
func insertNotice(ctx context.Context, tx *sql.Tx, n Notice) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO notices (author_id, author_name, title, body, kind, severity,
		starts_at, ends_at, version, revision, archived_at, created_at, updated_at, email, remind, due_at, renew_every,
		mailed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		n.AuthorID, n.AuthorName, n.Title, n.Body, n.Kind, n.Severity, FormatTime(n.StartsAt), endValue(n.EndsAt),
		n.Version, n.Revision, nullTime(n.ArchivedAt), FormatTime(n.CreatedAt), FormatTime(n.UpdatedAt),
		boolInt(n.Email), remindValue(n.Remind), nullTime(n.DueAt), int64(n.RenewEvery/time.Second), nullTime(n.MailedAt)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("db: create notice: %w", err)
	}
	return id, writeAudience(ctx, tx, id, n.Audience)
}

// UpdateNotice edits a notice. A must-read notice whose text changes asks its readers
// again (version goes up) unless the edit is minor; so does turning a normal notice into a
// must-read one. Every edit keeps the earlier text as a revision.
func (d *DB) UpdateNotice(ctx context.Context, id int64, in NoticeInput, editor User, minor bool, ev Event) (Notice, error) {
	var n Notice
	err := d.tx(ctx, func(tx *sql.Tx) error {
		old, err := scanNotice(tx.QueryRowContext(ctx, `SELECT `+noticeColumns+` FROM notices n WHERE n.id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("db: notice %d: %w", id, err)
		}
		if in.StartsAt.IsZero() {
			in.StartsAt = old.StartsAt
		}
		n = old
		textChanged := old.Title != in.Title || old.Body != in.Body
		asksAgain := in.Kind == NoticeMustRead && ((textChanged && !minor) || old.Kind != NoticeMustRead)
		if asksAgain {
			n.Version++
		}
		n.Revision++
		n.Title, n.Body, n.Kind, n.Severity, n.StartsAt, n.EndsAt = in.Title, in.Body, in.Kind, in.Severity, in.StartsAt, in.EndsAt
		n.UpdatedAt, n.Audience = ev.At, in.Audience
		n.Email, n.Remind, n.DueAt, n.RenewEvery = in.Email, remindValue(in.Remind), in.DueAt, in.Renew
		_, err = tx.ExecContext(ctx, `UPDATE notices SET title = ?, body = ?, kind = ?, severity = ?, starts_at = ?,
			ends_at = ?, version = ?, revision = ?, updated_at = ?, email = ?, remind = ?, due_at = ?, renew_every = ?
			WHERE id = ?`,
			n.Title, n.Body, n.Kind, n.Severity, FormatTime(n.StartsAt), endValue(n.EndsAt), n.Version, n.Revision,
			FormatTime(ev.At), boolInt(n.Email), n.Remind, nullTime(n.DueAt), int64(n.RenewEvery/time.Second), id)
		if err != nil {
			return fmt.Errorf("db: update notice %d: %w", id, err)
		}
		if n.RenewEvery != old.RenewEvery {
			if err := reexpireAcks(ctx, tx, n); err != nil {
				return err
			}
		}
		if err := boundNoticeMail(ctx, tx, n, ev.At); err != nil {
			return err
		}
		if err := writeAudience(ctx, tx, id, in.Audience); err != nil {
			return err
		}
		if err := writeRevision(ctx, tx, n, editor, minor, ev.At); err != nil {
			return err
		}
		ev.Subject = fmt.Sprintf("notice %d", id)
		ev.Detail = fmt.Sprintf("revision %d", n.Revision)
		if asksAgain {
			ev.Detail += fmt.Sprintf("; readers asked again (version %d)", n.Version)
		} else if minor {
			ev.Detail += "; minor edit"
		}
		return insertEvent(ctx, tx, ev)
	})
	return n, err
}

// ArchiveNotice takes a notice off every page; its audience can still read it at /notices.
func (d *DB) ArchiveNotice(ctx context.Context, id int64, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE notices SET archived_at = ?, updated_at = ? WHERE id = ? AND archived_at IS NULL`,
			FormatTime(ev.At), FormatTime(ev.At), id)
		if err != nil {
			return fmt.Errorf("db: archive notice %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		// Archived, the notice is off every page: nothing waiting to go out about it should.
		if err := cancelMail(ctx, tx, ev.At, `notice_id = ?`, id); err != nil {
			return err
		}
		ev.Subject = fmt.Sprintf("notice %d", id)
		return insertEvent(ctx, tx, ev)
	})
}

// reexpireAcks sets when each acknowledgement of n stops counting, after its renew_every
// changed: each is then as old as it is under the new interval.
func reexpireAcks(ctx context.Context, tx *sql.Tx, n Notice) error {
	type ack struct {
		userID  int64
		version int
		at      time.Time
	}
	rows, err := tx.QueryContext(ctx, `SELECT user_id, version, acknowledged_at FROM notice_acks WHERE notice_id = ?`, n.ID)
	if err != nil {
		return fmt.Errorf("db: acknowledgements of notice %d: %w", n.ID, err)
	}
	var acks []ack
	for rows.Next() {
		var a ack
		if err := rows.Scan(&a.userID, &a.version, timeCol(&a.at)); err != nil {
			rows.Close()
			return fmt.Errorf("db: acknowledgements of notice %d: %w", n.ID, err)
		}
		acks = append(acks, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("db: acknowledgements of notice %d: %w", n.ID, err)
	}
	for _, a := range acks {
		if _, err := tx.ExecContext(ctx, `UPDATE notice_acks SET expires_at = ? WHERE notice_id = ? AND user_id = ? AND version = ?`,
			n.ackExpiry(a.at), n.ID, a.userID, a.version); err != nil {
			return fmt.Errorf("db: acknowledgements of notice %d: %w", n.ID, err)
		}
	}
	return nil
}

// boundNoticeMail keeps the mails still waiting about n from going out after it ends.
func boundNoticeMail(ctx context.Context, tx *sql.Tx, n Notice, now time.Time) error {
	if n.EndsAt.IsZero() {
		return nil
	}
	end := FormatTime(n.EndsAt)
	_, err := tx.ExecContext(ctx, `UPDATE outbox SET expires_at = ?, updated_at = ? WHERE notice_id = ? AND state = 'pending'
		AND (expires_at IS NULL OR expires_at > ?)`, end, FormatTime(now), n.ID, end)
	if err != nil {
		return fmt.Errorf("db: mail of notice %d: %w", n.ID, err)
	}
	return nil
}

func (d *DB) audienceOf(ctx context.Context, id int64) (Audience, error) {
	return d.storedAudience(ctx, noticeAudience, id)
}

// NoticeAudience returns the audience stored for notice id.
func (d *DB) NoticeAudience(ctx context.Context, id int64) (Audience, error) {
	return d.audienceOf(ctx, id)
}

// NoticeByID returns a notice with its audience, for its author and admins.
func (d *DB) NoticeByID(ctx context.Context, id int64) (Notice, error) {
	n, err := scanNotice(d.queryRow(ctx, `SELECT `+noticeColumns+` FROM notices n WHERE n.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Notice{}, ErrNotFound
	}
	if err != nil {
		return Notice{}, fmt.Errorf("db: notice %d: %w", id, err)
	}
	if n.Audience, err = d.audienceOf(ctx, id); err != nil {
		return Notice{}, err
	}
	return n, nil
}

// NoticeRow is a notice in the admin list, with its acknowledgement progress.
type NoticeRow struct {
	Notice
	Acknowledged int
}

// ListNotices returns notices newest first, with how many acknowledged each at now;
// authorID 0 means everyone's.
func (d *DB) ListNotices(ctx context.Context, authorID int64, limit int, now time.Time) ([]NoticeRow, error) {
	if limit <= 0 || limit > 1000 {
		limit = 200
	}
	ns, err := queryList(ctx, d, func(row rowScanner) (r NoticeRow, err error) {
		r.Notice, err = scanNotice(row, &r.Acknowledged)
		return r, err
	}, `SELECT `+noticeColumns+`,
		(SELECT COUNT(*) FROM notice_acks k WHERE k.notice_id = n.id AND `+acknowledgedNow+`)
		FROM notices n WHERE (? = 0 OR n.author_id = ?) ORDER BY n.created_at DESC, n.id DESC LIMIT ?`,
		FormatTime(now), authorID, authorID, limit)
	if err != nil {
		return nil, fmt.Errorf("db: list notices: %w", err)
	}
	return ns, nil
}

// LiveNotices returns every notice that is not archived and has not ended at now (current
// and scheduled), with its audience: the few notices that can be banners, which the HTTP
// layer keeps in memory so a page view does not search the whole history.
func (d *DB) LiveNotices(ctx context.Context, now time.Time) ([]Notice, error) {
	rows, err := d.query(ctx, `SELECT `+noticeColumns+` FROM notices n
		WHERE n.archived_at IS NULL AND n.ends_at > ? ORDER BY n.id`, FormatTime(now))
	if err != nil {
		return nil, fmt.Errorf("db: live notices: %w", err)
	}
	var ns []Notice
	index := map[int64]int{}
	for rows.Next() {
		n, err := scanNotice(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("db: live notices: %w", err)
		}
		index[n.ID] = len(ns)
		ns = append(ns, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("db: live notices: %w", err)
	}
	aud, err := d.query(ctx, `SELECT a.notice_id, a.everyone, COALESCE(a.role, ''), COALESCE(a.group_id, 0)
		FROM notice_audience a JOIN notices n ON n.id = a.notice_id
		WHERE n.archived_at IS NULL AND n.ends_at > ?`, FormatTime(now))
	if err != nil {
		return nil, fmt.Errorf("db: live notices: %w", err)
	}
	defer aud.Close()
	for aud.Next() {
		var id, group int64
		var everyone bool
		var role string
		if err := aud.Scan(&id, &everyone, &role, &group); err != nil {
			return nil, fmt.Errorf("db: live notices: %w", err)
		}
		i, ok := index[id]
		if !ok {
			continue // ended or archived between the two reads
		}
		ns[i].Audience.add(everyone, role, group)
	}
	return ns, aud.Err()
}

// ReaderState says, for one user and some notices, which they have acknowledged now and
// which they dismissed.
type ReaderState struct {
	Acked     map[int64]bool // acknowledged now, by the one rule (acknowledgedNow)
	Dismissed map[int64]bool
	// Until is when the first of those acknowledgements expires (zero: none does), so the
	// state read at now holds, as far as time goes, until then.
	Until time.Time
}

// MustReadNow reports whether n is a must-read notice the reader has still to acknowledge
// now: a version they have not acknowledged, or an acknowledgement that renewal expired.
// It is the one answer for the banner and for apps that want must-read notices read first.
func (st ReaderState) MustReadNow(n Notice) bool { return n.MustRead() && !st.Acked[n.ID] }

// ReaderStateOf reads a user's acknowledgements at now and dismissals of the given notices.
func (d *DB) ReaderStateOf(ctx context.Context, userID int64, ids []int64, now time.Time) (ReaderState, error) {
	st := ReaderState{Acked: map[int64]bool{}, Dismissed: map[int64]bool{}}
	if len(ids) == 0 {
		return st, nil
	}
	var idArgs []any
	for _, id := range ids {
		idArgs = append(idArgs, id)
	}
	args := append(append([]any{userID}, idArgs...), FormatTime(now), userID)
	args = append(args, idArgs...)
	in := placeholders(len(ids))
	rows, err := d.query(ctx, `SELECT k.notice_id, 0, k.expires_at FROM notice_acks k JOIN notices n ON n.id = k.notice_id
		WHERE k.user_id = ? AND k.notice_id IN (`+in+`) AND `+acknowledgedNow+`
		UNION ALL SELECT notice_id, 1, '' FROM notice_dismissals WHERE user_id = ? AND notice_id IN (`+in+`)`, args...)
	if err != nil {
		return ReaderState{}, fmt.Errorf("db: reader state of %d: %w", userID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var dismissed bool
		var expires string
		if err := rows.Scan(&id, &dismissed, &expires); err != nil {
			return ReaderState{}, fmt.Errorf("db: reader state of %d: %w", userID, err)
		}
		if dismissed {
			st.Dismissed[id] = true
			continue
		}
		st.Acked[id] = true
		until, err := ParseTime(expires)
		if err != nil {
			return ReaderState{}, fmt.Errorf("db: reader state of %d: acknowledgement expiry: %w", userID, err)
		}
		if st.Until.IsZero() || until.Before(st.Until) {
			st.Until = until
		}
	}
	return st, rows.Err()
}

// NoticeState is a notice as one reader sees it.
type NoticeState struct {
	Notice
	AckedAt     time.Time // acknowledgement that counts now; zero if none
	AckedBefore bool      // acknowledged an earlier version, or one that has since expired
	DismissedAt time.Time
}

// readerColumns take, in order: the reader's id and now (acknowledgedNow), the id and now
// again, and the id.
const readerColumns = `, (SELECT k.acknowledged_at FROM notice_acks k WHERE k.notice_id = n.id
		AND k.user_id = ? AND ` + acknowledgedNow + `) AS acknowledged_at,
	EXISTS (SELECT 1 FROM notice_acks k WHERE k.notice_id = n.id AND k.user_id = ? AND NOT (` + acknowledgedNow + `)),
	(SELECT x.dismissed_at FROM notice_dismissals x WHERE x.user_id = ? AND x.notice_id = n.id) AS dismissed_at`

func scanNoticeState(s rowScanner) (NoticeState, error) {
	var st NoticeState
	n, err := scanNotice(s, nullTimeCol(&st.AckedAt), &st.AckedBefore, nullTimeCol(&st.DismissedAt))
	if err != nil {
		return NoticeState{}, err
	}
	st.Notice = n
	return st, nil
}

// NoticesFor lists every notice that has started for u's audience, current and past.
func (d *DB) NoticesFor(ctx context.Context, u User, now time.Time) ([]NoticeState, error) {
	ns, err := queryList(ctx, d, scanNoticeState, `SELECT `+noticeColumns+readerColumns+` FROM notices n
		WHERE n.starts_at <= ? AND `+inNoticeAudience("?", "?")+` ORDER BY n.starts_at DESC, n.id DESC LIMIT 500`,
		u.ID, FormatTime(now), u.ID, FormatTime(now), u.ID, FormatTime(now), u.Role, u.ID)
	if err != nil {
		return nil, fmt.Errorf("db: notices for %d: %w", u.ID, err)
	}
	return ns, nil
}

// NoticeFor returns one notice as u sees it; a notice outside u's audience, or not yet
// started, is ErrNotFound exactly like one that does not exist.
func (d *DB) NoticeFor(ctx context.Context, id int64, u User, now time.Time) (NoticeState, error) {
	st, err := scanNoticeState(d.queryRow(ctx, `SELECT `+noticeColumns+readerColumns+` FROM notices n
		WHERE n.id = ? AND n.starts_at <= ? AND `+inNoticeAudience("?", "?"),
		u.ID, FormatTime(now), u.ID, FormatTime(now), u.ID, id, FormatTime(now), u.Role, u.ID))
	if errors.Is(err, sql.ErrNoRows) {
		return NoticeState{}, ErrNotFound
	}
	if err != nil {
		return NoticeState{}, fmt.Errorf("db: notice %d for %d: %w", id, u.ID, err)
	}
	return st, nil
}

// currentFor checks inside a transaction that notice id is current and in u's audience.
func currentFor(ctx context.Context, tx *sql.Tx, id int64, u User, now time.Time) (Notice, error) {
	ts := FormatTime(now)
	n, err := scanNotice(tx.QueryRowContext(ctx, `SELECT `+noticeColumns+` FROM notices n WHERE n.id = ?
		AND n.archived_at IS NULL AND n.ends_at > ? AND n.starts_at <= ? AND `+inNoticeAudience("?", "?"),
		id, ts, ts, u.Role, u.ID))
	if errors.Is(err, sql.ErrNoRows) {
		return Notice{}, ErrNotFound
	}
	if err != nil {
		return Notice{}, fmt.Errorf("db: notice %d: %w", id, err)
	}
	return n, nil
}

// AckNotice records that u has read the current version of a current notice, and drops the
// reminders still waiting to tell them to. Doing it twice is harmless: an acknowledgement
// that counts stands; one that expired (renew_every) is renewed.
func (d *DB) AckNotice(ctx context.Context, id int64, u User, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		n, err := currentFor(ctx, tx, id, u, ev.At)
		if err != nil {
			return err
		}
		added, err := insertAck(ctx, tx, n, u.ID, ev.At)
		if err != nil || !added {
			return err
		}
		if err := cancelMail(ctx, tx, ev.At, `kind = 'reminder' AND notice_id = ? AND user_id = ?`, id, u.ID); err != nil {
			return err
		}
		ev.Subject = fmt.Sprintf("notice %d", id)
		ev.Detail = fmt.Sprintf("version %d", n.Version)
		return insertEvent(ctx, tx, ev)
	})
}

// DismissNotice hides a current normal notice from u's banners on every device.
func (d *DB) DismissNotice(ctx context.Context, id int64, u User, now time.Time) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		n, err := currentFor(ctx, tx, id, u, now)
		if err != nil {
			return err
		}
		if n.MustRead() {
			return ErrNotDismissable
		}
		_, err = insertDismissal(ctx, tx, id, u.ID, now)
		return err
	})
}

// insertAck records that userID read the current version of notice n at at; one there
// already that still counts is kept (false), one that expired is renewed from at.
func insertAck(ctx context.Context, tx *sql.Tx, n Notice, userID int64, at time.Time) (bool, error) {
	ts := FormatTime(at)
	res, err := tx.ExecContext(ctx, `INSERT INTO notice_acks (notice_id, user_id, version, acknowledged_at, expires_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (notice_id, user_id, version) DO UPDATE
		SET acknowledged_at = excluded.acknowledged_at, expires_at = excluded.expires_at
		WHERE notice_acks.expires_at <= ?`, n.ID, userID, n.Version, ts, n.ackExpiry(at), ts)
	if err != nil {
		return false, fmt.Errorf("db: acknowledge notice %d: %w", n.ID, err)
	}
	added, _ := res.RowsAffected()
	return added > 0, nil
}

// insertDismissal records that userID dismissed notice id at at; one there already is kept
// (false).
func insertDismissal(ctx context.Context, tx *sql.Tx, id, userID int64, at time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO notice_dismissals (notice_id, user_id, dismissed_at)
		VALUES (?, ?, ?) ON CONFLICT (user_id, notice_id) DO NOTHING`, id, userID, FormatTime(at))
	if err != nil {
		return false, fmt.Errorf("db: dismiss notice %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// AudienceSize counts the active users an audience reaches.
func (d *DB) AudienceSize(ctx context.Context, a Audience) (int, error) {
	r, err := d.AudienceReach(ctx, a)
	return r.Users, err
}

// Reach is how many active users an audience reaches, and how many of them have no address,
// so mail cannot reach them.
type Reach struct {
	Users     int
	NoAddress int
}

// AudienceReach counts the active users an audience reaches, and those of them without an
// address, in one read.
func (d *DB) AudienceReach(ctx context.Context, a Audience) (Reach, error) {
	cond, args := inAudience(a)
	var r Reach
	if err := d.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN u.email IS NULL THEN 1 ELSE 0 END), 0)
		FROM users u WHERE u.disabled = 0 AND `+cond, args...).Scan(&r.Users, &r.NoAddress); err != nil {
		return Reach{}, fmt.Errorf("db: audience size: %w", err)
	}
	return r, nil
}

// Receipt is one audience member's state for a notice.
type Receipt struct {
	User         User
	Groups       []string // the user's group names, sorted
	AckedAt      time.Time
	AckedVersion int
	DismissedAt  time.Time
	Overdue      bool // not acknowledged, and the notice's due date has passed
}

// NoticeReceipts lists the notice's audience (active users) with who has acknowledged it at
// now, by the one rule (acknowledgedNow), and when, by username.
func (d *DB) NoticeReceipts(ctx context.Context, n Notice, now time.Time) ([]Receipt, error) {
	cond, args := inAudience(n.Audience)
	cond = `u.disabled = 0 AND ` + cond
	groups, err := d.groupNames(ctx, cond, args)
	if err != nil {
		return nil, fmt.Errorf("db: receipts of notice %d: %w", n.ID, err)
	}
	rs, err := queryList(ctx, d, func(row rowScanner) (Receipt, error) {
		var r Receipt
		if err := row.Scan(r.User.columns(nullTimeCol(&r.AckedAt), nullTimeCol(&r.DismissedAt))...); err != nil {
			return Receipt{}, err
		}
		r.User.PasswordHash = ""
		r.Groups = groups[r.User.ID]
		if !r.AckedAt.IsZero() {
			r.AckedVersion = n.Version
		} else {
			r.Overdue = n.Overdue(now)
		}
		return r, nil
	}, `SELECT `+userColumns+`,
		(SELECT k.acknowledged_at FROM notice_acks k JOIN notices n ON n.id = k.notice_id
			WHERE k.notice_id = ? AND k.user_id = u.id AND `+acknowledgedNow+`) AS acknowledged_at,
		(SELECT x.dismissed_at FROM notice_dismissals x WHERE x.notice_id = ? AND x.user_id = u.id) AS dismissed_at
		FROM users u WHERE `+cond+` ORDER BY u.username`, append([]any{n.ID, FormatTime(now), n.ID}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("db: receipts of notice %d: %w", n.ID, err)
	}
	return rs, nil
}

// NoticeProgress counts the active users the notice's audience reaches and how many of
// them acknowledged its current version: the figures of its receipts page, in one read.
func (d *DB) NoticeProgress(ctx context.Context, n Notice) (acked, readers int, err error) {
	cond, args := inAudience(n.Audience)
	err = d.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM notice_acks k
		WHERE k.notice_id = ? AND k.user_id = u.id AND k.version = ?) THEN 1 ELSE 0 END), 0)
		FROM users u WHERE u.disabled = 0 AND `+cond, append([]any{n.ID, n.Version}, args...)...).Scan(&readers, &acked)
	if err != nil {
		return 0, 0, fmt.Errorf("db: progress of notice %d: %w", n.ID, err)
	}
	return acked, readers, nil
}

// MustReadOutstanding counts, over every active user, the current must-read notices in
// their audience that they have not acknowledged now (acknowledgedNow).
func (d *DB) MustReadOutstanding(ctx context.Context, now time.Time) (int, error) {
	ts := FormatTime(now)
	var n int
	err := d.queryRow(ctx, `SELECT COUNT(*) FROM notices n JOIN users u ON u.disabled = 0
		WHERE n.kind = 'must_read' AND n.archived_at IS NULL AND n.ends_at > ? AND n.starts_at <= ?
		AND `+inNoticeAudience("u.role", "u.id")+`
		AND NOT EXISTS (SELECT 1 FROM notice_acks k WHERE k.notice_id = n.id AND k.user_id = u.id AND `+acknowledgedNow+`)`,
		ts, ts, ts).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("db: outstanding must-reads: %w", err)
	}
	return n, nil
}

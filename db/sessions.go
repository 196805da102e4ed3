package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gatehouse/auth"
)

// Session stages: a partial session after the password step, and a full one.
const (
	StageMFA  = "mfa"
	StageFull = "full"
)

// Session is one sign-in. The token itself is never stored, only its SHA-256.
type Session struct {
	ID         int64
	UserID     int64
	Stage      string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ClientAddr string
	UserAgent  string
	// CookieScope is the scope its cookie was issued under: "" for the portal's host only,
	// else the cookie's Domain. A session presented under another scope than the current
	// one is a cookie from before a configuration change.
	CookieScope string
}

// sessionColumns are the columns that Session.columns scans, of a sessions row s.
const sessionColumns = `s.id, s.user_id, s.stage, s.created_at, s.last_seen_at, s.client_addr, s.user_agent, s.cookie_scope`

// columns are the scan destinations of sessionColumns.
func (s *Session) columns() []any {
	return []any{&s.ID, &s.UserID, &s.Stage, timeCol(&s.CreatedAt), timeCol(&s.LastSeenAt), &s.ClientAddr, &s.UserAgent,
		&s.CookieScope}
}

// NewSession is what starting a session records.
type NewSession struct {
	TokenHash  []byte
	UserID     int64
	Stage      string
	ClientAddr string
	UserAgent  string
	// CookieScope is the scope of the cookie the session is about to be set in; see
	// Session.CookieScope.
	CookieScope string
}

func insertSession(ctx context.Context, tx *sql.Tx, ns NewSession, now time.Time) (Session, error) {
	ts := FormatTime(now)
	id, err := insertRandomID(ctx, tx, `INSERT INTO sessions (id, token_hash, user_id, stage, created_at,
		last_seen_at, client_addr, user_agent, cookie_scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ns.TokenHash, ns.UserID, ns.Stage, ts, ts, clean(ns.ClientAddr), clean(ns.UserAgent), ns.CookieScope)
	if err != nil {
		return Session{}, fmt.Errorf("db: create session for %d: %w", ns.UserID, err)
	}
	return Session{ID: id, UserID: ns.UserID, Stage: ns.Stage, CreatedAt: now, LastSeenAt: now,
		ClientAddr: ns.ClientAddr, UserAgent: ns.UserAgent, CookieScope: ns.CookieScope}, nil
}

// StartSession records a new session and, in the same transaction, the sign-in event and
// the user's last sign-in time when the session is full.
func (d *DB) StartSession(ctx context.Context, ns NewSession, ev Event) (Session, error) {
	var s Session
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if s, err = insertSession(ctx, tx, ns, ev.At); err != nil {
			return err
		}
		if ns.Stage == StageFull {
			if _, err := tx.ExecContext(ctx, `UPDATE users SET last_login_at = ? WHERE id = ?`,
				FormatTime(ev.At), ns.UserID); err != nil {
				return fmt.Errorf("db: record sign-in of %d: %w", ns.UserID, err)
			}
		}
		return insertEvent(ctx, tx, ev)
	})
	return s, err
}

// PromoteSession replaces a partial session with a new full one under a new token, so the
// token that was known before the second step is dead after it.
func (d *DB) PromoteSession(ctx context.Context, oldID int64, ns NewSession, ev Event) (Session, error) {
	var s Session
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id = ? AND user_id = ?`, oldID, ns.UserID)
		if err != nil {
			return fmt.Errorf("db: end partial session %d: %w", oldID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound // revoked meanwhile: the second step must start over
		}
		ns.Stage = StageFull
		if s, err = insertSession(ctx, tx, ns, ev.At); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET last_login_at = ? WHERE id = ?`,
			FormatTime(ev.At), ns.UserID); err != nil {
			return fmt.Errorf("db: record sign-in of %d: %w", ns.UserID, err)
		}
		return insertEvent(ctx, tx, ev)
	})
	return s, err
}

// sessionWithUser reads a session with everything a page needs about who is asking: the
// session, the user, their groups (for notice audiences) and whether any MFA rule could
// apply to them. Callers add the condition on s.
var sessionWithUser = bothDialects(func(dl *dialect) string {
	return `SELECT ` + sessionColumns + `, ` + userColumns + `,
		COALESCE((SELECT ` + dl.commaList("m.group_id") + ` FROM group_members m WHERE m.user_id = u.id), ''),
		EXISTS (SELECT 1 FROM mfa_rules r WHERE r.role = u.role
			OR r.group_id IN (SELECT m.group_id FROM group_members m WHERE m.user_id = u.id))
		FROM sessions s JOIN users u ON u.id = s.user_id WHERE `
})

func scanSessionWithUser(row rowScanner) (Session, User, error) {
	var s Session
	var u User
	var groups string
	err := row.Scan(append(s.columns(), u.columns(&groups, &u.MFARuleScoped)...)...)
	if err != nil {
		return Session{}, User{}, err
	}
	// Group ids are integers, so the list's commas cannot be part of one; anything that is
	// not an id is corrupt data, and fails the read like any other.
	for g := range strings.SplitSeq(groups, ",") {
		if g == "" {
			continue
		}
		id, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return Session{}, User{}, fmt.Errorf("db: group ids of user %d: %w", u.ID, err)
		}
		u.GroupIDs = append(u.GroupIDs, id)
	}
	return s, u, nil
}

// SessionByTokenHash returns the session and its user in one read.
func (d *DB) SessionByTokenHash(ctx context.Context, hash []byte) (Session, User, error) {
	s, u, err := scanSessionWithUser(d.queryRow(ctx, sessionWithUser[d.dl.id]+`s.token_hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, User{}, ErrNotFound
	}
	if err != nil {
		return Session{}, User{}, fmt.Errorf("db: session lookup: %w", err)
	}
	return s, u, nil
}

// SessionWithUser is a session and the user it belongs to.
type SessionWithUser struct {
	Session Session
	User    User
}

// sessionLookupBatch is how many hashes one read of SessionsByTokenHashes looks up. The
// statement has a fixed number of slots (unused ones hold NULL, which matches nothing), so
// it is prepared once, and a request sending many cookies costs one read per batch.
const sessionLookupBatch = 128

// SessionsByTokenHashes returns the sessions, with their users, whose token hash is among
// hashes, in no particular order; hashes of no session are skipped. It serves a request
// that sent several session cookies.
func (d *DB) SessionsByTokenHashes(ctx context.Context, hashes [][]byte) ([]SessionWithUser, error) {
	query := sessionWithUser[d.dl.id] + `s.token_hash IN (` + placeholders(sessionLookupBatch) + `)`
	var out []SessionWithUser
	for batch := range slices.Chunk(hashes, sessionLookupBatch) {
		args := make([]any, sessionLookupBatch)
		for i, h := range batch {
			args[i] = h
		}
		rows, err := d.query(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("db: session lookup: %w", err)
		}
		for rows.Next() {
			s, u, err := scanSessionWithUser(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("db: session lookup: %w", err)
			}
			out = append(out, SessionWithUser{Session: s, User: u})
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("db: session lookup: %w", err)
		}
	}
	return out, nil
}

// TouchSession records activity. Callers throttle it so page views are not writes.
func (d *DB) TouchSession(ctx context.Context, id int64, now time.Time) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET last_seen_at = ? WHERE id = ?`, FormatTime(now), id); err != nil {
			return fmt.Errorf("db: touch session %d: %w", id, err)
		}
		return nil
	})
}

// ListSessions returns one user's sessions, newest first.
func (d *DB) ListSessions(ctx context.Context, userID int64) ([]Session, error) {
	ss, err := queryList(ctx, d, func(row rowScanner) (s Session, err error) {
		err = row.Scan(s.columns()...)
		return s, err
	}, `SELECT `+sessionColumns+` FROM sessions s WHERE s.user_id = ? ORDER BY s.created_at DESC, s.id DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("db: list sessions of %d: %w", userID, err)
	}
	return ss, nil
}

// CountSessions returns how many sessions exist.
func (d *DB) CountSessions(ctx context.Context) (int, error) {
	var n int
	if err := d.queryRow(ctx, `SELECT COUNT(*) FROM sessions`).Scan(&n); err != nil {
		return 0, fmt.Errorf("db: count sessions: %w", err)
	}
	return n, nil
}

// EndSession deletes one session (logout, expiry). Deleting a missing row is not an error.
func (d *DB) EndSession(ctx context.Context, id int64) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id); err != nil {
			return fmt.Errorf("db: end session %d: %w", id, err)
		}
		return nil
	})
}

// EndSessionAudited deletes one session with an audit row (server-side expiry).
func (d *DB) EndSessionAudited(ctx context.Context, id int64, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("db: end session %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // another request ended it first
		}
		return insertEvent(ctx, tx, ev)
	})
}

// RevokeUserSession ends a session only if it belongs to userID; anyone else's id is
// ErrNotFound, so ids never let one user act on another's session.
func (d *DB) RevokeUserSession(ctx context.Context, userID, sessionID int64, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id = ? AND user_id = ?`, sessionID, userID)
		if err != nil {
			return fmt.Errorf("db: revoke session %d: %w", sessionID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return insertEvent(ctx, tx, ev)
	})
}

// RevokeSessions ends every session of userID except keepID (0 keeps none) and touches no
// other table but the audit log.
func (d *DB) RevokeSessions(ctx context.Context, userID, keepID int64, ev Event) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id != ?`, userID, keepID)
		if err != nil {
			return fmt.Errorf("db: revoke sessions of %d: %w", userID, err)
		}
		n, _ = res.RowsAffected()
		if ev.Detail == "" {
			ev.Detail = fmt.Sprintf("%d sessions ended", n)
		}
		return insertEvent(ctx, tx, ev)
	})
	return n, err
}

// RevokeAllSessions signs everyone out. It deletes session rows and nothing else: accounts,
// passwords, factors and recovery codes stay exactly as they were.
func (d *DB) RevokeAllSessions(ctx context.Context, ev Event) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions`)
		if err != nil {
			return fmt.Errorf("db: revoke all sessions: %w", err)
		}
		n, _ = res.RowsAffected()
		if ev.Detail == "" {
			ev.Detail = fmt.Sprintf("%d sessions ended", n)
		}
		return insertEvent(ctx, tx, ev)
	})
	return n, err
}

// SessionLimits are the server-side lifetimes of a session.
type SessionLimits struct {
	Idle    time.Duration // without activity
	Max     time.Duration // since sign-in, whatever the activity
	Partial time.Duration // a password step whose second step never came
}

// PurgeExpiredSessions deletes every session past one of its limits at now, and every
// session whose times lie in the future: those were written by a clock that has since
// stepped back, and would otherwise outlive their limits for as long as it lags.
func (d *DB) PurgeExpiredSessions(ctx context.Context, now time.Time, l SessionLimits) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		future := FormatTime(now.Add(ClockSkew))
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?
			OR (stage = 'mfa' AND created_at < ?) OR created_at > ? OR last_seen_at > ?`,
			FormatTime(now.Add(-l.Idle)), FormatTime(now.Add(-l.Max)), FormatTime(now.Add(-l.Partial)), future, future)
		if err != nil {
			return fmt.Errorf("db: purge sessions: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

// AccountCounts returns, in one read, how many sessions a user has and how many of their
// recovery codes are unused: what the dashboard shows.
func (d *DB) AccountCounts(ctx context.Context, userID int64) (sessions, recoveryLeft int, err error) {
	err = d.queryRow(ctx, `SELECT (SELECT COUNT(*) FROM sessions WHERE user_id = ?1),
		(SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL)`, userID).Scan(&sessions, &recoveryLeft)
	if err != nil {
		return 0, 0, fmt.Errorf("db: account counts of %d: %w", userID, err)
	}
	return sessions, recoveryLeft, nil
}

// SessionStats summarises live sessions for the admin sessions page.
type SessionStats struct {
	Total   int
	Users   int
	Partial int
}

// SessionCounts counts sessions.
func (d *DB) SessionCounts(ctx context.Context) (SessionStats, error) {
	var s SessionStats
	err := d.queryRow(ctx, `SELECT COUNT(*), COUNT(DISTINCT user_id),
		COALESCE(SUM(CASE WHEN stage = 'mfa' THEN 1 ELSE 0 END), 0) FROM sessions`).Scan(&s.Total, &s.Users, &s.Partial)
	if err != nil {
		return SessionStats{}, fmt.Errorf("db: session counts: %w", err)
	}
	return s, nil
}

// RevokeAllSessionsExcept signs everyone out but keepID, in one transaction that refuses
// to delete more than expected rows.
func (d *DB) RevokeAllSessionsExcept(ctx context.Context, keepID int64, expected int, ev Event) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var count int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE id != ?`, keepID).Scan(&count); err != nil {
			return fmt.Errorf("db: revoke all: %w", err)
		}
		if count > expected {
			return ErrCountChanged
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id != ?`, keepID)
		if err != nil {
			return fmt.Errorf("db: revoke all: %w", err)
		}
		n, _ = res.RowsAffected()
		ev.Detail = fmt.Sprintf("%d sessions ended; accounts, passwords and MFA untouched", n)
		return insertEvent(ctx, tx, ev)
	})
	return n, err
}

// SessionFilter narrows RecentSessions; zero fields match everything.
type SessionFilter struct {
	User  string // part of a username, matched by key (any case, width or accent encoding)
	Addr  string // the start of a client address
	Limit int
}

// RecentSessions lists sessions across users, most recently seen first, with their users:
// what an admin helping someone looks through.
func (d *DB) RecentSessions(ctx context.Context, f SessionFilter) ([]SessionWithUser, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 200
	}
	var conds []string
	var args []any
	if f.User != "" {
		conds = append(conds, `u.username_key LIKE ? ESCAPE '\'`)
		args = append(args, "%"+escapeLike(auth.UsernameKey(f.User))+"%")
	}
	if f.Addr != "" {
		conds = append(conds, `lower(s.client_addr) LIKE lower(?) ESCAPE '\'`)
		args = append(args, escapeLike(f.Addr)+"%")
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	rows, err := queryList(ctx, d, func(row rowScanner) (SessionWithUser, error) {
		var s SessionWithUser
		err := row.Scan(append(s.Session.columns(), s.User.columns()...)...)
		s.User.PasswordHash = ""
		return s, err
	}, `SELECT `+sessionColumns+`, `+userColumns+`
		FROM sessions s JOIN users u ON u.id = s.user_id`+where+` ORDER BY s.last_seen_at DESC, s.id DESC LIMIT ?`,
		append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("db: recent sessions: %w", err)
	}
	return rows, nil
}

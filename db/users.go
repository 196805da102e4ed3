package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gatehouse/auth"
)

// Roles, from least to most privileged.
const (
	RoleStaff     = "staff"
	RolePublisher = "publisher"
	RoleAdmin     = "admin"
)

// Roles lists every role in display order.
var Roles = []string{RoleStaff, RolePublisher, RoleAdmin}

// ValidRole reports whether r is one of Roles.
func ValidRole(r string) bool {
	for _, x := range Roles {
		if x == r {
			return true
		}
	}
	return false
}

// User is an account. PasswordHash is never rendered.
type User struct {
	ID                 int64
	Username           string
	DisplayName        string
	Role               string
	PasswordHash       string
	MustChangePassword bool
	Disabled           bool
	CreatedAt          time.Time
	LastLoginAt        time.Time // zero when never
	HasTOTP            bool      // an authenticator app is enrolled
	Passkeys           int       // how many passkeys are registered
	MustEnrollMFA      bool      // the factor was reset: enroll again before anything else
	Email              string    // "" when none; shown only to the user, admins and (Remote-Email) apps they open
	// Set only by SessionByTokenHash, which loads them with the session for the request:
	GroupIDs      []int64 // the groups the user is in
	MFARuleScoped bool    // some MFA rule names the user's role or one of their groups
}

// HasMFA reports whether u has a second factor of any kind: the same rule as the SQL of
// hasSecondFactor, which every count of enrolled users uses.
func (u User) HasMFA() bool { return u.HasTOTP || u.Passkeys > 0 }

// Factor kinds, as the command line and the pages name them.
const (
	FactorTOTP    = "totp"
	FactorPasskey = "passkey"
)

// FactorKinds lists the kinds of second factor u has, in a fixed order; none is an empty
// list, not nil.
func (u User) FactorKinds() []string {
	kinds := []string{}
	if u.HasTOTP {
		kinds = append(kinds, FactorTOTP)
	}
	if u.Passkeys > 0 {
		kinds = append(kinds, FactorPasskey)
	}
	return kinds
}

// IsAdmin reports whether u may manage accounts, groups, policy and every notice.
func (u User) IsAdmin() bool { return u.Role == RoleAdmin }

// CanPublish reports whether u may post notices: publishers and admins.
func (u User) CanPublish() bool { return u.Role == RoleAdmin || u.Role == RolePublisher }

// Name is what the interface calls the user.
func (u User) Name() string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.Username
}

// NewUser holds what creating an account needs.
type NewUser struct {
	Username           string
	DisplayName        string
	Role               string
	PasswordHash       string
	MustChangePassword bool
	Email              string // optional; as auth.CheckEmail returns it, and confirmed
}

var userColumns = `u.id, u.username, u.display_name, u.role, u.password_hash, u.must_change_password,
	u.disabled, u.created_at, u.last_login_at, ` + hasTOTP("u.id") + `, ` + passkeyCount("u.id") + `, u.must_enroll_mfa,
	COALESCE(u.email, '')`

// columns are the scan destinations of userColumns, for reads that add columns after them.
func (u *User) columns(extra ...any) []any {
	return append([]any{&u.ID, &u.Username, &u.DisplayName, &u.Role, &u.PasswordHash, &u.MustChangePassword,
		&u.Disabled, timeCol(&u.CreatedAt), nullTimeCol(&u.LastLoginAt), &u.HasTOTP, &u.Passkeys,
		&u.MustEnrollMFA, &u.Email}, extra...)
}

func scanUser(s rowScanner) (User, error) {
	var u User
	if err := s.Scan(u.columns()...); err != nil {
		return User{}, err
	}
	return u, nil
}

// CreateUser adds an account under the normalised form of nu.Username; a username whose
// key (auth.UsernameKey) is taken, in whatever case, width or accent encoding, is ErrDuplicate.
func (d *DB) CreateUser(ctx context.Context, nu NewUser, ev Event) (User, error) {
	var id int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if id, err = insertUser(ctx, tx, nu, ev.At); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return User{}, err
	}
	return d.UserByID(ctx, id)
}

func insertUser(ctx context.Context, tx *sql.Tx, nu NewUser, now time.Time) (int64, error) {
	if !ValidRole(nu.Role) {
		return 0, fmt.Errorf("db: create user %q: unknown role %q", nu.Username, nu.Role)
	}
	ts := FormatTime(now)
	name := auth.NormalizeUsername(nu.Username)
	email, emailKey := emailValues(nu.Email)
	// Asked first, inside the write transaction, so that both stores give the same answer
	// when the name and the address are both taken.
	if emailKey != nil && emailTaken(ctx, tx, nu.Email, 0) {
		return 0, ErrEmailTaken
	}
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO users (username, username_key, display_name, role, password_hash,
		must_change_password, email, email_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		name, auth.UsernameKey(name), nu.DisplayName, nu.Role, nu.PasswordHash, boolInt(nu.MustChangePassword),
		email, emailKey, ts, ts).Scan(&id)
	if isUniqueViolation(err) {
		return 0, ErrDuplicate
	}
	if err != nil {
		return 0, fmt.Errorf("db: create user %q: %w", nu.Username, err)
	}
	return id, nil
}

// UserByID returns one user or ErrNotFound.
func (d *DB) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(d.queryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("db: user %d: %w", id, err)
	}
	return u, nil
}

// UserByUsername looks a user up by key, so any case, width or accent encoding of the
// name finds the account.
func (d *DB) UserByUsername(ctx context.Context, username string) (User, error) {
	u, err := scanUser(d.queryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.username_key = ?`,
		auth.UsernameKey(username)))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("db: user %q: %w", username, err)
	}
	return u, nil
}

// ListUsers returns every user ordered by username.
func (d *DB) ListUsers(ctx context.Context) ([]User, error) {
	us, err := queryList(ctx, d, scanUser, `SELECT `+userColumns+` FROM users u ORDER BY u.username`)
	if err != nil {
		return nil, fmt.Errorf("db: list users: %w", err)
	}
	return us, nil
}

// CountUsers returns how many accounts exist.
func (d *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := d.queryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("db: count users: %w", err)
	}
	return n, nil
}

// SetDisabled disables or enables a user. Disabling also ends every session of the user in
// the same transaction, so a disabled account holds no live session for even a moment.
func (d *DB) SetDisabled(ctx context.Context, userID int64, disabled bool, ev Event) (sessionsEnded int64, err error) {
	err = d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?`,
			boolInt(disabled), FormatTime(ev.At), userID)
		if err != nil {
			return fmt.Errorf("db: set disabled %d: %w", userID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if disabled {
			res, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
			if err != nil {
				return fmt.Errorf("db: end sessions of %d: %w", userID, err)
			}
			sessionsEnded, _ = res.RowsAffected()
		}
		return insertEvent(ctx, tx, ev)
	})
	return sessionsEnded, err
}

// SetPassword stores a new password hash. When keepSessionID is non-zero every other session
// of the user ends (a password change signs other devices out); keepSessionID < 0 ends all.
// Every password-reset link of the user dies with the old password.
func (d *DB) SetPassword(ctx context.Context, userID int64, hash string, mustChange bool, keepSessionID int64, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, must_change_password = ?, updated_at = ?
			WHERE id = ?`, hash, boolInt(mustChange), FormatTime(ev.At), userID)
		if err != nil {
			return fmt.Errorf("db: set password %d: %w", userID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if err := endPasswordLinks(ctx, tx, userID, ev.At); err != nil {
			return err
		}
		if keepSessionID != 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id != ?`, userID, keepSessionID); err != nil {
				return fmt.Errorf("db: end sessions of %d: %w", userID, err)
			}
		}
		return insertEvent(ctx, tx, ev)
	})
}

// UpdatePasswordHash replaces a hash after a sign-in verified the old one with older
// parameters; it changes nothing else.
func (d *DB) UpdatePasswordHash(ctx context.Context, userID int64, oldHash, newHash string) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?`,
			newHash, userID, oldHash)
		if err != nil {
			return fmt.Errorf("db: rehash %d: %w", userID, err)
		}
		return nil
	})
}

// ErrLastAdmin refuses a change that would leave no active admin: the portal would have no
// one to manage it but the command line.
var ErrLastAdmin = errors.New("db: the last active admin cannot be removed, disabled or demoted")

// keepAnAdmin is the last-admin guard, called inside the transaction of a change that makes
// userID stop being an active admin (delete, disable, demote): it refuses with ErrLastAdmin
// when userID is an active admin and no other is. A user who is not one can always go.
func keepAnAdmin(ctx context.Context, tx *sql.Tx, userID int64) error {
	var activeAdmin bool
	var others int
	err := tx.QueryRowContext(ctx, `SELECT role = 'admin' AND disabled = 0,
		(SELECT COUNT(*) FROM users o WHERE o.role = 'admin' AND o.disabled = 0 AND o.id != u.id)
		FROM users u WHERE u.id = ?`, userID).Scan(&activeAdmin, &others)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("db: count admins: %w", err)
	}
	if activeAdmin && others == 0 {
		return ErrLastAdmin
	}
	return nil
}

// SetRole changes a user's role, refusing to demote the last active admin.
func (d *DB) SetRole(ctx context.Context, userID int64, role string, ev Event) error {
	if !ValidRole(role) {
		return fmt.Errorf("db: set role of %d: unknown role %q", userID, role)
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		var current string
		err := tx.QueryRowContext(ctx, `SELECT role FROM users WHERE id = ?`, userID).Scan(&current)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("db: set role of %d: %w", userID, err)
		}
		if role != RoleAdmin {
			if err := keepAnAdmin(ctx, tx, userID); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET role = ?, updated_at = ? WHERE id = ?`, role, FormatTime(ev.At), userID); err != nil {
			return fmt.Errorf("db: set role of %d: %w", userID, err)
		}
		ev.Detail = current + " → " + role
		return insertEvent(ctx, tx, ev)
	})
}

// DisableUser is SetDisabled(true) that refuses to disable the last active admin; an admin
// disabled already is not active, so disabling them again is no such change.
func (d *DB) DisableUser(ctx context.Context, userID int64, ev Event) (int64, error) {
	var ended int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		if err := keepAnAdmin(ctx, tx, userID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET disabled = 1, updated_at = ? WHERE id = ?`, FormatTime(ev.At), userID); err != nil {
			return fmt.Errorf("db: disable %d: %w", userID, err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
		if err != nil {
			return fmt.Errorf("db: disable %d: %w", userID, err)
		}
		ended, _ = res.RowsAffected()
		return insertEvent(ctx, tx, ev)
	})
	return ended, err
}

// DeleteUser removes an account with its sessions, factors, recovery codes, receipts and
// memberships (by cascade). Audit rows keep the username as text; notices keep their
// author's name. The last active admin cannot be deleted.
func (d *DB) DeleteUser(ctx context.Context, userID int64, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		var username, key string
		err := tx.QueryRowContext(ctx, `SELECT username, username_key FROM users WHERE id = ?`,
			userID).Scan(&username, &key)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("db: delete user %d: %w", userID, err)
		}
		if err := keepAnAdmin(ctx, tx, userID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, userID); err != nil {
			return fmt.Errorf("db: delete user %d: %w", userID, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM login_throttle WHERE username = ?`, key); err != nil {
			return fmt.Errorf("db: delete user %d: %w", userID, err)
		}
		ev.Subject = username
		return insertEvent(ctx, tx, ev)
	})
}

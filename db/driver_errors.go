package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The drivers' error codes, read in one place: a message is for people and may quote
// anything (a trigger's text, a value), so no check here looks at words. SQLite reports
// extended codes, which name the kind of constraint that failed; PostgreSQL reports
// SQLSTATE codes and the name of the constraint.

// PostgreSQL's SQLSTATE codes used here.
const (
	pgUniqueViolation = "23505"
	pgAdminShutdown   = "57P01"
	pgCrashShutdown   = "57P02"
	pgCannotConnect   = "57P03"
	pgConnectionClass = "08"
)

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY constraint failure: the
// row exists already.
func isUniqueViolation(err error) bool {
	code := sqliteCode(err)
	return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY ||
		pgCode(err) == pgUniqueViolation
}

func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// unavailableError is a driver error that means the server is out of reach. It is both
// ErrUnavailable and the driver's error, so database/sql still sees driver.ErrBadConn
// (and retries on a fresh connection) where the driver said so.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string   { return "db: database unavailable: " + e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// classifyPostgres marks the errors that mean the server cannot be reached or went away
// as ErrUnavailable; others pass unchanged. An error caused by the caller's context ending
// is the caller's, not the server's.
func classifyPostgres(ctx context.Context, err error) error {
	if err == nil || (ctx != nil && ctx.Err() != nil) || errors.Is(err, ErrUnavailable) {
		return err
	}
	if serverUnreachable(err) {
		return &unavailableError{err: err}
	}
	return err
}

func serverUnreachable(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	code := pgCode(err)
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case code == pgAdminShutdown, code == pgCrashShutdown, code == pgCannotConnect,
		strings.HasPrefix(code, pgConnectionClass):
		return true
	}
	return pgconn.SafeToRetry(err)
}

package db

import (
	"errors"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The driver's error codes, read in one place: a message is for people and may quote
// anything (a trigger's text, a value), so no check here looks at words. The connection
// reports extended codes, which name the kind of constraint that failed.

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY constraint failure: the
// row exists already.
func isUniqueViolation(err error) bool {
	code := sqliteCode(err)
	return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isPrimaryKeyViolation reports whether err is a PRIMARY KEY failure: for a table keyed by
// an integer id, that id is taken.
func isPrimaryKeyViolation(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

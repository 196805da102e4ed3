package db

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// timeCol scans a stored time into t. Anything but a time in TimeFormat fails the scan, and
// database/sql names the column in the error: a corrupt time must not pass for the zero
// time, which reads as "never", as long expired, or as the start of every range.
func timeCol(t *time.Time) sql.Scanner { return timeScanner{t: t} }

// nullTimeCol is timeCol for a column where NULL, or an empty string, means no time,
// which is the zero time.
func nullTimeCol(t *time.Time) sql.Scanner { return timeScanner{t: t, null: true} }

// endCol is timeCol for notices.ends_at, where noEnd means no end: the zero time.
func endCol(t *time.Time) sql.Scanner { return timeScanner{t: t, end: true} }

type timeScanner struct {
	t         *time.Time
	null, end bool
}

func (s timeScanner) Scan(src any) error {
	var v string
	switch x := src.(type) {
	case string:
		v = x
	case []byte:
		v = string(x)
	case nil:
		if !s.null {
			return errors.New("db: stored time is NULL")
		}
	default:
		return fmt.Errorf("db: stored time is a %T, not text", src)
	}
	if (s.null && v == "") || (s.end && v == noEnd) {
		*s.t = time.Time{}
		return nil
	}
	t, err := ParseTime(v)
	if err != nil {
		return fmt.Errorf("db: not a stored time: %w", err)
	}
	*s.t = t
	return nil
}

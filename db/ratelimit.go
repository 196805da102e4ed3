package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Limit is a fixed-window rate limit: at most Hits in each Window.
type Limit struct {
	Hits   int
	Window time.Duration
}

// hitLimit counts one hit against key inside tx and reports how long to wait when the limit
// is reached (0: allowed, and counted). The count lives in the database, so every process
// on it counts together. A window started by a clock that has since stepped back ends now.
func hitLimit(ctx context.Context, tx *sql.Tx, key string, l Limit, now time.Time) (time.Duration, error) {
	var start string
	var hits int
	err := tx.QueryRowContext(ctx, `SELECT window_start, hits FROM rate_limits WHERE key = ?`, key).Scan(&start, &hits)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		start, hits = FormatTime(now), 0
	case err != nil:
		return 0, fmt.Errorf("db: rate limit %q: %w", key, err)
	default:
		began, err := ParseTime(start)
		if err != nil {
			return 0, fmt.Errorf("db: rate limit %q: %w", key, err)
		}
		if FromFuture(began, now) || now.Sub(began) >= l.Window {
			start, hits = FormatTime(now), 0
		} else if hits >= l.Hits {
			return began.Add(l.Window).Sub(now), nil
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO rate_limits (key, window_start, hits) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET window_start = excluded.window_start, hits = excluded.hits`, key, start, hits+1)
	if err != nil {
		return 0, fmt.Errorf("db: rate limit %q: %w", key, err)
	}
	return 0, nil
}

// PurgeRateLimits forgets windows that ended before now less maxWindow.
func (d *DB) PurgeRateLimits(ctx context.Context, now time.Time, maxWindow time.Duration) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM rate_limits WHERE window_start < ? OR window_start > ?`,
			FormatTime(now.Add(-maxWindow)), FormatTime(now.Add(ClockSkew)))
		if err != nil {
			return fmt.Errorf("db: purge rate limits: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

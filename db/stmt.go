package db

import (
	"context"
	"database/sql"
	"sync"
)

// Reads go through prepared statements kept for the life of the store: parsing SQL was the
// largest single cost of a page view, and the same few queries serve every request.
type stmtCache struct {
	mu    sync.RWMutex
	stmts map[string]*sql.Stmt
}

// maxStmts bounds the cache; queries built from filters vary a little, never unboundedly,
// but a bound keeps it so. A query that finds the cache full runs unprepared, which
// database/sql prepares and closes around the one call.
const maxStmts = 256

// prepared returns the kept statement for query, preparing and keeping it on first use,
// or nil when the cache is full.
func (d *DB) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	c := &d.stmts
	c.mu.RLock()
	st, ok := c.stmts[query]
	full := len(c.stmts) >= maxStmts
	c.mu.RUnlock()
	if ok || full {
		return st, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok || len(c.stmts) >= maxStmts {
		return st, nil
	}
	st, err := d.read.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	c.stmts[query] = st
	return st, nil
}

// queryRow runs a read through a prepared statement.
func (d *DB) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	st, err := d.prepared(ctx, query)
	if err != nil {
		return errRow{err}
	}
	if st == nil {
		return d.read.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// query runs a read returning rows through a prepared statement.
func (d *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := d.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return d.read.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		st.Close()
	}
	c.stmts = nil
}

type rowScanner interface{ Scan(dest ...any) error }

// scanOne scans a row of one column.
func scanOne[T any](row rowScanner) (v T, err error) {
	err = row.Scan(&v)
	return v, err
}

// queryList runs a read and scans each row with scan, in order.
func queryList[T any](ctx context.Context, d *DB, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := d.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// errRow is a row whose query could not be prepared: Scan reports why.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

package db

import (
	"context"
	"database/sql/driver"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// roundTripConnector wraps a database/sql driver so that the SQL written once, with ?
// placeholders, runs on a server that wants $1, $2, … (rewrite, nil for SQLite), errors that
// mean the server is gone read as ErrUnavailable (classify), and every request the pool
// sends the server is counted: the count of round trips per page view is what predicts how
// a page scales once the database is across a network.
type roundTripConnector struct {
	connect  func(ctx context.Context) (driver.Conn, error)
	drv      driver.Driver
	rewrite  func(query string) string
	classify func(ctx context.Context, err error) error
	// classifyRows has classify also read the errors met while reading rows, where a
	// server can go away half-way through an answer.
	classifyRows bool
	trips        *atomic.Uint64
}

func (c *roundTripConnector) Connect(ctx context.Context) (driver.Conn, error) {
	inner, err := c.connect(ctx)
	if err != nil {
		return nil, c.classify(ctx, err)
	}
	return &roundTripConn{inner: inner, c: c}, nil
}

func (c *roundTripConnector) Driver() driver.Driver { return c.drv }

func (c *roundTripConnector) rows(ctx context.Context, rows driver.Rows) driver.Rows {
	if !c.classifyRows {
		return rows
	}
	return &classifiedRows{Rows: rows, ctx: ctx, classify: c.classify}
}

func (c *roundTripConnector) sql(query string) string {
	if c.rewrite == nil {
		return query
	}
	return c.rewrite(query)
}

// roundTripConn forwards to the driver's connection, which must implement the context
// forms of every call (both drivers used here do).
type roundTripConn struct {
	inner driver.Conn
	c     *roundTripConnector
}

func (w *roundTripConn) Prepare(query string) (driver.Stmt, error) {
	return w.PrepareContext(context.Background(), query)
}

func (w *roundTripConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	w.c.trips.Add(1)
	st, err := w.inner.(driver.ConnPrepareContext).PrepareContext(ctx, w.c.sql(query))
	if err != nil {
		return nil, w.c.classify(ctx, err)
	}
	return &roundTripStmt{inner: st, c: w.c}, nil
}

func (w *roundTripConn) Close() error { return w.inner.Close() }

func (w *roundTripConn) Begin() (driver.Tx, error) {
	return w.BeginTx(context.Background(), driver.TxOptions{})
}

func (w *roundTripConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	w.c.trips.Add(1)
	tx, err := w.inner.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, w.c.classify(ctx, err)
	}
	return &roundTripTx{inner: tx, c: w.c, ctx: ctx}, nil
}

func (w *roundTripConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	w.c.trips.Add(1)
	res, err := w.inner.(driver.ExecerContext).ExecContext(ctx, w.c.sql(query), args)
	if err != nil {
		return nil, w.c.classify(ctx, err)
	}
	return res, nil
}

func (w *roundTripConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	w.c.trips.Add(1)
	rows, err := w.inner.(driver.QueryerContext).QueryContext(ctx, w.c.sql(query), args)
	if err != nil {
		return nil, w.c.classify(ctx, err)
	}
	return w.c.rows(ctx, rows), nil
}

func (w *roundTripConn) Ping(ctx context.Context) error {
	p, ok := w.inner.(driver.Pinger)
	if !ok {
		return nil
	}
	w.c.trips.Add(1)
	return w.c.classify(ctx, p.Ping(ctx))
}

func (w *roundTripConn) ResetSession(ctx context.Context) error {
	if r, ok := w.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (w *roundTripConn) IsValid() bool {
	if v, ok := w.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// CheckNamedValue lets a driver that takes arguments as they are (pgx) keep doing so;
// driver.ErrSkip asks database/sql for its default conversion, as without the wrapper.
func (w *roundTripConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := w.inner.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

type roundTripStmt struct {
	inner driver.Stmt
	c     *roundTripConnector
}

func (s *roundTripStmt) Close() error  { return s.inner.Close() }
func (s *roundTripStmt) NumInput() int { return s.inner.NumInput() }

func (s *roundTripStmt) Exec(args []driver.Value) (driver.Result, error) {
	return nil, driver.ErrSkip // database/sql always calls ExecContext, which every driver here has
}

func (s *roundTripStmt) Query(args []driver.Value) (driver.Rows, error) {
	return nil, driver.ErrSkip
}

func (s *roundTripStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.c.trips.Add(1)
	res, err := s.inner.(driver.StmtExecContext).ExecContext(ctx, args)
	if err != nil {
		return nil, s.c.classify(ctx, err)
	}
	return res, nil
}

func (s *roundTripStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.c.trips.Add(1)
	rows, err := s.inner.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, s.c.classify(ctx, err)
	}
	return s.c.rows(ctx, rows), nil
}

type roundTripTx struct {
	inner driver.Tx
	c     *roundTripConnector
	ctx   context.Context
}

func (t *roundTripTx) Commit() error {
	t.c.trips.Add(1)
	return t.c.classify(t.ctx, t.inner.Commit())
}

func (t *roundTripTx) Rollback() error {
	t.c.trips.Add(1)
	return t.c.classify(t.ctx, t.inner.Rollback())
}

// classifiedRows passes the rows' errors through classify; the end of the rows (io.EOF)
// passes as it is, as database/sql compares it.
type classifiedRows struct {
	driver.Rows
	ctx      context.Context
	classify func(ctx context.Context, err error) error
}

func (r *classifiedRows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if err == nil || err == io.EOF {
		return err
	}
	return r.classify(r.ctx, err)
}

// dollarPlaceholders rewrites each ? of query to $1, $2, … in order (and ?NNN to $NNN),
// leaving alone those
// inside quoted strings and identifiers, dollar-quoted bodies and comments. Results are
// kept: the store sends the same few hundred statements over and over.
type dollarPlaceholders struct{ cache sync.Map }

func (p *dollarPlaceholders) rewrite(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	if v, ok := p.cache.Load(query); ok {
		return v.(string)
	}
	out := rewritePlaceholders(query)
	p.cache.Store(query, out)
	return out
}

func rewritePlaceholders(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); {
		switch c := q[i]; {
		case c == '?':
			// ?NNN names its argument, as $NNN does; a bare ? takes the next one.
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			b.WriteByte('$')
			if j > i+1 {
				b.WriteString(q[i+1 : j])
			} else {
				n++
				b.WriteString(strconv.Itoa(n))
			}
			i = j
		case c == '\'' || c == '"':
			end := quotedEnd(q, i, c)
			b.WriteString(q[i:end])
			i = end
		case c == '-' && strings.HasPrefix(q[i:], "--"):
			end := len(q)
			if k := strings.IndexByte(q[i:], '\n'); k >= 0 {
				end = i + k
			}
			b.WriteString(q[i:end])
			i = end
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			end := len(q)
			if k := strings.Index(q[i+2:], "*/"); k >= 0 {
				end = i + 2 + k + 2
			}
			b.WriteString(q[i:end])
			i = end
		case c == '$':
			end := dollarQuotedEnd(q, i)
			b.WriteString(q[i:end])
			i = end
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// quotedEnd returns the index just past the quoted text that starts at q[start] with quote
// (a doubled quote inside is part of the text), or len(q) if it never closes.
func quotedEnd(q string, start int, quote byte) int {
	for i := start + 1; i < len(q); i++ {
		if q[i] != quote {
			continue
		}
		if i+1 < len(q) && q[i+1] == quote {
			i++
			continue
		}
		return i + 1
	}
	return len(q)
}

// dollarQuotedEnd returns the index just past a $tag$…$tag$ body starting at q[start], or
// start+1 when the $ does not open one (as in $1).
func dollarQuotedEnd(q string, start int) int {
	k := strings.IndexByte(q[start+1:], '$')
	if k < 0 {
		return start + 1
	}
	tag := q[start : start+1+k+1]
	for _, r := range tag[1 : len(tag)-1] {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' && len(tag) > 2) {
			return start + 1
		}
	}
	if len(tag) > 2 && tag[1] >= '0' && tag[1] <= '9' {
		return start + 1
	}
	end := strings.Index(q[start+len(tag):], tag)
	if end < 0 {
		return len(q)
	}
	return start + len(tag) + end + len(tag)
}

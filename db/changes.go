package db

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Changes is the store's change signal: it tells a process that data it may have copied
// into memory has changed, whoever committed the change (this process, another serve on
// the same file, a command-line tool). It counts what it has seen in a generation number.
// A copy remembers the generation it was read at and is stale once the number moves on.
//
// The signal is coarse on purpose: any commit moves it, whatever the tables. Copies are
// few and cheap to read again, and commits are rare next to page views, so a precise
// signal would cost more bookkeeping in every write than it saves in reads.
//
// Two ways in, one for each kind of freshness:
//   - Watch, run by serve, asks the store every ChangePollInterval and moves the
//     generation when it answers "changed": enough for copies that may lag by under a
//     second (the live notices).
//   - Check asks at once and returns the generation, for a copy that must be exact at the
//     very next request.
//
// Commits through this store move the generation as they return, so a process always
// sees its own writes at once. What asks the store is the one store-specific part (a
// changeSource): SQLite watches PRAGMA data_version; a PostgreSQL store would LISTEN for
// the NOTIFY its writes send and read a revision they bump.
type Changes struct {
	// generation is read without the lock: the copy-keeping code asks it on every request.
	generation atomic.Uint64
	mu         sync.Mutex
	src        changeSource
	subs       map[int]func(generation uint64)
	nextSub    int
}

// ChangePollInterval is how often Watch asks SQLite whether anything changed: a change is
// seen within it, well inside the second the portal promises, and each ask costs a few
// microseconds on a connection of its own.
const ChangePollInterval = 200 * time.Millisecond

// changeSource asks a store whether anything was committed.
type changeSource interface {
	// changed reports whether anything was committed since its last answer. The first
	// answer, and the first after an error, is true: what happened in between is unknown.
	changed(ctx context.Context) (bool, error)
	// active reports whether changed has been asked at least once and the answer
	// established a baseline, so a commit by this process must be absorbed by asking again.
	active() bool
	// wait returns when something may have changed (after a poll interval, or a
	// notification), or when ctx ends.
	wait(ctx context.Context)
	close() error
}

func newChanges(src changeSource) *Changes {
	return &Changes{src: src, subs: map[int]func(uint64){}}
}

// Generation is the newest generation the signal has seen, without asking the store.
func (c *Changes) Generation() uint64 { return c.generation.Load() }

// Check asks the store whether anything was committed since the signal last asked, moves
// the generation if so, and returns it. A copy read after Check returned generation g
// holds every change committed before Check was called. On an error the generation moves
// too (a change may have been missed) and the error is returned.
func (c *Changes) Check(ctx context.Context) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed, err := c.src.changed(ctx)
	if !changed && err == nil {
		return c.generation.Load(), nil
	}
	g := c.bumpLocked()
	if err != nil {
		return g, fmt.Errorf("db: change check: %w", err)
	}
	return g, nil
}

// Exact reports whether Check is exact: a generation it returns has moved past every
// commit, by any process, that returned before Check was called. Only then may a copy be
// trusted at the very next request after a check alone, without reading the store again;
// a change source says so by an exact method, and one that does not is taken as not exact.
func (c *Changes) Exact() bool {
	e, ok := c.src.(interface{ exact() bool })
	return ok && e.exact()
}

// committed records a commit made through this store. The store is asked first, when the
// signal watches it, so that the commit is not announced a second time by the next
// check; a commit of another process that the same answer covers is announced with it.
func (c *Changes) committed(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src.active() {
		_, _ = c.src.changed(ctx) // an error leaves the source unsure, so its next answer is true
	}
	c.bumpLocked()
}

func (c *Changes) bumpLocked() uint64 {
	g := c.generation.Add(1)
	for _, fn := range c.subs {
		fn(g)
	}
	return g
}

// Subscribe calls fn with the new generation each time it moves, until the returned
// function is called. fn runs while the signal is held, so it must be quick (note the
// number, wake a goroutine) and must neither call Check nor write through the store.
func (c *Changes) Subscribe(fn func(generation uint64)) (unsubscribe func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.nextSub
	c.nextSub++
	c.subs[id] = fn
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.subs, id)
	}
}

// Watch asks the store for changes until ctx ends, moving the generation when the answer
// is "changed" (or unknown). report, when not nil, hears of trouble once per run of
// failed asks, with the error, and once with nil when asking works again; meanwhile every
// failed ask moves the generation, so copies are read again rather than trusted.
func (c *Changes) Watch(ctx context.Context, report func(error)) {
	failing := false
	for {
		c.src.wait(ctx)
		if ctx.Err() != nil {
			return
		}
		_, err := c.Check(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && !failing && report != nil:
			report(err)
		case err == nil && failing && report != nil:
			report(nil)
		}
		failing = err != nil
	}
}

func (c *Changes) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.src.close()
}

// dataVersion is SQLite's change source. PRAGMA data_version on one connection changes
// whenever any other connection (this process's writer, another process) commits; it is
// per connection, so the signal keeps one connection of its own for the store's life and
// asks only on it. The connection is opened on first use, so a short command-line run
// that never asks pays nothing for it.
type dataVersion struct {
	dsn    string
	every  time.Duration
	trips  *atomic.Uint64 // the store's round-trip count, which each ask adds to
	pool   *sql.DB
	conn   *sql.Conn
	stmt   *sql.Stmt
	last   int64
	known  bool // last is a baseline from the current connection
	closed bool
}

func (s *dataVersion) changed(ctx context.Context) (bool, error) {
	if s.closed {
		return true, ErrClosed
	}
	if s.stmt == nil {
		if err := s.connect(ctx); err != nil {
			return true, err
		}
	}
	var v int64
	s.trips.Add(1)
	if err := s.stmt.QueryRowContext(ctx).Scan(&v); err != nil {
		// The connection may be broken; a new one starts a new baseline.
		s.disconnect()
		return true, fmt.Errorf("data_version: %w", err)
	}
	changed := !s.known || v != s.last
	s.last, s.known = v, true
	return changed, nil
}

func (s *dataVersion) active() bool { return s.known }

// exact: SQLite changes data_version on this connection for every commit to the file
// made before it is asked, so an answer of "unchanged" is exact.
func (s *dataVersion) exact() bool { return true }

func (s *dataVersion) connect(ctx context.Context) error {
	if s.pool == nil {
		pool, err := sql.Open("sqlite", s.dsn)
		if err != nil {
			return fmt.Errorf("open watcher: %w", err)
		}
		pool.SetMaxOpenConns(1)
		pool.SetMaxIdleConns(1)
		pool.SetConnMaxIdleTime(0)
		pool.SetConnMaxLifetime(0)
		s.pool = pool
	}
	conn, err := s.pool.Conn(ctx)
	if err != nil {
		return fmt.Errorf("open watcher: %w", err)
	}
	stmt, err := conn.PrepareContext(ctx, `PRAGMA data_version`)
	if err != nil {
		conn.Close()
		return fmt.Errorf("open watcher: %w", err)
	}
	s.conn, s.stmt = conn, stmt
	return nil
}

func (s *dataVersion) disconnect() {
	if s.stmt != nil {
		s.stmt.Close()
	}
	if s.conn != nil {
		s.conn.Close()
	}
	s.stmt, s.conn, s.known = nil, nil, false
}

func (s *dataVersion) wait(ctx context.Context) {
	t := time.NewTimer(s.every)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (s *dataVersion) close() error {
	s.disconnect()
	s.closed = true
	if s.pool == nil {
		return nil
	}
	return s.pool.Close()
}

package db

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgListener is PostgreSQL's change source. Every write transaction moves the one-row
// revision and sends a NOTIFY that is delivered when it commits. A connection of the
// listener's own (not the pool's) LISTENs, so a change wakes Watch at once. Whether
// anything changed is decided by reading the revision, never by counting notifications:
// a notification arrives after its commit is visible, so the read after it sees the
// change, the read makes Check exact whatever the notifications' timing, and this
// process's own commits, absorbed by the read that follows them, are not announced twice
// when their notifications come back. When the
// listening connection drops, the next answer is "changed" with the cause, and the
// listener reconnects by itself with back-off. It starts on first use, so a short
// command-line run pays nothing for it.
type pgListener struct {
	cfg   *pgx.ConnConfig
	pool  *sql.DB
	every time.Duration

	wake   chan struct{}
	lostMu sync.Mutex
	lost   error // why the listening connection dropped, until an answer reports it

	// Read and written under Changes' lock.
	started bool
	last    int64
	known   bool
	closed  bool
	stop    context.CancelFunc
	done    chan struct{}
	pidMu   sync.Mutex
	pid     uint32 // the listening connection's server process, for tests
}

// pgRetryMin and pgRetryMax bound the wait between attempts to listen again.
const (
	pgRetryMin = 100 * time.Millisecond
	pgRetryMax = 5 * time.Second
)

func newPGListener(cfg *pgx.ConnConfig, pool *sql.DB, every time.Duration) *pgListener {
	return &pgListener{cfg: cfg.Copy(), pool: pool, every: every, wake: make(chan struct{}, 1)}
}

func (s *pgListener) changed(ctx context.Context) (bool, error) {
	if s.closed {
		return true, ErrClosed
	}
	s.start()
	if err := s.takeLost(); err != nil {
		s.known = false
		return true, fmt.Errorf("change listener: %w", err)
	}
	var v int64
	if err := s.pool.QueryRowContext(ctx, `SELECT n FROM change_revision WHERE id = 1`).Scan(&v); err != nil {
		s.known = false
		return true, fmt.Errorf("change revision: %w", err)
	}
	changed := !s.known || v != s.last
	s.last, s.known = v, true
	return changed, nil
}

func (s *pgListener) active() bool { return s.known }

// exact: every write transaction moves the revision before it commits, and the answer reads
// it afresh, so "unchanged" covers every commit that returned before the question.
func (s *pgListener) exact() bool { return true }

func (s *pgListener) takeLost() error {
	s.lostMu.Lock()
	defer s.lostMu.Unlock()
	err := s.lost
	s.lost = nil
	return err
}

func (s *pgListener) setLost(err error) {
	s.lostMu.Lock()
	defer s.lostMu.Unlock()
	if s.lost == nil {
		s.lost = err
	}
}

func (s *pgListener) start() {
	if s.started {
		return
	}
	s.started = true
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan struct{})
	go s.listen(ctx)
}

// listen keeps a connection LISTENing until ctx ends, reconnecting after each loss.
func (s *pgListener) listen(ctx context.Context) {
	defer close(s.done)
	backoff := pgRetryMin
	for ctx.Err() == nil {
		connected, err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		s.setLost(err)
		s.signal() // the loss itself is news: copies must be read again
		if connected {
			backoff = pgRetryMin
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, pgRetryMax)
	}
}

// listenOnce connects, LISTENs and waits for notifications until the connection fails,
// reporting whether it got as far as listening.
func (s *pgListener) listenOnce(ctx context.Context) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := pgx.ConnectConfig(cctx, s.cfg)
	cancel()
	if err != nil {
		return false, classifyPostgres(ctx, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN `+pgChangeChannel); err != nil {
		return false, classifyPostgres(ctx, err)
	}
	s.setPID(conn.PgConn().PID())
	defer s.setPID(0)
	// Anything committed while no connection listened is caught by the revision read.
	s.signal()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, classifyPostgres(ctx, err)
		}
		s.signal()
	}
}

func (s *pgListener) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *pgListener) setPID(pid uint32) {
	s.pidMu.Lock()
	defer s.pidMu.Unlock()
	s.pid = pid
}

// listenerPID is the server process of the listening connection, 0 while there is none.
func (s *pgListener) listenerPID() uint32 {
	s.pidMu.Lock()
	defer s.pidMu.Unlock()
	return s.pid
}

func (s *pgListener) wait(ctx context.Context) {
	t := time.NewTimer(s.every)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-s.wake:
	}
}

func (s *pgListener) close() error {
	s.closed = true
	if s.stop != nil {
		s.stop()
		<-s.done
	}
	return nil
}

var _ changeSource = (*pgListener)(nil)

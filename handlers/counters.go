package handlers

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"gatehouse/db"
)

// Event kinds counted for the health panel that have no audit row of their own.
const (
	countStaleCookie = "stale_cookie_cleared"
	countCSRF        = "csrf_refused"
	countServerError = "server_error"
	countThrottled   = "throttled"
	countReplay      = "totp_replay_refused"
	countBannersLost = "banners_not_loaded"
	// countPasskeyClone mirrors the audited passkey.clone_warning for the metrics.
	countPasskeyClone = "passkey_clone_warning"
)

// counters accumulate in memory and are added to the database flushEvery after the first
// count since the last flush, so a flood of refused requests costs at most two writes a
// second, not one each. The health panel shows only what is stored, after writing its own
// process's counts: with several processes on one database every panel then agrees, and
// counts what any process saw within a second. A crash loses at most flushEvery of counts.
type counters struct {
	db  *db.DB
	log *slog.Logger
	now func() time.Time
	mu  sync.Mutex
	// since is when the first pending count was taken: its hour is the bucket they go to.
	since time.Time
	n     map[string]int64
	// due is set while a flush is scheduled.
	due bool
	// writing keeps flushes one at a time, so a panel that flushes waits for one under way.
	writing sync.Mutex
	// metrics mirrors every count as a Prometheus counter.
	metrics *metrics
}

const (
	flushEvery = 500 * time.Millisecond
	// flushRetry is the wait after a failed flush: the counts are kept, and a store that
	// is down is not asked twice a second, with a log line each time.
	flushRetry = 30 * time.Second
)

func newCounters(store *db.DB, log *slog.Logger, now func() time.Time) *counters {
	return &counters{db: store, log: log, now: now, n: map[string]int64{}}
}

func (k *counters) add(kind string) {
	k.metrics.event(kind)
	k.mu.Lock()
	if len(k.n) == 0 {
		k.since = k.now()
	}
	k.n[kind]++
	k.mu.Unlock()
	k.schedule(flushEvery)
}

// schedule arranges a flush after wait unless one is due already. Timers run on real
// time, whatever the clock the counts are dated by says, so a clock that steps back
// cannot hold counts for hours.
func (k *counters) schedule(wait time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.due {
		return
	}
	k.due = true
	time.AfterFunc(wait, func() { k.flush(context.Background()) })
}

// flush writes the pending counts; on failure they are kept and tried again later.
func (k *counters) flush(ctx context.Context) {
	k.writing.Lock()
	defer k.writing.Unlock()
	k.mu.Lock()
	pending, at := k.n, k.since
	k.n, k.due = map[string]int64{}, false
	k.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	err := k.db.AddEventCounts(ctx, at, pending)
	if errors.Is(err, db.ErrClosed) {
		// The process is stopping: the last flushEvery of counts goes, as in a crash.
		k.log.Info("event counts not saved: the database closed first", "counts", pending)
		return
	}
	if err != nil {
		k.log.Error("saving event counts failed", "err", err)
		k.mu.Lock()
		for kind, n := range pending {
			k.n[kind] += n
		}
		k.since = at // the older counts date the merged ones
		k.mu.Unlock()
		k.schedule(flushRetry)
	}
}

// pending returns counts not yet written.
func (k *counters) pending() map[string]int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]int64, len(k.n))
	for kind, n := range k.n {
		out[kind] = n
	}
	return out
}

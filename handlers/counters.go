package handlers

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
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

// counters accumulate in memory and are added to the database at most every flushEvery,
// so a flood of refused requests costs no write each. A crash loses at most that much.
type counters struct {
	db    *db.DB
	log   *slog.Logger
	now   func() time.Time
	mu    sync.Mutex
	since time.Time
	n     map[string]int64
	busy  atomic.Bool
	// metrics mirrors every count as a Prometheus counter.
	metrics *metrics
}

const flushEvery = 30 * time.Second

func newCounters(store *db.DB, log *slog.Logger, now func() time.Time) *counters {
	return &counters{db: store, log: log, now: now, since: now(), n: map[string]int64{}}
}

func (k *counters) add(kind string) {
	k.metrics.event(kind)
	k.mu.Lock()
	k.n[kind]++
	elapsed := k.now().Sub(k.since)
	due := elapsed >= flushEvery || elapsed < 0 // a clock stepped back must not hold counts for hours
	k.mu.Unlock()
	if due && k.busy.CompareAndSwap(false, true) {
		go func() {
			defer k.busy.Store(false)
			k.flush(context.Background())
		}()
	}
}

// flush writes the pending counts; on failure they are kept for the next try.
func (k *counters) flush(ctx context.Context) {
	k.mu.Lock()
	pending, at := k.n, k.since
	k.n, k.since = map[string]int64{}, k.now()
	k.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	if err := k.db.AddEventCounts(ctx, at, pending); err != nil {
		k.log.Error("saving event counts failed", "err", err)
		k.mu.Lock()
		for kind, n := range pending {
			k.n[kind] += n
		}
		k.mu.Unlock()
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

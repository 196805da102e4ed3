package handlers

import (
	"crypto/sha256"
	"slices"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
)

// exactCaches keep what nearly every request reads from the store (its session and user,
// the reader's acknowledgements, the dashboard's counts, the app a proxy asks about), so a
// page view or a forward-auth check usually reads no row at all. They are exact, not merely fresh: before a request uses any kept value it
// asks the store's change signal once (db.Changes.Check) whether anything was committed,
// by any process, and a value is used only while the generation is the one it was read at.
// A revoke, a sign-out, a disabled account, a role, group, password or second-factor
// change from the command line or another instance is therefore seen by the very next
// request, as without a cache. Limits that pass with time are applied to every answer,
// kept or read: a session's idle and absolute limits by the caller, an acknowledgement's
// expiry by readerEntry. The once-a-minute last-seen write is a commit like any other.
//
// The store decides whether this holds: a store whose signal cannot answer Check exactly
// (db.Changes.Exact) gets no caches, and every request reads.
type exactCaches struct {
	sessions *exactCache[[sha256.Size]byte, db.SessionWithUser]
	readers  *exactCache[int64, readerEntry]
	counts   *exactCache[int64, accountCounts]
	apps     *exactCache[string, db.App]
	groups   *exactCache[int64, []string]
}

// newExactCaches returns the caches for store, or nil when its change signal is not exact.
func newExactCaches(store *db.DB) *exactCaches {
	if store == nil || !store.Changes().Exact() {
		return nil
	}
	return &exactCaches{sessions: newExactCache[[sha256.Size]byte, db.SessionWithUser](),
		readers: newExactCache[int64, readerEntry](), counts: newExactCache[int64, accountCounts](),
		apps: newExactCache[string, db.App](), groups: newExactCache[int64, []string]()}
}

// changesCheckedKey holds whether a request's one change check succeeded.
const changesCheckedKey = "gatehouse.changes_checked"

// checkedGeneration is the generation a request may use kept values at: the store is asked
// once per request, so every value used holds every change committed before that ask.
// ok is false when there are no caches, or the ask failed: then everything is read.
func (h *Handler) checkedGeneration(c echo.Context) (generation uint64, ok bool) {
	if h.exact == nil {
		return 0, false
	}
	checked, asked := c.Get(changesCheckedKey).(bool)
	if !asked {
		// Whether anything changed is unknown after a failed ask, so nothing kept is used
		// for the rest of the request, and the store is not asked again by the next cache;
		// the reads that follow fail too if the store is down. The watcher logs the trouble.
		_, err := h.db.Changes().Check(c.Request().Context())
		checked = err == nil
		c.Set(changesCheckedKey, checked)
	}
	if !checked {
		return 0, false
	}
	// Later than the ask, never earlier: a value read at it holds at least as much.
	return h.db.Changes().Generation(), true
}

// exactCache is one kind of kept value, by key, all read at one generation: once the
// generation moves on, every entry is stale at once, so they are dropped together.
type exactCache[K comparable, V any] struct {
	mu         sync.Mutex
	generation uint64
	entries    map[K]V
}

// exactCacheSize bounds each cache: a few hundred bytes an entry, for many more browsers
// than a staff portal has signed in at once. When full, it starts over empty.
const exactCacheSize = 4096

func newExactCache[K comparable, V any]() *exactCache[K, V] {
	return &exactCache[K, V]{entries: map[K]V{}}
}

func (x *exactCache[K, V]) get(key K, generation uint64) (V, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if generation != x.generation {
		var zero V
		return zero, false
	}
	v, ok := x.entries[key]
	return v, ok
}

// put keeps v, read at generation. A read begun at an older generation than the kept ones
// is not kept: a commit may have overtaken it.
func (x *exactCache[K, V]) put(key K, generation uint64, v V) {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch {
	case generation < x.generation:
		return
	case generation > x.generation || len(x.entries) >= exactCacheSize:
		clear(x.entries)
		x.generation = generation
	}
	x.entries[key] = v
}

// lookupSessions is db.SessionsByTokenHashes through the cache. Only a request with one
// session token (what a browser sends) is kept; a crowd of cookies is read every time.
// Kept entries are shared by the requests that use them: nothing writes to their slices.
func (h *Handler) lookupSessions(c echo.Context, hashes [][]byte) ([]db.SessionWithUser, error) {
	ctx := c.Request().Context()
	if len(hashes) != 1 || len(hashes[0]) != sha256.Size {
		return h.db.SessionsByTokenHashes(ctx, hashes)
	}
	generation, ok := h.checkedGeneration(c)
	if !ok {
		return h.db.SessionsByTokenHashes(ctx, hashes)
	}
	key := [sha256.Size]byte(hashes[0])
	if e, ok := h.exact.sessions.get(key, generation); ok {
		return []db.SessionWithUser{e}, nil
	}
	found, err := h.db.SessionsByTokenHashes(ctx, hashes)
	if err != nil {
		return nil, err
	}
	if len(found) == 1 {
		h.exact.sessions.put(key, generation, found[0])
	}
	return found, nil
}

// readerEntry is a reader's state for some notices, read at readAt and true until
// state.Until (the first of its acknowledgements to expire).
type readerEntry struct {
	ids    []int64
	readAt time.Time
	state  db.ReaderState
}

// readerState is db.ReaderStateOf through the cache. A kept state is used for the same
// notices, from its read until its first acknowledgement expires; a clock that stepped
// back before the read reads again.
func (h *Handler) readerState(c echo.Context, userID int64, ids []int64, now time.Time) (db.ReaderState, error) {
	generation, ok := h.checkedGeneration(c)
	if ok {
		e, hit := h.exact.readers.get(userID, generation)
		if hit && slices.Equal(e.ids, ids) && !now.Before(e.readAt) && (e.state.Until.IsZero() || now.Before(e.state.Until)) {
			return e.state, nil
		}
	}
	st, err := h.db.ReaderStateOf(c.Request().Context(), userID, ids, now)
	if err != nil {
		return db.ReaderState{}, err
	}
	if ok {
		h.exact.readers.put(userID, generation, readerEntry{ids: ids, readAt: now, state: st})
	}
	return st, nil
}

// accountCounts is what the dashboard counts for a user: sessions and unused recovery codes.
type accountCounts struct{ sessions, recoveryLeft int }

// readThrough returns the value kept under key at the request's checked generation, or
// reads it and keeps what read without error. With no caches, or a failed check, it reads.
func readThrough[K comparable, V any](h *Handler, c echo.Context, cache func(*exactCaches) *exactCache[K, V], key K, read func() (V, error)) (V, error) {
	generation, ok := h.checkedGeneration(c)
	if ok {
		if v, hit := cache(h.exact).get(key, generation); hit {
			return v, nil
		}
	}
	v, err := read()
	if err == nil && ok {
		cache(h.exact).put(key, generation, v)
	}
	return v, err
}

// accountCountsOf is db.AccountCounts through the cache.
func (h *Handler) accountCountsOf(c echo.Context, userID int64) (sessions, recoveryLeft int, err error) {
	counts, err := readThrough(h, c, func(x *exactCaches) *exactCache[int64, accountCounts] { return x.counts }, userID,
		func() (accountCounts, error) {
			s, r, err := h.db.AccountCounts(c.Request().Context(), userID)
			return accountCounts{s, r}, err
		})
	return counts.sessions, counts.recoveryLeft, err
}

// appByHost is db.AppByHost through the cache; an unknown host is read every time.
func (h *Handler) appByHost(c echo.Context, host string) (db.App, error) {
	return readThrough(h, c, func(x *exactCaches) *exactCache[string, db.App] { return x.apps }, host,
		func() (db.App, error) { return h.db.AppByHost(c.Request().Context(), host) })
}

// groupNamesOf is db.GroupNamesOf through the cache, for the Remote-Groups header.
func (h *Handler) groupNamesOf(c echo.Context, userID int64) ([]string, error) {
	return readThrough(h, c, func(x *exactCaches) *exactCache[int64, []string] { return x.groups }, userID,
		func() ([]string, error) { return h.db.GroupNamesOf(c.Request().Context(), userID) })
}

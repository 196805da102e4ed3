package handlers

import (
	"context"
	"crypto/sha256"
	"sync"

	"gatehouse/db"
)

// sessionCache keeps the sessions (with their users) that recent requests looked up, so a
// page view or a forward-auth check usually reads no session row. It is exact, not merely
// fresh: every lookup first asks the store's change signal (db.Changes.Check) whether
// anything was committed, by any process, and uses a kept entry only while the generation
// is the one the entry was read at. A revoke, a sign-out, a disabled account, a role, group,
// password or second-factor change from the command line or another instance is therefore
// seen by the very next request, as without a cache. The limits of a session (idle,
// absolute, a partial session's deadline) are applied to every answer, kept or read, by
// the caller; the once-a-minute last-seen write is a commit, so the next request reads the
// new time.
//
// The store decides whether this holds: a store whose signal cannot answer Check exactly
// (db.Changes.Exact) gets no cache, and every lookup reads.
type sessionCache struct {
	store *db.DB
	mu    sync.Mutex
	// generation is the change signal's generation every entry was read at: once it moves
	// on, every entry is stale at once, so they are dropped together.
	generation uint64
	entries    map[[sha256.Size]byte]db.SessionWithUser
}

// sessionCacheSize bounds the entries: a few hundred bytes each, for many more browsers
// than a staff portal has signed in at once. When full, it starts over empty.
const sessionCacheSize = 4096

// newSessionCache returns a cache for store, or nil when its change signal is not exact.
func newSessionCache(store *db.DB) *sessionCache {
	if store == nil || !store.Changes().Exact() {
		return nil
	}
	return &sessionCache{store: store, entries: map[[sha256.Size]byte]db.SessionWithUser{}}
}

// lookupSessions is db.SessionsByTokenHashes through the cache. Only a request with one
// session token (what a browser sends) is kept; a crowd of cookies is read every time.
func (h *Handler) lookupSessions(ctx context.Context, hashes [][]byte) ([]db.SessionWithUser, error) {
	sc := h.sessions
	if sc == nil || len(hashes) != 1 || len(hashes[0]) != sha256.Size {
		return h.db.SessionsByTokenHashes(ctx, hashes)
	}
	generation, err := sc.store.Changes().Check(ctx)
	if err != nil {
		// Whether anything changed is unknown, so nothing kept may be used; the read below
		// fails too if the store is down, and then the request does. The watcher logs the
		// signal's own trouble.
		return h.db.SessionsByTokenHashes(ctx, hashes)
	}
	key := [sha256.Size]byte(hashes[0])
	if e, ok := sc.get(key, generation); ok {
		return []db.SessionWithUser{e}, nil
	}
	found, err := h.db.SessionsByTokenHashes(ctx, hashes)
	if err != nil {
		return nil, err
	}
	if len(found) == 1 {
		sc.put(key, generation, found[0])
	}
	return found, nil
}

func (sc *sessionCache) get(key [sha256.Size]byte, generation uint64) (db.SessionWithUser, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if generation != sc.generation {
		return db.SessionWithUser{}, false
	}
	e, ok := sc.entries[key]
	return e, ok
}

// put keeps e, read after Check answered generation. A read that an older generation
// started is never kept over newer ones: a commit may have overtaken it.
func (sc *sessionCache) put(key [sha256.Size]byte, generation uint64, e db.SessionWithUser) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	switch {
	case generation < sc.generation:
		return
	case generation > sc.generation || len(sc.entries) >= sessionCacheSize:
		clear(sc.entries)
		sc.generation = generation
	}
	// The entry is shared by the requests that hit it: its one slice is never written.
	sc.entries[key] = e
}

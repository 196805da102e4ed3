package handlers

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
)

// liveNotices keeps the notices that can be banners (not archived, not ended) in memory, so
// a page view reads only the reader's own acknowledgements instead of searching every
// notice. Notices, their audiences and groups may change in any process on the database
// (another serve, the command line), so the copy is read again once the store's change
// signal moves past the generation it was read at: at once for this process's writes,
// within the watcher's poll for anyone else's. It is also read again when a notice
// starts or ends, and at least every liveNoticesTTL as a backstop.
type liveNotices struct {
	db  *db.DB
	mu  sync.Mutex
	all []db.Notice
	// generation is the change signal's generation when the copy was read: taken before
	// the read, so a change committed during it leaves the copy stale rather than current.
	generation uint64
	// validUntil is the earliest of the next start or end among the cached notices and
	// the backstop TTL; loadedAt is when the copy was read, so a clock that steps back
	// before it reloads instead of keeping the copy for as long as the clock lags.
	validUntil time.Time
	loadedAt   time.Time
}

const liveNoticesTTL = 10 * time.Second

func (l *liveNotices) get(ctx context.Context, now time.Time) ([]db.Notice, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	generation := l.db.Changes().Generation()
	if generation == l.generation && now.Before(l.validUntil) && !now.Before(l.loadedAt) {
		return l.all, nil
	}
	all, err := l.db.LiveNotices(ctx, now)
	if err != nil {
		return nil, err
	}
	until := now.Add(liveNoticesTTL)
	for _, n := range all {
		if n.StartsAt.After(now) && n.StartsAt.Before(until) {
			until = n.StartsAt
		}
		if !n.EndsAt.IsZero() && n.EndsAt.Before(until) {
			until = n.EndsAt
		}
	}
	l.all, l.generation, l.validUntil, l.loadedAt = all, generation, until, now
	return all, nil
}

// maxBanners bounds how many banners one page shows.
const maxBanners = 50

// bannersFor returns the banners for u at now: current notices in u's audience that u has
// still to read now (must-read: db.ReaderState.MustReadNow) or has not dismissed (normal);
// most severe first, then must-read before normal, then newest.
func (h *Handler) bannersFor(c echo.Context, u db.User, now time.Time) ([]db.Notice, error) {
	all, err := h.live.get(c.Request().Context(), now)
	if err != nil {
		return nil, err
	}
	mine, ids := noticesReaching(all, u, now)
	if len(mine) == 0 {
		return nil, nil
	}
	st, err := h.readerState(c, u.ID, ids, now)
	if err != nil {
		return nil, err
	}
	out := mine[:0] // filtered in place: mine is this request's own
	for _, n := range mine {
		if n.MustRead() && !st.MustReadNow(n) || !n.MustRead() && st.Dismissed[n.ID] {
			continue
		}
		out = append(out, n)
	}
	slices.SortStableFunc(out, func(a, b db.Notice) int {
		if d := severityRank(a.Severity) - severityRank(b.Severity); d != 0 {
			return d
		}
		if a.MustRead() != b.MustRead() {
			if a.MustRead() {
				return -1
			}
			return 1
		}
		if c := b.StartsAt.Compare(a.StartsAt); c != 0 {
			return c
		}
		return int(b.ID - a.ID)
	})
	if len(out) > maxBanners {
		out = out[:maxBanners]
	}
	return out, nil
}

// mustReadOutstanding reports whether u has a current must-read notice in their audience
// still to acknowledge: one of the banners bannersFor shows, whatever the banner limit.
// It reads nothing when no such notice is live, which is the usual case.
func (h *Handler) mustReadOutstanding(c echo.Context, u db.User, now time.Time) (bool, error) {
	all, err := h.live.get(c.Request().Context(), now)
	if err != nil {
		return false, err
	}
	mine, ids := noticesReaching(all, u, now)
	if !slices.ContainsFunc(mine, db.Notice.MustRead) {
		return false, nil
	}
	// The state of all of u's notices, as bannersFor asks, so that the portal's pages and
	// the forward-auth checks of one reader share one kept state instead of replacing it.
	st, err := h.readerState(c, u.ID, ids, now)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(mine, st.MustReadNow), nil
}

// noticesReaching returns the notices of all current at now and in u's audience, and
// their ids, in a slice of their own.
func noticesReaching(all []db.Notice, u db.User, now time.Time) (mine []db.Notice, ids []int64) {
	for _, n := range all {
		if n.Current(now) && n.Audience.Reaches(u.Role, u.GroupIDs) {
			mine = append(mine, n)
			ids = append(ids, n.ID)
		}
	}
	return mine, ids
}

func severityRank(s string) int {
	switch s {
	case db.SeverityCritical:
		return 0
	case db.SeverityWarning:
		return 1
	}
	return 2
}

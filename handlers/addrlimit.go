package handlers

import (
	"sync"
	"time"
)

// Per client address: this many failures within the window refuse the address.
const (
	addrFailLimit  = 50
	addrFailWindow = 15 * time.Minute
	addrMaxEntries = 20000
)

// addrLimiter counts failed sign-ins per client address in memory. It is a second line
// behind the per-account throttle (which lives in the database and so survives restarts
// and is shared with the command line and every other process): it slows one address
// spraying many accounts. Its size is capped, so a flood from many addresses cannot grow
// it without bound.
//
// It is per process on purpose. Behind a load balancer each of N processes gives an
// address its own budget, so the address gets N times as many guesses spread over many
// accounts; every single account still gets no more than its own throttle allows,
// whichever process a guess reaches, and that is the bound that protects passwords. A
// shared budget would cost a read of the store at every sign-in and a table to keep
// bounded, for a bound that only grows with the number of processes.
type addrLimiter struct {
	mu      sync.Mutex
	entries map[string]*addrEntry
	max     int
	limit   int
	window  time.Duration
}

type addrEntry struct {
	failures int
	start    time.Time
}

func newAddrLimiter(maxEntries, limit int, window time.Duration) *addrLimiter {
	return &addrLimiter{entries: make(map[string]*addrEntry), max: maxEntries, limit: limit, window: window}
}

// wait reports how long addr must wait before its next attempt (0: go ahead).
func (l *addrLimiter) wait(addr string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[addr]
	if !ok || now.Sub(e.start) >= l.window {
		return 0
	}
	if e.failures >= l.limit {
		return e.start.Add(l.window).Sub(now)
	}
	return 0
}

// fail records a failed attempt from addr.
func (l *addrLimiter) fail(addr string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[addr]
	if ok && now.Sub(e.start) < l.window {
		e.failures++
		return
	}
	if !ok && len(l.entries) >= l.max {
		l.evict(now)
	}
	l.entries[addr] = &addrEntry{failures: 1, start: now}
}

// evict drops expired entries, or when none has expired, an arbitrary tenth of them:
// under a flood from many addresses each holds little, so forgetting some costs little.
func (l *addrLimiter) evict(now time.Time) {
	for k, e := range l.entries {
		if now.Sub(e.start) >= l.window {
			delete(l.entries, k)
		}
	}
	if len(l.entries) < l.max {
		return
	}
	drop := l.max / 10
	for k := range l.entries {
		if drop <= 0 {
			break
		}
		delete(l.entries, k)
		drop--
	}
}

func (l *addrLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

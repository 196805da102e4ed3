package db

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// lockFromTen locks an account for a minute per failure from the 10th on.
func lockFromTen(n int) time.Duration {
	if n >= 10 {
		return time.Duration(n-9) * time.Minute
	}
	return 0
}

func neverLock(int) time.Duration { return 0 }

func attempt(tb testing.TB, d *DB, name string, now time.Time, backoff Backoff) (int, time.Duration) {
	tb.Helper()
	a, err := d.BeginSignInAttempt(context.Background(), name, now, backoff)
	if err != nil {
		tb.Fatalf("BeginSignInAttempt(%q): %v", name, err)
	}
	return a.Failures, a.Wait
}

func TestBeginSignInAttemptLocks(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	now := t0
	for want := 1; want <= 10; want++ {
		n, wait := attempt(t, d, "alice", now, lockFromTen)
		if n != want || wait != 0 {
			t.Fatalf("attempt %d = (%d, %v), want (%d, 0)", want, n, wait, want)
		}
		now = now.Add(time.Second)
	}
	lastFailure := now.Add(-time.Second)
	n, until, err := d.ThrottleOf(ctx, "alice")
	if err != nil || n != 10 || !until.Equal(lastFailure.Add(time.Minute)) {
		t.Fatalf("ThrottleOf = %d, %v, %v; want 10 locked until %v", n, until, err, lastFailure.Add(time.Minute))
	}

	t.Run("while locked an attempt waits and is not counted", func(t *testing.T) {
		for range 3 {
			n, wait := attempt(t, d, "alice", now, lockFromTen)
			if wait != until.Sub(now) || wait <= 0 {
				t.Errorf("wait = %v, want %v", wait, until.Sub(now))
			}
			if n != 10 {
				t.Errorf("failures reported = %d, want 10", n)
			}
		}
		if n, u, _ := d.ThrottleOf(ctx, "alice"); n != 10 || !u.Equal(until) {
			t.Errorf("ThrottleOf = %d, %v; a locked attempt changed the record", n, u)
		}
	})
	t.Run("just before the lock ends it still waits", func(t *testing.T) {
		if _, wait := attempt(t, d, "alice", until.Add(-time.Millisecond), lockFromTen); wait != time.Millisecond {
			t.Errorf("wait = %v, want 1ms", wait)
		}
	})
	t.Run("once the lock has passed attempts count again and lock longer", func(t *testing.T) {
		n, wait := attempt(t, d, "alice", until, lockFromTen)
		if n != 11 || wait != 0 {
			t.Fatalf("attempt at the end of the lock = (%d, %v), want (11, 0)", n, wait)
		}
		if _, u, _ := d.ThrottleOf(ctx, "alice"); !u.Equal(until.Add(2 * time.Minute)) {
			t.Errorf("locked until %v, want %v", u, until.Add(2*time.Minute))
		}
	})
	t.Run("the lock does not spill over to another account", func(t *testing.T) {
		if n, wait := attempt(t, d, "bob", now, lockFromTen); n != 1 || wait != 0 {
			t.Errorf("bob = (%d, %v), want (1, 0)", n, wait)
		}
	})
}

func TestClearThrottle(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	for range 10 {
		attempt(t, d, "alice", t0, lockFromTen)
	}
	had, err := d.ClearThrottle(ctx, "alice", event("throttle.cleared", t0))
	if err != nil || !had {
		t.Fatalf("ClearThrottle = %v, %v; want true", had, err)
	}
	if n, until, _ := d.ThrottleOf(ctx, "alice"); n != 0 || !until.IsZero() {
		t.Errorf("ThrottleOf after clear = %d, %v", n, until)
	}
	if n, wait := attempt(t, d, "alice", t0, lockFromTen); n != 1 || wait != 0 {
		t.Errorf("attempt after clear = (%d, %v), want (1, 0)", n, wait)
	}
	if n := auditCount(t, d, "throttle.cleared"); n != 1 {
		t.Errorf("%d audit rows, want 1", n)
	}
	if had, err := d.ClearThrottle(ctx, "nobody", Event{At: t0}); err != nil || had {
		t.Errorf("ClearThrottle of an unknown name = %v, %v; want false", had, err)
	}
}

func TestThrottleMemory(t *testing.T) {
	tests := []struct {
		name  string
		after time.Duration
		want  int
	}{
		{"a failure within a day adds to the run", 24 * time.Hour, 4},
		{"a failure more than a day later starts a new run", 24*time.Hour + time.Millisecond, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := openTest(t)
			for range 3 {
				attempt(t, d, "alice", t0, neverLock)
			}
			if n, _ := attempt(t, d, "alice", t0.Add(tt.after), neverLock); n != tt.want {
				t.Errorf("failures = %d, want %d", n, tt.want)
			}
		})
	}
}

func TestThrottleIgnoresCase(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	attempt(t, d, "Alice", t0, neverLock)
	if n, _ := attempt(t, d, "ALICE", t0, neverLock); n != 2 {
		t.Errorf("second attempt under another case = %d, want 2", n)
	}
	if n, _, _ := d.ThrottleOf(ctx, "alice"); n != 2 {
		t.Errorf("ThrottleOf(alice) = %d, want 2", n)
	}
	if had, _ := d.ClearThrottle(ctx, "aLiCe", Event{At: t0}); !had {
		t.Error("ClearThrottle under another case found nothing")
	}
	if n := count(t, d, `SELECT COUNT(*) FROM login_throttle`); n != 0 {
		t.Errorf("%d throttle rows left", n)
	}
}

func TestBeginSignInAttemptConcurrent(t *testing.T) {
	d := openTest(t)
	const n = 20
	got := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a, err := d.BeginSignInAttempt(context.Background(), "alice", t0, neverLock)
			got[i], errs[i] = a.Failures, err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	slices.Sort(got)
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("failure counts = %v, want 1..%d each once", got, n)
		}
	}
	if f, _, _ := d.ThrottleOf(context.Background(), "alice"); f != n {
		t.Errorf("ThrottleOf = %d, want %d", f, n)
	}
}

func TestPurgeThrottle(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	now := t0.Add(48 * time.Hour)
	attempt(t, d, "old", t0, neverLock)
	attempt(t, d, "recent", now.Add(-time.Hour), neverLock)
	// A long lock outlives the memory of its failures; purging must not lift it early.
	long := func(int) time.Duration { return 72 * time.Hour }
	attempt(t, d, "locked", t0, long)

	n, err := d.PurgeThrottle(ctx, now)
	if err != nil || n != 1 {
		t.Fatalf("PurgeThrottle = %d, %v; want 1", n, err)
	}
	for name, want := range map[string]int{"old": 0, "recent": 1, "locked": 1} {
		if got, _, _ := d.ThrottleOf(ctx, name); got != want {
			t.Errorf("%s: failures = %d, want %d", name, got, want)
		}
	}
}

// begin counts one attempt and returns it, for tests that give it back.
func begin(tb testing.TB, d *DB, name string, now time.Time) Attempt {
	tb.Helper()
	a, err := d.BeginSignInAttempt(context.Background(), name, now, lockFromTen)
	if err != nil {
		tb.Fatalf("BeginSignInAttempt(%q): %v", name, err)
	}
	return a
}

func TestReleaseSignInAttempt(t *testing.T) {
	ctx := context.Background()

	t.Run("an attempt never counted is a no-op", func(t *testing.T) {
		d := openTest(t)
		if err := d.ReleaseSignInAttempt(ctx, Attempt{Username: "nobody"}); err != nil {
			t.Fatal(err)
		}
		if n := count(t, d, `SELECT COUNT(*) FROM login_throttle`); n != 0 {
			t.Errorf("%d throttle rows created", n)
		}
	})
	t.Run("it gives back one attempt", func(t *testing.T) {
		d := openTest(t)
		attempt(t, d, "alice", t0, lockFromTen)
		attempt(t, d, "alice", t0, lockFromTen)
		if err := d.ReleaseSignInAttempt(ctx, begin(t, d, "alice", t0)); err != nil {
			t.Fatal(err)
		}
		if n, _, _ := d.ThrottleOf(ctx, "alice"); n != 2 {
			t.Errorf("failures = %d, want 2", n)
		}
		if n, _ := attempt(t, d, "alice", t0, lockFromTen); n != 3 {
			t.Errorf("next attempt = %d, want 3", n)
		}
	})
	t.Run("giving back the only attempt leaves no row", func(t *testing.T) {
		d := openTest(t)
		if err := d.ReleaseSignInAttempt(ctx, begin(t, d, "alice", t0)); err != nil {
			t.Fatal(err)
		}
		if n := count(t, d, `SELECT COUNT(*) FROM login_throttle`); n != 0 {
			t.Errorf("%d throttle rows left", n)
		}
	})
	t.Run("the lock of the given-back attempt is lifted", func(t *testing.T) {
		d := openTest(t)
		for range 9 {
			attempt(t, d, "alice", t0, lockFromTen)
		}
		if err := d.ReleaseSignInAttempt(ctx, begin(t, d, "alice", t0)); err != nil {
			t.Fatal(err)
		}
		if n, until, _ := d.ThrottleOf(ctx, "alice"); n != 9 || !until.IsZero() {
			t.Errorf("ThrottleOf = %d, %v; want 9 and no lock", n, until)
		}
		if n, wait := attempt(t, d, "alice", t0, lockFromTen); n != 10 || wait != 0 {
			t.Errorf("next attempt = (%d, %v), want (10, 0)", n, wait)
		}
	})
	t.Run("a right password after the back-off never lengthens the lock", func(t *testing.T) {
		d := openTest(t)
		now := t0
		for range 13 { // each failure waits out the lock of the one before
			_, wait := attempt(t, d, "alice", now, lockFromTen)
			if wait != 0 {
				t.Fatalf("attempt refused while the back-off had passed: %v", wait)
			}
			now = now.Add(10 * time.Minute)
		}
		right := begin(t, d, "alice", now)
		if right.Wait != 0 {
			t.Fatalf("the right password waits %v after the back-off passed", right.Wait)
		}
		if err := d.ReleaseSignInAttempt(ctx, right); err != nil {
			t.Fatal(err)
		}
		if n, until, _ := d.ThrottleOf(ctx, "alice"); n != 13 || until.After(now) {
			t.Errorf("ThrottleOf = %d, %v; want 13 failures and no lock after %v", n, until, now)
		}
		if _, wait := attempt(t, d, "alice", now.Add(time.Second), lockFromTen); wait != 0 {
			t.Errorf("the second step, a second later, waits %v", wait)
		}
	})
	t.Run("a lock armed by another attempt meanwhile stays", func(t *testing.T) {
		d := openTest(t)
		for range 8 {
			attempt(t, d, "alice", t0, lockFromTen)
		}
		mine := begin(t, d, "alice", t0) // the 9th, no lock
		later := t0.Add(time.Second)
		attempt(t, d, "alice", later, lockFromTen) // the 10th, a wrong guess locking for a minute
		if err := d.ReleaseSignInAttempt(ctx, mine); err != nil {
			t.Fatal(err)
		}
		if n, until, _ := d.ThrottleOf(ctx, "alice"); n != 9 || !until.Equal(later.Add(time.Minute)) {
			t.Errorf("ThrottleOf = %d, %v; want 9, still locked until %v", n, until, later.Add(time.Minute))
		}
	})
	t.Run("a refused attempt has nothing to give back", func(t *testing.T) {
		d := openTest(t)
		for range 10 {
			attempt(t, d, "alice", t0, lockFromTen)
		}
		refused := begin(t, d, "alice", t0)
		if refused.Wait == 0 {
			t.Fatal("the 11th attempt during the lock was let through")
		}
		if err := d.ReleaseSignInAttempt(ctx, refused); err != nil {
			t.Fatal(err)
		}
		if n, until, _ := d.ThrottleOf(ctx, "alice"); n != 10 || until.IsZero() {
			t.Errorf("ThrottleOf = %d, %v; a refused attempt changed the lock", n, until)
		}
	})
}

func TestThrottleRowsFromTheFutureAreExpired(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	ahead := t0.Add(3 * time.Hour) // the clock ran ahead, then stepped back to t0
	for range 12 {
		attempt(t, d, "alice", ahead, lockFromTen)
	}
	if n, wait := attempt(t, d, "alice", t0, lockFromTen); n != 1 || wait != 0 {
		t.Errorf("after the clock stepped back: attempt = (%d, %v), want a fresh count (1, 0)", n, wait)
	}
	for range 3 {
		attempt(t, d, "bob", ahead, lockFromTen)
	}
	if _, err := d.PurgeThrottle(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := d.ThrottleOf(ctx, "bob"); n != 0 {
		t.Errorf("purge kept a row from the future: %d failures", n)
	}
}

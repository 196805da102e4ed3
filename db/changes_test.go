package db

import (
	"context"
	"errors"
	"gatehouse/internal/dbtest"
	"sync"
	"testing"
	"time"
)

// openSecond opens the file of d a second time, as another process on the same database
// would: its own connections, its own change signal.
func openSecond(tb testing.TB, d *DB) *DB {
	tb.Helper()
	other, err := Open(context.Background(), d.dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { other.Close() })
	return other
}

func check(tb testing.TB, d *DB) uint64 {
	tb.Helper()
	g, err := d.Changes().Check(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

func TestChangesSeeACommitOfAnotherProcess(t *testing.T) {
	d := openTest(t)
	other := openSecond(t, d)
	before := check(t, d)
	mkUser(t, other, "written-elsewhere")
	after := check(t, d)
	if after == before {
		t.Fatalf("generation stayed %d after another store on the file committed", before)
	}
	if got := d.Changes().Generation(); got != after {
		t.Errorf("Generation() = %d, Check returned %d", got, after)
	}
}

func TestChangesStayStillWithoutCommits(t *testing.T) {
	d := openTest(t)
	other := openSecond(t, d)
	mkUser(t, d, "alice")
	g := check(t, d)
	// Reads, here and elsewhere, change nothing.
	if _, err := other.ListUsers(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ListUsers(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := check(t, d); got != g {
			t.Fatalf("generation moved from %d to %d without a commit", g, got)
		}
	}
}

// A process sees its own commit at once, without waiting for the watcher, and the commit
// is not announced a second time by the next check.
func TestChangesMoveAtOnceForOwnCommits(t *testing.T) {
	d := openTest(t)
	check(t, d) // the signal watches the store from here on
	before := d.Changes().Generation()
	mkUser(t, d, "alice")
	after := d.Changes().Generation()
	if after == before {
		t.Fatal("an own commit did not move the generation")
	}
	if got := check(t, d); got != after {
		t.Errorf("the next check moved the generation again, to %d from %d", got, after)
	}

	t.Run("also before anything asked the store", func(t *testing.T) {
		fresh := openSecond(t, d)
		before := fresh.Changes().Generation()
		mkUser(t, fresh, "bob")
		if fresh.Changes().Generation() == before {
			t.Fatal("an own commit did not move the generation of a store never asked")
		}
	})
}

func TestWatchSeesAnotherProcessWithinAPollInterval(t *testing.T) {
	d := openTest(t)
	other := openSecond(t, d)
	check(t, d)
	moved := make(chan uint64, 16)
	unsubscribe := d.Changes().Subscribe(func(g uint64) {
		select {
		case moved <- g:
		default:
		}
	})
	defer unsubscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Changes().Watch(ctx, nil)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Watch did not return within 5 s of its context ending")
		}
	}()

	start := time.Now()
	mkUser(t, other, "written-elsewhere")
	select {
	case g := <-moved:
		elapsed := time.Since(start)
		t.Logf("seen after %v (generation %d)", elapsed, g)
		if elapsed > time.Second {
			t.Errorf("the watcher took %v to see the change, over a second", elapsed)
		}
		if g != d.Changes().Generation() {
			t.Errorf("subscriber got %d, generation is %d", g, d.Changes().Generation())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher did not see the other store's commit within 5 s")
	}

	t.Run("a subscriber that left hears nothing more", func(t *testing.T) {
		unsubscribe()
		for len(moved) > 0 {
			<-moved
		}
		mkUser(t, d, "after-unsubscribe")
		select {
		case g := <-moved:
			t.Fatalf("an unsubscribed function was called with %d", g)
		case <-time.After(3 * ChangePollInterval):
		}
	})
}

// flakySource fails the asks it is told to, and answers "changed" for every other.
type flakySource struct {
	mu    sync.Mutex
	fails []bool
	asked chan struct{}
}

func (s *flakySource) changed(context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.asked <- struct{}{} }()
	if len(s.fails) > 0 {
		fail := s.fails[0]
		s.fails = s.fails[1:]
		if fail {
			return true, errors.New("disk on fire")
		}
	}
	return false, nil
}

func (s *flakySource) active() bool { return true }
func (s *flakySource) wait(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Millisecond):
	}
}
func (s *flakySource) close() error { return nil }

// Trouble is reported once when it starts and once when it ends, not at every ask, and
// every failed ask moves the generation so copies are read again.
func TestWatchReportsTroubleOnceAndRecovery(t *testing.T) {
	src := &flakySource{fails: []bool{false, true, true, true, false, false}, asked: make(chan struct{}, 100)}
	c := newChanges(src)
	var mu sync.Mutex
	var reports []error
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Watch(ctx, func(err error) {
			mu.Lock()
			reports = append(reports, err)
			mu.Unlock()
		})
	}()
	for i := range 6 {
		select {
		case <-src.asked:
		case <-time.After(5 * time.Second):
			t.Fatalf("ask %d did not come within 5 s", i+1)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 2 || reports[0] == nil || reports[1] != nil {
		t.Fatalf("reports %v, want the error once, then nil once", reports)
	}
	if g := c.Generation(); g != 3 {
		t.Errorf("generation %d after three failed asks, want 3", g)
	}
}

func TestChangesRefuseAfterClose(t *testing.T) {
	d, err := Open(context.Background(), dbtest.DSN(t, migrateAt))
	if err != nil {
		t.Fatal(err)
	}
	check(t, d)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	before := d.Changes().Generation()
	if _, err := d.Changes().Check(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("a check on a closed store: %v, want ErrClosed", err)
	}
	if err := d.Audit(context.Background(), event("late.write", t0)); !errors.Is(err, ErrClosed) {
		t.Errorf("a write to a closed store: %v, want ErrClosed", err)
	}
	if d.Changes().Generation() == before {
		t.Error("a failed check left the generation as it was")
	}
}

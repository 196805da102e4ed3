package db

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"gatehouse/internal/dbtest"
)

func postgresOnly(tb testing.TB) {
	tb.Helper()
	if !dbtest.Postgres() {
		tb.Skip("about the PostgreSQL store; runs in the PostgreSQL pass")
	}
}

// Two processes starting at once on a new database migrate it once between them, and
// neither fails.
func TestPostgresMigratesOnceWhenTwoStartAtOnce(t *testing.T) {
	postgresOnly(t)
	dsn := dbtest.EmptyDSN(t)
	var wg sync.WaitGroup
	stores := make([]*DB, 2)
	errs := make([]error, 2)
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(context.Background(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	d := stores[0]
	if n, distinct := count(t, d, `SELECT COUNT(*) FROM schema_migrations`),
		count(t, d, `SELECT COUNT(DISTINCT version) FROM schema_migrations`); n != SchemaVersion() || distinct != n {
		t.Errorf("schema_migrations holds %d rows (%d versions), want %d, each once", n, distinct, SchemaVersion())
	}
	if v, err := stores[1].Version(context.Background()); err != nil || v != SchemaVersion() {
		t.Errorf("version %d, %v; want %d", v, err, SchemaVersion())
	}
}

// Inspecting a PostgreSQL database never creates or migrates anything in it.
func TestPostgresOpenExistingNeverMigrates(t *testing.T) {
	postgresOnly(t)
	dsn := dbtest.EmptyDSN(t)
	if d, err := OpenExisting(context.Background(), dsn); !errors.Is(err, ErrNotInitialised) {
		if d != nil {
			d.Close()
		}
		t.Fatalf("OpenExisting on an empty database: %v, want ErrNotInitialised", err)
	}
	d, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if n := count(t, d, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()
		AND table_name NOT IN ('schema_migrations', 'change_revision')`); n == 0 {
		t.Fatal("Open created no tables")
	}
	e, err := OpenExisting(context.Background(), dsn)
	if err != nil {
		t.Fatalf("OpenExisting after Open: %v", err)
	}
	e.Close()
}

// Writers of two processes take turns: twenty sign-in attempts counted at once through two
// stores are twenty failures, none lost between a read and its write.
func TestPostgresWritesOfTwoProcessesTakeTurns(t *testing.T) {
	postgresOnly(t)
	d := openTest(t)
	other := openSecond(t, d)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		store := d
		if i%2 == 1 {
			store = other
		}
		wg.Go(func() {
			_, errs[i] = store.BeginSignInAttempt(context.Background(), "alice", t0, neverLock)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if failures, _, err := d.ThrottleOf(context.Background(), "alice"); err != nil || failures != n {
		t.Errorf("failures %d, %v; want %d", failures, err, n)
	}
}

// Two processes, one code: exactly one of them accepts it.
func TestPostgresReplayGuardAcrossProcesses(t *testing.T) {
	postgresOnly(t)
	d := openTest(t)
	other := openSecond(t, d)
	u := mkUser(t, d, "alice")
	mkFactor(t, d, u, mkSession(t, d, u.ID, StageFull, t0).ID)
	for step := int64(200); step < 210; step++ {
		var wg sync.WaitGroup
		var oks [2]bool
		var errs [2]error
		for i, s := range []*DB{d, other} {
			wg.Go(func() { oks[i], errs[i] = s.ClaimTOTPStep(context.Background(), u.ID, step) })
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil || oks[0] == oks[1] {
			t.Fatalf("step %d: claims %v, errors %v; want exactly one accepted", step, oks, errs)
		}
	}
}

// The listening connection, killed by the server, comes back by itself: the loss is
// reported once and read as "changed", and later commits are still seen within a second.
func TestPostgresListenerReconnects(t *testing.T) {
	postgresOnly(t)
	d := openTest(t)
	other := openSecond(t, d)
	check(t, d)
	moved := make(chan uint64, 64)
	defer d.Changes().Subscribe(func(g uint64) {
		select {
		case moved <- g:
		default:
		}
	})()
	reports := make(chan error, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Changes().Watch(ctx, func(err error) { reports <- err })
	}()
	defer func() { cancel(); <-done }()
	listener := d.changes.src.(*pgListener)
	waitFor(t, "the listener to connect", func() bool { return listener.listenerPID() != 0 })

	seenWithin(t, moved, func() { mkUser(t, other, "before") })
	pid := listener.listenerPID()
	if count(t, other, `SELECT COUNT(*) FROM (SELECT pg_terminate_backend(?)) t`, int64(pid)) != 1 {
		t.Fatal("could not end the listening connection")
	}
	select {
	case err := <-reports:
		if err == nil {
			t.Fatal("the first report after the loss is a recovery, want the loss")
		}
		t.Logf("reported: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the loss of the listening connection was not reported")
	}
	waitFor(t, "the listener to reconnect", func() bool { p := listener.listenerPID(); return p != 0 && p != pid })
	drain(moved)
	seenWithin(t, moved, func() { mkUser(t, other, "after") })
}

func waitFor(tb testing.TB, what string, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func drain(c chan uint64) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// seenWithin runs commit and fails unless the generation moves within a second.
func seenWithin(tb testing.TB, moved chan uint64, commit func()) {
	tb.Helper()
	start := time.Now()
	commit()
	select {
	case <-moved:
		if elapsed := time.Since(start); elapsed > time.Second {
			tb.Errorf("the change was seen after %v, over a second", elapsed)
		}
	case <-time.After(5 * time.Second):
		tb.Fatal("the change was not seen within 5 s")
	}
}

// The URL a store shows never holds its password.
func TestPostgresPathHidesThePassword(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://gate:s3cret@db.internal:5432/gatehouse?sslmode=require":      "postgres://gate:xxxxx@db.internal:5432/gatehouse?sslmode=require",
		"postgresql://db.internal/gatehouse?password=s3cret&sslmode=verify-full": "postgresql://db.internal/gatehouse?password=xxxxx&sslmode=verify-full",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// The store counts what it sends its database, so the round trips of a page can be read.
func TestRoundTripsCountEveryRequestToTheDatabase(t *testing.T) {
	d := openTest(t)
	mkUser(t, d, "alice")
	before := d.RoundTrips()
	if _, err := d.ListUsers(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := d.RoundTrips() - before; got < 1 || got > 2 {
		t.Errorf("a list of users took %d round trips, want 1 (2 with its first prepare)", got)
	}
	before = d.RoundTrips()
	if _, err := d.ListUsers(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := d.RoundTrips() - before; got != 1 {
		t.Errorf("a prepared list of users took %d round trips, want 1", got)
	}
	// The exact change check asks the database too, on SQLite on a connection of its own.
	if _, err := d.Changes().Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	before = d.RoundTrips()
	if _, err := d.Changes().Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := d.RoundTrips() - before; got != 1 {
		t.Errorf("a change check took %d round trips, want 1", got)
	}
}

package handlers

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"gatehouse/db"
	"gatehouse/internal/dbtest"
)

// A request that finds the database server gone is a 503 page with the request id, never
// a 500 and never the driver's words; /readyz says not ready meanwhile, and both recover by
// themselves once the server is back, without reopening the store.
func TestUnreachableDatabaseIsA503AndRecovers(t *testing.T) {
	if !dbtest.Postgres() {
		t.Skip("needs a database server to lose; runs in the PostgreSQL pass")
	}
	proxy := dbtest.NewProxy(t, dbtest.DSN(t, migrateStore))
	store, err := db.Open(context.Background(), proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	a := buildTestAppOn(t, store, false)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	wantStatus(t, c.get("/"), http.StatusOK)
	wantStatus(t, a.client().get("/readyz"), http.StatusOK)

	proxy.Cut()
	resp := c.get("/")
	wantStatus(t, resp, http.StatusServiceUnavailable)
	b := body(t, resp)
	rid := resp.Header.Get("X-Request-ID")
	if rid == "" || !strings.Contains(b, `<code id="request-id">`+rid+`</code>`) {
		t.Fatalf("page lacks request id %q: %.1000s", rid, b)
	}
	if !strings.Contains(b, "cannot reach its database") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the page does not say the database is out of reach, with Retry-After: %.1500s", b)
	}
	for _, leak := range []string{"dial", "connect", "127.0.0.1", "SQLSTATE", "pgx", "postgres", "EOF"} {
		if strings.Contains(b, leak) {
			t.Errorf("page leaks %q", leak)
		}
	}
	if log := a.log.String(); !strings.Contains(log, rid) || !strings.Contains(log, "database unavailable") {
		t.Errorf("the log lacks the cause under request id %s:\n%s", rid, log)
	}
	wantStatus(t, a.client().get("/readyz"), http.StatusServiceUnavailable)

	proxy.Restore(t)
	deadline := time.Now().Add(20 * time.Second)
	for a.client().get("/readyz").StatusCode != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover within 20s of the server's return")
		}
		time.Sleep(100 * time.Millisecond)
	}
	wantStatus(t, c.get("/"), http.StatusOK)
}

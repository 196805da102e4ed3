package handlers

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"gatehouse/db"
)

// A sign-in that finds every hashing slot taken is told to come back shortly: a 429 with
// Retry-After and the page's own words, counted as throttled, never a 5xx.
func TestBusyHashingIsRefusedWith429(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	a.hasher.LimitRate(0.001, 1) // one check now, the next one not within the sign-in's wait
	a.client().login("alice", "correct horse battery")

	c := a.client()
	c.get("/login")
	resp := c.post("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"}})
	wantStatus(t, resp, http.StatusTooManyRequests)
	if got := resp.Header.Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After %q, want 5", got)
	}
	b := body(t, resp)
	for _, want := range []string{"The portal is handling many sign-ins right now.", "Try again in a few seconds."} {
		if !strings.Contains(b, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if out := a.scrape(t); !strings.Contains(out, `gatehouse_security_events_total{kind="throttled"} 1`) {
		t.Errorf("not counted as throttled:\n%s", grep(out, "security_events"))
	}
}

package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/db"
)

var volatile = regexp.MustCompile(`name="_csrf" value="[^"]*"|<code id="request-id">[^<]*</code>|value="[^"]*"`)

func TestSignInFailuresLookAlike(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	carol := a.createUser("carol", db.RoleStaff, "correct horse battery")
	if _, err := a.db.SetDisabled(context.Background(), carol.ID, true, db.Event{}); err != nil {
		t.Fatal(err)
	}
	attempt := func(user, pw string) (int, string) {
		c := a.client()
		c.get("/login")
		resp := c.post("/login", url.Values{"username": {user}, "password": {pw}})
		return resp.StatusCode, volatile.ReplaceAllString(body(t, resp), "")
	}
	s1, b1 := attempt("nobody", "correct horse battery")
	s2, b2 := attempt("alice", "wrong horse battery")
	s3, b3 := attempt("carol", "correct horse battery")
	if s1 != http.StatusUnauthorized || s2 != s1 || s3 != s1 {
		t.Fatalf("statuses %d %d %d, want all 401", s1, s2, s3)
	}
	if b1 != b2 || b2 != b3 {
		t.Fatalf("bodies differ:\nunknown: %s\nwrong:   %s\ndisabled:%s", b1, b2, b3)
	}
	if !strings.Contains(b1, `role="alert"`) {
		t.Error("the refusal is not announced as an alert")
	}
}

func TestSignInThrottle(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	a.createUser("bob", db.RoleStaff, "correct horse battery")
	for i := 1; i <= lockAfter; i++ {
		c := a.client()
		c.get("/login")
		// A fresh address each time: the account throttle must not care.
		resp := c.post("/login", url.Values{"username": {"alice"}, "password": {"wrong " + strconv.Itoa(i)}})
		wantStatus(t, resp, http.StatusUnauthorized)
	}
	c := a.client()
	c.get("/login")
	resp := c.post("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"}})
	wantStatus(t, resp, http.StatusTooManyRequests)
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > 3600 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	if b := body(t, resp); !strings.Contains(b, "Try again in") || !strings.Contains(b, `id="request-id"`) {
		t.Errorf("429 page does not say when to try again: %.500s", b)
	}
	if c.cookie("gatehouse_session") != "" {
		t.Fatal("a throttled attempt got a session")
	}

	t.Run("other accounts keep working", func(t *testing.T) {
		a.client().login("bob", "correct horse battery")
	})
	t.Run("the lock passes with time", func(t *testing.T) {
		a.advance(time.Duration(secs+1) * time.Second)
		a.client().login("alice", "correct horse battery")
	})
	t.Run("unlock clears it at once", func(t *testing.T) {
		for i := 0; i < lockAfter; i++ {
			c := a.client()
			c.get("/login")
			c.post("/login", url.Values{"username": {"alice"}, "password": {"wrong"}})
		}
		c := a.client()
		c.get("/login")
		wantStatus(t, c.post("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"}}), http.StatusTooManyRequests)
		if had, err := a.db.ClearThrottle(context.Background(), "alice", db.Event{}); err != nil || !had {
			t.Fatalf("unlock: %v %v", had, err)
		}
		a.client().login("alice", "correct horse battery")
	})
	t.Run("unknown accounts are throttled the same way", func(t *testing.T) {
		var last *http.Response
		for i := 0; i <= lockAfter; i++ {
			c := a.client()
			c.get("/login")
			last = c.post("/login", url.Values{"username": {"ghost"}, "password": {"whatever"}})
		}
		wantStatus(t, last, http.StatusTooManyRequests)
	})
}

func TestAddressThrottle(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client() // one address spraying many account names
	var resp *http.Response
	for i := 0; i <= addrFailLimit; i++ {
		c.get("/login")
		resp = c.post("/login", url.Values{"username": {"user" + strconv.Itoa(i)}, "password": {"nope"}})
	}
	wantStatus(t, resp, http.StatusTooManyRequests)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	l := newAddrLimiter(1000, 5, time.Minute)
	now := time.Now()
	for i := 0; i < 100_000; i++ {
		l.fail("10."+strconv.Itoa(i/65536)+"."+strconv.Itoa(i/256%256)+"."+strconv.Itoa(i%256), now)
	}
	if n := l.size(); n > 1000 {
		t.Fatalf("limiter holds %d entries, cap 1000", n)
	}
}

func TestSignInRedirectsOnlyToLocalPaths(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	for _, next := range []string{
		"https://evil.example", "//evil.example", `/\evil.example`, `\\evil.example`, "https:evil.example",
		"%2F%2Fevil.example", "/%2F/evil.example", "/%09/evil.example", "javascript:alert(1)",
		"http://localhost:8080@evil.example", "/login?next=/login", "/logout", "/%5Cevil.example",
	} {
		t.Run(next, func(t *testing.T) {
			c := a.client()
			c.get("/login")
			resp := c.post("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"}, "next": {next}})
			loc := resp.Header.Get("Location")
			if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, `/\`) || strings.Contains(loc, "evil") {
				t.Fatalf("next=%q led to %q", next, loc)
			}
			if strings.HasPrefix(loc, "/login") || strings.HasPrefix(loc, "/logout") {
				t.Fatalf("next=%q would loop: %q", next, loc)
			}
		})
	}
	t.Run("a local path is kept through sign-in", func(t *testing.T) {
		c := a.client()
		resp := c.get("/account/sessions?x=1")
		wantRedirect(t, resp, "/login?next=")
		c.get(resp.Header.Get("Location"))
		resp = c.post("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"},
			"next": {"/account/sessions?x=1"}})
		wantRedirect(t, resp, "/account/sessions?x=1")
	})
}

func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "//evil", `/\evil`, "/a?b=c", "%2F%2Fx", "/\t/x", "https://x", "/login", "/é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := safeNext(in)
		if !strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") || strings.HasPrefix(out, `/\`) {
			t.Fatalf("safeNext(%q) = %q", in, out)
		}
		u, err := url.Parse(out)
		if err != nil || u.Host != "" || u.Scheme != "" {
			t.Fatalf("safeNext(%q) = %q parses to host %q", in, out, u.Host)
		}
		if strings.ContainsAny(out, "\r\n\t\\") {
			t.Fatalf("safeNext(%q) = %q has control characters", in, out)
		}
	})
}

func TestPasswordChange(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	other := a.client()
	other.login("alice", "correct horse battery")

	for _, tc := range []struct {
		name, current, next, wantText string
	}{
		{"missing current password", "", "a brand new passphrase", "Enter your current password"},
		{"wrong current password", "wrong horse battery", "a brand new passphrase", "not your current password"},
		{"too short", "correct horse battery", "short", "12"},
		{"common password", "correct horse battery", "passwordpassword", "common"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.get("/account/password")
			resp := c.post("/account/password", url.Values{"current_password": {tc.current}, "new_password": {tc.next}})
			wantStatus(t, resp, http.StatusUnprocessableEntity)
			if b := body(t, resp); !strings.Contains(b, tc.wantText) {
				t.Fatalf("missing %q in %.1500s", tc.wantText, b)
			}
		})
	}
	c.get("/account/password")
	resp := c.post("/account/password", url.Values{"current_password": {"correct horse battery"},
		"new_password": {"a brand new passphrase 🐝"}})
	wantRedirect(t, resp, "/account?msg=password-changed")
	wantStatus(t, c.get("/"), http.StatusOK)
	wantRedirect(t, other.get("/"), "/login")
	fresh := a.client()
	fresh.get("/login")
	wantStatus(t, fresh.post("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"}}), http.StatusUnauthorized)
	fresh.login("alice", "a brand new passphrase 🐝")
}

func TestAccountSessions(t *testing.T) {
	a := newTestApp(t)
	alice := a.createUser("alice", db.RoleStaff, "correct horse battery")
	bobUser := a.createUser("bob", db.RoleStaff, "correct horse battery")
	alice1, alice2, bob := a.client(), a.client(), a.client()
	alice1.login("alice", "correct horse battery")
	alice2.login("alice", "correct horse battery")
	bob.login("bob", "correct horse battery")

	list := body(t, alice1.get("/account/sessions"))
	ids := regexp.MustCompile(`data-session-id="(\d+)"`).FindAllStringSubmatch(list, -1)
	if len(ids) != 2 || !strings.Contains(list, "This session") {
		t.Fatalf("want alice's two sessions, one marked current: %.2000s", list)
	}
	bobSessions, _ := a.db.ListSessions(context.Background(), bobUser.ID)
	if len(bobSessions) != 1 {
		t.Fatalf("bob has %d sessions", len(bobSessions))
	}
	bobID := strconv.FormatInt(bobSessions[0].ID, 10)

	t.Run("another user's session id is a 404 and stays alive", func(t *testing.T) {
		alice1.get("/account/sessions")
		wantStatus(t, alice1.post("/account/sessions/"+bobID+"/revoke", nil), http.StatusNotFound)
		wantStatus(t, bob.get("/"), http.StatusOK)
	})
	t.Run("malformed ids are 404s", func(t *testing.T) {
		for _, id := range []string{"abc", "-1", "0", "99999999999999999999"} {
			alice1.get("/account/sessions")
			wantStatus(t, alice1.post("/account/sessions/"+id+"/revoke", nil), http.StatusNotFound)
		}
	})
	t.Run("revoking one of my sessions ends it only", func(t *testing.T) {
		s2, _ := a.db.ListSessions(context.Background(), alice.ID)
		var target string
		current := a.sessionID(alice1)
		for _, s := range s2 {
			if s.ID != current {
				target = strconv.FormatInt(s.ID, 10)
			}
		}
		alice1.get("/account/sessions")
		wantRedirect(t, alice1.post("/account/sessions/"+target+"/revoke", nil), "/account/sessions?msg=session-revoked")
		wantRedirect(t, alice2.get("/"), "/login")
		wantStatus(t, alice1.get("/"), http.StatusOK)
	})
	t.Run("revoke others keeps this one", func(t *testing.T) {
		alice3 := a.client()
		alice3.login("alice", "correct horse battery")
		alice1.get("/account/sessions")
		wantRedirect(t, alice1.post("/account/sessions/revoke-others", nil), "/account/sessions?msg=sessions-revoked")
		wantRedirect(t, alice3.get("/"), "/login")
		wantStatus(t, alice1.get("/"), http.StatusOK)
		wantStatus(t, bob.get("/"), http.StatusOK)
	})
}

func (a *testApp) sessionID(c *client) int64 {
	a.tb.Helper()
	s, _, err := a.db.SessionByTokenHash(context.Background(), hashOf(c.cookie("gatehouse_session")))
	if err != nil {
		a.tb.Fatal(err)
	}
	return s.ID
}

// TestLimiterMemoryUnderAFlood measures the address limiter's heap after failures from
// 100,000 distinct addresses with the production cap, and bounds it.
func TestLimiterMemoryUnderAFlood(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l := newAddrLimiter(addrMaxEntries, addrFailLimit, addrFailWindow)
	now := time.Now()
	for i := 0; i < 100_000; i++ {
		l.fail(fmt.Sprintf("2001:db8::%x:%x", i>>16, i&0xffff), now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("address limiter after 100,000 addresses: %d entries, %.1f MiB heap", l.size(), float64(used)/(1<<20))
	if l.size() > addrMaxEntries || used > 8<<20 {
		t.Fatalf("%d entries, %d bytes", l.size(), used)
	}
	runtime.KeepAlive(l)
}

package main

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// accountLockAfter is the consecutive failure at which the portal locks an account.
const accountLockAfter = 10

// TestPostgresInstancesAreOnePortal runs two serve processes of the built binary on one
// PostgreSQL database, each on its own port, with the command line as a third party, and
// proves every promise of several instances: sessions, revocation at the next request,
// notices within a second, the shared throttle, the replay guard, health counts and audit.
func TestPostgresInstancesAreOnePortal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real servers on PostgreSQL")
	}
	totpUsers := []string{"otp0", "otp1", "otp2", "otp3", "otp4"}
	p := newPGPortal(t, newPostgresDatabase(t, testPostgresServer(t)), []string{"sam", "lock"}, totpUsers)
	one, two := p.serve(t), p.serve(t)
	rootOne := newWebClient("http://" + one.addr)
	rootOne.signIn(t, "root")
	rootTwo := sameBrowser(rootOne, two.addr)

	t.Run("a session made on one instance works on the other", func(t *testing.T) {
		sam := newWebClient("http://" + one.addr)
		sam.signIn(t, "sam")
		if code, loc, _ := sameBrowser(sam, two.addr).page(t, "/"); code != http.StatusOK {
			t.Fatalf("the session on the other instance: %d to %q, want the dashboard", code, loc)
		}
	})
	t.Run("a notice posted on one shows on the other within a second, and goes once archived", func(t *testing.T) {
		sam := newWebClient("http://" + two.addr)
		sam.signIn(t, "sam")
		sam.banners(t) // the other instance has its notices in memory before the post
		code, loc, err := rootOne.post("/admin/notices", url.Values{"title": {"Lunch"}, "body": {"Pizza at one."},
			"kind": {"must_read"}, "severity": {"info"}, "audience": {"everyone"}})
		committed := time.Now()
		m := regexp.MustCompile(`^/admin/notices/(\d+)`).FindStringSubmatch(loc)
		if err != nil || code != http.StatusSeeOther || m == nil {
			t.Fatalf("posting on one: %d to %q, %v", code, loc, err)
		}
		took := showsWithinASecond(t, sam, committed, "the notice posted on the other instance", func(b map[string]string) bool { return b[m[1]] == "true" })
		t.Logf("shown after %v", took.Round(time.Millisecond))
		p.command(t, "", "notice archive", "--as", "root", m[1])
		committed = time.Now()
		took = showsWithinASecond(t, sam, committed, "the archived notice", func(b map[string]string) bool { _, ok := b[m[1]]; return !ok })
		t.Logf("gone after %v", took.Round(time.Millisecond))
	})
	t.Run("revoking on one instance, or from the command line, is refused on the other at the next request", func(t *testing.T) {
		sam := newWebClient("http://" + one.addr)
		sam.signIn(t, "sam")
		if code, _, err := rootOne.post("/admin/users/"+userID(t, p, "sam")+"/revoke-sessions", url.Values{}); err != nil || code != http.StatusSeeOther {
			t.Fatalf("revoking on one: %d, %v", code, err)
		}
		assertEnded(t, sameBrowser(sam, two.addr), "after a revoke on the other instance")
		sam.signIn(t, "sam")
		p.command(t, "", "sessions revoke", "--user", "sam")
		assertEnded(t, sameBrowser(sam, two.addr), "after sessions revoke")
		sam.signIn(t, "sam")
		p.command(t, "", "user disable", "sam")
		assertEnded(t, sameBrowser(sam, two.addr), "after user disable")
		if code, _ := sameBrowser(sam, two.addr).passwordStep(t, "sam"); code != http.StatusUnauthorized {
			t.Errorf("a disabled user's sign-in on the other instance: %d, want 401", code)
		}
		p.command(t, "", "user enable", "sam")
	})
	t.Run("failures split across instances lock the account on both", func(t *testing.T) {
		for i := range accountLockAfter {
			base := []string{one.addr, two.addr}[i%2]
			c := newWebClient("http://" + base)
			code, _, err := c.post("/login", url.Values{"username": {"lock"}, "password": {"not the password"}})
			if err != nil || code != http.StatusUnauthorized {
				t.Fatalf("failure %d on %s: %d, %v", i+1, base, code, err)
			}
		}
		for _, addr := range []string{one.addr, two.addr} {
			if code, _ := newWebClient("http://"+addr).passwordStep(t, "lock"); code != http.StatusTooManyRequests {
				t.Errorf("the right password on %s after %d failures split across both: %d, want 429", addr, accountLockAfter, code)
			}
		}
	})
	t.Run("one code posted to both instances at once is accepted exactly once", func(t *testing.T) {
		for _, name := range totpUsers {
			acceptedOnce(t, p, name, one.addr, two.addr)
		}
	})
	t.Run("health counts and the audit log are the same on both", func(t *testing.T) {
		// Stale cookies and refused forms on one instance; code replays were refused above.
		stale := newWebClient("http://" + one.addr)
		stale.http.Jar.SetCookies(&url.URL{Scheme: "http", Host: one.addr}, []*http.Cookie{{Name: "gatehouse_session", Value: auth.NewToken()}})
		stale.get("/")
		req, _ := http.NewRequest(http.MethodPost, "http://"+one.addr+"/login", strings.NewReader("username=x&password=y"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		status(http.DefaultClient.Do(req))
		panelsAgree(t, rootOne, rootTwo, map[string]int{"Stale cookies cleared": 1, "Refused forms (CSRF)": 1,
			"Refused code replays": len(totpUsers), "Throttled attempts": 2, "Failed sign-ins": accountLockAfter})
		csvOne, csvTwo := auditCSV(t, rootOne), auditCSV(t, rootTwo)
		if csvOne != csvTwo {
			t.Errorf("the audit logs differ:\none:\n%s\ntwo:\n%s", csvOne, csvTwo)
		}
		for _, ev := range []string{"signin.throttled", "sessions.revoked", "user.disabled", "notice.archived"} {
			if !strings.Contains(csvOne, ev) {
				t.Errorf("the audit log has no %s:\n%s", ev, csvOne)
			}
		}
	})
}

func userID(tb testing.TB, p *pgPortal, username string) string {
	tb.Helper()
	store, err := db.OpenExisting(context.Background(), p.url)
	if err != nil {
		tb.Fatal(err)
	}
	defer store.Close()
	return strconv.FormatInt(userNamed(tb, store, username).ID, 10)
}

func assertEnded(tb testing.TB, c *webClient, when string) {
	tb.Helper()
	if code, loc, _ := c.page(tb, "/"); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login") {
		tb.Fatalf("the next request %s: %d to %q, want the sign-in page", when, code, loc)
	}
}

// acceptedOnce starts name's sign-in on both instances, posts one current code to both at
// the same moment, and fails unless exactly one accepts it.
func acceptedOnce(tb testing.TB, p *pgPortal, name string, addrs ...string) {
	tb.Helper()
	clients := make([]*webClient, len(addrs))
	for i, addr := range addrs {
		clients[i] = newWebClient("http://" + addr)
		if code, loc := clients[i].passwordStep(tb, name); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login/mfa") {
			tb.Fatalf("%s's password step on %s: %d to %q", name, addr, code, loc)
		}
	}
	code := auth.TOTPCode(p.secrets[name], time.Now())
	start := make(chan struct{})
	answers := make([]string, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			status, loc, err := c.post("/login/mfa", url.Values{"code": {code}})
			answers[i] = strconv.Itoa(status) + " " + loc
			if err != nil {
				answers[i] = err.Error()
			}
		}()
	}
	close(start)
	wg.Wait()
	accepted := 0
	for _, a := range answers {
		if a == "303 /" {
			accepted++
		}
	}
	if accepted != 1 {
		tb.Errorf("%s's one code posted to both instances at once: answers %q, want exactly one 303 to /", name, answers)
	}
}

var healthRow = regexp.MustCompile(`<th scope="row">([^<]+)</th><td>(\d+)</td>`)

// healthPanel reads the counts of the last hour from c's admin page.
func healthPanel(tb testing.TB, c *webClient) map[string]int {
	tb.Helper()
	_, _, body := c.page(tb, "/admin")
	got := map[string]int{}
	for _, m := range healthRow.FindAllStringSubmatch(body, -1) {
		got[m[1]], _ = strconv.Atoi(m[2])
	}
	return got
}

// panelsAgree asks both admin pages until their health panels show the same counts, each
// at least as high as least says (counts are written within half a second), and fails
// after five seconds.
func panelsAgree(tb testing.TB, a, b *webClient, least map[string]int) {
	tb.Helper()
	var pa, pb map[string]int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		pa, pb = healthPanel(tb, a), healthPanel(tb, b)
		ok := len(pa) > 0 && maps.Equal(pa, pb)
		for k, v := range least {
			ok = ok && pa[k] >= v
		}
		if ok {
			return
		}
	}
	tb.Errorf("health panels: %s shows %v, %s shows %v; want the same, with at least %v", a.base, pa, b.base, pb, least)
}

func auditCSV(tb testing.TB, c *webClient) string {
	tb.Helper()
	code, _, body := c.page(tb, "/admin/audit.csv")
	if code != http.StatusOK {
		tb.Fatalf("audit.csv at %s: %d", c.base, code)
	}
	return body
}

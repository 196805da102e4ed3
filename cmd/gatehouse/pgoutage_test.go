package main

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/db"
	"gatehouse/internal/testkit"
)

// outageLoad drives page views, sign-ins and notice posts at two instances, counting every
// answer by status, and keeps the notices whose post was acknowledged with a 303.
type outageLoad struct {
	addrs []string
	mu    sync.Mutex
	codes map[int]int    // answers of the pages and forms, by status (0: no answer)
	ready map[string]int // /readyz answers by "addr status"
	acked []int64        // notices whose post was answered 303
}

func (l *outageLoad) count(code int) {
	l.mu.Lock()
	l.codes[code]++
	l.mu.Unlock()
}

func (l *outageLoad) snapshot() (codes map[int]int, acked []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	codes = map[int]int{}
	for k, v := range l.codes {
		codes[k] = v
	}
	return codes, append([]int64(nil), l.acked...)
}

// viewer keeps asking for the dashboard with a signed-in session, alternating instances.
func (l *outageLoad) viewer(c *webClient, stop <-chan struct{}) {
	for i := 0; i < 100000; i++ {
		select {
		case <-stop:
			return
		default:
		}
		code, _ := sameBrowser(c, l.addrs[i%2]).get("/")
		l.count(code)
		time.Sleep(5 * time.Millisecond)
	}
}

// signer keeps signing in from new browsers.
func (l *outageLoad) signer(username string, stop <-chan struct{}) {
	for i := 0; i < 100000; i++ {
		select {
		case <-stop:
			return
		default:
		}
		code, _, _ := newWebClient("http://"+l.addrs[i%2]).post("/login",
			url.Values{"username": {username}, "password": {"correct horse battery"}})
		l.count(code)
		time.Sleep(20 * time.Millisecond)
	}
}

// poster keeps posting notices and keeps the id of each one acknowledged with a 303.
func (l *outageLoad) poster(c *webClient, stop <-chan struct{}) {
	for i := 0; i < 100000; i++ {
		select {
		case <-stop:
			return
		default:
		}
		code, loc, _ := sameBrowser(c, l.addrs[i%2]).post("/admin/notices", url.Values{"title": {"Outage " + strconv.Itoa(i)},
			"body": {"Body"}, "kind": {"normal"}, "severity": {"info"}, "audience": {"everyone"}})
		l.count(code)
		if code == http.StatusSeeOther {
			id, err := strconv.ParseInt(strings.SplitN(strings.TrimPrefix(loc, "/admin/notices/"), "?", 2)[0], 10, 64)
			l.mu.Lock()
			if err == nil {
				l.acked = append(l.acked, id)
			} else {
				l.codes[-1]++ // a 303 that names no notice: reported below
			}
			l.mu.Unlock()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readiness reports whether /readyz on every instance answers want.
func (l *outageLoad) readiness(want int) bool {
	client := &http.Client{Timeout: 5 * time.Second}
	for _, addr := range l.addrs {
		code := status(client.Get("http://" + addr + "/readyz"))
		l.mu.Lock()
		l.ready[addr+" "+strconv.Itoa(code)]++
		l.mu.Unlock()
		if code != want {
			return false
		}
	}
	return true
}

// waitFor asks cond every 50 ms until it holds, for at most limit.
func waitFor(limit time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

// TestPostgresOutage stops the PostgreSQL server hard under a load of page views, sign-ins
// and notice posts at two instances, and starts it again: every answer meanwhile is a 503
// (never a 500), /readyz says not ready, both instances recover without a restart, and
// every notice whose post was acknowledged is there afterwards.
func TestPostgresOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("stops a PostgreSQL server under load")
	}
	cluster := testkit.StartPGCluster(t)
	p := newPGPortal(t, newPostgresDatabase(t, cluster.URL("postgres")), []string{"v0", "v1", "v2", "signer"}, nil)
	one, two := p.serve(t), p.serve(t)
	l := &outageLoad{addrs: []string{one.addr, two.addr}, codes: map[int]int{}, ready: map[string]int{}}
	admin := newWebClient("http://" + one.addr)
	admin.signIn(t, "root")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	for _, name := range []string{"v0", "v1", "v2"} {
		c := newWebClient("http://" + one.addr)
		c.signIn(t, name)
		run(func() { l.viewer(c, stop) })
	}
	run(func() { l.signer("signer", stop) })
	run(func() { l.poster(admin, stop) })
	defer func() { close(stop); wg.Wait() }()

	time.Sleep(time.Second)
	before, _ := l.snapshot()
	cluster.Stop()
	stopped := time.Now()
	if !waitFor(10*time.Second, func() bool { return l.readiness(http.StatusServiceUnavailable) }) {
		t.Fatalf("/readyz still says ready with the database down: %v", l.ready)
	}
	time.Sleep(time.Second)
	during, _ := l.snapshot()
	cluster.Start()
	restarted := time.Now()
	if !waitFor(30*time.Second, func() bool { return l.readiness(http.StatusOK) }) {
		t.Fatalf("/readyz not ready again 30 s after the database came back: %v", l.ready)
	}
	recovered := time.Since(restarted)
	if !waitFor(10*time.Second, func() bool {
		c, _ := l.snapshot()
		return c[http.StatusOK] > during[http.StatusOK]+20 && c[http.StatusSeeOther] > during[http.StatusSeeOther]+2
	}) {
		c, _ := l.snapshot()
		t.Fatalf("pages and forms did not recover after the database came back: %v (during the outage %v)", c, during)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // the deferred close has nothing left to stop

	codes, acked := l.snapshot()
	t.Logf("answers: before the stop %v; by the end of the outage %v; in all %v; readyz %v; ready again %v after the restart (down %v)",
		before, during, codes, l.ready, recovered.Round(time.Millisecond), restarted.Sub(stopped).Round(time.Millisecond))
	for code, n := range codes {
		if code >= 500 && code != http.StatusServiceUnavailable || code == 0 || code == -1 {
			t.Errorf("%d answers with status %d (0: no answer, -1: a 303 naming no notice)", n, code)
		}
	}
	if during[http.StatusServiceUnavailable] <= before[http.StatusServiceUnavailable] {
		t.Errorf("no 503 while the database was down: %v", during)
	}
	assertNoticesKept(t, p, acked)
}

// assertNoticesKept fails unless every notice in ids is in the store.
func assertNoticesKept(tb testing.TB, p *pgPortal, ids []int64) {
	tb.Helper()
	ctx := context.Background()
	store, err := db.OpenExisting(ctx, p.url)
	if err != nil {
		tb.Fatal(err)
	}
	defer store.Close()
	lost := 0
	for _, id := range ids {
		if _, err := store.NoticeByID(ctx, id); err != nil {
			lost++
		}
	}
	tb.Logf("%d notice posts acknowledged with a 303, %d missing afterwards", len(ids), lost)
	if len(ids) == 0 || lost > 0 {
		tb.Errorf("%d acknowledged notices, %d lost", len(ids), lost)
	}
}

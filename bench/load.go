package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// window is the measured part of a round; requests before start are warm-up.
type window struct{ start, end time.Time }

func (w window) contains(t time.Time) bool { return !t.Before(w.start) && !t.After(w.end) }

// maxPerWorker bounds any one worker's requests in a round, whatever the server's speed.
const maxPerWorker = 2_000_000

// loadResult is what one closed-loop client saw in the window: every response that
// completed inside it.
type loadResult struct {
	lat []time.Duration // of the 200s, from the Go generator
	// From wrk, which measures its own run and reports its quantiles instead of latencies.
	elapsed  time.Duration
	p50, p99 time.Duration
	ok       int
	errs     int
	statuses map[int]int // non-200 statuses; 0 counts transport errors
	sample   string      // the first error, for the report
}

func (r *loadResult) merge(o loadResult) {
	r.lat = append(r.lat, o.lat...)
	r.ok += o.ok
	r.errs += o.errs
	if r.statuses == nil {
		r.statuses = map[int]int{}
	}
	for k, v := range o.statuses {
		r.statuses[k] += v
	}
	if r.sample == "" {
		r.sample = o.sample
	}
}

func newTransport(conns int) *http.Transport {
	return &http.Transport{
		MaxIdleConns:        2 * conns,
		MaxIdleConnsPerHost: 2 * conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

func newClient(tr *http.Transport, timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// A redirect (to /login, to a pending step) is an error here, not a page to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// benchAppHost is the app every seeded portal has behind forward auth.
const benchAppHost = "localhost:9000"

// target is the path and headers (besides the session cookie) of case c's request: GET /
// (the dashboard, or hello's page), or the forward-auth check a proxy sends for a page of
// the app.
func (c benchCase) target() (path string, headers [][2]string) {
	if !c.verify {
		return "/", [][2]string{{"Sec-Fetch-Site", "same-origin"}} // a link of the portal's, followed
	}
	return "/auth/verify", [][2]string{{"X-Forwarded-Method", http.MethodGet}, {"X-Forwarded-Proto", "http"},
		{"X-Forwarded-Host", benchAppHost}, {"X-Forwarded-Uri", "/wiki/Start"}}
}

// pageRequest is the request of case c with a browser's Cookie header.
func pageRequest(ctx context.Context, addr string, c benchCase, cookie string) *http.Request {
	path, headers := c.target()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	req.Header.Set("Cookie", cookie)
	for _, h := range headers {
		req.Header.Set(h[0], h[1])
	}
	return req
}

// browserCookies are the Cookie headers of the browsers a case's load stands for, one per
// session token. A browser keeps the form token cookie the portal's first page gives it
// and sends it back with every page after, as it does Sec-Fetch-Site; so for the
// dashboard each browser's first page is fetched here, unmeasured. A proxy's check of an
// app's request carries only the session cookie, which reaches the app.
func browserCookies(ctx context.Context, addr string, c benchCase, tokens []string) ([]string, error) {
	out := make([]string, len(tokens))
	for i, tok := range tokens {
		out[i] = "gatehouse_session=" + tok
	}
	if c.verify || c.hello {
		return out, nil
	}
	client := newClient(newTransport(1), 30*time.Second)
	defer client.Transport.(*http.Transport).CloseIdleConnections()
	for i := range out {
		resp, status, err := send(client, pageRequest(ctx, addr, c, out[i]))
		if err != nil || status != http.StatusOK {
			return nil, fmt.Errorf("first page of a browser: %d (%v)", status, err)
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == "_csrf" {
				out[i] += "; _csrf=" + ck.Value
			}
		}
	}
	return out, nil
}

// sessions are the session tokens a case's load sends: one per connection (o.sessions
// < 0), every seeded one (0) or o.sessions, spread evenly over the seeded ones, so
// consecutive ones belong to different users and the large case reaches all over its
// tables.
func (c benchCase) sessions(o options) []string {
	all := c.data.tokens
	n := o.sessions
	switch {
	case n < 0:
		n = o.conns
	case n == 0:
		n = len(all)
	}
	n = min(n, len(all))
	out := make([]string, n)
	for i := range n {
		out[i] = all[i*len(all)/n]
	}
	return out
}

// share is worker i's part of tokens when n workers divide them: every n-th one, so with as
// many tokens as workers each worker keeps one cookie, like a browser.
func share(tokens []string, i, n int) []string {
	var out []string
	for j := i % len(tokens); j < len(tokens); j += n {
		out = append(out, tokens[j])
	}
	return out
}

// pageLoad is the Go generator: conns closed-loop workers, each sending the case's request
// with its share of the case's session cookies in turn, from now until w.end.
func pageLoad(ctx context.Context, o options, addr string, c benchCase, cookies []string, w window) loadResult {
	conns := o.conns
	tr := newTransport(conns)
	defer tr.CloseIdleConnections()
	client := newClient(tr, 10*time.Second)
	results := make([]loadResult, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			r := loadResult{statuses: map[int]int{}, lat: make([]time.Duration, 0, 1<<14)}
			mine := share(cookies, i, conns)
			for n := 0; n < maxPerWorker && ctx.Err() == nil && time.Now().Before(w.end); n++ {
				tok := mine[n%len(mine)]
				req := pageRequest(ctx, addr, c, tok)
				t0 := time.Now()
				resp, status, err := send(client, req)
				t1 := time.Now()
				if !w.contains(t1) {
					continue
				}
				switch {
				case err == nil && status == http.StatusOK:
					r.ok++
					r.lat = append(r.lat, t1.Sub(t0))
				default:
					r.errs++
					r.statuses[status]++
					if r.sample == "" {
						if err != nil {
							r.sample = err.Error()
						} else {
							r.sample = fmt.Sprintf("GET %s answered %d (Location %q)", req.URL.Path, status, resp.Header.Get("Location"))
						}
					}
				}
			}
			results[i] = r
		})
	}
	wg.Wait()
	var all loadResult
	for _, r := range results {
		all.merge(r)
	}
	return all
}

// send does one request and reads its whole body; status is 0 when no response came.
func send(client *http.Client, req *http.Request) (*http.Response, int, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, resp.StatusCode, err
}

// floodResult is what the login flood saw in the window.
type floodResult struct {
	done     int             // responses completed in the window (any status)
	statuses map[int]int     // by status; 0 counts transport errors
	lat      []time.Duration // of every response in the window
}

// loginFlood runs flooders closed-loop clients posting wrong passwords for random seeded
// accounts from random X-Forwarded-For addresses, from now until w.end. Requests still
// waiting at w.end are cancelled.
func loginFlood(ctx context.Context, addr string, usernames []string, flooders int, w window) floodResult {
	ctx, cancel := context.WithDeadline(ctx, w.end)
	defer cancel()
	tr := newTransport(flooders)
	defer tr.CloseIdleConnections()
	client := newClient(tr, 30*time.Second)
	target := "http://" + addr + "/login"
	results := make([]floodResult, flooders)
	var wg sync.WaitGroup
	for i := range flooders {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 99))
			r := floodResult{statuses: map[int]int{}}
			for n := 0; n < maxPerWorker && ctx.Err() == nil; n++ {
				form := url.Values{
					"username": {usernames[rng.IntN(len(usernames))]},
					"password": {fmt.Sprintf("wrong-%d", rng.Uint32())},
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Sec-Fetch-Site", "same-origin")
				// 10.0.0.0/8 holds 16M addresses: none comes near the per-address limit.
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", rng.IntN(256), rng.IntN(256), 1+rng.IntN(254)))
				t0 := time.Now()
				_, status, err := send(client, req)
				t1 := time.Now()
				if ctx.Err() != nil {
					break // cancelled at the end of the window: not a response
				}
				if err != nil {
					status = 0
				}
				if w.contains(t1) {
					r.done++
					r.statuses[status]++
					r.lat = append(r.lat, t1.Sub(t0))
				}
			}
			results[i] = r
		})
	}
	wg.Wait()
	all := floodResult{statuses: map[int]int{}}
	for _, r := range results {
		all.done += r.done
		all.lat = append(all.lat, r.lat...)
		for k, v := range r.statuses {
			all.statuses[k] += v
		}
	}
	return all
}

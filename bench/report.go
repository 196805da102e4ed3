package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// preflight checks, before the first measurement of a case, that its requests get what
// the benchmark claims to measure: the dashboard with banners, a check that lets the
// user pass, or hello.
func preflight(ctx context.Context, o options, addr string, c benchCase) error {
	sessions := c.sessions(o)
	client := newClient(newTransport(1), 30*time.Second)
	defer client.Transport.(*http.Transport).CloseIdleConnections()
	var remoteUser string
	get := func(tok string) (int, string, error) {
		resp, err := client.Do(pageRequest(ctx, addr, c, "gatehouse_session="+tok))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		remoteUser = resp.Header.Get("Remote-User")
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	if c.verify {
		n := min(len(sessions), 50)
		for i := range n {
			status, _, err := get(sessions[i*len(sessions)/n])
			if err != nil || status != http.StatusOK || remoteUser == "" {
				return fmt.Errorf("preflight: /auth/verify answered %d with Remote-User %q (%v)", status, remoteUser, err)
			}
		}
		fmt.Printf("  %s: %d sampled sessions may pass to the app\n", c.name, n)
		return nil
	}
	if c.hello {
		status, body, err := get(sessions[0])
		if err != nil || status != http.StatusOK || body != "hello" {
			return fmt.Errorf("preflight: hello answered %d %q (%v)", status, body, err)
		}
		return nil
	}
	n := min(len(sessions), 50)
	banners, size := 0, 0
	for i := range n {
		status, body, err := get(sessions[i*len(sessions)/n])
		if err != nil || status != http.StatusOK || !strings.Contains(body, "Dashboard") {
			return fmt.Errorf("preflight: GET / answered %d (%v); body starts %.300q", status, err, body)
		}
		banners += strings.Count(body, "data-notice-id=")
		size += len(body)
	}
	fmt.Printf("  %s: %d sampled sessions see the dashboard, %.1f banners and %d bytes per page on average\n",
		c.name, n, float64(banners)/float64(n), size/n)
	if banners == 0 {
		return fmt.Errorf("preflight: no banner rendered for %d sessions; the seed is wrong", n)
	}
	if c.flood {
		return preflightFlood(ctx, client, addr, c)
	}
	return nil
}

// preflightFlood checks that the flood's wrong passwords get the 401 the case means to send.
func preflightFlood(ctx context.Context, client *http.Client, addr string, c benchCase) error {
	form := url.Values{"username": {c.data.usernames[1]}, "password": {"wrong password"}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("X-Forwarded-For", "10.255.255.1")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("preflight: POST /login: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("preflight: a wrong password answered %d, want 401", resp.StatusCode)
	}
	return nil
}

// summary is a case over all rounds: medians, except errors (summed) and peak RSS (max).
type summary struct {
	rps, cpu, clientCPU float64
	cores, other        float64
	p50, p99, startup   time.Duration
	maxStartup          time.Duration
	errs                int
	rssMiB              float64
	flood               floodResult
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(ss []sample) summary {
	var rps, cpu, client, cores, other []float64
	var p50, p99, startup []time.Duration
	sum := summary{flood: floodResult{statuses: map[int]int{}}}
	for _, s := range ss {
		rps, cpu, client = append(rps, s.rps), append(cpu, s.cpuPerReq), append(client, s.clientCPU)
		cores, other = append(cores, s.cores), append(other, s.other)
		p50, p99, startup = append(p50, s.p50), append(p99, s.p99), append(startup, s.startup)
		sum.errs += s.errs
		sum.rssMiB = max(sum.rssMiB, float64(s.rss)/(1<<20))
		sum.maxStartup = max(sum.maxStartup, s.startup)
		sum.flood.done += s.flood.done
		for k, v := range s.flood.statuses {
			sum.flood.statuses[k] += v
		}
	}
	sum.rps, sum.cpu, sum.clientCPU, sum.cores = median(rps), median(cpu), median(client), median(cores)
	sum.other = median(other)
	sum.p50, sum.p99, sum.startup = median(p50), median(p99), median(startup)
	return sum
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// report prints the table, the ratios and the verdicts, and returns how many targets were missed.
func report(o options, cases []benchCase, results [][]sample, micro map[string]microResult) int {
	sums := make([]summary, len(cases))
	for i := range cases {
		sums[i] = summarize(results[i])
	}
	printTable(o, cases, sums)
	printRatios(cases, sums)
	missed := printTargets(cases, sums, micro)
	return missed + printPostgresTargets(cases, sums, micro)
}

// printVerdict prints one target's line and returns 1 if it was missed.
func printVerdict(ok bool, what, detail string) int {
	if ok {
		fmt.Printf("  [MET   ] %-56s %s\n", what, detail)
		return 0
	}
	fmt.Printf("  [MISSED] %-56s %s\n", what, detail)
	return 1
}

// caseSummary is the summary of the case called name, if it was measured.
func caseSummary(cases []benchCase, sums []summary, name string) (summary, bool) {
	for i, c := range cases {
		if c.name == name {
			return sums[i], true
		}
	}
	return summary{}, false
}

// printTable is the table of medians and what each case's machine was doing besides.
func printTable(o options, cases []benchCase, sums []summary) {
	fmt.Printf("\nResults: median of %d rounds (errors: total; peak RSS: highest VmHWM of the fresh process per round)\n\n", o.rounds)
	fmt.Printf("| %-26s | %9s | %8s | %8s | %6s | %10s | %12s | %10s |\n",
		"case", "req/s", "p50 ms", "p99 ms", "errors", "CPU µs/req", "peak RSS MiB", "startup ms")
	fmt.Printf("|%s|%s|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 28), strings.Repeat("-", 11), strings.Repeat("-", 10),
		strings.Repeat("-", 10), strings.Repeat("-", 8), strings.Repeat("-", 12), strings.Repeat("-", 14), strings.Repeat("-", 12))
	for i, c := range cases {
		s := sums[i]
		fmt.Printf("| %-26s | %9.0f | %8s | %8s | %6d | %10.0f | %12.1f | %10.0f |\n", c.name, s.rps, ms(s.p50), ms(s.p99),
			s.errs, s.cpu, s.rssMiB, float64(s.startup)/float64(time.Millisecond))
	}
	fmt.Println()
	fmt.Println("CPU µs/req is the server's utime+stime over the window divided by the responses it completed in it")
	fmt.Println("(dashboard and, in the flood case, login responses). The load generator shares the machine; its own")
	fmt.Println("CPU per response, how many cores each server kept busy, and other processes' load, were:")
	noisy := false
	for i, c := range cases {
		fmt.Printf("  %-26s load generator %4.0f µs/resp; server busy %.2f cores; other load %.2f cores\n",
			c.name, sums[i].clientCPU, sums[i].cores, sums[i].other)
		noisy = noisy || sums[i].other > 0.2
	}
	if _, ok := caseSummary(cases, sums, pgLargeCase); ok {
		fmt.Println("  (in the PostgreSQL case the other load includes the PostgreSQL server's own processes)")
	}
	if noisy {
		fmt.Println("  WARNING: other processes used more than 0.2 cores during the windows; the numbers are not clean.")
	}
	if fl, ok := caseSummary(cases, sums, floodCase); ok {
		fmt.Printf("Login flood over all rounds: %d responses in the windows, by status %v (0 = transport error); "+
			"dashboard p50 %s ms under it.\n", fl.flood.done, fl.flood.statuses, ms(fl.p50))
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// printRatios compares the cases: hello, small and large come first, in that order.
func printRatios(cases []benchCase, sums []summary) {
	hello, small, large := sums[0], sums[1], sums[2]
	fmt.Println("\nRatios")
	fmt.Printf("  dashboard/hello throughput:   small %.3f, large %.3f\n", ratio(small.rps, hello.rps), ratio(large.rps, hello.rps))
	fmt.Printf("  dashboard/hello CPU per req:  small %.2f×, large %.2f×\n", ratio(small.cpu, hello.cpu), ratio(large.cpu, hello.cpu))
	fmt.Printf("  large/small throughput:       %.3f (small is %.2f× large)\n", ratio(large.rps, small.rps), ratio(small.rps, large.rps))
	fmt.Printf("  large/small p99:              %.2f×\n", ratio(float64(large.p99), float64(small.p99)))
	vs, _ := caseSummary(cases, sums, verifySmallCase)
	vl, _ := caseSummary(cases, sums, verifyLargeCase)
	fmt.Printf("  verify/dashboard CPU per req: small %.2f×, large %.2f×\n", ratio(vs.cpu, small.cpu), ratio(vl.cpu, large.cpu))
	fmt.Printf("  verify/dashboard p99:         small %.2f×, large %.2f×\n", ratio(float64(vs.p99), float64(small.p99)),
		ratio(float64(vl.p99), float64(large.p99)))
	if fl, ok := caseSummary(cases, sums, floodCase); ok {
		fmt.Printf("  flood/no-flood p99 (large):   %.2f×\n", ratio(float64(fl.p99), float64(large.p99)))
	}
}

// Targets of the load cases and of the in-process benchmarks.
const (
	minDashboardShare = 0.25 // dashboard throughput over hello's
	maxCPUOverHello   = 6.0  // dashboard CPU per request over hello's
	maxFloodP99       = 1.3  // dashboard p99 under a login flood over without
	maxFloodRSSMiB    = 100
	maxRSSMiB         = 48 // every gatehouse case without the flood
	maxLargeOverSmall = 1.2
	maxStartup        = 150 * time.Millisecond
	// maxDashboardAllocs is half the allocations a dashboard page view made before its
	// session, acknowledgements and counts were kept in memory.
	maxDashboardAllocs = 158
)

// printTargets prints a verdict per target and returns how many were missed.
func printTargets(cases []benchCase, sums []summary, micro map[string]microResult) int {
	hello, small, large := sums[0], sums[1], sums[2]
	missed := 0
	verdict := func(ok bool, what, detail string) { missed += printVerdict(ok, what, detail) }
	fmt.Println("\nTargets")
	minShare := min(ratio(small.rps, hello.rps), ratio(large.rps, hello.rps))
	verdict(minShare >= minDashboardShare, fmt.Sprintf("dashboard throughput ≥ %.2f× hello", minDashboardShare),
		fmt.Sprintf("small %.3f×, large %.3f×", ratio(small.rps, hello.rps), ratio(large.rps, hello.rps)))
	maxCPU := max(ratio(small.cpu, hello.cpu), ratio(large.cpu, hello.cpu))
	verdict(maxCPU <= maxCPUOverHello, fmt.Sprintf("CPU per dashboard request ≤ %.0f× hello", maxCPUOverHello),
		fmt.Sprintf("small %.2f×, large %.2f× (%.0f / %.0f / %.0f µs)", ratio(small.cpu, hello.cpu), ratio(large.cpu, hello.cpu),
			small.cpu, large.cpu, hello.cpu))
	if fl, ok := caseSummary(cases, sums, floodCase); ok {
		verdict(ratio(float64(fl.p99), float64(large.p99)) <= maxFloodP99, fmt.Sprintf("flood p99 ≤ %.1f× no-flood p99", maxFloodP99),
			fmt.Sprintf("%s vs %s ms (%.2f×)", ms(fl.p99), ms(large.p99), ratio(float64(fl.p99), float64(large.p99))))
		verdict(fl.rssMiB <= maxFloodRSSMiB, fmt.Sprintf("peak RSS during the flood ≤ %d MiB", maxFloodRSSMiB),
			fmt.Sprintf("%.1f MiB", fl.rssMiB))
	}
	rss, worst := 0.0, ""
	for i, c := range cases {
		if !c.hello && !c.flood && sums[i].rssMiB > rss {
			rss, worst = sums[i].rssMiB, c.name
		}
	}
	verdict(rss <= maxRSSMiB, fmt.Sprintf("peak RSS without the flood ≤ %d MiB", maxRSSMiB), fmt.Sprintf("%.1f MiB (%s)", rss, worst))
	verdict(ratio(small.rps, large.rps) <= maxLargeOverSmall, fmt.Sprintf("large within %.1f× small: throughput", maxLargeOverSmall),
		fmt.Sprintf("%.0f vs %.0f req/s (%.2f×)", large.rps, small.rps, ratio(small.rps, large.rps)))
	verdict(ratio(float64(large.p99), float64(small.p99)) <= maxLargeOverSmall, fmt.Sprintf("large within %.1f× small: p99", maxLargeOverSmall),
		fmt.Sprintf("%s vs %s ms (%.2f×)", ms(large.p99), ms(small.p99), ratio(float64(large.p99), float64(small.p99))))
	verdict(large.startup <= maxStartup, "/healthz ≤ 150 ms after exec on the large DB",
		fmt.Sprintf("median %s ms, worst %s ms", ms(large.startup), ms(large.maxStartup)))
	if len(micro) == 0 {
		fmt.Println("  (-micro=false: no verdict on allocations or on /auth/verify against the session step)")
		return missed
	}
	dash := micro["BenchmarkDashboard/small"]
	verdict(dash.allocsPerOp <= maxDashboardAllocs, fmt.Sprintf("allocations per small dashboard request ≤ %d (go test -bench)", maxDashboardAllocs),
		fmt.Sprintf("small %d (large, for information: %d)", dash.allocsPerOp, micro["BenchmarkDashboard/large"].allocsPerOp))
	verifyOK := true
	var detail []string
	for _, world := range []string{"small", "large"} {
		v, sr := micro["BenchmarkAuthVerify/"+world], micro["BenchmarkSessionRead/"+world]
		verifyOK = verifyOK && v.nsPerOp <= sr.nsPerOp
		detail = append(detail, fmt.Sprintf("%s %.1f vs %.1f µs", world, v.nsPerOp/1e3, sr.nsPerOp/1e3))
	}
	verdict(verifyOK, "/auth/verify ≤ the session step read from the store (go test)", strings.Join(detail, ", "))
	return missed
}

// Targets of the PostgreSQL store.
const (
	minPostgresShare = 0.5 // dashboard throughput on PostgreSQL over SQLite's, same run and seed
	maxViewTrips     = 2   // database round trips per dashboard view, caches warm
)

// printPostgresTargets compares the PostgreSQL dashboard with SQLite's large one, and the
// round trips per view on each store; a case that did not run misses its target.
func printPostgresTargets(cases []benchCase, sums []summary, micro map[string]microResult) int {
	missed := 0
	check := func(ok bool, what, detail string) { missed += printVerdict(ok, what, detail) }
	large := sums[2]
	what := fmt.Sprintf("dashboard on PostgreSQL ≥ %.1f× SQLite throughput", minPostgresShare)
	if pg, ok := caseSummary(cases, sums, pgLargeCase); ok {
		check(ratio(pg.rps, large.rps) >= minPostgresShare, what,
			fmt.Sprintf("large: %.0f vs %.0f req/s (%.2f×); CPU %.0f vs %.0f µs/req; p99 %s vs %s ms", pg.rps, large.rps,
				ratio(pg.rps, large.rps), pg.cpu, large.cpu, ms(pg.p99), ms(large.p99)))
	} else {
		check(false, what, "(not run: no PostgreSQL server)")
	}
	if len(micro) == 0 {
		return missed
	}
	fmt.Println("  Round trips: every request the store sends its database (statements, queries, prepares, begins,")
	fmt.Println("  commits; on SQLite the change check on its own connection too), per dashboard view in go test -bench.")
	fmt.Println("  Warm: nothing committed meanwhile, the in-memory copies hold and a view costs the change check.")
	fmt.Println("  Cold (information): the one view just after a commit, which reads every copy again.")
	for _, store := range []struct{ name, bench string }{{"SQLite", "BenchmarkDashboard"}, {"PostgreSQL", "BenchmarkDashboardPostgres"}} {
		what := fmt.Sprintf("database round trips per dashboard view ≤ %d (%s)", maxViewTrips, store.name)
		small, okS := micro[store.bench+"/small"]
		big, okL := micro[store.bench+"/large"]
		if !okS || !okL {
			check(false, what, "(not run: no PostgreSQL server)")
			continue
		}
		warm := max(small.metrics["roundtrips/op"], big.metrics["roundtrips/op"])
		check(warm <= maxViewTrips, what, fmt.Sprintf("warm: small %.2f, large %.2f; cold: small %.0f, large %.0f",
			small.metrics["roundtrips/op"], big.metrics["roundtrips/op"], small.metrics["roundtrips/cold-view"],
			big.metrics["roundtrips/cold-view"]))
	}
	return missed
}

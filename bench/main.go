// Command bench measures the real gatehouse binary over loopback: signed-in dashboard
// throughput, latency, CPU per request, peak memory and start-up time, against a trivial
// echo server as the ceiling, on a small and a large database, and under a login flood;
// and the forward-auth check (/auth/verify) that apps behind the portal send for every
// request, next to the dashboard.
// It prints one table, the ratios between cases and which targets are met.
//
//	go run ./bench              # what make bench runs
//	go run ./bench -rounds 1 -duration 2s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

type options struct {
	rounds   int
	warmup   time.Duration
	duration time.Duration
	conns    int
	flooders int
	timeout  time.Duration
	keep     bool
	strict   bool
	bin      string
	quiet    time.Duration
	// sessions is how many session cookies a page load sends (see benchCase.sessions).
	sessions  int
	generator string
	micro     bool
	postgres  string // server URL for the PostgreSQL case (see postgresServer)
	// Set by run: wrk's path when it generates the page load ("" for the Go client), the
	// script it runs, the temporary directory and the machine's cores.
	wrk, wrkScript string
	dir, root      string // the temporary directory, the module's
	cores          int
	pg             *pgStore
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every case once, in turn")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each measured window")
	flag.DurationVar(&o.duration, "duration", 4*time.Second, "measured window per case and round")
	flag.IntVar(&o.conns, "conns", 50, "concurrent keep-alive connections of the dashboard load")
	flag.IntVar(&o.flooders, "flooders", 50, "concurrent clients of the login flood")
	flag.DurationVar(&o.timeout, "timeout", 6*time.Minute, "give up (and stop every server) after this long, builds included")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (databases, binaries)")
	flag.BoolVar(&o.strict, "strict", false, "exit 1 when a target is missed")
	flag.DurationVar(&o.quiet, "quiet-wait", 30*time.Second, "before each case wait (at most 10s each, this long in all) "+
		"until other processes use under 0.15 cores")
	flag.StringVar(&o.bin, "bin", "", "measure this gatehouse binary instead of building ./cmd/gatehouse")
	flag.IntVar(&o.sessions, "sessions", -1, "session cookies each page load sends, spread over the seeded sessions: "+
		"-1 one per connection (a browser each), 0 every seeded session")
	flag.BoolVar(&o.micro, "micro", true, "run the handlers' in-process benchmarks after the load cases (the allocation and forward-auth targets)")
	flag.StringVar(&o.generator, "generator", "auto", "page load generator: wrk, go (the Go client), or auto (wrk when on PATH)")
	flag.StringVar(&o.postgres, "postgres", "", "PostgreSQL server URL for the PostgreSQL dashboard case (default $GATEHOUSE_BENCH_POSTGRES, "+
		"else $GATEHOUSE_TEST_POSTGRES; without one, as root, a throwaway cluster); the bench makes its own database there and drops it")
	flag.Parse()
	if o.rounds < 1 || o.rounds > 20 || o.conns < 1 || o.conns > 1000 || o.flooders < 0 || o.flooders > 1000 ||
		o.duration <= 0 || o.duration > time.Minute || o.warmup < 0 || o.warmup > time.Minute || o.sessions < -1 ||
		!slices.Contains([]string{"auto", "wrk", "go"}, o.generator) {
		fmt.Fprintln(os.Stderr, "bench: a flag is out of range (rounds 1-20, conns 1-1000, flooders 0-1000, durations up to 1m, "+
			"sessions -1 or more, generator auto, wrk or go)")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	start := time.Now()
	missed, err := run(ctx, o)
	stopAll() // every child, on every path
	cancel()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Printf("\nbench finished in %v\n", time.Since(start).Round(time.Second))
	if o.strict && missed > 0 {
		os.Exit(1)
	}
}

// benchCase is one row of the table.
type benchCase struct {
	name   string
	hello  bool
	data   *seeded
	flood  bool
	verify bool // GET /auth/verify as a proxy asks it, instead of the dashboard
}

// Names of the cases the report compares.
const (
	floodCase       = "large + login flood"
	pgLargeCase     = "dashboard large (postgres)"
	verifySmallCase = "verify small"
	verifyLargeCase = "verify large"
)

// sample is one case measured in one round.
type sample struct {
	rps       float64
	p50, p99  time.Duration
	errs      int
	cpuPerReq float64 // server CPU µs per response (dashboard and login)
	cores     float64 // server CPU time over the window's length: cores kept busy
	other     float64 // cores busy with anything but the server and the harness
	clientCPU float64 // the load generator's CPU µs per response
	rss       int64
	startup   time.Duration
	pid       int
	requests  int
	flood     floodResult
	sample    string
}

func run(ctx context.Context, o options) (missed int, err error) {
	dir, err := os.MkdirTemp("", "gatehouse-bench-")
	if err != nil {
		return 0, err
	}
	if o.keep {
		fmt.Println("temporary directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	o.dir, o.cores = dir, runtime.NumCPU()
	if err := chooseGenerator(&o); err != nil {
		return 0, err
	}
	printMachine(o)
	if err := buildServers(ctx, &o, dir); err != nil {
		return 0, err
	}
	if o.pg, err = openPostgres(ctx, postgresServer(o.postgres)); err != nil {
		return 0, err
	}
	defer func() {
		if cerr := o.pg.close(); cerr != nil {
			fmt.Fprintln(os.Stderr, "bench: PostgreSQL clean-up:", cerr)
		}
	}()
	cases, err := seedCases(ctx, o, dir)
	if err != nil {
		return 0, err
	}
	results, err := runRounds(ctx, o, cases)
	if err != nil {
		return 0, err
	}
	micro := map[string]microResult{}
	if o.micro {
		if micro, err = runMicro(ctx, o.root, o.pg.server); err != nil {
			return 0, err
		}
	}
	return report(o, cases, results, micro), nil
}

// chooseGenerator finds wrk for the page loads, as -generator asks, and writes its script.
// The login flood always runs on the Go client: it posts forms with fresh values each time.
func chooseGenerator(o *options) error {
	if o.generator == "go" {
		return nil
	}
	path, err := exec.LookPath("wrk")
	switch {
	case err != nil && o.generator == "wrk":
		return fmt.Errorf("-generator wrk: %w (Debian: apt-get install wrk)", err)
	case err != nil:
		return nil
	}
	o.wrk, o.wrkScript = path, filepath.Join(o.dir, "wrk.lua")
	return os.WriteFile(o.wrkScript, wrkScript, 0o600)
}

// generatorName says which generator sends the page loads, for the report.
func (o options) generatorName() string {
	if o.wrk != "" {
		return "wrk"
	}
	return "go"
}

// buildServers builds both servers into dir first, so compiling never competes with a
// measurement, with the flags of make build, from the module root wherever bench was
// started; -bin replaces the gatehouse build.
func buildServers(ctx context.Context, o *options, dir string) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || len(strings.TrimSpace(string(gomod))) == 0 {
		return fmt.Errorf("cannot find the module root (go env GOMOD): %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	o.root = root
	gatehouseBin, helloBin := filepath.Join(dir, "gatehouse"), filepath.Join(dir, "hello")
	builds := [][2]string{{gatehouseBin, "./cmd/gatehouse"}, {helloBin, "./bench/hello"}}
	if o.bin != "" {
		if err := copyFile(o.bin, gatehouseBin); err != nil {
			return err
		}
		if err := os.Chmod(gatehouseBin, 0o755); err != nil {
			return err
		}
		builds = builds[1:]
	}
	for _, b := range builds {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", b[0], b[1])
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", b[1], err, out)
		}
	}
	return nil
}

// seedCases seeds the databases in dir and lists the cases that measure them.
func seedCases(ctx context.Context, o options, dir string) ([]benchCase, error) {
	t := time.Now()
	hash, err := auth.NewHasher(auth.DefaultParams, 1).Hash(ctx, benchPassword)
	if err != nil {
		return nil, err
	}
	small, err := seedPortal(ctx, "small", filepath.Join(dir, "small.db"), hash, smallSize)
	if err != nil {
		return nil, err
	}
	large, err := seedPortal(ctx, "large", filepath.Join(dir, "large.db"), hash, largeSize)
	if err != nil {
		return nil, err
	}
	// The flood gets its own copy of the large database and its own process, so neither
	// its writes nor its memory touch the no-flood measurement.
	floodData := *large
	floodData.name, floodData.db = "flood", filepath.Join(dir, "flood.db")
	if err := copyFile(large.db, floodData.db); err != nil {
		return nil, err
	}
	fmt.Printf("seeded in %v\n  small: %s\n  large: %s\n\n", time.Since(t).Round(time.Millisecond), small.summary, large.summary)

	cases := []benchCase{
		{name: "hello (ceiling)", hello: true, data: small},
		{name: "dashboard small", data: small},
		{name: "dashboard large", data: large},
		{name: verifySmallCase, data: small, verify: true},
		{name: verifyLargeCase, data: large, verify: true},
	}
	if o.pg.url != "" {
		pg, err := seedPortal(ctx, "large (postgres)", o.pg.url, hash, largeSize)
		if err != nil {
			return nil, err
		}
		pg.keyFile = filepath.Join(dir, "postgres.key") // serve creates it on its first start
		fmt.Printf("  large (postgres): %s; multi-row INSERTs of %s, same sizes and draws as large\n\n", pg.summary, db.Describe(o.pg.url))
		cases = append(cases, benchCase{name: pgLargeCase, data: pg})
	} else {
		fmt.Printf("PostgreSQL case not run: %s\n\n", o.pg.why)
	}
	if o.flooders > 0 {
		cases = append(cases, benchCase{name: floodCase, data: &floodData, flood: true})
	}
	return cases, nil
}

// runRounds runs every case once per round, in turn, each after waiting for a quiet
// machine, and prints each sample as it comes.
func runRounds(ctx context.Context, o options, cases []benchCase) ([][]sample, error) {
	tck := clockTicks()
	results := make([][]sample, len(cases))
	quietLeft := o.quiet
	for r := range o.rounds {
		for i, c := range cases {
			quietLeft -= waitForQuiet(ctx, tck, min(quietLeft, 10*time.Second))
			s, err := runCase(ctx, o, c, tck, r == 0)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", r+1, c.name, err)
			}
			results[i] = append(results[i], s)
			fmt.Printf("round %d %-26s %-3s pid %-7d %6.0f req/s  p50 %-8v p99 %-8v errors %d  CPU %.0f µs/req (%.2f cores)  "+
				"RSS %.1f MiB  startup %v  other load %.2f cores\n", r+1, c.name, o.generatorName(), s.pid, s.rps, s.p50.Round(time.Microsecond),
				s.p99.Round(time.Microsecond), s.errs, s.cpuPerReq, s.cores, float64(s.rss)/(1<<20), s.startup.Round(time.Millisecond),
				s.other)
		}
	}
	return results, nil
}

// runCase starts a fresh server, loads it for warm-up plus the window, samples its CPU at
// the window's edges and its peak RSS at the end, and stops it.
func runCase(ctx context.Context, o options, c benchCase, tck int64, first bool) (sample, error) {
	srv, err := startCase(ctx, o, c)
	if err != nil {
		return sample{}, err
	}
	defer srv.stop()
	if first {
		if err := preflight(ctx, o, srv.addr, c); err != nil {
			return sample{}, err
		}
	}

	cookies, err := browserCookies(ctx, srv.addr, c, c.sessions(o))
	if err != nil {
		return sample{}, err
	}
	t0 := time.Now()
	warmup, duration := o.warmup, o.duration
	if o.wrk != "" {
		warmup, duration = time.Duration(wholeSeconds(warmup))*time.Second, time.Duration(wholeSeconds(duration))*time.Second
	}
	w := window{start: t0.Add(warmup), end: t0.Add(warmup + duration)}
	var load loadResult
	var fl floodResult
	var cpu cpuWindow
	var loadErr, cpuErr error
	var wg sync.WaitGroup
	if o.wrk != "" {
		wg.Go(func() { load, cpu, loadErr = wrkLoad(ctx, o, srv, c, cookies) })
	} else {
		wg.Go(func() { load = pageLoad(ctx, o, srv.addr, c, cookies, w) })
	}
	if c.flood {
		wg.Go(func() { fl = loginFlood(ctx, srv.addr, c.data.usernames, o.flooders, w) })
	}
	if o.wrk == "" {
		cpu, cpuErr = measureCPU(ctx, srv.pid, w)
	}
	wg.Wait()
	if ctx.Err() != nil {
		return sample{}, ctx.Err()
	}
	if err := errors.Join(loadErr, cpuErr); err != nil {
		return sample{}, fmt.Errorf("measuring: %w", err)
	}
	rss, err := peakRSS(srv.pid)
	if err != nil {
		return sample{}, err
	}
	s := newSample(o, srv, load, fl, cpu, tck, rss)
	if load.errs > 0 {
		fmt.Printf("  %s: %d errors %v, first: %s\n", c.name, load.errs, load.statuses, load.sample)
	}
	if c.flood {
		slices.Sort(fl.lat)
		fmt.Printf("  login flood: %d responses in the window %v (status 0 = transport error), login p50 %v p99 %v\n",
			fl.done, fl.statuses, quantile(fl.lat, 0.5).Round(time.Millisecond), quantile(fl.lat, 0.99).Round(time.Millisecond))
	}
	return s, nil
}

// startCase starts the case's server: hello, or gatehouse on the case's database with its
// sessions freshly marked as seen.
func startCase(ctx context.Context, o options, c benchCase) (*server, error) {
	if c.hello {
		return startServer(ctx, "hello", "/", filepath.Join(o.dir, "hello"), "--addr", "127.0.0.1:0")
	}
	if err := restamp(ctx, c.data.db); err != nil {
		return nil, err
	}
	// Every gatehouse gets the same flags, so the flood case differs only by the flood, and
	// the PostgreSQL one by its store and the key file every instance there must name.
	args := []string{"serve", "--db", c.data.db, "--addr", "127.0.0.1:0", "--log-format", "json", "--trusted-proxies", "127.0.0.0/8"}
	if c.data.keyFile != "" {
		args = append(args, "--key-file", c.data.keyFile)
	}
	return startServer(ctx, c.name, "/healthz", filepath.Join(o.dir, "gatehouse"), args...)
}

// cpuWindow is CPU time, in clock ticks, spent during the measured window: by the server,
// by this process (the load generator) and by the whole machine.
type cpuWindow struct{ server, self, machine int64 }

// measureCPU waits for the window and reads the CPU counters at both of its edges.
func measureCPU(ctx context.Context, pid int, w window) (cpuWindow, error) {
	var cpu cpuWindow
	var errs error
	read := func(sign int64) {
		server, err := cpuTicks(pid)
		self, _ := cpuTicks(os.Getpid())
		machine, _ := machineBusyTicks()
		errs = errors.Join(errs, err)
		cpu.server, cpu.self, cpu.machine = cpu.server+sign*server, cpu.self+sign*self, cpu.machine+sign*machine
	}
	if !sleepUntil(ctx, w.start) {
		return cpuWindow{}, errs
	}
	read(-1)
	if !sleepUntil(ctx, w.end) {
		return cpuWindow{}, errs
	}
	read(1)
	return cpu, errs
}

// newSample turns one case's load, flood and CPU readings into its row.
func newSample(o options, srv *server, load loadResult, fl floodResult, cpu cpuWindow, tck int64, rss int64) sample {
	slices.Sort(load.lat)
	responses := load.ok + load.errs + fl.done
	elapsed, p50, p99 := o.duration, quantile(load.lat, 0.50), quantile(load.lat, 0.99)
	if load.elapsed > 0 { // wrk's own run and quantiles
		elapsed, p50, p99 = load.elapsed, load.p50, load.p99
	}
	s := sample{
		rps:      float64(load.ok) / elapsed.Seconds(),
		p50:      p50,
		p99:      p99,
		errs:     load.errs,
		rss:      rss,
		startup:  srv.startup,
		pid:      srv.pid,
		requests: load.ok,
		flood:    fl,
		sample:   load.sample,
	}
	if responses > 0 {
		s.cpuPerReq = float64(cpu.server) / float64(tck) * 1e6 / float64(responses)
		s.clientCPU = float64(cpu.self) / float64(tck) * 1e6 / float64(responses)
	}
	s.cores = float64(cpu.server) / float64(tck) / elapsed.Seconds()
	other := cpu.machine - cpu.server - cpu.self
	s.other = max(0, float64(other)/float64(tck)/elapsed.Seconds())
	return s
}

// waitForQuiet waits, at most max, until the machine has been nearly idle (under 0.15
// cores busy) for half a second; the benchmark's own servers are all stopped here. It
// returns how long it waited.
func waitForQuiet(ctx context.Context, tck int64, max time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < max {
		a, err := machineBusyTicks()
		if err != nil || !sleepUntil(ctx, time.Now().Add(500*time.Millisecond)) {
			break
		}
		b, err := machineBusyTicks()
		if err != nil || float64(b-a)/float64(tck)/0.5 < 0.15 {
			break
		}
	}
	return time.Since(start)
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Until(t)):
		return true
	}
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func printMachine(o options) {
	model := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	fmt.Printf("machine: %d CPUs (%s), %s/%s, %s\n", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Printf("load: %d connections, %d rounds of %v warm-up + %v measured per case; flood: %d clients\n",
		o.conns, o.rounds, o.warmup, o.duration, o.flooders)
	sessions := fmt.Sprintf("%d sessions shared by the connections", o.sessions)
	switch o.sessions {
	case -1:
		sessions = "a browser with a session of its own per connection"
	case 0:
		sessions = "every seeded session in turn"
	}
	if o.wrk != "" {
		fmt.Printf("page load generator: wrk (%s), %d threads; login flood: Go client; %s\n\n",
			o.wrk, wrkThreads(o), sessions)
	} else {
		fmt.Printf("page load generator: Go client (wrk %s); %s\n\n",
			map[bool]string{true: "not asked for", false: "not found on PATH"}[o.generator == "go"], sessions)
	}
}

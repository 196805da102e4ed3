package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// microResult is one line of go test -bench -benchmem: time and allocations per operation,
// and any other figure the benchmark reports, by unit (roundtrips/op).
type microResult struct {
	nsPerOp     float64
	allocsPerOp int
	metrics     map[string]float64
}

// microBenchmarks are the in-process benchmarks the targets read: a whole dashboard page
// view on each store, a whole forward-auth check, and the session step on its own.
const microBenchmarks = `^(BenchmarkDashboard|BenchmarkDashboardPostgres|BenchmarkAuthVerify|BenchmarkSessionRead)$`

// runMicro runs the handlers' benchmarks once, after the load cases (so they never share
// the machine with a measured server), and returns them by name ("BenchmarkDashboard/small").
// pgServer, when set, is the PostgreSQL server the PostgreSQL variant makes its databases on.
func runMicro(ctx context.Context, root, pgServer string) (map[string]microResult, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", microBenchmarks, "-benchmem", "-count", "1", "./handlers/")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	if pgServer != "" {
		cmd.Env = append(os.Environ(), "GATEHOUSE_TEST_POSTGRES="+pgServer)
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go test -bench ./handlers: %w\n%s", err, out)
	}
	fmt.Printf("\nIn-process benchmarks (go test -bench '%s' -benchmem ./handlers):\n", microBenchmarks)
	res := map[string]microResult{}
	for line := range strings.SplitSeq(string(out), "\n") {
		name, r, ok, err := parseBenchLine(line)
		if err != nil {
			return nil, err
		}
		if ok {
			fmt.Println("  " + line)
			res[name] = r
		}
	}
	for _, want := range []string{"BenchmarkDashboard/small", "BenchmarkAuthVerify/small", "BenchmarkSessionRead/small"} {
		if _, ok := res[want]; !ok {
			return nil, fmt.Errorf("go test printed no result for %s:\n%s", want, out)
		}
	}
	return res, nil
}

// parseBenchLine reads "BenchmarkX/y-2  N  v unit  v unit …"; ok is false for other lines.
func parseBenchLine(line string) (name string, r microResult, ok bool, err error) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return "", microResult{}, false, nil
	}
	r.metrics = map[string]float64{}
	for i := 2; i+1 < len(f); i += 2 {
		v, perr := strconv.ParseFloat(f[i], 64)
		if perr != nil {
			return "", microResult{}, false, fmt.Errorf("unreadable benchmark line %q", line)
		}
		r.metrics[f[i+1]] = v
	}
	ns, hasNs := r.metrics["ns/op"]
	allocs, hasAllocs := r.metrics["allocs/op"]
	if !hasNs || !hasAllocs {
		return "", microResult{}, false, nil
	}
	r.nsPerOp, r.allocsPerOp = ns, int(allocs)
	name = f[0]
	if i := strings.LastIndexByte(name, '-'); i > 0 { // the GOMAXPROCS suffix
		name = name[:i]
	}
	return name, r, true, nil
}

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// microResult is one line of go test -bench -benchmem: time and allocations per operation.
type microResult struct {
	nsPerOp     float64
	allocsPerOp int
}

// microBenchmarks are the in-process benchmarks the targets read: a whole dashboard page
// view, a whole forward-auth check, and the session step on its own.
const microBenchmarks = `^(BenchmarkDashboard|BenchmarkAuthVerify|BenchmarkSessionRead)$`

// runMicro runs the handlers' benchmarks once, after the load cases (so they never share
// the machine with a measured server), and returns them by name ("BenchmarkDashboard/small").
func runMicro(ctx context.Context, root string) (map[string]microResult, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", microBenchmarks, "-benchmem", "-count", "1", "./handlers/")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go test -bench ./handlers: %w\n%s", err, out)
	}
	fmt.Printf("\nIn-process benchmarks (go test -bench '%s' -benchmem ./handlers):\n", microBenchmarks)
	res := map[string]microResult{}
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "Benchmark") || f[3] != "ns/op" || f[7] != "allocs/op" {
			continue
		}
		fmt.Println("  " + line)
		ns, err1 := strconv.ParseFloat(f[2], 64)
		allocs, err2 := strconv.Atoi(f[6])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("unreadable benchmark line %q", line)
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 { // the GOMAXPROCS suffix
			name = name[:i]
		}
		res[name] = microResult{nsPerOp: ns, allocsPerOp: allocs}
	}
	for _, want := range []string{"BenchmarkDashboard/small", "BenchmarkAuthVerify/small", "BenchmarkSessionRead/small"} {
		if _, ok := res[want]; !ok {
			return nil, fmt.Errorf("go test printed no result for %s:\n%s", want, out)
		}
	}
	return res, nil
}

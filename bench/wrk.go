package main

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkScript drives wrk for a case: per-thread session cookies, and every answer but a 200
// counted as an error.
//
//go:embed wrk.lua
var wrkScript []byte

// wrkThreads is how many threads wrk runs: one per core of the machine, at most one per
// connection.
func wrkThreads(o options) int { return max(1, min(o.conns, o.cores)) }

// wholeSeconds is d rounded up to wrk's unit, the second.
func wholeSeconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

// wrkLoad loads a case's server with wrk: an unmeasured warm-up run, then the measured one,
// with the server's CPU read right before it starts and right after it ends. wrk's own
// CPU is the load generator's.
func wrkLoad(ctx context.Context, o options, srv *server, c benchCase, cookies []string) (loadResult, cpuWindow, error) {
	tokens := filepath.Join(o.dir, "cookies-"+strconv.Itoa(srv.pid))
	if err := os.WriteFile(tokens, []byte(strings.Join(cookies, "\n")+"\n"), 0o600); err != nil {
		return loadResult{}, cpuWindow{}, err
	}
	defer os.Remove(tokens)
	args := func(seconds int) []string {
		path, headers := c.target()
		a := []string{"-t", strconv.Itoa(wrkThreads(o)), "-c", strconv.Itoa(o.conns), "-d", strconv.Itoa(seconds) + "s",
			"--timeout", "10s", "--latency", "-s", o.wrkScript, "http://" + srv.addr + path, "--",
			tokens, strconv.Itoa(wrkThreads(o)), path}
		for _, h := range headers {
			a = append(a, h[0], h[1])
		}
		return a
	}
	if o.warmup > 0 {
		if _, _, err := runWrk(ctx, o.wrk, args(wholeSeconds(o.warmup))); err != nil {
			return loadResult{}, cpuWindow{}, fmt.Errorf("wrk warm-up: %w", err)
		}
	}
	var cpu cpuWindow
	read := func(sign int64) error {
		server, err := cpuTicks(srv.pid)
		self, _ := cpuTicks(os.Getpid())
		machine, _ := machineBusyTicks()
		cpu.server, cpu.self, cpu.machine = cpu.server+sign*server, cpu.self+sign*self, cpu.machine+sign*machine
		return err
	}
	if err := read(-1); err != nil {
		return loadResult{}, cpuWindow{}, err
	}
	res, wrkTicks, err := runWrk(ctx, o.wrk, args(wholeSeconds(o.duration)))
	if err != nil {
		return loadResult{}, cpuWindow{}, err
	}
	if err := read(1); err != nil {
		return loadResult{}, cpuWindow{}, err
	}
	cpu.self += wrkTicks
	return res, cpu, nil
}

// runWrk runs wrk once and reads the line its script prints at the end; ticks is the CPU
// time wrk used, in clock ticks.
func runWrk(ctx context.Context, bin string, args []string) (res loadResult, ticks int64, err error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return loadResult{}, 0, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	if ps := cmd.ProcessState; ps != nil {
		ticks = (ps.UserTime() + ps.SystemTime()).Nanoseconds() * clockTicks() / int64(time.Second)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "wrk-result "); ok {
			res, err := parseWrkResult(rest)
			if err != nil {
				return loadResult{}, 0, fmt.Errorf("wrk: %w in %q", err, line)
			}
			return res, ticks, nil
		}
	}
	return loadResult{}, 0, fmt.Errorf("wrk printed no result line:\n%s", out)
}

// parseWrkResult reads the key=value fields of the script's result line.
func parseWrkResult(fields string) (loadResult, error) {
	v := map[string]int64{}
	for f := range strings.FieldsSeq(fields) {
		k, s, ok := strings.Cut(f, "=")
		n, err := strconv.ParseInt(s, 10, 64)
		if !ok || err != nil {
			return loadResult{}, fmt.Errorf("unreadable field %q", f)
		}
		v[k] = n
	}
	if v["duration_us"] <= 0 {
		return loadResult{}, fmt.Errorf("no duration")
	}
	socket := v["connect"] + v["read"] + v["write"] + v["timeout"]
	r := loadResult{
		ok:       int(v["requests"] - v["bad"]),
		errs:     int(v["bad"] + socket),
		statuses: map[int]int{},
		elapsed:  time.Duration(v["duration_us"]) * time.Microsecond,
		p50:      time.Duration(v["p50_us"]) * time.Microsecond,
		p99:      time.Duration(v["p99_us"]) * time.Microsecond,
	}
	if v["bad"] > 0 {
		r.statuses[int(v["first_bad"])] += int(v["bad"])
		r.sample = fmt.Sprintf("%d answers were not 200, the first %d", v["bad"], v["first_bad"])
	}
	if socket > 0 {
		r.statuses[0] += int(socket)
		if r.sample == "" {
			r.sample = fmt.Sprintf("%d transport errors (connect %d, read %d, write %d, timeout %d)", socket,
				v["connect"], v["read"], v["write"], v["timeout"])
		}
	}
	r.ok = max(r.ok, 0)
	return r, nil
}

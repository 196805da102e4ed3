package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is one child process under test.
type server struct {
	name    string
	cmd     *exec.Cmd
	pid     int
	addr    string        // host:port from its "serving" log line
	startup time.Duration // exec to the first 200 on the probe path
	done    chan struct{} // closed once the process has exited and been reaped

	mu   sync.Mutex
	tail []string // last lines of its stderr, for error reports
}

// children holds every process started, so any exit path can end them.
var children struct {
	sync.Mutex
	m map[int]*server
}

// startServer execs bin, waits for its {"msg":"serving","addr":...} line on stderr, then
// polls probe until it answers 200. Startup is measured from just before exec.
func startServer(ctx context.Context, name, probe, bin string, args ...string) (*server, error) {
	s := &server{name: name, done: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	// If the harness dies without cleaning up, the kernel ends the child.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s.cmd.Stdout = &tailWriter{s: s}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	addrc := make(chan string, 1)
	t0 := time.Now()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s.pid = s.cmd.Process.Pid
	children.Lock()
	if children.m == nil {
		children.m = map[int]*server{}
	}
	children.m[s.pid] = s
	children.Unlock()
	go s.watch(stderr, addrc)

	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	select {
	case s.addr = <-addrc:
	case <-s.done:
		return nil, fmt.Errorf("%s exited during start-up:\n%s", name, s.lastLines())
	case <-deadline.C:
		s.stop()
		return nil, fmt.Errorf("%s did not announce its address within 30s:\n%s", name, s.lastLines())
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	if err := s.waitReady(ctx, probe, deadline.C); err != nil {
		return nil, err
	}
	s.startup = time.Since(t0)
	return s, nil
}

// watch keeps the last lines of the server's stderr, passes on the address its serving
// line names, and reaps the process when the pipe closes.
func (s *server) watch(stderr io.Reader, addrc chan<- string) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		s.keep(line)
		var m struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "serving" && m.Addr != "" {
			select {
			case addrc <- m.Addr:
			default:
			}
		}
	}
	_ = s.cmd.Wait() // after every read from the pipe, as exec requires
	children.Lock()
	delete(children.m, s.pid)
	children.Unlock()
	close(s.done)
}

// waitReady polls probe every millisecond until it answers 200, the server exits, or the
// deadline or ctx ends.
func (s *server) waitReady(ctx context.Context, probe string, deadline <-chan time.Time) error {
	probeClient := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + s.addr + probe
	for {
		resp, err := probeClient.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("%s exited during start-up:\n%s", s.name, s.lastLines())
		case <-deadline:
			s.stop()
			return fmt.Errorf("%s: %s gave no 200 within 30s (last error %v)", s.name, probe, err)
		case <-ctx.Done():
			s.stop()
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func (s *server) keep(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tail = append(s.tail, line)
	if len(s.tail) > 20 {
		s.tail = s.tail[len(s.tail)-20:]
	}
}

func (s *server) lastLines() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "    " + strings.Join(s.tail, "\n    ")
}

// tailWriter keeps a child's stdout lines with its stderr ones.
type tailWriter struct{ s *server }

func (w *tailWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.s.keep(l)
	}
	return len(p), nil
}

// stop asks the process to shut down, and kills it if it has not within 5 seconds.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// stopAll ends every child still running, each by its own pid.
func stopAll() {
	children.Lock()
	var ss []*server
	for _, s := range children.m {
		ss = append(ss, s)
	}
	children.Unlock()
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(s.stop)
	}
	wg.Wait()
}

// cpuTicks is utime+stime of pid, fields 14 and 15 of /proc/PID/stat, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces; count after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[14-3], 10, 64)
	st, err2 := strconv.ParseInt(f[15-3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return ut + st, nil
}

// peakRSS is VmHWM of pid from /proc/PID/status, in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// clockTicks is CLK_TCK from getconf, or the usual 100 Hz.
func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100
}

// machineBusyTicks is the whole machine's non-idle CPU time from /proc/stat (user, nice,
// system, irq, softirq and steal), in clock ticks, so a window's other load can be told apart.
func machineBusyTicks() (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("unreadable /proc/stat")
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, err
		}
		busy += n
	}
	return busy, nil
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/internal/testkit"
)

// The crash and load tests drive a real gatehouse process built without the race
// detector, as it runs in production.
var (
	buildOnce sync.Once
	builtPath string
	buildErr  error
)

func gatehouseBinaryPath(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gatehouse-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtPath = filepath.Join(dir, "gatehouse")
		out, err := exec.Command("go", "build", "-o", builtPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return builtPath
}

// process is a gatehouse serve process.
type process struct {
	cmd    *exec.Cmd
	addr   string
	stderr *testkit.SyncBuffer
}

func startProcess(tb testing.TB, path string, extra ...string) *process {
	tb.Helper()
	p := &process{stderr: &testkit.SyncBuffer{}}
	p.cmd = exec.Command(gatehouseBinaryPath(tb), append([]string{"serve", "--db", path, "--addr", "127.0.0.1:0",
		"--log-format", "json"}, extra...)...)
	p.cmd.Stdout = io.Discard
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			p.stderr.Write([]byte(line + "\n"))
			var rec struct{ Msg, Addr string }
			if !sent && json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
				addr <- rec.Addr
				sent = true
			}
		}
	}()
	select {
	case p.addr = <-addr:
	case <-time.After(30 * time.Second):
		tb.Fatalf("gatehouse did not start; stderr:\n%s", p.stderr.String())
	}
	return p
}

// webClient is one browser: a cookie jar, fetch metadata on POSTs, no redirect following.
type webClient struct {
	base string
	http *http.Client
}

func newWebClient(base string) *webClient {
	jar, _ := cookiejar.New(nil)
	return &webClient{base: base, http: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (w *webClient) get(path string) (int, error) {
	resp, err := w.http.Get(w.base + path)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (w *webClient) post(path string, form url.Values) (int, string, error) {
	req, _ := http.NewRequest(http.MethodPost, w.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location"), nil
}

func seedStressUsers(tb testing.TB, path string, staff int) {
	tb.Helper()
	store := openDB(tb, path)
	// Cheap, so the load tests sign in many times without argon2id dominating the run; the
	// binary reads the cost from the stored hash.
	hash := testkit.CheapHash(tb, "correct horse battery")
	ctx := context.Background()
	mk := func(name, role string) {
		if _, err := store.CreateUser(ctx, db.NewUser{Username: name, Role: role, PasswordHash: hash}, db.Event{At: time.Now()}); err != nil {
			tb.Fatal(err)
		}
	}
	mk("publisher", db.RolePublisher)
	for i := 0; i < staff; i++ {
		mk("staff"+strconv.Itoa(i), db.RoleStaff)
	}
	store.Close()
}

func TestCrashLosesNothingConfirmed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real server")
	}
	path := newDatabase(t)
	const workers = 8
	seedStressUsers(t, path, workers)
	p := startProcess(t, path)
	base := "http://" + p.addr

	type ack struct {
		notice int64
		user   string
	}
	var (
		mu       sync.Mutex
		notices  []int64
		acks     []ack
		signins  atomic.Int64
		attempts atomic.Int64
	)
	pub := newWebClient(base)
	if code, _, err := pub.post("/login", url.Values{"username": {"publisher"}, "password": {"correct horse battery"}}); err != nil || code != 303 {
		t.Fatalf("publisher sign-in: %d %v", code, err)
	}
	post := func() {
		attempts.Add(1)
		code, loc, err := pub.post("/admin/notices", url.Values{"title": {"Crash " + time.Now().Format(time.RFC3339Nano)},
			"body": {"Body"}, "kind": {"must_read"}, "severity": {"info"}, "audience": {"everyone"}})
		if err != nil || code != 303 {
			return
		}
		id, err := strconv.ParseInt(strings.SplitN(strings.TrimPrefix(loc, "/admin/notices/"), "?", 2)[0], 10, 64)
		if err == nil {
			mu.Lock()
			notices = append(notices, id)
			mu.Unlock()
		}
	}
	post()

	// Each worker signs in once (password checks are rate-limited on purpose), then keeps
	// acknowledging the newest notice while worker 0 also keeps posting new ones.
	staff := make([]*webClient, workers)
	for i := range staff {
		staff[i] = newWebClient(base)
		attempts.Add(1)
		if code, _, err := staff[i].post("/login", url.Values{"username": {"staff" + strconv.Itoa(i)},
			"password": {"correct horse battery"}}); err != nil || code != 303 {
			t.Fatalf("staff%d sign-in: %d %v", i, code, err)
		}
		signins.Add(1)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name, c := "staff"+strconv.Itoa(i), staff[i]
			for n := 0; n < 100000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if i == 0 {
					post()
				}
				mu.Lock()
				target := notices[len(notices)-1]
				mu.Unlock()
				attempts.Add(1)
				code, _, err := c.post("/notices/"+strconv.FormatInt(target, 10)+"/ack", url.Values{"return": {"/"}})
				if err != nil {
					return
				}
				if code == 303 {
					mu.Lock()
					acks = append(acks, ack{target, name})
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	_ = p.cmd.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(acks) == 0 || len(notices) < 2 {
		t.Fatalf("the run confirmed too little to prove anything: %d notices, %d acks", len(notices), len(acks))
	}
	// The same file must start again and hold every write whose response was received.
	startProcess(t, path)
	store, err := db.OpenExisting(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.IntegrityCheck(context.Background()); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, id := range notices {
		if _, err := store.NoticeByID(context.Background(), id); err != nil {
			lost++
		}
	}
	for _, a := range acks {
		u, err := store.UserByUsername(context.Background(), a.user)
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.NoticeFor(context.Background(), a.notice, u, time.Now())
		if err != nil || st.AckedAt.IsZero() {
			lost++
		}
	}
	t.Logf("crash test: %d requests sent, %d sign-ins, %d notices and %d acknowledgements confirmed before SIGKILL; %d lost",
		attempts.Load(), signins.Load(), len(notices), len(acks), lost)
	if lost != 0 {
		t.Fatalf("%d confirmed writes were lost", lost)
	}
}

func TestLoadHasNoServerErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a real server with 200 clients")
	}
	path := newDatabase(t)
	const clients = 200
	seedStressUsers(t, path, clients)
	// Every client starts signed in (sessions made directly in the store, as sign-ins are
	// rate-limited on purpose); the workload still signs out and in again now and then.
	tokens := make([]string, clients)
	store := openDB(t, path)
	for i := range tokens {
		u := userNamed(t, store, "staff"+strconv.Itoa(i))
		tokens[i] = auth.NewToken()
		if _, err := store.StartSession(context.Background(), db.NewSession{TokenHash: auth.HashToken(tokens[i]),
			UserID: u.ID, Stage: db.StageFull}, db.Event{At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()
	p := startProcess(t, path)
	base := "http://" + p.addr
	pub := newWebClient(base)
	if code, _, err := pub.post("/login", url.Values{"username": {"publisher"}, "password": {"correct horse battery"}}); err != nil || code != 303 {
		t.Fatalf("publisher sign-in: %d %v", code, err)
	}
	var ids []string
	for i, kind := range []string{"must_read", "normal", "must_read", "normal"} {
		_, loc, err := pub.post("/admin/notices", url.Values{"title": {"Load " + strconv.Itoa(i)}, "body": {"Body"},
			"kind": {kind}, "severity": {"warning"}, "audience": {"everyone"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, strings.SplitN(strings.TrimPrefix(loc, "/admin/notices/"), "?", 2)[0])
	}
	baseURL, _ := url.Parse(base + "/")

	var total, fivexx, failed, shed atomic.Int64
	count := func(code int, err error) {
		total.Add(1)
		switch {
		case err != nil:
			failed.Add(1)
		case code >= 500:
			fivexx.Add(1)
		case code == http.StatusTooManyRequests:
			shed.Add(1) // sign-ins turned away while every hashing slot was busy
		}
	}
	deadline := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "staff" + strconv.Itoa(i)
			c := newWebClient(base)
			c.http.Jar.SetCookies(baseURL, []*http.Cookie{{Name: "gatehouse_session", Value: tokens[i]}})
			for n := 0; n < 1000 && time.Now().Before(deadline); n++ {
				for k := 0; k < 5 && time.Now().Before(deadline); k++ {
					code, err := c.get("/")
					count(code, err)
				}
				id := ids[(i+n)%len(ids)]
				code, _, err := c.post("/notices/"+id+"/ack", url.Values{"return": {"/"}})
				count(code, err)
				code, _, err = c.post("/notices/"+id+"/dismiss", url.Values{"return": {"/"}})
				count(code, err)
				if n%5 == 4 { // sign out and back in
					code, _, err = c.post("/logout", nil)
					count(code, err)
					code, _, err = c.post("/login", url.Values{"username": {name}, "password": {"correct horse battery"}})
					count(code, err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("load test: %d clients, %d requests in 4 s, %d 5xx, %d transport errors, %d sign-ins shed with 429",
		clients, total.Load(), fivexx.Load(), failed.Load(), shed.Load())
	if fivexx.Load() != 0 || failed.Load() != 0 {
		var errs []string
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"status":5`) {
				errs = append(errs, line)
			}
		}
		t.Fatalf("%d 5xx and %d transport errors; server errors:\n%.4000s", fivexx.Load(), failed.Load(), strings.Join(errs, "\n"))
	}
	if strings.Contains(p.stderr.String(), "database is locked") || strings.Contains(p.stderr.String(), "SQLITE_BUSY") {
		t.Fatal("the log reports a locked database")
	}
	if total.Load() < clients*3 {
		t.Fatalf("only %d requests completed", total.Load())
	}
}

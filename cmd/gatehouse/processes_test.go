package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/db"
	"gatehouse/internal/testkit"
)

// The guarantee across processes: a change committed by any process (another serve, any
// command) shows on every running server at its next request or within one second,
// whichever is later, and a revoked session is refused at its very next request. These
// tests prove it with real processes: two serve processes of the built binary on one
// SQLite file, and the command line as a third.

var bannerMarkup = regexp.MustCompile(`data-notice-id="(\d+)" data-must-read="(true|false)"`)

// page fetches path and returns its status, redirect target and body.
func (w *webClient) page(tb testing.TB, path string) (int, string, string) {
	tb.Helper()
	resp, err := w.http.Get(w.base + path)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// banners maps the notice ids of the dashboard's banners to their data-must-read.
func (w *webClient) banners(tb testing.TB) map[string]string {
	tb.Helper()
	code, loc, body := w.page(tb, "/")
	if code != http.StatusOK {
		tb.Fatalf("GET / = %d (Location %q), want the dashboard", code, loc)
	}
	out := map[string]string{}
	for _, m := range bannerMarkup.FindAllStringSubmatch(body, -1) {
		out[m[1]] = m[2]
	}
	return out
}

func (w *webClient) signIn(tb testing.TB, username string) {
	tb.Helper()
	code, loc, err := w.post("/login", url.Values{"username": {username}, "password": {"correct horse battery"}})
	if err != nil || code != http.StatusSeeOther || loc != "/" {
		tb.Fatalf("sign-in of %s: %d to %q, %v", username, code, loc, err)
	}
}

// showsWithinASecond asks the dashboard until shown says yes, and fails if a request made a
// second or more after since still says no. It returns how long the change took to show.
func showsWithinASecond(tb testing.TB, c *webClient, since time.Time, what string, shown func(map[string]string) bool) time.Duration {
	tb.Helper()
	deadline := since.Add(time.Second)
	for range 500 {
		asked := time.Now()
		if got := c.banners(tb); shown(got) {
			return time.Since(since)
		} else if asked.After(deadline) {
			tb.Fatalf("%s: a request %v after the commit still shows banners %v", what, asked.Sub(since).Round(time.Millisecond), got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("%s: not shown after 500 requests", what)
	return 0
}

// gatehouseCommand runs the built binary once, as a script beside the servers would.
func gatehouseCommand(tb testing.TB, stdin string, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatehouseBinaryPath(tb), args...)
	cmd.Env = []string{"HOME=" + tb.TempDir(), "TZ=UTC"}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		tb.Fatalf("gatehouse %s: %v; stderr: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

func TestEveryServerSeesEveryChange(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real servers")
	}
	path := newDatabase(t)
	store := openDB(t, path)
	hash := testkit.CheapHash(t, "correct horse battery")
	for _, nu := range []db.NewUser{{Username: "root", Role: db.RoleAdmin}, {Username: "pub", Role: db.RolePublisher},
		{Username: "sam", Role: db.RoleStaff}} {
		nu.PasswordHash = hash
		if _, err := store.CreateUser(context.Background(), nu, db.Event{At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	sam := userNamed(t, store, "sam")
	one, two := startProcess(t, path), startProcess(t, path)
	samOnOne := newWebClient("http://" + one.addr)
	samOnOne.signIn(t, "sam")
	rootOnTwo := newWebClient("http://" + two.addr)
	rootOnTwo.signIn(t, "root")
	if got := samOnOne.banners(t); len(got) != 0 {
		t.Fatalf("banners before any notice: %v", got)
	}

	var id string
	t.Run("a notice posted by the command line is a banner on a running server within a second", func(t *testing.T) {
		out := gatehouseCommand(t, "Deploying in 5 minutes.\n", "notice", "post", "--db", path, "--as", "pub",
			"--title", "Deploy", "--body-file", "-", "--kind", "must_read", "--severity", "warning")
		committed := time.Now()
		id = strings.TrimSpace(out)
		if _, err := strconv.ParseInt(id, 10, 64); err != nil {
			t.Fatalf("notice post printed %q, want the id", out)
		}
		took := showsWithinASecond(t, samOnOne, committed, "the posted notice", func(b map[string]string) bool { return b[id] == "true" })
		t.Logf("shown after %v", took.Round(time.Millisecond))
	})
	t.Run("archived by the command line, it is gone within a second", func(t *testing.T) {
		if id == "" {
			t.Skip("no notice was posted")
		}
		gatehouseCommand(t, "", "notice", "archive", "--db", path, "--as", "pub", id)
		committed := time.Now()
		took := showsWithinASecond(t, samOnOne, committed, "the archived notice", func(b map[string]string) bool { _, ok := b[id]; return !ok })
		t.Logf("gone after %v", took.Round(time.Millisecond))
	})
	t.Run("a notice posted on the other server is a banner here within a second", func(t *testing.T) {
		code, loc, err := rootOnTwo.post("/admin/notices", url.Values{"title": {"Lunch"}, "body": {"Pizza at one."},
			"kind": {"normal"}, "severity": {"info"}, "audience": {"role:staff"}})
		committed := time.Now()
		m := regexp.MustCompile(`^/admin/notices/(\d+)`).FindStringSubmatch(loc)
		if err != nil || code != http.StatusSeeOther || m == nil {
			t.Fatalf("posting on the other server: %d to %q, %v", code, loc, err)
		}
		showsWithinASecond(t, samOnOne, committed, "the notice posted elsewhere", func(b map[string]string) bool { return b[m[1]] == "false" })
	})
	t.Run("groups made by the command line are audiences on a running server", func(t *testing.T) {
		gatehouseCommand(t, "", "group", "add", "--db", path, "night shift")
		gatehouseCommand(t, "", "group", "add-member", "--db", path, "night shift", "sam")
		out := gatehouseCommand(t, "Bring a torch.\n", "notice", "post", "--db", path, "--as", "root", "--title", "Night",
			"--body-file", "-", "--kind", "normal", "--severity", "info", "--audience", "group:night shift")
		committed := time.Now()
		nid := strings.TrimSpace(out)
		showsWithinASecond(t, samOnOne, committed, "the group's notice", func(b map[string]string) bool { return b[nid] == "false" })
	})
	t.Run("an MFA rule set on the other server is enforced here at the next request", func(t *testing.T) {
		code, loc, err := rootOnTwo.post("/admin/mfa-policy", url.Values{"scope": {"role:staff"}, "mode": {"required"},
			"deadline": {"2020-01-01T00:00"}, "confirm": {"1"}})
		if err != nil || code != http.StatusSeeOther || !strings.HasPrefix(loc, "/admin/mfa-policy") {
			t.Fatalf("saving the rule: %d to %q, %v", code, loc, err)
		}
		if code, loc, _ := samOnOne.page(t, "/"); code != http.StatusSeeOther || loc != "/account/mfa" {
			t.Fatalf("the next request here: %d to %q, want enrollment", code, loc)
		}
		gatehouseCommand(t, "", "mfa", "pause", "--db", path)
		if code, loc, _ := samOnOne.page(t, "/"); code != http.StatusOK {
			t.Fatalf("after mfa pause, the next request here: %d to %q, want the dashboard", code, loc)
		}
	})
	t.Run("a revoke on the other server is refused here at the next request", func(t *testing.T) {
		uid := strconv.FormatInt(sam.ID, 10)
		if code, _, err := rootOnTwo.post("/admin/users/"+uid+"/revoke-sessions", url.Values{}); err != nil || code != http.StatusSeeOther {
			t.Fatalf("revoking on the other server: %d, %v", code, err)
		}
		if code, loc, _ := samOnOne.page(t, "/"); code != http.StatusSeeOther || loc != "/login?ended=1" {
			t.Fatalf("the next request here: %d to %q, want the sign-in page saying the session ended", code, loc)
		}
	})
	t.Run("a revoke by the command line is refused at the next request", func(t *testing.T) {
		samOnOne.signIn(t, "sam")
		gatehouseCommand(t, "", "sessions", "revoke", "--db", path, "--user", "sam")
		if code, loc, _ := samOnOne.page(t, "/"); code != http.StatusSeeOther || loc != "/login?ended=1" {
			t.Fatalf("the next request: %d to %q, want the sign-in page saying the session ended", code, loc)
		}
	})
}

// A running server keeps the sessions it has looked up in memory. Each command below
// commits from a process of its own while the session is kept (it has just served
// several pages), and the very next request must see the change.
func TestKeptSessionsFollowTheCommandLineAtTheNextRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real servers")
	}
	path := newDatabase(t)
	store := openDB(t, path)
	hash := testkit.CheapHash(t, "correct horse battery")
	for _, nu := range []db.NewUser{{Username: "root", Role: db.RoleAdmin}, {Username: "sam", Role: db.RoleStaff}} {
		nu.PasswordHash = hash
		if _, err := store.CreateUser(context.Background(), nu, db.Event{At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	srv := startProcess(t, path)
	sam := newWebClient("http://" + srv.addr)
	signInAndWarm := func(t *testing.T) {
		sam.signIn(t, "sam")
		for range 3 {
			if code, loc, _ := sam.page(t, "/"); code != http.StatusOK {
				t.Fatalf("GET / = %d to %q, want the dashboard", code, loc)
			}
		}
	}
	wantEnded := func(t *testing.T) {
		if code, loc, _ := sam.page(t, "/"); code != http.StatusSeeOther || loc != "/login?ended=1" {
			t.Fatalf("the next request: %d to %q, want the sign-in page saying the session ended", code, loc)
		}
	}
	t.Run("sessions revoke", func(t *testing.T) {
		signInAndWarm(t)
		gatehouseCommand(t, "", "sessions", "revoke", "--db", path, "--user", "sam")
		wantEnded(t)
	})
	t.Run("user disable", func(t *testing.T) {
		signInAndWarm(t)
		gatehouseCommand(t, "", "user", "disable", "--db", path, "sam")
		wantEnded(t)
		gatehouseCommand(t, "", "user", "enable", "--db", path, "sam")
	})
	t.Run("user set-password", func(t *testing.T) {
		signInAndWarm(t)
		gatehouseCommand(t, "correct horse battery\n", "user", "set-password", "--db", path, "--password-stdin", "sam")
		wantEnded(t)
	})
	t.Run("group add-member and remove-member", func(t *testing.T) {
		gatehouseCommand(t, "", "group", "add", "--db", path, "night shift")
		out := gatehouseCommand(t, "Bring a torch.\n", "notice", "post", "--db", path, "--as", "root", "--title", "Night",
			"--body-file", "-", "--kind", "normal", "--severity", "info", "--audience", "group:night shift")
		id := strings.TrimSpace(out)
		signInAndWarm(t)
		if _, shown := sam.banners(t)[id]; shown {
			t.Fatal("the group's notice shows before sam is in the group")
		}
		gatehouseCommand(t, "", "group", "add-member", "--db", path, "night shift", "sam")
		if _, shown := sam.banners(t)[id]; !shown {
			t.Fatal("the next request after add-member does not show the group's notice")
		}
		gatehouseCommand(t, "", "group", "remove-member", "--db", path, "night shift", "sam")
		if _, shown := sam.banners(t)[id]; shown {
			t.Fatal("the next request after remove-member still shows the group's notice")
		}
	})
	// Last: afterwards sam must enroll a second factor before seeing the dashboard.
	t.Run("user reset-mfa", func(t *testing.T) {
		signInAndWarm(t)
		gatehouseCommand(t, "", "user", "reset-mfa", "--db", path, "sam")
		wantEnded(t)
	})
}

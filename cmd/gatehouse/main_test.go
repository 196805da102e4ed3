package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/internal/testkit"
)

// runMainEnv makes the test binary behave as the gatehouse binary, so tests can check exit
// codes, stderr and signal handling of main itself.
const runMainEnv = "GATEHOUSE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	if builtPath != "" { // the binary the process tests built, once for the whole run
		os.RemoveAll(filepath.Dir(builtPath))
	}
	os.Exit(code)
}

// fakeHash stands in for a password hash where a test never signs in, so setting up users
// costs no argon2id work.
const fakeHash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"

// runCLI runs one command with an empty environment and no standard input.
func runCLI(tb testing.TB, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	return runIn(tb, nil, "", args...)
}

// runIn runs one command the way main does, with env as the whole environment. A command
// that does not finish in 30 s is cancelled, so a stuck command fails instead of hanging.
func runIn(tb testing.TB, env map[string]string, stdin string, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	return runFor(tb, 30*time.Second, env, stdin, args...)
}

// runFor is runIn with its own time limit.
func runFor(tb testing.TB, limit time.Duration, env map[string]string, stdin string, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var out, errOut bytes.Buffer
	getenv := func(k string) string { return env[k] }
	err = run(ctx, append([]string{"gatehouse"}, args...), getenv, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// mustRun runs a command that must succeed and returns its standard output.
func mustRun(tb testing.TB, stdin string, args ...string) string {
	tb.Helper()
	out, errOut, err := runIn(tb, nil, stdin, args...)
	if err != nil {
		tb.Fatalf("gatehouse %s: %v (stderr: %s)", strings.Join(args, " "), err, errOut)
	}
	return out
}

// assertOneLine fails unless err is a single-line error containing every want.
func assertOneLine(tb testing.TB, err error, want ...string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got no error, want one containing %q", want)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		tb.Errorf("error is not one line: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			tb.Errorf("error %q does not contain %q", msg, w)
		}
	}
}

// newDatabase makes a migrated database with its key file and key canary beside it, as a
// first serve leaves them, and returns the database path.
func newDatabase(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "gatehouse.db")
	ctx := context.Background()
	store, err := db.Open(ctx, path)
	if err != nil {
		tb.Fatal(err)
	}
	defer store.Close()
	if _, _, err := openKeys(ctx, store, path+".key", true); err != nil {
		tb.Fatal(err)
	}
	if _, err := store.KeyCanary(ctx); err != nil {
		tb.Fatalf("the new database has no key canary: %v", err)
	}
	return path
}

// openDB opens path for the test's own reads and writes, beside the commands under test.
func openDB(tb testing.TB, path string) *db.DB {
	tb.Helper()
	store, err := db.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	return store
}

func addUser(tb testing.TB, store *db.DB, username, role string) db.User {
	tb.Helper()
	return testkit.CreateUser(tb, store, db.NewUser{Username: username, Role: role, PasswordHash: fakeHash}, "",
		db.Event{At: time.Now()})
}

func startSession(tb testing.TB, store *db.DB, userID int64) db.Session {
	tb.Helper()
	s, err := store.StartSession(context.Background(), db.NewSession{TokenHash: auth.HashToken(auth.NewToken()),
		UserID: userID, Stage: db.StageFull, ClientAddr: "127.0.0.1"}, db.Event{At: time.Now()})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func sessionsOf(tb testing.TB, store *db.DB, userID int64) int {
	tb.Helper()
	ss, err := store.ListSessions(context.Background(), userID)
	if err != nil {
		tb.Fatal(err)
	}
	return len(ss)
}

func userNamed(tb testing.TB, store *db.DB, username string) db.User {
	tb.Helper()
	u, err := store.UserByUsername(context.Background(), username)
	if err != nil {
		tb.Fatalf("user %q: %v", username, err)
	}
	return u
}

// rawExec runs SQL on the file directly, for states the db package never produces.
func rawExec(tb testing.TB, path, query string, args ...any) {
	tb.Helper()
	conn, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Exec(query, args...); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
}

// dumpTables returns every row of every table except the named ones, rendered as text, so
// a test can prove a command left them exactly as they were.
func dumpTables(tb testing.TB, path string, except ...string) map[string][]string {
	tb.Helper()
	conn, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	var tables []string
	rows, err := conn.Query(`SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`)
	if err != nil {
		tb.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			tb.Fatal(err)
		}
		skip := false
		for _, e := range except {
			skip = skip || name == e
		}
		if !skip {
			tables = append(tables, name)
		}
	}
	if err := rows.Close(); err != nil {
		tb.Fatal(err)
	}
	dump := map[string][]string{}
	for _, table := range tables {
		// Rows are sorted as text, since a WITHOUT ROWID table has no rowid to order by.
		rows, err := conn.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			tb.Fatalf("dump %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		dump[table] = []string{}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				tb.Fatal(err)
			}
			dump[table] = append(dump[table], fmt.Sprintf("%q", vals))
		}
		if err := rows.Close(); err != nil {
			tb.Fatal(err)
		}
		slices.Sort(dump[table])
	}
	return dump
}

func TestOneLine(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"a single line is kept", "cannot open database g.db", "cannot open database g.db"},
		{"newlines and tabs become single spaces", "db: integrity check failed:\n\tpage 3\r\nrow 2", "db: integrity check failed: page 3 row 2"},
		{"surrounding space is dropped", "  \nfailed\n", "failed"},
		{"an empty message stays empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := oneLine(tt.in); got != tt.want {
				t.Errorf("oneLine(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Run("version prints the version and the schema it carries", func(t *testing.T) {
		out, errOut, err := runCLI(t, "version")
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("gatehouse %s (schema %d)\n", version, db.SchemaVersion())
		if out != want || errOut != "" {
			t.Errorf("stdout %q, stderr %q; want stdout %q", out, errOut, want)
		}
	})
	t.Run("version takes no arguments", func(t *testing.T) {
		_, _, err := runCLI(t, "version", "extra")
		if !errors.Is(err, errUsage) {
			t.Fatalf("err = %v, want a usage error", err)
		}
		assertOneLine(t, err, "no arguments")
	})
}

func TestCommandDispatch(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command at all is a usage error", nil, "no command given"},
		{"an unknown command is a usage error", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"an unknown subcommand is a usage error", []string{"user", "frobnicate", "alice"}, `unknown command "user frobnicate"`},
		{"a group word alone is not a command", []string{"sessions"}, `unknown command "sessions"`},
		{"an unknown flag is a usage error", []string{"version", "--verbose"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCLI(t, tt.args...)
			if !errors.Is(err, errUsage) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			assertOneLine(t, err, tt.want, "--help")
		})
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "help"} {
		t.Run(fmt.Sprintf("gatehouse %s lists every command on stdout", arg), func(t *testing.T) {
			out, errOut, err := runCLI(t, arg)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("err = %v, want flag.ErrHelp", err)
			}
			if errOut != "" {
				t.Errorf("stderr = %q, want nothing", errOut)
			}
			for _, c := range commands() {
				if !strings.Contains(out, c.name) {
					t.Errorf("usage does not list %q:\n%s", c.name, out)
				}
			}
		})
	}
	for _, c := range commands() {
		t.Run(fmt.Sprintf("gatehouse %s --help prints its flags on stdout", c.name), func(t *testing.T) {
			args := append(strings.Fields(c.name), "--help")
			out, errOut, err := runCLI(t, args...)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("err = %v, want flag.ErrHelp", err)
			}
			if errOut != "" {
				t.Errorf("stderr = %q, want nothing", errOut)
			}
			if !strings.HasPrefix(out, "Usage: gatehouse "+c.name) {
				t.Errorf("help does not start with the usage line:\n%s", out)
			}
			// Every command on the configured store shows its settings; store copy names
			// both of its stores in its own flags.
			if c.name != "version" && c.name != "store copy" && !strings.Contains(out, "GATEHOUSE_DB") {
				t.Errorf("help does not show the settings with their environment variables:\n%s", out)
			}
		})
	}
}

// gatehouseBinary runs the test binary as gatehouse itself, with a clean environment.
func gatehouseBinary(tb testing.TB, ctx context.Context, args ...string) *exec.Cmd {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = []string{runMainEnv + "=1", "HOME=" + tb.TempDir(), "TZ=UTC"}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func TestMainExitCodes(t *testing.T) {
	good := newDatabase(t)
	missing := filepath.Join(t.TempDir(), "missing.db")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string // the whole of stderr must be one line with this in it
	}{
		{"version exits 0", []string{"version"}, 0, "gatehouse dev", ""},
		{"help exits 0 and prints usage on stdout", []string{"--help"}, 0, "Usage: gatehouse", ""},
		{"help on a command exits 0", []string{"user", "add", "--help"}, 0, "-password-stdin", ""},
		{"check on a good database exits 0", []string{"check", "--db", good}, 0, "ok:", ""},
		{"no command exits 2", nil, 2, "Usage: gatehouse", "gatehouse: no command given"},
		{"an unknown command exits 2", []string{"frobnicate"}, 2, "", `gatehouse: unknown command "frobnicate"`},
		{"a bad setting exits 1 with one line", []string{"check", "--session-idle", "abc"}, 1, "", "gatehouse: invalid --session-idle"},
		{"a missing database exits 1 with one line", []string{"check", "--db", missing}, 1, "", "gatehouse: cannot open database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := gatehouseBinary(t, ctx, tt.args...)
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr: %s)", code, tt.wantCode, errOut.String())
			}
			if !strings.Contains(out.String(), tt.wantStdout) {
				t.Errorf("stdout %q does not contain %q", out.String(), tt.wantStdout)
			}
			if tt.wantStderr == "" {
				if errOut.Len() != 0 {
					t.Errorf("stderr = %q, want nothing", errOut.String())
				}
				return
			}
			line, rest, _ := strings.Cut(errOut.String(), "\n")
			if rest != "" || !strings.Contains(line, tt.wantStderr) {
				t.Errorf("stderr = %q, want one line containing %q", errOut.String(), tt.wantStderr)
			}
		})
	}
}

func TestMainShutsDownGracefullyOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(fmt.Sprintf("serve stops cleanly and exits 0 on %v", sig), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			path := filepath.Join(t.TempDir(), "g.db")
			cmd := gatehouseBinary(t, ctx, "serve", "--addr", "127.0.0.1:0", "--db", path, "--log-format", "json")
			var out, errOut testkit.SyncBuffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			waitForServing(t, &errOut, waited)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-waited:
				if err != nil {
					t.Fatalf("exit: %v (stderr: %s)", err, errOut.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("serve did not stop within 20 s of %v; stderr:\n%s", sig, errOut.String())
			}
			if !strings.Contains(errOut.String(), `"msg":"stopped"`) {
				t.Errorf("no graceful stop logged:\n%s", errOut.String())
			}
		})
	}
}

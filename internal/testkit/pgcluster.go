package testkit

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// PGCluster is a PostgreSQL server that one test made for itself: its own data directory
// and port on loopback, so the test may stop it hard and start it again without touching
// any server that other tests share. It is stopped and removed when the test ends.
type PGCluster struct {
	tb   testing.TB
	bin  string // the directory of initdb and pg_ctl
	dir  string // holds data/, the log and the socket
	Port int
}

// StartPGCluster makes and starts a fresh cluster with trust authentication for the
// postgres user on 127.0.0.1. Without PostgreSQL's programs the test is skipped, except
// under CI=true, where it fails. PostgreSQL refuses to run as root, so as root the
// programs run as the postgres user.
func StartPGCluster(tb testing.TB) *PGCluster {
	tb.Helper()
	bin := postgresBin()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("PostgreSQL's initdb is not installed, and CI must run the PostgreSQL tests")
		}
		tb.Skip("PostgreSQL's initdb is not installed")
	}
	dir, err := os.MkdirTemp("", "gatehouse-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	c := &PGCluster{tb: tb, bin: bin, dir: dir, Port: freePort(tb)}
	tb.Cleanup(func() {
		_ = c.pgctl("stop", "-m", "immediate")
		_ = os.RemoveAll(dir)
	})
	if err := c.ownDir(); err != nil {
		tb.Fatal(err)
	}
	if out, err := c.command("initdb", "-D", c.dataDir(), "-U", "postgres", "--auth=trust", "-E", "UTF8").CombinedOutput(); err != nil {
		tb.Fatalf("initdb: %v\n%s", err, out)
	}
	c.Start()
	return c
}

// URL is the address of database name on the cluster.
func (c *PGCluster) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, name)
}

// Start starts the server and waits until it accepts connections.
func (c *PGCluster) Start() {
	c.tb.Helper()
	if err := c.pgctl("start", "-w", "-t", "60", "-l", filepath.Join(c.dir, "log"), "-o",
		"-c listen_addresses=127.0.0.1 -p "+strconv.Itoa(c.Port)+" -k "+c.dir+" -c fsync=off -c max_connections=200"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		c.tb.Fatalf("pg_ctl start: %v\n%s", err, log)
	}
}

// Stop kills the server at once, as a crash or a pulled cable would: connections drop
// with no goodbye, and what was not committed is gone.
func (c *PGCluster) Stop() {
	c.tb.Helper()
	if err := c.pgctl("stop", "-m", "immediate", "-w"); err != nil {
		c.tb.Fatalf("pg_ctl stop: %v", err)
	}
}

func (c *PGCluster) dataDir() string { return filepath.Join(c.dir, "data") }

func (c *PGCluster) pgctl(args ...string) error {
	out, err := c.command("pg_ctl", append([]string{"-D", c.dataDir()}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// command runs one of PostgreSQL's programs, as the postgres user when this is root.
func (c *PGCluster) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	if os.Geteuid() != 0 {
		return exec.Command(path, args...)
	}
	return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
}

// ownDir hands the directory to the postgres user when this is root.
func (c *PGCluster) ownDir() error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root needs a postgres user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(c.dir, uid, gid)
}

// postgresBin finds the newest installed PostgreSQL's programs, or "".
func postgresBin() string {
	// The real directory of an initdb on PATH, which may be a link into it, holds the rest.
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real)
		}
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	slices.SortFunc(found, func(a, b string) int { return versionOf(b) - versionOf(a) })
	if len(found) == 0 {
		return ""
	}
	return filepath.Dir(found[0])
}

// versionOf reads the major version from /usr/lib/postgresql/N/bin/initdb.
func versionOf(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

// freePort asks the kernel for a free loopback port. Another process could take it before
// the server binds it; on a test machine that is rare, and pg_ctl start then fails loudly.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

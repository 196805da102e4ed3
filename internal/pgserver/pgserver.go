// Package pgserver starts throwaway PostgreSQL servers on loopback for tests and the
// bench: each in a temporary directory of its own, on a free port, with trust
// authentication for the postgres user.
package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
)

// ErrNotInstalled says PostgreSQL's programs were not found.
var ErrNotInstalled = errors.New("PostgreSQL's initdb is not installed")

// Server is one throwaway PostgreSQL server. Settings are extra server settings
// ("-c name=value" pairs' name=value parts) used on every start.
type Server struct {
	bin      string // the directory of initdb and pg_ctl
	dir      string // holds data/, the log and the socket
	settings []string
	Port     int
}

// Start makes a fresh cluster and starts it. PostgreSQL refuses to run as root, so as
// root its programs run as the postgres user. Remove ends it.
func Start(ctx context.Context, settings ...string) (*Server, error) {
	bin := binDir()
	if bin == "" {
		return nil, ErrNotInstalled
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gatehouse-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, settings: settings, Port: port}
	if err := ownDir(dir); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	if err := s.run(ctx, "initdb", "-D", s.dataDir(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, errors.Join(err, s.Remove())
	}
	if err := s.Start(ctx); err != nil {
		return nil, errors.Join(err, s.Remove())
	}
	return s, nil
}

// URL is the address of database name on the server.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, name)
}

// Start starts the stopped server and waits until it accepts connections.
func (s *Server) Start(ctx context.Context) error {
	opts := "-c listen_addresses=127.0.0.1 -p " + strconv.Itoa(s.Port) + " -k " + s.dir + " -c fsync=off"
	for _, setting := range s.settings {
		opts += " -c " + setting
	}
	err := s.run(ctx, "pg_ctl", "-D", s.dataDir(), "start", "-w", "-t", "60", "-l", s.logFile(), "-o", opts)
	if err != nil {
		log, _ := os.ReadFile(s.logFile())
		return fmt.Errorf("%w\n%s", err, log)
	}
	return nil
}

// Stop stops the server: mode "immediate" kills it as a crash or a pulled cable would,
// "fast" shuts it down cleanly.
func (s *Server) Stop(ctx context.Context, mode string) error {
	return s.run(ctx, "pg_ctl", "-D", s.dataDir(), "stop", "-m", mode, "-w")
}

// Remove stops the server if it runs and deletes its directory.
func (s *Server) Remove() error {
	var err error
	if _, statErr := os.Stat(filepath.Join(s.dataDir(), "postmaster.pid")); statErr == nil {
		err = s.Stop(context.Background(), "fast")
	}
	return errors.Join(err, os.RemoveAll(s.dir))
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logFile() string { return filepath.Join(s.dir, "log") }

// run runs one of PostgreSQL's programs, as the postgres user when this is root.
func (s *Server) run(ctx context.Context, tool string, args ...string) error {
	path := filepath.Join(s.bin, tool)
	cmd := exec.CommandContext(ctx, path, args...)
	if os.Geteuid() == 0 {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, bytes.TrimSpace(out))
	}
	return nil
}

// ownDir hands the directory to the postgres user when this is root.
func ownDir(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root needs a postgres user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(dir, uid, gid)
}

// binDir finds the newest installed PostgreSQL's programs, or "".
func binDir() string {
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
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

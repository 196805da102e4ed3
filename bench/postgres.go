package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"gatehouse/db"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for creating and dropping the bench database
)

// pgStore is the PostgreSQL server the PostgreSQL case runs on and the database it made
// there; why says, when there is none, why the case was not run.
type pgStore struct {
	server  string // URL of the server's maintenance database, as given or started
	url     string // the bench's own database on it
	name    string
	cluster *pgCluster // started here, stopped by close
	why     string
}

// postgresServer is -postgres, else GATEHOUSE_BENCH_POSTGRES, else GATEHOUSE_TEST_POSTGRES.
func postgresServer(flagValue string) string {
	for _, v := range []string{flagValue, os.Getenv("GATEHOUSE_BENCH_POSTGRES"), os.Getenv("GATEHOUSE_TEST_POSTGRES")} {
		if v != "" {
			return v
		}
	}
	return ""
}

// openPostgres finds a server (or starts a throwaway cluster when root may) and creates a
// database of its own there. Without a server it returns a pgStore that says why.
func openPostgres(ctx context.Context, server string) (*pgStore, error) {
	p := &pgStore{server: server}
	if server == "" {
		c, why, err := startCluster(ctx)
		if err != nil {
			return nil, err
		}
		if c == nil {
			p.why = why
			return p, nil
		}
		p.cluster, p.server = c, c.url
		fmt.Printf("PostgreSQL: a throwaway cluster on %s (fsync off)\n", c.url)
	}
	p.name = fmt.Sprintf("gatehouse_bench_%d_%d", os.Getpid(), time.Now().UnixNano())
	u, err := url.Parse(p.server)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("PostgreSQL URL: %w", err), p.close())
	}
	u.Path = "/" + p.name
	p.url = u.String()
	if err := p.admin(ctx, `CREATE DATABASE `+p.name); err != nil {
		return nil, errors.Join(fmt.Errorf("create the bench database on %s: %w", db.Describe(p.server), err), p.close())
	}
	return p, nil
}

func (p *pgStore) admin(ctx context.Context, stmt string) error {
	conn, err := sql.Open("pgx", p.server)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = conn.ExecContext(ctx, stmt)
	return err
}

// close drops the bench database and stops the cluster started here.
func (p *pgStore) close() error {
	var errs error
	if p.name != "" {
		errs = p.admin(context.Background(), `DROP DATABASE IF EXISTS `+p.name+` WITH (FORCE)`)
		p.name = ""
	}
	if p.cluster != nil {
		errs = errors.Join(errs, p.cluster.stop())
		p.cluster = nil
	}
	return errs
}

// pgCluster is a PostgreSQL cluster started for this run, as the postgres user (the server
// refuses root), in a temporary directory, on a free loopback port.
type pgCluster struct {
	bin, dir, url string
}

// startCluster starts a cluster when running as root with PostgreSQL installed; otherwise
// it returns nil and why not.
func startCluster(ctx context.Context) (*pgCluster, string, error) {
	initdbs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(initdbs) == 0 || os.Geteuid() != 0 {
		return nil, "no server named (-postgres, GATEHOUSE_BENCH_POSTGRES or GATEHOUSE_TEST_POSTGRES), and none can be " +
			"started here (that needs root and /usr/lib/postgresql/*/bin/initdb)", nil
	}
	slices.Sort(initdbs)
	pg, err := user.Lookup("postgres")
	if err != nil {
		return nil, "", fmt.Errorf("start PostgreSQL: %w", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	dir, err := os.MkdirTemp("", "gatehouse-bench-pg-")
	if err == nil {
		err = os.Chown(dir, uid, gid)
	}
	if err != nil {
		return nil, "", fmt.Errorf("start PostgreSQL: %w", err)
	}
	c := &pgCluster{bin: filepath.Dir(initdbs[len(initdbs)-1]), dir: dir}
	port, err := freePort()
	if err == nil {
		err = c.run(ctx, "initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	}
	if err == nil {
		err = c.run(ctx, "pg_ctl", "-D", c.data(), "-l", filepath.Join(dir, "log"), "-w", "-o",
			fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off "+
				"-c full_page_writes=off -c max_connections=300", port, dir), "start")
	}
	if err != nil {
		return nil, "", errors.Join(fmt.Errorf("start PostgreSQL: %w", err), c.stop())
	}
	c.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	return c, "", nil
}

func (c *pgCluster) data() string { return filepath.Join(c.dir, "data") }

func (c *pgCluster) run(ctx context.Context, tool string, args ...string) error {
	cmd := exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", filepath.Join(c.bin, tool)}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", tool, err, out)
	}
	return nil
}

// stop stops the server if it runs and removes its directory.
func (c *pgCluster) stop() error {
	var err error
	if _, statErr := os.Stat(filepath.Join(c.data(), "postmaster.pid")); statErr == nil {
		err = c.run(context.Background(), "pg_ctl", "-D", c.data(), "-m", "fast", "-w", "stop")
	}
	return errors.Join(err, os.RemoveAll(c.dir))
}

// freePort is a loopback port nothing listens on at the moment.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

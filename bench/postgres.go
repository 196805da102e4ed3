package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for creating and dropping the bench database

	"gatehouse/db"
	"gatehouse/internal/pgserver"
)

// pgStore is the PostgreSQL server the PostgreSQL case runs on and the database it made
// there; why says, when there is none, why the case was not run.
type pgStore struct {
	server  string // URL of the server's maintenance database, as given or started
	url     string // the bench's own database on it
	name    string
	cluster *pgserver.Server // started here, removed by close
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
		p.cluster, p.server = c, c.URL("postgres")
		fmt.Printf("PostgreSQL: a throwaway cluster on %s (fsync off)\n", p.server)
	}
	p.name = fmt.Sprintf("gatehouse_bench_%d_%d", os.Getpid(), time.Now().UnixNano())
	u, err := url.Parse(p.server)
	if err != nil {
		// url.Parse's error quotes the whole URL, password and all, so it is not passed on.
		return nil, errors.Join(fmt.Errorf("PostgreSQL URL %s: not a URL", db.Describe(p.server)), p.close())
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

// close drops the bench database and removes the cluster started here.
func (p *pgStore) close() error {
	var errs error
	if p.name != "" {
		errs = p.admin(context.Background(), `DROP DATABASE IF EXISTS `+p.name+` WITH (FORCE)`)
		p.name = ""
	}
	if p.cluster != nil {
		errs = errors.Join(errs, p.cluster.Remove())
		p.cluster = nil
	}
	return errs
}

// startCluster starts a throwaway cluster when PostgreSQL is installed; otherwise it
// returns nil and why not. Durability is off: the bench measures the portal, not the disk.
func startCluster(ctx context.Context) (*pgserver.Server, string, error) {
	c, err := pgserver.Start(ctx, "synchronous_commit=off", "full_page_writes=off", "max_connections=300")
	if errors.Is(err, pgserver.ErrNotInstalled) {
		return nil, "no server named (-postgres, GATEHOUSE_BENCH_POSTGRES or GATEHOUSE_TEST_POSTGRES), and none can be " +
			"started here (PostgreSQL's initdb is not installed)", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("start PostgreSQL: %w", err)
	}
	return c, "", nil
}

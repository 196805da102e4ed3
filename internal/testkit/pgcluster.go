package testkit

import (
	"context"
	"errors"
	"os"
	"testing"

	"gatehouse/internal/pgserver"
)

// PGCluster is a PostgreSQL server that one test made for itself: its own data directory
// and port on loopback, so the test may stop it hard and start it again without touching
// any server that other tests share. It is stopped and removed when the test ends.
type PGCluster struct {
	tb     testing.TB
	server *pgserver.Server
	Port   int
}

// StartPGCluster makes and starts a fresh cluster with trust authentication for the
// postgres user on 127.0.0.1. Without PostgreSQL's programs the test is skipped, except
// under CI=true, where it fails.
func StartPGCluster(tb testing.TB) *PGCluster {
	tb.Helper()
	server, err := pgserver.Start(context.Background(), "max_connections=200")
	if errors.Is(err, pgserver.ErrNotInstalled) {
		if os.Getenv("CI") == "true" {
			tb.Fatal("PostgreSQL's initdb is not installed, and CI must run the PostgreSQL tests")
		}
		tb.Skip("PostgreSQL's initdb is not installed")
	}
	if err != nil {
		tb.Fatalf("start PostgreSQL: %v", err)
	}
	tb.Cleanup(func() {
		_ = server.Stop(context.Background(), "immediate")
		_ = server.Remove()
	})
	return &PGCluster{tb: tb, server: server, Port: server.Port}
}

// URL is the address of database name on the cluster.
func (c *PGCluster) URL(name string) string { return c.server.URL(name) }

// Start starts the server and waits until it accepts connections.
func (c *PGCluster) Start() {
	c.tb.Helper()
	if err := c.server.Start(context.Background()); err != nil {
		c.tb.Fatalf("pg_ctl start: %v", err)
	}
}

// Stop kills the server at once, as a crash or a pulled cable would: connections drop
// with no goodbye, and what was not committed is gone.
func (c *PGCluster) Stop() {
	c.tb.Helper()
	if err := c.server.Stop(context.Background(), "immediate"); err != nil {
		c.tb.Fatalf("pg_ctl stop: %v", err)
	}
}

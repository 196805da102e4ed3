package testkit

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to ask the server whether it answers
)

// TestPGCluster: a test's own server answers, is down once stopped, and answers again.
func TestPGCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("makes a PostgreSQL cluster")
	}
	c := StartPGCluster(t)
	ready := func() bool {
		conn, err := sql.Open("pgx", c.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return conn.PingContext(ctx) == nil
	}
	if !ready() {
		t.Fatal("the new cluster does not accept connections")
	}
	c.Stop()
	if ready() {
		t.Fatal("the stopped cluster still accepts connections")
	}
	c.Start()
	if !ready() {
		t.Fatal("the restarted cluster does not accept connections")
	}
}

package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"gatehouse/internal/dbtest"
	"sync/atomic"
	"testing"

	"modernc.org/sqlite"
)

// countingConnector opens SQLite connections that count their prepared statements still
// open, so a test can see whether the store closes what it prepares.
type countingConnector struct {
	name string
	open *atomic.Int64
}

func (c countingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := (&sqlite.Driver{}).Open(c.name)
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: conn, open: c.open}, nil
}

func (c countingConnector) Driver() driver.Driver { return &sqlite.Driver{} }

// countingConn offers Prepare only, so every query, prepared or not, is counted.
type countingConn struct {
	driver.Conn
	open *atomic.Int64
}

func (c countingConn) Prepare(query string) (driver.Stmt, error) {
	st, err := c.Conn.Prepare(query)
	if err != nil {
		return nil, err
	}
	c.open.Add(1)
	return &countingStmt{Stmt: st, open: c.open}, nil
}

type countingStmt struct {
	driver.Stmt
	open   *atomic.Int64
	closed bool
}

func (s *countingStmt) Close() error {
	if !s.closed {
		s.closed = true
		s.open.Add(-1)
	}
	return s.Stmt.Close()
}

// TestStatementCacheLeavesNothingOpen: queries beyond what the cache keeps run without
// being kept, and closing the cache closes every statement it prepared.
func TestStatementCacheLeavesNothingOpen(t *testing.T) {
	dbtest.SQLiteOnly(t)
	ctx := context.Background()
	d := openTest(t)
	var open atomic.Int64
	counted := sql.OpenDB(countingConnector{name: "file:" + d.Path() + "?mode=ro", open: &open})
	counted.SetMaxOpenConns(1)
	reader := d.read
	d.read = counted
	t.Cleanup(func() { counted.Close(); d.read = reader })

	for i := range maxStmts + 50 {
		var n int
		if err := d.queryRow(ctx, fmt.Sprintf(`SELECT %d`, i)).Scan(&n); err != nil || n != i {
			t.Fatalf("query %d: %d, %v", i, n, err)
		}
		rows, err := d.query(ctx, fmt.Sprintf(`SELECT %d UNION ALL SELECT 0`, i))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := open.Load(); n > maxStmts {
		t.Errorf("%d statements open, more than the cache's %d", n, maxStmts)
	}
	if len(d.stmts.stmts) > maxStmts {
		t.Errorf("the cache holds %d statements, more than %d", len(d.stmts.stmts), maxStmts)
	}
	d.stmts.close()
	if n := open.Load(); n != 0 {
		t.Errorf("%d statements still open after the cache closed", n)
	}
}

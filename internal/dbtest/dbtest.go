// Package dbtest picks the store a test runs on. A package whose TestMain calls RunBoth
// runs its tests on SQLite, then once more on PostgreSQL, when GATEHOUSE_TEST_POSTGRES
// names a server (a URL whose user may create databases). Under CI=true the PostgreSQL
// pass is required: without a server the run fails. On PostgreSQL each test gets a
// database of its own, cloned from a template migrated once per test process, so tests
// still run in parallel.
package dbtest

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for creating and dropping databases
)

const (
	// ServerEnv names the PostgreSQL server tests may use.
	ServerEnv = "GATEHOUSE_TEST_POSTGRES"
	// storeEnv tells a re-run test binary which store it runs on.
	storeEnv      = "GATEHOUSE_TEST_STORE"
	storePostgres = "postgres"
)

// Postgres reports whether this test process runs on PostgreSQL.
func Postgres() bool { return os.Getenv(storeEnv) == storePostgres }

// SQLiteOnly skips a test in the PostgreSQL pass: the test is about the SQLite file itself
// (its modes, its journal, a damaged file) and has already run in the SQLite pass.
func SQLiteOnly(tb testing.TB) {
	tb.Helper()
	if Postgres() {
		tb.Skip("about the SQLite file; it ran in the SQLite pass")
	}
}

// RunBoth runs the package's tests, on SQLite, then, in a second run of the same binary
// with the same flags, on PostgreSQL, and exits with the first failure's status. Listing,
// fuzzing and benchmarking run once, on SQLite.
func RunBoth(m *testing.M) {
	code := m.Run()
	if Postgres() {
		dropTemplate()
		os.Exit(code)
	}
	if onceOnly() {
		os.Exit(code)
	}
	if os.Getenv(ServerEnv) == "" {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "FAIL: %s is not set, and under CI=true the tests must also run on PostgreSQL\n", ServerEnv)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "dbtest: %s is not set: the tests ran on SQLite only\n", ServerEnv)
		os.Exit(code)
	}
	fmt.Fprintln(os.Stdout, "dbtest: running the tests again on PostgreSQL")
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), storeEnv+"="+storePostgres)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil && code == 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the PostgreSQL pass: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

func onceOnly() bool {
	for _, name := range []string{"test.list", "test.fuzz", "test.bench"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return true
		}
	}
	return false
}

// DSN returns where a fresh, migrated store for tb lives: an SQLite file under
// tb.TempDir(), or in the PostgreSQL pass the URL of a new database that is dropped when
// the test ends (register the store's Close after calling DSN, so it runs first). migrate
// opens and migrates the store at a URL, and closes it; it is called once per process.
func DSN(tb testing.TB, migrate func(dsn string) error) string {
	tb.Helper()
	if !Postgres() {
		return filepath.Join(tb.TempDir(), "gatehouse.db")
	}
	return freshDatabase(tb, migrate)
}

// EmptyDSN is DSN for a store with no schema yet, for tests of opening and migrating.
func EmptyDSN(tb testing.TB) string {
	tb.Helper()
	if !Postgres() {
		return filepath.Join(tb.TempDir(), "gatehouse.db")
	}
	return createDatabase(tb, "")
}

var (
	adminOnce sync.Once
	admin     *sql.DB
	adminErr  error

	tmplOnce sync.Once
	tmplErr  error
	tmplMade atomic.Bool
	serial   atomic.Int64
)

func templateName() string { return fmt.Sprintf("gatehouse_tmpl_%d", os.Getpid()) }

// URLFor is the server's URL with the database name replaced.
func URLFor(name string) string {
	u, err := url.Parse(os.Getenv(ServerEnv))
	if err != nil {
		panic(fmt.Sprintf("%s: %v", ServerEnv, err))
	}
	u.Path = "/" + name
	return u.String()
}

func adminDB() (*sql.DB, error) {
	adminOnce.Do(func() {
		admin, adminErr = sql.Open("pgx", os.Getenv(ServerEnv))
		if adminErr == nil {
			admin.SetMaxOpenConns(4)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			adminErr = admin.PingContext(ctx)
		}
	})
	return admin, adminErr
}

func freshDatabase(tb testing.TB, migrate func(dsn string) error) string {
	tb.Helper()
	tmplOnce.Do(func() {
		a, err := adminDB()
		if err != nil {
			tmplErr = err
			return
		}
		name := templateName()
		if _, err := a.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			tmplErr = err
			return
		}
		if _, err := a.Exec(`CREATE DATABASE ` + name); err != nil {
			tmplErr = err
			return
		}
		tmplMade.Store(true)
		tmplErr = migrate(URLFor(name))
	})
	if tmplErr != nil {
		tb.Fatalf("PostgreSQL template database: %v", tmplErr)
	}
	return createDatabase(tb, templateName())
}

// createDatabase makes a new database, a copy of template when one is named, and drops it
// when the test ends.
func createDatabase(tb testing.TB, template string) string {
	tb.Helper()
	a, err := adminDB()
	if err != nil {
		tb.Fatalf("PostgreSQL at %s: %v", ServerEnv, err)
	}
	name := fmt.Sprintf("gatehouse_t%d_%d", os.Getpid(), serial.Add(1))
	stmt := `CREATE DATABASE ` + name
	if template != "" {
		stmt += ` TEMPLATE ` + template
	}
	// Copying a template fails while another session is connected to it; none should be,
	// but a moment's retry costs nothing.
	for attempt := 1; ; attempt++ {
		_, err = a.Exec(stmt)
		if err == nil || attempt == 5 {
			break
		}
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := a.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
		}
	})
	return URLFor(name)
}

func dropTemplate() {
	if !tmplMade.Load() {
		return
	}
	if a, err := adminDB(); err == nil {
		_, _ = a.Exec(`DROP DATABASE IF EXISTS ` + templateName() + ` WITH (FORCE)`)
	}
}

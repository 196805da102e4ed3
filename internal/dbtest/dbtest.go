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
	start := time.Now()
	code := m.Run()
	fmt.Fprintf(os.Stdout, "dbtest: %s pass took %v\n", storeName(), time.Since(start).Round(100*time.Millisecond))
	if Postgres() {
		dropTemplate()
		os.Exit(code)
	}
	if onceOnly() {
		dropTemplate() // a benchmark on PostgreSQL (PostgresDSN) may have made one
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

func storeName() string {
	if Postgres() {
		return "PostgreSQL"
	}
	return "SQLite"
}

func onceOnly() bool {
	for _, name := range []string{"test.list", "test.fuzz", "test.fuzzworker", "test.bench"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
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

// PostgresDSN is DSN on PostgreSQL in either pass, for a benchmark that compares the two
// stores in one run; it skips tb when no server is named.
func PostgresDSN(tb testing.TB, migrate func(dsn string) error) string {
	tb.Helper()
	if os.Getenv(ServerEnv) == "" {
		tb.Skipf("%s is not set: no PostgreSQL server to run on", ServerEnv)
	}
	return freshDatabase(tb, migrate)
}

// EmptyDSN is DSN for a store with no schema yet, for tests of opening and migrating.
func EmptyDSN(tb testing.TB) string {
	tb.Helper()
	if !Postgres() {
		return filepath.Join(tb.TempDir(), "gatehouse.db")
	}
	name := createDatabase(tb, "")
	tb.Cleanup(func() { dropDatabase(tb, name) })
	return URLFor(name)
}

var (
	adminOnce sync.Once
	admin     *sql.DB
	adminErr  error

	tmplOnce  sync.Once
	tmplErr   error
	tmplMade  atomic.Bool
	tmplPrint string // the template's schema and bookkeeping, as fingerprint reads them
	tmplReset string // what makes a used copy of the template equal to it again
	serial    atomic.Int64

	freeMu sync.Mutex
	free   []string // used copies of the template, emptied again, ready for another test
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
		if tmplErr = migrate(URLFor(name)); tmplErr == nil {
			tmplPrint, tmplReset, tmplErr = describeTemplate(URLFor(name))
		}
	})
	if tmplErr != nil {
		tb.Fatalf("PostgreSQL template database: %v", tmplErr)
	}
	if name, ok := takeFree(); ok {
		tb.Cleanup(func() { recycle(tb, name) })
		return URLFor(name)
	}
	name := createDatabase(tb, templateName())
	tb.Cleanup(func() { recycle(tb, name) })
	return URLFor(name)
}

// Creating a database costs most of a second; emptying one a test used costs a few
// milliseconds. So a copy of the template whose schema the test left as it was is emptied
// and kept for the next test; any other is dropped.

// fingerprint reads what a test could change besides rows: the schema's tables, columns,
// indexes, constraints, triggers and functions, and the versions recorded.
const fingerprint = `SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (
	SELECT 'c:' || c.relname || ':' || CAST(c.relkind AS TEXT) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
	UNION ALL SELECT 'a:' || a.attrelid::regclass || '.' || a.attname || ':' || CAST(a.atttypid AS TEXT) || ':' || CAST(a.attnotnull AS TEXT)
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
	UNION ALL SELECT 'k:' || conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace
	UNION ALL SELECT 't:' || tgname FROM pg_trigger WHERE NOT tgisinternal
	UNION ALL SELECT 'p:' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
	UNION ALL SELECT 'v:' || CAST(version AS TEXT) FROM schema_migrations) s (x)`

func describeTemplate(dsn string) (print, reset string, err error) {
	conn, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", "", err
	}
	defer conn.Close()
	if err := conn.QueryRow(fingerprint).Scan(&print); err != nil {
		return "", "", err
	}
	var tables string
	err = conn.QueryRow(`SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables
		WHERE schemaname = 'public' AND tablename NOT IN ('schema_migrations', 'change_revision')`).Scan(&tables)
	if err != nil {
		return "", "", err
	}
	var rev int64
	if err := conn.QueryRow(`SELECT n FROM change_revision`).Scan(&rev); err != nil {
		return "", "", err
	}
	return print, fmt.Sprintf(`TRUNCATE %s RESTART IDENTITY CASCADE; UPDATE change_revision SET n = %d`, tables, rev), nil
}

func takeFree() (string, bool) {
	freeMu.Lock()
	defer freeMu.Unlock()
	if len(free) == 0 {
		return "", false
	}
	name := free[len(free)-1]
	free = free[:len(free)-1]
	return name, true
}

// recycle empties the database name for another test, or drops it if the test changed
// more than its rows or left a connection open on it.
func recycle(tb testing.TB, name string) {
	if err := empty(name); err != nil {
		dropDatabase(tb, name)
		return
	}
	freeMu.Lock()
	free = append(free, name)
	freeMu.Unlock()
}

func empty(name string) error {
	a, err := adminDB()
	if err != nil {
		return err
	}
	// A closed connection's server process takes a moment to go.
	for attempt := 1; ; attempt++ {
		var others int
		if err := a.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1`, name).Scan(&others); err != nil {
			return err
		}
		if others == 0 {
			break
		}
		if attempt == 20 {
			return fmt.Errorf("%d connections still open", others)
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := sql.Open("pgx", URLFor(name))
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	var print string
	if err := conn.QueryRow(fingerprint).Scan(&print); err != nil {
		return err
	}
	if print != tmplPrint {
		return fmt.Errorf("schema changed")
	}
	_, err = conn.Exec(tmplReset)
	return err
}

// createDatabase makes a new database, a copy of template when one is named, and returns
// its name.
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
	return name
}

func dropDatabase(tb testing.TB, name string) {
	a, err := adminDB()
	if err == nil {
		_, err = a.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
	}
	if err != nil {
		tb.Errorf("drop test database %s: %v", name, err)
	}
}

// dropTemplate drops the template and the emptied copies kept for tests that never came.
func dropTemplate() {
	if !tmplMade.Load() {
		return
	}
	a, err := adminDB()
	if err != nil {
		return
	}
	freeMu.Lock()
	names := append(free, templateName())
	free = nil
	freeMu.Unlock()
	for _, name := range names {
		_, _ = a.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
	}
}

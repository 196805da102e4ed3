package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// IsPostgresURL reports whether dsn names a PostgreSQL server rather than an SQLite file.
func IsPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Describe is how dsn is shown in logs and messages: an SQLite path as it is, a URL with
// its password hidden.
func Describe(dsn string) string {
	if IsPostgresURL(dsn) {
		return redactURL(dsn)
	}
	return dsn
}

// redactURL is dsn with any password replaced, for logs and messages: the one in its user
// part, and the one libpq-style URLs may carry as a password parameter.
func redactURL(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://(unparsable address)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// openPostgres opens a pool on the server dsn names and checks that it answers. Reads and
// writes share the pool: the server runs them concurrently, and writers take turns by the
// write lock their transactions begin with.
func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	shown := redactURL(dsn)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("db: %s: %w", shown, err)
	}
	d := &DB{path: shown, dsn: dsn, dl: postgresDialect}
	pool := openPGPool(cfg, &d.trips)
	n := 2*runtime.NumCPU() + 2
	pool.SetMaxOpenConns(n)
	pool.SetMaxIdleConns(n)
	pool.SetConnMaxIdleTime(10 * time.Minute)
	d.write, d.read = pool, pool
	d.changes = newChanges(newPGListener(cfg, pool, ChangePollInterval))
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := pool.PingContext(pctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("db: open %s: %w", shown, err)
	}
	return d, nil
}

// PostgreSQL keeps two tables of bookkeeping beside the migrations' own: the versions
// applied (as SQLite does) and the revision that every write moves, which other processes
// read to learn of a change. The revision is not data: a copy of a store leaves it behind.
const pgBookkeeping = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS change_revision (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	n  BIGINT  NOT NULL
);
INSERT INTO change_revision (id, n) VALUES (1, 0) ON CONFLICT (id) DO NOTHING`

// migratePostgres applies every pending migration up to target in one transaction, under
// an advisory lock, reading the version only once the lock is held: two processes starting
// at once on a new database migrate it once, and the second finds it done.
func (d *DB) migratePostgres(ctx context.Context, ms []migration, target int) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		lock := fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, pgMigrateLockKey)
		if _, err := tx.ExecContext(ctx, lock); err != nil {
			return fmt.Errorf("db: migrate: %w", err)
		}
		if _, err := tx.ExecContext(ctx, pgBookkeeping); err != nil {
			return fmt.Errorf("db: migrate: %w", err)
		}
		current, err := migratableVersion(ctx, tx, len(ms))
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.version <= current || m.version > target {
				continue
			}
			if err := applyMigration(ctx, tx, m); err != nil {
				return err
			}
		}
		return nil
	})
}

// readEveryTable reads a row of every table in the schema, which fails on a table the
// server cannot read.
func (d *DB) readEveryTable(ctx context.Context) error {
	names, err := queryList(ctx, d, scanOne[string], d.dl.listTables)
	if err != nil {
		return fmt.Errorf("db: integrity check: %w", err)
	}
	for _, name := range names {
		var one int
		err := d.read.QueryRowContext(ctx, `SELECT 1 FROM `+pgx.Identifier{name}.Sanitize()+` LIMIT 1`).Scan(&one)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("db: integrity check: table %s: %w", name, err)
		}
	}
	return nil
}

// OpenSQL opens a plain database/sql pool on the PostgreSQL database dsn names, taking the
// same SQL as the store (? placeholders), without the store's write lock or change signal:
// for looking at what is stored, as a database shell would.
func OpenSQL(dsn string) (*sql.DB, error) {
	if !IsPostgresURL(dsn) {
		return nil, errors.New("db: not a postgres:// address")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("db: %s: %w", redactURL(dsn), err)
	}
	return openPGPool(cfg, new(atomic.Uint64)), nil
}

// openPGPool is a pool on the server cfg names that takes the store's SQL (? placeholders),
// marks errors of an unreachable server as ErrUnavailable, and counts its calls into trips.
func openPGPool(cfg *pgx.ConnConfig, trips *atomic.Uint64) *sql.DB {
	inner := stdlib.GetConnector(*cfg)
	rewrite := &dollarPlaceholders{}
	return sql.OpenDB(&roundTripConnector{connect: inner.Connect, drv: inner.Driver(),
		rewrite: rewrite.rewrite, classify: classifyPostgres, classifyRows: true, trips: trips})
}

// Package db is Gatehouse's store: an SQLite file (one writer connection, a pool of
// read-only readers) or a PostgreSQL database (one pool, writers taking turns), behind one
// API, with embedded migrations for each applied in order.
package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite"
)

var (
	ErrNotFound  = errors.New("db: not found")
	ErrDuplicate = errors.New("db: already exists")
	// ErrTooNew means the file was migrated by a newer Gatehouse; running an older binary
	// against it could misread data, so it is refused.
	ErrTooNew = errors.New("db: database schema is newer than this binary")
	// ErrNotInitialised means the file exists but holds no Gatehouse schema.
	ErrNotInitialised = errors.New("db: not a Gatehouse database (no schema)")
	// ErrCountChanged aborts a bulk action whose row count grew after the admin saw it: the
	// admin confirmed a number, and more than that must never be touched.
	ErrCountChanged = errors.New("db: the number of affected rows changed since it was shown")
	// ErrClosed refuses a write after Close, as a process that is stopping may still try.
	ErrClosed = errors.New("db: store closed")
	// ErrUnavailable wraps an error that means the database server cannot be reached or
	// went away: the request may succeed later, and nothing about it is the caller's fault.
	ErrUnavailable = errors.New("db: database unavailable")
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// TimeFormat is how every time is stored: UTC, fixed width, so strings sort as times.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime renders t for storage.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ParseTime reads a stored time.
func ParseTime(s string) (time.Time, error) { return time.Parse(TimeFormat, s) }

// ClockSkew is how far ahead of now a stored time may lie before it is taken as written
// by a clock that has since stepped back. Such a time is treated as expired (sessions,
// throttle rows, pending enrollments): otherwise a session made while the clock ran ahead
// would outlive its limits for as long as the clock lags. The allowance covers the small
// drift between machines that share one database.
const ClockSkew = time.Minute

// FromFuture reports whether t lies more than ClockSkew ahead of now.
func FromFuture(t, now time.Time) bool { return t.After(now.Add(ClockSkew)) }

// DB is the store. Reads go to read, writes (and read-then-write) through tx on write
// (on PostgreSQL both are one pool).
type DB struct {
	write   *sql.DB
	read    *sql.DB
	path    string
	dsn     string
	dl      *dialect
	stmts   stmtCache
	changes *Changes
	closed  atomic.Bool
	trips   atomic.Uint64
}

// Path is the database file the store was opened on, or for PostgreSQL its URL with any
// password redacted.
func (d *DB) Path() string { return d.path }

// IsPostgres reports whether the store is a PostgreSQL database.
func (d *DB) IsPostgres() bool { return d.dl.id == dialectPostgres }

// RoundTrips counts the requests the store has sent its database: statements run, queries,
// prepares, begins, commits and rollbacks, on every connection.
func (d *DB) RoundTrips() uint64 { return d.trips.Load() }

// Open opens or creates the database at dsn (an SQLite path, or a postgres:// URL) and
// applies pending migrations. It is what serve and the commands that change data use.
func Open(ctx context.Context, dsn string) (*DB, error) {
	d, err := openAny(ctx, dsn, true)
	if err != nil {
		return nil, err
	}
	if err := d.migrate(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// OpenExisting opens a database that must already exist and be at exactly this binary's
// schema version; it never creates or migrates, so inspecting a file cannot change it.
func OpenExisting(ctx context.Context, path string) (*DB, error) {
	d, err := openAny(ctx, path, false)
	if err != nil {
		return nil, err
	}
	if err := d.checkVersion(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// openAny opens dsn without migrating: a PostgreSQL URL, or an SQLite file that must exist
// and be SQLite unless create is set.
func openAny(ctx context.Context, dsn string, create bool) (*DB, error) {
	if IsPostgresURL(dsn) {
		return openPostgres(ctx, dsn)
	}
	if !create {
		if err := checkHeader(dsn); err != nil {
			return nil, err
		}
	}
	return open(dsn, create)
}

// sqliteDriver is the registered SQLite driver, which the store's pools wrap.
var sqliteDriver = func() driver.Driver {
	pool, err := sql.Open("sqlite", "")
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	return pool.Driver()
}()

// openSQLite is a pool on the SQLite database name, counting its calls into trips.
func openSQLite(name string, trips *atomic.Uint64) *sql.DB {
	return sql.OpenDB(&roundTripConnector{
		connect:  func(context.Context) (driver.Conn, error) { return sqliteDriver.Open(name) },
		drv:      sqliteDriver,
		classify: func(_ context.Context, err error) error { return err },
		trips:    trips,
	})
}

func open(path string, create bool) (*DB, error) {
	if path == "" {
		return nil, errors.New("db: no database path")
	}
	// Per-connection pragmas live in the DSN so every pooled connection gets them.
	// synchronous(FULL): writes are rare and a power cut must not lose one we confirmed.
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)"
	mode := "rw"
	if create {
		// WAL is a property of the file, set once by the opener that may create it; an
		// inspecting open must not rewrite the header of a file it only reads.
		mode = "rwc"
		common += "&_pragma=journal_mode(WAL)"
	}
	if create {
		if err := createPrivate(path); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("db: create %s: %w", path, err)
		}
	}
	name := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=" + mode + "&" + common
	d := &DB{path: path, dsn: path, dl: sqliteDialect}
	w := openSQLite(name+"&_txlock=immediate", &d.trips)
	w.SetMaxOpenConns(1) // writes queue in Go instead of failing with SQLITE_BUSY
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	readOnly := name + "&_pragma=query_only(1)"
	r := openSQLite(readOnly, &d.trips)
	n := max(4, runtime.NumCPU())
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	d.write, d.read = w, r
	d.changes = newChanges(&dataVersion{dsn: readOnly, every: ChangePollInterval, trips: &d.trips})
	// Touch the writer now so a missing directory or unreadable file fails here, clearly.
	if err := w.PingContext(context.Background()); err != nil {
		d.Close()
		return nil, fmt.Errorf("db: open %s: %w", path, err)
	}
	return d, nil
}

// Close closes the pools and the change signal's connection.
func (d *DB) Close() error {
	d.closed.Store(true)
	d.stmts.close()
	if d.read == d.write {
		return errors.Join(d.changes.close(), d.write.Close())
	}
	return errors.Join(d.changes.close(), d.read.Close(), d.write.Close())
}

// Changes is the store's change signal, which tells copies of its data kept in memory
// that they may be stale.
func (d *DB) Changes() *Changes { return d.changes }

// pingTimeout bounds Ping, so that a server that does not answer at all is not ready,
// rather than a probe left waiting.
const pingTimeout = 5 * time.Second

// Ping reports whether the database answers a read; it backs /readyz.
func (d *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	var one int
	if err := d.read.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("db: ping: %w", err)
	}
	return nil
}

// tx runs fn in one write transaction, committing only if fn returns nil. Write
// transactions run one at a time, across every process on the database: on SQLite by
// BEGIN IMMEDIATE (from the DSN), on PostgreSQL by the dialect's write lock. Code that
// reads and then writes in fn relies on that.
func (d *DB) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil && d.closed.Load() {
		return ErrClosed
	}
	if err != nil {
		return fmt.Errorf("db: begin: %w", err)
	}
	if err := d.inTx(ctx, tx, fn); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("db: commit: %w", err)
	}
	d.changes.committed(ctx)
	return nil
}

func (d *DB) inTx(ctx context.Context, tx *sql.Tx, fn func(tx *sql.Tx) error) error {
	if d.dl.writeLock != "" {
		if _, err := tx.ExecContext(ctx, d.dl.writeLock); err != nil {
			return fmt.Errorf("db: write lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	if d.dl.announce != "" {
		if _, err := tx.ExecContext(ctx, d.dl.announce); err != nil {
			return fmt.Errorf("db: announce change: %w", err)
		}
	}
	return nil
}

type migration struct {
	version int
	name    string
	sql     string
}

// migrations are the dialect's files, from migrations/sqlite or migrations/postgres; both
// carry the same numbered names.
func migrations(dl *dialect) ([]migration, error) {
	dir := "migrations/sqlite"
	if dl.id == dialectPostgres {
		dir = "migrations/postgres"
	}
	names, err := fs.Glob(migrationFS, dir+"/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for i, n := range names { // fs.Glob returns names sorted, so files apply in name order
		base := path.Base(n)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil || v != i+1 {
			return nil, fmt.Errorf("db: migration %s: file names must be numbered 0001, 0002, … without gaps", base)
		}
		body, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(body)})
	}
	for v := range migrationSteps {
		if v < 1 || v > len(ms) {
			return nil, fmt.Errorf("db: migration step %d has no migration file", v)
		}
	}
	return ms, nil
}

// sqliteMagic starts every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// checkHeader refuses, without opening it, a file that is missing or not SQLite.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("db: %w", err)
	}
	defer f.Close()
	head := make([]byte, len(sqliteMagic))
	n, err := io.ReadFull(f, head)
	if n == 0 && (err == io.EOF || err == nil) {
		return fmt.Errorf("%w: %s is empty", ErrNotInitialised, path)
	}
	if err != nil || string(head) != sqliteMagic {
		return fmt.Errorf("db: %s is not an SQLite database", path)
	}
	return nil
}

// SchemaVersion is the newest migration this binary carries.
func SchemaVersion() int {
	ms, err := migrations(sqliteDialect)
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

const createVersionTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL
)`

func (d *DB) migrate(ctx context.Context) error { return d.migrateTo(ctx, SchemaVersion()) }

// migrationSteps holds the Go half of a migration whose work SQL cannot do, such as Unicode
// normalisation, by version. A step runs in its migration's transaction after the file's
// SQL, so a step that fails rolls the whole migration back. Its errors carry the db: prefix.
var migrationSteps = map[int]func(ctx context.Context, tx *sql.Tx) error{
	6: keyUsernames,
}

// migrateTo applies the pending migrations up to and including version target; tests use
// it to build the database an older binary left.
func (d *DB) migrateTo(ctx context.Context, target int) error {
	ms, err := migrations(d.dl)
	if err != nil {
		return err
	}
	if d.IsPostgres() {
		return d.migratePostgres(ctx, ms, target)
	}
	for _, m := range ms {
		if m.version > target {
			break
		}
		err := d.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, createVersionTable); err != nil {
				return fmt.Errorf("db: migrate: %w", err)
			}
			// Read the version inside the write transaction so two processes starting at
			// once cannot both apply the same file.
			current, err := migratableVersion(ctx, tx, len(ms))
			if err != nil {
				return err
			}
			if current >= m.version {
				return nil
			}
			if err := applyMigration(ctx, tx, m); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, m.version))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// applyMigration runs m's SQL, then its Go step, and records its version, all in tx.
func applyMigration(ctx context.Context, tx *sql.Tx, m migration) error {
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("db: migration %s: %w", m.name, err)
	}
	if step := migrationSteps[m.version]; step != nil {
		if err := step(ctx, tx); err != nil {
			return fmt.Errorf("%w (migration %s, rolled back)", err, m.name)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, FormatTime(time.Now())); err != nil {
		return fmt.Errorf("db: migration %s: %w", m.name, err)
	}
	return nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func versionOf(ctx context.Context, q querier) (int, error) {
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("db: schema version: %w", err)
	}
	return int(v.Int64), nil
}

// migratableVersion reads the schema version inside a migration's transaction, refusing a
// database that a binary knowing more than known versions has migrated.
func migratableVersion(ctx context.Context, tx *sql.Tx, known int) (int, error) {
	current, err := versionOf(ctx, tx)
	if err != nil {
		return 0, err
	}
	if current > known {
		return 0, fmt.Errorf("%w (database at version %d, binary knows %d)", ErrTooNew, current, known)
	}
	return current, nil
}

// OpenToInspect is OpenExisting that also accepts a database an older binary left (serve
// would migrate it); it reports the file's version. It never changes the file.
func OpenToInspect(ctx context.Context, path string) (*DB, int, error) {
	d, err := openAny(ctx, path, false)
	if err != nil {
		return nil, 0, err
	}
	err = d.checkVersion(ctx)
	var behind *behindError
	if errors.As(err, &behind) && behind.have > 0 {
		return d, behind.have, nil
	}
	if err != nil {
		d.Close()
		return nil, 0, err
	}
	return d, SchemaVersion(), nil
}

// behindError is a database at an older schema version than this binary's.
type behindError struct{ have, want int }

func (e *behindError) Error() string {
	return fmt.Sprintf("db: database at schema version %d needs migrating to %d (serve migrates on start)", e.have, e.want)
}

// hasSchema reports whether the database holds Gatehouse's version table.
func (d *DB) hasSchema(ctx context.Context) (bool, error) {
	var n int
	if err := d.read.QueryRowContext(ctx, d.dl.hasTable, "schema_migrations").Scan(&n); err != nil {
		return false, fmt.Errorf("db: read schema: %w", err)
	}
	return n > 0, nil
}

func (d *DB) checkVersion(ctx context.Context) error {
	ok, err := d.hasSchema(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotInitialised
	}
	v, err := versionOf(ctx, d.read)
	if err != nil {
		return err
	}
	want := SchemaVersion()
	switch {
	case v > want:
		return fmt.Errorf("%w (database at version %d, binary knows %d)", ErrTooNew, v, want)
	case v < want:
		return &behindError{have: v, want: want}
	}
	return nil
}

// Version reports the database's schema version.
func (d *DB) Version(ctx context.Context) (int, error) { return versionOf(ctx, d.read) }

// IntegrityCheck runs PRAGMA integrity_check and returns an error unless it says "ok". A
// PostgreSQL server keeps its own storage consistent; there, every table of the schema
// must be readable.
func (d *DB) IntegrityCheck(ctx context.Context) error {
	if d.IsPostgres() {
		return d.readEveryTable(ctx)
	}
	lines, err := queryList(ctx, d, scanOne[string], `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("db: integrity check: %w", err)
	}
	problems := slices.DeleteFunc(lines, func(s string) bool { return s == "ok" })
	if len(problems) > 0 {
		return fmt.Errorf("db: integrity check failed: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Backup writes a consistent copy of the live database to dest with VACUUM INTO, which
// reads one snapshot while serve keeps writing. dest must not exist. It is created empty
// and owner-only first (VACUUM INTO accepts an empty file), so the copy, which holds
// everything the live file does, is never readable by others, not even while it is written.
func (d *DB) Backup(ctx context.Context, dest string) error {
	if d.IsPostgres() {
		return errors.New("db: backup: a PostgreSQL store is backed up with the server's own tools (pg_dump)")
	}
	if err := createPrivate(dest); errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("db: backup: %s already exists", dest)
	} else if err != nil {
		return fmt.Errorf("db: backup to %s: %w", dest, err)
	}
	if _, err := d.write.ExecContext(ctx, `VACUUM INTO ?`, dest); err != nil {
		_ = os.Remove(dest) // ours (O_EXCL), and a failed copy is no backup
		return fmt.Errorf("db: backup to %s: %w", dest, err)
	}
	return nil
}

// createPrivate creates an empty file at path, mode 0600, failing if anything is there
// already. SQLite would create a database 0644 less the umask and gives its -wal and -shm
// files the mode of the database file, so a database made here keeps all three owner-only.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	// The umask can only narrow the mode; set it exactly so that a narrower umask does not
	// leave a file SQLite cannot write.
	if err := errors.Join(f.Chmod(0o600), f.Close()); err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

// newRowID draws a random positive id for tables whose ids must never come back. SQLite
// gives the id of a deleted newest row to the next insert, so a revoked or promoted
// session's id would return on a later session, perhaps another user's, and a stale revoke
// button, a token bound to the id, or a recovery code id read just before the set was
// replaced would reach the new row. 53 bits keep ids exact wherever a number passes
// through a float.
func newRowID() (int64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	return int64(binary.BigEndian.Uint64(b[:])>>11) | 1, nil
}

// drawRowID is newRowID; tests replace it to force a collision.
var drawRowID = newRowID

// insertRandomID runs an INSERT whose first parameter is the new row's id, drawing again on
// the rare collision, and returns the id. A collision inserts nothing rather than failing,
// since on PostgreSQL a failed statement would end the transaction.
func insertRandomID(ctx context.Context, tx *sql.Tx, query string, args ...any) (int64, error) {
	for attempt := 1; ; attempt++ {
		id, err := drawRowID()
		if err != nil {
			return 0, err
		}
		res, err := tx.ExecContext(ctx, query+` ON CONFLICT (id) DO NOTHING`, append([]any{id}, args...)...)
		if err != nil {
			return 0, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return 0, err
		} else if n == 1 {
			return id, nil
		}
		if attempt == 3 {
			return 0, fmt.Errorf("db: no free random id after %d draws", attempt)
		}
	}
}

// nullID stores an id that may be absent: 0 becomes NULL, so a foreign key is not violated.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// PendingMigrations reports the schema version of the file at path and the version this
// binary would migrate it to, without changing the file. A missing or empty file is
// version 0 (nothing to back up).
func PendingMigrations(ctx context.Context, path string) (current, target int, err error) {
	target = SchemaVersion()
	if IsPostgresURL(path) {
		return pendingOn(ctx, path, target)
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || (err == nil && fi.Size() == 0) {
		return 0, target, nil
	}
	if err != nil {
		return 0, target, fmt.Errorf("db: %w", err)
	}
	if err := checkHeader(path); err != nil {
		return 0, target, err
	}
	return pendingOn(ctx, path, target)
}

func pendingOn(ctx context.Context, dsn string, target int) (current, _ int, err error) {
	d, err := openAny(ctx, dsn, false)
	if err != nil {
		return 0, target, err
	}
	defer d.Close()
	ok, err := d.hasSchema(ctx)
	if err != nil || !ok {
		return 0, target, err
	}
	current, err = versionOf(ctx, d.read)
	return current, target, err
}

// BackupFile copies the database at path to dest with VACUUM INTO, without migrating or
// checking its version: it is how an upgrade keeps the file as it was before.
func BackupFile(ctx context.Context, path, dest string) error {
	if IsPostgresURL(path) {
		return errors.New("db: backup: a PostgreSQL store is backed up with the server's own tools (pg_dump)")
	}
	d, err := open(path, false)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Backup(ctx, dest)
}

// Tables lists the tables of the store's schema by name: the data's and schema_migrations
// (not PostgreSQL's change revision, which is no data).
func (d *DB) Tables(ctx context.Context) ([]string, error) {
	names, err := queryList(ctx, d, scanOne[string], d.dl.listTables)
	if err != nil {
		return nil, fmt.Errorf("db: list tables: %w", err)
	}
	return names, nil
}

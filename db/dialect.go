package db

import "strconv"

// The store speaks one SQL to both engines wherever they agree (ON CONFLICT, RETURNING,
// COALESCE, CASE, lower(…) LIKE lower(…) ESCAPE); what they do not share is chosen here,
// and only here. Times are TEXT in TimeFormat on both, integers are 64-bit, 0/1 flags are
// integers, so rows are the same values on either.
type dialect struct {
	id dialectID
	// hasTable counts the tables named by its one parameter in the store's schema.
	hasTable string
	// listTables lists the store's tables by name (the data's and schema_migrations).
	listTables string
	// writeLock, when set, runs first in every write transaction: it makes writers of
	// every process on the database take turns, as SQLite's BEGIN IMMEDIATE does.
	writeLock string
	// announce, when set, runs last in every write transaction: it moves the revision
	// that other processes read and tells their listeners.
	announce string
}

type dialectID int

const (
	dialectSQLite dialectID = iota
	dialectPostgres
	dialectCount
)

// Fixed keys of PostgreSQL advisory locks, held to the end of the transaction that takes
// them. Any constant works as long as nothing else on the database uses it.
const (
	pgWriteLockKey   = 0x6761_7465_0001 // "gate" 1: one writer at a time
	pgMigrateLockKey = 0x6761_7465_0002 // "gate" 2: one migrator at a time
)

// pgChangeChannel is the NOTIFY channel every write transaction signals on.
const pgChangeChannel = "gatehouse_changes"

var sqliteDialect = &dialect{
	id:         dialectSQLite,
	hasTable:   `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`,
	listTables: `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`,
}

var postgresDialect = &dialect{
	id: dialectPostgres,
	hasTable: `SELECT COUNT(*) FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name = ?`,
	listTables: `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name != 'change_revision'
		ORDER BY table_name`,
	writeLock: `SELECT pg_advisory_xact_lock(` + itoa(pgWriteLockKey) + `)`,
	// One round trip: the simple protocol carries both statements; the notification is
	// delivered when the transaction commits, and not at all if it rolls back.
	announce: `UPDATE change_revision SET n = n + 1 WHERE id = 1; NOTIFY ` + pgChangeChannel,
}

// perDialect is one statement written for each engine, where they differ.
type perDialect [dialectCount]string

// bothDialects builds a statement for each engine from the dialect's fragments.
func bothDialects(build func(dl *dialect) string) perDialect {
	return perDialect{dialectSQLite: build(sqliteDialect), dialectPostgres: build(postgresDialect)}
}

// commaList aggregates expr (an integer) over a group into "1,2,3".
func (dl *dialect) commaList(expr string) string {
	if dl.id == dialectPostgres {
		return "string_agg(CAST(" + expr + " AS TEXT), ',')"
	}
	return "group_concat(" + expr + ")"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gatehouse/auth"
)

// ErrNotEmpty refuses to copy into a store that already holds data: rows would mix, and
// ids taken on both sides would collide.
var ErrNotEmpty = errors.New("db: the destination store is not empty")

// TableRows is how many rows one table holds.
type TableRows struct {
	Table string
	Rows  int64
}

// CopyReport is what CopyStore copied and verified.
type CopyReport struct {
	Tables []TableRows // every table, in copy order
	Rows   int64
	// Factors is the number of TOTP secrets opened with the key in the destination.
	Factors int
}

// copyParams bounds the parameters of one multi-row INSERT, well inside the limits of
// both SQLite (32766) and PostgreSQL (65535).
const copyParams = 3000

// CopyStore copies every row of src into dst, which must be migrated to the same schema
// and hold no data. Values move exactly as stored: ids, times, hashes and ciphertexts. key
// must open src's key canary; nothing is written otherwise. Rows are read from one
// snapshot of src, so a serve still writing there cannot tear the copy, and written in
// one transaction on dst, so a failure leaves dst empty. Once committed, the copy is
// verified: row counts match the snapshot, and key opens dst's canary and every TOTP
// secret there, each bound to its user's id.
func CopyStore(ctx context.Context, src, dst *DB, key *auth.Keyring) (CopyReport, error) {
	snap, err := src.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return CopyReport{}, fmt.Errorf("db: copy: read the source: %w", err)
	}
	defer func() { _ = snap.Rollback() }()
	if err := checkSourceKey(ctx, snap, key); err != nil {
		return CopyReport{}, err
	}
	var report CopyReport
	err = dst.tx(ctx, func(tx *sql.Tx) error {
		report = CopyReport{}
		if err := ensureEmpty(ctx, tx); err != nil {
			return err
		}
		for _, t := range storeTables {
			n, err := copyTable(ctx, snap, tx, t)
			if err != nil {
				return err
			}
			report.Tables = append(report.Tables, TableRows{Table: t.name, Rows: n})
			report.Rows += n
		}
		return dst.afterCopy(ctx, tx)
	})
	if err != nil {
		return CopyReport{}, err
	}
	if report.Factors, err = verifyCopy(ctx, dst, report.Tables, key); err != nil {
		return report, fmt.Errorf("db: the copy was written but does not verify, so do not use the destination: %w", err)
	}
	return report, nil
}

// checkSourceKey refuses a key that does not open the source's canary: a copy verified
// with the wrong key could not be verified at all, and the destination would be useless
// with it.
func checkSourceKey(ctx context.Context, snap *sql.Tx, key *auth.Keyring) error {
	var canary []byte
	err := snap.QueryRowContext(ctx, `SELECT value FROM key_canary WHERE id = 1`).Scan(&canary)
	if errors.Is(err, sql.ErrNoRows) {
		return errors.New("db: copy: the source has no key canary (start serve on it once with its key file)")
	}
	if err != nil {
		return fmt.Errorf("db: copy: read the source's key canary: %w", err)
	}
	if err := key.CheckCanary(canary); err != nil {
		return fmt.Errorf("db: copy: the key file is not the source's key (it does not open the source's canary): %w", err)
	}
	return nil
}

// ensureEmpty refuses a destination with any row in any table, naming the tables.
func ensureEmpty(ctx context.Context, tx *sql.Tx) error {
	var full []string
	for _, t := range storeTables {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM `+quoteIdent(t.name)+` LIMIT 1`).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("db: copy: read the destination's %s: %w", t.name, err)
		}
		full = append(full, t.name)
	}
	if len(full) > 0 {
		return fmt.Errorf("%w (%s already hold rows); copy into a new, empty database", ErrNotEmpty, strings.Join(full, ", "))
	}
	return nil
}

// copyTable streams one table from the snapshot into the destination in multi-row
// INSERTs and returns how many rows it copied.
func copyTable(ctx context.Context, snap, tx *sql.Tx, t storeTable) (int64, error) {
	cols := quoteIdents(t.columns)
	rows, err := snap.QueryContext(ctx, `SELECT `+cols+` FROM `+quoteIdent(t.name))
	if err != nil {
		return 0, fmt.Errorf("db: copy: read %s: %w", t.name, err)
	}
	defer rows.Close()
	perBatch := max(1, copyParams/len(t.columns))
	batch := make([]any, 0, perBatch*len(t.columns))
	var n int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		q := insertRows(t.name, cols, len(t.columns), len(batch)/len(t.columns))
		if _, err := tx.ExecContext(ctx, q, batch...); err != nil {
			return fmt.Errorf("db: copy: write %s: %w", t.name, err)
		}
		n += int64(len(batch) / len(t.columns))
		batch = batch[:0]
		return nil
	}
	for rows.Next() {
		vals := make([]any, len(t.columns))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return 0, fmt.Errorf("db: copy: read %s: %w", t.name, err)
		}
		if batch = append(batch, vals...); len(batch) >= perBatch*len(t.columns) {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("db: copy: read %s: %w", t.name, err)
	}
	return n, flush()
}

// insertRows builds INSERT INTO t (cols) VALUES (?, …), … for rows rows of width values.
func insertRows(table, cols string, width, rows int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", width), ", ") + ")"
	var b strings.Builder
	b.WriteString(`INSERT INTO ` + quoteIdent(table) + ` (` + cols + `) VALUES `)
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(one)
	}
	return b.String()
}

// afterCopy brings the destination's own bookkeeping in line with rows inserted with
// explicit ids. SQLite takes the next id from the table itself. PostgreSQL draws ids from
// each table's identity sequence, which explicit ids do not move: left alone, the next
// user added would be given id 1, which a copied user holds. Each sequence moves past the
// largest copied id (a table without one, such as key_canary, has no sequence and is
// left as it is).
func (d *DB) afterCopy(ctx context.Context, tx *sql.Tx) error {
	if !d.IsPostgres() {
		return nil
	}
	for _, t := range storeTables {
		if !slices.Contains(t.columns, "id") {
			continue
		}
		q := `SELECT setval(pg_get_serial_sequence('` + t.name + `', 'id'), COALESCE((SELECT MAX(id) FROM ` +
			quoteIdent(t.name) + `), 0) + 1, false)`
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("db: copy: move the id sequence of %s: %w", t.name, err)
		}
	}
	return nil
}

// verifyCopy reads the committed destination back: every table holds as many rows as the
// source's snapshot did, and key opens its canary and every TOTP secret. It returns the
// number of secrets opened.
func verifyCopy(ctx context.Context, dst *DB, want []TableRows, key *auth.Keyring) (int, error) {
	for _, w := range want {
		var n int64
		if err := dst.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+quoteIdent(w.Table)).Scan(&n); err != nil {
			return 0, fmt.Errorf("count %s: %w", w.Table, err)
		}
		if n != w.Rows {
			return 0, fmt.Errorf("%s holds %d rows, the source %d", w.Table, n, w.Rows)
		}
	}
	canary, err := dst.KeyCanary(ctx)
	if err != nil {
		return 0, err
	}
	if err := key.CheckCanary(canary); err != nil {
		return 0, fmt.Errorf("the key does not open the copied canary: %w", err)
	}
	return openFactors(ctx, dst, key)
}

// openFactors opens every stored TOTP secret with key and its user's id.
func openFactors(ctx context.Context, d *DB, key *auth.Keyring) (int, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT user_id, secret_enc FROM mfa_factors ORDER BY user_id`)
	if err != nil {
		return 0, fmt.Errorf("read the TOTP secrets: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var userID int64
		var sealed []byte
		if err := rows.Scan(&userID, &sealed); err != nil {
			return n, fmt.Errorf("read the TOTP secrets: %w", err)
		}
		if _, err := key.Open(sealed, auth.TOTPSecretAAD(userID)); err != nil {
			return n, fmt.Errorf("the TOTP secret of user %d does not open with the key: %w", userID, err)
		}
		n++
	}
	return n, rows.Err()
}

// quoteIdent quotes a table or column name the way both dialects read it, so that names
// such as key stay names.
func quoteIdent(name string) string { return `"` + name + `"` }

func quoteIdents(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quoteIdent(n)
	}
	return strings.Join(q, ", ")
}

package db

import (
	"context"
	"database/sql"
	"fmt"
)

// seedBatchRows is how many rows one multi-row INSERT of the benchmark seed carries: a
// round trip per row made seeding a large portal into PostgreSQL take twenty seconds.
// Both dialects stay well under their limits on bound values at this size.
const seedBatchRows = 500

// rowBatch gathers rows for one table and writes them with multi-row INSERTs in the
// caller's transaction. It is for the benchmark seed only, whose rows never conflict.
type rowBatch struct {
	ctx   context.Context
	tx    *sql.Tx
	table string
	names string // the quoted column list
	cols  int
	args  []any
	rows  int
}

func newRowBatch(ctx context.Context, tx *sql.Tx, table string, cols []string) *rowBatch {
	return &rowBatch{ctx: ctx, tx: tx, table: table, names: quoteIdents(cols), cols: len(cols)}
}

// add queues one row, writing the batch once it is full.
func (b *rowBatch) add(values ...any) error {
	if len(values) != b.cols {
		return fmt.Errorf("db: seed batch: %d values for %d columns", len(values), b.cols)
	}
	b.args = append(b.args, values...)
	b.rows++
	if b.rows == seedBatchRows {
		return b.flush()
	}
	return nil
}

// flush writes the queued rows, and fails unless every one of them was inserted.
func (b *rowBatch) flush() error {
	if b.rows == 0 {
		return nil
	}
	res, err := b.tx.ExecContext(b.ctx, insertRows(b.table, b.names, b.cols, b.rows), b.args...)
	if err != nil {
		return fmt.Errorf("db: seed batch: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(b.rows) {
		return fmt.Errorf("db: seed batch: %d of %d rows written (%v)", n, b.rows, err)
	}
	b.args, b.rows = b.args[:0], 0
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"gatehouse/auth"
	"gatehouse/db"
)

const storeCopySummary = "copy a whole store into a new, empty one and verify it: store copy --from SRC --to DST [--key-file K]; " +
	"SRC and DST are each a SQLite file or a postgres:// URL"

// cmdStoreCopy moves a portal between stores (SQLite to PostgreSQL or back). The copy is
// one transaction on the destination and is verified with the key before it is reported.
func cmdStoreCopy(e env, args []string) error {
	fs := newFlags("store copy")
	from := fs.String("from", "", "the store to copy: a SQLite file or a postgres:// URL")
	to := fs.String("to", "", "the new store: a SQLite file that does not exist yet, or a postgres:// URL of an empty database")
	keyFile := fs.String("key-file", "", "the source's key file, which the destination then uses too (default: <from>.key beside a SQLite source; required with a URL)")
	asJSON := fs.Bool("json", false, "print what was copied as JSON")
	if _, err := parse(e, fs, args, storeCopySummary, 0); err != nil {
		return err
	}
	if err := checkCopyEnds(*from, *to); err != nil {
		return err
	}
	if *keyFile == "" {
		if db.IsPostgresURL(*from) {
			return usageError{"store copy: --key-file is required when --from is a URL"}
		}
		*keyFile = *from + ".key"
	}
	key, err := auth.LoadKey(*keyFile)
	if err != nil {
		return fmt.Errorf("key file %s (--key-file): %w", *keyFile, err)
	}
	src, err := db.OpenExisting(e.ctx, *from)
	if err != nil {
		return fmt.Errorf("cannot open the source %s: %w", db.Describe(*from), err)
	}
	defer src.Close()
	report, err := copyIntoNewStore(e.ctx, src, *to, key)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, storeCopyJSONOf(report, *from, *to, *keyFile))
	}
	fmt.Fprintf(e.stdout, "copied %d rows in %d tables from %s to %s; verified: every table's row count, and the key opens the canary and %d TOTP secrets\n",
		report.Rows, len(report.Tables), db.Describe(*from), db.Describe(*to), report.Factors)
	fmt.Fprintf(e.stdout, "start serve with --db %s --key-file %s\n", db.Describe(*to), *keyFile)
	return nil
}

// checkCopyEnds refuses a missing end, and a copy of a store onto itself.
func checkCopyEnds(from, to string) error {
	if from == "" || to == "" {
		return usageError{"store copy needs --from SRC and --to DST"}
	}
	same := from == to
	if !db.IsPostgresURL(from) && !db.IsPostgresURL(to) {
		a, errA := os.Stat(from)
		b, errB := os.Stat(to)
		same = same || (errA == nil && errB == nil && os.SameFile(a, b))
	}
	if same {
		return usageError{"store copy: --from and --to name the same store"}
	}
	return nil
}

// copyIntoNewStore copies src into the store at dst: a new SQLite file, or an empty
// PostgreSQL database, which is migrated first.
func copyIntoNewStore(ctx context.Context, src *db.DB, dst string, key *auth.Keyring) (db.CopyReport, error) {
	if !db.IsPostgresURL(dst) {
		return copyIntoNewSQLite(ctx, src, dst, key)
	}
	store, err := db.Open(ctx, dst)
	if err != nil {
		return db.CopyReport{}, fmt.Errorf("cannot open the destination %s: %w", db.Describe(dst), err)
	}
	defer store.Close()
	return db.CopyStore(ctx, src, store, key)
}

// copyIntoNewSQLite copies src into a SQLite file made for it at path (owner-only, like
// every database file), which must not exist yet. A copy that fails or does not verify
// leaves no file behind, so it is never mistaken for a good one.
func copyIntoNewSQLite(ctx context.Context, src *db.DB, path string, key *auth.Keyring) (db.CopyReport, error) {
	if _, err := os.Lstat(path); err == nil {
		return db.CopyReport{}, fmt.Errorf("%s already exists; the copy goes into a new file", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return db.CopyReport{}, fmt.Errorf("%s: %w", path, err)
	}
	store, err := createStore(ctx, path)
	if err != nil {
		return db.CopyReport{}, err
	}
	report, err := db.CopyStore(ctx, src, store, key)
	if cerr := store.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing %s: %w", path, cerr)
	}
	if err != nil {
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			_ = os.Remove(p) // made here, and not a good copy
		}
		return db.CopyReport{}, err
	}
	return report, nil
}

// storeCopyJSON is store copy's --json answer; the URLs in it carry no password.
type storeCopyJSON struct {
	From    string           `json:"from"`
	To      string           `json:"to"`
	KeyFile string           `json:"key_file"`
	Rows    int64            `json:"rows"`
	Tables  map[string]int64 `json:"tables"`
	Factors int              `json:"totp_secrets_verified"`
}

func storeCopyJSONOf(r db.CopyReport, from, to, keyFile string) storeCopyJSON {
	abs := func(p string) string {
		if db.IsPostgresURL(p) {
			return db.Describe(p)
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	out := storeCopyJSON{From: abs(from), To: abs(to), KeyFile: abs(keyFile), Rows: r.Rows, Factors: r.Factors,
		Tables: map[string]int64{}}
	for _, t := range r.Tables {
		out.Tables[t.Table] = t.Rows
	}
	return out
}

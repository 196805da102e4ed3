package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"gatehouse/auth"
	"gatehouse/db"
)

type flagSet = *flag.FlagSet

// cmdCheck proves serve would start: config, key file, schema version, key canary and
// integrity, all without creating, migrating or binding anything.
func cmdCheck(e env, args []string) error {
	fs := newFlags("check")
	s := addConfigFlags(fs, e.getenv)
	if _, err := parse(e, fs, args, "validate config, key file and database", 0); err != nil {
		return err
	}
	cfg, err := s.config()
	if err != nil {
		return err
	}
	// Looked at before opening, so a -wal or -shm seen belongs to a running serve (or a
	// crash), not to this check.
	exposed := filesOthersCanOpen(cfg)
	store, version, err := db.OpenToInspect(e.ctx, cfg.DB)
	if err != nil {
		return fmt.Errorf("cannot open database %s: %w", db.Describe(cfg.DB), err)
	}
	defer store.Close()
	if err := store.IntegrityCheck(e.ctx); err != nil {
		return fmt.Errorf("database %s: %w", db.Describe(cfg.DB), err)
	}
	if version < db.SchemaVersion() {
		if err := store.UsernameCollisions(e.ctx); err != nil {
			return fmt.Errorf("database %s cannot be migrated: %w", db.Describe(cfg.DB), err)
		}
	}
	_, exists, err := openKeys(e.ctx, store, cfg.KeyFile, false)
	if err != nil {
		return err
	}
	keyState := "key file " + cfg.KeyFile + " verified"
	if !exists {
		keyState = "key file " + cfg.KeyFile + " will be created on first start"
	}
	schema := fmt.Sprintf("schema %d", version)
	if version < db.SchemaVersion() {
		schema = fmt.Sprintf("schema %d (serve will back it up, then migrate it to %d)", version, db.SchemaVersion())
	}
	// Serve starts with such files, so check passes, but says so on its verdict line.
	var warnings string
	for _, o := range exposed {
		warnings += fmt.Sprintf("; warning: %s (%s)", o.problem(), o.fix())
	}
	// The SMTP settings were validated with the rest; nothing connects to the server here
	// (`gatehouse mail test` does that).
	mailState := "mail off"
	if cfg.Mail.Enabled() {
		mailState = "mail via " + cfg.Mail.Addr + " (" + cfg.Mail.TLS + ")"
	}
	fmt.Fprintf(e.stdout, "ok: %s at %s, integrity ok, %s, %s%s\n", db.Describe(cfg.DB), schema, keyState, mailState, warnings)
	return nil
}

// cmdBackup copies the live database with VACUUM INTO and its key file beside it.
func cmdBackup(e env, args []string) error {
	fs := newFlags("backup")
	s := addConfigFlags(fs, e.getenv)
	rest, err := parse(e, fs, args, "backup DEST: copy the live database to DEST and its key to DEST.key", 1)
	if err != nil {
		return err
	}
	dest := rest[0]
	store, cfg, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	// The key must be the one the database was set up with, or the pair would not restore.
	keys, exists, err := openKeys(e.ctx, store, cfg.KeyFile, false)
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("key file %s (--key-file) does not exist yet; start serve once to create it, then back up", cfg.KeyFile)
	}
	if _, err := os.Stat(dest + ".key"); err == nil {
		return fmt.Errorf("%s.key already exists; choose a new DEST", dest)
	}
	if err := backupStore(e.ctx, store, dest, keys); err != nil {
		return err
	}
	if err := keys.WriteKeyFile(dest + ".key"); err != nil {
		_ = os.Remove(dest) // half a pair would not restore
		return fmt.Errorf("writing %s.key: %w", dest, err)
	}
	abs, _ := filepath.Abs(dest)
	fmt.Fprintf(e.stdout, "backed up %s to %s and its key to %s.key; store the two apart\n", db.Describe(cfg.DB), abs, abs)
	return nil
}

// backupStore writes the store's data to a new SQLite file at dest. A SQLite store is
// copied with VACUUM INTO; PostgreSQL has no such copy, so its rows are copied (and
// verified with the key) into a fresh file. Either way the backup is a SQLite file that
// restores anywhere, on its own or into PostgreSQL with store copy.
func backupStore(ctx context.Context, store *db.DB, dest string, keys *auth.Keyring) error {
	if !store.IsPostgres() {
		return store.Backup(ctx, dest)
	}
	_, err := copyIntoNewSQLite(ctx, store, dest, keys)
	return err
}

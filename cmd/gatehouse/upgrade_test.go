package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gatehouse/db"
)

func TestServeBacksUpBeforeMigrating(t *testing.T) {
	withUmask(t, 0o022)
	path := newDatabase(t)
	store := openDB(t, path)
	addUser(t, store, "alice", db.RoleStaff)
	store.Close()
	// Turn the file back into what the previous binary left: undo the newest migration.
	undoNewestMigration(t, path)
	before := dumpTables(t, path)
	out := mustRun(t, "", "check", "--db", path)
	if !strings.Contains(out, "serve will back it up, then migrate it to") {
		t.Fatalf("check on an older database: %q", out)
	}
	if after := dumpTables(t, path); len(after) != len(before) {
		t.Fatal("check migrated the database")
	}
	current, target, err := db.PendingMigrations(context.Background(), path)
	if err != nil || current != db.SchemaVersion()-1 || target != db.SchemaVersion() {
		t.Fatalf("pending %d → %d, %v", current, target, err)
	}
	srv := startServe(t, path)
	backups, _ := filepath.Glob(path + ".before-v*.bak")
	if len(backups) != 1 {
		t.Fatalf("backups %v", backups)
	}
	if !strings.Contains(srv.stderr.String(), backups[0]) {
		t.Fatal("the log does not name the backup")
	}
	if fi, err := os.Stat(backups[0]); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("the backup has mode %v, want 0600", fi.Mode().Perm())
	}
	old, _, err := db.PendingMigrations(context.Background(), backups[0])
	if err != nil || old != db.SchemaVersion()-1 {
		t.Fatalf("the backup is not the file as it was: version %d, %v", old, err)
	}
	if err := srv.stop(t); err != nil {
		t.Fatal(err)
	}
	startServe(t, path) // already current: no second backup
	if backups, _ := filepath.Glob(path + ".before-v*.bak"); len(backups) != 1 {
		t.Fatalf("a current database was backed up again: %v", backups)
	}
}

// migrationUndo holds, by schema version, the statements that take a database from that
// version back to the one before, so tests can build what an older binary left.
var migrationUndo = map[int][]string{
	9: {`DROP TABLE app_audience`, `DROP TABLE apps`, `ALTER TABLE sessions DROP COLUMN cookie_scope`},
	8: {`DROP TABLE rate_limits`, `DROP TABLE outbox`, `DROP TABLE email_tokens`, `DROP INDEX users_email_key`,
		`ALTER TABLE users DROP COLUMN email`, `ALTER TABLE users DROP COLUMN email_key`,
		`ALTER TABLE notices DROP COLUMN email`, `ALTER TABLE notices DROP COLUMN remind`,
		`ALTER TABLE notices DROP COLUMN due_at`, `ALTER TABLE notices DROP COLUMN renew_every`,
		`ALTER TABLE notices DROP COLUMN mailed_at`, `ALTER TABLE notice_acks DROP COLUMN expires_at`},
	7: {`DROP TABLE passkey_challenges`, `DROP TABLE passkey_handles`, `DROP TABLE passkeys`},
	6: {`DROP INDEX users_username_key`, `DROP TRIGGER users_username_key_insert`,
		`DROP TRIGGER users_username_key_update`, `ALTER TABLE users DROP COLUMN username_key`},
}

// undoNewestMigration turns a current database back into what the previous binary left.
func undoNewestMigration(tb testing.TB, path string) {
	tb.Helper()
	undoMigrationsTo(tb, path, db.SchemaVersion()-1)
}

// undoMigrationsTo turns a current database back into what the binary of schema version
// left.
func undoMigrationsTo(tb testing.TB, path string, version int) {
	tb.Helper()
	for v := db.SchemaVersion(); v > version; v-- {
		undo, ok := migrationUndo[v]
		if !ok {
			tb.Fatalf("migration %d was added: give migrationUndo its undo statements", v)
		}
		for _, q := range append(undo, fmt.Sprintf(`DELETE FROM schema_migrations WHERE version = %d`, v)) {
			rawExec(tb, path, q)
		}
	}
}

// The previous binary let émile and Émile be two accounts; the upgrade that makes them one
// name stops serve with a line naming both, and leaves the database as it was.
func TestServeRefusesToUpgradeUsernamesThatCollide(t *testing.T) {
	path := newDatabase(t)
	store := openDB(t, path)
	addUser(t, store, "émile", db.RoleStaff)
	store.Close()
	undoMigrationsTo(t, path, 5)
	rawExec(t, path, `INSERT INTO users (username, role, password_hash, created_at, updated_at)
		VALUES ('Émile', 'staff', 'hash', '', '')`)
	before := dumpTables(t, path)
	_, _, err := runFor(t, 20*time.Second, nil, "", "serve", "--addr", "127.0.0.1:0", "--db", path)
	assertOneLine(t, err, `"émile"`, `"Émile"`, "delete", "nothing was changed")
	after := dumpTables(t, path)
	if !reflect.DeepEqual(before, after) {
		t.Error("the refused upgrade changed the database")
	}
	if current, _, err := db.PendingMigrations(context.Background(), path); err != nil || current != 5 {
		t.Errorf("database at version %d (%v), want 5", current, err)
	}
}

func TestServeExportsMetricsOnItsOwnAddress(t *testing.T) {
	path := newDatabase(t)
	srv := startServe(t, path, "--metrics-addr", "127.0.0.1:0")
	var metricsAddr string
	for _, line := range strings.Split(srv.stderr.String(), "\n") {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving metrics" {
			metricsAddr = rec.Addr
		}
	}
	if metricsAddr == "" || metricsAddr == srv.addr {
		t.Fatalf("metrics address %q (portal %q)", metricsAddr, srv.addr)
	}
	code, body := get(t, "http://"+metricsAddr+"/metrics")
	if code != 200 || !strings.Contains(body, "gatehouse_active_sessions 0") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics %d:\n%.500s", code, body)
	}
	if code, _ := get(t, "http://"+srv.addr+"/metrics"); code != 404 {
		t.Fatalf("the portal itself serves /metrics: %d", code)
	}
}

// check promises that serve will start; on a database whose usernames the upgrade would
// refuse, it must say so, naming them, instead of printing ok.
func TestCheckNamesUsernamesTheUpgradeWouldRefuse(t *testing.T) {
	path := newDatabase(t)
	store := openDB(t, path)
	addUser(t, store, "amy", db.RoleStaff)
	store.Close()
	undoMigrationsTo(t, path, 5)
	rawExec(t, path, `INSERT INTO users (username, role, password_hash, created_at, updated_at)
		VALUES ('ＡＭＹ', 'staff', 'hash', '', '')`)
	before := dumpTables(t, path)
	_, _, err := runCLI(t, "check", "--db", path)
	assertOneLine(t, err, path, `"amy"`, `"ＡＭＹ"`, "delete")
	if after := dumpTables(t, path); !reflect.DeepEqual(before, after) {
		t.Error("check changed the database")
	}
}

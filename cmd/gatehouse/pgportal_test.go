package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/internal/testkit"
)

// The tests of several serve processes on one PostgreSQL database. Each test gets a
// database of its own on the server GATEHOUSE_TEST_POSTGRES names (under CI=true it must
// name one), or on a cluster it starts itself when it stops the server.

// testPostgresServer is the URL of the shared test server, skipping the test without one.
func testPostgresServer(tb testing.TB) string {
	tb.Helper()
	server := os.Getenv("GATEHOUSE_TEST_POSTGRES")
	if server == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("GATEHOUSE_TEST_POSTGRES is not set, and CI must run the PostgreSQL tests")
		}
		tb.Skip("GATEHOUSE_TEST_POSTGRES names no PostgreSQL server")
	}
	return server
}

// newPostgresDatabase creates an empty database with a name of its own on the server at
// serverURL and returns its URL; it is dropped when the test ends.
func newPostgresDatabase(tb testing.TB, serverURL string) string {
	tb.Helper()
	admin, err := sql.Open("pgx", serverURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "gatehouse_cmd_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		drop, err := sql.Open("pgx", serverURL)
		if err != nil {
			return
		}
		defer drop.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = drop.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
	})
	u, err := url.Parse(serverURL)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// pgPortal is a PostgreSQL store set up as a first serve leaves it (schema, key file,
// canary), with accounts whose password is "correct horse battery".
type pgPortal struct {
	url     string
	keyFile string
	keys    *auth.Keyring
	secrets map[string]string // TOTP secrets by username, for accounts with a factor
}

// newPGPortal sets up the database at dbURL with root (admin), pub (publisher), the staff
// named in staff, and the staff named in withTOTP, each with an authenticator.
func newPGPortal(tb testing.TB, dbURL string, staff, withTOTP []string) *pgPortal {
	tb.Helper()
	ctx := context.Background()
	store, err := db.Open(ctx, dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer store.Close()
	p := &pgPortal{url: dbURL, keyFile: filepath.Join(tb.TempDir(), "gatehouse.key"), secrets: map[string]string{}}
	if p.keys, _, err = openKeys(ctx, store, p.keyFile, true); err != nil {
		tb.Fatal(err)
	}
	hash := testkit.CheapHash(tb, "correct horse battery")
	add := func(name, role string) db.User {
		u, err := store.CreateUser(ctx, db.NewUser{Username: name, Role: role, PasswordHash: hash}, db.Event{At: time.Now()})
		if err != nil {
			tb.Fatal(err)
		}
		return u
	}
	add("root", db.RoleAdmin)
	add("pub", db.RolePublisher)
	for _, n := range staff {
		add(n, db.RoleStaff)
	}
	for _, n := range withTOTP {
		p.secrets[n] = enrollDirect(tb, store, p.keys, add(n, db.RoleStaff))
	}
	return p
}

// serve starts a serve process of the built binary on the portal's database.
func (p *pgPortal) serve(tb testing.TB) *process {
	tb.Helper()
	return startProcess(tb, p.url, "--key-file", p.keyFile)
}

// command runs the built binary's command (its words, such as "sessions revoke") on the
// portal's database, with args after the store's flags.
func (p *pgPortal) command(tb testing.TB, stdin, name string, args ...string) string {
	tb.Helper()
	full := append(strings.Fields(name), "--db", p.url, "--key-file", p.keyFile)
	return gatehouseCommand(tb, stdin, append(full, args...)...)
}

// sameBrowser is c, with its cookies, talking to another server.
func sameBrowser(c *webClient, addr string) *webClient {
	return &webClient{base: "http://" + addr, http: c.http}
}

// passwordStep posts the password step of a sign-in and returns the answer.
func (w *webClient) passwordStep(tb testing.TB, username string) (int, string) {
	tb.Helper()
	code, loc, err := w.post("/login", url.Values{"username": {username}, "password": {"correct horse battery"}})
	if err != nil {
		tb.Fatal(err)
	}
	return code, loc
}

// status is the answer's status code, or 0 if there was none.
func status(resp *http.Response, err error) int {
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

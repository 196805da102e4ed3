// Package testkit holds the test helpers that the tests of several packages share: an
// output sink a test can read while servers write to it, cheap password hashing, and
// accounts made in one call. Only tests import it; auth's own tests keep their copy of
// the cheap parameters, since this package imports auth.
package testkit

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// CheapParams keep argon2id fast in tests; the binary always uses auth.DefaultParams, and
// a stored hash carries its own parameters, so a cheap hash still verifies in the binary.
var CheapParams = auth.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

// SyncBuffer is an output stream (a log, a command's stdout) that a test can read while
// other goroutines still write to it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// CheapHash hashes password with CheapParams.
func CheapHash(tb testing.TB, password string) string {
	tb.Helper()
	h, err := auth.NewHasher(CheapParams, 1).Hash(context.Background(), password)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// CreateUser adds an account straight to the store, failing the test if it cannot. Unless
// nu carries a hash, password is hashed with CheapParams; an empty Role is staff. ev is
// the audit event of the creation (a zero Kind records none); a zero ev.At is now.
func CreateUser(tb testing.TB, store *db.DB, nu db.NewUser, password string, ev db.Event) db.User {
	tb.Helper()
	if nu.PasswordHash == "" {
		nu.PasswordHash = CheapHash(tb, password)
	}
	if nu.Role == "" {
		nu.Role = db.RoleStaff
	}
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	u, err := store.CreateUser(context.Background(), nu, ev)
	if err != nil {
		tb.Fatalf("create user %s: %v", nu.Username, err)
	}
	return u
}

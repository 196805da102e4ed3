package db

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func admin(name string) NewUser {
	return NewUser{Username: name, Role: RoleAdmin, PasswordHash: "hash-of-" + name}
}

func tokenValid(tb testing.TB, d *DB, hash []byte) bool {
	tb.Helper()
	ok, err := d.SetupTokenValid(context.Background(), hash)
	if err != nil {
		tb.Fatal(err)
	}
	return ok
}

func TestSetSetupToken(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	first, second := newTokenHash(t), newTokenHash(t)

	if tokenValid(t, d, first) {
		t.Error("a token is valid before any was set")
	}
	if err := d.SetSetupToken(ctx, first, t0); err != nil {
		t.Fatal(err)
	}
	if !tokenValid(t, d, first) || tokenValid(t, d, second) {
		t.Error("only the stored token should be valid")
	}
	t.Run("a new token replaces the old one", func(t *testing.T) {
		if err := d.SetSetupToken(ctx, second, t0); err != nil {
			t.Fatal(err)
		}
		if tokenValid(t, d, first) || !tokenValid(t, d, second) {
			t.Error("the replaced token still works, or the new one does not")
		}
	})
	t.Run("once a user exists no token is accepted or stored", func(t *testing.T) {
		mkUser(t, d, "alice")
		if tokenValid(t, d, second) {
			t.Error("the setup token still works with a user present")
		}
		if err := d.SetSetupToken(ctx, first, t0); !errors.Is(err, ErrSetupDone) {
			t.Errorf("err = %v, want ErrSetupDone", err)
		}
	})
	t.Run("ClearSetupToken removes it", func(t *testing.T) {
		if err := d.ClearSetupToken(ctx); err != nil {
			t.Fatal(err)
		}
		if n := count(t, d, `SELECT COUNT(*) FROM setup_token`); n != 0 {
			t.Errorf("%d setup tokens left", n)
		}
	})
}

func TestCompleteSetup(t *testing.T) {
	ctx := context.Background()

	t.Run("without a token nothing is created", func(t *testing.T) {
		d := openTest(t)
		if _, err := d.CompleteSetup(ctx, newTokenHash(t), admin("root"), event("setup", t0)); !errors.Is(err, ErrSetupDone) {
			t.Errorf("err = %v, want ErrSetupDone", err)
		}
		if n, _ := d.CountUsers(ctx); n != 0 {
			t.Errorf("%d users created", n)
		}
	})

	d := openTest(t)
	token := newTokenHash(t)
	if err := d.SetSetupToken(ctx, token, t0); err != nil {
		t.Fatal(err)
	}
	t.Run("a wrong token creates nothing and keeps the real one", func(t *testing.T) {
		if _, err := d.CompleteSetup(ctx, newTokenHash(t), admin("mallory"), event("setup", t0)); !errors.Is(err, ErrSetupDone) {
			t.Errorf("err = %v, want ErrSetupDone", err)
		}
		if n, _ := d.CountUsers(ctx); n != 0 {
			t.Errorf("%d users created", n)
		}
		if n := auditCount(t, d, "setup"); n != 0 {
			t.Errorf("%d audit rows for a refused setup", n)
		}
		if !tokenValid(t, d, token) {
			t.Error("a wrong guess burned the real token")
		}
	})
	t.Run("the right token creates the admin and dies", func(t *testing.T) {
		u, err := d.CompleteSetup(ctx, token, admin("root"), event("setup", t0))
		if err != nil {
			t.Fatal(err)
		}
		if u.Username != "root" || u.Role != RoleAdmin || u.ID == 0 {
			t.Errorf("created %+v", u)
		}
		if n := count(t, d, `SELECT COUNT(*) FROM setup_token`); n != 0 {
			t.Errorf("%d setup tokens left", n)
		}
		evs, _ := d.ListEvents(ctx, AuditFilter{Kind: "setup"})
		if len(evs) != 1 || evs[0].Subject != "root" {
			t.Errorf("audit = %+v, want one row about root", evs)
		}
	})
	t.Run("the same token cannot be used again", func(t *testing.T) {
		if _, err := d.CompleteSetup(ctx, token, admin("second"), event("setup", t0)); !errors.Is(err, ErrSetupDone) {
			t.Errorf("err = %v, want ErrSetupDone", err)
		}
		if n, _ := d.CountUsers(ctx); n != 1 {
			t.Errorf("CountUsers = %d, want 1", n)
		}
	})
}

func TestCompleteSetupConcurrent(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	token := newTokenHash(t)
	if err := d.SetSetupToken(ctx, token, t0); err != nil {
		t.Fatal(err)
	}
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Different names, so a second admin could not hide behind ErrDuplicate.
			_, errs[i] = d.CompleteSetup(ctx, token, admin(fmt.Sprintf("admin%d", i)), Event{At: t0})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrSetupDone):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d setups succeeded, want exactly 1", won)
	}
	if c, _ := d.CountUsers(ctx); c != 1 {
		t.Errorf("CountUsers = %d, want 1", c)
	}
}

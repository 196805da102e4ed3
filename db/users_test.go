package db

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestCreateUser(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	u, err := d.CreateUser(ctx, NewUser{Username: "Alice", DisplayName: "Alice A.", Role: RolePublisher,
		PasswordHash: "h1", MustChangePassword: true}, event("user.created", t0))
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	want := User{ID: u.ID, Username: "Alice", DisplayName: "Alice A.", Role: RolePublisher, PasswordHash: "h1",
		MustChangePassword: true, CreatedAt: t0}
	if !reflect.DeepEqual(u, want) {
		t.Errorf("CreateUser returned %+v, want %+v", u, want)
	}
	if n := auditCount(t, d, "user.created"); n != 1 {
		t.Errorf("%d audit rows for the new user, want 1", n)
	}

	tests := []struct {
		name    string
		nu      NewUser
		wantErr error // nil: any error
	}{
		{"the same username is a duplicate", NewUser{Username: "Alice", Role: RoleStaff, PasswordHash: "x"}, ErrDuplicate},
		{"a username differing only in case is a duplicate", NewUser{Username: "aLICE", Role: RoleStaff, PasswordHash: "x"}, ErrDuplicate},
		{"an unknown role is refused", NewUser{Username: "bob", Role: "root", PasswordHash: "x"}, nil},
		{"an empty role is refused", NewUser{Username: "carol", PasswordHash: "x"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.CreateUser(ctx, tt.nu, event("user.created", t0))
			if err == nil {
				t.Fatal("CreateUser succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			// A refused account leaves neither a user nor an audit row claiming one.
			if n, _ := d.CountUsers(ctx); n != 1 {
				t.Errorf("CountUsers = %d, want 1", n)
			}
			if n := auditCount(t, d, "user.created"); n != 1 {
				t.Errorf("%d user.created audit rows, want 1", n)
			}
		})
	}
}

func TestUserLookups(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	bob := mkUser(t, d, "bob")
	alice := mkUser(t, d, "Alice")

	t.Run("UserByID finds the user", func(t *testing.T) {
		got, err := d.UserByID(ctx, bob.ID)
		if err != nil || !reflect.DeepEqual(got, bob) {
			t.Errorf("UserByID = %+v, %v; want %+v", got, err, bob)
		}
	})
	t.Run("UserByID of an unknown id is ErrNotFound", func(t *testing.T) {
		if _, err := d.UserByID(ctx, alice.ID+100); !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("UserByUsername ignores case", func(t *testing.T) {
		got, err := d.UserByUsername(ctx, "ALICE")
		if err != nil || got.ID != alice.ID {
			t.Errorf("UserByUsername(ALICE) = %+v, %v; want alice", got, err)
		}
	})
	t.Run("UserByUsername of an unknown name is ErrNotFound", func(t *testing.T) {
		if _, err := d.UserByUsername(ctx, "mallory"); !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("ListUsers orders by username and CountUsers counts", func(t *testing.T) {
		us, err := d.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, u := range us {
			names = append(names, u.Username)
		}
		if !slices.Equal(names, []string{"Alice", "bob"}) {
			t.Errorf("ListUsers = %v", names)
		}
		if n, err := d.CountUsers(ctx); err != nil || n != 2 {
			t.Errorf("CountUsers = %d, %v", n, err)
		}
	})
	t.Run("HasMFA reflects an active factor", func(t *testing.T) {
		s := mkSession(t, d, bob.ID, StageFull, t0)
		mkFactor(t, d, bob, s.ID)
		got, err := d.UserByID(ctx, bob.ID)
		if err != nil || !got.HasMFA() {
			t.Errorf("UserByID after enrolling = %+v, %v; want HasMFA", got, err)
		}
		if got, _ := d.UserByID(ctx, alice.ID); got.HasMFA() {
			t.Error("another user's factor shows on alice")
		}
	})
	t.Run("Name prefers the display name", func(t *testing.T) {
		if n := (User{Username: "u", DisplayName: "D"}).Name(); n != "D" {
			t.Errorf("Name() = %q", n)
		}
		if n := (User{Username: "u"}).Name(); n != "u" {
			t.Errorf("Name() = %q", n)
		}
	})
}

func TestSetDisabled(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	alice := mkUser(t, d, "alice")
	bob := mkUser(t, d, "bob")
	mkSession(t, d, alice.ID, StageFull, t0)
	mkSession(t, d, alice.ID, StageMFA, t0)
	bobSessions := []int64{mkSession(t, d, bob.ID, StageFull, t0).ID}

	t.Run("a failed audit write leaves the account enabled and its sessions alive", func(t *testing.T) {
		// An outcome the schema refuses makes the audit insert fail inside the transaction.
		ev := event("user.disabled", t0)
		ev.Outcome = "maybe"
		if _, err := d.SetDisabled(ctx, alice.ID, true, ev); err == nil {
			t.Fatal("SetDisabled succeeded with a failing audit row")
		}
		if u, _ := d.UserByID(ctx, alice.ID); u.Disabled {
			t.Error("account disabled although its audit row was not written")
		}
		if ids := sessionIDs(t, d, alice.ID); len(ids) != 2 {
			t.Errorf("alice has %d sessions, want 2", len(ids))
		}
	})
	t.Run("disabling ends that user's sessions only, with an audit row", func(t *testing.T) {
		n, err := d.SetDisabled(ctx, alice.ID, true, event("user.disabled", t0))
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("sessionsEnded = %d, want 2", n)
		}
		if u, _ := d.UserByID(ctx, alice.ID); !u.Disabled {
			t.Error("alice not disabled")
		}
		if ids := sessionIDs(t, d, alice.ID); len(ids) != 0 {
			t.Errorf("alice still has sessions %v", ids)
		}
		if ids := sessionIDs(t, d, bob.ID); !slices.Equal(ids, bobSessions) {
			t.Errorf("bob's sessions = %v, want %v", ids, bobSessions)
		}
		if u, _ := d.UserByID(ctx, bob.ID); u.Disabled {
			t.Error("bob disabled too")
		}
		if n := auditCount(t, d, "user.disabled"); n != 1 {
			t.Errorf("%d user.disabled audit rows, want 1", n)
		}
	})
	t.Run("enabling again restores the flag and starts no session", func(t *testing.T) {
		n, err := d.SetDisabled(ctx, alice.ID, false, event("user.enabled", t0))
		if err != nil || n != 0 {
			t.Fatalf("SetDisabled(false) = %d, %v", n, err)
		}
		if u, _ := d.UserByID(ctx, alice.ID); u.Disabled {
			t.Error("alice still disabled")
		}
		if ids := sessionIDs(t, d, alice.ID); len(ids) != 0 {
			t.Errorf("alice has sessions %v", ids)
		}
	})
	t.Run("an unknown user is ErrNotFound and audits nothing", func(t *testing.T) {
		if _, err := d.SetDisabled(ctx, bob.ID+100, true, event("user.disabled.ghost", t0)); !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
		if n := auditCount(t, d, "user.disabled.ghost"); n != 0 {
			t.Errorf("%d audit rows for a missing user", n)
		}
	})
}

func TestSetPassword(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		keep func(a, b Session) int64
		want func(a, b Session) []int64
	}{
		{"keeping one session ends the others", func(a, b Session) int64 { return b.ID },
			func(a, b Session) []int64 { return []int64{b.ID} }},
		{"-1 ends every session", func(a, b Session) int64 { return -1 },
			func(a, b Session) []int64 { return nil }},
		{"0 ends no session", func(a, b Session) int64 { return 0 },
			func(a, b Session) []int64 { return []int64{a.ID, b.ID} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := openTest(t)
			alice := mkUser(t, d, "alice")
			bob := mkUser(t, d, "bob")
			a := mkSession(t, d, alice.ID, StageFull, t0)
			b := mkSession(t, d, alice.ID, StageFull, t0)
			bobS := mkSession(t, d, bob.ID, StageFull, t0)

			if err := d.SetPassword(ctx, alice.ID, "new-hash", true, tt.keep(a, b), event("password.changed", t0)); err != nil {
				t.Fatal(err)
			}
			want := tt.want(a, b)
			slices.Sort(want)
			if ids := sessionIDs(t, d, alice.ID); !slices.Equal(ids, want) {
				t.Errorf("alice's sessions = %v, want %v", ids, want)
			}
			if ids := sessionIDs(t, d, bob.ID); !slices.Equal(ids, []int64{bobS.ID}) {
				t.Errorf("bob's sessions = %v, want [%d]", ids, bobS.ID)
			}
			u, _ := d.UserByID(ctx, alice.ID)
			if u.PasswordHash != "new-hash" || !u.MustChangePassword {
				t.Errorf("alice = %+v, want the new hash and must-change", u)
			}
			if u, _ := d.UserByID(ctx, bob.ID); u.PasswordHash != "hash-of-bob" {
				t.Errorf("bob's hash changed to %q", u.PasswordHash)
			}
			if n := auditCount(t, d, "password.changed"); n != 1 {
				t.Errorf("%d audit rows, want 1", n)
			}
		})
	}
	t.Run("an unknown user is ErrNotFound", func(t *testing.T) {
		d := openTest(t)
		if err := d.SetPassword(ctx, 42, "h", false, -1, event("password.changed", t0)); !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
}

func TestUpdatePasswordHash(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	u := mkUser(t, d, "alice")

	// A rehash based on a stale hash must not undo a password change made in between.
	if err := d.UpdatePasswordHash(ctx, u.ID, "stale", "rehashed"); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.UserByID(ctx, u.ID); got.PasswordHash != "hash-of-alice" {
		t.Errorf("hash = %q after a stale rehash", got.PasswordHash)
	}
	if err := d.UpdatePasswordHash(ctx, u.ID, "hash-of-alice", "rehashed"); err != nil {
		t.Fatal(err)
	}
	got, _ := d.UserByID(ctx, u.ID)
	if got.PasswordHash != "rehashed" {
		t.Errorf("hash = %q, want rehashed", got.PasswordHash)
	}
	got.PasswordHash = u.PasswordHash
	if !reflect.DeepEqual(got, u) {
		t.Errorf("rehash changed more than the hash: %+v, was %+v", got, u)
	}
}

func TestTimeFormatSortsAsTime(t *testing.T) {
	a := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("east", 5*3600))
	b := a.Add(time.Millisecond)
	if !(FormatTime(a) < FormatTime(b)) {
		t.Errorf("%s does not sort before %s", FormatTime(a), FormatTime(b))
	}
	got, err := ParseTime(FormatTime(a))
	if err != nil || !got.Equal(a) {
		t.Errorf("ParseTime(FormatTime(a)) = %v, %v; want %v", got, err, a)
	}
}

func TestLastAdminIsProtected(t *testing.T) {
	ctx := context.Background()
	mkAdmin := func(t *testing.T, d *DB, name string) User {
		t.Helper()
		u, err := d.CreateUser(ctx, admin(name), Event{At: t0})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}

	t.Run("the only admin can be neither demoted nor disabled", func(t *testing.T) {
		d := openTest(t)
		root := mkAdmin(t, d, "root")
		s := mkSession(t, d, root.ID, StageFull, t0)
		mkUser(t, d, "alice")
		before := snapshot(t, d)
		if err := d.SetRole(ctx, root.ID, RoleStaff, event("user.role", t0)); !errors.Is(err, ErrLastAdmin) {
			t.Errorf("SetRole: err = %v, want ErrLastAdmin", err)
		}
		if _, err := d.DisableUser(ctx, root.ID, event("user.disabled", t0)); !errors.Is(err, ErrLastAdmin) {
			t.Errorf("DisableUser: err = %v, want ErrLastAdmin", err)
		}
		assertSameSnapshot(t, before, snapshot(t, d))
		if ids := sessionIDs(t, d, root.ID); !slices.Equal(ids, []int64{s.ID}) {
			t.Errorf("root's sessions = %v", ids)
		}
	})
	t.Run("with a second admin one can be demoted, then the other is the last", func(t *testing.T) {
		d := openTest(t)
		a := mkAdmin(t, d, "a")
		b := mkAdmin(t, d, "b")
		if err := d.SetRole(ctx, a.ID, RolePublisher, event("user.role", t0)); err != nil {
			t.Fatal(err)
		}
		if u, _ := d.UserByID(ctx, a.ID); u.Role != RolePublisher {
			t.Errorf("role = %q", u.Role)
		}
		if evs, _ := d.ListEvents(ctx, AuditFilter{Kind: "user.role"}); len(evs) != 1 || evs[0].Detail != "admin → publisher" {
			t.Errorf("audit = %+v", evs)
		}
		if err := d.SetRole(ctx, b.ID, RoleStaff, Event{At: t0}); !errors.Is(err, ErrLastAdmin) {
			t.Errorf("demoting the last admin: err = %v, want ErrLastAdmin", err)
		}
	})
	t.Run("a disabled admin does not count as an admin", func(t *testing.T) {
		d := openTest(t)
		a := mkAdmin(t, d, "a")
		b := mkAdmin(t, d, "b")
		mkSession(t, d, a.ID, StageFull, t0)
		n, err := d.DisableUser(ctx, a.ID, event("user.disabled", t0))
		if err != nil || n != 1 {
			t.Fatalf("DisableUser = %d, %v; want 1 session ended", n, err)
		}
		if u, _ := d.UserByID(ctx, a.ID); !u.Disabled {
			t.Error("a not disabled")
		}
		if _, err := d.DisableUser(ctx, b.ID, Event{At: t0}); !errors.Is(err, ErrLastAdmin) {
			t.Errorf("disabling the last active admin: err = %v, want ErrLastAdmin", err)
		}
		if err := d.SetRole(ctx, b.ID, RoleStaff, Event{At: t0}); !errors.Is(err, ErrLastAdmin) {
			t.Errorf("demoting the last active admin: err = %v, want ErrLastAdmin", err)
		}
		// Demoting the disabled one leaves the active admin count as it was.
		if err := d.SetRole(ctx, a.ID, RoleStaff, Event{At: t0}); err != nil {
			t.Errorf("demoting a disabled admin: %v", err)
		}
	})
	t.Run("unknown users and roles are refused", func(t *testing.T) {
		d := openTest(t)
		u := mkUser(t, d, "alice")
		if err := d.SetRole(ctx, u.ID+100, RoleStaff, Event{At: t0}); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetRole of a missing user: err = %v, want ErrNotFound", err)
		}
		if _, err := d.DisableUser(ctx, u.ID+100, Event{At: t0}); !errors.Is(err, ErrNotFound) {
			t.Errorf("DisableUser of a missing user: err = %v, want ErrNotFound", err)
		}
		if err := d.SetRole(ctx, u.ID, "root", Event{At: t0}); err == nil {
			t.Error("SetRole accepted an unknown role")
		}
		if got, _ := d.UserByID(ctx, u.ID); got.Role != RoleStaff {
			t.Errorf("role = %q", got.Role)
		}
	})
}

// TestDisablingADisabledAdminIsNotRefused: an admin who is disabled already is no active
// admin, so disabling them again (which ends any session left) removes none.
func TestDisablingADisabledAdminIsNotRefused(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	root, err := d.CreateUser(ctx, admin("root"), Event{At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetDisabled(ctx, root.ID, true, Event{At: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DisableUser(ctx, root.ID, event("user.disabled", t0)); err != nil {
		t.Errorf("disabling a disabled admin: %v, want it done", err)
	}
	if n := auditCount(t, d, "user.disabled"); n != 1 {
		t.Errorf("%d user.disabled rows, want 1", n)
	}
	// Deleting or demoting them removes no active admin either.
	if err := d.SetRole(ctx, root.ID, RoleStaff, Event{At: t0}); err != nil {
		t.Errorf("demoting a disabled admin: %v", err)
	}
	if err := d.DeleteUser(ctx, root.ID, Event{At: t0}); err != nil {
		t.Errorf("deleting a disabled admin: %v", err)
	}
}

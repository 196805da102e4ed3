package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
)

// TestUniqueViolationIsReadFromTheErrorCode: a duplicate is told by the driver's error code,
// not by words in a message, which a trigger (or any text that reaches an error) can hold.
func TestUniqueViolationIsReadFromTheErrorCode(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	trigger := `CREATE TRIGGER groups_no_reserved BEFORE INSERT ON groups
		WHEN NEW.name = 'reserved' BEGIN SELECT RAISE(ABORT, 'UNIQUE constraint failed: groups.name'); END`
	if d.IsPostgres() {
		trigger = `CREATE FUNCTION no_reserved() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'duplicate key value violates unique constraint "groups_name_key"'; END $$;
			CREATE TRIGGER groups_no_reserved BEFORE INSERT ON groups
			FOR EACH ROW WHEN (NEW.name = 'reserved') EXECUTE FUNCTION no_reserved()`
	}
	if _, err := d.write.ExecContext(ctx, trigger); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateGroup(ctx, "ops", event("group.created", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateGroup(ctx, "OPS", event("group.created", t0)); !errors.Is(err, ErrDuplicate) {
		t.Errorf("a taken group name: %v, want ErrDuplicate", err)
	}
	_, err := d.CreateGroup(ctx, "reserved", event("group.created", t0))
	if err == nil || errors.Is(err, ErrDuplicate) {
		t.Errorf("a trigger's refusal that quotes a unique failure: %v, want it reported as it is", err)
	}
	if err := d.SetKeyCanary(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := d.SetKeyCanary(ctx, []byte("two")); !errors.Is(err, ErrDuplicate) {
		t.Errorf("a second canary (primary key taken): %v, want ErrDuplicate", err)
	}
	for _, err := range []error{
		errors.New("UNIQUE constraint failed: users.username_key"),
		fmt.Errorf("db: wrapped: %w", errors.New("UNIQUE constraint failed: sessions.id")),
	} {
		if isUniqueViolation(err) {
			t.Errorf("%q, not from the driver, is taken for a constraint failure", err)
		}
	}
}

// TestRandomIDCollisionIsRetried: a drawn id that is taken is drawn again, and a unique
// failure on another column is not mistaken for one.
func TestRandomIDCollisionIsRetried(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	u := mkUser(t, d, "amy")
	s := mkSession(t, d, u.ID, StageFull, t0)
	draws := []int64{s.ID, s.ID + 2}
	drawRowID = func() (int64, error) { id := draws[0]; draws = draws[1:]; return id, nil }
	t.Cleanup(func() { drawRowID = newRowID })
	var id int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = insertRandomID(ctx, tx, `INSERT INTO sessions (id, token_hash, user_id, stage, created_at,
			last_seen_at) VALUES (?, ?, ?, 'full', ?, ?)`, newTokenHash(t), u.ID, FormatTime(t0), FormatTime(t0))
		return err
	})
	if err != nil || id != s.ID+2 {
		t.Errorf("insert after a collision: id %d, %v; want %d", id, err, s.ID+2)
	}
}

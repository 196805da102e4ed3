package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/db"
)

// noticeWorld is a database with a publisher, an admin, a staff member and a group.
type noticeWorld struct {
	path                 string
	store                *db.DB
	pub, root, sam, olga db.User
	night                db.Group
}

func newNoticeWorld(t *testing.T) noticeWorld {
	t.Helper()
	w := noticeWorld{path: newDatabase(t)}
	w.store = openDB(t, w.path)
	w.pub = addUser(t, w.store, "pub", db.RolePublisher)
	w.root = addUser(t, w.store, "root", db.RoleAdmin)
	w.sam = addUser(t, w.store, "sam", db.RoleStaff)
	w.olga = addUser(t, w.store, "olga", db.RolePublisher)
	var err error
	if w.night, err = w.store.CreateGroup(context.Background(), "Night Shift", db.Event{At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := w.store.AddGroupMember(context.Background(), w.night.ID, w.sam.ID, db.Event{At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return w
}

// post runs notice post with stdin as the body and the given extra flags.
func (w noticeWorld) post(t *testing.T, stdin string, extra ...string) (string, error) {
	t.Helper()
	args := append([]string{"notice", "post", "--db", w.path, "--as", "pub", "--title", "Deploy at noon",
		"--body-file", "-", "--kind", "must_read", "--severity", "warning"}, extra...)
	out, _, err := runIn(t, nil, stdin, args...)
	return out, err
}

func (w noticeWorld) notice(t *testing.T, out string) db.Notice {
	t.Helper()
	id, err := strconv.ParseInt(strings.TrimSuffix(out, "\n"), 10, 64)
	if err != nil || out != strconv.FormatInt(id, 10)+"\n" {
		t.Fatalf("stdout %q is not just the new notice's id", out)
	}
	n, err := w.store.NoticeByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNoticePost(t *testing.T) {
	w := newNoticeWorld(t)
	ctx := context.Background()

	t.Run("it prints only the id, and the notice is the web's: everyone by default, starting now", func(t *testing.T) {
		before := time.Now()
		out, err := w.post(t, "Expect a minute\r\nof downtime.\n")
		if err != nil {
			t.Fatal(err)
		}
		n := w.notice(t, out)
		if n.Title != "Deploy at noon" || n.Body != "Expect a minute\nof downtime." || n.Kind != db.NoticeMustRead ||
			n.Severity != db.SeverityWarning || !n.Audience.Everyone || n.AuthorID != w.pub.ID || !n.EndsAt.IsZero() {
			t.Errorf("notice %+v", n)
		}
		if n.StartsAt.Before(before.Add(-time.Second)) || n.StartsAt.After(time.Now()) {
			t.Errorf("starts at %v, want now", n.StartsAt)
		}
		evs, err := w.store.ListEvents(ctx, db.AuditFilter{Kind: "notice.posted"})
		if err != nil || len(evs) != 1 || evs[0].Actor != "pub" || evs[0].ActorID != w.pub.ID ||
			evs[0].Subject != "notice "+strconv.FormatInt(n.ID, 10) || evs[0].ClientAddr != "local" {
			t.Errorf("audit %+v, %v; want notice.posted by pub from local", evs, err)
		}
	})
	t.Run("with mail configured, --email has serve mail it to the audience when it starts", func(t *testing.T) {
		out, err := w.post(t, "Read this.\n", "--email", "--smtp-addr", "127.0.0.1:2525", "--smtp-from", "portal@example.com",
			"--smtp-tls", "none")
		if err != nil {
			t.Fatal(err)
		}
		if n := w.notice(t, out); !n.Email {
			t.Errorf("notice %+v was stored without its mail flag", n)
		}
	})
	t.Run("reminders, a due date and renewal, as the form takes them", func(t *testing.T) {
		out, err := w.post(t, "Read and confirm.\n", "--remind", "weekly", "--due-at", "2031-03-09T17:00:00Z",
			"--renew-every", "365d", "--smtp-addr", "127.0.0.1:2525", "--smtp-from", "portal@example.com", "--smtp-tls", "none")
		if err != nil {
			t.Fatal(err)
		}
		n := w.notice(t, out)
		if n.Remind != db.RemindWeekly || !n.DueAt.Equal(time.Date(2031, 3, 9, 17, 0, 0, 0, time.UTC)) ||
			n.RenewEvery != 365*24*time.Hour {
			t.Errorf("remind %q, due %v, renew %v", n.Remind, n.DueAt, n.RenewEvery)
		}
		out, err = w.post(t, "No mail needed.\n", "--due-at", "2031-03-09T17:00:00Z", "--renew-every", "30d")
		if err != nil {
			t.Fatalf("a due date and renewal need no mail: %v", err)
		}
		if n := w.notice(t, out); n.Remind != db.RemindNone || n.RenewEvery != 30*24*time.Hour {
			t.Errorf("remind %q, renew %v", n.Remind, n.RenewEvery)
		}
	})
	t.Run("the body comes from a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "body.txt")
		if err := os.WriteFile(file, []byte("From a file.\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, _, err := runIn(t, nil, "", "notice", "post", "--db", w.path, "--as", "root", "--title", "T", "--body-file", file,
			"--kind", "normal", "--severity", "info")
		if err != nil {
			t.Fatal(err)
		}
		if n := w.notice(t, out); n.Body != "From a file." || n.AuthorID != w.root.ID {
			t.Errorf("notice %+v", n)
		}
	})
	t.Run("audiences as the form takes them, and groups by name", func(t *testing.T) {
		id := strconv.FormatInt(w.night.ID, 10)
		for _, tc := range []struct {
			values []string
			want   db.Audience
		}{
			{[]string{"role:staff", "role:admin"}, db.Audience{Roles: []string{"admin", "staff"}}}, // stored roles read back by name
			{[]string{"group:" + id}, db.Audience{GroupIDs: []int64{w.night.ID}}},
			{[]string{"group:night shift", "role:staff"}, db.Audience{Roles: []string{"staff"}, GroupIDs: []int64{w.night.ID}}},
			{[]string{"group:Night Shift", "everyone"}, db.Audience{Everyone: true}},
		} {
			var extra []string
			for _, v := range tc.values {
				extra = append(extra, "--audience", v)
			}
			out, err := w.post(t, "b", extra...)
			if err != nil {
				t.Fatalf("%v: %v", tc.values, err)
			}
			if got := w.notice(t, out).Audience; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%v: audience %+v, want %+v", tc.values, got, tc.want)
			}
		}
	})
	t.Run("times in RFC 3339, or datetime-local in --timezone", func(t *testing.T) {
		out, _, err := runIn(t, nil, "b", "notice", "post", "--db", w.path, "--as", "pub", "--title", "T", "--body-file", "-",
			"--kind", "normal", "--severity", "info", "--timezone", "Europe/Berlin",
			"--starts-at", "2031-03-02T12:00", "--ends-at", "2031-03-02T18:00:00+05:00")
		if err != nil {
			t.Fatal(err)
		}
		n := w.notice(t, out)
		if want := time.Date(2031, 3, 2, 11, 0, 0, 0, time.UTC); !n.StartsAt.Equal(want) {
			t.Errorf("starts at %v, want %v", n.StartsAt, want)
		}
		if want := time.Date(2031, 3, 2, 13, 0, 0, 0, time.UTC); !n.EndsAt.Equal(want) {
			t.Errorf("ends at %v, want %v", n.EndsAt, want)
		}
	})
}

// Every refusal is one line naming what was wrong, and posts nothing.
func TestNoticePostRefusals(t *testing.T) {
	w := newNoticeWorld(t)
	if err := os.WriteFile(filepath.Join(filepath.Dir(w.path), "huge.txt"), make([]byte, maxBodyFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.SetDisabled(context.Background(), w.olga.ID, true, db.Event{At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	before := dumpTables(t, w.path)
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  []string
		usage bool
	}{
		{"a bad kind", "b", []string{"--kind", "urgent"}, []string{`--kind "urgent"`, "normal or must_read"}, true},
		{"a bad severity", "b", []string{"--severity", "fatal"}, []string{`--severity "fatal"`, "info, warning or critical"}, true},
		{"an audience that is no audience", "b", []string{"--audience", "staff"}, []string{`--audience "staff"`, "role:NAME"}, true},
		{"an unknown role", "b", []string{"--audience", "role:boss"}, []string{`--audience "role:boss"`, "no such role"}, true},
		{"an unknown group", "b", []string{"--audience", "group:day shift"}, []string{`"group:day shift"`, "no such group"}, false},
		{"an unknown group id", "b", []string{"--audience", "group:999"}, []string{`"group:999"`, "no such group"}, false},
		{"a start that is no time", "b", []string{"--starts-at", "tomorrow"}, []string{`--starts-at "tomorrow"`, "RFC 3339"}, true},
		{"an end that is no time", "b", []string{"--ends-at", "2031-02-30T10:00"}, []string{`--ends-at "2031-02-30T10:00"`, "RFC 3339"}, true},
		{"an end before the start", "b", []string{"--starts-at", "2031-03-02T12:00:00Z", "--ends-at", "2031-03-02T11:00:00Z"},
			[]string{"--ends-at", "after the start"}, false},
		{"an end that has passed", "b", []string{"--starts-at", "2020-03-02T12:00:00Z", "--ends-at", "2020-03-03T12:00:00Z"},
			[]string{"--ends-at", "in the past"}, false},
		{"an empty body", "  \n", nil, []string{"--body-file -", "Write the message"}, false},
		{"a body over the form's limit", strings.Repeat("b", 10001), nil, []string{"--body-file -", "at most 10000 characters"}, false},
		{"a body over 1 MiB", "", []string{"--body-file", filepath.Join(filepath.Dir(w.path), "huge.txt")}, []string{"over 1 MiB"}, false},
		{"a body that is not UTF-8", "caf\xe9", nil, []string{"--body-file -", "UTF-8"}, false},
		{"a title on two lines", "b", []string{"--title", "Deploy\nnow"}, []string{"--title", "one line"}, false},
		{"a title over the limit", "b", []string{"--title", strings.Repeat("t", 201)}, []string{"--title", "at most 200"}, false},
		{"a body file that is not there", "", []string{"--body-file", "/nonexistent/body.txt"}, []string{"--body-file", "no such file"}, false},
		{"staff may not post", "b", []string{"--as", "sam"}, []string{`--as "sam"`, "staff", "only publishers and admins"}, false},
		{"a disabled publisher may not post", "b", []string{"--as", "olga"}, []string{`--as "olga"`, "disabled"}, false},
		{"an unknown author", "b", []string{"--as", "nobody"}, []string{`--as "nobody"`, "no such user"}, false},
		{"no author", "b", []string{"--as", ""}, []string{"--as is required"}, true},
		{"no kind", "b", []string{"--kind", ""}, []string{"--kind is required"}, true},
		{"email without mail", "b", []string{"--email"}, []string{"mail is not configured"}, false},
		{"reminders without mail", "b", []string{"--remind", "daily"}, []string{"--remind", "mail", "not configured"}, false},
		{"a bad reminder", "b", []string{"--remind", "hourly", "--smtp-addr", "127.0.0.1:2525", "--smtp-from", "p@example.com",
			"--smtp-tls", "none"}, []string{`--remind "hourly"`, "none, daily or weekly"}, true},
		{"reminders on a normal notice", "b", []string{"--kind", "normal", "--renew-every", "30d"},
			[]string{"--renew-every", "only a must-read notice"}, true},
		{"a due date that is no time", "b", []string{"--due-at", "friday"}, []string{`--due-at "friday"`, "RFC 3339"}, true},
		{"a due date before the start", "b", []string{"--starts-at", "2031-03-02T12:00:00Z", "--due-at", "2031-03-01T12:00:00Z"},
			[]string{"--due-at", "after the start"}, false},
		{"a renewal under a day", "b", []string{"--renew-every", "2h"}, []string{`--renew-every "2h"`, "at most once a day"}, false},
		{"a renewal that is no duration", "b", []string{"--renew-every", "yearly"}, []string{`--renew-every "yearly"`, "365d"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := w.post(t, tc.stdin, tc.args...)
			assertOneLine(t, err, tc.want...)
			if errors.Is(err, errUsage) != tc.usage {
				t.Errorf("usage error: %v, want %v (%v)", errors.Is(err, errUsage), tc.usage, err)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
	if after := dumpTables(t, w.path); !reflect.DeepEqual(before, after) {
		t.Errorf("a refused post changed the database")
	}
}

func TestNoticeList(t *testing.T) {
	w := newNoticeWorld(t)
	ctx := context.Background()
	mustRead, err := w.post(t, "b", "--audience", "group:Night Shift", "--ends-at", "2031-01-01T00:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	n := w.notice(t, mustRead)
	if err := w.store.AckNotice(ctx, n.ID, w.sam, db.Event{At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runIn(t, nil, "b", "notice", "post", "--db", w.path, "--as", "root", "--title", "Later", "--body-file", "-",
		"--kind", "normal", "--severity", "info", "--audience", "role:staff", "--audience", "role:admin",
		"--starts-at", "2031-01-01T00:00:00Z"); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, "", "notice", "list", "--json", "--db", w.path)
	var got []noticeJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not a JSON array of notices: %v\n%s", err, out)
	}
	if len(got) != 2 {
		t.Fatalf("%d notices, want 2: %s", len(got), out)
	}
	later, deploy := got[0], got[1]
	want := noticeJSON{ID: n.ID, Title: "Deploy at noon", Kind: "must_read", Severity: "warning", Audience: []string{"group Night Shift"},
		State: "showing", Author: "pub", StartsAt: jsonTime(n.StartsAt), EndsAt: strPtr("2031-01-01T00:00:00Z"), Acknowledged: 1, Readers: 1}
	if !reflect.DeepEqual(deploy, want) {
		t.Errorf("got  %+v\nwant %+v", deploy, want)
	}
	if later.State != "scheduled" || later.Author != "root" || later.EndsAt != nil || later.ArchivedAt != nil ||
		!reflect.DeepEqual(later.Audience, []string{"role admin", "role staff"}) || later.Readers != 2 || later.Acknowledged != 0 {
		t.Errorf("the scheduled notice: %+v", later)
	}

	t.Run("every field is present, a missing time is null", func(t *testing.T) {
		var raw []map[string]any
		if err := json.Unmarshal([]byte(out), &raw); err != nil {
			t.Fatal(err)
		}
		keys := []string{"id", "title", "kind", "severity", "audience", "state", "author", "starts_at", "ends_at",
			"archived_at", "acknowledged", "readers"}
		for _, row := range raw {
			if len(row) != len(keys) {
				t.Errorf("row %v has %d fields, want %d", row, len(row), len(keys))
			}
			for _, k := range keys {
				if _, ok := row[k]; !ok {
					t.Errorf("row %v lacks %q", row, k)
				}
			}
		}
		if v, ok := raw[0]["ends_at"]; !ok || v != nil {
			t.Errorf("ends_at of a notice without an end: %v, want null", v)
		}
	})
	t.Run("the table shows the same", func(t *testing.T) {
		out := mustRun(t, "", "notice", "list", "--db", w.path, "--timezone", "UTC")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") {
			t.Fatalf("table:\n%s", out)
		}
		for _, want := range []string{"showing", "must_read", "warning", "2031-01-01 00:00", "1 of 1", "group Night Shift", "Deploy at noon"} {
			if !strings.Contains(lines[2], want) {
				t.Errorf("the deploy row lacks %q: %s", want, lines[2])
			}
		}
		if !strings.Contains(lines[1], "scheduled") || !strings.Contains(lines[1], "never") || !strings.Contains(lines[1], "role admin, role staff") {
			t.Errorf("the scheduled row: %s", lines[1])
		}
	})
	t.Run("an empty list is [] in JSON", func(t *testing.T) {
		if out := mustRun(t, "", "notice", "list", "--json", "--db", newDatabase(t)); out != "[]\n" {
			t.Errorf("stdout %q, want []", out)
		}
	})
}

func TestNoticeArchive(t *testing.T) {
	w := newNoticeWorld(t)
	ctx := context.Background()
	out, err := w.post(t, "b")
	if err != nil {
		t.Fatal(err)
	}
	n := w.notice(t, out)
	id := strconv.FormatInt(n.ID, 10)

	t.Run("only its author or an admin may archive it", func(t *testing.T) {
		_, _, err := runCLI(t, "notice", "archive", "--db", w.path, "--as", "olga", id)
		assertOneLine(t, err, `--as "olga"`, "only the notice's author or an admin")
		_, _, err = runCLI(t, "notice", "archive", "--db", w.path, "--as", "sam", id)
		assertOneLine(t, err, `--as "sam"`, "only publishers and admins")
		if got, _ := w.store.NoticeByID(ctx, n.ID); !got.ArchivedAt.IsZero() {
			t.Fatal("a refused archive archived the notice")
		}
	})
	t.Run("its author archives it, audited in their name", func(t *testing.T) {
		if out := mustRun(t, "", "notice", "archive", "--db", w.path, "--as", "pub", id); !strings.Contains(out, "archived notice "+id) {
			t.Errorf("stdout %q", out)
		}
		if got, _ := w.store.NoticeByID(ctx, n.ID); got.ArchivedAt.IsZero() {
			t.Fatal("the notice is not archived")
		}
		evs, err := w.store.ListEvents(ctx, db.AuditFilter{Kind: "notice.archived"})
		if err != nil || len(evs) != 1 || evs[0].Actor != "pub" || evs[0].ClientAddr != "local" {
			t.Errorf("audit %+v, %v", evs, err)
		}
	})
	t.Run("archiving twice changes nothing", func(t *testing.T) {
		if out := mustRun(t, "", "notice", "archive", "--db", w.path, "--as", "root", id); !strings.Contains(out, "archived already") {
			t.Errorf("stdout %q", out)
		}
	})
	t.Run("an unknown or malformed id", func(t *testing.T) {
		_, _, err := runCLI(t, "notice", "archive", "--db", w.path, "--as", "root", "999")
		assertOneLine(t, err, "no notice 999")
		_, _, err = runCLI(t, "notice", "archive", "--db", w.path, "--as", "root", "first")
		if !errors.Is(err, errUsage) {
			t.Errorf("a malformed id: %v, want a usage error", err)
		}
	})
}

package handlers

import (
	"context"
	"encoding/csv"
	"fmt"
	"gatehouse/internal/dbtest"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/internal/testkit"
	"gatehouse/views"
)

// dumpAll snapshots every table except the named ones, row by row, as text.
func dumpAll(tb testing.TB, a *testApp, except ...string) map[string]string {
	tb.Helper()
	raw := a.rawDB()
	tables, err := a.db.Tables(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]string{}
	for _, table := range tables {
		skip := false
		for _, e := range except {
			skip = skip || e == table
		}
		if skip {
			continue
		}
		r, err := raw.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			tb.Fatal(err)
		}
		cols, _ := r.Columns()
		var lines []string
		for r.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			_ = r.Scan(ptrs...)
			lines = append(lines, fmt.Sprint(vals...))
		}
		r.Close()
		sort.Strings(lines)
		out[table] = strings.Join(lines, "\n")
	}
	return out
}

func TestSignEveryoneOut(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	a.createUser("bob", db.RoleStaff, "correct horse battery")
	alice := a.client()
	alice.login("alice", "correct horse battery")
	secret, _ := alice.enroll(t)
	bob := a.client()
	bob.login("bob", "correct horse battery")
	admin := a.client()
	admin.login("root", "correct horse battery")

	page := body(t, admin.get("/admin/sessions"))
	if !strings.Contains(page, "This ends 2 sessions (everyone's but yours). Accounts, passwords and two-step verification are untouched") {
		t.Fatalf("the confirmation does not state exactly what happens: %.3000s", page)
	}
	// The health counters are left out: they count the stale cookies of the requests that
	// follow (bob's), which the revoke itself does not write.
	before := dumpAll(t, a, "sessions", "audit_log", "event_counts")

	t.Run("the phrase must be typed", func(t *testing.T) {
		admin.get("/admin/sessions")
		wantStatus(t, admin.post("/admin/sessions/revoke-all", url.Values{"confirm": {"yes"}, "expected": {"2"}}), http.StatusUnprocessableEntity)
		wantStatus(t, bob.get("/"), http.StatusOK)
	})
	t.Run("more sessions than shown aborts", func(t *testing.T) {
		extra := a.client()
		extra.login("bob", "correct horse battery")
		admin.get("/admin/sessions")
		wantStatus(t, admin.post("/admin/sessions/revoke-all", url.Values{"confirm": {"Sign everyone out"}, "expected": {"2"}}), http.StatusConflict)
		wantStatus(t, extra.get("/"), http.StatusOK)
	})
	admin.get("/admin/sessions")
	wantRedirect(t, admin.post("/admin/sessions/revoke-all", url.Values{"confirm": {" sign  everyone out "}, "expected": {"3"}}), "/admin/sessions")
	wantRedirect(t, bob.get("/"), "/login")
	wantStatus(t, admin.get("/admin"), http.StatusOK)
	if after := dumpAll(t, a, "sessions", "audit_log", "event_counts"); fmt.Sprint(after) != fmt.Sprint(before) {
		for k := range after {
			if after[k] != before[k] {
				t.Errorf("table %s changed", k)
			}
		}
	}
	a.advance(time.Minute)
	wantRedirect(t, a.client().loginMFA("alice", "correct horse battery", auth.TOTPCode(secret, a.clock())), "/")
	wantRedirect(t, a.client().login("bob", "correct horse battery"), "/")
	evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "sessions.revoked_all"})
	if len(evs) != 1 || evs[0].Actor != "root" || !strings.Contains(evs[0].Detail, "3 sessions ended") {
		t.Fatalf("audit %+v", evs)
	}
}

func TestBulkMFAResetForAGroup(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	ctx := context.Background()
	g, _ := a.db.CreateGroup(ctx, "night shift", db.Event{At: a.clock()})
	var members []*client
	for _, name := range []string{"n1", "n2", "n3"} {
		u := a.createUser(name, db.RoleStaff, "correct horse battery")
		_ = a.db.AddGroupMember(ctx, g.ID, u.ID, db.Event{At: a.clock()})
		c := a.client()
		c.login(name, "correct horse battery")
		members = append(members, c)
	}
	members[0].enroll(t)
	members[1].enroll(t)
	outsider := a.createUser("day", db.RoleStaff, "correct horse battery")
	oc := a.client()
	oc.login("day", "correct horse battery")
	oc.enroll(t)
	admin := a.client()
	admin.login("root", "correct horse battery")
	gid := strconv.FormatInt(g.ID, 10)
	if b := body(t, admin.get("/admin/groups/"+gid+"/reset-mfa")); !strings.Contains(b, "of 2 members of night shift") {
		t.Fatalf("count not shown: %.2000s", b)
	}
	t.Run("a third member enrolling meanwhile aborts", func(t *testing.T) {
		members[2].enroll(t)
		admin.get("/admin/groups/" + gid + "/reset-mfa")
		wantStatus(t, admin.post("/admin/groups/"+gid+"/reset-mfa", url.Values{"confirm": {"night shift"}, "expected": {"2"}}), http.StatusConflict)
		for _, name := range []string{"n1", "n2", "n3"} {
			if u, _ := a.db.UserByUsername(ctx, name); !u.HasMFA() {
				t.Fatalf("%s lost MFA in an aborted bulk action", name)
			}
		}
	})
	admin.get("/admin/groups/" + gid + "/reset-mfa")
	wantRedirect(t, admin.post("/admin/groups/"+gid+"/reset-mfa", url.Values{"confirm": {"night shift"}, "expected": {"3"}}), "/admin/groups/"+gid)
	for _, name := range []string{"n1", "n2", "n3"} {
		if u, _ := a.db.UserByUsername(ctx, name); u.HasMFA() {
			t.Fatalf("%s kept MFA", name)
		}
	}
	if u, _ := a.db.UserByID(ctx, outsider.ID); !u.HasMFA() {
		t.Fatal("a non-member lost MFA")
	}
	wantRedirect(t, members[0].get("/"), "/login")
	evs, _ := a.db.ListEvents(ctx, db.AuditFilter{Kind: "mfa.reset"})
	if len(evs) != 3 {
		t.Fatalf("%d reset audit rows, want one per member", len(evs))
	}
}

func TestUserDeletion(t *testing.T) {
	a := newTestApp(t)
	root := a.createUser("root", db.RoleAdmin, "correct horse battery")
	bob := a.createUser("bob", db.RoleStaff, "correct horse battery")
	b := a.client()
	b.login("bob", "correct horse battery")
	admin := a.client()
	admin.login("root", "correct horse battery")
	nid := admin.postNotice(t, noticeForm("Hi", "there", "must_read", "everyone"))
	b.get("/")
	b.post("/notices/"+strconv.FormatInt(nid, 10)+"/ack", nil)

	rid, bid := strconv.FormatInt(root.ID, 10), strconv.FormatInt(bob.ID, 10)
	admin.get("/admin/users/" + rid + "/delete")
	wantStatus(t, admin.post("/admin/users/"+rid+"/delete", url.Values{"confirm": {"root"}, "expected": {"1"}}), http.StatusConflict)
	admin.get("/admin/users/" + bid + "/delete")
	wantStatus(t, admin.post("/admin/users/"+bid+"/delete", url.Values{"confirm": {"bobby"}, "expected": {"1"}}), http.StatusUnprocessableEntity)
	wantRedirect(t, admin.post("/admin/users/"+bid+"/delete", url.Values{"confirm": {"bob"}, "expected": {"1"}}), "/admin/users")
	wantRedirect(t, b.get("/"), "/login")
	var acks int
	_ = a.rawDB().QueryRow(`SELECT COUNT(*) FROM notice_acks`).Scan(&acks)
	if acks != 0 {
		t.Fatal("the deleted user's receipts remain")
	}
	evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Subject: "bob"})
	if len(evs) < 2 {
		t.Fatal("audit rows about bob were lost")
	}
}

func TestEachAuditedActionWritesOneRow(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	bob := a.createUser("bob", db.RoleStaff, "correct horse battery")
	a.createUser("deputy", db.RoleAdmin, "correct horse battery")
	admin := a.client()
	admin.login("root", "correct horse battery")
	bc := a.client()
	bc.login("bob", "correct horse battery")
	bc.enroll(t)
	g, _ := a.db.CreateGroup(context.Background(), "crew", db.Event{At: a.clock()})
	uid, gid := strconv.FormatInt(bob.ID, 10), strconv.FormatInt(g.ID, 10)

	for _, tc := range []struct {
		kind, path, subject string
		form                url.Values
	}{
		{"user.disabled", "/admin/users/" + uid + "/disable", "bob", nil},
		{"user.enabled", "/admin/users/" + uid + "/enable", "bob", nil},
		{"user.unlocked", "/admin/users/" + uid + "/unlock", "bob", nil},
		{"sessions.revoked", "/admin/users/" + uid + "/revoke-sessions", "bob", nil},
		{"mfa.reset", "/admin/users/" + uid + "/reset-mfa", "bob", nil},
		{"user.role_changed", "/admin/users/" + uid + "/role", "bob", url.Values{"role": {"publisher"}}},
		{"user.created", "/admin/users", "carol", url.Values{"username": {"carol"}, "role": {"staff"}, "password": {"initial secret phrase"}}},
		{"group.created", "/admin/groups", "ops", url.Values{"name": {"ops"}}},
		{"group.member_added", "/admin/groups/" + gid + "/members", "bob", url.Values{"username": {"bob"}}},
		{"group.member_removed", "/admin/groups/" + gid + "/members/" + uid + "/remove", "user " + uid, nil},
		{"notice.posted", "/admin/notices", "notice ", noticeForm("T", "B", "normal", "everyone")},
		{"mfa.policy_changed", "/admin/mfa-policy", "role staff", url.Values{"scope": {"role:staff"}, "mode": {"optional"}, "confirm": {"1"}}},
		{"mfa.enforcement_paused", "/admin/mfa-policy/pause", "mfa policy", nil},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			before, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: tc.kind})
			admin.get("/admin")
			resp := admin.post(tc.path, tc.form)
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("status %d: %.500s", resp.StatusCode, body(t, resp))
			}
			after, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: tc.kind})
			if len(after) != len(before)+1 {
				t.Fatalf("%d new rows, want 1", len(after)-len(before))
			}
			ev := after[0]
			if ev.Actor != "root" || !strings.HasPrefix(ev.Subject, tc.subject) || ev.ClientAddr == "" || ev.RequestID == "" {
				t.Fatalf("row %+v", ev)
			}
		})
	}
}

func TestHealthPanelCounts(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	a.createUser("victim", db.RoleStaff, "correct horse battery")
	a.e.GET("/test/fail", func(c echo.Context) error { return fmt.Errorf("boom") })
	for i := 0; i <= lockAfter; i++ { // ten failures, then one throttled attempt
		c := a.client()
		c.get("/login")
		c.post("/login", url.Values{"username": {"victim"}, "password": {"nope nope nope"}})
	}
	stale := a.client()
	stale.jar.SetCookies(baseURL, []*http.Cookie{{Name: "gatehouse_session", Value: auth.NewToken()}})
	stale.get("/")
	cross := a.client()
	cross.get("/login")
	cross.fetchSite = "cross-site"
	cross.post("/login", url.Values{"username": {"x"}, "password": {"y"}})
	admin := a.client()
	admin.login("root", "correct horse battery")
	admin.get("/test/fail")

	page := body(t, admin.get("/admin"))
	for label, want := range map[string]int{"Failed sign-ins": lockAfter, "Throttled attempts": 1,
		"Stale cookies cleared": 1, "Refused forms (CSRF)": 1, "Server errors (5xx)": 1, "Refused code replays": 0} {
		re := regexp.MustCompile(`<th scope="row">` + regexp.QuoteMeta(label) + `</th><td>(\d+)</td><td>(\d+)</td>`)
		m := re.FindStringSubmatch(page)
		if m == nil || m[1] != strconv.Itoa(want) || m[2] != strconv.Itoa(want) {
			t.Errorf("%s: %v, want %d", label, m, want)
		}
	}
}

func TestCountersReachTheDatabase(t *testing.T) {
	a := newTestApp(t)
	k := newCounters(a.db, slogDiscard(), a.clock)
	k.add(countCSRF)
	k.add(countCSRF)
	k.add(countServerError)
	if got := k.pending(); got[countCSRF] != 2 || got[countServerError] != 1 {
		t.Fatalf("pending %v", got)
	}
	k.flush(context.Background())
	if got := k.pending(); len(got) != 0 {
		t.Fatalf("pending after flush %v", got)
	}
	saved, err := a.db.EventCountsSince(context.Background(), a.clock().Add(-time.Hour))
	if err != nil || saved[countCSRF] != 2 || saved[countServerError] != 1 {
		t.Fatalf("saved %v, %v", saved, err)
	}
	a.advance(2 * flushEvery)
	k.add(countCSRF) // due: flushes in the background
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if saved, _ := a.db.EventCountsSince(context.Background(), a.clock().Add(-time.Hour)); saved[countCSRF] == 3 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("a due flush did not happen")
}

// A process that stops loses the counts of its last half second, as a crash would, and
// says so without an error: the database closing before the last flush is how stopping goes.
func TestCountsLeftAtShutdownAreNoError(t *testing.T) {
	store, err := db.Open(context.Background(), dbtest.DSN(t, migrateStore))
	if err != nil {
		t.Fatal(err)
	}
	log := &testkit.SyncBuffer{}
	k := newCounters(store, slog.New(slog.NewJSONHandler(log, nil)), time.Now)
	k.add(countCSRF)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(log.String(), "event counts not saved") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(log.String(), "event counts not saved") || strings.Contains(log.String(), `"level":"ERROR"`) {
		t.Fatalf("log after the store closed:\n%s", log.String())
	}
}

func TestAuditLog(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	a.createUser("staff", db.RoleStaff, "correct horse battery")
	for i := 0; i < 60; i++ {
		c := a.client()
		c.addr = "198.51.100." + strconv.Itoa(i) + ":4000" // spread, so the address limiter stays out of it
		c.get("/login")
		c.post("/login", url.Values{"username": {"ghost" + strconv.Itoa(i%3) + "-" + strconv.Itoa(i)}, "password": {"whatever"}})
		a.advance(time.Minute)
	}
	c := a.client()
	c.get("/login")
	c.post("/login", url.Values{"username": {"x\r\n2026-01-01T00:00:00Z admin login ok"}, "password": {"whatever"}})
	admin := a.client()
	admin.login("root", "correct horse battery")

	t.Run("staff cannot read it", func(t *testing.T) {
		s := a.client()
		s.login("staff", "correct horse battery")
		wantStatus(t, s.get("/admin/audit"), http.StatusForbidden)
		wantStatus(t, s.get("/admin/audit.csv"), http.StatusForbidden)
	})
	t.Run("no route changes audit rows", func(t *testing.T) {
		for _, r := range a.e.Routes() {
			if strings.Contains(r.Path, "audit") && r.Method != http.MethodGet {
				t.Errorf("route %s %s", r.Method, r.Path)
			}
		}
	})
	t.Run("filters and pages", func(t *testing.T) {
		b := body(t, admin.get("/admin/audit?kind=signin.*&outcome=failure&subject=ghost1"))
		if !strings.Contains(b, "20 events match") {
			t.Fatalf("count: %.300s", b[strings.Index(b, "role=\"status\""):])
		}
		b = body(t, admin.get("/admin/audit?kind=signin.password&outcome=failure"))
		if !strings.Contains(b, "61 events match") || !strings.Contains(b, `rel="next"`) {
			t.Fatal("no second page")
		}
		next := regexp.MustCompile(`href="(/admin/audit\?[^"]+)" rel="next"`).FindStringSubmatch(b)
		page2 := body(t, admin.get(strings.ReplaceAll(next[1], "&amp;", "&")))
		if n := strings.Count(page2, "<tr data-event-id="); n != 11 {
			t.Fatalf("second page has %d rows, want 11", n)
		}
		from := a.clock().Add(-10 * time.Minute).Format(views.FormTime)
		b = body(t, admin.get("/admin/audit?kind=signin.password&outcome=failure&from="+url.QueryEscape(from)))
		if !strings.Contains(b, "10 events match") && !strings.Contains(b, "11 events match") {
			t.Fatalf("time range: %.200s", b[strings.Index(b, "role=\"status\""):])
		}
	})
	t.Run("a forged line stays one escaped entry", func(t *testing.T) {
		b := body(t, admin.get("/admin/audit?kind=signin.password&subject=admin+login+ok"))
		if strings.Count(b, "<tr data-event-id=") != 1 || strings.Contains(b, "\r\n2026-01-01") {
			t.Fatal("the forged line was not neutralised")
		}
	})
	t.Run("CSV export", func(t *testing.T) {
		resp := admin.get("/admin/audit.csv?kind=signin.password&outcome=failure")
		wantStatus(t, resp, http.StatusOK)
		records, err := csv.NewReader(strings.NewReader(body(t, resp))).ReadAll()
		if err != nil || len(records) != 62 || records[0][0] != "id" {
			t.Fatalf("CSV: %d records, %v", len(records), err)
		}
	})
}

package handlers

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/db"
)

// Several serve processes on one database are one portal: what one of them, or any other
// writer, commits shows on every other at its next request or within a second. These
// tests run two portals on one file (each with its own connections, change signal and
// memory); cmd/gatehouse proves the same with real processes.

type twoProcesses struct {
	a, b         *testApp
	adminOnB     *client
	samOnA       *client
	sam, rootOnA db.User
}

func newTwoProcesses(t *testing.T) twoProcesses {
	a := newTestApp(t)
	root := a.createUser("root", db.RoleAdmin, "correct horse battery")
	sam := a.createUser("sam", db.RoleStaff, "correct horse battery")
	b := a.otherProcess()
	w := twoProcesses{a: a, b: b, sam: sam, rootOnA: root}
	w.adminOnB = b.client()
	w.adminOnB.login("root", "correct horse battery")
	w.samOnA = a.client()
	w.samOnA.login("sam", "correct horse battery")
	return w
}

func noticeID(tb testing.TB, resp *http.Response) string {
	tb.Helper()
	wantStatus(tb, resp, http.StatusSeeOther)
	m := regexp.MustCompile(`^/admin/notices/(\d+)`).FindStringSubmatch(resp.Header.Get("Location"))
	if m == nil {
		tb.Fatalf("no notice id in Location %q", resp.Header.Get("Location"))
	}
	return m[1]
}

func TestBannersFollowNoticesOfAnotherProcess(t *testing.T) {
	w := newTwoProcesses(t)
	if got := banners(t, w.samOnA.get("/")); len(got) != 0 {
		t.Fatalf("banners before any notice: %v", got) // and the copy is in memory now
	}
	w.adminOnB.get("/admin/notices")
	id := noticeID(t, w.adminOnB.post("/admin/notices", url.Values{"title": {"Deploy at noon"}, "body": {"Expect a minute of downtime."},
		"kind": {"must_read"}, "severity": {"warning"}, "audience": {"everyone"}}))

	w.a.sync()
	if got := banners(t, w.samOnA.get("/")); got[id] != "true" {
		t.Fatalf("a notice posted on the other process is not a banner here: %v", got)
	}

	t.Run("an edit shows too", func(t *testing.T) {
		w.adminOnB.get("/admin/notices/" + id + "/edit")
		wantStatus(t, w.adminOnB.post("/admin/notices/"+id, url.Values{"title": {"Deploy at one"}, "body": {"Expect a minute of downtime."},
			"kind": {"must_read"}, "severity": {"warning"}, "audience": {"everyone"}}), http.StatusSeeOther)
		w.a.sync()
		if page := body(t, w.samOnA.get("/")); !strings.Contains(page, "Deploy at one") {
			t.Fatal("the edited title is not on the banner")
		}
	})
	t.Run("archived there, it is gone here", func(t *testing.T) {
		w.adminOnB.get("/admin/notices/" + id)
		wantStatus(t, w.adminOnB.post("/admin/notices/"+id+"/archive", nil), http.StatusSeeOther)
		w.a.sync()
		if got := banners(t, w.samOnA.get("/")); len(got) != 0 {
			t.Fatalf("an archived notice is still a banner here: %v", got)
		}
	})
}

// A group deleted elsewhere takes its notices' audience with it.
func TestBannersFollowGroupsDeletedByAnotherProcess(t *testing.T) {
	w := newTwoProcesses(t)
	ctx := t.Context()
	g, err := w.a.db.CreateGroup(ctx, "night shift", db.Event{At: w.a.clock()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.a.db.AddGroupMember(ctx, g.ID, w.sam.ID, db.Event{At: w.a.clock()}); err != nil {
		t.Fatal(err)
	}
	w.samOnA.get("/") // the new session's groups are read per request
	w.adminOnB.get("/admin/notices")
	id := noticeID(t, w.adminOnB.post("/admin/notices", url.Values{"title": {"Night shift only"}, "body": {"Hello."},
		"kind": {"normal"}, "severity": {"info"}, "audience": {"group:" + strconv.FormatInt(g.ID, 10)}}))
	w.a.sync()
	if got := banners(t, w.samOnA.get("/")); got[id] != "false" {
		t.Fatalf("the group notice is not a banner here: %v", got)
	}
	w.adminOnB.get("/admin/groups/" + strconv.FormatInt(g.ID, 10))
	wantStatus(t, w.adminOnB.post("/admin/groups/"+strconv.FormatInt(g.ID, 10)+"/delete", nil), http.StatusSeeOther)
	w.a.sync()
	if got := banners(t, w.samOnA.get("/")); len(got) != 0 {
		t.Fatalf("a notice whose only group was deleted elsewhere is still a banner: %v", got)
	}
}

// MFA rules and the enforcement pause are read at every request, so a change on one
// process applies on the other at once, with no signal at all.
func TestMFARuleOfAnotherProcessAppliesAtTheNextRequest(t *testing.T) {
	w := newTwoProcesses(t)
	wantStatus(t, w.samOnA.get("/"), http.StatusOK)
	setRule(t, w.adminOnB, "role:staff", "required", "2020-01-01T00:00")
	wantRedirect(t, w.samOnA.get("/"), "/account/mfa")

	t.Run("paused there, enforced nowhere", func(t *testing.T) {
		w.adminOnB.get("/admin/mfa-policy")
		wantStatus(t, w.adminOnB.post("/admin/mfa-policy/pause", nil), http.StatusSeeOther)
		wantStatus(t, w.samOnA.get("/"), http.StatusOK)
	})
}

func TestRevokeOnAnotherProcessEndsTheSessionAtTheNextRequest(t *testing.T) {
	w := newTwoProcesses(t)
	wantStatus(t, w.samOnA.get("/"), http.StatusOK)
	uid := strconv.FormatInt(w.sam.ID, 10)
	w.adminOnB.get("/admin/users/" + uid)
	wantStatus(t, w.adminOnB.post("/admin/users/"+uid+"/revoke-sessions", nil), http.StatusSeeOther)
	wantRedirect(t, w.samOnA.get("/"), "/login?ended=1")
}

// The health panel of any process counts what every process saw, within a second.
func TestHealthPanelCountsEventsOfEveryProcess(t *testing.T) {
	w := newTwoProcesses(t)
	rootOnA := w.a.client()
	rootOnA.login("root", "correct horse battery")
	cross := w.b.client()
	cross.get("/login")
	cross.fetchSite = "cross-site"
	wantStatus(t, cross.post("/login", url.Values{"username": {"x"}, "password": {"y"}}), http.StatusForbidden)
	start := time.Now()

	row := regexp.MustCompile(`<th scope="row">Refused forms \(CSRF\)</th><td>(\d+)</td>`)
	csrfCount := func() string {
		m := row.FindStringSubmatch(body(t, rootOnA.get("/admin")))
		if m == nil {
			t.Fatal("no CSRF row on the health panel")
		}
		return m[1]
	}
	for i := 0; i < 100 && time.Since(start) < time.Second; i++ {
		if csrfCount() == "1" {
			t.Logf("counted here %v after the refusal there", time.Since(start))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := csrfCount(); got != "1" {
		t.Fatalf("a second after another process refused a form, this panel counts %s, want 1", got)
	}
}

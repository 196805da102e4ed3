package handlers

import (
	"context"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/db"
	"gatehouse/views"
)

// setRule saves a rule through the dry run and its confirm button, as an admin does.
func setRule(tb testing.TB, admin *client, scope, mode, deadline string) string {
	tb.Helper()
	admin.get("/admin/mfa-policy")
	form := url.Values{"scope": {scope}, "mode": {mode}, "deadline": {deadline}}
	resp := admin.post("/admin/mfa-policy", form)
	wantStatus(tb, resp, http.StatusOK)
	dry := body(tb, resp)
	form.Set("confirm", "1")
	wantRedirect(tb, admin.post("/admin/mfa-policy", form), "/admin/mfa-policy")
	return dry
}

type rolloutWorld struct {
	a          *testApp
	admin      *client
	night      db.Group
	nightOwl   db.User
	dayWorker  db.User
	enrolledID int64
}

func newRollout(t *testing.T) rolloutWorld {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	w := rolloutWorld{a: a, admin: a.client()}
	w.nightOwl = a.createUser("owl", db.RoleStaff, "correct horse battery")
	w.dayWorker = a.createUser("lark", db.RoleStaff, "correct horse battery")
	enrolled := a.createUser("eve", db.RoleStaff, "correct horse battery")
	w.enrolledID = enrolled.ID
	ctx := context.Background()
	var err error
	if w.night, err = a.db.CreateGroup(ctx, "night shift", db.Event{At: a.clock()}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{w.nightOwl.ID, enrolled.ID} {
		if err := a.db.AddGroupMember(ctx, w.night.ID, id, db.Event{At: a.clock()}); err != nil {
			t.Fatal(err)
		}
	}
	e := a.client()
	e.login("eve", "correct horse battery")
	e.enroll(t)
	w.admin.login("root", "correct horse battery")
	return w
}

func (w rolloutWorld) group() string { return "group:" + strconv.FormatInt(w.night.ID, 10) }

func TestPolicyDryRunCountsBeforeSaving(t *testing.T) {
	w := newRollout(t)
	w.admin.get("/admin/mfa-policy")
	resp := w.admin.post("/admin/mfa-policy", url.Values{"scope": {w.group()}, "mode": {"required"}, "deadline": {"2020-01-01T00:00"}})
	wantStatus(t, resp, http.StatusOK)
	b := body(t, resp)
	if !strings.Contains(b, `role="status">This change affects 2 users in group night shift; 1 already use two-step verification. 1 user would be sent to enrollment`) {
		t.Fatalf("dry run: %.4000s", b)
	}
	if !strings.Contains(b, "<li>owl</li>") || strings.Contains(b, "<li>eve</li>") {
		t.Fatal("the dry run does not list exactly who would be sent to enrollment")
	}
	if rules, _ := w.a.db.MFARules(context.Background()); len(rules) != 0 {
		t.Fatal("the dry run saved the rule")
	}
	t.Run("bad input is refused next to the field", func(t *testing.T) {
		for _, f := range []url.Values{
			{"scope": {"group:9999"}, "mode": {"required"}, "deadline": {"2020-01-01T00:00"}},
			{"scope": {"role:root"}, "mode": {"off"}},
			{"scope": {"role:staff"}, "mode": {"required"}, "deadline": {""}},
			{"scope": {"role:staff"}, "mode": {"always"}},
		} {
			w.admin.get("/admin/mfa-policy")
			wantStatus(t, w.admin.post("/admin/mfa-policy", f), http.StatusUnprocessableEntity)
		}
	})
	t.Run("staff cannot see or change the policy", func(t *testing.T) {
		c := w.a.client()
		c.login("lark", "correct horse battery")
		wantStatus(t, c.get("/admin/mfa-policy"), http.StatusForbidden)
		c.get("/")
		wantStatus(t, c.post("/admin/mfa-policy/pause", nil), http.StatusForbidden)
	})
}

func TestRequiredPastDeadlineLeadsToEnrollmentWithoutLoops(t *testing.T) {
	w := newRollout(t)
	setRule(t, w.admin, w.group(), "required", "2020-01-01T00:00")

	owl := w.a.client()
	resp := owl.login("owl", "correct horse battery")
	wantRedirect(t, resp, "/account/mfa") // straight to enrollment
	for _, path := range []string{"/", "/account", "/notices", "/account/sessions", "/account/password", "/no/such"} {
		resp, hops := follow(owl, path, 10)
		if path == "/no/such" {
			wantStatus(t, resp, http.StatusNotFound)
			continue
		}
		if hops > 1 || owl.lastBody == "" || !strings.Contains(owl.lastBody, `id="mfa-secret"`) {
			t.Fatalf("%s: %d hops, did not end on enrollment", path, hops)
		}
		wantStatus(t, resp, http.StatusOK)
	}
	owl.get("/account/mfa")
	wantRedirect(t, owl.post("/account/sessions/revoke-others", nil), "/account/mfa")
	t.Run("logout works from the gate", func(t *testing.T) {
		c := w.a.client()
		c.login("owl", "correct horse battery")
		c.get("/account/mfa")
		wantRedirect(t, c.post("/logout", nil), "/login")
	})
	t.Run("after enrolling the dashboard opens", func(t *testing.T) {
		owl.enroll(t)
		wantStatus(t, owl.get("/"), http.StatusOK)
	})
	t.Run("users outside the cohort are untouched", func(t *testing.T) {
		lark := w.a.client()
		wantRedirect(t, lark.login("lark", "correct horse battery"), "/")
		wantStatus(t, lark.get("/"), http.StatusOK)
	})
	t.Run("a required user cannot turn it off", func(t *testing.T) {
		owl.get("/account/mfa")
		wantStatus(t, owl.post("/account/mfa/disable", url.Values{"password": {"correct horse battery"}}), http.StatusConflict)
	})
}

func TestBeforeTheDeadlineOnlyAWarning(t *testing.T) {
	w := newRollout(t)
	deadline := w.a.clock().Add(72 * time.Hour).Format(views.FormTime)
	setRule(t, w.admin, w.group(), "required", deadline)
	owl := w.a.client()
	wantRedirect(t, owl.login("owl", "correct horse battery"), "/")
	b := body(t, owl.get("/"))
	if !strings.Contains(b, "Two-step verification will be required") || !strings.Contains(b, "5 March 2026") {
		t.Fatalf("no warning with the date: %.3000s", b)
	}
	if strings.Contains(body(t, owl.get("/account")), "Two-step verification will be required") == false {
		t.Fatal("the warning is not on every page")
	}
	t.Run("the deadline passing enforces it", func(t *testing.T) {
		w.a.advance(72*time.Hour + time.Minute)
		c := w.a.client()
		wantRedirect(t, c.login("owl", "correct horse battery"), "/account/mfa")
	})
}

func TestStrictestRuleWinsAndPauseLiftsAtOnce(t *testing.T) {
	w := newRollout(t)
	setRule(t, w.admin, "role:staff", "optional", "")
	setRule(t, w.admin, w.group(), "required", "2020-01-01T00:00")
	owl := w.a.client()
	wantRedirect(t, owl.login("owl", "correct horse battery"), "/account/mfa")
	lark := w.a.client()
	wantRedirect(t, lark.login("lark", "correct horse battery"), "/")
	if !strings.Contains(body(t, lark.get("/account")), "optional, and recommended (role staff)") {
		t.Fatal("the account page does not show the effective rule")
	}

	before := snapshotMFA(t, w.a)
	w.admin.get("/admin/mfa-policy")
	wantRedirect(t, w.admin.post("/admin/mfa-policy/pause", nil), "/admin/mfa-policy")
	wantStatus(t, owl.get("/"), http.StatusOK)
	w.admin.get("/admin/mfa-policy")
	wantRedirect(t, w.admin.post("/admin/mfa-policy/resume", nil), "/admin/mfa-policy")
	wantRedirect(t, owl.get("/"), "/account/mfa")
	if after := snapshotMFA(t, w.a); after != before {
		t.Fatal("pausing and resuming changed enrolled users' MFA data")
	}
	for _, kind := range []string{"mfa.policy_changed", "mfa.enforcement_paused", "mfa.enforcement_resumed"} {
		evs, _ := w.a.db.ListEvents(context.Background(), db.AuditFilter{Kind: kind})
		if len(evs) == 0 {
			t.Errorf("no %s audit row", kind)
		}
	}
	evs, _ := w.a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "mfa.policy_changed"})
	if !strings.Contains(evs[0].Detail, "off (no rule) → required") {
		t.Errorf("policy audit lacks before and after: %q", evs[0].Detail)
	}
}

func snapshotMFA(tb testing.TB, a *testApp) string {
	tb.Helper()
	rows, err := a.rawDB().Query(`SELECT user_id, secret_enc, last_step FROM mfa_factors ORDER BY user_id`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var sb strings.Builder
	for rows.Next() {
		var id, step int64
		var sec []byte
		_ = rows.Scan(&id, &sec, &step)
		sb.WriteString(strconv.FormatInt(id, 10) + hex.EncodeToString(sec) + strconv.FormatInt(step, 10))
	}
	return sb.String()
}

func TestStackedGatesEndWithinTwoRedirects(t *testing.T) {
	w := newRollout(t)
	setRule(t, w.admin, "role:staff", "required", "2020-01-01T00:00")
	w.admin.get("/admin/users/new")
	wantRedirect(t, w.admin.post("/admin/users", url.Values{"username": {"newbie"}, "role": {"staff"},
		"password": {"initial secret phrase"}}), "/admin/users/")
	w.admin.postNotice(t, noticeForm("Read me", "now", "must_read", "everyone"))

	c := w.a.client()
	wantRedirect(t, c.login("newbie", "initial secret phrase"), "/account/password")
	resp, hops := follow(c, "/notices", 5)
	if hops > 2 || resp.StatusCode != http.StatusOK || !strings.Contains(c.lastBody, "Change your password") {
		t.Fatalf("password gate: %d hops, %d", hops, resp.StatusCode)
	}
	wantRedirect(t, c.post("/account/password", url.Values{"current_password": {"initial secret phrase"},
		"new_password": {"my own long passphrase"}}), "/account")
	resp, hops = follow(c, "/account", 5)
	if hops > 2 || resp.StatusCode != http.StatusOK || !strings.Contains(c.lastBody, `id="mfa-secret"`) {
		t.Fatalf("mfa gate: %d hops, %d", hops, resp.StatusCode)
	}
	if !strings.Contains(c.lastBody, `data-must-read="true"`) {
		t.Fatal("the must-read banner is not shown on the enrollment gate")
	}
	c.enroll(t)
	wantStatus(t, c.get("/"), http.StatusOK)
}

func TestUserInTwoGroupsGetsTheStrictestRule(t *testing.T) {
	w := newRollout(t)
	ctx := context.Background()
	early, err := w.a.db.CreateGroup(ctx, "early birds", db.Event{At: w.a.clock()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.a.db.AddGroupMember(ctx, early.ID, w.nightOwl.ID, db.Event{At: w.a.clock()}); err != nil {
		t.Fatal(err)
	}
	later := w.a.clock().Add(30 * 24 * time.Hour).Format(views.FormTime)
	setRule(t, w.admin, w.group(), "optional", "")
	setRule(t, w.admin, "group:"+strconv.FormatInt(early.ID, 10), "required", later)
	owl := w.a.client()
	wantRedirect(t, owl.login("owl", "correct horse battery"), "/")
	if b := body(t, owl.get("/account")); !strings.Contains(b, "(group early birds)") || !strings.Contains(b, "required from") {
		t.Fatalf("effective rule: %.200s", b[strings.Index(b, "Rule for your account"):])
	}
	setRule(t, w.admin, w.group(), "required", "2020-01-01T00:00")
	wantRedirect(t, owl.get("/"), "/account/mfa") // the earlier of two required deadlines wins
}

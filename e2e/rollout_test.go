package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"gatehouse/auth"
	"gatehouse/db"
)

// TestRolloutLeadsAMemberToEnrollment walks a rollout as an admin and a member would: the
// admin requires MFA for a group with a past deadline after seeing the dry run; the member
// signs in, is taken to enrollment, enrolls and reaches the dashboard.
func TestRolloutLeadsAMemberToEnrollment(t *testing.T) {
	app := StartApp(t)
	ctx := context.Background()
	app.CreateUser(t, db.NewUser{Username: "root", Role: db.RoleAdmin}, "correct horse battery")
	owl := app.CreateUser(t, db.NewUser{Username: "owl"}, "correct horse battery")
	g, err := app.Store.CreateGroup(ctx, "night shift", db.Event{At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Store.AddGroupMember(ctx, g.ID, owl.ID, db.Event{At: time.Now()}); err != nil {
		t.Fatal(err)
	}

	admin := NewBrowser(t, app)
	admin.SignIn("root", "correct horse battery")
	admin.Visit("/admin/mfa-policy")
	admin.Do("choose the group", chromedp.SetValue(chromedp.CSS("#scope"), "group:"+itoa(g.ID)))
	admin.Do("choose required", chromedp.SetValue(chromedp.CSS("#mode"), "required"))
	admin.Do("set the deadline", chromedp.SetValue(chromedp.CSS("#deadline"), "2020-01-01T00:00"))
	admin.Click(`form.stack button[type=submit]`)
	if got := admin.Text(`.preview [role="status"]`); !strings.Contains(got, "affects 1 user in group night shift") ||
		!strings.Contains(got, "would be sent to enrollment") {
		t.Fatalf("dry run says %q", got)
	}
	if rules, _ := app.Store.MFARules(ctx); len(rules) != 0 {
		t.Fatal("the dry run saved the rule")
	}
	admin.Click(`.preview button[type=submit]`)
	if rules, _ := app.Store.MFARules(ctx); len(rules) != 1 || rules[0].Mode != db.MFARequired {
		t.Fatalf("rules after saving: %+v", rules)
	}

	member := NewBrowser(t, app)
	member.SignIn("owl", "correct horse battery")
	if p := member.URL().Path; p != "/account/mfa" {
		t.Fatalf("after sign-in the member is at %s, want enrollment", p)
	}
	member.Visit("/notices")
	if p := member.URL().Path; p != "/account/mfa" {
		t.Fatalf("another page let the member through: %s", p)
	}
	secret := strings.TrimSpace(member.Text("#mfa-secret"))
	member.Fill("#code", auth.TOTPCode(secret, app.Now()))
	member.Click(`form[action="/account/mfa"] button[type=submit]`)
	if n := step(member, "count codes", chromedp.Evaluate[int](`document.querySelectorAll(".recovery-code").length`)); n != 10 {
		t.Fatalf("%d recovery codes shown", n)
	}
	member.Visit("/")
	member.ExpectText("h1", "Welcome")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

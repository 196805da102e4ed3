package handlers

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// TestAuthVerifyPartialSessionAndFactors: an app that requires two-step verification refuses
// a user without a factor, saying where to set one up; once the user has one, the password
// step alone is a partial session, sent to finish signing in, and the second step leads
// back to the app.
func TestAuthVerifyPartialSessionAndFactors(t *testing.T) {
	a := newForwardApp(t)
	a.createUser("amy", db.RoleStaff, "correct horse battery")
	a.addApp(t, db.AppInput{Host: appHost, RequireMFA: true})
	b := a.browser()
	b.signIn("amy", "correct horse battery", "")

	resp := b.get(appURL)
	wantStatus(t, resp, http.StatusForbidden)
	if !strings.Contains(body(t, resp), "asks for two-step verification") || !strings.Contains(body(t, resp), portalBase+"/account/mfa") {
		t.Fatalf("refusal without a factor: %s", body(t, resp))
	}

	// Enroll through the portal, then sign in again: the password step alone is a partial
	// session, which must not pass.
	enrollment := b.get(portalBase + "/account/mfa")
	wantStatus(t, enrollment, http.StatusOK)
	secret := secretRe.FindStringSubmatch(b.lastBody)[1]
	wantRedirect(t, b.post("/account/mfa", url.Values{"code": {auth.TOTPCode(secret, a.clock())}}), "/account/mfa")
	wantStatus(t, b.get(appURL), http.StatusOK)

	fresh := a.browser()
	wantRedirect(t, fresh.signIn("amy", "correct horse battery", appURL), "/login/mfa?next=")
	resp = fresh.get(appURL)
	wantRedirect(t, resp, portalBase+"/login?next=")

	a.advance(30 * time.Second)
	fresh.get(portalBase + "/login/mfa?next=" + url.QueryEscape(appURL))
	resp = fresh.post("/login/mfa", url.Values{"code": {auth.TOTPCode(secret, a.clock())}, "next": {appURL}})
	wantRedirect(t, resp, appURL)
	wantStatus(t, fresh.get(appURL), http.StatusOK)
}

// The detour: an app with must_read_first sends a user with a must-read notice to read it
// on the start page, and the acknowledgement of the last one brings them back to the app.
// Normal notices never block.
func TestMustReadFirstDetour(t *testing.T) {
	w := newForwardWorld(t)
	a := w.a
	ctx := context.Background()
	app, _ := a.db.AppByHost(ctx, appHost)
	if _, err := a.db.UpdateApp(ctx, app.ID, db.AppInput{Host: appHost, MustReadFirst: true, Audience: app.Audience},
		db.Event{At: a.clock()}); err != nil {
		t.Fatal(err)
	}
	root := a.createUser("root", db.RoleAdmin, "correct horse battery")
	post := func(title, kind string) db.Notice {
		n, err := a.db.CreateNotice(ctx, db.NoticeInput{Title: title, Body: "Read this.", Kind: kind, Severity: db.SeverityInfo,
			Audience: db.Audience{Everyone: true}}, root, db.Event{At: a.clock()})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	post("Lunch", db.NoticeNormal)
	a.advance(time.Second)
	wantStatus(t, w.amy.get(appURL), http.StatusOK)

	first := post("Read before using the wiki", db.NoticeMustRead)
	second := post("And this one", db.NoticeMustRead)
	a.advance(11 * time.Second) // past the banner cache
	detour := portalBase + "/?next=" + url.QueryEscape(appURL)
	resp := w.amy.get(appURL)
	wantStatus(t, resp, http.StatusFound)
	if loc := resp.Header.Get("Location"); loc != detour {
		t.Fatalf("Location %q, want %q", loc, detour)
	}
	resp = w.amy.get(detour)
	wantStatus(t, resp, http.StatusOK)
	if !strings.Contains(body(t, resp), "continue to "+appHost) || banners(t, resp)[itoa64(first.ID)] != "true" {
		t.Fatalf("the start page does not say why: %s", body(t, resp))
	}
	back := "/?next=" + url.QueryEscape(appURL)
	wantRedirect(t, w.amy.post("/notices/"+itoa64(first.ID)+"/ack", url.Values{"return": {back}}), back)
	resp = w.amy.get(portalBase + back)
	wantStatus(t, resp, http.StatusOK) // one is left
	resp = w.amy.post("/notices/"+itoa64(second.ID)+"/ack", url.Values{"return": {back}})
	hops := w.amy.follow(portalBase + resp.Header.Get("Location"))
	last := hops[len(hops)-1]
	if last.URL != appURL || last.Status != http.StatusOK || len(hops) != 2 {
		t.Fatalf("after the last acknowledgement: %v", hops)
	}
	if !strings.Contains(w.amy.lastBody, "Remote-User: amy") {
		t.Fatalf("the app got: %s", w.amy.lastBody)
	}
}

// TestNextLeadsOnlyToRegisteredApps: after sign-in, next may be a registered app's URL and
// nothing else off the portal; the rest falls back to the dashboard.
func TestNextLeadsOnlyToRegisteredApps(t *testing.T) {
	w := newForwardWorld(t)
	for _, tc := range []struct{ next, want string }{
		{appURL, appURL},
		{"HTTP://APP.EXAMPLE.COM/page?q=1", appURL},
		{"https://" + appHost + "/", "https://" + appHost + "/"},
		{"http://" + appHost, "http://" + appHost + "/"},
		{"http://evil.example/", "/"},
		{"http://other.example.com/", "/"},
		{"//" + appHost + "/", "/"},
		{"//evil.example/", "/"},
		{"/\\evil.example/", "/"},
		{"http://" + appHost + "@evil.example/", "/"},
		{"http://evil.example\\@" + appHost + "/", "/"},
		{"http://user@" + appHost + "/", "/"},
		{"javascript:alert(1)", "/"},
		{"https:evil.example", "/"},
		{"https:" + appHost + "/", "/"},
		{`\\evil.example`, "/"},
		{"%2F%2Fevil.example", "/"},
		{"/%09/evil.example", "/"},
		{"http://" + appHost + "%2F@evil.example/", "/"},
		{"http://" + appHost + "\t/", "/"},
		{"/login?next=/login", "/"},
		{"/logout", "/"},
		{"ftp://" + appHost + "/", "/"},
		{"http://" + appHost + ":8080/", "/"},
		{"/notices", "/notices"},
	} {
		t.Run(tc.next, func(t *testing.T) {
			resp := w.amy.get(portalBase + "/login?next=" + url.QueryEscape(tc.next))
			wantStatus(t, resp, http.StatusSeeOther)
			if loc := resp.Header.Get("Location"); loc != tc.want {
				t.Fatalf("Location %q, want %q", loc, tc.want)
			}
		})
	}
	t.Run("an http app is refused when the portal is https", func(t *testing.T) {
		a := newTestApp(t, forwardConfig(t, "https://portal.example.com", "example.com"))
		a.createUser("amy", db.RoleStaff, "correct horse battery")
		a.addApp(t, db.AppInput{Host: appHost})
		b := a.browser()
		b.signIn("amy", "correct horse battery", "")
		for next, want := range map[string]string{"http://" + appHost + "/": "/", "https://" + appHost + "/": "https://" + appHost + "/"} {
			resp := b.get("https://portal.example.com/login?next=" + url.QueryEscape(next))
			if loc := resp.Header.Get("Location"); loc != want {
				t.Errorf("next %s: Location %q, want %q", next, loc, want)
			}
		}
	})
	t.Run("the sign-in form carries an app's next through both steps and nothing else", func(t *testing.T) {
		b := w.a.browser()
		b.get(portalBase + "/login?next=" + url.QueryEscape(appURL))
		if !strings.Contains(b.lastBody, `name="next" value="`+strings.ReplaceAll(appURL, "&", "&amp;")+`"`) {
			t.Fatalf("the form lost next: %s", b.lastBody)
		}
		b.get(portalBase + "/login?next=" + url.QueryEscape("http://evil.example/"))
		if strings.Contains(b.lastBody, `name="next"`) {
			t.Fatalf("the form carries a foreign next: %s", b.lastBody)
		}
		resp := b.signIn("amy", "correct horse battery", appURL)
		if loc := resp.Header.Get("Location"); loc != appURL {
			t.Fatalf("after sign-in: Location %q", loc)
		}
		wantStatus(t, b.get(appURL), http.StatusOK)
		resp = b.signIn("amy", "correct horse battery", "http://evil.example/")
		if loc := resp.Header.Get("Location"); loc != "/" {
			t.Fatalf("a foreign next after sign-in: Location %q", loc)
		}
	})
}

// A whole trip: the app sends a signed-out browser to sign in, and sign-in brings it back
// with one redirect each way.
func TestSignInThroughAnApp(t *testing.T) {
	w := newForwardWorld(t)
	b := w.a.browser()
	hops := b.follow(appURL)
	if len(hops) != 2 || hops[1].Status != http.StatusOK || !strings.Contains(hops[1].URL, "/login?next=") {
		t.Fatalf("signed out at the app: %v", hops)
	}
	resp := b.signIn("amy", "correct horse battery", appURL)
	if loc := resp.Header.Get("Location"); loc != appURL {
		t.Fatalf("Location %q", loc)
	}
	wantStatus(t, b.get(appURL), http.StatusOK)
	if !strings.Contains(b.lastBody, "Remote-User: amy") {
		t.Fatalf("app page: %s", b.lastBody)
	}
}

// TestSignOutEndsAppAccess: signing out of the portal ends access to every app at its next
// request.
func TestSignOutEndsAppAccess(t *testing.T) {
	w := newForwardWorld(t)
	w.a.addApp(t, db.AppInput{Host: "wiki.example.com"})
	wantStatus(t, w.amy.get(appURL), http.StatusOK)
	wantStatus(t, w.amy.get("http://wiki.example.com/"), http.StatusOK)
	token := w.amy.cookieNamed(appURL, "gatehouse_session")
	w.amy.get(portalBase + "/")
	wantRedirect(t, w.amy.post("/logout", nil), "/login?out=1")
	if w.amy.cookieNamed(appURL, "gatehouse_session") != "" {
		t.Error("the cookie the apps see is still in the browser")
	}
	wantRedirect(t, w.amy.get(appURL), portalBase+"/login?next=")
	wantRedirect(t, w.amy.get("http://wiki.example.com/"), portalBase+"/login?next=")
	// A copy of the cookie taken before is dead too.
	replay := w.a.browser()
	replay.jar.SetCookies(&url.URL{Scheme: "http", Host: appHost}, []*http.Cookie{{Name: "gatehouse_session", Value: token, Domain: "example.com", Path: "/"}})
	wantRedirect(t, replay.get(appURL), portalBase+"/login?ended=1&next=")
}

// Steps of signing in (a forced password change, an enrollment under a rule) pass next on,
// and the browser lands on the app when they are done.
func TestPendingStepsLeadBackToTheApp(t *testing.T) {
	t.Run("a forced password change", func(t *testing.T) {
		w := newForwardWorld(t)
		a := w.a
		ctx := context.Background()
		u := testkitUser(t, a, "tom", true)
		b := a.browser()
		resp := b.signIn(u.Username, "correct horse battery", appURL)
		want := "/account/password?next=" + url.QueryEscape(appURL)
		if loc := resp.Header.Get("Location"); loc != want {
			t.Fatalf("after sign-in: Location %q, want %q", loc, want)
		}
		// The app itself sends the browser through the portal to the step, not in a loop.
		hops := b.follow(appURL)
		if last := hops[len(hops)-1]; !strings.HasSuffix(last.URL, want) || last.Status != http.StatusOK || len(hops) != 3 {
			t.Fatalf("the app with a step pending: %v", hops)
		}
		resp = b.post("/account/password", url.Values{"current_password": {"correct horse battery"},
			"new_password": {"a brand new passphrase"}, "next": {appURL}})
		if loc := resp.Header.Get("Location"); loc != appURL {
			t.Fatalf("after the change: Location %q", loc)
		}
		wantStatus(t, b.get(appURL), http.StatusOK)
		_ = ctx
	})
	t.Run("an enrollment under a rule", func(t *testing.T) {
		w := newForwardWorld(t)
		a := w.a
		ctx := context.Background()
		if err := a.db.SetMFARule(ctx, db.MFARule{Role: db.RoleStaff, Mode: db.MFARequired, Deadline: a.clock().Add(-time.Hour)},
			db.Event{At: a.clock()}); err != nil {
			t.Fatal(err)
		}
		b := a.browser()
		resp := b.signIn("amy", "correct horse battery", appURL)
		want := "/account/mfa?next=" + url.QueryEscape(appURL)
		if loc := resp.Header.Get("Location"); loc != want {
			t.Fatalf("after sign-in: Location %q, want %q", loc, want)
		}
		wantStatus(t, b.get(portalBase+want), http.StatusOK)
		secret := secretRe.FindStringSubmatch(b.lastBody)[1]
		resp = b.post("/account/mfa", url.Values{"code": {auth.TOTPCode(secret, a.clock())}, "next": {appURL}})
		if loc := resp.Header.Get("Location"); loc != want {
			t.Fatalf("after the code: Location %q, want %q", loc, want)
		}
		b.get(portalBase + want)
		if len(recoveryRe.FindAllString(b.lastBody, -1)) != recoveryCodeCount {
			t.Fatalf("the codes are not shown: %s", b.lastBody)
		}
		if link := b.continueLink(); link != appURL {
			t.Fatalf("Continue leads to %q", link)
		}
		wantStatus(t, b.get(appURL), http.StatusOK)
	})
}

// testkitUser makes an account whose password an admin set, if forced.
func testkitUser(t *testing.T, a *testApp, name string, forced bool) db.User {
	t.Helper()
	u := a.createUser(name, db.RoleStaff, "correct horse battery")
	if forced {
		if err := a.db.SetPassword(context.Background(), u.ID, u.PasswordHash, true, 0, db.Event{At: a.clock()}); err != nil {
			t.Fatal(err)
		}
	}
	return u
}

// TestFormsMayLeadOnToTheApp: browsers hold the redirect that answers a form to the page's
// form-action, so a page whose form leads on to an app (signing in with next, the detour's
// acknowledgement) names that app's origin there, and no page names any other.
func TestFormsMayLeadOnToTheApp(t *testing.T) {
	w := newForwardWorld(t)
	formAction := func(resp *http.Response) string {
		csp := resp.Header.Get("Content-Security-Policy")
		_, rest, _ := strings.Cut(csp, "form-action ")
		fa, _, _ := strings.Cut(rest, ";")
		return fa
	}
	stranger := w.a.browser()
	for path, want := range map[string]string{
		"/login?next=" + url.QueryEscape(appURL):                     "'self' http://app.example.com",
		"/login?next=" + url.QueryEscape("http://evil.example.com/"): "'self'",
		"/login": "'self'",
	} {
		if got := formAction(stranger.get(portalBase + path)); got != want {
			t.Errorf("GET %s: form-action %q, want %q", path, got, want)
		}
	}
	ctx := context.Background()
	app, _ := w.a.db.AppByHost(ctx, appHost)
	app.MustReadFirst = true
	if _, err := w.a.db.UpdateApp(ctx, app.ID, db.AppInput{Host: app.Host, MustReadFirst: true, Audience: app.Audience}, db.Event{At: w.a.clock()}); err != nil {
		t.Fatal(err)
	}
	amy, _ := w.a.db.UserByUsername(ctx, "amy")
	if _, err := w.a.db.CreateNotice(ctx, db.NoticeInput{Title: "Rules", Body: "Read.", Kind: db.NoticeMustRead, Severity: db.SeverityInfo,
		Audience: db.Audience{Everyone: true}}, amy, db.Event{At: w.a.clock()}); err != nil {
		t.Fatal(err)
	}
	w.a.advance(11 * time.Second)
	resp := w.amy.get(portalBase + "/?next=" + url.QueryEscape(appURL))
	wantStatus(t, resp, http.StatusOK)
	if got := formAction(resp); got != "'self' http://app.example.com" {
		t.Errorf("the detour's start page: form-action %q", got)
	}
	if got := formAction(w.amy.get(portalBase + "/")); got != "'self'" {
		t.Errorf("the start page: form-action %q", got)
	}
}

// TestRenewalBringsBackTheDetour: with renew_every, an acknowledgement expires; from then
// on the banner is back and an app with must_read_first sends the reader to read the
// notice again, by the one rule of what must be read now. Acknowledging again lets them
// through.
func TestRenewalBringsBackTheDetour(t *testing.T) {
	w := newForwardWorld(t)
	a := w.a
	ctx := context.Background()
	app, _ := a.db.AppByHost(ctx, appHost)
	if _, err := a.db.UpdateApp(ctx, app.ID, db.AppInput{Host: appHost, MustReadFirst: true, Audience: app.Audience},
		db.Event{At: a.clock()}); err != nil {
		t.Fatal(err)
	}
	root := a.createUser("root", db.RoleAdmin, "correct horse battery")
	n, err := a.db.CreateNotice(ctx, db.NoticeInput{Title: "Yearly rules", Body: "Read this every week.", Kind: db.NoticeMustRead,
		Severity: db.SeverityInfo, Audience: db.Audience{Everyone: true}, Renew: 7 * 24 * time.Hour}, root, db.Event{At: a.clock()})
	if err != nil {
		t.Fatal(err)
	}
	a.advance(11 * time.Second) // past the banner cache
	detour := portalBase + "/?next=" + url.QueryEscape(appURL)
	back := "/?next=" + url.QueryEscape(appURL)
	acknowledge := func() {
		t.Helper()
		resp := w.amy.get(appURL)
		wantStatus(t, resp, http.StatusFound)
		if loc := resp.Header.Get("Location"); loc != detour {
			t.Fatalf("Location %q, want the detour %q", loc, detour)
		}
		resp = w.amy.get(detour)
		if banners(t, resp)[itoa64(n.ID)] != "true" {
			t.Fatalf("the start page shows no banner for the notice: %s", body(t, resp))
		}
		resp = w.amy.post("/notices/"+itoa64(n.ID)+"/ack", url.Values{"return": {back}})
		hops := w.amy.follow(portalBase + resp.Header.Get("Location"))
		if last := hops[len(hops)-1]; last.URL != appURL || last.Status != http.StatusOK {
			t.Fatalf("after acknowledging: %v", hops)
		}
	}
	acknowledge()

	a.advance(7*24*time.Hour - time.Minute)
	w.amy.signIn("amy", "correct horse battery", "") // the session itself lasts a day
	wantStatus(t, w.amy.get(appURL), http.StatusOK)
	if _, ok := banners(t, w.amy.get(portalBase+"/"))[itoa64(n.ID)]; ok {
		t.Fatal("the banner is back before the acknowledgement expired")
	}

	a.advance(2 * time.Minute)
	acknowledge()
	wantStatus(t, w.amy.get(appURL), http.StatusOK)
}

// TestPasswordResetEndsAppAccess: a password reset by mailed link ends every session of the
// account, so every app refuses them at its next request; the browser that reset it, if
// signed in as that user, loses the cookie the apps see too.
func TestPasswordResetEndsAppAccess(t *testing.T) {
	a := newMailApp(t, forwardConfig(t, portalBase, "example.com"))
	a.mailUser("amy", db.RoleStaff, "amy@example.com")
	a.addApp(t, db.AppInput{Host: appHost})
	here, elsewhere := a.browser(), a.browser()
	for _, b := range []*browser{here, elsewhere} {
		b.signIn("amy", pw, "")
		wantStatus(t, b.get(appURL), http.StatusOK)
	}
	here.get(portalBase + "/login/forgot")
	wantRedirect(t, here.post("/login/forgot", url.Values{"username": {"amy"}}), "/login/forgot?sent=1")
	a.deliver()
	path, token := a.mailedLinkAt(portalBase, "amy@example.com")
	wantRedirect(t, here.get(portalBase+path+"?token="+token), path)
	wantStatus(t, here.get(portalBase+path), http.StatusOK)
	wantRedirect(t, here.post(path, url.Values{"new_password": {"a brand new passphrase"}}), "/login?msg=password-reset")

	if held := here.sessionCookiesHeld(appURL); len(held) != 0 {
		t.Errorf("the browser that reset the password still sends the apps %v", held)
	}
	wantRedirect(t, here.get(appURL), portalBase+"/login?next=")
	wantRedirect(t, elsewhere.get(appURL), portalBase+"/login?ended=1&next=")
	resp := here.signIn("amy", "a brand new passphrase", appURL)
	if loc := resp.Header.Get("Location"); loc != appURL {
		t.Fatalf("signing in again: Location %q", loc)
	}
	wantStatus(t, here.get(appURL), http.StatusOK)
}

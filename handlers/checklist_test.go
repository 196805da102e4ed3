package handlers

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

func TestCredentialsInTheURLDoNothing(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	token := c.cookie("gatehouse_session")

	stranger := a.client()
	wantStatus(t, stranger.get("/login?username=alice&password=correct+horse+battery"), http.StatusOK)
	if stranger.cookie("gatehouse_session") != "" {
		t.Fatal("a GET with credentials signed in")
	}
	wantRedirect(t, stranger.get("/?session="+url.QueryEscape(token)), "/login")
	stranger.get("/login")
	resp := stranger.post("/account/sessions/revoke-others", url.Values{"session": {token}, "gatehouse_session": {token}})
	wantRedirect(t, resp, "/login")
	for _, page := range []string{"/", "/account", "/account/sessions", "/notices"} {
		if strings.Contains(body(t, c.get(page)), token) {
			t.Fatalf("%s shows the session token", page)
		}
	}
}

func TestSafeMethodsChangeNothing(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	a.createUser("bob", db.RoleStaff, "correct horse battery")
	admin := a.client()
	admin.login("root", "correct horse battery")
	id := admin.postNotice(t, noticeForm("Hello", "world", "must_read", "everyone"))
	bob := a.client()
	bob.login("bob", "correct horse battery")
	bob.get("/")

	before := dumpAll(t, a, "sessions", "audit_log")
	for _, c := range []*client{admin, bob} {
		for _, r := range a.e.Routes() {
			if r.Method != http.MethodGet || strings.Contains(r.Path, "/test/") {
				continue
			}
			path := strings.NewReplacer(":id", itoa64(id), ":uid", "2").Replace(r.Path)
			for _, m := range []string{http.MethodGet, http.MethodHead} {
				req := httptest.NewRequest(m, testBase+path, nil)
				req.Header.Set("Sec-Fetch-Site", "cross-site")
				c.do(req)
			}
		}
		for _, path := range []string{"/logout", "/notices/" + itoa64(id) + "/ack", "/admin/users/2/disable", "/account/sessions/1/revoke"} {
			req := httptest.NewRequest(http.MethodGet, testBase+path, nil)
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			c.do(req)
		}
	}
	after := dumpAll(t, a, "sessions", "audit_log")
	for table := range before {
		if before[table] != after[table] {
			t.Errorf("a GET changed table %s", table)
		}
	}
	if banners(t, bob.get("/"))[itoa64(id)] != "true" {
		t.Fatal("a GET acknowledged the notice")
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func TestChunkedOversizedBodyIs413(t *testing.T) {
	a := newTestApp(t)
	pr, pw := io.Pipe()
	go func() {
		defer pw.Close()
		_, _ = pw.Write([]byte("username=alice&password="))
		chunk := strings.Repeat("x", 64<<10)
		for i := 0; i < 20; i++ {
			if _, err := pw.Write([]byte(chunk)); err != nil {
				return
			}
		}
	}()
	req := httptest.NewRequest(http.MethodPost, testBase+"/login", pr)
	req.ContentLength = -1 // chunked: no length to refuse up front
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	wantStatus(t, a.serve(req), http.StatusRequestEntityTooLarge)
	wantStatus(t, a.client().get("/login"), http.StatusOK)
}

func TestSingleLineFieldsRefuseLineBreaks(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	admin := a.client()
	admin.login("root", "correct horse battery")
	admin.get("/admin/users/new")
	wantStatus(t, admin.post("/admin/users", url.Values{"username": {"eve"}, "display_name": {"a\r\nSet-Cookie: x=1"},
		"role": {"staff"}, "password": {"initial secret phrase"}}), http.StatusUnprocessableEntity)
	admin.get("/admin/groups")
	wantStatus(t, admin.post("/admin/groups", url.Values{"name": {"ops\nadmins"}}), http.StatusUnprocessableEntity)
	admin.get("/admin/notices")
	wantStatus(t, admin.post("/admin/notices", noticeForm("line\rbreak", "body", "normal", "everyone")), http.StatusUnprocessableEntity)
	if _, err := a.db.UserByUsername(context.Background(), "eve"); err != db.ErrNotFound {
		t.Fatal("the user was stored")
	}
}

// TestNoSecretInTheLog runs a full sign-in, enrollment, second step and recovery, then
// searches the log for every secret used, plain, URL-encoded and base64.
func TestNoSecretInTheLog(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery staple")
	c := a.client()
	c.login("alice", "correct horse battery staple")
	token := c.cookie("gatehouse_session")
	csrfCookie := c.cookie("_csrf")
	secret, codes := c.enroll(t)
	a.advance(time.Minute)
	code := auth.TOTPCode(secret, a.clock())
	s := a.client()
	s.loginMFA("alice", "correct horse battery staple", code)
	s2 := a.client()
	s2.loginMFA("alice", "correct horse battery staple", codes[0])
	bad := a.client()
	bad.get("/login")
	bad.post("/login", url.Values{"username": {"alice"}, "password": {"wrong horse battery staple"}})

	secrets := append([]string{"correct horse battery staple", "wrong horse battery staple", token, csrfCookie, secret, code,
		s.cookie("gatehouse_session")}, codes...)
	log := a.log.String()
	for _, v := range secrets {
		for _, form := range []string{v, url.QueryEscape(v), base64.StdEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v))} {
			if form != "" && strings.Contains(log, form) {
				t.Fatalf("the log contains a secret (%.8s…)", v)
			}
		}
	}
	evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Limit: 1000})
	for _, e := range evs {
		for _, v := range secrets {
			if strings.Contains(e.Detail+e.Subject+e.Actor, v) {
				t.Fatalf("an audit row contains a secret: %+v", e)
			}
		}
	}
}

func TestExpiryAndLogoutAreAudited(t *testing.T) {
	a := newTestApp(t)
	a.createUser("alice", db.RoleStaff, "correct horse battery")
	c := a.client()
	c.login("alice", "correct horse battery")
	a.advance(2 * time.Hour)
	c.get("/")
	evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "session.expired"})
	if len(evs) != 1 || evs[0].Subject != "alice" || evs[0].Detail != "idle limit reached" || !strings.HasSuffix(db.FormatTime(evs[0].At), "Z") {
		t.Fatalf("expiry audit %+v", evs)
	}
	c.login("alice", "correct horse battery")
	c.post("/logout", nil)
	if evs, _ := a.db.ListEvents(context.Background(), db.AuditFilter{Kind: "signout"}); len(evs) != 1 {
		t.Fatalf("logout audit %+v", evs)
	}
}

package handlers

import (
	"context"
	"net/url"
	"testing"

	"gatehouse/db"
)

// FuzzParseAudience checks the audience field parser: it either refuses a value or returns
// only valid roles and known groups, never both "everyone" and a narrower audience.
func FuzzParseAudience(f *testing.F) {
	for _, s := range []string{"everyone", "role:staff", "role:root", "group:1", "group:-1", "group:99999999999999999999", "x", "role:", ":"} {
		f.Add(s, "role:admin")
	}
	groups := map[int64]string{1: "ops", 2: "night"}
	f.Fuzz(func(t *testing.T, a, b string) {
		aud, ok := db.ParseAudience([]string{a, b}, groups)
		if !ok {
			return
		}
		if aud.Everyone && (len(aud.Roles) > 0 || len(aud.GroupIDs) > 0) {
			t.Fatal("everyone plus a narrower audience")
		}
		for _, r := range aud.Roles {
			if !db.ValidRole(r) {
				t.Fatalf("role %q", r)
			}
		}
		for _, g := range aud.GroupIDs {
			if _, ok := groups[g]; !ok {
				t.Fatalf("group %d", g)
			}
		}
	})
}

// FuzzResolveCookie feeds arbitrary session cookie values through the whole request path:
// a value that is not a live session never authenticates and never causes a 5xx.
func FuzzResolveCookie(f *testing.F) {
	for _, s := range []string{"", "garbage", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "a b", "%00", "\"quoted\""} {
		f.Add(s)
	}
	a := newTestApp(f)
	f.Fuzz(func(t *testing.T, v string) {
		req := newGet("/account")
		req.Header.Set("Cookie", "gatehouse_session="+v+"; gatehouse_session="+v)
		resp := a.serve(req)
		if resp.StatusCode >= 500 {
			t.Fatalf("cookie %q: status %d", v, resp.StatusCode)
		}
		if resp.StatusCode == 200 {
			t.Fatalf("cookie %q authenticated", v)
		}
	})
}

// FuzzAppNext feeds arbitrary next values to the rule that lets next leave the portal: a
// value it keeps is an http or https URL without a user, on the one registered host, and
// reads back as itself.
func FuzzAppNext(f *testing.F) {
	for _, s := range []string{"http://app.example.com/", "HTTP://APP.EXAMPLE.COM./x?y=1#z", "http://app.example.com@evil.example/",
		"//app.example.com/", "https:app.example.com", "http://app.example.com:80/", "http://evil.example\\@app.example.com/",
		"http://app.example.com%2F@evil/", "javascript://app.example.com/%0aalert(1)"} {
		f.Add(s)
	}
	a := newForwardApp(f)
	a.addApp(f, db.AppInput{Host: "app.example.com"})
	h := &Handler{cfg: a.cfg, db: a.db}
	f.Fuzz(func(t *testing.T, v string) {
		target, app, ok, err := h.appNext(context.Background(), v)
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if !ok {
			return
		}
		u, err := url.Parse(target)
		if err != nil || u.User != nil || u.Opaque != "" || (u.Scheme != "http" && u.Scheme != "https") ||
			u.Host != "app.example.com" || app.Host != u.Host {
			t.Fatalf("%q kept as %q (app %q)", v, target, app.Host)
		}
		if again, _, ok, _ := h.appNext(context.Background(), target); !ok || again != target {
			t.Fatalf("%q kept as %q, which reads back as %q, %v", v, target, again, ok)
		}
	})
}

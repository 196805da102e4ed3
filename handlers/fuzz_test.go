package handlers

import (
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

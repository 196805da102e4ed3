package handlers

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"gatehouse/db"
)

// TestGroupNamesRefuseCommas: apps get a user's groups as one comma-separated header, so a
// new group name may not hold a comma.
func TestGroupNamesRefuseCommas(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	admin := a.client()
	admin.login("root", "correct horse battery")
	admin.get("/admin/groups")
	resp := admin.post("/admin/groups", url.Values{"name": {"night, shift"}})
	wantStatus(t, resp, http.StatusUnprocessableEntity)
	if !strings.Contains(body(t, resp), "Leave commas out") {
		t.Fatalf("refusal: %s", body(t, resp))
	}
	if gs, _ := a.db.ListGroups(context.Background()); len(gs) != 0 {
		t.Fatalf("groups %v", gs)
	}
}

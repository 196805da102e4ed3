package handlers

import (
	"context"
	"encoding/csv"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gatehouse/db"
)

// TestGroupNameWithACommaCountsOnce: a group named "Ops, EU" is one group on a notice's
// receipts page and in its CSV, not the two groups "Ops" and "EU".
func TestGroupNameWithACommaCountsOnce(t *testing.T) {
	ctx := context.Background()
	a := newTestApp(t)
	root := a.createUser("root", db.RoleAdmin, "correct horse battery")
	amy := a.createUser("amy", db.RoleStaff, "correct horse battery")
	bob := a.createUser("bob", db.RoleStaff, "correct horse battery")
	ev := db.Event{At: a.clock()}
	opsEU, err := a.db.CreateGroup(ctx, "Ops, EU", ev)
	if err != nil {
		t.Fatal(err)
	}
	night, err := a.db.CreateGroup(ctx, "Night", ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ group, user int64 }{{opsEU.ID, amy.ID}, {opsEU.ID, bob.ID}, {night.ID, bob.ID}} {
		if err := a.db.AddGroupMember(ctx, m.group, m.user, ev); err != nil {
			t.Fatal(err)
		}
	}
	n, err := a.db.CreateNotice(ctx, db.NoticeInput{Title: "Rota", Body: "New rota.", Kind: db.NoticeMustRead,
		Severity: db.SeverityInfo, Audience: db.Audience{GroupIDs: []int64{opsEU.ID}}}, root, ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.db.AckNotice(ctx, n.ID, amy, ev); err != nil {
		t.Fatal(err)
	}
	admin := a.client()
	admin.login("root", "correct horse battery")
	sid := strconv.FormatInt(n.ID, 10)

	page := body(t, admin.get("/admin/notices/"+sid))
	rows := regexp.MustCompile(`<tr><td>([^<]*)</td><td>(\d+)</td><td>(\d+)</td></tr>`).FindAllStringSubmatch(page, -1)
	byGroup := map[string]string{}
	for _, r := range rows {
		byGroup[r[1]] = r[2] + " of " + r[3]
	}
	if len(byGroup) != 2 || byGroup["Ops, EU"] != "1 of 2" || byGroup["Night"] != "0 of 1" {
		t.Errorf("by group: %v, want Ops, EU 1 of 2 and Night 0 of 1", byGroup)
	}

	resp := admin.get("/admin/notices/" + sid + "/receipts.csv")
	wantStatus(t, resp, http.StatusOK)
	records, err := csv.NewReader(strings.NewReader(body(t, resp))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]string{}
	for _, r := range records[1:] {
		groups[r[0]] = r[3]
	}
	if len(records) != 3 || groups["amy"] != "Ops, EU" || groups["bob"] != "Night, Ops, EU" {
		t.Errorf("CSV groups: %q", groups)
	}
}

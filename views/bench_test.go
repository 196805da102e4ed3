package views

import (
	"bytes"
	"context"
	"testing"
	"time"

	"gatehouse/db"
)

// BenchmarkDashboardRender renders the dashboard with three banners, as a page view does
// after its reads.
func BenchmarkDashboardRender(b *testing.B) {
	me := db.User{ID: 1, Username: "alice", DisplayName: "Alice", Role: db.RoleStaff}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	body := "The VPN gateway moves tonight.\nDetails: https://wiki.example/vpn-move."
	p := Page{Title: "Dashboard", Me: &me, CSRF: "token.mac", Location: time.UTC, Path: "/", Now: now,
		Banners: []db.Notice{
			{ID: 1, Title: "Read this", Body: body, Kind: db.NoticeMustRead, Severity: db.SeverityCritical},
			{ID: 2, Title: "Heads up", Body: body, Kind: db.NoticeNormal, Severity: db.SeverityWarning},
			{ID: 3, Title: "FYI", Body: body, Kind: db.NoticeNormal, Severity: db.SeverityInfo},
		}}
	page := DashboardPage(p, Dashboard{Sessions: 2, RecoveryLeft: 10})
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := page.Render(context.Background(), &buf); err != nil {
			b.Fatal(err)
		}
	}
}

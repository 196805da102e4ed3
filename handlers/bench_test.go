package handlers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/internal/dbtest"
	"gatehouse/internal/testkit"
)

var benchWorlds = []struct {
	name string
	size db.BenchSize
}{
	{"small", db.BenchSize{Users: 12, Notices: 10, Current: 4, Scheduled: 1, Receipts: 10, Dismissals: 4}},
	{"large", db.BenchSize{Users: 1002, Notices: 1000, Current: 20, Scheduled: 5, Receipts: 100_000, Dismissals: 30_000}},
}

// benchReader is the account a benchmark signs in as: staff and in ops, so in the audience
// of most current notices.
const benchReader = 3

// seeded is a portal filled per a benchmark size, with its reader signed in.
type seeded struct {
	a       *testApp
	reader  db.User
	cookies []*http.Cookie // the reader's browser cookies: session (and CSRF, if set)
	banners int            // how many banners the reader sees
}

const benchPassword = "correct horse battery"

// seedBench fills a fresh portal with db.SeedBench, which the load test uses too; nothing
// here is timed.
func seedBench(b *testing.B, size db.BenchSize, tweak ...func(*Config)) seeded {
	b.Helper()
	return seedBenchOn(b, openStore(b), size, tweak...)
}

// seedBenchOn is seedBench on a store the benchmark opened.
func seedBenchOn(b *testing.B, store *db.DB, size db.BenchSize, tweak ...func(*Config)) seeded {
	b.Helper()
	start := time.Now()
	ctx := context.Background()
	a := buildTestAppOn(b, store, false, tweak...)
	now := a.clock()
	seed, err := a.db.SeedBench(ctx, size, testkit.CheapHash(b, benchPassword), now)
	if err != nil {
		b.Fatal(err)
	}
	c := a.client()
	c.login(seed.Usernames[benchReader], benchPassword)
	// A browser's first page after sign-in brings the form token cookie bound to the new
	// session, which it sends back from then on: the page views measured are the later ones.
	wantStatus(b, c.get("/"), http.StatusOK)
	// The reader as a page sees them: with their groups, from the session lookup.
	_, reader, err := a.db.SessionByTokenHash(ctx, auth.HashToken(c.cookie("gatehouse_session")))
	if err != nil {
		b.Fatal(err)
	}
	banners, err := bannerSource(a).bannersFor(echoContext(), reader, now)
	if err != nil {
		b.Fatal(err)
	}
	if len(banners) == 0 {
		b.Fatalf("the reader sees no banners; the benchmark would not render any")
	}
	b.Logf("seeded in %v: %d users, %d notices (%d current), %d acks, %d dismissals; the reader sees %d banners",
		time.Since(start).Round(time.Millisecond), size.Users, size.Notices, size.Current, seed.Acks, seed.Dismissals, len(banners))
	return seeded{a: a, reader: reader, cookies: c.jar.Cookies(baseURL), banners: len(banners)}
}

// BenchmarkDashboard is one signed-in page view of / — session lookup, banners, the
// dashboard's own reads and rendering — with few notices and with years of them. Besides
// time and allocations it reports the store's round trips per view with nothing committed
// meanwhile (the in-memory copies hold; what is left is the change check), and, once, the
// round trips of a view just after a commit, when every copy is read again.
func BenchmarkDashboard(b *testing.B) {
	for _, tc := range benchWorlds {
		b.Run(tc.name, func(b *testing.B) { benchDashboard(b, seedBench(b, tc.size)) })
	}
}

// BenchmarkDashboardPostgres is BenchmarkDashboard on PostgreSQL, in the same run, when
// GATEHOUSE_TEST_POSTGRES names a server.
func BenchmarkDashboardPostgres(b *testing.B) {
	for _, tc := range benchWorlds {
		b.Run(tc.name, func(b *testing.B) {
			store, err := db.Open(context.Background(), dbtest.PostgresDSN(b, migrateStore))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { store.Close() })
			benchDashboard(b, seedBenchOn(b, store, tc.size))
		})
	}
}

func benchDashboard(b *testing.B, s seeded) {
	view := func() {
		req := httptest.NewRequest(http.MethodGet, testBase+"/", nil)
		req.RemoteAddr = "192.0.2.10:5555"
		req.Header.Set("Sec-Fetch-Site", "same-origin") // as browsers send it, following a link of the portal
		for _, ck := range s.cookies {
			req.AddCookie(ck)
		}
		rec := httptest.NewRecorder()
		s.a.e.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET /: status %d, Location %q; body:\n%.1000s", rec.Code, rec.Header().Get("Location"), rec.Body.String())
		}
	}
	cold := coldViewTrips(b, s, view)
	b.ReportAllocs()
	before := s.a.db.RoundTrips()
	for b.Loop() {
		view()
	}
	b.ReportMetric(float64(s.a.db.RoundTrips()-before)/float64(b.N), "roundtrips/op")
	b.ReportMetric(float64(cold), "roundtrips/cold-view")
}

// coldViewTrips commits a change no page shows (a new group) and counts the round trips
// of the one view after it, which finds every in-memory copy stale.
func coldViewTrips(b *testing.B, s seeded, view func()) uint64 {
	view() // the copies are warm
	if _, err := s.a.db.CreateGroup(context.Background(), "bench cold cache", db.Event{At: s.a.clock()}); err != nil {
		b.Fatal(err)
	}
	before := s.a.db.RoundTrips()
	view()
	return s.a.db.RoundTrips() - before
}

// bannerSource is the banner path of a page view on its own: the in-memory live notices
// and the reader's own acknowledgements, read from the store each time.
func bannerSource(a *testApp) *Handler {
	return &Handler{db: a.db, live: &liveNotices{db: a.db}}
}

// echoContext is a request's context for calling one step of a page on its own.
func echoContext() echo.Context {
	return echo.New().NewContext(httptest.NewRequest(http.MethodGet, testBase+"/", nil), httptest.NewRecorder())
}

// BenchmarkBannersFor is what every signed-in page does for its banners.
func BenchmarkBannersFor(b *testing.B) {
	for _, tc := range benchWorlds {
		b.Run(tc.name, func(b *testing.B) {
			s := seedBench(b, tc.size)
			now := s.a.clock()
			h := bannerSource(s.a)
			b.ReportAllocs()
			for b.Loop() {
				ns, err := h.bannersFor(echoContext(), s.reader, now)
				if err != nil {
					b.Fatal(err)
				}
				if len(ns) != s.banners {
					b.Fatalf("%d banners, want %d", len(ns), s.banners)
				}
			}
		})
	}
}

// benchAppHost is the app of BenchmarkAuthVerify, on the portal's own host, which its
// cookie reaches.
const benchAppHost = "localhost:9000"

// BenchmarkAuthVerify is one forward-auth check of the benchmark reader's request to an
// app, next to BenchmarkDashboard: the same session lookup, then the app and the reader's
// group names instead of a page.
func BenchmarkAuthVerify(b *testing.B) {
	for _, tc := range benchWorlds {
		b.Run(tc.name, func(b *testing.B) {
			s := seedBench(b, tc.size, func(c *Config) { c.TrustedProxies = mustNets(b, "127.0.0.1/32") })
			s.a.addApp(b, db.AppInput{Host: benchAppHost})
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, testBase+"/auth/verify", nil)
				req.RemoteAddr = "127.0.0.1:5555"
				req.Header.Set("X-Forwarded-Method", http.MethodGet)
				req.Header.Set("X-Forwarded-Proto", "http")
				req.Header.Set("X-Forwarded-Host", benchAppHost)
				req.Header.Set("X-Forwarded-Uri", "/wiki/Start")
				for _, ck := range s.cookies {
					req.AddCookie(ck)
				}
				rec := httptest.NewRecorder()
				s.a.e.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || rec.Header().Get("Remote-Groups") == "" {
					b.Fatalf("GET /auth/verify: status %d, Location %q, Remote-Groups %q", rec.Code, rec.Header().Get("Location"),
						rec.Header().Get("Remote-Groups"))
				}
			}
		})
	}
}

// BenchmarkSessionRead is the session lookup alone, which the dashboard and the
// forward-auth check both start with.
func BenchmarkSessionRead(b *testing.B) {
	for _, tc := range benchWorlds {
		b.Run(tc.name, func(b *testing.B) {
			s := seedBench(b, tc.size)
			h := &Handler{cfg: s.a.cfg, db: s.a.db, log: slogDiscard(), now: s.a.clock,
				counts: newCounters(s.a.db, slogDiscard(), s.a.clock)}
			e := echo.New()
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, testBase+"/", nil)
				for _, ck := range s.cookies {
					req.AddCookie(ck)
				}
				r, err := h.readSession(e.NewContext(req, httptest.NewRecorder()), "localhost")
				if err != nil || !r.found {
					b.Fatalf("session read: %+v, %v", r, err)
				}
			}
		})
	}
}

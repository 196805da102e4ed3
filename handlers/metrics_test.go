package handlers

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gatehouse/auth"
	"gatehouse/db"
)

func (a *testApp) scrape(tb testing.TB) string {
	tb.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestMetricsCountWhatHappened(t *testing.T) {
	a := newTestApp(t)
	a.createUser("root", db.RoleAdmin, "correct horse battery")
	a.createUser("sam", db.RoleStaff, "correct horse battery")
	admin := a.client()
	admin.login("root", "correct horse battery")
	id := admin.postNotice(t, noticeForm("Read", "this", "must_read", "everyone"))

	bad := a.client()
	bad.get("/login")
	bad.post("/login", url.Values{"username": {"sam"}, "password": {"wrong horse battery"}})
	sam := a.client()
	sam.login("sam", "correct horse battery")
	before := a.scrape(t)
	if !strings.Contains(before, "gatehouse_must_read_outstanding 2") {
		t.Fatalf("outstanding before the acknowledgement:\n%s", grep(before, "must_read"))
	}
	sam.get("/")
	sam.post("/notices/"+strconv.FormatInt(id, 10)+"/ack", url.Values{"return": {"/"}})
	stale := a.client()
	stale.jar.SetCookies(baseURL, []*http.Cookie{{Name: "gatehouse_session", Value: auth.NewToken()}})
	stale.get("/")
	sam.get("/no/such")

	out := a.scrape(t)
	for _, want := range []string{
		`gatehouse_signins_total{outcome="success",step="password"} 2`,
		`gatehouse_signins_total{outcome="failure",step="password"} 1`,
		`gatehouse_must_read_outstanding 1`,
		`gatehouse_active_sessions 2`,
		`gatehouse_security_events_total{kind="stale_cookie_cleared"} 1`,
		`gatehouse_http_requests_total{code="303",method="POST",route="/notices/:id/ack"} 1`,
		`gatehouse_http_request_duration_seconds_count{route="/login"}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(out, `route="/no/such"`) || !strings.Contains(out, `route="unmatched"`) {
		t.Error("an unknown path became a label")
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestMetricLabelsAreBounded: every label comes from a fixed set, so requests with made-up
// methods, paths or huge methods cannot grow the registry a series (or a label) at a time.
func TestMetricLabelsAreBounded(t *testing.T) {
	a := newTestApp(t)
	for i := range 50 {
		for _, path := range []string{"/", "/login", "/notices/7", "/no/such/" + strconv.Itoa(i)} {
			a.serve(httptest.NewRequest("ZZMETHOD"+strconv.Itoa(i), testBase+path, nil))
		}
	}
	a.serve(httptest.NewRequest(strings.Repeat("M", 30<<10), testBase+"/login", nil))
	a.serve(httptest.NewRequest(http.MethodPut, testBase+"/login", nil))

	out := a.scrape(t)
	series := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "gatehouse_http_") {
			continue
		}
		if len(l) > 200 {
			t.Fatalf("a label grew with the request: %.200s…", l)
		}
		series[strings.SplitN(l, "{", 2)[0]]++
	}
	for _, want := range []string{
		`gatehouse_http_requests_total{code="405",method="other",route="/login"} 51`,
		`gatehouse_http_requests_total{code="405",method="PUT",route="/login"} 1`,
		`gatehouse_http_requests_total{code="405",method="other",route="/notices/:id"} 50`,
		`gatehouse_http_requests_total{code="404",method="other",route="unmatched"} 50`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s:\n%s", want, grep(out, "gatehouse_http_requests_total{"))
		}
	}
	if strings.Contains(out, "ZZMETHOD") || strings.Contains(out, "/no/such") {
		t.Error("a client's method or path became a label")
	}
	if n := series["gatehouse_http_requests_total"]; n > 6 {
		t.Errorf("%d request series for 4 routes and 2 methods", n)
	}
}

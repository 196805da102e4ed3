package handlers

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"gatehouse/db"
)

// metrics are the Prometheus series the portal exports when a registry is given. Every
// method is safe on a nil *metrics, so the rest of the code never checks whether metrics
// are on.
type metrics struct {
	// routes are the paths of the route table, the only values the route label takes.
	routes   map[string]bool
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	signins  *prometheus.CounterVec
	events   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, store *db.DB, now func() time.Time) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gatehouse_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_signins_total", Help: "Sign-in attempts by step (password, mfa, recovery_code, passkey, reauth) and outcome.",
		}, []string{"step", "outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_security_events_total",
			Help: "Security events: throttled attempts, refused TOTP replays, passkey clone warnings, stale cookies cleared, CSRF refusals, server errors, notices not loaded.",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.requests, m.latency, m.signins, m.events, &stateCollector{db: store, now: now})
	return m
}

// knowRoutes records the route table once it is complete.
func (m *metrics) knowRoutes(routes []*echo.Route) {
	if m == nil {
		return
	}
	m.routes = make(map[string]bool, len(routes))
	for _, r := range routes {
		m.routes[r.Path] = true
	}
}

// observe counts one request. Every label is drawn from a fixed set, never copied from
// the request: a client sending made-up methods or paths would otherwise leave a new
// series in memory with each request, for as long as the process runs.
func (m *metrics) observe(c echo.Context, elapsed time.Duration) {
	if m == nil {
		return
	}
	status := c.Response().Status
	route := c.Path()
	if status == http.StatusNotFound || !m.routes[route] {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, methodLabel(c.Request().Method), codeLabel(status)).Inc()
	m.latency.WithLabelValues(route).Observe(elapsed.Seconds())
}

// methodLabel keeps the standard methods and folds any other into "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodPatch, http.MethodOptions, http.MethodTrace, http.MethodConnect:
		return method
	}
	return "other"
}

// codeLabel keeps the three digits of a real status code.
func codeLabel(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status)
}

func (m *metrics) signin(step, outcome string) {
	if m != nil {
		m.signins.WithLabelValues(step, outcome).Inc()
	}
}

func (m *metrics) event(kind string) {
	if m != nil {
		m.events.WithLabelValues(kind).Inc()
	}
}

// stateCollector reads the current state from the database at scrape time.
type stateCollector struct {
	db  *db.DB
	now func() time.Time
}

var (
	sessionsDesc = prometheus.NewDesc("gatehouse_active_sessions", "Sessions in the database.", nil, nil)
	mustReadDesc = prometheus.NewDesc("gatehouse_must_read_outstanding",
		"Current must-read notices not yet acknowledged, summed over their readers.", nil, nil)
)

func (s *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sessionsDesc; ch <- mustReadDesc }

func (s *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := s.db.CountSessions(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(n))
	} else {
		ch <- prometheus.NewInvalidMetric(sessionsDesc, err)
	}
	if n, err := s.db.MustReadOutstanding(ctx, s.now()); err == nil {
		ch <- prometheus.MustNewConstMetric(mustReadDesc, prometheus.GaugeValue, float64(n))
	} else {
		ch <- prometheus.NewInvalidMetric(mustReadDesc, err)
	}
}

// Package handlers is Gatehouse's HTTP layer: echo handlers, middleware and the route table.
package handlers

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/mail"
)

// Config is the part of the command-line configuration the HTTP layer needs.
type Config struct {
	BaseURL     *url.URL
	SessionIdle time.Duration
	SessionMax  time.Duration
	Location    *time.Location
	// TrustedProxies are the peers whose X-Forwarded-For names the client; with none, the
	// TCP peer is the client and the header is ignored.
	TrustedProxies []*net.IPNet
	// CookieDomain, when set, is the Domain of the session cookie, so that it reaches the
	// apps behind forward auth on hosts within it; "" keeps the cookie to the portal's host.
	CookieDomain string
}

// cookieReach says which hosts the session cookie reaches.
func (c Config) cookieReach() db.CookieReach {
	return db.CookieReach{PortalHost: c.BaseURL.Hostname(), Domain: c.CookieDomain}
}

// Secure reports whether the portal is served over https, which turns on Secure cookies,
// the __Host- prefix and HSTS.
func (c Config) Secure() bool { return c.BaseURL != nil && c.BaseURL.Scheme == "https" }

// Deps are the collaborators a Handler uses.
type Deps struct {
	DB     *db.DB
	Log    *slog.Logger
	Hasher *auth.Hasher
	Keys   *auth.Keyring
	Now    func() time.Time // time.Now in main; fixed in tests (TOTP, sessions)
	// Metrics, when set, receives the portal's Prometheus series.
	Metrics prometheus.Registerer
	// Mail, when set, is the outbox's scheduler and sender, told to run at once after a
	// change that enqueued mail; nil means mail is off, and the pages that would send
	// one say so.
	Mail *mail.Service
}

// Handler carries the dependencies of every route.
type Handler struct {
	cfg     Config
	db      *db.DB
	log     *slog.Logger
	hasher  *auth.Hasher
	keys    *auth.Keyring
	now     func() time.Time
	csrfKey []byte
	addrs   *addrLimiter
	counts  *counters
	metrics *metrics
	live    *liveNotices
	// exact keeps what most requests read; nil when the store cannot keep it exact.
	exact *exactCaches
	// fixedHeaders are the security headers of every response.
	fixedHeaders http.Header
	mail         *mail.Service
	// passkeys runs the WebAuthn ceremonies; nil when the base URL is an IP address, which
	// browsers do not accept for passkeys.
	passkeys *auth.RelyingParty
}

// mailOn reports whether the portal sends mail.
func (h *Handler) mailOn() bool { return h.mail != nil }

// PartialSessionMax bounds how long the password step stays valid without the second one;
// housekeeping purges partial sessions older than this.
const PartialSessionMax = 10 * time.Minute

// touchInterval is how stale last_seen may get, so that page views are not writes.
const touchInterval = time.Minute

// enrollmentTTL is how long a shown, unconfirmed TOTP secret stays valid.
const enrollmentTTL = 15 * time.Minute

// bodyLimit caps request bodies; every form of the portal fits easily.
const bodyLimit = 1 << 20

package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/mail"
)

// Config is the whole configuration: flags, each with an environment variable; flags win.
type Config struct {
	DB          string
	Addr        string
	BaseURL     *url.URL
	SessionIdle time.Duration
	SessionMax  time.Duration
	LogFormat   string // "text", "json" or "" (text on a terminal, else json)
	Location    *time.Location
	KeyFile     string
	// TrustedProxies are the peers whose X-Forwarded-For is believed; none by default.
	TrustedProxies []*net.IPNet
	AuditRetention time.Duration
	MetricsAddr    string
	// Mail is how to reach the SMTP server; a zero Addr means no mail.
	Mail mail.Config
	// CookieDomain is the Domain of the session cookie, so that it reaches the apps behind
	// forward auth; "" keeps it to the portal's host.
	CookieDomain string
}

// settings holds the raw strings until validation, so a bad value is reported by name.
type settings struct {
	db, addr, baseURL, idle, max, logFormat, timezone, keyFile string
	trustedProxies, auditRetention, metricsAddr                string
	smtpAddr, smtpFrom, smtpUser, smtpPasswordFile, smtpTLS    string
	cookieDomain                                               string
}

type setting struct {
	flag, env, def, help string
	dst                  *string
}

func (s *settings) table() []setting {
	return []setting{
		{"db", "GATEHOUSE_DB", "gatehouse.db", "SQLite database file, or a postgres:// URL of a PostgreSQL database (then --key-file is required)", &s.db},
		{"addr", "GATEHOUSE_ADDR", "127.0.0.1:8080", "address to listen on", &s.addr},
		{"base-url", "GATEHOUSE_BASE_URL", "http://localhost:8080", "public URL of the portal; https turns on Secure cookies and HSTS", &s.baseURL},
		{"session-idle", "GATEHOUSE_SESSION_IDLE", "1h", "sign out after this long without activity", &s.idle},
		{"session-max", "GATEHOUSE_SESSION_MAX", "24h", "sign out this long after sign-in whatever the activity (accepts d for days)", &s.max},
		{"log-format", "GATEHOUSE_LOG_FORMAT", "", "text or json (default: text on a terminal, else json)", &s.logFormat},
		{"timezone", "GATEHOUSE_TIMEZONE", "", "IANA zone for times shown and entered (default: the machine's zone)", &s.timezone},
		{"key-file", "GATEHOUSE_KEY_FILE", "", "key that encrypts TOTP secrets (default: <db>.key)", &s.keyFile},
		{"trusted-proxies", "GATEHOUSE_TRUSTED_PROXIES", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed (default: none)", &s.trustedProxies},
		{"audit-retention", "GATEHOUSE_AUDIT_RETENTION", "400d", "how long audit rows are kept before they are purged (accepts d for days)", &s.auditRetention},
		{"metrics-addr", "GATEHOUSE_METRICS_ADDR", "", "address for Prometheus metrics, e.g. 127.0.0.1:9090 (default: off)", &s.metricsAddr},
		{"smtp-addr", "GATEHOUSE_SMTP_ADDR", "", "SMTP server host:port that mail goes through (default: none, and no mail)", &s.smtpAddr},
		{"smtp-from", "GATEHOUSE_SMTP_FROM", "", "sender of every mail, e.g. \"Gatehouse <portal@example.com>\" (required with --smtp-addr)", &s.smtpFrom},
		{"smtp-user", "GATEHOUSE_SMTP_USER", "", "user name to sign in to the SMTP server with (default: none)", &s.smtpUser},
		{"smtp-password-file", "GATEHOUSE_SMTP_PASSWORD_FILE", "", "file whose first line is the SMTP password (default: none)", &s.smtpPasswordFile},
		{"smtp-tls", "GATEHOUSE_SMTP_TLS", "starttls", "starttls, tls (from the first byte), or none (only to a loopback address)", &s.smtpTLS},
		{"cookie-domain", "GATEHOUSE_COOKIE_DOMAIN", "", "domain the session cookie covers, e.g. example.com, so that apps behind forward auth on hosts within it share the sign-in (default: the portal's host only)", &s.cookieDomain},
	}
}

// addConfigFlags registers every setting on fs, with the environment as the default.
func addConfigFlags(fs *flag.FlagSet, getenv func(string) string) *settings {
	s := &settings{}
	for _, st := range s.table() {
		def := st.def
		if v := getenv(st.env); v != "" {
			def = v
		}
		fs.StringVar(st.dst, st.flag, def, fmt.Sprintf("%s (env %s)", st.help, st.env))
	}
	return s
}

func settingName(flagName string) string {
	for _, st := range (&settings{}).table() {
		if st.flag == flagName {
			return "--" + st.flag + " (" + st.env + ")"
		}
	}
	return "--" + flagName
}

func invalid(flagName, value, why string) error {
	return fmt.Errorf("invalid %s %q: %s", settingName(flagName), value, why)
}

// config validates every setting, returning the first problem in one line.
func (s *settings) config() (Config, error) {
	c := Config{DB: s.db, Addr: s.addr, KeyFile: s.keyFile}
	for _, step := range []func(*Config) error{s.storeConfig, s.webConfig, s.sessionConfig, s.proxyConfig,
		s.operationsConfig, s.localConfig} {
		if err := step(&c); err != nil {
			return c, err
		}
	}
	return c, nil
}

// storeConfig checks where the data lives and where the portal listens.
func (s *settings) storeConfig(c *Config) error {
	if strings.TrimSpace(c.DB) == "" {
		return invalid("db", s.db, "must not be empty")
	}
	if c.KeyFile == "" && db.IsPostgresURL(c.DB) {
		// Every instance on the database needs the same key, so it cannot live beside the
		// database: it is given, and shared, on purpose.
		return fmt.Errorf("%s is required with a PostgreSQL --db: every instance must use the same key file", settingName("key-file"))
	}
	if c.KeyFile == "" {
		c.KeyFile = c.DB + ".key"
	}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		return invalid("addr", s.addr, "want host:port, for example 127.0.0.1:8080")
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return invalid("addr", s.addr, "the port must be a number from 0 to 65535")
	}
	return nil
}

// webConfig reads the address people reach the portal at.
func (s *settings) webConfig(c *Config) (err error) {
	c.BaseURL, err = parseBaseURL(s.baseURL)
	return err
}

// sessionConfig reads how long a session lasts idle and at most.
func (s *settings) sessionConfig(c *Config) (err error) {
	if c.SessionIdle, err = parseDuration(s.idle); err != nil {
		return invalid("session-idle", s.idle, err.Error())
	}
	if c.SessionMax, err = parseDuration(s.max); err != nil {
		return invalid("session-max", s.max, err.Error())
	}
	if c.SessionIdle > c.SessionMax {
		return invalid("session-idle", s.idle, "must not be longer than --session-max ("+s.max+")")
	}
	return nil
}

// proxyConfig reads the log format, the proxies whose headers are trusted and the domain
// session cookies are set for.
func (s *settings) proxyConfig(c *Config) (err error) {
	switch s.logFormat {
	case "", "text", "json":
		c.LogFormat = s.logFormat
	default:
		return invalid("log-format", s.logFormat, "want text or json")
	}
	if c.TrustedProxies, err = parseTrustedProxies(s.trustedProxies); err != nil {
		return err
	}
	c.CookieDomain, err = parseCookieDomain(s.cookieDomain, c.BaseURL)
	return err
}

// operationsConfig reads how long audit rows are kept, where metrics are served and how
// mail is sent.
func (s *settings) operationsConfig(c *Config) (err error) {
	if c.AuditRetention, err = parseDuration(s.auditRetention); err != nil {
		return invalid("audit-retention", s.auditRetention, err.Error())
	}
	if c.AuditRetention < 24*time.Hour {
		return invalid("audit-retention", s.auditRetention, "keep audit rows for at least a day")
	}
	if s.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(s.metricsAddr); err != nil {
			return invalid("metrics-addr", s.metricsAddr, "want host:port, for example 127.0.0.1:9090")
		}
		c.MetricsAddr = s.metricsAddr
	}
	c.Mail, err = s.mailConfig()
	return err
}

// localConfig reads the time zone times are shown and read in.
func (s *settings) localConfig(c *Config) (err error) {
	c.Location = time.Local
	if s.timezone != "" {
		if c.Location, err = time.LoadLocation(s.timezone); err != nil {
			return invalid("timezone", s.timezone, "not a known IANA time zone such as Europe/Berlin")
		}
	}
	return nil
}

// mailConfig reads the SMTP settings. Without --smtp-addr there is no mail, and a setting
// that only matters with it is refused rather than silently ignored. The password file is
// read here, so a missing one stops start-up (and check) before anything connects.
func (s *settings) mailConfig() (mail.Config, error) {
	if s.smtpAddr == "" {
		for _, o := range []struct{ flag, value string }{
			{"smtp-from", s.smtpFrom}, {"smtp-user", s.smtpUser}, {"smtp-password-file", s.smtpPasswordFile},
		} {
			if o.value != "" {
				return mail.Config{}, invalid(o.flag, o.value, "has no effect without --smtp-addr; set that too, or remove this")
			}
		}
		if s.smtpTLS != mail.TLSStartTLS {
			return mail.Config{}, invalid("smtp-tls", s.smtpTLS, "has no effect without --smtp-addr; set that too, or remove this")
		}
		return mail.Config{}, nil
	}
	c := mail.Config{Addr: s.smtpAddr, From: s.smtpFrom, User: s.smtpUser, TLS: s.smtpTLS}
	host, port, err := net.SplitHostPort(s.smtpAddr)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return c, invalid("smtp-addr", s.smtpAddr, "want host:port, for example smtp.example.com:587")
	}
	if s.smtpFrom == "" {
		return c, invalid("smtp-from", s.smtpFrom, "is required with --smtp-addr, for example \"Gatehouse <portal@example.com>\"")
	}
	if a, err := netmail.ParseAddress(s.smtpFrom); err != nil || !auth.SingleLine(s.smtpFrom) {
		return c, invalid("smtp-from", s.smtpFrom, "want an address such as portal@example.com or \"Gatehouse <portal@example.com>\"")
	} else if _, err := auth.CheckEmail(a.Address); err != nil {
		return c, invalid("smtp-from", s.smtpFrom, "want an address such as portal@example.com or \"Gatehouse <portal@example.com>\"")
	}
	switch s.smtpTLS {
	case mail.TLSStartTLS, mail.TLSImplicit:
	case mail.TLSNone:
		if !loopbackHost(host) {
			return c, invalid("smtp-tls", s.smtpTLS, "none sends passwords and reset links in clear, so it is allowed only to a loopback address such as 127.0.0.1")
		}
	default:
		return c, invalid("smtp-tls", s.smtpTLS, "want starttls, tls or none")
	}
	if (s.smtpUser == "") != (s.smtpPasswordFile == "") {
		if s.smtpUser == "" {
			return c, invalid("smtp-password-file", s.smtpPasswordFile, "needs --smtp-user too")
		}
		return c, invalid("smtp-user", s.smtpUser, "needs --smtp-password-file too")
	}
	if s.smtpPasswordFile != "" {
		pw, err := readSecretFile(s.smtpPasswordFile)
		if err != nil {
			return c, invalid("smtp-password-file", s.smtpPasswordFile, err.Error())
		}
		c.Password = pw
	}
	return c, nil
}

// loopbackHost reports whether host is this machine's loopback interface.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readSecretFile reads the first line of a file holding a secret, without its line ending.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", errors.New("cannot be read: " + strings.TrimPrefix(err.Error(), "open "+path+": "))
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", errors.New("its first line is empty")
	}
	return line, nil
}

// parseBaseURL reads --base-url: http or https, a host, and no path, query or user.
func parseBaseURL(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, invalid("base-url", v, "want an http or https URL with a host and no path, for example https://portal.example.com")
	}
	u.Path = ""
	return u, nil
}

// parseTrustedProxies reads --trusted-proxies: comma-separated CIDRs, where a single
// address stands for itself.
func parseTrustedProxies(v string) ([]*net.IPNet, error) {
	var nets []*net.IPNet
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") { // a single address
			if ip := net.ParseIP(part); ip != nil && ip.To4() != nil {
				part += "/32"
			} else {
				part += "/128"
			}
		}
		_, n, err := net.ParseCIDR(part)
		if err != nil {
			return nil, invalid("trusted-proxies", v, "want comma-separated CIDRs such as 10.0.0.0/8,::1/128")
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// parseCookieDomain reads --cookie-domain: a domain name (a leading dot is dropped, as
// browsers do) that holds the base URL's host, so the portal's own pages get the cookie
// too, and that is not a public suffix such as com or co.uk, which browsers refuse.
func parseCookieDomain(v string, base *url.URL) (string, error) {
	d := strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(strings.TrimSpace(v)), "."), ".")
	if d == "" {
		return "", nil
	}
	host := base.Hostname()
	if net.ParseIP(host) != nil {
		return "", invalid("cookie-domain", v, "the base URL's host "+host+" is an address, and a cookie for an address has no domain")
	}
	name, err := db.ParseAppHost(d)
	if err != nil || name != d {
		return "", invalid("cookie-domain", v, "want a domain name such as example.com, without a scheme or port")
	}
	if !db.HostWithin(host, d) {
		return "", invalid("cookie-domain", v, "the base URL's host "+host+" is not within it; want "+host+" or a parent such as "+parentDomain(host))
	}
	if suffix, _ := publicsuffix.PublicSuffix(d); suffix == d {
		return "", invalid("cookie-domain", v, "it is a public suffix, for which browsers refuse cookies; want a domain you own within it")
	}
	return d, nil
}

// parentDomain is host without its first label, or host itself when it has one label.
func parentDomain(host string) string {
	if _, parent, ok := strings.Cut(host, "."); ok && strings.Contains(parent, ".") {
		return parent
	}
	return host
}

// parseDuration is db.ParseDuration, the one reading of typed durations.
func parseDuration(s string) (time.Duration, error) { return db.ParseDuration(s) }

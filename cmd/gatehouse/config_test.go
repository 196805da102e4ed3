package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// envOf maps each flag to its environment variable, from the one settings table.
func envOf(tb testing.TB, flagName string) string {
	tb.Helper()
	for _, st := range (&settings{}).table() {
		if "--"+st.flag == flagName {
			return st.env
		}
	}
	tb.Fatalf("no setting %s", flagName)
	return ""
}

// badSettings are values that must stop every command before it touches anything.
var badSettings = []struct {
	name    string
	args    []string // flag, value pairs
	setting string   // what the error must name
}{
	{"an address without a port", []string{"--addr", "nonsense"}, "--addr"},
	{"an address with a port out of range", []string{"--addr", "127.0.0.1:70000"}, "--addr"},
	{"an ftp base URL", []string{"--base-url", "ftp://x"}, "--base-url"},
	{"a base URL with a path", []string{"--base-url", "https://h/path"}, "--base-url"},
	{"a base URL without a host", []string{"--base-url", "https://"}, "--base-url"},
	{"a base URL with a query", []string{"--base-url", "https://h/?a=b"}, "--base-url"},
	{"a zero idle timeout", []string{"--session-idle", "0"}, "--session-idle"},
	{"an idle timeout that is not a duration", []string{"--session-idle", "abc"}, "--session-idle"},
	{"an idle timeout longer than the default maximum", []string{"--session-idle", "25h"}, "--session-idle"},
	{"an idle timeout longer than the maximum given", []string{"--session-idle", "3d", "--session-max", "2d"}, "--session-idle"},
	{"a negative maximum", []string{"--session-max", "-1h"}, "--session-max"},
	{"a maximum in an unknown unit", []string{"--session-max", "2w"}, "--session-max"},
	{"log format xml", []string{"--log-format", "xml"}, "--log-format"},
	{"an unknown time zone", []string{"--timezone", "Mars/Olympus"}, "--timezone"},
	{"an empty database path", []string{"--db", " "}, "--db"},
	{"an SMTP address without a port", []string{"--smtp-addr", "mail.example.com", "--smtp-from", "portal@example.com"}, "--smtp-addr"},
	{"an SMTP server without a sender", []string{"--smtp-addr", "mail.example.com:587"}, "--smtp-from"},
	{"an SMTP sender that is no address", []string{"--smtp-addr", "mail.example.com:587", "--smtp-from", "portal"}, "--smtp-from"},
	{"an SMTP sender on two lines", []string{"--smtp-addr", "mail.example.com:587", "--smtp-from", "portal@example.com\nBcc: x@example.com"}, "--smtp-from"},
	{"an unknown SMTP TLS mode", []string{"--smtp-addr", "mail.example.com:587", "--smtp-from", "portal@example.com", "--smtp-tls", "ssl"}, "--smtp-tls"},
	{"SMTP in clear to another machine", []string{"--smtp-addr", "mail.example.com:25", "--smtp-from", "portal@example.com", "--smtp-tls", "none"}, "--smtp-tls"},
	{"an SMTP user without a password file", []string{"--smtp-addr", "mail.example.com:587", "--smtp-from", "portal@example.com", "--smtp-user", "portal"}, "--smtp-user"},
	{"an SMTP password file without a user", []string{"--smtp-addr", "mail.example.com:587", "--smtp-from", "portal@example.com", "--smtp-password-file", "/etc/hostname"}, "--smtp-password-file"},
	{"an SMTP password file that is missing", []string{"--smtp-addr", "mail.example.com:587", "--smtp-from", "portal@example.com", "--smtp-user", "portal", "--smtp-password-file", "/nonexistent/smtp-password"}, "--smtp-password-file"},
	{"an SMTP sender without a server", []string{"--smtp-from", "portal@example.com"}, "--smtp-from"},
	{"a cookie domain the base URL's host is not within", []string{"--base-url", "https://portal.example.com",
		"--cookie-domain", "example.org"}, "--cookie-domain"},
	{"a cookie domain that only ends like the host's", []string{"--base-url", "https://portal.example.com",
		"--cookie-domain", "le.com"}, "--cookie-domain"},
	{"a cookie domain that is a public suffix", []string{"--base-url", "https://portal.example.co.uk",
		"--cookie-domain", "co.uk"}, "--cookie-domain"},
	{"a cookie domain with a port", []string{"--base-url", "https://portal.example.com", "--cookie-domain", "example.com:443"}, "--cookie-domain"},
	{"a cookie domain that is a URL", []string{"--base-url", "https://portal.example.com", "--cookie-domain", "https://example.com"}, "--cookie-domain"},
	{"a cookie domain for an address", []string{"--base-url", "http://127.0.0.1:8080", "--cookie-domain", "0.0.1"}, "--cookie-domain"},
}

func TestBadSettingsStopEveryCommand(t *testing.T) {
	// rest may name "DEST", which becomes a path in the subtest's own directory.
	commands := []struct {
		words, rest []string
	}{
		{[]string{"serve"}, nil},
		{[]string{"check"}, nil},
		{[]string{"backup"}, []string{"DEST"}},
		{[]string{"user", "list"}, nil},
		{[]string{"user", "disable"}, []string{"U"}},
		{[]string{"sessions", "revoke"}, []string{"--all"}},
	}
	// prepare gives each subtest a database path that must never be created, since
	// validation comes first, and its arguments after the command words.
	prepare := func(t *testing.T, rest []string) (dir, path string, tail []string) {
		dir = t.TempDir()
		for _, r := range rest {
			if r == "DEST" {
				r = filepath.Join(dir, "DEST")
			}
			tail = append(tail, r)
		}
		return dir, filepath.Join(dir, "never.db"), tail
	}
	for _, tt := range badSettings {
		for _, cmd := range commands {
			name := strings.Join(cmd.words, " ")
			t.Run(tt.name+" stops "+name+" when given as a flag", func(t *testing.T) {
				dir, path, tail := prepare(t, cmd.rest)
				// A free port, so a serve that wrongly starts binds nothing in use, and a short
				// limit, so it fails fast.
				args := append(append([]string{}, cmd.words...), "--db", path, "--addr", "127.0.0.1:0")
				args = append(append(args, tt.args...), tail...)
				_, _, err := runFor(t, 5*time.Second, nil, "", args...)
				assertOneLine(t, err, "invalid "+tt.setting)
				assertEmptyDir(t, dir)
			})
			t.Run(tt.name+" stops "+name+" when given in the environment", func(t *testing.T) {
				dir, path, tail := prepare(t, cmd.rest)
				env := map[string]string{"GATEHOUSE_DB": path, "GATEHOUSE_ADDR": "127.0.0.1:0"}
				for i := 0; i+1 < len(tt.args); i += 2 {
					env[envOf(t, tt.args[i])] = tt.args[i+1]
				}
				args := append(append([]string{}, cmd.words...), tail...)
				_, _, err := runFor(t, 5*time.Second, env, "", args...)
				assertOneLine(t, err, "invalid "+tt.setting, envOf(t, tt.setting))
				assertEmptyDir(t, dir)
			})
		}
	}
}

func assertEmptyDir(tb testing.TB, dir string) {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		tb.Errorf("%s was created", e.Name())
	}
}

func TestGoodSettingsAreAccepted(t *testing.T) {
	path := newDatabase(t)
	tests := []struct {
		name string
		args []string
	}{
		{"a maximum in days", []string{"--session-max", "2d"}},
		{"an idle timeout in days under a longer maximum", []string{"--session-idle", "1d", "--session-max", "1.5d"}},
		{"an https base URL with a trailing slash", []string{"--base-url", "https://portal.example.com/"}},
		{"an explicit zone", []string{"--timezone", "UTC"}},
		{"an address on any interface", []string{"--addr", ":0"}},
		{"text logs", []string{"--log-format", "text"}},
		{"mail with STARTTLS, the default", []string{"--smtp-addr", "mail.example.com:587", "--smtp-from", "Gatehouse <portal@example.com>"}},
		{"mail with TLS from the first byte", []string{"--smtp-addr", "mail.example.com:465", "--smtp-from", "portal@example.com", "--smtp-tls", "tls"}},
		{"mail in clear to this machine", []string{"--smtp-addr", "127.0.0.1:25", "--smtp-from", "portal@example.com", "--smtp-tls", "none"}},
		{"mail in clear to localhost", []string{"--smtp-addr", "localhost:25", "--smtp-from", "portal@example.com", "--smtp-tls", "none"}},
		{"a cookie domain holding the base URL's host", []string{"--base-url", "https://portal.example.com", "--cookie-domain", ".Example.com"}},
		{"a cookie domain that is the base URL's host", []string{"--base-url", "https://portal.example.com", "--cookie-domain", "portal.example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" passes check", func(t *testing.T) {
			mustRun(t, "", append([]string{"check", "--db", path}, tt.args...)...)
		})
	}
}

// parseConfig parses args as a command's flags would, with env as the environment.
func parseConfig(tb testing.TB, env map[string]string, args ...string) (Config, error) {
	tb.Helper()
	fs := newFlags("test")
	s := addConfigFlags(fs, func(k string) string { return env[k] })
	if err := fs.Parse(args); err != nil {
		tb.Fatal(err)
	}
	return s.config()
}

func TestConfigSources(t *testing.T) {
	t.Run("the defaults are the spec's", func(t *testing.T) {
		c, err := parseConfig(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.DB != "gatehouse.db" || c.Addr != "127.0.0.1:8080" || c.BaseURL.String() != "http://localhost:8080" ||
			c.SessionIdle != time.Hour || c.SessionMax != 24*time.Hour || c.LogFormat != "" ||
			c.Location != time.Local || c.KeyFile != "gatehouse.db.key" {
			t.Errorf("defaults = %+v", c)
		}
	})
	t.Run("the environment is used when the flag is absent", func(t *testing.T) {
		c, err := parseConfig(t, map[string]string{"GATEHOUSE_DB": "/srv/g.db", "GATEHOUSE_SESSION_MAX": "2d",
			"GATEHOUSE_BASE_URL": "https://portal.example.com", "GATEHOUSE_TIMEZONE": "UTC"})
		if err != nil {
			t.Fatal(err)
		}
		if c.DB != "/srv/g.db" || c.KeyFile != "/srv/g.db.key" || c.SessionMax != 48*time.Hour ||
			c.BaseURL.String() != "https://portal.example.com" || c.Location.String() != "UTC" {
			t.Errorf("config = %+v", c)
		}
	})
	t.Run("a flag wins over the environment", func(t *testing.T) {
		c, err := parseConfig(t, map[string]string{"GATEHOUSE_SESSION_IDLE": "abc", "GATEHOUSE_KEY_FILE": "/env.key"},
			"--session-idle", "30m", "--key-file", "/flag.key")
		if err != nil {
			t.Fatal(err)
		}
		if c.SessionIdle != 30*time.Minute || c.KeyFile != "/flag.key" {
			t.Errorf("config = %+v", c)
		}
	})
	t.Run("a base URL's trailing slash is dropped", func(t *testing.T) {
		c, err := parseConfig(t, nil, "--base-url", "https://portal.example.com/")
		if err != nil {
			t.Fatal(err)
		}
		if got := c.BaseURL.String(); got != "https://portal.example.com" {
			t.Errorf("base URL = %q", got)
		}
	})
	t.Run("through run, check reads the database path from the environment", func(t *testing.T) {
		path := newDatabase(t)
		out, _, err := runIn(t, map[string]string{"GATEHOUSE_DB": path}, "", "check")
		if err != nil || !strings.Contains(out, path) {
			t.Errorf("check = %q, %v; want ok for %s", out, err, path)
		}
	})
	t.Run("through run, a flag wins over a bad environment value", func(t *testing.T) {
		path := newDatabase(t)
		env := map[string]string{"GATEHOUSE_DB": filepath.Join(t.TempDir(), "missing.db"), "GATEHOUSE_SESSION_IDLE": "abc"}
		out, _, err := runIn(t, env, "", "check", "--db", path, "--session-idle", "30m")
		if err != nil || !strings.Contains(out, path) {
			t.Errorf("check = %q, %v; want ok for %s", out, err, path)
		}
	})
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name, in string
		want     time.Duration
		wantErr  string
	}{
		{"minutes are a duration", "90m", 90 * time.Minute, ""},
		{"days are 24 hours", "2d", 48 * time.Hour, ""},
		{"fractional days are allowed", "1.5d", 36 * time.Hour, ""},
		{"days combine with hours", "1d12h", 36 * time.Hour, ""},
		{"zero is refused", "0", 0, "longer than zero"},
		{"a negative duration is refused", "-1h", 0, "longer than zero"},
		{"words are refused", "abc", 0, "want a duration"},
		{"a unit without a number is refused", "d", 0, "want a duration"},
		{"an empty value is refused", "", 0, "want a duration"},
		{"a number without a unit is refused", "12", 0, "want a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDuration(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("parseDuration(%q) = %v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestUsageErrorsAreUsage(t *testing.T) {
	err := usageError{"give exactly one of --user U or --all"}
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--help") {
		t.Errorf("usageError = %v, want errUsage with a pointer to --help", err)
	}
}

func TestCookieDomainIsReadLikeBrowsersRead(t *testing.T) {
	for _, tc := range []struct {
		base, in, want string
	}{
		{"https://portal.example.com", "", ""},
		{"https://portal.example.com", ".Example.COM.", "example.com"},
		{"http://portal.gatehouse.test:8080", "gatehouse.test", "gatehouse.test"},
	} {
		c, err := parseConfig(t, map[string]string{"GATEHOUSE_COOKIE_DOMAIN": tc.in}, "--base-url", tc.base)
		if err != nil || c.CookieDomain != tc.want {
			t.Errorf("--cookie-domain %q under %s = %q, %v; want %q", tc.in, tc.base, c.CookieDomain, err, tc.want)
		}
	}
}

// A PostgreSQL database is shared by instances that must all use one key, so the key file
// is never guessed beside it: without --key-file the command stops, saying so in one line.
func TestPostgresURLNeedsAKeyFile(t *testing.T) {
	for _, url := range []string{"postgres://gate@127.0.0.1:1/gatehouse", "postgresql://gate@127.0.0.1:1/gatehouse"} {
		_, err := parseConfig(t, nil, "--db", url)
		if err == nil || !strings.Contains(err.Error(), "--key-file") || !strings.Contains(err.Error(), "required") ||
			strings.Contains(err.Error(), "\n") {
			t.Errorf("--db %s without a key file: %v, want one line asking for --key-file", url, err)
		}
		c, err := parseConfig(t, nil, "--db", url, "--key-file", "/etc/gatehouse/shared.key")
		if err != nil || c.KeyFile != "/etc/gatehouse/shared.key" || c.DB != url {
			t.Errorf("--db %s with a key file: %+v, %v", url, c, err)
		}
	}
	if c, err := parseConfig(t, nil, "--db", "/var/lib/gatehouse/g.db"); err != nil || c.KeyFile != "/var/lib/gatehouse/g.db.key" {
		t.Errorf("an SQLite path keeps its key beside it: %q, %v", c.KeyFile, err)
	}
}

package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// App is a host behind forward auth: its reverse proxy asks the portal whether each request
// may pass. Audience says who may; RequireMFA lets only users past a second factor through,
// and MustReadFirst sends a user with an outstanding must-read notice to read it first.
type App struct {
	ID            int64
	Host          string // as ParseAppHost returns it
	RequireMFA    bool
	MustReadFirst bool
	Audience      Audience
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// AppInput is what registering or editing an app sets.
type AppInput struct {
	Host          string
	RequireMFA    bool
	MustReadFirst bool
	Audience      Audience
}

// HostError refuses a host an app cannot be registered under; Reason says why, in words
// for the admin at the form or the command line.
type HostError struct{ Reason string }

func (e *HostError) Error() string { return "db: " + e.Reason }

const hostExample = " (for example wiki.example.com)"

// maxHostLen bounds a host name (RFC 1035), before any port.
const maxHostLen = 253

// MaxAppHostLen is the longest host ParseAppHost returns: the longest name with the longest
// port. MaxAppHostInput is the longest it reads, the name's trailing dot included; forms
// bound the host field by it.
const (
	MaxAppHostLen   = maxHostLen + len(":65535")
	MaxAppHostInput = MaxAppHostLen + len(".")
)

// ParseAppHost reads the host an app is registered under, the way browsers send it in the
// Host header: a host name of letters, digits and hyphens in dot-separated labels, with an
// optional port, lower-cased, without a trailing dot. The default ports 80 and 443 are
// dropped, since browsers leave them out. Anything else (a scheme, a path, an IPv6 literal,
// a name outside ASCII) is a *HostError. The web form, the command line and the forward-auth
// check all read hosts here, so a host is spelt one way wherever it is compared.
func ParseAppHost(v string) (string, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" {
		return "", &HostError{"Enter the app's host name" + hostExample + "."}
	}
	if strings.ContainsAny(v, "/\\?#@ []") || strings.Contains(v, "://") {
		return "", &HostError{"Enter the host name only, without a scheme, path or user" + hostExample + "."}
	}
	name, port := v, ""
	if i := strings.LastIndexByte(v, ':'); i >= 0 {
		name, port = v[:i], v[i+1:]
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return "", &HostError{"The port must be a number from 1 to 65535."}
		}
		if n == 80 || n == 443 {
			port = ""
		}
	}
	name = strings.TrimSuffix(name, ".")
	if err := checkHostName(name); err != nil {
		return "", err
	}
	if port != "" {
		return name + ":" + port, nil
	}
	return name, nil
}

func checkHostName(name string) error {
	for _, r := range name {
		if r > 0x7f {
			return &HostError{"Enter the host name in its ASCII form (the xn--… spelling of an international name)."}
		}
	}
	if name == "" || len(name) > maxHostLen {
		return &HostError{"That is not a host name" + hostExample + "."}
	}
	for label := range strings.SplitSeq(name, ".") {
		if !validLabel(label) {
			return &HostError{"That is not a host name: use letters, digits and hyphens in dot-separated parts" + hostExample + "."}
		}
	}
	return nil
}

// validLabel is one label of a host name: 1 to 63 letters, digits and hyphens, not starting
// or ending with a hyphen.
func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// HostName is host without its port.
func HostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// HostWithin reports whether the host name host is domain or lies under it.
func HostWithin(host, domain string) bool {
	return domain != "" && (host == domain || strings.HasSuffix(host, "."+domain))
}

// CookieReach says which hosts a browser sends the portal's session cookie to: the
// portal's own host (cookies ignore ports) and, with a cookie domain, every host within it.
// An app on any other host would never see the cookie and would send its users to sign in
// for ever, so such a host is not registered.
type CookieReach struct {
	PortalHost string // the host name of the base URL
	Domain     string // the cookie domain, or "" for a cookie of the portal's host only
}

// Reaches reports whether the cookie reaches host (a host name, with or without a port).
func (r CookieReach) Reaches(host string) bool {
	name := HostName(host)
	return name == r.PortalHost || HostWithin(name, r.Domain)
}

// CheckAppHost is ParseAppHost that also refuses a host the session cookie does not reach.
// It is the rule of the admin form and of gatehouse app add alike.
func CheckAppHost(v string, reach CookieReach) (string, error) {
	host, err := ParseAppHost(v)
	if err != nil {
		return "", err
	}
	if !reach.Reaches(host) {
		why := "The portal's sign-in cookie does not reach " + HostName(host) + ", so its users would be sent to sign in again and again. "
		if reach.Domain == "" {
			why += "Start the portal with --cookie-domain set to a domain that holds both " + reach.PortalHost + " and it, or register a host on " + reach.PortalHost + " itself."
		} else {
			why += "The cookie domain is " + reach.Domain + ": register a host within it, or change --cookie-domain."
		}
		return "", &HostError{why}
	}
	return host, nil
}

const appColumns = `p.id, p.host, p.require_mfa, p.must_read_first, p.created_at, p.updated_at`

func (a *App) columns(extra ...any) []any {
	return append([]any{&a.ID, &a.Host, &a.RequireMFA, &a.MustReadFirst, timeCol(&a.CreatedAt), timeCol(&a.UpdatedAt)}, extra...)
}

// AppByHost returns the app registered under host (as ParseAppHost spells it), with its
// audience, in one read: every request to every app asks for it.
func (d *DB) AppByHost(ctx context.Context, host string) (App, error) {
	rows, err := d.query(ctx, `SELECT `+appColumns+`, COALESCE(a.everyone, 0), COALESCE(a.role, ''), COALESCE(a.group_id, 0)
		FROM apps p LEFT JOIN app_audience a ON a.app_id = p.id WHERE p.host = ?`, host)
	if err != nil {
		return App{}, fmt.Errorf("db: app %q: %w", host, err)
	}
	defer rows.Close()
	var app App
	found := false
	for rows.Next() {
		var everyone bool
		var role string
		var group int64
		if err := rows.Scan(app.columns(&everyone, &role, &group)...); err != nil {
			return App{}, fmt.Errorf("db: app %q: %w", host, err)
		}
		found = true
		app.Audience.add(everyone, role, group)
	}
	if err := rows.Err(); err != nil {
		return App{}, fmt.Errorf("db: app %q: %w", host, err)
	}
	if !found {
		return App{}, ErrNotFound
	}
	return app, nil
}

// AppByID returns one app with its audience, or ErrNotFound.
func (d *DB) AppByID(ctx context.Context, id int64) (App, error) {
	var app App
	err := d.queryRow(ctx, `SELECT `+appColumns+` FROM apps p WHERE p.id = ?`, id).Scan(app.columns()...)
	if errors.Is(err, sql.ErrNoRows) {
		return App{}, ErrNotFound
	}
	if err != nil {
		return App{}, fmt.Errorf("db: app %d: %w", id, err)
	}
	if app.Audience, err = d.storedAudience(ctx, appAudience, id); err != nil {
		return App{}, err
	}
	return app, nil
}

// ListApps returns every app with its audience, by host.
func (d *DB) ListApps(ctx context.Context) ([]App, error) {
	apps, err := queryList(ctx, d, func(row rowScanner) (App, error) {
		var a App
		err := row.Scan(a.columns()...)
		return a, err
	}, `SELECT `+appColumns+` FROM apps p ORDER BY p.host`)
	if err != nil {
		return nil, fmt.Errorf("db: list apps: %w", err)
	}
	index := make(map[int64]int, len(apps))
	for i, a := range apps {
		index[a.ID] = i
	}
	rows, err := d.query(ctx, `SELECT app_id, everyone, COALESCE(role, ''), COALESCE(group_id, 0) FROM app_audience
		ORDER BY app_id, role, group_id`)
	if err != nil {
		return nil, fmt.Errorf("db: list apps: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, group int64
		var everyone bool
		var role string
		if err := rows.Scan(&id, &everyone, &role, &group); err != nil {
			return nil, fmt.Errorf("db: list apps: %w", err)
		}
		if i, ok := index[id]; ok { // an app added between the two reads waits for the next list
			apps[i].Audience.add(everyone, role, group)
		}
	}
	return apps, rows.Err()
}

// AppReach is how many active users an app's audience holds, and how many of them have a
// second factor: with require_mfa only those pass.
type AppReach struct {
	Users      int
	WithFactor int
}

// hasFactor is "user u has a second factor" (an authenticator app or a passkey), as
// User.HasMFA reads it.
var hasFactor = hasSecondFactor("u.id")

// ReachOf counts the active users an audience not stored yet reaches: the preview of the
// app form.
func (d *DB) ReachOf(ctx context.Context, a Audience) (AppReach, error) {
	cond, args := inAudience(a)
	var r AppReach
	err := d.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN `+hasFactor+` THEN 1 ELSE 0 END), 0)
		FROM users u WHERE u.disabled = 0 AND `+cond, args...).Scan(&r.Users, &r.WithFactor)
	if err != nil {
		return AppReach{}, fmt.Errorf("db: reach: %w", err)
	}
	return r, nil
}

// AppReaches counts, in one read, the active users each app's stored audience reaches, by
// app id; an app that reaches nobody is absent.
func (d *DB) AppReaches(ctx context.Context) (map[int64]AppReach, error) {
	rows, err := d.query(ctx, `SELECT p.id, COUNT(*), COALESCE(SUM(CASE WHEN `+hasFactor+` THEN 1 ELSE 0 END), 0)
		FROM apps p JOIN users u ON u.disabled = 0 AND `+inStoredAudience(appAudience, "p.id", "u.role", "u.id")+`
		GROUP BY p.id`)
	if err != nil {
		return nil, fmt.Errorf("db: app reaches: %w", err)
	}
	defer rows.Close()
	out := map[int64]AppReach{}
	for rows.Next() {
		var id int64
		var r AppReach
		if err := rows.Scan(&id, &r.Users, &r.WithFactor); err != nil {
			return nil, fmt.Errorf("db: app reaches: %w", err)
		}
		out[id] = r
	}
	return out, rows.Err()
}

// DescribeApp is the audit detail of an app as registered, naming groups by groups.
func DescribeApp(in AppInput, groups map[int64]string) string {
	s := "audience " + DescribeAudience(in.Audience, groups)
	if in.RequireMFA {
		s += "; two-step verification required"
	}
	if in.MustReadFirst {
		s += "; must-read notices first"
	}
	return s
}

// CreateApp registers an app with its audience and audit row in one transaction; a host
// registered already is ErrDuplicate, a chosen group that is gone ErrNotFound.
func (d *DB) CreateApp(ctx context.Context, in AppInput, ev Event) (App, error) {
	host, err := ParseAppHost(in.Host)
	if err != nil {
		return App{}, err
	}
	app := App{Host: host, RequireMFA: in.RequireMFA, MustReadFirst: in.MustReadFirst, Audience: in.Audience,
		CreatedAt: ev.At, UpdatedAt: ev.At}
	err = d.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO apps (host, require_mfa, must_read_first, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?) RETURNING id`, host, boolInt(in.RequireMFA), boolInt(in.MustReadFirst),
			FormatTime(ev.At), FormatTime(ev.At)).Scan(&app.ID)
		if isUniqueViolation(err) {
			return ErrDuplicate
		}
		if err != nil {
			return fmt.Errorf("db: add app %q: %w", host, err)
		}
		if err := writeStoredAudience(ctx, tx, appAudience, app.ID, in.Audience); err != nil {
			return err
		}
		ev.Subject = host
		if ev.Detail == "" {
			ev.Detail = DescribeApp(in, nil)
		}
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return App{}, err
	}
	return app, nil
}

// UpdateApp changes an app's host, switches and audience; another app's host is
// ErrDuplicate, an unknown id ErrNotFound.
func (d *DB) UpdateApp(ctx context.Context, id int64, in AppInput, ev Event) (App, error) {
	host, err := ParseAppHost(in.Host)
	if err != nil {
		return App{}, err
	}
	var app App
	err = d.tx(ctx, func(tx *sql.Tx) error {
		var old string
		err := tx.QueryRowContext(ctx, `SELECT host FROM apps WHERE id = ?`, id).Scan(&old)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("db: update app %d: %w", id, err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE apps SET host = ?, require_mfa = ?, must_read_first = ?, updated_at = ?
			WHERE id = ?`, host, boolInt(in.RequireMFA), boolInt(in.MustReadFirst), FormatTime(ev.At), id)
		if isUniqueViolation(err) {
			return ErrDuplicate
		}
		if err != nil {
			return fmt.Errorf("db: update app %d: %w", id, err)
		}
		if err := writeStoredAudience(ctx, tx, appAudience, id, in.Audience); err != nil {
			return err
		}
		ev.Subject = host
		if ev.Detail == "" {
			ev.Detail = DescribeApp(in, nil)
		}
		if old != host {
			ev.Detail = "host " + old + " → " + host + "; " + ev.Detail
		}
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return App{}, err
	}
	app, err = d.AppByID(ctx, id)
	return app, err
}

// DeleteApp removes an app: its host is refused from its next request on.
func (d *DB) DeleteApp(ctx context.Context, id int64, ev Event) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		var host string
		err := tx.QueryRowContext(ctx, `DELETE FROM apps WHERE id = ? RETURNING host`, id).Scan(&host)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("db: remove app %d: %w", id, err)
		}
		ev.Subject = host
		return insertEvent(ctx, tx, ev)
	})
}

// GroupNamesOf returns the names of the groups a user is in, sorted.
func (d *DB) GroupNamesOf(ctx context.Context, userID int64) ([]string, error) {
	names, err := queryList(ctx, d, scanOne[string], `SELECT g.name FROM group_members m
		JOIN groups g ON g.id = m.group_id WHERE m.user_id = ? ORDER BY g.name`, userID)
	if err != nil {
		return nil, fmt.Errorf("db: group names of %d: %w", userID, err)
	}
	return names, nil
}

// GroupIDsOf returns the ids of the groups a user is in.
func (d *DB) GroupIDsOf(ctx context.Context, userID int64) ([]int64, error) {
	ids, err := queryList(ctx, d, scanOne[int64], `SELECT group_id FROM group_members WHERE user_id = ? ORDER BY group_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("db: groups of %d: %w", userID, err)
	}
	return ids, nil
}

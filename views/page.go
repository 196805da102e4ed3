// Package views holds Gatehouse's templ components. Views read db types but never call db.
package views

import (
	"net/url"
	"strconv"
	"time"

	"gatehouse/db"
)

// Page is what every full page needs, built once per request by the handlers.
type Page struct {
	Title     string
	Me        *db.User // nil when nobody is signed in
	Partial   bool     // signed in with the password only: show nothing but sign-out
	CSRF      string
	Flash     string // information, shown with role="status"
	Status    int
	RequestID string
	Location  *time.Location
	Path      string // the current path with its query, for forms that return here
	Now       time.Time
	Banners   []db.Notice
	// BannersFailed says the banners could not be read: the banner slot says so, so that
	// missing must-read notices are not taken for none.
	BannersFailed bool
	// MFADeadline, when set, is the date after which this user must have two-step
	// verification; the layout warns until they enroll.
	MFADeadline time.Time
}

// SignedIn reports whether the navigation should show.
func (p Page) SignedIn() bool { return p.Me != nil && !p.Partial }

// IsAdmin reports whether the signed-in user is an admin.
func (p Page) IsAdmin() bool { return p.SignedIn() && p.Me.IsAdmin() }

// When formats a time for people, in the portal's zone.
func (p Page) When(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.In(p.zone()).Format("2 Jan 2006 15:04 MST")
}

// zone is the portal's time zone, or the machine's when none was set.
func (p Page) zone() *time.Location {
	if p.Location == nil {
		return time.Local
	}
	return p.Location
}

// ISO formats a time for a machine-readable datetime attribute.
func ISO(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func itoa(n int) string     { return strconv.Itoa(n) }
func i64toa(n int64) string { return strconv.FormatInt(n, 10) }

// CanPublish reports whether the signed-in user may post notices.
func (p Page) CanPublish() bool {
	return p.SignedIn() && p.Me.CanPublish()
}

// DateOnly formats a time as a date in the portal's zone.
func (p Page) DateOnly(t time.Time) string {
	return t.In(p.zone()).Format("Monday 2 January 2006, 15:04 MST")
}

// WithNext is path with next in its query: the address of a page of a step of signing in
// that passes next on, as a redirect or a link (the authenticator app and passkey pages
// offer each other).
func WithNext(path, next string) string {
	if next == "" {
		return path
	}
	return path + "?" + url.Values{"next": {next}}.Encode()
}

package handlers

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

// sessionState is how far a request's session has got.
type sessionState int

const (
	noSession      sessionState = iota // no valid session cookie
	partialSession                     // the password step only: the second step is due
	fullSession
)

// forwardVerdict is what forward auth decides about a request to an app.
type forwardVerdict int

const (
	forwardPass     forwardVerdict = iota // it may pass, with the Remote-* headers
	forwardSignIn                         // to the portal first: sign in, finish signing in, or a pending step
	forwardMustRead                       // to the portal's start page first, to read must-read notices
	forwardRefuse                         // not for this user, this host or this peer
)

// forwardRefusal says why a request may not pass, for the page the proxy shows.
type forwardRefusal int

const (
	notRefused forwardRefusal = iota
	refusedPeer
	refusedHost
	refusedAudience
	refusedNoFactor
)

// forwardInput is everything the forward-auth decision depends on.
type forwardInput struct {
	TrustedPeer  bool         // the TCP peer is in --trusted-proxies
	Session      sessionState // none, partial or full
	SessionEnded bool         // a stale session cookie was just cleared
	User         db.User      // role, groups, disabled, factor: the session's user
	StepPending  bool         // a forced password change or a required enrollment comes first
	AppFound     bool         // the host is registered
	App          db.App       // audience, require_mfa, must_read_first
	MustReadDue  bool         // the user has a must-read notice to acknowledge
	Original     string       // the URL the browser asked the app for; "" when unknown
	StatusMode   bool         // ?mode=status: 401 instead of a redirect (nginx auth_request)
}

// forwardDecision is the answer to a proxy: a status, a Location for redirects, and why.
type forwardDecision struct {
	Verdict  forwardVerdict
	Refusal  forwardRefusal
	Status   int
	Location string
	Reason   string
}

// decideForward is the whole forward-auth rule, with no I/O, in this order. Fail closed: an
// untrusted peer and an unregistered host are refused before anything else is looked at.
// Without a session, or with the password step only, the browser goes to the portal to
// sign in. A user the app's audience does not include is refused; one with a step pending
// (a password to change, an enrollment a rule requires) goes through the portal to finish
// it; one without a second factor where the app requires one is refused. With
// must_read_first, a must-read notice still to acknowledge sends them to the portal's
// start page, which sends them back once it is read. A full session of a user with a
// factor has passed the second step (the password step alone leaves the session partial)
// or confirmed that factor in this session, so a factor on the account is one presented.
func decideForward(base *url.URL, in forwardInput) forwardDecision {
	refuse := func(r forwardRefusal, why string) forwardDecision {
		return forwardDecision{Verdict: forwardRefuse, Refusal: r, Status: http.StatusForbidden, Reason: why}
	}
	// In status mode the 401 carries the redirect's Location too: nginx, which cannot
	// build it, sends the browser there (auth_request_set and error_page).
	toPortal := func(v forwardVerdict, path, why string) forwardDecision {
		status := http.StatusFound
		if in.StatusMode {
			status = http.StatusUnauthorized
		}
		q := url.Values{}
		if in.Original != "" {
			q.Set("next", in.Original)
		}
		if v == forwardSignIn && in.SessionEnded {
			q.Set("ended", "1")
		}
		target := base.Scheme + "://" + base.Host + path
		if len(q) > 0 {
			target += "?" + q.Encode()
		}
		return forwardDecision{Verdict: v, Status: status, Location: target, Reason: why}
	}
	switch {
	case !in.TrustedPeer:
		return refuse(refusedPeer, "the peer is not one of --trusted-proxies")
	case !in.AppFound:
		return refuse(refusedHost, "the host is not registered as an app")
	case in.Session == noSession || in.User.Disabled:
		return toPortal(forwardSignIn, "/login", "not signed in")
	case in.Session == partialSession:
		return toPortal(forwardSignIn, "/login", "second step not completed")
	case !in.App.Audience.Reaches(in.User.Role, in.User.GroupIDs):
		return refuse(refusedAudience, "the user is not in the app's audience")
	case in.StepPending:
		return toPortal(forwardSignIn, "/login", "a password change or an enrollment is pending")
	case in.App.RequireMFA && !in.User.HasMFA():
		return refuse(refusedNoFactor, "the app requires two-step verification and the user has no factor")
	case in.App.MustReadFirst && in.MustReadDue:
		return toPortal(forwardMustRead, "/", "a must-read notice is to be acknowledged first")
	}
	return forwardDecision{Verdict: forwardPass, Status: http.StatusOK, Reason: "allowed"}
}

// remoteHeaders are the headers an allowed request carries to the app. The proxy copies
// exactly these from the answer to the request it forwards, replacing whatever the client
// sent under those names; nothing the client sent is ever echoed here.
var remoteHeaders = []string{"Remote-User", "Remote-Name", "Remote-Email", "Remote-Role", "Remote-Groups"}

// setRemoteHeaders writes who the user is for the app. Remote-Email is the user's confirmed
// address, empty when they have none. Group names are comma-separated; a name from before
// commas were refused in group names has each comma written as %2C, so it is never read as
// two groups.
func setRemoteHeaders(hd http.Header, u db.User, groups []string) {
	names := make([]string, len(groups))
	for i, g := range groups {
		names[i] = strings.ReplaceAll(g, ",", "%2C")
	}
	hd.Set("Remote-User", u.Username)
	hd.Set("Remote-Name", u.Name())
	hd.Set("Remote-Email", u.Email)
	hd.Set("Remote-Role", u.Role)
	hd.Set("Remote-Groups", strings.Join(names, ","))
}

// trustedPeer reports whether the TCP peer of r, not any address a header names, is one
// of the trusted proxies.
func trustedPeer(r *http.Request, trusted []*net.IPNet) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	host, _, _ = strings.Cut(host, "%") // an IPv6 zone names an interface, not another address
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	for _, n := range trusted {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// errForwardHeaders refuses a forward-auth request that does not say what the browser
// asked for: the proxy is configured wrong, and nothing can be decided.
var errForwardHeaders = &userError{Status: http.StatusBadRequest,
	Message: "The reverse proxy did not say which address was requested.",
	Hint:    "It must send X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-Uri (Caddy, Traefik) or X-Original-URL (nginx)."}

// originalURL is the URL the browser asked the app for, from the proxy's headers: nginx's
// X-Original-URL, or X-Forwarded-Proto, -Host and -Uri (Caddy, Traefik). Its host is
// spelt as db.ParseAppHost spells it. Anything ambiguous (a list of hosts, a URI that is not
// a path, another scheme, a user) is an error: fail closed.
func originalURL(r *http.Request, base *url.URL) (*url.URL, error) {
	hd := r.Header
	var scheme, host, uri string
	if raw := hd.Get("X-Original-URL"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.User != nil || u.Opaque != "" || u.Host == "" {
			return nil, fmt.Errorf("X-Original-URL %.200q is not an absolute URL", raw)
		}
		scheme, host, uri = u.Scheme, u.Host, u.RequestURI()
	} else {
		scheme, host, uri = strings.ToLower(hd.Get("X-Forwarded-Proto")), hd.Get("X-Forwarded-Host"), hd.Get("X-Forwarded-Uri")
		if host == "" {
			return nil, errors.New("neither X-Original-URL nor X-Forwarded-Host")
		}
		if scheme == "" {
			scheme = base.Scheme
		}
		if uri == "" {
			uri = "/"
		}
	}
	if scheme != "http" && scheme != "https" {
		return nil, fmt.Errorf("scheme %.20q", scheme)
	}
	canonical, err := db.ParseAppHost(host)
	if err != nil {
		return nil, fmt.Errorf("host %.200q: %w", host, err)
	}
	if !strings.HasPrefix(uri, "/") || strings.ContainsFunc(uri, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("URI %.200q is not a path", uri)
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, fmt.Errorf("URI %.200q: %w", uri, err)
	}
	u.Scheme, u.Host = scheme, canonical
	return u, nil
}

// authVerify handles GET /auth/verify, which reverse proxies ask whether a request to an
// app may pass (Caddy forward_auth, Traefik ForwardAuth, nginx auth_request with
// ?mode=status). It runs on every request of every app, so it hashes no password and
// writes nothing but the once-a-minute last-seen mark of the session, which keeps the
// portal session alive while the user works in an app. The peer must be a trusted proxy:
// anyone else could name any host and user in headers.
func (h *Handler) authVerify(c echo.Context) error {
	req := c.Request()
	in := forwardInput{TrustedPeer: trustedPeer(req, h.cfg.TrustedProxies), StatusMode: c.QueryParam("mode") == "status"}
	if !in.TrustedPeer {
		return h.forwardAnswer(c, decideForward(h.cfg.BaseURL, in), "")
	}
	orig, err := originalURL(req, h.cfg.BaseURL)
	if err != nil {
		return errForwardHeaders.withCause(err)
	}
	in.Original = nextURLOf(orig)
	app, err := h.appByHost(c, orig.Host)
	switch {
	case err == nil:
		in.AppFound, in.App = true, app
	case !errors.Is(err, db.ErrNotFound):
		return err
	}
	if in.AppFound {
		if err := h.fillForwardSession(c, &in, db.HostName(orig.Host)); err != nil {
			return err
		}
	}
	return h.forwardAnswer(c, decideForward(h.cfg.BaseURL, in), orig.Host)
}

// fillForwardSession reads the session of the browser at host, and what the decision needs
// to know of it.
func (h *Handler) fillForwardSession(c echo.Context, in *forwardInput, host string) error {
	r, err := h.readSession(c, host)
	if err != nil {
		return err
	}
	in.SessionEnded = r.ended
	switch {
	case !r.found:
		return nil
	case r.session.Stage != db.StageFull:
		in.Session = partialSession
		return nil
	}
	in.Session, in.User = fullSession, r.user
	// The pending steps are read like a page's: from the session's user in the context.
	c.Set(userKey, r.user)
	c.Set(sessionKey, r.session)
	c.Set(ruleScopeKnownKey, true)
	step, err := h.pendingStep(c)
	if err != nil {
		return err
	}
	in.StepPending = step != ""
	if in.App.MustReadFirst {
		if in.MustReadDue, err = h.mustReadOutstanding(c, r.user, h.now()); err != nil {
			return err
		}
	}
	return nil
}

// forwardAnswer writes the decision for the proxy: the Remote-* headers and an empty 200,
// a redirect, or a refusal with a short page the proxy may show at the app's address.
func (h *Handler) forwardAnswer(c echo.Context, d forwardDecision, host string) error {
	switch d.Verdict {
	case forwardPass:
		u, _ := currentUser(c)
		var groups []string
		if len(u.GroupIDs) > 0 {
			var err error
			if groups, err = h.groupNamesOf(c, u.ID); err != nil {
				return err
			}
		}
		setRemoteHeaders(c.Response().Header(), u, groups)
		return c.NoContent(http.StatusOK)
	case forwardSignIn, forwardMustRead:
		if d.Status == http.StatusFound {
			return c.Redirect(http.StatusFound, d.Location)
		}
		c.Response().Header().Set(echo.HeaderLocation, d.Location)
	}
	noteCause(c, fmt.Errorf("forward auth for %q: %s", host, d.Reason))
	page := views.ForwardRefusal{Status: d.Status, Host: host, Portal: h.cfg.BaseURL.String(), RequestID: requestID(c)}
	switch d.Refusal {
	case notRefused: // a 401 for nginx, which redirects to the Location it carries
		page.Message = "Continue in the portal first."
		page.Link = d.Location
	case refusedPeer:
		page.Message = "This address answers the portal's reverse proxies only."
	case refusedHost:
		page.Message = "No app is registered at " + host + ", so nobody may pass."
		page.Hint = "An administrator can register it in the portal, under Admin › Apps."
	case refusedNoFactor:
		page.Message = host + " asks for two-step verification, and your account has none yet."
		page.Hint = "Turn it on in the portal, then come back."
		page.Link = h.cfg.BaseURL.String() + "/account/mfa"
	default:
		page.Message = "Your account may not open " + host + "."
		page.Hint = "If you think it should, ask an administrator."
	}
	return render(c, d.Status, views.ForwardRefusalPage(page))
}

// maxNextLen bounds a return address, local or an app's, as safeNext does.
const maxNextLen = 2048

// nextURLOf is u as a return address for after sign-in: u itself, or, when it is too long
// to carry, the app's start page.
func nextURLOf(u *url.URL) string {
	if s := u.String(); len(s) <= maxNextLen {
		return s
	}
	return u.Scheme + "://" + u.Host + "/"
}

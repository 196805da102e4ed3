package handlers

import (
	"net/url"
	"strings"
)

// safeNext returns target if it is a path on this site that is worth returning to, and "/"
// otherwise. Anything that a browser could read as another host (//host, /\host, schemes,
// encoded or control-character variants) is refused, and so are the sign-in and sign-out
// pages, which would only loop.
func safeNext(target string) string {
	if target == "" || len(target) > 2048 || target[0] != '/' {
		return "/"
	}
	if len(target) > 1 && (target[1] == '/' || target[1] == '\\') {
		return "/"
	}
	for _, r := range target {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	// The decoded path must hold the same line: %2F%2F or %5C could turn into a host.
	p := u.Path
	if strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || strings.ContainsFunc(p, func(r rune) bool {
		return r < 0x20 || r == 0x7f || r == '\\'
	}) {
		return "/"
	}
	switch {
	case p == "/login", strings.HasPrefix(p, "/login/"), p == "/logout", p == "/setup":
		return "/"
	}
	return u.RequestURI()
}

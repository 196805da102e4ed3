package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"gatehouse/db"
)

// appInputFromFlags checks an app's host and audience by the admin form's rules
// (db.CheckAppHost, db.ParseAudience), against the groups in store and the hosts the
// session cookie reaches under cfg, which must be the configuration serve runs with.
func appInputFromFlags(ctx context.Context, store *db.DB, cfg Config, host string, audience []string,
	requireMFA, mustReadFirst bool) (db.AppInput, map[int64]string, error) {
	reach := db.CookieReach{PortalHost: cfg.BaseURL.Hostname(), Domain: cfg.CookieDomain}
	canonical, err := db.CheckAppHost(host, reach)
	var he *db.HostError
	if errors.As(err, &he) {
		return db.AppInput{}, nil, fmt.Errorf("host %q refused: %s (checked against --base-url %s and --cookie-domain %q, which must be serve's)",
			host, he.Reason, cfg.BaseURL, cfg.CookieDomain)
	}
	if err != nil {
		return db.AppInput{}, nil, err
	}
	groups, err := store.ListGroups(ctx)
	if err != nil {
		return db.AppInput{}, nil, err
	}
	names := make(map[int64]string, len(groups))
	for _, g := range groups {
		names[g.ID] = g.Name
	}
	if len(audience) == 0 {
		audience = []string{"everyone"}
	}
	values := make([]string, len(audience))
	for i, v := range audience {
		values[i] = groupByName(v, groups)
	}
	aud, ok := db.ParseAudience(values, names)
	if !ok {
		return db.AppInput{}, nil, usageError{fmt.Sprintf("--audience %q: want everyone, role:staff, role:publisher, role:admin or group:NAME (or group:ID) of a group that exists",
			strings.Join(audience, " "))}
	}
	return db.AppInput{Host: canonical, RequireMFA: requireMFA, MustReadFirst: mustReadFirst, Audience: aud}, names, nil
}

// groupByName turns group:NAME into the group:ID the form's rule reads, when a group has
// that name (in any case); any other value is left as it is.
func groupByName(v string, groups []db.Group) string {
	name, ok := strings.CutPrefix(v, "group:")
	if !ok {
		return v
	}
	if _, err := strconv.ParseInt(name, 10, 64); err == nil {
		return v
	}
	for _, g := range groups {
		if strings.EqualFold(g.Name, name) {
			return db.ScopeValue("", g.ID)
		}
	}
	return v
}

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func cmdAppAdd(e env, args []string) error {
	fs := newFlags("app add")
	s := addConfigFlags(fs, e.getenv)
	var audience repeated
	fs.Var(&audience, "audience", "who may pass: everyone, role:NAME or group:NAME; repeat for several (default everyone)")
	requireMFA := fs.Bool("require-mfa", false, "let only users past a second factor pass")
	mustReadFirst := fs.Bool("must-read-first", false, "send a user with a must-read notice to acknowledge to the portal first")
	rest, err := parse(e, fs, args, "register HOST behind forward auth: app add [flags] HOST", 1)
	if err != nil {
		return err
	}
	store, cfg, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	in, groups, err := appInputFromFlags(e.ctx, store, cfg, rest[0], audience, *requireMFA, *mustReadFirst)
	if err != nil {
		return err
	}
	ev := cliEvent("app.added", in.Host)
	ev.Detail = db.DescribeApp(in, groups)
	app, err := store.CreateApp(e.ctx, in, ev)
	switch {
	case errors.Is(err, db.ErrDuplicate):
		return fmt.Errorf("an app is registered at %s already", in.Host)
	case err != nil:
		return err
	}
	fmt.Fprintf(e.stdout, "registered %s (%s)\n", app.Host, db.DescribeApp(in, groups))
	return nil
}

func cmdAppList(e env, args []string) error {
	fs := newFlags("app list")
	s := addConfigFlags(fs, e.getenv)
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	if _, err := parse(e, fs, args, "list the apps behind forward auth", 0); err != nil {
		return err
	}
	store, _, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	apps, err := store.ListApps(e.ctx)
	if err != nil {
		return err
	}
	groups, err := store.ListGroups(e.ctx)
	if err != nil {
		return err
	}
	names := make(map[int64]string, len(groups))
	for _, g := range groups {
		names[g.ID] = g.Name
	}
	if *asJSON {
		return writeJSON(e.stdout, appsJSON(apps, names))
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tWHO MAY PASS\tTWO-STEP REQUIRED\tMUST-READ FIRST")
	for _, a := range apps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Host, db.DescribeAudience(a.Audience, names), yesNo(a.RequireMFA), yesNo(a.MustReadFirst))
	}
	return tw.Flush()
}

func cmdAppRemove(e env, args []string) error {
	fs := newFlags("app remove")
	s := addConfigFlags(fs, e.getenv)
	rest, err := parse(e, fs, args, "remove the app at HOST: every request to it is refused from then on", 1)
	if err != nil {
		return err
	}
	host, err := db.ParseAppHost(rest[0])
	var he *db.HostError
	if errors.As(err, &he) {
		return fmt.Errorf("host %q refused: %s", rest[0], he.Reason)
	}
	store, _, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	app, err := store.AppByHost(e.ctx, host)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("no app is registered at %s", host)
	}
	if err != nil {
		return err
	}
	if err := store.DeleteApp(e.ctx, app.ID, cliEvent("app.removed", app.Host)); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed %s; requests to it are refused from now on\n", app.Host)
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

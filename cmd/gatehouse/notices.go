package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gatehouse/db"
	"gatehouse/views"
)

// maxBodyFile is the most a body file may hold: the web's limit on a whole request. The
// notice form's own limit on the body, in characters, then applies as on the web.
const maxBodyFile = 1 << 20

// noticeListLimit is how many notices notice list shows, newest first, like the web's list.
const noticeListLimit = 200

// actorEvent is the audit record of a command-line action taken in a user's name: the
// audit log names that user, from this machine.
func actorEvent(u db.User, kind string, at time.Time) db.Event {
	return db.Event{At: at, ActorID: u.ID, Actor: u.Username, Kind: kind, ClientAddr: "local", Outcome: db.Success}
}

// publisher is the user --as names, who must be an active publisher or admin, as on the web.
func publisher(ctx context.Context, store *db.DB, username string) (db.User, error) {
	if username == "" {
		return db.User{}, usageError{"--as is required: the publisher or admin in whose name to act"}
	}
	u, err := store.UserByUsername(ctx, username)
	if errors.Is(err, db.ErrNotFound) {
		return db.User{}, fmt.Errorf("--as %q: no such user", username)
	}
	if err != nil {
		return db.User{}, err
	}
	if u.Disabled {
		return db.User{}, fmt.Errorf("--as %q: the account is disabled", username)
	}
	if !u.CanPublish() {
		return db.User{}, fmt.Errorf("--as %q: %s is %s; only publishers and admins post and archive notices", username, u.Username, u.Role)
	}
	return u, nil
}

// readBody reads the body file, or standard input for "-", up to maxBodyFile.
func readBody(e env, name string) (string, error) {
	r := e.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return "", fmt.Errorf("--body-file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxBodyFile+1))
	if err != nil {
		return "", fmt.Errorf("--body-file %s: %w", name, err)
	}
	if len(b) > maxBodyFile {
		return "", fmt.Errorf("--body-file %s: over 1 MiB, more than the web takes", name)
	}
	return string(b), nil
}

// groupIDs maps every group's id to its name, as the notice form checks audiences against.
func groupIDs(ctx context.Context, store *db.DB) (map[int64]string, error) {
	gs, err := store.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	names := make(map[int64]string, len(gs))
	for _, g := range gs {
		names[g.ID] = g.Name
	}
	return names, nil
}

// audienceValues turns --audience values into the form's (everyone, role:NAME, group:ID);
// none means everyone. Scripts know their groups by name, so group:NAME is taken too: a
// number names the group with that id if there is one, and a group's name otherwise.
func audienceValues(ctx context.Context, store *db.DB, values []string, groups map[int64]string) ([]string, error) {
	if len(values) == 0 {
		return []string{"everyone"}, nil
	}
	out := make([]string, 0, len(values))
	for _, v := range values {
		kind, arg, _ := strings.Cut(v, ":")
		switch {
		case v == "everyone":
			out = append(out, v)
		case kind == "role":
			if _, _, ok := db.ParseScope(v); !ok {
				return nil, usageError{fmt.Sprintf("--audience %q: no such role (want role:staff, role:publisher or role:admin)", v)}
			}
			out = append(out, v)
		case kind == "group" && strings.TrimSpace(arg) != "":
			id, err := audienceGroup(ctx, store, arg, groups)
			if err != nil {
				return nil, err
			}
			out = append(out, db.ScopeValue("", id))
		default:
			return nil, usageError{fmt.Sprintf("--audience %q: want everyone, role:NAME, group:ID or group:NAME", v)}
		}
	}
	return out, nil
}

func audienceGroup(ctx context.Context, store *db.DB, arg string, groups map[int64]string) (int64, error) {
	if id, err := strconv.ParseInt(arg, 10, 64); err == nil {
		if _, ok := groups[id]; ok {
			return id, nil
		}
	}
	g, err := store.GroupByName(ctx, strings.TrimSpace(arg))
	if errors.Is(err, db.ErrNotFound) {
		return 0, fmt.Errorf("--audience %q: no such group (gatehouse group list shows them)", "group:"+arg)
	}
	return g.ID, err
}

// noticeFlags are notice post's flags as typed.
type noticeFlags struct {
	as, title, bodyFile, kind, severity, startsAt, endsAt string
	remind, dueAt, renewEvery                             string
	audience                                              repeated
	email                                                 bool
}

func cmdNoticePost(e env, args []string) error {
	fs := newFlags("notice post")
	s := addConfigFlags(fs, e.getenv)
	var nf noticeFlags
	nf.define(fs)
	if _, err := parse(e, fs, args, "post a notice and print its id", 0); err != nil {
		return err
	}
	if err := nf.required(); err != nil {
		return err
	}
	body, err := readBody(e, nf.bodyFile)
	if err != nil {
		return err
	}
	store, cfg, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	// The notice is mailed by serve's mail loop, which reads the same settings; without them
	// nobody would send it, so the flag is refused rather than kept silently.
	if nf.email && !cfg.Mail.Enabled() {
		return errors.New("--email: mail is not configured (--smtp-addr), so nothing was posted")
	}
	if r := strings.TrimSpace(nf.remind); r != "" && r != db.RemindNone && !cfg.Mail.Enabled() {
		return errors.New("--remind: reminders go by mail, which is not configured (--smtp-addr), so nothing was posted")
	}
	n, err := postNotice(e.ctx, store, cfg, nf, body)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, n.ID)
	return nil
}

// define declares notice post's flags on fs.
func (nf *noticeFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&nf.as, "as", "", "post in the name of this publisher or admin; the audit log names them")
	fs.StringVar(&nf.title, "title", "", "the title, one line")
	fs.StringVar(&nf.bodyFile, "body-file", "", "file holding the message, plain text; - reads standard input (at most 1 MiB)")
	fs.StringVar(&nf.kind, "kind", "", "normal (readers may dismiss it) or must_read (on every page until acknowledged)")
	fs.StringVar(&nf.severity, "severity", "", "info, warning or critical")
	fs.Var(&nf.audience, "audience", "who sees it, repeatable: everyone, role:NAME, group:ID or group:NAME (default everyone)")
	fs.StringVar(&nf.startsAt, "starts-at", "", "when it starts: RFC 3339 (2026-03-02T09:00:00Z) or 2026-03-02T09:00 in --timezone (default now)")
	fs.StringVar(&nf.endsAt, "ends-at", "", "when it ends, written the same way (default never)")
	fs.BoolVar(&nf.email, "email", false, "also mail it to its audience when it starts (needs mail to be configured)")
	fs.StringVar(&nf.remind, "remind", "", "must-read only: none, daily or weekly, mail readers who have not acknowledged it (default none)")
	fs.StringVar(&nf.dueAt, "due-at", "", "must-read only: when it is due, written like --starts-at; later readers are overdue")
	fs.StringVar(&nf.renewEvery, "renew-every", "", "must-read only: how long an acknowledgement lasts, such as 365d (at least 1d)")
}

// required refuses, as a usage error, the first flag notice post needs and was not given.
func (nf noticeFlags) required() error {
	for _, req := range []struct{ value, flag, want string }{
		{nf.as, "--as", "the publisher or admin in whose name to post"}, {nf.title, "--title", "the notice's title"},
		{nf.bodyFile, "--body-file", "a file holding the message, or - for standard input"},
		{nf.kind, "--kind", "normal or must_read"}, {nf.severity, "--severity", "info, warning or critical"},
	} {
		if req.value == "" {
			return usageError{fmt.Sprintf("%s is required: %s", req.flag, req.want)}
		}
	}
	return nil
}

// postNotice checks the notice as the web's form does and stores it in the name of the
// publisher --as names.
func postNotice(ctx context.Context, store *db.DB, cfg Config, nf noticeFlags, body string) (db.Notice, error) {
	author, err := publisher(ctx, store, nf.as)
	if err != nil {
		return db.Notice{}, err
	}
	groups, err := groupIDs(ctx, store)
	if err != nil {
		return db.Notice{}, err
	}
	audience, err := audienceValues(ctx, store, nf.audience, groups)
	if err != nil {
		return db.Notice{}, err
	}
	now := time.Now()
	f := views.NoticeForm{Title: nf.title, Body: body, Kind: nf.kind, Severity: nf.severity,
		StartsAt: nf.startsAt, EndsAt: nf.endsAt, Audience: audience, Email: nf.email, MailOn: cfg.Mail.Enabled(),
		Remind: nf.remind, DueAt: nf.dueAt, Renew: nf.renewEvery}
	in, ok := f.Validate(now, cfg.Location, groups)
	if !ok {
		return db.Notice{}, noticeProblem(f, nf)
	}
	n, err := store.CreateNotice(ctx, in, author, actorEvent(author, "notice.posted", now))
	if errors.Is(err, db.ErrNotFound) {
		return db.Notice{}, errors.New("--audience: a group was deleted meanwhile; nothing was posted")
	}
	return n, err
}

// noticeProblem words the notice form's first problem for the command line, naming the
// flag it came from. The form decides what is wrong, so the command line refuses exactly
// what the web refuses; only flag values that are not a choice the flag offers are worded
// anew, since the form's words name buttons.
func noticeProblem(f views.NoticeForm, nf noticeFlags) error {
	for _, field := range []string{"kind", "severity", "title", "body", "audience", "starts_at", "ends_at",
		"remind", "due_at", "renew_every"} {
		msg, bad := f.Errors[field]
		if !bad {
			continue
		}
		switch field {
		case "remind", "due_at", "renew_every":
			return followUpProblem(f, nf, field, msg)
		case "kind":
			return usageError{fmt.Sprintf("--kind %q: want normal or must_read", f.Kind)}
		case "severity":
			return usageError{fmt.Sprintf("--severity %q: want info, warning or critical", f.Severity)}
		case "title":
			return fmt.Errorf("--title: %s", msg)
		case "body":
			return fmt.Errorf("--body-file %s: %s", nf.bodyFile, msg)
		case "audience":
			return fmt.Errorf("--audience: %s", msg)
		}
		name, value := "--starts-at", nf.startsAt
		if field == "ends_at" {
			name, value = "--ends-at", nf.endsAt
		}
		if _, err := views.ParseFormTime(value, time.UTC); err != nil {
			return usageError{fmt.Sprintf("%s %q: want an RFC 3339 time such as 2026-03-02T09:00:00Z, or 2026-03-02T09:00 in --timezone", name, value)}
		}
		return fmt.Errorf("%s %q: %s", name, value, msg)
	}
	return errors.New("the notice was refused") // the form always names a field
}

// followUpProblem words a problem with a must-read notice's follow-up (reminders, due
// date, renewal) for the command line.
func followUpProblem(f views.NoticeForm, nf noticeFlags, field, msg string) error {
	flags := map[string][2]string{"remind": {"--remind", nf.remind}, "due_at": {"--due-at", nf.dueAt},
		"renew_every": {"--renew-every", nf.renewEvery}}
	name, value := flags[field][0], flags[field][1]
	if f.Kind != db.NoticeMustRead {
		return usageError{fmt.Sprintf("%s: only a must-read notice has it (--kind must_read)", name)}
	}
	switch field {
	case "remind":
		return usageError{fmt.Sprintf("--remind %q: want none, daily or weekly", value)}
	case "due_at":
		if _, err := views.ParseFormTime(value, time.UTC); err != nil {
			return usageError{fmt.Sprintf("--due-at %q: want an RFC 3339 time such as 2026-03-02T09:00:00Z, or 2026-03-02T09:00 in --timezone", value)}
		}
	}
	return fmt.Errorf("%s %q: %s", name, value, msg)
}

func cmdNoticeList(e env, args []string) error {
	fs := newFlags("notice list")
	s := addConfigFlags(fs, e.getenv)
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	if _, err := parse(e, fs, args, fmt.Sprintf("list the %d newest notices with their audience and progress", noticeListLimit), 0); err != nil {
		return err
	}
	store, cfg, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()
	notices, err := listNotices(e.ctx, store)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]noticeJSON, 0, len(notices)) // an empty list is [], not null
		for _, n := range notices {
			out = append(out, n.json(now))
		}
		return writeJSON(e.stdout, out)
	}
	when := func(t time.Time) string { return t.In(cfg.Location).Format("2006-01-02 15:04") }
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tKIND\tSEVERITY\tSTARTS\tENDS\tACKNOWLEDGED\tAUDIENCE\tTITLE")
	for _, n := range notices {
		ends, progress := "never", "-"
		if !n.EndsAt.IsZero() {
			ends = when(n.EndsAt)
		}
		if n.MustRead() {
			progress = fmt.Sprintf("%d of %d", n.acked, n.readers)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, n.State(now), n.Kind, n.Severity, when(n.StartsAt), ends,
			progress, strings.Join(n.audience, ", "), n.Title)
	}
	return tw.Flush()
}

// listedNotice is a notice as notice list shows it: with its audience, each part named as
// mfa status names scopes, and its acknowledgement progress.
type listedNotice struct {
	db.Notice
	audience       []string
	acked, readers int
}

// listNotices reads the newest notices with their audiences and acknowledgement progress.
func listNotices(ctx context.Context, store *db.DB) ([]listedNotice, error) {
	rows, err := store.ListNotices(ctx, 0, noticeListLimit, time.Now())
	if err != nil {
		return nil, err
	}
	groups, err := groupIDs(ctx, store)
	if err != nil {
		return nil, err
	}
	out := make([]listedNotice, 0, len(rows))
	for _, r := range rows {
		n := listedNotice{Notice: r.Notice}
		if n.Audience, err = store.NoticeAudience(ctx, n.ID); err != nil {
			return nil, err
		}
		if n.acked, n.readers, err = store.NoticeProgress(ctx, n.Notice); err != nil {
			return nil, err
		}
		n.audience = audienceScopes(n.Audience, groups)
		out = append(out, n)
	}
	return out, nil
}

// audienceScopes names each part of an audience: "everyone", "role staff", "group ops".
func audienceScopes(a db.Audience, groups map[int64]string) []string {
	if a.Everyone {
		return []string{"everyone"}
	}
	out := []string{}
	for _, r := range a.Roles {
		out = append(out, "role "+r)
	}
	for _, g := range a.GroupIDs {
		out = append(out, "group "+groups[g])
	}
	return out
}

func cmdNoticeArchive(e env, args []string) error {
	fs := newFlags("notice archive")
	s := addConfigFlags(fs, e.getenv)
	as := fs.String("as", "", "archive in the name of this publisher or admin: the notice's author, or an admin")
	rest, err := parse(e, fs, args, "take notice ID off every page; its audience can still read it at /notices", 1)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(rest[0], 10, 64)
	if err != nil || id <= 0 {
		return usageError{fmt.Sprintf("notice archive: %q is not a notice id (gatehouse notice list shows them)", rest[0])}
	}
	store, _, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	actor, err := publisher(e.ctx, store, *as)
	if err != nil {
		return err
	}
	n, err := store.NoticeByID(e.ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("no notice %d", id)
	}
	if err != nil {
		return err
	}
	if !n.ManagedBy(actor) {
		return fmt.Errorf("--as %q: only the notice's author or an admin may archive notice %d", *as, id)
	}
	err = store.ArchiveNotice(e.ctx, id, actorEvent(actor, "notice.archived", time.Now()))
	if errors.Is(err, db.ErrNotFound) {
		fmt.Fprintf(e.stdout, "notice %d was archived already\n", id)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "archived notice %d; it no longer shows as a banner\n", id)
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"text/tabwriter"

	"gatehouse/db"
	"gatehouse/views"
)

// Groups from the command line, so the audiences a script names exist without a browser.
// They are named by name, as people and scripts know them; the web's rule for names holds.

func cmdGroupAdd(e env, args []string) error {
	fs := newFlags("group add")
	s := addConfigFlags(fs, e.getenv)
	rest, err := parse(e, fs, args, "create a group: group add NAME", 1)
	if err != nil {
		return err
	}
	f := views.GroupForm{Name: rest[0]}
	if !f.Validate() {
		return fmt.Errorf("group name %q refused: %s", rest[0], f.Error)
	}
	store, _, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	g, err := store.CreateGroup(e.ctx, f.Name, cliEvent("group.created", f.Name))
	if errors.Is(err, db.ErrDuplicate) {
		if existing, err := store.GroupByName(e.ctx, f.Name); err == nil && existing.Name != f.Name {
			return fmt.Errorf("group %q already exists as %q (names match in any case)", f.Name, existing.Name)
		}
		return fmt.Errorf("group %q already exists", f.Name)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created group %s (id %d)\n", g.Name, g.ID)
	return nil
}

func cmdGroupList(e env, args []string) error {
	fs := newFlags("group list")
	s := addConfigFlags(fs, e.getenv)
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	if _, err := parse(e, fs, args, "list groups with their member counts", 0); err != nil {
		return err
	}
	store, cfg, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	groups, err := store.ListGroups(e.ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]groupJSON, 0, len(groups)) // an empty list is [], not null
		for _, g := range groups {
			out = append(out, groupJSON{ID: g.ID, Name: g.Name, Members: g.Members, Created: jsonTime(g.CreatedAt)})
		}
		return writeJSON(e.stdout, out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tMEMBERS\tCREATED")
	for _, g := range groups {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", g.ID, g.Name, g.Members, g.CreatedAt.In(cfg.Location).Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

// groupNamed finds the group a command names.
func groupNamed(ctx context.Context, store *db.DB, name string) (db.Group, error) {
	g, err := store.GroupByName(ctx, name)
	if errors.Is(err, db.ErrNotFound) {
		return db.Group{}, fmt.Errorf("no group %q (gatehouse group list shows them)", name)
	}
	return g, err
}

func memberNamed(ctx context.Context, store *db.DB, username string) (db.User, error) {
	u, err := store.UserByUsername(ctx, username)
	if errors.Is(err, db.ErrNotFound) {
		return db.User{}, fmt.Errorf("no user %q", username)
	}
	return u, err
}

// groupCommand is the shape of the commands that act on one group named first among n
// arguments: it finds the group and hands act the store, the group and the other arguments.
func groupCommand(e env, args []string, name, summary string, n int,
	act func(store *db.DB, g db.Group, rest []string) error) error {
	fs := newFlags(name)
	s := addConfigFlags(fs, e.getenv)
	rest, err := parse(e, fs, args, summary, n)
	if err != nil {
		return err
	}
	store, _, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	g, err := groupNamed(e.ctx, store, rest[0])
	if err != nil {
		return err
	}
	return act(store, g, rest[1:])
}

func cmdGroupMembers(e env, args []string) error {
	return groupCommand(e, args, "group members", "list the members of a group: group members NAME", 1,
		func(store *db.DB, g db.Group, _ []string) error { return printMembers(e, store, g) })
}

func printMembers(e env, store *db.DB, g db.Group) error {
	members, err := store.GroupMembers(e.ctx, g.ID)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tROLE\tSTATUS\tDISPLAY NAME")
	for _, u := range members {
		status := "active"
		if u.Disabled {
			status = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Username, u.Role, status, u.DisplayName)
	}
	return tw.Flush()
}

// memberCommand is the shape of add-member and remove-member: a group and a user, both by
// name, and a change audited like the web's, with the command line as the actor.
func memberCommand(e env, args []string, name, summary string,
	act func(store *db.DB, g db.Group, u db.User) (string, error)) error {
	return groupCommand(e, args, name, summary, 2, func(store *db.DB, g db.Group, rest []string) error {
		u, err := memberNamed(e.ctx, store, rest[0])
		if err != nil {
			return err
		}
		msg, err := act(store, g, u)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, msg)
		return nil
	})
}

func cmdGroupAddMember(e env, args []string) error {
	return memberCommand(e, args, "group add-member", "put U in a group: group add-member NAME U",
		func(store *db.DB, g db.Group, u db.User) (string, error) {
			groups, err := store.GroupsOf(e.ctx, u.ID)
			if err != nil {
				return "", err
			}
			if slices.ContainsFunc(groups, func(m db.Group) bool { return m.ID == g.ID }) {
				return u.Username + " is already in " + g.Name, nil
			}
			ev := cliEvent("group.member_added", u.Username)
			ev.Detail = "group " + g.Name
			if err := store.AddGroupMember(e.ctx, g.ID, u.ID, ev); err != nil {
				if errors.Is(err, db.ErrNotFound) {
					return "", fmt.Errorf("%s or %s was deleted meanwhile", u.Username, g.Name)
				}
				return "", err
			}
			return "added " + u.Username + " to " + g.Name, nil
		})
}

func cmdGroupRemoveMember(e env, args []string) error {
	return memberCommand(e, args, "group remove-member", "take U out of a group: group remove-member NAME U",
		func(store *db.DB, g db.Group, u db.User) (string, error) {
			ev := cliEvent("group.member_removed", u.Username)
			ev.Detail = "group " + g.Name
			err := store.RemoveGroupMember(e.ctx, g.ID, u.ID, ev)
			if errors.Is(err, db.ErrNotFound) {
				return "", fmt.Errorf("%s is not in group %s", u.Username, g.Name)
			}
			if err != nil {
				return "", err
			}
			return "removed " + u.Username + " from " + g.Name, nil
		})
}

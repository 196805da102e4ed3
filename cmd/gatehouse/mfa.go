package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"gatehouse/db"
)

// cmdMFAPause is the way out of a rollout gone wrong, usable when every admin is locked
// out: enforcement stops at once and every rule is kept for later.
func cmdMFAPause(e env, args []string) error { return setPaused(e, args, true) }

func cmdMFAResume(e env, args []string) error { return setPaused(e, args, false) }

func setPaused(e env, args []string, paused bool) error {
	name, kind, done := "mfa resume", "mfa.enforcement_resumed", "MFA enforcement resumed"
	if paused {
		name, kind, done = "mfa pause", "mfa.enforcement_paused", "MFA enforcement paused; rules kept (gatehouse mfa resume to undo)"
	}
	fs := newFlags(name)
	s := addConfigFlags(fs, e.getenv)
	if _, err := parse(e, fs, args, done, 0); err != nil {
		return err
	}
	store, _, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.SetMFAPaused(e.ctx, paused, cliEvent(kind, "mfa policy")); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, done)
	return nil
}

func cmdMFAStatus(e env, args []string) error {
	fs := newFlags("mfa status")
	s := addConfigFlags(fs, e.getenv)
	asJSON := fs.Bool("json", false, "print a JSON object instead of a table")
	if _, err := parse(e, fs, args, "print the MFA rules and enrollment progress", 0); err != nil {
		return err
	}
	store, cfg, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	paused, err := store.MFAPaused(e.ctx)
	if err != nil {
		return err
	}
	rules, err := store.MFARules(e.ctx)
	if err != nil {
		return err
	}
	status := mfaStatusJSON{Paused: paused, Rules: make([]mfaRuleJSON, 0, len(rules))}
	for _, r := range rules {
		members, err := store.ScopeMembers(e.ctx, r.Role, r.GroupID)
		if err != nil {
			return err
		}
		row := mfaRuleJSON{Scope: r.Scope(), Mode: r.Mode, Members: len(members)}
		if r.Mode == db.MFARequired {
			row.Deadline = jsonOptionalTime(r.Deadline)
		}
		for _, u := range members {
			if u.HasMFA {
				row.Enrolled++
			}
		}
		status.Rules = append(status.Rules, row)
	}
	if *asJSON {
		return writeJSON(e.stdout, status)
	}

	state := "enforcing"
	if paused {
		state = "PAUSED (no rule is enforced)"
	}
	fmt.Fprintf(e.stdout, "enforcement: %s\n", state)
	if len(rules) == 0 {
		fmt.Fprintln(e.stdout, "no rules: two-step verification is optional for everyone")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COHORT\tRULE\tMEMBERS\tENROLLED\tNOT ENROLLED")
	now := time.Now()
	for i, r := range rules {
		row := status.Rules[i]
		rule := r.Mode
		if r.Mode == db.MFARequired {
			rule = "required from " + r.Deadline.In(cfg.Location).Format("2006-01-02 15:04 MST")
			if !now.Before(r.Deadline) {
				rule += " (in force)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", row.Scope, rule, row.Members, row.Enrolled, row.Members-row.Enrolled)
	}
	return tw.Flush()
}

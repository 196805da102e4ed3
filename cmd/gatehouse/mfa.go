package main

import (
	"context"
	"fmt"
	"io"
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
	status, rules, err := mfaStatus(e.ctx, store)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, status)
	}
	return printMFAStatus(e.stdout, status, rules, cfg.Location, time.Now())
}

// mfaStatus reads the pause switch, the rules and each rule's progress.
func mfaStatus(ctx context.Context, store *db.DB) (mfaStatusJSON, []db.MFARule, error) {
	paused, err := store.MFAPaused(ctx)
	if err != nil {
		return mfaStatusJSON{}, nil, err
	}
	rules, err := store.MFARules(ctx)
	if err != nil {
		return mfaStatusJSON{}, nil, err
	}
	counts, err := store.ScopeCounts(ctx)
	if err != nil {
		return mfaStatusJSON{}, nil, err
	}
	status := mfaStatusJSON{Paused: paused, Rules: make([]mfaRuleJSON, 0, len(rules))}
	for _, r := range rules {
		c := counts[db.Scope{Role: r.Role, GroupID: r.GroupID}]
		row := mfaRuleJSON{Scope: r.Scope(), Mode: r.Mode, Members: c.Members, Enrolled: c.Enrolled}
		if r.Mode == db.MFARequired {
			row.Deadline = jsonOptionalTime(r.Deadline)
		}
		status.Rules = append(status.Rules, row)
	}
	return status, rules, nil
}

// printMFAStatus is the table of mfa status; rules are status.Rules' rules, in order.
func printMFAStatus(w io.Writer, status mfaStatusJSON, rules []db.MFARule, loc *time.Location, now time.Time) error {
	state := "enforcing"
	if status.Paused {
		state = "PAUSED (no rule is enforced)"
	}
	fmt.Fprintf(w, "enforcement: %s\n", state)
	if len(rules) == 0 {
		fmt.Fprintln(w, "no rules: two-step verification is optional for everyone")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COHORT\tRULE\tMEMBERS\tENROLLED\tNOT ENROLLED")
	for i, r := range rules {
		row := status.Rules[i]
		rule := r.Mode
		if r.Mode == db.MFARequired {
			rule = "required from " + r.Deadline.In(loc).Format("2006-01-02 15:04 MST")
			// The rule on its own, as the table shows it: the pause is on the line above.
			if db.Strictest([]db.MFARule{r}).EnforcedAt(now) {
				rule += " (in force)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", row.Scope, rule, row.Members, row.Enrolled, row.Members-row.Enrolled)
	}
	return tw.Flush()
}

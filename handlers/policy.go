package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/views"
)

// ruleKey caches the user's rule for the request: the gate and the banner both need it.
// ruleScopeKnownKey marks that the user in the context came from the session lookup, which
// loads MFARuleScoped.
const (
	ruleKey           = "gatehouse.mfa_rule"
	ruleScopeKnownKey = "gatehouse.mfa_rule_scope_known"
)

func (h *Handler) ruleFor(c echo.Context, u db.User) (db.EffectiveRule, error) {
	if r, ok := c.Get(ruleKey).(db.EffectiveRule); ok {
		return r, nil
	}
	// The session lookup already said whether any rule names this user's role or groups;
	// when none does, there is nothing to read.
	if known, _ := c.Get(ruleScopeKnownKey).(bool); known && !u.MFARuleScoped {
		r := db.EffectiveRule{Mode: db.MFAOff}
		c.Set(ruleKey, r)
		return r, nil
	}
	r, err := h.db.EffectiveRuleFor(c.Request().Context(), u)
	if err != nil {
		return db.EffectiveRule{}, err
	}
	c.Set(ruleKey, r)
	return r, nil
}

// Steps a signed-in user may have to finish before anything else.
const (
	stepPassword = "/account/password"
	stepMFA      = "/account/mfa"
)

// pendingStep names the page a signed-in user must finish before any other, or "". A
// forced password change comes first, then a required enrollment past its deadline.
func (h *Handler) pendingStep(c echo.Context) (string, error) {
	u, _ := currentUser(c)
	if u.MustChangePassword {
		return stepPassword, nil
	}
	if u.HasMFA() {
		return "", nil
	}
	if u.MustEnrollMFA {
		return stepMFA, nil
	}
	rule, err := h.ruleFor(c, u)
	if err != nil {
		return "", err
	}
	if rule.EnforcedAt(h.now()) {
		return stepMFA, nil
	}
	return "", nil
}

// mfaWarning is the deadline to warn a user about, or zero.
func (h *Handler) mfaWarning(c echo.Context, u db.User, now time.Time) time.Time {
	if u.HasMFA() {
		return time.Time{}
	}
	rule, err := h.ruleFor(c, u)
	if err != nil {
		h.logFault(c, slog.LevelError, "mfa rule failed", err)
		return time.Time{}
	}
	if rule.Required() && !rule.Paused && now.Before(rule.Deadline) {
		return rule.Deadline
	}
	return time.Time{}
}

// policyScopes lists every role and group with its rule and progress.
func (h *Handler) policyScopes(ctx context.Context) ([]views.PolicyScope, error) {
	rules, err := h.db.MFARules(ctx)
	if err != nil {
		return nil, err
	}
	groups, err := h.db.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	counts, err := h.db.ScopeCounts(ctx)
	if err != nil {
		return nil, err
	}
	byScope := map[db.Scope]db.MFARule{}
	for _, r := range rules {
		byScope[db.Scope{Role: r.Role, GroupID: r.GroupID}] = r
	}
	var scopes []views.PolicyScope
	add := func(scope db.Scope, label string) {
		c := counts[scope]
		s := views.PolicyScope{Value: db.ScopeValue(scope.Role, scope.GroupID), Label: label, Mode: db.MFAOff,
			Members: c.Members, Enrolled: c.Enrolled}
		if r, ok := byScope[scope]; ok {
			s.Mode, s.Deadline, s.UpdatedBy, s.UpdatedAt = r.Mode, r.Deadline, r.UpdatedBy, r.UpdatedAt
		}
		if s.Mode == db.MFARequired && !h.now().Before(s.Deadline) {
			s.PastDeadline = c.Members - c.Enrolled
		} else {
			s.Pending = c.Members - c.Enrolled
		}
		scopes = append(scopes, s)
	}
	for _, r := range db.Roles {
		add(db.Scope{Role: r}, "Role: "+r)
	}
	for _, g := range groups {
		add(db.Scope{GroupID: g.ID}, "Group: "+g.Name)
	}
	return scopes, nil
}

// mfaPolicyShow handles GET /admin/mfa-policy: every role and group with its rule and
// progress.
func (h *Handler) mfaPolicyShow(c echo.Context) error {
	return h.renderPolicy(c, http.StatusOK, views.PolicyForm{Mode: db.MFARequired})
}

func (h *Handler) renderPolicy(c echo.Context, status int, f views.PolicyForm) error {
	ctx := c.Request().Context()
	scopes, err := h.policyScopes(ctx)
	if err != nil {
		return err
	}
	paused, err := h.db.MFAPaused(ctx)
	if err != nil {
		return err
	}
	return render(c, status, views.PolicyPage(h.pageWithStatus(c, "Two-step verification policy", status),
		views.Policy{Scopes: scopes, Paused: paused, Form: f}))
}

// mfaPolicyUpdate handles POST /admin/mfa-policy: it shows a dry run of the change; only
// the dry run's own confirm button saves it, so no rule changes without the admin having
// seen whom it affects.
func (h *Handler) mfaPolicyUpdate(c echo.Context) error {
	ctx := c.Request().Context()
	f := views.PolicyForm{Scope: c.FormValue("scope"), Mode: c.FormValue("mode"), Deadline: c.FormValue("deadline"),
		Errors: map[string]string{}}
	rule := db.MFARule{Mode: f.Mode}
	if role, group, ok := db.ParseScope(f.Scope); ok && role != "" {
		rule.Role = role
	} else if ok {
		if _, err := h.db.GroupByID(ctx, group); err == nil {
			rule.GroupID = group
		}
	}
	if rule.Role == "" && rule.GroupID == 0 {
		f.Errors["scope"] = "Choose a role or a group."
	}
	if !db.ValidMFAMode(f.Mode) {
		f.Errors["mode"] = "Choose off, optional or required."
	}
	if f.Mode == db.MFARequired {
		t, err := views.ParseFormTime(f.Deadline, h.cfg.Location)
		switch {
		case err != nil:
			f.Errors["deadline"] = "Enter a date and time."
		case t.IsZero():
			f.Errors["deadline"] = "A required rule needs a deadline. A time in the past means: from now."
		}
		rule.Deadline = t
	}
	if len(f.Errors) > 0 {
		return h.renderPolicy(c, http.StatusUnprocessableEntity, f)
	}
	if c.FormValue("confirm") == "" {
		dry, err := h.dryRun(ctx, rule)
		if err != nil {
			return err
		}
		f.DryRun = &dry
		return h.renderPolicy(c, http.StatusOK, f)
	}
	err := h.db.SetMFARule(ctx, rule, h.event(c, "mfa.policy_changed", ""))
	if errors.Is(err, db.ErrNotFound) {
		f.Errors["scope"] = "That group was just deleted."
		return h.renderPolicy(c, http.StatusUnprocessableEntity, f)
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/mfa-policy?msg=saved")
}

// dryRun counts whom a rule would affect, and who would be sent to enrollment if it
// applied now.
func (h *Handler) dryRun(ctx context.Context, rule db.MFARule) (views.DryRun, error) {
	scope := db.Scope{Role: rule.Role, GroupID: rule.GroupID}
	counts, err := h.db.ScopeCounts(ctx)
	if err != nil {
		return views.DryRun{}, err
	}
	c := counts[scope]
	d := views.DryRun{Scope: rule.Scope(), Mode: rule.Mode, Deadline: rule.Deadline, Affected: c.Members, Enrolled: c.Enrolled}
	if rule.GroupID != 0 {
		g, err := h.db.GroupByID(ctx, rule.GroupID)
		if err != nil {
			return views.DryRun{}, err
		}
		d.Scope = "group " + g.Name
	}
	if rule.Mode == db.MFARequired {
		// Another rule may already be stricter for these users; the dry run shows the effect
		// of this one.
		if d.WouldEnroll, err = h.db.UnenrolledInScope(ctx, scope); err != nil {
			return views.DryRun{}, err
		}
	}
	d.EnforcedNow = rule.Mode == db.MFARequired && !h.now().Before(rule.Deadline)
	return d, nil
}

// mfaPolicyPause handles POST /admin/mfa-policy/pause: no rule is enforced until
// enforcement resumes, and every rule is kept as it is.
func (h *Handler) mfaPolicyPause(c echo.Context) error {
	return h.setMFAPaused(c, true, "mfa.enforcement_paused", "enforcement paused; rules kept")
}

// mfaPolicyResume handles POST /admin/mfa-policy/resume: the rules are enforced again.
func (h *Handler) mfaPolicyResume(c echo.Context) error {
	return h.setMFAPaused(c, false, "mfa.enforcement_resumed", "enforcement resumed")
}

func (h *Handler) setMFAPaused(c echo.Context, paused bool, kind, detail string) error {
	ev := h.event(c, kind, "mfa policy")
	ev.Detail = detail
	if err := h.db.SetMFAPaused(c.Request().Context(), paused, ev); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/mfa-policy?msg=saved")
}

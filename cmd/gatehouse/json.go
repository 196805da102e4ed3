package main

import (
	"encoding/json"
	"io"
	"time"

	"gatehouse/db"
)

// The --json shapes are a contract for scripts: field names stay, times are RFC 3339 in
// UTC whatever --timezone says, and a missing time is null rather than a made-up zero.

type userJSON struct {
	Username    string   `json:"username"`
	DisplayName string   `json:"display_name"`
	Role        string   `json:"role"`
	MFA         []string `json:"mfa"` // the kinds of second factor: "totp", "passkey"; [] for none
	Disabled    bool     `json:"disabled"`
	LastLogin   *string  `json:"last_login"`
	Created     string   `json:"created"`
}

type appJSON struct {
	Host          string   `json:"host"`
	Audience      []string `json:"audience"`      // form values: everyone, role:NAME, group:ID
	AudienceText  string   `json:"audience_text"` // the same, for people
	RequireMFA    bool     `json:"require_mfa"`
	MustReadFirst bool     `json:"must_read_first"`
	Created       string   `json:"created"`
	Updated       string   `json:"updated"`
}

func appsJSON(apps []db.App, groups map[int64]string) []appJSON {
	out := make([]appJSON, 0, len(apps)) // an empty list is [], not null
	for _, a := range apps {
		values := db.AudienceValues(a.Audience)
		if values == nil {
			values = []string{}
		}
		out = append(out, appJSON{Host: a.Host, Audience: values, AudienceText: db.DescribeAudience(a.Audience, groups),
			RequireMFA: a.RequireMFA, MustReadFirst: a.MustReadFirst, Created: jsonTime(a.CreatedAt), Updated: jsonTime(a.UpdatedAt)})
	}
	return out
}

type mfaStatusJSON struct {
	Paused bool          `json:"paused"`
	Rules  []mfaRuleJSON `json:"rules"`
}

type mfaRuleJSON struct {
	Scope    string  `json:"scope"`
	Mode     string  `json:"mode"`
	Deadline *string `json:"deadline"`
	Members  int     `json:"members"`
	Enrolled int     `json:"enrolled"`
}

type noticeJSON struct {
	ID         int64    `json:"id"`
	Title      string   `json:"title"`
	Kind       string   `json:"kind"`
	Severity   string   `json:"severity"`
	Audience   []string `json:"audience"`
	State      string   `json:"state"`
	Author     string   `json:"author"`
	StartsAt   string   `json:"starts_at"`
	EndsAt     *string  `json:"ends_at"`
	ArchivedAt *string  `json:"archived_at"`
	// Acknowledged counts the readers who acknowledged the current version, of Readers,
	// the active users in the audience.
	Acknowledged int `json:"acknowledged"`
	Readers      int `json:"readers"`
}

func (n listedNotice) json(now time.Time) noticeJSON {
	return noticeJSON{ID: n.ID, Title: n.Title, Kind: n.Kind, Severity: n.Severity, Audience: n.audience,
		State: n.State(now), Author: n.AuthorName, StartsAt: jsonTime(n.StartsAt), EndsAt: jsonOptionalTime(n.EndsAt),
		ArchivedAt: jsonOptionalTime(n.ArchivedAt), Acknowledged: n.acked, Readers: n.readers}
}

type groupJSON struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Members int    `json:"members"`
	Created string `json:"created"`
}

func jsonTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// jsonOptionalTime is null for the zero time.
func jsonOptionalTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := jsonTime(t)
	return &s
}

func usersJSON(users []db.User) []userJSON {
	out := make([]userJSON, 0, len(users)) // an empty list is [], not null
	for _, u := range users {
		out = append(out, userJSON{
			Username:    u.Username,
			DisplayName: u.DisplayName,
			Role:        u.Role,
			MFA:         u.FactorKinds(),
			Disabled:    u.Disabled,
			LastLogin:   jsonOptionalTime(u.LastLoginAt),
			Created:     jsonTime(u.CreatedAt),
		})
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

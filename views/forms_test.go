package views

import (
	"bytes"
	"context"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"

	"gatehouse/auth"
	"gatehouse/db"
)

var (
	formNow    = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	formGroups = map[int64]string{7: "Night shift"}
)

func validNotice() NoticeForm {
	return NoticeForm{Title: "Fire drill", Body: "At three.", Audience: []string{"everyone"}}
}

func TestNoticeFormValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(f *NoticeForm)
		errors []string
	}{
		{"a plain notice passes", func(f *NoticeForm) {}, nil},
		{"no title", func(f *NoticeForm) { f.Title = "  " }, []string{"title"}},
		{"a title over the limit", func(f *NoticeForm) { f.Title = strings.Repeat("t", MaxTitleLen+1) }, []string{"title"}},
		{"a title at the limit passes", func(f *NoticeForm) { f.Title = strings.Repeat("t", MaxTitleLen) }, nil},
		{"a title on two lines", func(f *NoticeForm) { f.Title = "Fire\ndrill" }, []string{"title"}},
		{"no body", func(f *NoticeForm) { f.Body = "\r\n" }, []string{"body"}},
		{"a body over the limit", func(f *NoticeForm) { f.Body = strings.Repeat("b", MaxBodyLen+1) }, []string{"body"}},
		{"an unknown kind", func(f *NoticeForm) { f.Kind = "urgent" }, []string{"kind"}},
		{"an unknown severity", func(f *NoticeForm) { f.Severity = "fatal" }, []string{"severity"}},
		{"no audience", func(f *NoticeForm) { f.Audience = nil }, []string{"audience"}},
		{"an unknown group", func(f *NoticeForm) { f.Audience = []string{"group:8"} }, []string{"audience"}},
		{"a known group passes", func(f *NoticeForm) { f.Audience = []string{"group:7", "role:staff"} }, nil},
		{"a garbled start", func(f *NoticeForm) { f.StartsAt = "tomorrow" }, []string{"starts_at"}},
		{"a garbled end", func(f *NoticeForm) { f.EndsAt = "soon" }, []string{"ends_at"}},
		{"an end before the start", func(f *NoticeForm) { f.StartsAt, f.EndsAt = "2026-03-05T10:00", "2026-03-04T10:00" }, []string{"ends_at"}},
		{"an end that has passed", func(f *NoticeForm) { f.EndsAt = "2026-03-01T10:00" }, []string{"ends_at"}},
		// The web refuses these before any form sees them; a script's input comes straight here.
		{"a title that is not UTF-8", func(f *NoticeForm) { f.Title = "Fire \xff drill" }, []string{"title"}},
		{"a body that is not UTF-8", func(f *NoticeForm) { f.Body = "At \xc3 three." }, []string{"body"}},
		{"a body with a NUL", func(f *NoticeForm) { f.Body = "At\x00three." }, []string{"body"}},
		{"times with their own offset pass", func(f *NoticeForm) { f.StartsAt, f.EndsAt = "2026-03-05T10:00:00Z", "2026-03-05T12:00:00+01:00" }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := validNotice()
			tc.change(&f)
			_, ok := f.Validate(formNow, time.UTC, formGroups)
			if got := slices.Sorted(maps.Keys(f.Errors)); !slices.Equal(got, tc.errors) {
				t.Fatalf("errors on %v (%v), want %v", got, f.Errors, tc.errors)
			}
			if ok != (len(tc.errors) == 0) {
				t.Fatalf("ok = %v with errors %v", ok, f.Errors)
			}
		})
	}
}

func TestNoticeFormValidateReturnsWhatIsStored(t *testing.T) {
	f := NoticeForm{Title: "  Fire drill ", Body: " Line one\r\nLine two ", Audience: []string{"role:staff", "role:staff", "group:7"},
		StartsAt: "2026-03-02T12:00", EndsAt: "2026-03-02T13:00:30"}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	in, ok := f.Validate(formNow, berlin, formGroups)
	if !ok {
		t.Fatal(f.Errors)
	}
	want := db.NoticeInput{Title: "Fire drill", Body: "Line one\nLine two", Kind: db.NoticeNormal, Severity: db.SeverityInfo,
		StartsAt: time.Date(2026, 3, 2, 11, 0, 0, 0, time.UTC), EndsAt: time.Date(2026, 3, 2, 12, 0, 30, 0, time.UTC),
		Audience: db.Audience{Roles: []string{"staff"}, GroupIDs: []int64{7}}}
	if in.Title != want.Title || in.Body != want.Body || in.Kind != want.Kind || in.Severity != want.Severity ||
		!in.StartsAt.Equal(want.StartsAt) || !in.EndsAt.Equal(want.EndsAt) ||
		!slices.Equal(in.Audience.Roles, want.Audience.Roles) || !slices.Equal(in.Audience.GroupIDs, want.Audience.GroupIDs) {
		t.Fatalf("input %+v, want %+v", in, want)
	}
	if f.Title != want.Title || f.Kind != db.NoticeNormal || f.Severity != db.SeverityInfo {
		t.Fatalf("the form shows %q, %q, %q; want what is stored", f.Title, f.Kind, f.Severity)
	}
}

// TestFormTimesMayCarryTheirOwnOffset: a script names an instant exactly with an RFC 3339
// time, which is read as it is whatever the portal's zone, even in the hour a change to
// winter time repeats; a datetime-local value is read in the zone.
func TestFormTimesMayCarryTheirOwnOffset(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-03-02T12:00", time.Date(2026, 3, 2, 11, 0, 0, 0, time.UTC)},
		{"2026-03-02T12:00:30", time.Date(2026, 3, 2, 11, 0, 30, 0, time.UTC)},
		{"2026-03-02T12:00:00Z", time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)},
		{"2026-03-02T12:00:00+05:30", time.Date(2026, 3, 2, 6, 30, 0, 0, time.UTC)},
		{"2026-10-25T02:30:00+01:00", time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC)}, // the second 02:30 in Berlin
		{"2026-10-25T02:30:00+02:00", time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)}, // the first
	} {
		got, err := ParseFormTime(tc.in, berlin)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseFormTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"tomorrow", "2026-03-02", "2026-03-02 12:00", "2026-03-02T12:00:00+25:00"} {
		if _, err := ParseFormTime(bad, berlin); err == nil {
			t.Errorf("ParseFormTime(%q) succeeded", bad)
		}
	}
}

func TestNoticeFormFromIsTheEditFormOfTheNotice(t *testing.T) {
	n := db.Notice{ID: 4, Title: "Drill", Body: "At three.", Kind: db.NoticeMustRead, Severity: db.SeverityWarning,
		StartsAt: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC), EndsAt: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
		Audience: db.Audience{Roles: []string{"staff"}, GroupIDs: []int64{7}}}
	f := NoticeFormFrom(n, time.UTC)
	if f.ID != 4 || !f.MustRead || f.StartsAt != "2026-03-01T08:00" || f.EndsAt != "2026-03-01T09:00" ||
		!slices.Equal(f.Audience, []string{"role:staff", "group:7"}) {
		t.Fatalf("form %+v", f)
	}
	t.Run("an end that has passed may stay on an edit", func(t *testing.T) {
		in, ok := f.ValidateEdit(n, formNow, time.UTC, formGroups)
		if !ok || !in.EndsAt.Equal(n.EndsAt) {
			t.Fatalf("ok %v, errors %v, end %v", ok, f.Errors, in.EndsAt)
		}
	})
	t.Run("an empty start keeps the notice's start", func(t *testing.T) {
		g := NoticeFormFrom(n, time.UTC)
		g.StartsAt, g.EndsAt = "", ""
		in, ok := g.ValidateEdit(n, formNow, time.UTC, formGroups)
		if !ok || !in.StartsAt.Equal(n.StartsAt) {
			t.Fatalf("ok %v, errors %v, start %v", ok, g.Errors, in.StartsAt)
		}
	})
	t.Run("a new end that has passed is refused", func(t *testing.T) {
		g := NoticeFormFrom(n, time.UTC)
		g.EndsAt = "2026-03-01T10:00"
		if _, ok := g.ValidateEdit(n, formNow, time.UTC, formGroups); ok || g.Errors["ends_at"] == "" {
			t.Fatalf("ok %v, errors %v", ok, g.Errors)
		}
	})
}

// The first-run form and the admin's create-user form apply one set of account rules, the
// rules of auth that the command line applies too.
func TestAccountFormsShareTheAccountRules(t *testing.T) {
	for _, tc := range []struct {
		name                          string
		username, displayName, pass   string
		field, reason                 string
		storedUsername, storedDisplay string
	}{
		{"a valid account passes", " Ｚoë ", "  Zoë Adams ", "a perfectly fine passphrase", "", "", "Zoë", "Zoë Adams"},
		{"a username with a space", "zoe adams", "", "a perfectly fine passphrase", "username", "Use letters, digits, and . - _ @ only.", "", ""},
		{"a short password", "zoe", "", "short", "password", "Use at least 12 characters.", "", ""},
		{"the username as password", "zoe.the.builder", "", "Zoe.The.Builder", "password", "Do not use your username as your password.", "", ""},
		{"a display name on two lines", "zoe", "Zoë\nAdams", "a perfectly fine passphrase", "display_name", "Use at most 100 characters on one line.", "", ""},
		{"a display name over the limit", "zoe", strings.Repeat("z", auth.MaxDisplayNameLen+1), "a perfectly fine passphrase", "display_name", "Use at most 100 characters on one line.", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setup := SetupForm{AccountFields: AccountFields{Username: tc.username, DisplayName: tc.displayName}}
			create := NewUserForm{AccountFields: AccountFields{Username: tc.username, DisplayName: tc.displayName}}
			setupOK, createOK := setup.Validate(tc.pass), create.Validate(tc.pass)
			for _, got := range []map[string]string{setup.Errors, create.Errors} {
				if tc.field == "" && len(got) != 0 || tc.field != "" && (len(got) != 1 || got[tc.field] != tc.reason) {
					t.Fatalf("errors %v, want %q on %q", got, tc.reason, tc.field)
				}
			}
			if setupOK != (tc.field == "") || createOK != setupOK {
				t.Fatalf("ok: setup %v, create %v", setupOK, createOK)
			}
			if tc.field == "" && (setup.Username != tc.storedUsername || create.DisplayName != tc.storedDisplay) {
				t.Fatalf("stored as %q, %q", setup.Username, create.DisplayName)
			}
		})
	}
}

func TestPasswordFormRules(t *testing.T) {
	var f PasswordForm
	if f.CheckCurrent("") || f.Errors["current_password"] != "Enter your current password." {
		t.Fatalf("an empty current password: %v", f.Errors)
	}
	if !f.CheckCurrent("old passphrase") {
		t.Fatalf("a current password: %v", f.Errors)
	}
	if f.Validate("old passphrase", "short", "alice") || f.Errors["new_password"] != "Use at least 12 characters." {
		t.Fatalf("a short new password: %v", f.Errors)
	}
	if f.Validate("the same passphrase", "the same passphrase", "alice") ||
		f.Errors["new_password"] != "Choose a password different from the current one." {
		t.Fatalf("an unchanged password: %v", f.Errors)
	}
	if !f.Validate("old passphrase", "a brand new passphrase", "alice") {
		t.Fatalf("a good new password: %v", f.Errors)
	}
}

func TestGroupFormRules(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"a name passes, trimmed", "  Night shift ", true},
		{"a name at the limit passes", strings.Repeat("g", MaxGroupNameLen), true},
		{"no name", "   ", false},
		{"a name over the limit", strings.Repeat("g", MaxGroupNameLen+1), false},
		{"a name on two lines", "Night\nshift", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := GroupForm{Name: tc.value}
			if f.Validate() != tc.ok || (f.Error == "") != tc.ok {
				t.Fatalf("ok %v, error %q", tc.ok, f.Error)
			}
			if tc.ok && f.Name != strings.TrimSpace(tc.value) {
				t.Fatalf("name %q", f.Name)
			}
		})
	}
}

// Every length limit a page gives the browser is the limit the form's validation applies,
// read from the same constant.
func TestFieldLimitsAreTheValidationLimits(t *testing.T) {
	pages := map[string]templ.Component{
		"setup":      SetupPage(Page{}, SetupForm{}),
		"sign-in":    LoginPage(Page{}, LoginForm{}),
		"new user":   AdminNewUserPage(Page{}, NewUserForm{}),
		"password":   PasswordPage(Page{}, PasswordForm{}),
		"groups":     AdminGroupsPage(Page{}, nil, GroupForm{}),
		"group":      AdminGroupPage(Page{}, db.Group{ID: 1}, nil, ""),
		"notices":    AdminNoticesPage(Page{Location: time.UTC}, NoticeForm{}, nil),
		"two-step":   MFAPage(Page{}, Enrollment{Active: true}),
		"enrollment": MFAPage(Page{}, Enrollment{}),
		"apps":       AdminAppsPage(Page{}, AppForm{}, nil, CookieScope{}),
		"sessions":   AdminSessionsPage(Page{}, AdminSessions{}),
		"audit":      AdminAuditPage(Page{Location: time.UTC}, AuditView{}),
		"users":      AdminUsersPage(Page{}, nil, ""),
	}
	limits := map[string]int{"username": auth.MaxUsernameLen, "display_name": auth.MaxDisplayNameLen,
		"password": auth.MaxPasswordLen, "current_password": auth.MaxPasswordLen, "new_password": auth.MaxPasswordLen,
		"title": MaxTitleLen, "body": MaxBodyLen, "name": MaxGroupNameLen, "host": db.MaxAppHostInput,
		"user": auth.MaxUsernameLen, "actor": auth.MaxUsernameLen, "subject": db.MaxAppHostLen,
		"q": auth.MaxDisplayNameLen}
	field := regexp.MustCompile(`<(?:input|textarea)[^>]*>`)
	attr := func(tag, name string) string {
		m := regexp.MustCompile(` ` + name + `="([^"]*)"`).FindStringSubmatch(tag)
		if m == nil {
			return ""
		}
		return m[1]
	}
	checked := map[string]bool{}
	for page, c := range pages {
		var buf bytes.Buffer
		if err := c.Render(context.Background(), &buf); err != nil {
			t.Fatal(err)
		}
		for _, tag := range field.FindAllString(buf.String(), -1) {
			name := attr(tag, "name")
			want, ok := limits[name]
			if !ok {
				continue
			}
			checked[name] = true
			if got := attr(tag, "maxlength"); got != strconv.Itoa(want) {
				t.Errorf("%s page: %s has maxlength %q, want %d", page, name, got, want)
			}
			if attr(tag, "type") == "password" && strings.Contains(attr(tag, "autocomplete"), "new-password") {
				if got := attr(tag, "minlength"); got != strconv.Itoa(auth.MinPasswordLen) {
					t.Errorf("%s page: %s has minlength %q, want %d", page, name, got, auth.MinPasswordLen)
				}
			}
		}
	}
	for name := range limits {
		if !checked[name] {
			t.Errorf("no page has a %s field", name)
		}
	}
}

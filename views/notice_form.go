package views

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gatehouse/auth"
	"gatehouse/db"
)

// Limits of a notice, in characters; the form's maxlength attributes use them too.
const (
	MaxTitleLen = 200
	MaxBodyLen  = 10000
)

// AudienceOption is one choice of the audience field.
type AudienceOption struct {
	Value string // everyone, role:NAME or group:ID
	Label string
}

// NoticeForm is the state of the write and edit forms: the fields as typed, and after
// Validate, their problems by field name.
type NoticeForm struct {
	ID       int64
	MustRead bool // the notice being edited is must-read now, so the minor box applies
	Title    string
	Body     string
	Kind     string
	Severity string
	StartsAt string // datetime-local value
	EndsAt   string
	Audience []string
	Minor    bool
	Email    bool   // also mail it to its audience when it starts
	Remind   string // none, daily or weekly
	DueAt    string // datetime-local value
	Renew    string // renew_every as typed: a duration such as 365d, or empty
	Errors   map[string]string
	Preview  *NoticePreview
	Options  []AudienceOption
	MailOn   bool // the portal sends mail; when not, the form says so
	// NoAddress, when set, is how many in the audience (as last saved or previewed) have no
	// address, so mail does not reach them.
	NoAddress *int
}

// MinRenewal is the shortest renew_every: readers acknowledge again at most daily.
const MinRenewal = 24 * time.Hour

// NoticeFormFrom is the edit form of n, its times in the portal's zone loc.
func NoticeFormFrom(n db.Notice, loc *time.Location) NoticeForm {
	return NoticeForm{ID: n.ID, MustRead: n.MustRead(), Title: n.Title, Body: n.Body, Kind: n.Kind,
		Severity: n.Severity, StartsAt: FormatFormTime(n.StartsAt, loc), EndsAt: FormatFormTime(n.EndsAt, loc),
		Audience: db.AudienceValues(n.Audience), Email: n.Email, Remind: n.Remind, DueAt: FormatFormTime(n.DueAt, loc),
		Renew: renewValue(n.RenewEvery)}
}

func renewValue(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return db.FormatDays(d)
}

func (f NoticeForm) chosen(v string) bool { return slices.Contains(f.Audience, v) }

// Validate checks a new notice at now, reading times in loc and audiences against the
// groups that exist. It returns the notice to store and whether the form has no problems;
// the problems are in f.Errors, and the title and body as they will be stored.
func (f *NoticeForm) Validate(now time.Time, loc *time.Location, groups map[int64]string) (db.NoticeInput, bool) {
	f.Errors = map[string]string{}
	f.Title = strings.TrimSpace(f.Title)
	f.Body = strings.TrimSpace(strings.ReplaceAll(f.Body, "\r\n", "\n"))
	if f.Kind == "" {
		f.Kind = db.NoticeNormal
	}
	if f.Severity == "" {
		f.Severity = db.SeverityInfo
	}
	f.checkText()
	f.checkKind()
	in := db.NoticeInput{Title: f.Title, Body: f.Body, Kind: f.Kind, Severity: f.Severity, Audience: f.checkAudience(groups)}
	in.StartsAt, in.EndsAt = f.checkTimes(now, loc)
	in.Email = f.Email
	in.Remind, in.DueAt, in.Renew = f.checkFollowUp(in.StartsAt, now, loc)
	return in, len(f.Errors) == 0
}

// checkFollowUp reads what follows a must-read notice up: reminders, a due date after its
// start, and a renewal of at least MinRenewal. A normal notice has none of them.
func (f *NoticeForm) checkFollowUp(start, now time.Time, loc *time.Location) (remind string, due time.Time, renew time.Duration) {
	f.Remind = strings.TrimSpace(f.Remind)
	if f.Remind == "" {
		f.Remind = db.RemindNone
	}
	if f.Remind != db.RemindNone && f.Remind != db.RemindDaily && f.Remind != db.RemindWeekly {
		f.Errors["remind"] = "Choose no reminders, daily or weekly."
	}
	var err error
	if due, err = ParseFormTime(f.DueAt, loc); err != nil {
		f.Errors["due_at"] = "Enter a date and time, or leave it empty for no due date."
	}
	if from := start; !due.IsZero() {
		if from.IsZero() {
			from = now
		}
		if !due.After(from) {
			f.Errors["due_at"] = "The due date must be after the start."
		}
	}
	f.Renew = strings.TrimSpace(f.Renew)
	if f.Renew != "" {
		if renew, err = db.ParseDuration(f.Renew); err != nil {
			f.Errors["renew_every"] = "Enter a duration such as 365d or 30d, or leave it empty."
		} else if renew < MinRenewal {
			f.Errors["renew_every"] = "Ask again at most once a day: use 1d or more."
		}
	}
	if f.Kind != db.NoticeMustRead {
		for field, set := range map[string]bool{"remind": f.Remind != db.RemindNone, "due_at": f.DueAt != "", "renew_every": f.Renew != ""} {
			if set && f.Errors[field] == "" {
				f.Errors[field] = "Only a must-read notice has this: choose Must read, or clear it."
			}
		}
	}
	return f.Remind, due, renew
}

// ValidateEdit is Validate for a change to n: an empty start keeps n's start, and an end
// that has passed may stay only if n already had it.
func (f *NoticeForm) ValidateEdit(n db.Notice, now time.Time, loc *time.Location, groups map[int64]string) (db.NoticeInput, bool) {
	in, _ := f.Validate(now, loc, groups)
	if in.StartsAt.IsZero() {
		in.StartsAt = n.StartsAt
	}
	if f.Errors["ends_at"] != "" && in.EndsAt.Equal(n.EndsAt) && in.EndsAt.After(in.StartsAt) {
		delete(f.Errors, "ends_at")
	}
	return in, len(f.Errors) == 0
}

// plainText is text that can be stored and shown: valid UTF-8 without NUL characters. The
// web refuses anything else before a form sees it; a script's input is checked here.
func plainText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

const notPlainText = "Use plain text: valid UTF-8, without NUL characters."

func (f *NoticeForm) checkText() {
	switch n := utf8.RuneCountInString(f.Title); {
	case n == 0:
		f.Errors["title"] = "Give the notice a title."
	case n > MaxTitleLen:
		f.Errors["title"] = fmt.Sprintf("Use at most %d characters.", MaxTitleLen)
	case !plainText(f.Title):
		f.Errors["title"] = notPlainText
	case !auth.SingleLine(f.Title):
		f.Errors["title"] = "Keep the title on one line."
	}
	switch n := utf8.RuneCountInString(f.Body); {
	case n == 0:
		f.Errors["body"] = "Write the message."
	case n > MaxBodyLen:
		f.Errors["body"] = fmt.Sprintf("Use at most %d characters.", MaxBodyLen)
	case !plainText(f.Body):
		f.Errors["body"] = notPlainText
	}
}

func (f *NoticeForm) checkKind() {
	if f.Kind != db.NoticeNormal && f.Kind != db.NoticeMustRead {
		f.Errors["kind"] = "Choose normal or must read."
	}
	if f.Severity != db.SeverityInfo && f.Severity != db.SeverityWarning && f.Severity != db.SeverityCritical {
		f.Errors["severity"] = "Choose info, warning or critical."
	}
}

func (f *NoticeForm) checkAudience(groups map[int64]string) db.Audience {
	aud, ok := db.ParseAudience(f.Audience, groups)
	switch {
	case !ok:
		f.Errors["audience"] = "One of the chosen audiences does not exist any more. Choose again."
	case aud.Empty():
		f.Errors["audience"] = "Choose who should see the notice."
	}
	return aud
}

// checkTimes reads the start and end; an end must come after the start (or now, for a
// notice that starts at once) and must not have passed already.
func (f *NoticeForm) checkTimes(now time.Time, loc *time.Location) (start, end time.Time) {
	var err error
	if start, err = ParseFormTime(f.StartsAt, loc); err != nil {
		f.Errors["starts_at"] = "Enter a date and time, or leave it empty to start now."
	}
	if end, err = ParseFormTime(f.EndsAt, loc); err != nil {
		f.Errors["ends_at"] = "Enter a date and time, or leave it empty for no end."
	}
	from := start
	if from.IsZero() {
		from = now
	}
	if !end.IsZero() && f.Errors["ends_at"] == "" {
		switch {
		case !end.After(from):
			f.Errors["ends_at"] = "The end must be after the start."
		case !end.After(now):
			f.Errors["ends_at"] = "The end is in the past, so nobody would see the notice."
		}
	}
	return start, end
}

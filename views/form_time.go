package views

import (
	"fmt"
	"strings"
	"time"
)

// FormTime is the layout of a datetime-local field's value.
const FormTime = "2006-01-02T15:04"

// ParseFormTime reads a datetime-local value in the portal's zone loc; "" is the zero
// time. Browsers that show seconds send them, so those are read too. An RFC 3339 time,
// which a script sends, carries its own offset and is read as it is: it names one instant
// even in the hour a change to winter time repeats.
func ParseFormTime(v string, loc *time.Location) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	for _, layout := range []string{FormTime, "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("views: %.40q is not a date and time", v)
}

// FormatFormTime is the datetime-local value of t in loc, or "" for the zero time.
func FormatFormTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return t.In(loc).Format(FormTime)
}

package db

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var dayUnit = regexp.MustCompile(`(\d+(?:\.\d+)?)d`)

// ParseDuration is time.ParseDuration plus a "d" unit of 24 hours, and it must be positive.
// Every duration people type (session limits, audit retention, a notice's renewal) reads
// through it, so "365d" means the same everywhere.
func ParseDuration(s string) (time.Duration, error) {
	var bad error
	expanded := dayUnit.ReplaceAllStringFunc(s, func(m string) string {
		days, err := strconv.ParseFloat(strings.TrimSuffix(m, "d"), 64)
		if err != nil {
			bad = err
		}
		return strconv.FormatFloat(days*24, 'f', -1, 64) + "h"
	})
	if bad != nil {
		return 0, errors.New("want a duration such as 30m, 12h or 7d")
	}
	d, err := time.ParseDuration(expanded)
	if err != nil {
		return 0, errors.New("want a duration such as 30m, 12h or 7d")
	}
	if d <= 0 {
		return 0, errors.New("must be longer than zero")
	}
	return d, nil
}

// FormatDays writes d the way ParseDuration reads it back, in whole days when it is some.
func FormatDays(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

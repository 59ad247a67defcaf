package apijson

import (
	"strconv"
	"time"
)

// TimeLayout is how the API writes times, as the contract does: UTC, whole
// seconds, a numeric offset: 2024-06-22T04:33:29+00:00.
const TimeLayout = "2006-01-02T15:04:05-07:00"

// FormatTime writes t in UTC per TimeLayout.
func FormatTime(t time.Time) string {
	return t.UTC().Format(TimeLayout)
}

// FormatTimePtr writes t per FormatTime; nil (null in JSON) stays nil.
func FormatTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := FormatTime(*t)
	return &s
}

// ParseTime reads a time the API wrote. It takes any RFC 3339 time, so
// "Z" for UTC and fractions of a second are read too.
func ParseTime(s string) (time.Time, error) {
	return time.Parse(time.RFC3339, s)
}

// ParseTimePtr reads a time that may be null: nil stays nil.
func ParseTimePtr(s *string) (*time.Time, error) {
	if s == nil {
		return nil, nil
	}
	t, err := ParseTime(*s)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// RelativeTime says how far t is from now the way the original service's
// time_to_expire does: the largest whole unit, truncated, "from now" ahead
// and "ago" at or after t ("2 hours from now", "1 second from now",
// "0 seconds ago", "3 minutes ago"). Months are 30 days, years 365.
func RelativeTime(t, now time.Time) string {
	d := t.Sub(now)
	suffix := "from now"
	if d <= 0 {
		suffix, d = "ago", -d
	}
	secs := int64(d / time.Second)
	for _, u := range relativeUnits {
		if n := secs / u.secs; n >= 1 || u.secs == 1 {
			return plural(n, u.name) + " " + suffix
		}
	}
	panic("unreachable: the last unit is one second")
}

var relativeUnits = []struct {
	name string
	secs int64
}{
	{"year", 365 * 86400},
	{"month", 30 * 86400},
	{"week", 7 * 86400},
	{"day", 86400},
	{"hour", 3600},
	{"minute", 60},
	{"second", 1},
}

func plural(n int64, unit string) string {
	s := strconv.FormatInt(n, 10) + " " + unit
	if n != 1 {
		s += "s"
	}
	return s
}

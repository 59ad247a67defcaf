package web

import (
	"fmt"
	"html/template"
	"strconv"
	"time"
)

// funcs are the helpers the templates call.
func (v *views) funcs() template.FuncMap {
	return template.FuncMap{
		"rfc3339": func(t any) string { return formatTime(t, time.RFC3339) },
		"clock":   func(t any) string { return formatTime(t, "Jan 2 15:04") },
		// clockSec is for the audit log, where seconds tell events apart.
		"clockSec": func(t any) string { return formatTime(t, "Jan 2 15:04:05") },
		"bytes":    formatBytes,
	}
}

// ago says how long before now t was, in the largest unit, truncated:
// "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago".
func ago(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 5*time.Second:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h ago"
	default:
		return strconv.Itoa(int(d/(24*time.Hour))) + " d ago"
	}
}

// agoCoarse is ago in whole minutes at best, so that a page showing it only
// changes when something happened (its fragment's ETag stays put).
func agoCoarse(t, now time.Time) string {
	if now.Sub(t) < time.Minute {
		return "under a minute ago"
	}
	return ago(t, now)
}

// countdown is the time left until an expiry as the page's script also
// writes it: "1h 59m 58s", "4m 03s", "expired".
func countdown(d time.Duration) string {
	if d <= 0 {
		return "expired"
	}
	s := int64(d / time.Second)
	h, m, sec := s/3600, s/60%60, s%60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh %02dm %02ds", h, m, sec)
	case m > 0:
		return fmt.Sprintf("%dm %02ds", m, sec)
	default:
		return fmt.Sprintf("%ds", sec)
	}
}

// span is a duration for humans: "45 s", "12 min", "2 h 5 min".
func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	default:
		h, m := int(d/time.Hour), int(d/time.Minute)%60
		if m == 0 {
			return strconv.Itoa(h) + " h"
		}
		return fmt.Sprintf("%d h %d min", h, m)
	}
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// formatTime formats a time.Time or a non-nil *time.Time in UTC; anything
// else is empty.
func formatTime(t any, layout string) string {
	switch t := t.(type) {
	case time.Time:
		return t.UTC().Format(layout)
	case *time.Time:
		if t != nil {
			return t.UTC().Format(layout)
		}
	}
	return ""
}

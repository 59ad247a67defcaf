package tpfctl

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tpf-dev/tpf/controller/apijson"
)

// table writes aligned columns; Flush ends it.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
		cells[i] = strings.ReplaceAll(strings.ReplaceAll(cells[i], "\t", " "), "\n", " ")
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() { t.tw.Flush() }

// fields writes "name  value" lines, aligned.
func writeFields(w io.Writer, kv ...string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\n", kv[i], v)
	}
	tw.Flush()
}

// connectTo is where users connect: entry_point:port.
func connectTo(f Forward) string {
	return net.JoinHostPort(f.EntryPoint, strconv.Itoa(f.Port))
}

func destination(f Forward) string {
	return net.JoinHostPort(f.DstAddress, strconv.Itoa(f.DstPort))
}

// forwardState is the status with what a person should know about it: how
// it ended, whether something refused it.
func forwardState(f Forward) string {
	s := f.Status
	var notes []string
	if f.RevokedEarly {
		notes = append(notes, "revoked")
	} else if f.Expired {
		notes = append(notes, "expired")
	}
	if f.RouterError != nil {
		notes = append(notes, "router error")
	}
	if f.EdgeError != nil {
		notes = append(notes, "edge error")
	}
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, ", ") + ")"
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// expiresText says when a forward ends or how it ended, for a person at a
// terminal: "in 1h59m" while it is live (to the minute, to the second in
// its last minute), "expired 3m ago" or "revoked 5m ago" once it ended.
// The API's time_to_expire says the same in the contract's coarser words.
func expiresText(f Forward, now time.Time) string {
	switch {
	case f.RevokedEarly && f.RevokedAt != nil:
		if t, err := apijson.ParseTime(*f.RevokedAt); err == nil {
			return "revoked " + shortDuration(now.Sub(t)) + " ago"
		}
		return "revoked"
	}
	t, err := apijson.ParseTime(f.ExpiresAt)
	if err != nil {
		return f.TimeToExpire
	}
	if left := t.Sub(now); left > 0 {
		return "in " + shortDuration(left)
	}
	return "expired " + shortDuration(now.Sub(t)) + " ago"
}

// shortDuration writes d to the minute (1h59m, 3d4h), or to the second
// below a minute.
func shortDuration(d time.Duration) string {
	d = max(d, 0)
	if d < time.Minute {
		return d.Truncate(time.Second).String()
	}
	d = d.Truncate(time.Minute)
	days, rest := d/(24*time.Hour), d%(24*time.Hour)
	s := ""
	if days > 0 {
		s = fmt.Sprintf("%dd", days)
	}
	if rest > 0 {
		s += minutesText(rest)
	}
	return s
}

// whenAgo is an API time with how long ago it was, in the words of the API's
// time_to_expire: "2024-06-22T04:33:29+00:00 (3 minutes ago)"; empty for
// null.
func whenAgo(s *string, now time.Time) string {
	if s == nil {
		return ""
	}
	t, err := apijson.ParseTime(*s)
	if err != nil {
		return *s
	}
	return *s + " (" + apijson.RelativeTime(t, now) + ")"
}

// agoOf is how long ago an API time was, "never" for null.
func agoOf(s *string, now time.Time) string {
	if s == nil {
		return "never"
	}
	t, err := apijson.ParseTime(*s)
	if err != nil {
		return *s
	}
	return apijson.RelativeTime(t, now)
}

// agentState is "connected", "offline" or "never connected".
func agentState(a Agent) string {
	switch {
	case a.Connected:
		return "connected"
	case a.ConnectedAt == nil && a.LastSeenAt == nil:
		return "never connected"
	default:
		return "offline"
	}
}

// revision says whether what was applied is what is desired.
func revision(desired, applied int64) string {
	if applied >= desired {
		return fmt.Sprintf("in sync (%d)", desired)
	}
	return fmt.Sprintf("behind (%d of %d)", applied, desired)
}

// formatBytes is a byte count for humans: "900 B", "1.5 KiB", "3.0 MiB".
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

// shorten cuts s to n runes for a table cell.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

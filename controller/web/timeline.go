package web

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
)

// The timeline is an SVG drawn on the server: one lane per forward over the
// last 24 hours and the next 6, a bar from its creation to its end (solid
// while it ran, pale for the time it still has), and a dot per connection
// (with a line while it lasted).
const (
	timelineBack   = 24 * time.Hour
	timelineAhead  = 6 * time.Hour
	timelineWidth  = 1000.0
	timelineLeft   = 210.0 // the lane labels
	timelineRight  = 12.0
	timelineTop    = 28.0 // the time axis
	laneHeight     = 22.0
	barHeight      = 12.0
	maxLanes       = 40
	tickEvery      = 3 * time.Hour
	minSpanToDrawn = 2.0 // connections shorter than this many units are a dot only
)

type timeline struct {
	Width, Height string
	Left          string
	AxisY         string
	Ticks         []tick
	NowX          string
	FutureW       string
	PlotH         string
	Lanes         []lane
	// Hidden is how many older forwards did not fit.
	Hidden int
}

type tick struct {
	X, Label string
	Day      bool
}

type lane struct {
	ID          string
	Y, TextY    string
	BarY, MidY  string
	Label       string
	Title       string
	Bars        []timelineBar
	Connections []timelineConn
}

type timelineBar struct {
	X, W, Class string
}

type timelineConn struct {
	X, X2, Title string
	Line         bool
	Open         bool
}

// layoutTimeline places forwards and their connections on the timeline at
// now (whole minutes, so the picture stays the same between polls).
func layoutTimeline(forwards []store.ForwardView, conns map[uuid.UUID][]fleet.Connection, now time.Time) timeline {
	now = now.Truncate(time.Minute)
	start, end := now.Add(-timelineBack), now.Add(timelineAhead)
	plotW := timelineWidth - timelineLeft - timelineRight
	x := func(t time.Time) float64 {
		if t.Before(start) {
			t = start
		}
		if t.After(end) {
			t = end
		}
		return timelineLeft + plotW*float64(t.Sub(start))/float64(end.Sub(start))
	}

	fs := slices.Clone(forwards)
	slices.SortStableFunc(fs, func(a, b store.ForwardView) int { return a.CreatedAt.Compare(b.CreatedAt) })
	var tl timeline
	if len(fs) > maxLanes {
		tl.Hidden = len(fs) - maxLanes
		fs = fs[len(fs)-maxLanes:]
	}
	for i, f := range fs {
		y := timelineTop + float64(i)*laneHeight
		l := lane{
			ID: f.ID.String(), Y: num(y), TextY: num(y + laneHeight/2 + 4),
			BarY: num(y + (laneHeight-barHeight)/2), MidY: num(y + laneHeight/2),
			Label: fmt.Sprintf(":%d → %s:%d", f.Port, f.DstAddress, f.DstPort),
			Title: fmt.Sprintf("%s:%d → %s:%d from %s, %s, created %s, expires %s", f.EntryPoint, f.Port, f.DstAddress, f.DstPort,
				f.AllowFrom, f.StatusAt(now), f.CreatedAt.Format("Jan 2 15:04"), f.ExpiresAt.Format("Jan 2 15:04")),
		}
		ranUntil := f.ExpiresAt
		class := string(f.StatusAt(now))
		switch {
		case f.EndedAt != nil && f.RevokedAt != nil:
			ranUntil, class = *f.EndedAt, "revoked"
		case f.EndedAt != nil || f.Expired(now):
			class = "expired"
		}
		if ranUntil.After(now) {
			// Live: solid until now, pale for the time it has left.
			l.Bars = append(l.Bars, bar(x(f.CreatedAt), x(now), class), bar(x(now), x(ranUntil), class+" ahead"))
		} else {
			l.Bars = append(l.Bars, bar(x(f.CreatedAt), x(ranUntil), class))
		}
		for _, c := range conns[f.ID] {
			until, open := now, c.EndedAt == nil
			if !open {
				until = *c.EndedAt
			}
			tc := timelineConn{X: num(x(c.StartedAt)), X2: num(x(until)), Open: open,
				Line: x(until)-x(c.StartedAt) >= minSpanToDrawn}
			tc.Title = fmt.Sprintf("%s, %s, ↑ %s ↓ %s", c.Source, c.StartedAt.Format("15:04:05"), formatBytes(c.BytesUp), formatBytes(c.BytesDown))
			if open {
				tc.Title += ", open"
			} else {
				tc.Title += ", " + span(c.EndedAt.Sub(c.StartedAt))
				if c.Reason != "" {
					tc.Title += ", " + c.Reason
				}
			}
			l.Connections = append(l.Connections, tc)
		}
		tl.Lanes = append(tl.Lanes, l)
	}

	height := timelineTop + float64(max(len(fs), 1))*laneHeight + 6
	tl.Width, tl.Height, tl.Left = num(timelineWidth), num(height), num(timelineLeft)
	tl.AxisY = num(timelineTop - 10)
	tl.PlotH = num(height - timelineTop + 8)
	tl.NowX = num(x(now))
	tl.FutureW = num(x(end) - x(now))
	for t := start.Truncate(tickEvery).Add(tickEvery); !t.After(end); t = t.Add(tickEvery) {
		tk := tick{X: num(x(t)), Label: t.Format("15:04")}
		if t.Hour() == 0 {
			tk.Label, tk.Day = t.Format("Jan 2"), true
		}
		if math.Abs(x(t)-x(now)) < 36 {
			tk.Label = "" // the "now" label is there
		}
		tl.Ticks = append(tl.Ticks, tk)
	}
	return tl
}

func bar(x1, x2 float64, class string) timelineBar {
	return timelineBar{X: num(x1), W: num(max(x2-x1, 1.5)), Class: class}
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

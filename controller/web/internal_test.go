package web

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
)

func TestCountdown(t *testing.T) {
	t.Parallel()
	// app.js writes the same words; keep the two in step.
	for d, want := range map[time.Duration]string{
		-time.Second:                  "expired",
		0:                             "expired",
		999 * time.Millisecond:        "0s",
		59 * time.Second:              "59s",
		time.Minute + 3*time.Second:   "1m 03s",
		2 * time.Hour:                 "2h 00m 00s",
		2*time.Hour - time.Second:     "1h 59m 59s",
		25*time.Hour + 61*time.Second: "25h 01m 01s",
	} {
		if got := countdown(d); got != want {
			t.Errorf("countdown(%s): got %q, want %q", d, got, want)
		}
	}
}

func TestAgo(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		2 * time.Second:  "just now",
		42 * time.Second: "42 s ago",
		5 * time.Minute:  "5 min ago",
		3 * time.Hour:    "3 h ago",
		47 * time.Hour:   "47 h ago",
		72 * time.Hour:   "3 d ago",
	} {
		if got := ago(now.Add(-d), now); got != want {
			t.Errorf("ago(-%s): got %q, want %q", d, got, want)
		}
	}
	if got := agoCoarse(now.Add(-42*time.Second), now); got != "under a minute ago" {
		t.Errorf("agoCoarse(-42s): got %q, want under a minute ago", got)
	}
}

func TestLocalPath(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"/": true, "/routers/x?y=1": true,
		"": false, "//evil.example": false, `/\evil.example`: false, "https://evil.example/": false,
		"evil": false, "/a\r\nSet-Cookie: x": false,
	} {
		if got := localPath(s); got != want {
			t.Errorf("localPath(%q): got %v, want %v", s, got, want)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	t.Parallel()
	for h, want := range map[string]bool{
		"": false, "gzip": true, "gzip, deflate, br, zstd": true, "br;q=1.0, gzip;q=0.8": true,
		"gzip;q=0": false, "identity": false, "x-gzip": false,
	} {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Encoding", h)
		if got := acceptsGzip(r); got != want {
			t.Errorf("Accept-Encoding %q: got %v, want %v", h, got, want)
		}
	}
}

func TestLayoutTimeline(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 14, 12, 0, 30, 0, time.UTC)
	fw := func(created time.Time, lasts time.Duration, revoked *time.Time) store.ForwardView {
		f := fleet.Forward{ID: uuid.New(), EntryPoint: "eu1.example.net", Port: 50000, DstAddress: netip.MustParseAddr("192.168.88.43"),
			DstPort: 22, AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), CreatedAt: created, ExpiresAt: created.Add(lasts)}
		f.SetStatus(fleet.StatusActive)
		if revoked != nil {
			f.RevokedAt, f.EndedAt = revoked, revoked
			f.SetStatus(fleet.StatusRemoved)
		} else if !f.ExpiresAt.After(now) {
			end := f.ExpiresAt
			f.EndedAt = &end
			f.SetStatus(fleet.StatusRemoved)
		}
		return store.ForwardView{Forward: f}
	}
	revokedAt := now.Add(-5 * time.Hour)
	live := fw(now.Add(-time.Hour), 3*time.Hour, nil)
	expired := fw(now.Add(-30*time.Hour), 7*time.Hour, nil) // began before the window
	revoked := fw(now.Add(-6*time.Hour), 4*time.Hour, &revokedAt)
	conns := map[uuid.UUID][]fleet.Connection{live.ID: {
		{StartedAt: now.Add(-30 * time.Minute), Source: "81.2.69.7:50000"}, // open
	}}
	tl := layoutTimeline([]store.ForwardView{live, expired, revoked}, conns, now)

	if len(tl.Lanes) != 3 {
		t.Fatalf("lanes: got %d, want 3", len(tl.Lanes))
	}
	// Oldest first.
	if tl.Lanes[0].ID != expired.ID.String() || tl.Lanes[2].ID != live.ID.String() {
		t.Errorf("lane order: got %s %s %s, want expired, revoked, live", tl.Lanes[0].ID, tl.Lanes[1].ID, tl.Lanes[2].ID)
	}
	// The window starts 24 hours back at the label column: the expired
	// forward's bar is clipped there.
	if got := tl.Lanes[0].Bars[0]; got.X != "210.0" || got.Class != "expired" {
		t.Errorf("expired bar: got %+v, want clipped to x=210.0, class expired", got)
	}
	if got := tl.Lanes[1].Bars; len(got) != 1 || got[0].Class != "revoked" {
		t.Errorf("revoked bars: got %+v, want one revoked bar", got)
	}
	// Live: solid until now, pale until its expiry.
	bars := tl.Lanes[2].Bars
	if len(bars) != 2 || bars[0].Class != "active" || bars[1].Class != "active ahead" || bars[1].X != tl.NowX {
		t.Errorf("live bars: got %+v, want active until now (x=%s), then active ahead", bars, tl.NowX)
	}
	c := tl.Lanes[2].Connections
	if len(c) != 1 || !c[0].Open || !c[0].Line || c[0].X2 != tl.NowX || !strings.Contains(c[0].Title, "81.2.69.7:50000") {
		t.Errorf("open connection: got %+v, want a line from its start to now", c)
	}
	// No tick label collides with "now".
	for _, tk := range tl.Ticks {
		if tk.Label != "" && tk.X == tl.NowX {
			t.Errorf("tick %q sits on the now marker", tk.Label)
		}
	}

	var many []store.ForwardView
	for i := range maxLanes + 5 {
		many = append(many, fw(now.Add(-time.Duration(i)*time.Minute), time.Hour, nil))
	}
	if tl := layoutTimeline(many, nil, now); len(tl.Lanes) != maxLanes || tl.Hidden != 5 {
		t.Errorf("%d forwards: got %d lanes and %d hidden, want %d and 5", len(many), len(tl.Lanes), tl.Hidden, maxLanes)
	}
}

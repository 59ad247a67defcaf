package web

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
)

// Agent states as the pages name them.
const (
	agentConnected = "connected"
	agentOffline   = "offline"
	agentNever     = "never"
)

// tunnelManual is the tunnel state of a router whose region's tunnel is the
// operator's own VPN; the others are fleet.TunnelUp, TunnelDown and
// TunnelNever.
const tunnelManual = "manual"

// fleetRow is one router on the fleet page.
type fleetRow struct {
	ID, Name, Region, TunnelAddress string
	// Agent is agentConnected, agentOffline or agentNever.
	Agent string
	// Seen and SeenAt say when the agent was last heard of, for routers
	// that are not connected (a connected one's changes with every
	// heartbeat, and would make every poll a change).
	Seen   string
	SeenAt *time.Time
	// seenAt is the last sign of life of any router, for sorting.
	seenAt *time.Time

	AgentVersion, RouterOSVersion, Board, Identity string
	Desired, Applied                               int64
	InSync                                         bool
	Counts                                         store.LiveForwardCounts
	LastError                                      string
	// Search is what the instant filter matches, lower case.
	Search string
	// nameKey sorts by name.
	nameKey string

	// What the fleet table shows, worked out once here rather than in the
	// template (a thousand rows render several times faster so).
	Sub                 string // identity · tunnel address
	AgentText           string
	SeenText, SeenTitle string
	Versions            string
	SyncText, SyncClass string
	// Clock is how far the router's clock is off the controller's, as its
	// agent measured it ("" while unknown); ClockOff says it is off by more
	// than fleet.ClockWarnAfter.
	Clock    string
	ClockOff bool

	// Tunnel is the management tunnel's state: fleet.TunnelUp, TunnelDown,
	// TunnelNever, or tunnelManual. TunnelSeen and TunnelTitle say when a
	// tunnel that is down last shook hands (coarse, so that the fleet's
	// fragment only changes when something happened; and the time itself);
	// TunnelError is why the agent could not build it.
	Tunnel, TunnelText      string
	TunnelSeen, TunnelTitle string
	TunnelError             string
}

// HasErrors: the agent's last pass failed, it could not build the router's
// tunnel, or a live forward carries an error.
func (r fleetRow) HasErrors() bool {
	return r.LastError != "" || r.TunnelError != "" || r.Counts.Failing > 0
}

// TunnelDown: the router's region has a managed tunnel, and the router's
// end is down or was never up.
func (r fleetRow) TunnelDown() bool {
	return r.Tunnel == fleet.TunnelDown || r.Tunnel == fleet.TunnelNever
}

// fleetTotals are the numbers at the top of the fleet page, over the whole
// account (not only the rows shown).
type fleetTotals struct {
	Routers, Connected, Offline, Never, OutOfSync, Errors, WithForwards int
	LiveForwards, PendingForwards, FailingForwards                      int
	// ExpiringForwards are live forwards that expire within
	// store.ExpiringWithin (15 minutes).
	ExpiringForwards int
	// Managed counts the routers of regions with a managed tunnel,
	// TunnelDown those of them whose tunnel is down or never was up.
	Managed, TunnelDown int
}

// filterChip is one of the state filters, with its count.
type filterChip struct {
	Key, Label, URL string
	Count           int
	Current         bool
}

// sortLink is a column's sort link.
type sortLink struct {
	URL     string
	Current bool
}

type fleetBody struct {
	Totals fleetTotals
	// Bar is the totals as a picture: connected, offline, never connected.
	Bar []barSegment
	// Banner reports what the last form did (a router deleted).
	Banner *banner
	Chips  []filterChip
	Sorts  map[string]sortLink
	Rows   []fleetRow
	Query  string
	State  string
	Sort   string
	Poll   int // milliseconds
}

// barSegment is a part of the agent-state bar, in percent of its width.
type barSegment struct {
	Class      string
	X, W       string
	Label      string
	Count, Pct int
}

// The state filters, in the order the page shows them.
var fleetFilters = []struct{ key, label string }{
	{"", "All"},
	{"connected", "Connected"},
	{"offline", "Offline"},
	{"never", "Never connected"},
	{"out-of-sync", "Out of sync"},
	{"errors", "Errors"},
	{"forwards", "With live forwards"},
	{"expiring", "Expiring within 15 min"},
	{"tunnel-down", "Tunnel down"},
}

func (r fleetRow) matchesState(state string) bool {
	switch state {
	case "connected":
		return r.Agent == agentConnected
	case "offline":
		return r.Agent == agentOffline
	case "never":
		return r.Agent == agentNever
	case "out-of-sync":
		return !r.InSync
	case "errors":
		return r.HasErrors()
	case "forwards":
		return r.Counts.Live > 0
	case "expiring":
		return r.Counts.Expiring > 0
	case "tunnel-down":
		return r.TunnelDown()
	default:
		return true
	}
}

// matchesQuery: every word of q occurs in the row's searchable text.
func (r fleetRow) matchesQuery(words []string) bool {
	for _, w := range words {
		if !strings.Contains(r.Search, w) {
			return false
		}
	}
	return true
}

// handleFleet serves the fleet page: three queries whatever the fleet's size
// (the session's token, the routers, the live forward counts).
func (v *views) handleFleet(w http.ResponseWriter, r *http.Request, in signedIn) {
	now := v.now()
	routers, err := v.svc.Routers(r.Context(), in.principal.AccountID)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	counts, err := v.store.FleetForwardCounts(r.Context(), in.principal.AccountID, now)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	body := fleetBody{Query: strings.TrimSpace(q.Get("q")), State: q.Get("state"), Sort: q.Get("sort"),
		Poll: int(v.cfg.FleetPoll / time.Millisecond)}
	if !slices.ContainsFunc(fleetFilters, func(f struct{ key, label string }) bool { return f.key == body.State }) {
		body.State = ""
	}
	if body.Sort != "status" && body.Sort != "forwards" && body.Sort != "seen" {
		body.Sort = "name"
	}
	words := strings.Fields(strings.ToLower(body.Query))
	chipCounts := map[string]int{}
	body.Rows = make([]fleetRow, 0, len(routers))
	for _, rt := range routers {
		row := toFleetRow(rt, counts[rt.ID], now)
		t := &body.Totals
		t.Routers++
		t.LiveForwards += row.Counts.Live
		t.PendingForwards += row.Counts.Pending
		t.FailingForwards += row.Counts.Failing
		t.ExpiringForwards += row.Counts.Expiring
		switch row.Agent {
		case agentConnected:
			t.Connected++
		case agentOffline:
			t.Offline++
		default:
			t.Never++
		}
		if !row.InSync {
			t.OutOfSync++
		}
		if row.HasErrors() {
			t.Errors++
		}
		if row.Counts.Live > 0 {
			t.WithForwards++
		}
		if row.Tunnel != tunnelManual {
			t.Managed++
		}
		if row.TunnelDown() {
			t.TunnelDown++
		}
		if !row.matchesQuery(words) {
			continue
		}
		for _, f := range fleetFilters {
			if row.matchesState(f.key) {
				chipCounts[f.key]++
			}
		}
		if row.matchesState(body.State) {
			body.Rows = append(body.Rows, row)
		}
	}
	sortRows(body.Rows, body.Sort)
	for _, f := range fleetFilters {
		// An account without managed tunnels has no use for their chip.
		if f.key == "tunnel-down" && body.Totals.Managed == 0 && body.State != f.key {
			continue
		}
		body.Chips = append(body.Chips, filterChip{Key: f.key, Label: f.label, Count: chipCounts[f.key],
			Current: f.key == body.State, URL: fleetURL(body.Query, f.key, body.Sort)})
	}
	body.Sorts = map[string]sortLink{}
	for _, s := range []string{"name", "status", "forwards", "seen"} {
		body.Sorts[s] = sortLink{URL: fleetURL(body.Query, body.State, s), Current: s == body.Sort}
	}
	body.Bar = stateBar(body.Totals)
	if q.Get("deleted") != "" {
		body.Banner = &banner{Kind: "info", Title: "Router deleted.",
			Message: "Its live forwards were revoked; its agent removes tpf's rules and tunnel from the router if it is still connected."}
	}
	v.render(w, r, http.StatusOK, "fleet", page{Title: "Fleet", Nav: "fleet", Session: in.view(), Body: body})
}

func toFleetRow(rt fleet.Router, c store.LiveForwardCounts, now time.Time) fleetRow {
	a := rt.Agent
	row := fleetRow{
		ID: rt.ID.String(), Name: rt.Name, Region: rt.Region, TunnelAddress: rt.TunnelAddress.String(),
		seenAt: a.SeenAt, AgentVersion: a.AgentVersion, RouterOSVersion: a.RouterOSVersion,
		Board: a.Board, Identity: a.Identity, Desired: rt.Revision, Applied: a.AppliedRevision,
		InSync: a.AppliedRevision >= rt.Revision, Counts: c, LastError: a.LastError,
	}
	switch {
	case a.Connected(now):
		row.Agent = agentConnected
	case a.ConnectedAt == nil:
		row.Agent = agentNever
	default:
		row.Agent = agentOffline
	}
	if a.SeenAt != nil && row.Agent != agentConnected {
		row.Seen, row.SeenAt = agoCoarse(*a.SeenAt, now), a.SeenAt
	}
	row.tunnel(rt, now)
	row.Search = strings.ToLower(strings.Join([]string{row.Name, row.ID, row.Region, row.TunnelAddress,
		row.Identity, row.Board, row.AgentVersion, row.RouterOSVersion, row.Agent, row.LastError,
		"tunnel " + row.Tunnel, row.TunnelError}, " "))
	row.nameKey = strings.ToLower(row.Name)
	if a.ClockOffset != nil {
		row.Clock, row.ClockOff = clockText(*a.ClockOffset), a.ClockOff()
	}

	row.Sub = row.TunnelAddress
	if row.Identity != "" && row.Identity != row.Name {
		row.Sub = row.Identity + " · " + row.TunnelAddress
	}
	switch {
	case row.Agent == agentConnected:
		row.AgentText, row.SeenText = "connected", "now"
	case row.SeenAt != nil:
		row.AgentText, row.SeenText, row.SeenTitle = row.Agent, row.Seen, row.SeenAt.Format(time.RFC3339)
	default:
		row.AgentText, row.SeenText = "never connected", "—"
	}
	switch {
	case row.AgentVersion != "" && row.RouterOSVersion != "":
		row.Versions = row.AgentVersion + " · RouterOS " + row.RouterOSVersion
	case row.AgentVersion != "":
		row.Versions = row.AgentVersion
	default:
		row.Versions = "—"
	}
	switch {
	case row.Agent == agentNever && row.InSync:
		row.SyncText = "—"
	case row.InSync:
		row.SyncText, row.SyncClass = "✓ in sync", "ok"
	default:
		row.SyncText, row.SyncClass = fmt.Sprintf("%d / %d", row.Applied, row.Desired), "behind"
	}
	return row
}

// tunnel fills in the row's tunnel state at now.
func (r *fleetRow) tunnel(rt fleet.Router, now time.Time) {
	if !rt.TunnelManaged {
		r.Tunnel, r.TunnelText = tunnelManual, "manual"
		return
	}
	t := rt.Tunnel
	r.Tunnel, r.TunnelError = t.State(now), t.Error
	switch r.Tunnel {
	case fleet.TunnelUp:
		r.TunnelText = "up"
	case fleet.TunnelDown:
		r.TunnelText = "down"
		r.TunnelSeen, r.TunnelTitle = "last handshake "+agoCoarse(*t.LastHandshake, now), t.LastHandshake.UTC().Format(time.RFC3339)
	default:
		r.TunnelText = "never up"
	}
}

// statusRank orders routers by how much they need attention.
func statusRank(r fleetRow) int {
	switch {
	case r.HasErrors():
		return 0
	case r.Agent == agentOffline:
		return 1
	case r.Agent == agentConnected && r.TunnelDown():
		return 2
	case !r.InSync:
		return 3
	case r.Agent == agentNever:
		return 4
	default:
		return 5
	}
}

func sortRows(rows []fleetRow, by string) {
	byName := func(a, b fleetRow) int {
		return cmp.Or(cmp.Compare(a.nameKey, b.nameKey), cmp.Compare(a.ID, b.ID))
	}
	slices.SortStableFunc(rows, func(a, b fleetRow) int {
		switch by {
		case "status":
			return cmp.Or(cmp.Compare(statusRank(a), statusRank(b)), byName(a, b))
		case "forwards":
			return cmp.Or(cmp.Compare(b.Counts.Live, a.Counts.Live), byName(a, b))
		case "seen": // longest silent first, never seen before all
			return cmp.Or(compareSeen(a.seenAt, b.seenAt), byName(a, b))
		default:
			return byName(a, b)
		}
	})
}

func compareSeen(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	default:
		return a.Compare(*b)
	}
}

// fleetURL is the fleet page with the given search, filter and sort.
func fleetURL(query, state, sort string) string {
	q := url.Values{}
	if query != "" {
		q.Set("q", query)
	}
	if state != "" {
		q.Set("state", state)
	}
	if sort != "" && sort != "name" {
		q.Set("sort", sort)
	}
	if len(q) == 0 {
		return "/"
	}
	return "/?" + q.Encode()
}

// stateBar lays out the agent-state bar: connected, offline, never.
func stateBar(t fleetTotals) []barSegment {
	if t.Routers == 0 {
		return nil
	}
	parts := []barSegment{
		{Class: "connected", Label: "connected", Count: t.Connected},
		{Class: "offline", Label: "offline", Count: t.Offline},
		{Class: "never", Label: "never connected", Count: t.Never},
	}
	var out []barSegment
	x := 0.0
	for _, p := range parts {
		if p.Count == 0 {
			continue
		}
		w := 100 * float64(p.Count) / float64(t.Routers)
		p.X, p.W = strconv.FormatFloat(x, 'f', 2, 64), strconv.FormatFloat(w, 'f', 2, 64)
		p.Pct = int(w + 0.5)
		x += w
		out = append(out, p)
	}
	return out
}

// clockText says how far a router's clock is off the controller's.
func clockText(off time.Duration) string {
	off = off.Round(time.Second)
	switch {
	case off == 0:
		return "in step with the controller"
	case off > 0:
		return off.String() + " ahead of the controller"
	default:
		return (-off).String() + " behind the controller"
	}
}

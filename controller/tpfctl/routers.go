package tpfctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

var routersList = &command{
	path:     "routers list",
	synopsis: "",
	summary:  "every router with its agent's and its tunnel's state",
	about: `Lists the account's routers: agent connected or not and when it was last
seen, the management tunnel (up, down, never up, or manual: the operator's
own VPN), whether the router applied its latest desired state, the last
error (the agent's, or why it could not build the tunnel).`,
	run: func(ctx context.Context, x *invocation, cmd *command, args []string) error {
		if _, err := x.parse(cmd, x.flagSet(cmd, nil), args); err != nil {
			return err
		}
		c, err := x.client()
		if err != nil {
			return err
		}
		list, raw, err := c.Routers(ctx)
		if err != nil {
			return fmt.Errorf("list routers: %w", err)
		}
		if x.json() {
			x.writeRaw(raw)
			return nil
		}
		if len(list) == 0 {
			fmt.Fprintln(x.stdout, "No routers yet.")
			return nil
		}
		x.routerTable(list, nil)
		return nil
	},
}

// routerTable writes routers as a table; live, when not nil, adds their
// live forward counts.
func (x *invocation) routerTable(list []Router, live map[string]int) {
	now := x.prog.Now()
	header := []string{"NAME", "ID", "REGION", "AGENT", "LAST SEEN", "TUNNEL", "REVISION", "LAST ERROR"}
	if live != nil {
		header = append(header, "FORWARDS")
	}
	t := newTable(x.stdout, header...)
	for _, r := range list {
		a := r.Agent
		lastErr := a.LastError
		if r.Tunnel != nil && r.Tunnel.Error != "" {
			lastErr = strings.TrimPrefix(lastErr+"; tunnel: "+r.Tunnel.Error, "; ")
		}
		row := []string{r.Name, r.ID, r.Region, agentState(a), agoOf(a.LastSeenAt, now), tunnelState(r),
			revision(a.DesiredRevision, a.AppliedRevision), shorten(lastErr, 60)}
		if live != nil {
			row = append(row, strconv.Itoa(live[r.ID]))
		}
		t.row(row...)
	}
	t.flush()
}

var routersGet = &command{
	path:     "routers get",
	synopsis: "R",
	summary:  "one router: agent, tunnel, versions, revisions, last error",
	about: `Shows router R (its id or its name): its agent's state (connected, last
seen, agent and RouterOS versions, board), its management tunnel (state, last
handshake, the edge's endpoint, bytes each way, the router's public key, why
it could not be built), the desired and applied revision of its forwards,
the agent's last error and the number of live forwards. With -o json, the
API's router object.`,
	run: func(ctx context.Context, x *invocation, cmd *command, args []string) error {
		ops, err := x.parse(cmd, x.flagSet(cmd, nil), args, "R")
		if err != nil {
			return err
		}
		c, err := x.client()
		if err != nil {
			return err
		}
		ref, err := resolveRouter(ctx, c, ops[0])
		if err != nil {
			return err
		}
		r, raw, err := c.Router(ctx, ref.ID)
		if err != nil {
			return fmt.Errorf("router %s: %w", ops[0], err)
		}
		if x.json() {
			x.writeRaw(raw)
			return nil
		}
		live, _, err := c.Forwards(ctx, r.ID, "", 0)
		if err != nil {
			return fmt.Errorf("live forwards of router %s: %w", ops[0], err)
		}
		now := x.prog.Now()
		a := r.Agent
		agent := agentState(a)
		if a.Connected && a.ConnectedAt != nil {
			agent += " since " + whenAgo(a.ConnectedAt, now)
		}
		lastSeen := "never"
		if a.LastSeenAt != nil {
			lastSeen = whenAgo(a.LastSeenAt, now)
		}
		fields := []string{
			"name", r.Name,
			"id", r.ID,
			"region", r.Region,
			"tunnel address", r.TunnelAddress,
		}
		fields = append(fields, tunnelFields(r, now)...)
		fields = append(fields,
			"created", r.CreatedAt,
			"agent", agent,
			"last seen", lastSeen,
			"agent version", a.AgentVersion,
			"RouterOS", a.RouterOSVersion,
			"board", a.Board,
			"identity", a.Identity,
			"revision", fmt.Sprintf("desired %d, applied %d: %s", a.DesiredRevision, a.AppliedRevision, syncWord(a)),
			"last error", a.LastError,
			"live forwards", strconv.Itoa(len(live)),
		)
		writeFields(x.stdout, fields...)
		return nil
	},
}

// tunnelState is the router's tunnel in one word: up, down, never (no
// handshake yet) or manual (the region's tunnel is the operator's own VPN).
func tunnelState(r Router) string {
	if r.Tunnel == nil {
		return "manual"
	}
	return r.Tunnel.State
}

// tunnelFields are routers get's lines about the router's tunnel.
func tunnelFields(r Router, now time.Time) []string {
	t := r.Tunnel
	if t == nil {
		return []string{"tunnel", "manual: the region's tunnel is the operator's own VPN"}
	}
	state := t.State
	switch {
	case t.LastHandshakeAt != nil:
		state += ", last handshake " + whenAgo(t.LastHandshakeAt, now)
	case t.State == "never":
		state = "never up: no handshake with the edge yet"
	}
	traffic := ""
	if t.RxBytes > 0 || t.TxBytes > 0 {
		traffic = "received " + formatBytes(t.RxBytes) + ", sent " + formatBytes(t.TxBytes)
	}
	return []string{
		"tunnel", state,
		"tunnel endpoint", t.Endpoint,
		"tunnel traffic", traffic,
		"tunnel key", t.PublicKey,
		"tunnel error", t.Error,
	}
}

func syncWord(a Agent) string {
	if a.AppliedRevision >= a.DesiredRevision {
		return "in sync"
	}
	return "behind"
}

var statusCommand = &command{
	path:     "status",
	synopsis: "",
	summary:  "the fleet: routers, live forwards, regions and their edges",
	about: `Summarises the fleet: routers in total, connected, out of sync and with
errors; live forwards by status; every region with its edge; and the routers
that need attention (agent not connected, behind, or reporting an error).

It reads the live forwards of every router, one request per router (a few at
a time): mind TPF_RATE_LIMIT_PER_MINUTE on large fleets; throttled requests
are retried after the API's Retry-After.

With -o json: {"routers": {...counts}, "forwards": {...counts},
"regions": [the API's regions], "attention": [the API's routers]}.`,
	run: runStatus,
}

// statusJSON is status -o json.
type statusJSON struct {
	Routers struct {
		Total      int `json:"total"`
		Connected  int `json:"connected"`
		OutOfSync  int `json:"out_of_sync"`
		WithErrors int `json:"with_errors"`
	} `json:"routers"`
	Forwards struct {
		Live     int            `json:"live"`
		ByStatus map[string]int `json:"by_status"`
	} `json:"forwards"`
	Regions   json.RawMessage   `json:"regions"`
	Attention []json.RawMessage `json:"attention"`
}

// statusConcurrency bounds the forward-list requests status makes at once.
const statusConcurrency = 4

func runStatus(ctx context.Context, x *invocation, cmd *command, args []string) error {
	if _, err := x.parse(cmd, x.flagSet(cmd, nil), args); err != nil {
		return err
	}
	c, err := x.client()
	if err != nil {
		return err
	}
	routers, routersRaw, err := c.Routers(ctx)
	if err != nil {
		return fmt.Errorf("list routers: %w", err)
	}
	var rawRouters []json.RawMessage
	if err := json.Unmarshal(routersRaw, &rawRouters); err != nil {
		return err
	}
	regions, regionsRaw, err := c.Regions(ctx)
	if err != nil {
		return fmt.Errorf("list regions: %w", err)
	}
	live, err := liveForwards(ctx, c, routers)
	if err != nil {
		return err
	}

	var s statusJSON
	s.Regions = regionsRaw
	s.Attention = []json.RawMessage{}
	s.Forwards.ByStatus = map[string]int{}
	liveCount := map[string]int{}
	var attention []Router
	for i, r := range routers {
		a := r.Agent
		s.Routers.Total++
		if a.Connected {
			s.Routers.Connected++
		}
		if !a.InSync {
			s.Routers.OutOfSync++
		}
		if a.LastError != "" {
			s.Routers.WithErrors++
		}
		if !a.Connected || !a.InSync || a.LastError != "" {
			attention = append(attention, r)
			s.Attention = append(s.Attention, rawRouters[i])
		}
		liveCount[r.ID] = len(live[r.ID])
		for _, f := range live[r.ID] {
			s.Forwards.Live++
			s.Forwards.ByStatus[f.Status]++
		}
	}
	if x.json() {
		out, err := json.Marshal(s)
		if err != nil {
			return err
		}
		x.writeRaw(out)
		return nil
	}

	now := x.prog.Now()
	rs := s.Routers
	writeFields(x.stdout,
		"Routers", fmt.Sprintf("%d total: %d connected, %d out of sync, %d with errors", rs.Total, rs.Connected, rs.OutOfSync, rs.WithErrors),
		"Forwards", fmt.Sprintf("%d live: %d active, %d pending", s.Forwards.Live, s.Forwards.ByStatus["active"], s.Forwards.ByStatus["pending"]),
	)
	fmt.Fprintln(x.stdout)
	t := newTable(x.stdout, "REGION", "ENTRY POINT", "PORTS", "EDGE", "LAST SEEN", "REVISION", "LAST ERROR")
	for _, rg := range regions {
		ports := fmt.Sprintf("%d-%d", rg.PortMin, rg.PortMax)
		if rg.Edge == nil {
			t.row(rg.ID, rg.EntryPoint, ports, "none (router only)", "", "", "")
			continue
		}
		e := rg.Edge
		state := "offline"
		if e.Connected {
			state = "connected"
		}
		t.row(rg.ID, rg.EntryPoint, ports, state, agoOf(e.LastSeenAt, now), revision(e.DesiredRevision, e.AppliedRevision), shorten(e.LastError, 60))
	}
	t.flush()
	fmt.Fprintln(x.stdout)
	if len(attention) == 0 {
		fmt.Fprintln(x.stdout, "Every router is connected and in sync.")
		return nil
	}
	const maxShown = 20
	fmt.Fprintf(x.stdout, "Routers needing attention (%d):\n", len(attention))
	shown := attention
	if len(shown) > maxShown {
		shown = shown[:maxShown]
	}
	x.routerTable(shown, liveCount)
	if len(attention) > maxShown {
		fmt.Fprintf(x.stdout, "… and %d more: tpfctl routers list\n", len(attention)-maxShown)
	}
	return nil
}

// liveForwards reads every router's live forwards, statusConcurrency at a
// time. A router deleted meanwhile (404) has none.
func liveForwards(ctx context.Context, c *Client, routers []Router) (map[string][]Forward, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		out      = make(map[string][]Forward, len(routers))
		firstErr error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, statusConcurrency)
	for _, r := range routers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			list, _, err := c.Forwards(ctx, r.ID, "", 0)
			var apiErr *APIError
			if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
				err = nil
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("live forwards of router %s: %w", r.Name, err)
					cancel()
				}
				return
			}
			out[r.ID] = list
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return out, firstErr
}

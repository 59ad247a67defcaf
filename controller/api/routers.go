package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/shared/forward"
)

type routerJSON struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Region        string    `json:"region"`
	TunnelAddress string    `json:"tunnel_address"`
	CreatedAt     string    `json:"created_at"`
	Agent         agentJSON `json:"agent"`
	// AgentToken is shown once, in the answer to the create.
	AgentToken string `json:"agent_token,omitempty"`
}

type agentJSON struct {
	Connected       bool    `json:"connected"`
	ConnectedAt     *string `json:"connected_at"`
	LastSeenAt      *string `json:"last_seen_at"`
	AgentVersion    string  `json:"agent_version"`
	RouterOSVersion string  `json:"routeros_version"`
	Board           string  `json:"board"`
	Identity        string  `json:"identity"`
	DesiredRevision int64   `json:"desired_revision"`
	AppliedRevision int64   `json:"applied_revision"`
	InSync          bool    `json:"in_sync"`
	LastError       string  `json:"last_error"`
	// ClockOffsetMs is how far the router's clock is ahead of the
	// controller's (negative: behind), as the agent measured it; null while
	// unknown. ClockOff says it is off by more than fleet.ClockWarnAfter.
	ClockOffsetMs *int64 `json:"clock_offset_ms"`
	ClockOff      bool   `json:"clock_off"`
}

func toRouterJSON(r fleet.Router, now time.Time) routerJSON {
	a := r.Agent
	return routerJSON{
		ID: r.ID.String(), Name: r.Name, Region: r.Region,
		TunnelAddress: r.TunnelAddress.String(), CreatedAt: formatTime(r.CreatedAt),
		Agent: agentJSON{
			Connected: a.Connected(now), ConnectedAt: formatTimePtr(a.ConnectedAt), LastSeenAt: formatTimePtr(a.SeenAt),
			AgentVersion: a.AgentVersion, RouterOSVersion: a.RouterOSVersion, Board: a.Board, Identity: a.Identity,
			DesiredRevision: r.Revision, AppliedRevision: a.AppliedRevision,
			InSync: a.AppliedRevision >= r.Revision, LastError: a.LastError,
			ClockOffsetMs: durationMillis(a.ClockOffset), ClockOff: a.ClockOff(),
		},
	}
}

func durationMillis(d *time.Duration) *int64 {
	if d == nil {
		return nil
	}
	ms := d.Milliseconds()
	return &ms
}

func (s *server) handleRouterList() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		now := s.now()
		list, err := s.store.Routers(r.Context(), p.AccountID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]routerJSON, len(list))
		for i, rt := range list {
			out[i] = toRouterJSON(rt, now)
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *server) handleRouterGet() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		id, err := pathID(r, "router_id")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		rt, err := s.store.Router(r.Context(), p.AccountID, id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, toRouterJSON(rt, s.now()))
	}
}

func (s *server) handleRouterCreate() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		raw, err := decodeObject(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		nr, err := readNewRouter(raw)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		now := s.now()
		rt, secret, err := s.store.CreateRouter(r.Context(), p, nr, now)
		if errors.Is(err, fleet.ErrNotFound) {
			errs := &validationError{}
			errs.add("region", "The selected region is invalid.")
			err = errs
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := toRouterJSON(rt, now)
		out.AgentToken = secret
		writeJSON(w, http.StatusCreated, out)
	}
}

func readNewRouter(raw map[string]json.RawMessage) (store.NewRouter, error) {
	errs := &validationError{}
	in := fields{raw: raw, errs: errs}
	var nr store.NewRouter
	nr.Name, _ = in.text("name", 100)
	nr.Region, _ = in.text("region", 63)
	if text, ok := in.text("tunnel_address", 64); ok {
		addr, err := forward.ParseIPv4(text)
		switch {
		case err != nil:
			errs.add("tunnel_address", "The tunnel address field must be a valid IPv4 address.")
		case addr.IsUnspecified() || addr.IsMulticast() || addr == broadcast:
			errs.add("tunnel_address", "The tunnel address field must be a unicast IPv4 address.")
		default:
			nr.TunnelAddress = addr
		}
	}
	return nr, errs.err()
}

var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

func (s *server) handleRouterDelete() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		id, err := pathID(r, "router_id")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.store.DeleteRouter(r.Context(), p, id, s.now()); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// handleAgentTokenRotate replaces a router's agent token: the old one stops
// working and its agent is disconnected; the forwards stay.
func (s *server) handleAgentTokenRotate() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		id, err := pathID(r, "router_id")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		secret, err := s.store.RotateAgentToken(r.Context(), p, id, s.now())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"agent_token": secret})
	}
}

type regionJSON struct {
	ID         string    `json:"id"`
	EntryPoint string    `json:"entry_point"`
	PortMin    int       `json:"port_min"`
	PortMax    int       `json:"port_max"`
	Edge       *edgeJSON `json:"edge"`
}

// edgeJSON is the region's edge, null when no tpf edge serves it.
type edgeJSON struct {
	Connected       bool    `json:"connected"`
	LastSeenAt      *string `json:"last_seen_at"`
	Version         string  `json:"version"`
	DesiredRevision int64   `json:"desired_revision"`
	AppliedRevision int64   `json:"applied_revision"`
	LastError       string  `json:"last_error"`
}

func (s *server) handleRegionList() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		now := s.now()
		list, err := s.store.Regions(r.Context())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]regionJSON, len(list))
		for i, rg := range list {
			out[i] = regionJSON{ID: rg.ID, EntryPoint: rg.EntryPoint, PortMin: int(rg.Ports.Min), PortMax: int(rg.Ports.Max)}
			if rg.EdgeManaged {
				e := rg.Edge
				out[i].Edge = &edgeJSON{Connected: e.Connected(now), LastSeenAt: formatTimePtr(e.SeenAt), Version: e.Version,
					DesiredRevision: rg.Revision, AppliedRevision: e.AppliedRevision, LastError: e.LastError}
			}
		}
		writeJSON(w, http.StatusOK, out)
	}
}

type auditJSON struct {
	ID        int64           `json:"id"`
	At        string          `json:"at"`
	Actor     string          `json:"actor"`
	Action    string          `json:"action"`
	SubjectID string          `json:"subject_id"`
	Detail    json.RawMessage `json:"detail"`
}

// handleAuditLog lists the account's audit events, newest first; ?before=ID
// pages back, ?limit= sizes the page.
func (s *server) handleAuditLog() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		q := r.URL.Query()
		errs := &validationError{}
		var before int64
		if v := q.Get("before"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				errs.add("before", "The before field must be a positive integer.")
			}
			before = n
		}
		limit := queryLimit(q, errs)
		if err := errs.err(); err != nil {
			s.writeError(w, r, err)
			return
		}
		events, err := s.store.AuditEvents(r.Context(), p.AccountID, before, limit)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]auditJSON, len(events))
		for i, e := range events {
			out[i] = auditJSON{ID: e.ID, At: formatTime(e.At), Actor: e.Actor, Action: e.Action, SubjectID: e.SubjectID.String(), Detail: e.Detail}
		}
		writeJSON(w, http.StatusOK, out)
	}
}

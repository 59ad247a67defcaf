package api

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
)

// toRouterJSON is r as the API shows it at now.
func toRouterJSON(r fleet.Router, now time.Time) apijson.Router {
	a := r.Agent
	return apijson.Router{
		ID: r.ID.String(), Name: r.Name, Region: r.Region,
		TunnelAddress: r.TunnelAddress.String(), CreatedAt: apijson.FormatTime(r.CreatedAt),
		Agent: apijson.Agent{
			Connected: a.Connected(now), ConnectedAt: apijson.FormatTimePtr(a.ConnectedAt), LastSeenAt: apijson.FormatTimePtr(a.SeenAt),
			AgentVersion: a.AgentVersion, RouterOSVersion: a.RouterOSVersion, Board: a.Board, Identity: a.Identity,
			DesiredRevision: r.Revision, AppliedRevision: a.AppliedRevision,
			InSync: a.AppliedRevision >= r.Revision, LastError: a.LastError,
			ClockOffsetMs: durationMillis(a.ClockOffset), ClockOff: a.ClockOff(),
		},
		Tunnel: toTunnelJSON(r, now),
	}
}

// toTunnelJSON is a router's end of a managed tunnel; nil in a manual region.
func toTunnelJSON(r fleet.Router, now time.Time) *apijson.Tunnel {
	if !r.TunnelManaged {
		return nil
	}
	t := r.Tunnel
	return &apijson.Tunnel{
		State: t.State(now), LastHandshakeAt: apijson.FormatTimePtr(t.LastHandshake), Endpoint: t.Endpoint,
		RxBytes: t.RxBytes, TxBytes: t.TxBytes, PublicKey: t.PublicKey, Error: t.Error,
	}
}

// toRegionTunnelJSON is how a region's routers reach its edge.
func toRegionTunnelJSON(rg fleet.Region) apijson.RegionTunnel {
	out := apijson.RegionTunnel{Mode: "manual", EdgeAddress: rg.EdgeTunnelAddress.String()}
	if t := rg.Tunnel; t.Managed {
		prefix, endpoint := t.Prefix.String(), t.Endpoint
		out.Mode, out.Prefix, out.Endpoint = "managed", &prefix, &endpoint
		if t.EdgePublicKey != "" {
			key := t.EdgePublicKey
			out.EdgePublicKey = &key
		}
	}
	return out
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
		list, err := s.svc.Routers(r.Context(), p.AccountID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]apijson.Router, len(list))
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
		rt, err := s.svc.Router(r.Context(), p.AccountID, id)
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
		rt, secret, err := s.svc.CreateRouter(r.Context(), p, nr, now)
		if errs := (fleet.Problems{}); errs.CreateRouterError(err) {
			err = invalid(errs)
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

// readNewRouter reads a router to create: a name and a region, and in a
// region without a managed tunnel its tunnel address (optional here: the
// region decides).
func readNewRouter(raw map[string]json.RawMessage) (forwards.NewRouter, error) {
	var errs fleet.Problems
	in := fields{raw: raw, errs: &errs}
	var nr forwards.NewRouter
	nr.Name, _ = in.text(fleet.FieldName, fleet.MaxRouterName)
	nr.Region, _ = in.text(fleet.FieldRegion, 63)
	if v, given := raw["tunnel_address"]; !given || string(v) == "null" {
		return nr, invalid(errs)
	}
	if text, ok := in.text(fleet.FieldTunnelAddress, 64); ok {
		nr.TunnelAddress, _ = errs.TunnelAddress(text)
	}
	return nr, invalid(errs)
}

var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

func (s *server) handleRouterDelete() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		id, err := pathID(r, "router_id")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.svc.DeleteRouter(r.Context(), p, id, s.now()); err != nil {
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
		secret, err := s.svc.RotateAgentToken(r.Context(), p, id, s.now())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, apijson.AgentToken{AgentToken: secret})
	}
}

func (s *server) handleRegionList() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		now := s.now()
		list, err := s.store.Regions(r.Context())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]apijson.Region, len(list))
		for i, rg := range list {
			out[i] = apijson.Region{ID: rg.ID, EntryPoint: rg.EntryPoint, PortMin: int(rg.Ports.Min), PortMax: int(rg.Ports.Max),
				Tunnel: toRegionTunnelJSON(rg)}
			if rg.EdgeManaged {
				e := rg.Edge
				out[i].Edge = &apijson.Edge{Connected: e.Connected(now), LastSeenAt: apijson.FormatTimePtr(e.SeenAt), Version: e.Version,
					DesiredRevision: rg.Revision, AppliedRevision: e.AppliedRevision, LastError: e.LastError}
			}
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// handleAuditLog lists the account's audit events, newest first; ?before=ID
// pages back, ?limit= sizes the page.
func (s *server) handleAuditLog() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		q := r.URL.Query()
		var errs fleet.Problems
		var before int64
		if v := q.Get("before"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				errs.Add("before", "The before field must be a positive integer.")
			}
			before = n
		}
		limit := queryLimit(q, &errs)
		if err := invalid(errs); err != nil {
			s.writeError(w, r, err)
			return
		}
		events, err := s.store.AuditEvents(r.Context(), p.AccountID, before, limit)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]apijson.AuditEvent, len(events))
		for i, e := range events {
			out[i] = apijson.AuditEvent{ID: e.ID, At: apijson.FormatTime(e.At), Actor: e.Actor, Action: e.Action, SubjectID: e.SubjectID.String(), Detail: e.Detail}
		}
		writeJSON(w, http.StatusOK, out)
	}
}

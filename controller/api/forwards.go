package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/fleet"
)

// toForwardJSON is f as the API shows it at now.
func toForwardJSON(f fleet.Forward, now time.Time) apijson.Forward {
	return apijson.Forward{
		ID:            f.ID.String(),
		Port:          int(f.Port),
		RevokedEarly:  f.RevokedAt != nil,
		AllowOnlyCIDR: f.AllowFrom.String(),
		ExpiresAt:     apijson.FormatTime(f.ExpiresAt),
		Expired:       f.Expired(now),
		EntryPoint:    f.EntryPoint,
		DstAddress:    f.DstAddress.String(),
		DstPort:       int(f.DstPort),
		TimeToExpire:  apijson.RelativeTime(f.ExpiresAt, now),
		RouterID:      f.RouterID.String(),
		Status:        string(f.StatusAt(now)),
		Masquerade:    f.Masquerade,
		CreatedAt:     apijson.FormatTime(f.CreatedAt),
		RevokedAt:     apijson.FormatTimePtr(f.RevokedAt),
		RouterError:   nonEmpty(f.RouterError),
		EdgeError:     nonEmpty(f.EdgeError),

		ConnectionsActive: f.ConnectionsActive,
		TunnelError:       nonEmpty(f.TunnelErrorAt(now)),
	}
}

// pathID reads a UUID path parameter; anything else cannot name a thing that
// exists, so it is a 404.
func pathID(r *http.Request, name string) (uuid.UUID, error) {
	s := r.PathValue(name)
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return uuid.Nil, fleet.ErrNotFound
	}
	return id, nil
}

// forwardPath reads the router and forward ids of a forward's path.
func forwardPath(r *http.Request) (router, id uuid.UUID, err error) {
	if router, err = pathID(r, "router_id"); err != nil {
		return uuid.Nil, uuid.Nil, err
	}
	id, err = pathID(r, "id")
	return router, id, err
}

// handleForwardList answers the router's live forwards as a bare array;
// ?state=all or ?state=ended (with ?limit=) lists history instead, newest first.
func (s *server) handleForwardList() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		routerID, err := pathID(r, "router_id")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		now := s.now()
		q := r.URL.Query()
		var errs fleet.Problems
		limit := queryLimit(q, &errs)
		state := q.Get("state")
		if state != "" && state != "active" && state != "all" && state != "ended" {
			errs.Add("state", "The selected state is invalid; use active, ended or all.")
		}
		if err := invalid(errs); err != nil {
			s.writeError(w, r, err)
			return
		}
		var list []fleet.Forward
		if state == "" || state == "active" {
			list, err = s.svc.LiveForwards(r.Context(), p.AccountID, routerID, now)
		} else {
			list, err = s.svc.ForwardHistory(r.Context(), p.AccountID, routerID, state == "ended", limit, now)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]apijson.Forward, len(list))
		for i, f := range list {
			out[i] = toForwardJSON(f, now)
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *server) handleForwardGet() authedHandler {
	return handleItemGet(s, s.svc.Forward, toForwardJSON)
}

func (s *server) handleForwardCreate() authedHandler {
	return handleItemCreate(s, func(raw map[string]json.RawMessage) (fleet.NewForward, fleet.Problems) {
		return fleet.ValidateNewForward(newForwardInput(raw), s.cfg.ForwardRules())
	}, s.svc.CreateForward, toForwardJSON)
}

func (s *server) handleForwardRevoke() authedHandler {
	return handleItemRevoke(s, s.svc.RevokeForward)
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// handleConnectionList lists the connections the edge relayed for a
// forward, newest first (?limit=).
func (s *server) handleConnectionList() authedHandler {
	return handleItemConnections(s, s.svc.Connections)
}

// toConnectionsJSON is a listing of connections as the API shows it.
func toConnectionsJSON(list []fleet.Connection) []apijson.Connection {
	out := make([]apijson.Connection, len(list))
	for i, c := range list {
		out[i] = apijson.Connection{ID: c.ID.String(), Source: c.Source, StartedAt: apijson.FormatTime(c.StartedAt), EndedAt: apijson.FormatTimePtr(c.EndedAt),
			BytesUp: c.BytesUp, BytesDown: c.BytesDown, Reason: c.Reason}
	}
	return out
}

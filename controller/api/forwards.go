package api

import (
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
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		routerID, id, err := forwardPath(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		now := s.now()
		f, err := s.svc.Forward(r.Context(), p.AccountID, routerID, id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, toForwardJSON(f, now))
	}
}

func (s *server) handleForwardCreate() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		routerID, err := pathID(r, "router_id")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		// An unknown router is a 404 even when the body is also wrong, so a
		// bad body is answered only after the router was looked up; a good
		// one leaves that to the create, which checks it in its statement.
		raw, err := decodeObject(w, r)
		if err == nil {
			nf, problems := fleet.ValidateNewForward(newForwardInput(raw), s.cfg.ForwardRules())
			if err = invalid(problems); err == nil {
				now := s.now()
				f, err := s.svc.CreateForward(r.Context(), p, routerID, nf, now)
				if err != nil {
					s.writeError(w, r, err)
					return
				}
				writeJSON(w, http.StatusCreated, toForwardJSON(f, now))
				return
			}
		}
		if _, rerr := s.svc.Router(r.Context(), p.AccountID, routerID); rerr != nil {
			err = rerr
		}
		s.writeError(w, r, err)
	}
}

func (s *server) handleForwardRevoke() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		routerID, id, err := forwardPath(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.svc.RevokeForward(r.Context(), p, routerID, id, s.now()); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
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
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		routerID, id, err := forwardPath(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var errs fleet.Problems
		limit := queryLimit(r.URL.Query(), &errs)
		if err := invalid(errs); err != nil {
			s.writeError(w, r, err)
			return
		}
		list, err := s.svc.Connections(r.Context(), p.AccountID, routerID, id, limit)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, toConnectionsJSON(list))
	}
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

package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/fleet"
)

// Transient access: time-limited WinBox and SSH logins to a router itself,
// beside the forwards and in their conventions
// (/api/routers/{router_id}/transient-access). The user's password is in the
// answer to the create only: the API never reads it back (the database keeps
// it only until the router's agent confirmed the user), and it is never
// logged.

// toAccessJSON is a as the API shows it at now; the password appears only
// when a holds it (the create's answer).
func toAccessJSON(a fleet.Access, now time.Time) apijson.Access {
	return apijson.Access{
		ID:                a.ID.String(),
		RouterID:          a.RouterID.String(),
		Type:              a.Service,
		Username:          a.Username,
		Password:          a.Password,
		EntryPoint:        a.EntryPoint,
		Port:              int(a.Port),
		AllowFrom:         a.AllowFrom.String(),
		ReadOnly:          a.ReadOnly,
		CreatedAt:         apijson.FormatTime(a.CreatedAt),
		ExpiresAt:         apijson.FormatTime(a.ExpiresAt),
		TimeToExpire:      apijson.RelativeTime(a.ExpiresAt, now),
		Expired:           a.Expired(now),
		RevokedEarly:      a.RevokedAt != nil,
		RevokedAt:         apijson.FormatTimePtr(a.RevokedAt),
		Status:            string(a.StatusAt(now)),
		ServicePort:       int(a.DstPort),
		SSHCommand:        a.SSHCommand(),
		RouterError:       nonEmpty(a.RouterError),
		EdgeError:         nonEmpty(a.EdgeError),
		TunnelError:       nonEmpty(a.TunnelErrorAt(now)),
		ConnectionsActive: a.ConnectionsActive,
	}
}

// newAccessInput maps the creation object onto fleet's input, whose rules
// say what is wrong with it.
func newAccessInput(raw map[string]json.RawMessage) fleet.NewAccessInput {
	f := fields{raw: raw}
	var in fleet.NewAccessInput
	wrong := func(field string, ok bool) {
		if !ok {
			in.WrongType = append(in.WrongType, field)
		}
	}
	var ok bool
	in.Type, ok = f.str(fleet.FieldType)
	wrong(fleet.FieldType, ok)
	in.ExpireAfterMinutes, ok = f.integer(fleet.FieldExpireAfterMinutes)
	wrong(fleet.FieldExpireAfterMinutes, ok)
	in.AllowFrom, ok = f.str(fleet.FieldAllowFrom)
	wrong(fleet.FieldAllowFrom, ok)
	in.ReadOnly, ok = f.boolean(fleet.FieldReadOnly)
	wrong(fleet.FieldReadOnly, ok)
	return in
}

// handleAccessList answers the router's accesses as a bare array, newest
// first: the live ones (?state=live, the default), or all of them
// (?state=all, with ?limit=).
func (s *server) handleAccessList() authedHandler {
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
		if state != "" && state != "live" && state != "all" {
			errs.Add("state", "The selected state is invalid; use live or all.")
		}
		if err := invalid(errs); err != nil {
			s.writeError(w, r, err)
			return
		}
		onlyLive := state != "all"
		if onlyLive && q.Get("limit") == "" {
			limit = maxHistoryLimit // live accesses are listed whole
		}
		list, err := s.svc.Accesses(r.Context(), p.AccountID, routerID, onlyLive, limit, now)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]apijson.Access, len(list))
		for i, a := range list {
			out[i] = toAccessJSON(a, now)
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *server) handleAccessGet() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		routerID, id, err := forwardPath(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		now := s.now()
		a, err := s.svc.Access(r.Context(), p.AccountID, routerID, id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, toAccessJSON(a, now))
	}
}

// handleAccessCreate answers 201 with the new access and its password, the
// only time the password is shown.
func (s *server) handleAccessCreate() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		routerID, err := pathID(r, "router_id")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		// As for forwards: an unknown router is a 404 even when the body is
		// also wrong; a good body leaves the router's check to the create.
		raw, err := decodeObject(w, r)
		if err == nil {
			na, problems := fleet.ValidateNewAccess(newAccessInput(raw), s.cfg.ForwardRules())
			if err = invalid(problems); err == nil {
				now := s.now()
				a, err := s.svc.CreateAccess(r.Context(), p, routerID, na, now)
				if err != nil {
					s.writeError(w, r, err)
					return
				}
				writeJSON(w, http.StatusCreated, toAccessJSON(a, now))
				return
			}
		}
		if _, rerr := s.svc.Router(r.Context(), p.AccountID, routerID); rerr != nil {
			err = rerr
		}
		s.writeError(w, r, err)
	}
}

func (s *server) handleAccessRevoke() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		routerID, id, err := forwardPath(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.svc.RevokeAccess(r.Context(), p, routerID, id, s.now()); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// handleAccessConnectionList lists the connections the edge relayed for an
// access, newest first (?limit=).
func (s *server) handleAccessConnectionList() authedHandler {
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
		list, err := s.svc.AccessConnections(r.Context(), p.AccountID, routerID, id, limit)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, toConnectionsJSON(list))
	}
}

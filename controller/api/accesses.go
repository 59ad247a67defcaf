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
	return handleItemGet(s, s.svc.Access, toAccessJSON)
}

// handleAccessCreate answers 201 with the new access and its password, the
// only time the password is shown.
func (s *server) handleAccessCreate() authedHandler {
	return handleItemCreate(s, func(raw map[string]json.RawMessage) (fleet.NewAccess, fleet.Problems) {
		return fleet.ValidateNewAccess(newAccessInput(raw), s.cfg.ForwardRules())
	}, s.svc.CreateAccess, toAccessJSON)
}

func (s *server) handleAccessRevoke() authedHandler {
	return handleItemRevoke(s, s.svc.RevokeAccess)
}

// handleAccessConnectionList lists the connections the edge relayed for an
// access, newest first (?limit=).
func (s *server) handleAccessConnectionList() authedHandler {
	return handleItemConnections(s, s.svc.AccessConnections)
}

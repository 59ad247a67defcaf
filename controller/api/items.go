package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
)

// A router's forwards and its transient accesses are read, created, revoked
// and their connections listed alike; these handlers take what differs: the
// service's call and the JSON of the thing.

// handleItemGet answers one item of a router, found by get, as toJSON shows
// it.
func handleItemGet[T, J any](s *server, get func(ctx context.Context, account, router, id uuid.UUID) (T, error), toJSON func(T, time.Time) J) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		routerID, id, err := forwardPath(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		now := s.now()
		item, err := get(r.Context(), p.AccountID, routerID, id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, toJSON(item, now))
	}
}

// handleItemCreate validates the creation object, creates the item and
// answers 201 with it. An unknown router is a 404 even when the body is also
// wrong, so a bad body is answered only after the router was looked up; a
// good one leaves that to the create, which checks it in its statement.
func handleItemCreate[N, T, J any](s *server, validate func(map[string]json.RawMessage) (N, fleet.Problems),
	create func(ctx context.Context, p fleet.Principal, router uuid.UUID, n N, now time.Time) (T, error), toJSON func(T, time.Time) J) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		routerID, err := pathID(r, "router_id")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		raw, err := decodeObject(w, r)
		if err == nil {
			n, problems := validate(raw)
			if err = invalid(problems); err == nil {
				now := s.now()
				item, err := create(r.Context(), p, routerID, n, now)
				if err != nil {
					s.writeError(w, r, err)
					return
				}
				writeJSON(w, http.StatusCreated, toJSON(item, now))
				return
			}
		}
		if _, rerr := s.svc.Router(r.Context(), p.AccountID, routerID); rerr != nil {
			err = rerr
		}
		s.writeError(w, r, err)
	}
}

// handleItemRevoke ends an item early and answers 204.
func handleItemRevoke(s *server, revoke func(ctx context.Context, p fleet.Principal, router, id uuid.UUID, now time.Time) error) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		routerID, id, err := forwardPath(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := revoke(r.Context(), p, routerID, id, s.now()); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// handleItemConnections lists the connections the edge relayed for an item,
// newest first (?limit=).
func handleItemConnections(s *server, list func(ctx context.Context, account, router, id uuid.UUID, limit int) ([]fleet.Connection, error)) authedHandler {
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
		conns, err := list(r.Context(), p.AccountID, routerID, id, limit)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, toConnectionsJSON(conns))
	}
}

package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/shared/forward"
)

// forwardJSON is the contract's transient port forwarding object: its eleven
// fields first, in the contract's order, then tpf's additions.
type forwardJSON struct {
	ID            string  `json:"id"`
	Port          int     `json:"port"`
	RevokedEarly  bool    `json:"revoked_early"`
	AllowOnlyCIDR string  `json:"allow_only_cidr"`
	AuthorizedAt  *string `json:"authorized_at"`
	ExpiresAt     string  `json:"expires_at"`
	Expired       bool    `json:"expired"`
	EntryPoint    string  `json:"entry_point"`
	DstAddress    string  `json:"dst_address"`
	DstPort       int     `json:"dst_port"`
	TimeToExpire  string  `json:"time_to_expire"`

	RouterID   string  `json:"router_id"`
	Status     string  `json:"status"`
	Masquerade bool    `json:"masquerade"`
	CreatedAt  string  `json:"created_at"`
	RevokedAt  *string `json:"revoked_at"`
	// RouterError says why the router's agent refused or failed the forward.
	RouterError *string `json:"router_error"`
	// EdgeError says why the edge could not listen for it.
	EdgeError         *string `json:"edge_error"`
	ConnectionsActive int     `json:"connections_active"`
}

func toForwardJSON(f fleet.Forward, now time.Time) forwardJSON {
	return forwardJSON{
		ID:            f.ID.String(),
		Port:          int(f.Port),
		RevokedEarly:  f.RevokedAt != nil,
		AllowOnlyCIDR: f.AllowFrom.String(),
		ExpiresAt:     formatTime(f.ExpiresAt),
		Expired:       f.Expired(now),
		EntryPoint:    f.EntryPoint,
		DstAddress:    f.DstAddress.String(),
		DstPort:       int(f.DstPort),
		TimeToExpire:  relativeTime(f.ExpiresAt, now),
		RouterID:      f.RouterID.String(),
		Status:        string(f.StatusAt(now)),
		Masquerade:    f.Masquerade,
		CreatedAt:     formatTime(f.CreatedAt),
		RevokedAt:     formatTimePtr(f.RevokedAt),
		RouterError:   nonEmpty(f.RouterError),
		EdgeError:     nonEmpty(f.EdgeError),

		ConnectionsActive: f.ConnectionsActive,
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
		errs := &validationError{}
		limit := queryLimit(q, errs)
		state := q.Get("state")
		if state != "" && state != "active" && state != "all" && state != "ended" {
			errs.add("state", "The selected state is invalid; use active, ended or all.")
		}
		if err := errs.err(); err != nil {
			s.writeError(w, r, err)
			return
		}
		var list []fleet.Forward
		if state == "" || state == "active" {
			list, err = s.store.LiveForwards(r.Context(), p.AccountID, routerID, now)
		} else {
			list, err = s.store.ForwardHistory(r.Context(), p.AccountID, routerID, state == "ended", limit, now)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]forwardJSON, len(list))
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
		f, err := s.store.Forward(r.Context(), p.AccountID, routerID, id)
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
		// An unknown router is a 404 even when the body is also wrong.
		router, err := s.store.Router(r.Context(), p.AccountID, routerID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		raw, err := decodeObject(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		nf, err := s.readNewForward(raw)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		now := s.now()
		f, err := s.store.CreateForward(r.Context(), p, router.ID, nf, now)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, toForwardJSON(f, now))
	}
}

// readNewForward applies the creation object's rules, in the contract's
// order, collecting every failure.
func (s *server) readNewForward(raw map[string]json.RawMessage) (fleet.NewForward, error) {
	errs := &validationError{}
	in := fields{raw: raw, errs: errs}
	var nf fleet.NewForward

	if minutes, ok := in.integer("expire_after_minutes", int64(s.cfg.MinExpireMinutes), int64(s.cfg.MaxExpireMinutes)); ok {
		nf.Duration = time.Duration(minutes) * time.Minute
	}
	if port, ok := in.integer("dst_port", 1, 65535); ok {
		nf.DstPort = uint16(port)
	}
	if text, ok := in.text("dst_address", 64); ok {
		addr, err := forward.Destination(text)
		switch {
		case errors.Is(err, forward.ErrNotRoutable):
			addr, _ := forward.ParseIPv4(text)
			errs.add("dst_address", "The dst address field must be a private (RFC 1918) or publicly routed IPv4 address; "+text+" is "+forward.Class(addr)+".")
		case err != nil:
			errs.add("dst_address", "The dst address field must be a valid IPv4 address.")
		default:
			nf.DstAddress = addr
		}
	}
	if text, ok := in.text("allow_from", 64); ok {
		prefix, err := forward.Source(text, s.cfg.AllowSources)
		switch {
		case errors.Is(err, forward.ErrPrefixLength):
			errs.add("allow_from", "The allow from field must be a CIDR range between /24 and /32.")
		case errors.Is(err, forward.ErrNotRoutable):
			p := sourcePrefix(text)
			errs.add("allow_from", "The allow from field must be a publicly routed IPv4 address or range; "+p.String()+" is "+forward.PrefixClass(p)+".")
		case err != nil:
			errs.add("allow_from", "The allow from field must be a valid IPv4 address or CIDR range.")
		default:
			nf.AllowFrom = prefix
		}
	}
	if m, ok := in.boolean("masquerade"); ok {
		nf.Masquerade = m
	}
	return nf, errs.err()
}

func (s *server) handleForwardRevoke() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		routerID, id, err := forwardPath(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.store.RevokeForward(r.Context(), p, routerID, id, s.now()); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// sourcePrefix reads an allow_from that passed the syntax checks, for
// messages about its class.
func sourcePrefix(text string) netip.Prefix {
	if p, err := netip.ParsePrefix(text); err == nil {
		return p.Masked()
	}
	a, _ := netip.ParseAddr(text)
	return netip.PrefixFrom(a, 32)
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type connectionJSON struct {
	ID        string  `json:"id"`
	Source    string  `json:"source"`
	StartedAt string  `json:"started_at"`
	EndedAt   *string `json:"ended_at"`
	BytesUp   int64   `json:"bytes_up"`
	BytesDown int64   `json:"bytes_down"`
	Reason    string  `json:"reason"`
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
		errs := &validationError{}
		limit := queryLimit(r.URL.Query(), errs)
		if err := errs.err(); err != nil {
			s.writeError(w, r, err)
			return
		}
		list, err := s.store.Connections(r.Context(), p.AccountID, routerID, id, limit)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]connectionJSON, len(list))
		for i, c := range list {
			out[i] = connectionJSON{ID: c.ID.String(), Source: c.Source, StartedAt: formatTime(c.StartedAt), EndedAt: formatTimePtr(c.EndedAt),
				BytesUp: c.BytesUp, BytesDown: c.BytesDown, Reason: c.Reason}
		}
		writeJSON(w, http.StatusOK, out)
	}
}

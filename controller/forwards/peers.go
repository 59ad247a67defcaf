package forwards

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// This file is what the hub asks of the service for agents and edges: who
// they are, the sets they are sent, and what their reports change.

// AuthenticateAgent returns the router an agent token belongs to, or
// fleet.ErrUnauthenticated.
func (s *Service) AuthenticateAgent(ctx context.Context, secret string) (fleet.Router, error) {
	return s.st.AuthenticateAgent(ctx, secret)
}

// AuthenticateEdge returns the region an edge token belongs to, or
// fleet.ErrUnauthenticated.
func (s *Service) AuthenticateEdge(ctx context.Context, secret string) (fleet.Region, error) {
	return s.st.AuthenticateEdge(ctx, secret)
}

// FarewellSet is the last set of a router deleted since its agent connected
// with secret: no forwards and no tunnel, so that the agent leaves nothing
// of tpf behind on the router. It is nil for any other router.
func (s *Service) FarewellSet(ctx context.Context, secret string, router uuid.UUID, now time.Time) (*syncproto.Desired, error) {
	sets, err := s.AgentSets(ctx, map[uuid.UUID]string{router: secret}, now)
	if a, ok := sets[router]; ok && a.Token == TokenRetired {
		return a.Desired, nil
	}
	return nil, err
}

// DesiredSet is the full set of forwards and accesses router must hold at
// now; a deleted router's is empty. An access carries its user's password
// only while the agent has not yet confirmed the user (see CreateAccess).
func (s *Service) DesiredSet(ctx context.Context, router uuid.UUID, now time.Time) (*syncproto.Desired, error) {
	set, err := s.st.RouterSet(ctx, router, now)
	if err != nil {
		return nil, err
	}
	return desired(set, now), nil
}

// TokenStanding is what the token an agent connected with is worth now.
type TokenStanding int

const (
	// TokenStands: the token is still its router's; the agent gets its set.
	TokenStands TokenStanding = iota
	// TokenRetired: the router was deleted since; the agent gets its last,
	// empty set (see FarewellSet) and is dropped.
	TokenRetired
	// TokenReplaced: the router has another token now (or is gone); the
	// agent is dropped without a set.
	TokenReplaced
)

// AgentSet is the set for one router's agent, with what its token is worth.
type AgentSet struct {
	Desired *syncproto.Desired
	Token   TokenStanding
}

// AgentSets builds the sets of many routers' agents at now in one
// statement, however many (the hub asks in chunks), each with what the
// agent's token (secrets, by router) is worth: the token check costs no
// query of its own. Every router asked for is in the answer.
func (s *Service) AgentSets(ctx context.Context, secrets map[uuid.UUID]string, now time.Time) (map[uuid.UUID]AgentSet, error) {
	ids := make([]uuid.UUID, 0, len(secrets))
	for id := range secrets {
		ids = append(ids, id)
	}
	sets, err := s.st.RouterSets(ctx, ids, now)
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]AgentSet, len(secrets))
	for _, set := range sets {
		a := AgentSet{Token: TokenReplaced}
		switch {
		case !set.HeldBy(secrets[set.Router]):
		case set.Deleted:
			a = AgentSet{Desired: desired(set, now), Token: TokenRetired}
		default:
			a = AgentSet{Desired: desired(set, now), Token: TokenStands}
		}
		out[set.Router] = a
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			out[id] = AgentSet{Token: TokenReplaced}
		}
	}
	return out, nil
}

// desired is set as its agent is sent it at now.
func desired(set store.RouterSet, now time.Time) *syncproto.Desired {
	d := &syncproto.Desired{
		Revision: set.Revision, TunnelAddress: set.TunnelAddress, EdgeAddress: set.EdgeAddress,
		Forwards: make([]syncproto.Forward, len(set.Forwards)), SentAt: now,
	}
	if set.Tunnel.Managed && !set.Deleted {
		d.Tunnel = &syncproto.Tunnel{
			Address: set.TunnelAddress, EdgeAddress: set.EdgeAddress, EdgePublicKey: set.Tunnel.EdgePublicKey,
			Endpoint: set.Tunnel.Endpoint, KeepaliveSeconds: int(fleet.TunnelKeepalive / time.Second),
		}
	}
	for i, f := range set.Forwards {
		d.Forwards[i] = syncproto.Forward{
			ID: f.ID.String(), Port: f.Port, DstAddress: f.DstAddress, DstPort: f.DstPort,
			ExpiresAt: f.ExpiresAt, Masquerade: f.Masquerade,
		}
	}
	for _, a := range set.Accesses {
		d.Accesses = append(d.Accesses, syncproto.Access{
			ID: a.ID.String(), Service: a.Service, Username: a.Username, Password: a.Password,
			ReadOnly: a.ReadOnly, ExpiresAt: a.ExpiresAt,
		})
	}
	return d
}

// Listeners is the full listener set of region at now, each with lim: a
// forward's listener relays to its router's tunnel address on the same port
// (where the router's rule takes it on), an access's to the router's port
// of its service.
func (s *Service) Listeners(ctx context.Context, region string, lim syncproto.Limits, now time.Time) (*syncproto.Listeners, error) {
	set, err := s.st.RegionSet(ctx, region, now)
	if err != nil {
		return nil, err
	}
	l := &syncproto.Listeners{Revision: set.Revision, Region: region, Listeners: make([]syncproto.Listener, len(set.Listeners)), SentAt: now}
	if set.Tunnel.Managed {
		l.Tunnel = &syncproto.EdgeTunnel{
			Address:    netip.PrefixFrom(set.EdgeAddress, set.Tunnel.Prefix.Bits()),
			ListenPort: endpointPort(set.Tunnel.Endpoint),
			Peers:      make([]syncproto.EdgePeer, len(set.Peers)),
		}
		for i, p := range set.Peers {
			l.Tunnel.Peers[i] = syncproto.EdgePeer{PublicKey: p.PublicKey, Address: p.Address}
		}
	}
	for i, ln := range set.Listeners {
		l.Listeners[i] = syncproto.Listener{
			ID: ln.ID.String(), Port: ln.Port, Allow: ln.Allow,
			Target: netip.AddrPortFrom(ln.TunnelAddress, ln.TargetPort), ExpiresAt: ln.ExpiresAt, Limits: lim,
		}
	}
	return l, nil
}

// AgentConnected records that router's agent connected at now.
func (s *Service) AgentConnected(ctx context.Context, router uuid.UUID, now time.Time) error {
	return s.st.AgentConnected(ctx, router, now)
}

// AgentDisconnected records that router's agent went away at now.
func (s *Service) AgentDisconnected(ctx context.Context, router uuid.UUID, now time.Time) error {
	return s.st.AgentDisconnected(ctx, router, now)
}

// AgentsSeen records signs of life of many routers' agents at once.
func (s *Service) AgentsSeen(ctx context.Context, routers []uuid.UUID, now time.Time) error {
	return s.st.AgentsSeen(ctx, routers, now)
}

// AgentHello records an agent's introduction.
func (s *Service) AgentHello(ctx context.Context, router uuid.UUID, h syncproto.Hello, now time.Time) error {
	return s.st.AgentHello(ctx, router, agentInfo(h.AgentVersion, h.Router), now)
}

func agentInfo(version string, r syncproto.Router) store.AgentInfo {
	return store.AgentInfo{AgentVersion: version, RouterOSVersion: r.RouterOSVersion, Board: r.Board, Identity: r.Identity}
}

// EdgeConnected records that region's edge connected at now.
func (s *Service) EdgeConnected(ctx context.Context, region string, now time.Time) error {
	return s.st.EdgeConnected(ctx, region, now)
}

// EdgeDisconnected records that region's edge went away at now.
func (s *Service) EdgeDisconnected(ctx context.Context, region string, now time.Time) error {
	return s.st.EdgeDisconnected(ctx, region, now)
}

// EdgeSeen records a sign of life of region's edge.
func (s *Service) EdgeSeen(ctx context.Context, region string, now time.Time) error {
	return s.st.EdgeSeen(ctx, region, now)
}

// ReportOutcome says what a report changed.
type ReportOutcome struct {
	Activated []Activation // forwards this report made active
	Removed   []uuid.UUID  // forwards whose removal the router confirmed
}

// Activation is a forward that a report made active (pending → active).
type Activation struct {
	ID        uuid.UUID
	CreatedAt time.Time
}

// ApplyReport records what router's agent applied: forwards it confirmed
// become active, ended forwards it no longer holds become removed (freeing
// their ports), and refusals and failures are kept on the forward. The
// agent's own status is written first, on its own; a failed pass confirms
// nothing. Only forwards whose state changes are written, in one statement.
//
// Accesses are forwards here too. The write that confirms an access (its
// user is on the router) also clears its password from the database. An
// applied access whose service listens on another port than the one known
// gets that port, and its region's listener set changes (the edge relays
// there): the region is then locked before the forwards, as the lock order
// has it.
func (s *Service) ApplyReport(ctx context.Context, router uuid.UUID, r syncproto.Report, now time.Time) (ReportOutcome, error) {
	pass := store.AgentPass{
		AgentInfo: agentInfo(r.AgentVersion, r.Router), Revision: r.Revision, Error: r.Error,
		ClockOffsetMillis: r.ClockOffsetMillis, Tunnel: routerTunnel(r.Tunnel),
	}
	err := s.st.AgentPassed(ctx, router, pass, now)
	if err != nil || r.Error != "" {
		return ReportOutcome{}, err
	}
	rr := readResults(r.Results)
	present := make(map[uuid.UUID]bool, len(r.Present))
	for _, p := range r.Present {
		if id, err := uuid.Parse(p); err == nil {
			present[id] = true
		}
	}
	var out reportOutcome
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		// A new key of the router's end of the tunnel changes its region's
		// listener set (the edge's peers); the router's row, locked by the
		// key's write, carries the change (the lock order's first step).
		if r.Tunnel != nil && r.Tunnel.PublicKey != "" {
			region, err := tx.ReplaceRouterTunnelKey(ctx, router, r.Tunnel.PublicKey)
			if err != nil {
				return err
			}
			if region != "" {
				if err := tx.Publish(ctx, store.Change{RouterID: router, Region: region}); err != nil {
					return err
				}
			}
		}
		// A service port that differs from the one known changes the
		// region's listeners: lock the region before the forwards. The
		// check locks nothing; a port found changed only after the lock
		// (a race with another report of the router) waits for the next
		// report.
		portRegion, err := tx.AccessPortsRegion(ctx, router, rr.ports)
		if err != nil {
			return err
		}
		if portRegion != "" {
			if err := tx.LockRegions(ctx, []string{portRegion}); err != nil {
				return err
			}
		}
		rows, err := tx.LockRouterForwards(ctx, router, rr.ids(), now.Add(-fleet.TunnelUpWithin))
		if err != nil {
			return err
		}
		out = agentReported(rows, rr, present, portRegion != "")
		if err := tx.WriteForwardStates(ctx, out.changed, now); err != nil {
			return err
		}
		if out.portsChanged {
			return tx.Publish(ctx, store.Change{Region: portRegion})
		}
		return nil
	})
	if err != nil {
		return ReportOutcome{}, fmt.Errorf("report of %s: %w", router, err)
	}
	return ReportOutcome{Activated: out.activated, Removed: out.removed}, nil
}

// ApplyEdgeReport records what region's edge applied: forwards it listens
// for count as in place at the entry point (and become active when their
// router confirmed them too); failures are kept on the forward. It returns
// the forwards this report made active.
func (s *Service) ApplyEdgeReport(ctx context.Context, region string, r syncproto.Report, now time.Time) ([]Activation, error) {
	passErr := r.Error
	if r.Tunnel != nil && r.Tunnel.Error != "" {
		passErr = strings.TrimPrefix(passErr+"; tunnel: "+r.Tunnel.Error, "; ")
	}
	if err := s.st.EdgePassed(ctx, region, r.AgentVersion, r.Revision, passErr, now); err != nil || r.Error != "" {
		return nil, err
	}
	if r.Tunnel != nil && r.Tunnel.PublicKey != "" {
		if err := s.edgeKey(ctx, region, r.Tunnel.PublicKey); err != nil {
			return nil, err
		}
	}
	rr := readResults(r.Results)
	var out reportOutcome
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		rows, err := tx.LockRegionForwards(ctx, region, rr.ids(), now.Add(-fleet.TunnelUpWithin))
		if err != nil {
			return err
		}
		out = edgeReported(rows, rr)
		return tx.WriteForwardStates(ctx, out.changed, now)
	})
	if err != nil {
		return nil, fmt.Errorf("edge report of %q: %w", region, err)
	}
	return out.activated, nil
}

// RecordConnections stores connection records from region's edge; records
// with ids that are not UUIDs, for forwards of other regions, or that would
// move a connection to another forward are ignored.
func (s *Service) RecordConnections(ctx context.Context, region string, recs []syncproto.Connection) error {
	conns := make([]fleet.Connection, 0, len(recs))
	for _, c := range recs {
		id, err1 := uuid.Parse(c.ID)
		fid, err2 := uuid.Parse(c.ForwardID)
		if err1 != nil || err2 != nil {
			continue
		}
		fc := fleet.Connection{ID: id, ForwardID: fid, Source: c.Source.String(), StartedAt: c.Start.UTC(),
			BytesUp: c.BytesUp, BytesDown: c.BytesDown, Reason: c.Reason}
		if !c.End.IsZero() {
			end := c.End.UTC()
			fc.EndedAt = &end
		}
		conns = append(conns, fc)
	}
	return s.st.RecordConnections(ctx, region, conns)
}

// edgeKey records the public key of region's edge when it changed; every
// router of the region gets a new set (their tunnel's peer is the edge), so
// the region's routers are locked first, then the region (the lock order).
func (s *Service) edgeKey(ctx context.Context, region, key string) error {
	rg, err := s.st.Region(ctx, region)
	if err != nil || rg.Tunnel.EdgePublicKey == key {
		return err
	}
	return s.st.InTx(ctx, func(tx *store.Tx) error {
		routers, err := tx.LockRegionRouters(ctx, region)
		if err != nil {
			return err
		}
		if err := tx.LockRegions(ctx, []string{region}); err != nil {
			return err
		}
		if err := tx.SetEdgePublicKey(ctx, region, key); err != nil {
			return err
		}
		changes := []store.Change{{Region: region}}
		for _, r := range routers {
			changes = append(changes, store.Change{RouterID: r, Region: region})
		}
		return tx.Publish(ctx, changes...)
	})
}

// routerTunnel is what an agent's report says of the router's end of the
// tunnel: its one peer is the edge.
func routerTunnel(t *syncproto.TunnelState) *fleet.TunnelState {
	if t == nil {
		return nil
	}
	out := &fleet.TunnelState{PublicKey: t.PublicKey, Error: t.Error}
	if len(t.Peers) > 0 {
		p := t.Peers[0]
		if !p.LastHandshake.IsZero() {
			hs := p.LastHandshake.UTC()
			out.LastHandshake = &hs
		}
		out.Endpoint, out.RxBytes, out.TxBytes = p.Endpoint, p.RxBytes, p.TxBytes
	}
	return out
}

// endpointPort is the port of a HOST:PORT endpoint, or the default one.
func endpointPort(endpoint string) uint16 {
	_, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return fleet.DefaultTunnelPort
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return fleet.DefaultTunnelPort
	}
	return uint16(n)
}

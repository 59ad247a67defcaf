package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
)

// Tx is one transaction. Its methods are the steps that writes to routers'
// desired sets and regions' listener sets are made of; the caller (package
// forwards) composes them, taking locks in the order of the package
// documentation. A Tx is valid only inside the function given to InTx.
type Tx struct {
	q *db.Queries
}

// InTx runs fn in a transaction, committing when it returns nil, and runs
// it again in a new transaction when PostgreSQL aborts it for a deadlock, a
// serialization failure or a lock timeout. fn may run several times: it must
// set its results, never append to what an earlier run left.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	return s.inTx(ctx, func(q *db.Queries) error { return fn(&Tx{q: q}) })
}

// LockRouter locks one of the account's routers (the first step of the lock
// order) and reads its region without locking it: the router's revision
// bump carries the change to the region's listener set. A router that does not exist, is another
// account's or was deleted is fleet.ErrNotFound.
func (tx *Tx) LockRouter(ctx context.Context, account, id uuid.UUID) (fleet.Router, fleet.Region, error) {
	row, err := tx.q.LockRouter(ctx, db.LockRouterParams{ID: id, AccountID: account})
	if err != nil {
		return fleet.Router{}, fleet.Region{}, fmt.Errorf("router %s: %w", id, notFound(err))
	}
	r := toRouter(row.Router)
	r.TunnelManaged = row.Region.TunnelMode == tunnelManaged
	return r, toRegion(row.Region), nil
}

// LockRoutersSkipLocked locks those of the routers that no other
// transaction holds, in id order, and returns them in that order.
func (tx *Tx) LockRoutersSkipLocked(ctx context.Context, ids []uuid.UUID) ([]uuid.UUID, error) {
	return tx.q.LockRoutersSkipLocked(ctx, ids)
}

// LockRegions locks regions in id order.
func (tx *Tx) LockRegions(ctx context.Context, ids []string) error {
	return tx.q.LockRegions(ctx, ids)
}

// ForwardRow is a forward to insert, or an access when Service is set.
type ForwardRow struct {
	Router    uuid.UUID
	Region    string
	Port      uint16
	CreatedBy uuid.UUID
	CreatedAt time.Time
	fleet.NewForward
	// Service makes the row an access to that service of the router
	// (fleet.ServiceSSH or fleet.ServiceWinbox) with Login and ReadOnly;
	// empty: a forward.
	Service  string
	Login    AccessLogin
	ReadOnly bool
}

// InsertForward inserts f on its port; taken is true (and nothing
// inserted) when another forward of the region holds the port, or an
// earlier forward of the same router on that port still awaits its
// removal. The partial unique index on held ports makes this safe against
// concurrent inserts.
func (tx *Tx) InsertForward(ctx context.Context, f ForwardRow, entryPoint string) (fw fleet.Forward, taken bool, err error) {
	p := db.InsertForwardParams{
		RouterID: f.Router, RegionID: f.Region, Port: int32(f.Port), DstAddress: f.DstAddress, DstPort: int32(f.DstPort),
		AllowCidr: f.AllowFrom, Masquerade: f.Masquerade, CreatedAt: f.CreatedAt,
		ExpiresAt: f.CreatedAt.Add(f.Duration), CreatedBy: &f.CreatedBy, Kind: kindForward,
	}
	if f.Service != "" {
		p.Kind, p.AccessUsername, p.AccessPassword, p.AccessReadOnly = f.Service, f.Login.Username, &f.Login.Password, f.ReadOnly
	}
	row, err := tx.q.InsertForward(ctx, p)
	if errors.Is(err, pgx.ErrNoRows) {
		return fleet.Forward{}, true, nil
	}
	if err != nil {
		return fleet.Forward{}, false, err
	}
	return toForward(row, entryPoint, 0), false, nil
}

// FreePort returns a random port of the region's range that router can
// take now; ok is false when none is left.
func (tx *Tx) FreePort(ctx context.Context, region fleet.Region, router uuid.UUID) (port uint16, ok bool, err error) {
	p, err := tx.q.FreePort(ctx, db.FreePortParams{
		PortMin: int32(region.Ports.Min), PortMax: int32(region.Ports.Max), RegionID: region.ID, RouterID: router,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	return uint16(p), err == nil, err
}

// EndForward revokes the router's forward id (an access when access is
// set) at now when it is still live; ended is false when it had already
// ended or does not exist. An access's password goes with it.
func (tx *Tx) EndForward(ctx context.Context, router, id, by uuid.UUID, access bool, now time.Time) (ended bool, err error) {
	_, err = tx.q.RevokeForward(ctx, db.RevokeForwardParams{Now: now, RevokedBy: &by, ID: id, RouterID: router, IsAccess: access})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// ForwardExists reports whether the router has a forward id (an access when
// access is set), live or not.
func (tx *Tx) ForwardExists(ctx context.Context, router, id uuid.UUID, access bool) (bool, error) {
	return tx.q.ForwardExists(ctx, db.ForwardExistsParams{ID: id, RouterID: router, IsAccess: access})
}

// CreateRouter inserts a router of the account with the hash of its agent
// token's secret.
func (tx *Tx) CreateRouter(ctx context.Context, account uuid.UUID, name, region string, tunnel netip.Addr, agentSecret string, now time.Time) (fleet.Router, error) {
	row, err := tx.q.CreateRouter(ctx, db.CreateRouterParams{
		AccountID: account, RegionID: region, Name: name,
		TunnelAddress: tunnel, AgentTokenHash: hashSecret(agentSecret), CreatedAt: now,
	})
	if err != nil {
		return fleet.Router{}, err
	}
	return toRouter(row), nil
}

// Region returns a region (without locking it).
func (tx *Tx) Region(ctx context.Context, id string) (fleet.Region, error) {
	row, err := tx.q.GetRegion(ctx, id)
	if err != nil {
		return fleet.Region{}, fmt.Errorf("region %q: %w", id, notFound(err))
	}
	r := toRegion(row.Region)
	r.Revision = row.Revision
	return r, nil
}

// MarkRouterDeleted marks the account's router deleted at now; the caller
// has locked it.
func (tx *Tx) MarkRouterDeleted(ctx context.Context, account, id uuid.UUID, now time.Time) error {
	_, err := tx.q.DeleteRouter(ctx, db.DeleteRouterParams{ID: id, AccountID: account, Now: now})
	return notFound(err)
}

// EndedForward is a forward (or an access) ended with its router.
type EndedForward struct {
	ID uuid.UUID
	// Revoked: it was still running; otherwise its time had passed.
	Revoked bool
	// Access: it is an access.
	Access bool
}

// EndRouterForwards ends every live forward of the router at now: revoked
// by by when still running, expired when its time had passed. It locks them
// in id order.
func (tx *Tx) EndRouterForwards(ctx context.Context, router, by uuid.UUID, now time.Time) ([]EndedForward, error) {
	rows, err := tx.q.EndRouterForwards(ctx, db.EndRouterForwardsParams{Now: now, RevokedBy: &by, RouterID: router})
	out := make([]EndedForward, len(rows))
	for i, r := range rows {
		out[i] = EndedForward{ID: r.ID, Revoked: r.RevokedAt != nil, Access: r.Kind != kindForward}
	}
	return out, err
}

// ReplaceAgentToken gives the account's router the agent token secret; the
// old one stops working. The router's row is locked by the update.
func (tx *Tx) ReplaceAgentToken(ctx context.Context, account, router uuid.UUID, secret string) (fleet.Router, error) {
	row, err := tx.q.RotateAgentToken(ctx, db.RotateAgentTokenParams{AgentTokenHash: hashSecret(secret), ID: router, AccountID: account})
	if err != nil {
		return fleet.Router{}, fmt.Errorf("router %s: %w", router, notFound(err))
	}
	return toRouter(row), nil
}

// ReplaceEdgeToken gives the region the edge token secret (and counts it as
// served by a tpf edge); the old one stops working.
func (tx *Tx) ReplaceEdgeToken(ctx context.Context, region, secret string) error {
	_, err := tx.q.SetEdgeToken(ctx, db.SetEdgeTokenParams{EdgeTokenHash: hashSecret(secret), ID: region})
	if err != nil {
		return fmt.Errorf("region %q: %w", region, notFound(err))
	}
	return nil
}

// DueForward is a live forward whose time has come.
type DueForward struct {
	ID, Router uuid.UUID
}

// DueForwards lists up to limit live forwards due at now, soonest first,
// without locking anything.
func (tx *Tx) DueForwards(ctx context.Context, now time.Time, limit int) ([]DueForward, error) {
	rows, err := tx.q.DueForwards(ctx, db.DueForwardsParams{Now: now, MaxRows: int32(limit)})
	out := make([]DueForward, len(rows))
	for i, r := range rows {
		out[i] = DueForward{ID: r.ID, Router: r.RouterID}
	}
	return out, err
}

// ExpiredForward is a forward (or an access) the expiry clock ended.
type ExpiredForward struct {
	ID, Router, Account uuid.UUID
	Region              string
	ExpiresAt           time.Time
	// Access: it is an access.
	Access bool
}

// ExpireForwards ends those of the forwards that are still live and due at
// now, locking them in id order; the caller holds their routers' locks.
func (tx *Tx) ExpireForwards(ctx context.Context, ids []uuid.UUID, now time.Time) ([]ExpiredForward, error) {
	rows, err := tx.q.ExpireForwards(ctx, db.ExpireForwardsParams{Now: now, Ids: ids})
	out := make([]ExpiredForward, len(rows))
	for i, r := range rows {
		out[i] = ExpiredForward{ID: r.ID, Router: r.RouterID, Account: r.AccountID, Region: r.RegionID, ExpiresAt: r.ExpiresAt.UTC(),
			Access: r.Kind != kindForward}
	}
	return out, err
}

// ForwardState is what a report may change of one forward.
type ForwardState struct {
	ID                uuid.UUID
	Status            fleet.Status
	RouterError       string
	EdgeError         string
	RuleConfirmed     bool
	ListenerConfirmed bool
	// EdgeManaged: a tpf edge serves the forward's region, so it is active
	// only once the edge listens too.
	EdgeManaged bool
	// TunnelUp: the region has no managed tunnel, or the router's tunnel
	// shook hands with the edge lately (a condition, not a column).
	TunnelUp  bool
	CreatedAt time.Time
	// Service is an access's service, empty for a forward.
	Service string
	// DstPort is where the forward goes; for an access, the router's port
	// of its service, which its agent's reports may change.
	DstPort uint16
}

// LockRouterForwards locks, in id order, the router's forwards among ids
// and those awaiting removal, and returns their states; a tunnel counts as
// up with a handshake after handshakeSince.
func (tx *Tx) LockRouterForwards(ctx context.Context, router uuid.UUID, ids []uuid.UUID, handshakeSince time.Time) ([]ForwardState, error) {
	rows, err := tx.q.LockRouterForwards(ctx, db.LockRouterForwardsParams{RouterID: router, Ids: ids, HandshakeSince: handshakeSince})
	out := make([]ForwardState, len(rows))
	for i, r := range rows {
		out[i] = lockedState(db.LockRegionForwardsRow(r))
	}
	return out, err
}

// LockRegionForwards locks, in id order, the region's forwards among ids
// and returns their states, as LockRouterForwards does.
func (tx *Tx) LockRegionForwards(ctx context.Context, region string, ids []uuid.UUID, handshakeSince time.Time) ([]ForwardState, error) {
	rows, err := tx.q.LockRegionForwards(ctx, db.LockRegionForwardsParams{RegionID: region, Ids: ids, HandshakeSince: handshakeSince})
	out := make([]ForwardState, len(rows))
	for i, r := range rows {
		out[i] = lockedState(r)
	}
	return out, err
}

// lockedState is a locked forward's state; both lock queries return the
// same columns.
func lockedState(r db.LockRegionForwardsRow) ForwardState {
	f := ForwardState{
		ID: r.ID, Status: fleet.Status(r.Status), RouterError: r.RouterError, EdgeError: r.EdgeError,
		RuleConfirmed: r.RuleConfirmed, ListenerConfirmed: r.ListenerConfirmed, EdgeManaged: r.EdgeManaged,
		TunnelUp: r.TunnelUp, CreatedAt: r.CreatedAt.UTC(), DstPort: uint16(r.DstPort),
	}
	if r.Kind != kindForward {
		f.Service = r.Kind
	}
	return f
}

// AccessPortsRegion returns the region of router when one of its live
// accesses among ports has a service port other than the one given there,
// and "" when none has; it locks nothing (a report that is to change a port
// locks the region first: the lock order).
func (tx *Tx) AccessPortsRegion(ctx context.Context, router uuid.UUID, ports map[uuid.UUID]uint16) (string, error) {
	if len(ports) == 0 {
		return "", nil
	}
	p := db.AccessPortsRegionParams{RouterID: router}
	for id, port := range ports {
		p.Ids = append(p.Ids, id)
		p.Ports = append(p.Ports, int32(port))
	}
	region, err := tx.q.AccessPortsRegion(ctx, p)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return region, err
}

// WriteForwardStates writes the given states in one statement (confirmation
// times and released ports at now); the transaction holds their rows. An
// access whose rule (its user) is confirmed loses its password in the same
// write.
func (tx *Tx) WriteForwardStates(ctx context.Context, states []ForwardState, now time.Time) error {
	if len(states) == 0 {
		return nil
	}
	p := db.UpdateForwardStatesParams{Now: now}
	for _, f := range states {
		p.Ids = append(p.Ids, f.ID)
		p.Statuses = append(p.Statuses, string(f.Status))
		p.RouterErrors = append(p.RouterErrors, f.RouterError)
		p.EdgeErrors = append(p.EdgeErrors, f.EdgeError)
		p.RulesConfirmed = append(p.RulesConfirmed, f.RuleConfirmed)
		p.ListenersConfirmed = append(p.ListenersConfirmed, f.ListenerConfirmed)
		p.DstPorts = append(p.DstPorts, int32(f.DstPort))
	}
	return tx.q.UpdateForwardStates(ctx, p)
}

// AuditEvent is one event to record; the actor and action are the same for
// every event of one Audit call.
type AuditEvent struct {
	Account, Subject uuid.UUID
	// Detail is marshalled to the event's JSON detail.
	Detail any
}

// Audit records events of one action by one actor at at, in one round trip.
func (tx *Tx) Audit(ctx context.Context, at time.Time, actor, action string, events ...AuditEvent) error {
	evs := make([]auditEvent, len(events))
	for i, e := range events {
		evs[i] = auditEvent{e.Account, e.Subject, e.Detail}
	}
	return auditAll(ctx, tx.q, at, actor, action, evs)
}

// Publish bumps the revisions of the changed routers' desired sets (and so
// their regions' listener sets), or a region's own revision for a change of
// the region alone, and announces each change on commit. The transaction
// holds those routers' locks, and the lock of a region changed alone.
func (tx *Tx) Publish(ctx context.Context, changes ...Change) error {
	return publish(ctx, tx.q, changes...)
}

// FreeTunnelAddress returns the lowest address of the managed region's
// tunnel prefix that no live router of the region holds; ok is false when
// the prefix is full. The caller holds the region's lock, so two routers
// never get one address.
func (tx *Tx) FreeTunnelAddress(ctx context.Context, region string) (addr netip.Addr, ok bool, err error) {
	p, err := tx.q.FreeTunnelAddress(ctx, region)
	if errors.Is(err, pgx.ErrNoRows) {
		return netip.Addr{}, false, nil
	}
	if err != nil {
		return netip.Addr{}, false, err
	}
	return p, true, nil
}

// LockRegionRouters locks the region's live routers in id order and
// returns them.
func (tx *Tx) LockRegionRouters(ctx context.Context, region string) ([]uuid.UUID, error) {
	return tx.q.LockRegionRouters(ctx, region)
}

// SetEdgePublicKey records the public key of the region's edge; the caller
// holds the region's routers' and the region's locks.
func (tx *Tx) SetEdgePublicKey(ctx context.Context, region, key string) error {
	return tx.q.SetEdgePublicKey(ctx, db.SetEdgePublicKeyParams{EdgePublicKey: key, ID: region})
}

// ReplaceRouterTunnelKey records the public key of the router's end of the
// tunnel when it differs from the one known (a reinstalled router's new key
// replaces the old), locking the router's row only then. It returns the
// router's region when the key changed, "" when it did not.
func (tx *Tx) ReplaceRouterTunnelKey(ctx context.Context, router uuid.UUID, key string) (string, error) {
	region, err := tx.q.ReplaceRouterTunnelKey(ctx, db.ReplaceRouterTunnelKeyParams{TunnelPublicKey: key, ID: router})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return region, err
}

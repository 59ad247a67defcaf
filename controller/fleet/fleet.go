// Package fleet holds the controller's vocabulary: accounts and the tokens that
// act for them, regions (entry points with a port pool), routers and their
// transient forwards, and the errors callers branch on.
//
// It also holds the rules a new forward obeys and the messages that say which
// one a request broke (ValidateNewForward), for the API and the web views.
//
// It imports only the standard library, github.com/google/uuid and
// shared/forward (the address rules); storage and transport live in other
// packages (store, api, web) and translate to these types.
package fleet

import (
	"errors"
	"net/netip"
	"time"

	"github.com/google/uuid"
)

// Errors that callers branch on. Each is wrapped with context where it occurs.
var (
	// ErrNotFound means the thing does not exist or belongs to another account;
	// the two are deliberately indistinguishable.
	ErrNotFound = errors.New("not found")
	// ErrPortsExhausted means the region has no port left to hand out.
	ErrPortsExhausted = errors.New("no free port in the region's range")
	// ErrExists means a thing with that name or id already exists.
	ErrExists = errors.New("already exists")
	// ErrUnauthenticated means the presented token is unknown or revoked.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrTunnelAddressRequired means a router of a region without a managed
	// tunnel needs its tunnel address given.
	ErrTunnelAddressRequired = errors.New("the region's tunnel is the operator's own: give the router's tunnel address")
	// ErrTunnelAddressManaged means a tunnel address was given for a router
	// of a region whose tunnel tpf manages (and so allocates addresses).
	ErrTunnelAddressManaged = errors.New("the region's tunnel is managed by tpf, which allocates the router's tunnel address")
	// ErrTunnelFull means the region's tunnel prefix has no address left.
	ErrTunnelFull = errors.New("no free address is left in the region's tunnel prefix")
)

// Account owns routers; its tokens act for it.
type Account struct {
	ID        uuid.UUID
	Name      string
	CreatedAt time.Time
}

// Principal is who makes a request: an API token of an account.
type Principal struct {
	AccountID   uuid.UUID
	AccountName string
	TokenID     uuid.UUID
	TokenName   string
}

// Actor names the principal in the audit log.
func (p Principal) Actor() string {
	return "token " + p.TokenName + " (" + p.TokenID.String() + ")"
}

// PortRange is an inclusive range of entry-point ports.
type PortRange struct {
	Min, Max uint16
}

// Size is the number of ports in the range.
func (r PortRange) Size() int { return int(r.Max) - int(r.Min) + 1 }

// Contains reports whether p lies in the range.
func (r PortRange) Contains(p uint16) bool { return p >= r.Min && p <= r.Max }

// Region is one entry point: the host users connect to, the ports it hands
// out, and the address its edge uses inside the management tunnel (the source
// address router rules admit).
type Region struct {
	ID                string
	EntryPoint        string
	Ports             PortRange
	EdgeTunnelAddress netip.Addr
	CreatedAt         time.Time
	// Revision is the revision of the region's listener set: it grows with
	// every change to the region's own part (edge, tunnel) and to any of its
	// routers' desired sets. Reads of a region's state fill it; a region read
	// on the way to something else (a router's lock, an edge's token) has 0.
	Revision int64
	// EdgeManaged: a tpf edge serves the region, so forwards are active
	// only once it listens for them.
	EdgeManaged bool
	Edge        EdgeState
	Tunnel      RegionTunnel
}

// RegionTunnel is how a region's routers reach its edge.
type RegionTunnel struct {
	// Managed: tpf builds a WireGuard tunnel from each router to the edge,
	// with addresses from Prefix (the edge's is the first usable one). Not
	// managed: the operator brings a VPN and gives each router's address.
	Managed bool
	Prefix  netip.Prefix
	// Endpoint is the edge's WireGuard UDP endpoint, HOST:PORT, that
	// routers dial.
	Endpoint string
	// EdgePublicKey is the edge's WireGuard public key, once it reported
	// one.
	EdgePublicKey string
}

// DefaultTunnelPort is the UDP port of a managed tunnel's edge endpoint.
const DefaultTunnelPort = 51820

// TunnelKeepalive is the routers' persistent keepalive towards the edge.
const TunnelKeepalive = 25 * time.Second

// TunnelUpWithin is how recent a router's last handshake with the edge
// must be for its tunnel to count as up (WireGuard shakes hands at least
// every two minutes while keepalives flow).
const TunnelUpWithin = 3 * time.Minute

// EdgeState is what the controller knows of a region's edge.
type EdgeState struct {
	ConnectedAt     *time.Time
	DisconnectedAt  *time.Time
	SeenAt          *time.Time
	Version         string
	AppliedRevision int64
	LastError       string
}

// Connected reports whether the edge holds a live connection at now.
func (e EdgeState) Connected(now time.Time) bool {
	return AgentState{ConnectedAt: e.ConnectedAt, DisconnectedAt: e.DisconnectedAt, SeenAt: e.SeenAt}.Connected(now)
}

// Router is a MikroTik router reachable from its region's edge at
// TunnelAddress.
type Router struct {
	ID            uuid.UUID
	AccountID     uuid.UUID
	Region        string
	Name          string
	TunnelAddress netip.Addr
	CreatedAt     time.Time
	// Revision is the revision of the router's desired set; it grows with
	// every change.
	Revision int64
	Agent    AgentState
	// TunnelManaged: the router's region has a tunnel tpf manages; Tunnel
	// is the router's end of it, as its agent last reported it.
	TunnelManaged bool
	Tunnel        TunnelState
}

// TunnelState is what the agent last reported of a router's end of the
// management tunnel.
type TunnelState struct {
	// PublicKey is the router's WireGuard public key (the private key never
	// leaves the router).
	PublicKey     string
	LastHandshake *time.Time
	// Endpoint is the edge's address as the router last reached it.
	Endpoint         string
	RxBytes, TxBytes int64
	// Error says why the agent could not build the tunnel.
	Error string
	// ReportedAt is when the agent last reported it; nil: never.
	ReportedAt *time.Time
}

// Tunnel states as the API shows them.
const (
	TunnelUp    = "up"    // a handshake within TunnelUpWithin
	TunnelDown  = "down"  // a handshake once, none lately
	TunnelNever = "never" // never a handshake
)

// State is the tunnel's state at now: up, down or never.
func (t TunnelState) State(now time.Time) string {
	switch {
	case t.LastHandshake == nil:
		return TunnelNever
	case now.Sub(*t.LastHandshake) < TunnelUpWithin:
		return TunnelUp
	default:
		return TunnelDown
	}
}

// AgentState is what the controller knows of a router's agent.
type AgentState struct {
	ConnectedAt    *time.Time
	DisconnectedAt *time.Time
	SeenAt         *time.Time
	AgentVersion   string
	// RouterOSVersion, Board and Identity are read off the router.
	RouterOSVersion string
	Board           string
	Identity        string
	// AppliedRevision is the newest desired set the agent applied.
	AppliedRevision int64
	// LastError is the agent's last failure to apply a set, empty after a
	// clean pass.
	LastError string
	// ClockOffset is how far the router's clock is ahead of the
	// controller's (negative: behind), as the agent last measured it; nil
	// while unknown.
	ClockOffset *time.Duration
}

// ClockWarnAfter is the clock offset past which a router's clock counts as
// wrong (its rules would expire early or late were the agent to trust it).
const ClockWarnAfter = 5 * time.Second

// ClockOff reports whether the router's clock is known to be off by more
// than ClockWarnAfter.
func (a AgentState) ClockOff() bool {
	return a.ClockOffset != nil && (*a.ClockOffset > ClockWarnAfter || *a.ClockOffset < -ClockWarnAfter)
}

// AgentStaleAfter is how long after its last sign of life a connected agent
// is considered gone (a few missed heartbeats).
const AgentStaleAfter = 90 * time.Second

// Connected reports whether the agent holds a live connection at now.
func (a AgentState) Connected(now time.Time) bool {
	if a.ConnectedAt == nil || a.SeenAt == nil {
		return false
	}
	if a.DisconnectedAt != nil && !a.DisconnectedAt.Before(*a.ConnectedAt) {
		return false
	}
	return now.Sub(*a.SeenAt) < AgentStaleAfter
}

// Status is where a forward is in its life.
type Status string

// The statuses, in order.
const (
	// StatusPending: created, the router has not yet confirmed its rule.
	StatusPending Status = "pending"
	// StatusActive: the router confirmed the rule.
	StatusActive Status = "active"
	// StatusRemoving: expired or revoked; the router has not yet confirmed the
	// removal.
	StatusRemoving Status = "removing"
	// StatusRemoved: the router confirmed the removal.
	StatusRemoved Status = "removed"
)

// Forward is a transient port forward: connections from AllowFrom to
// EntryPoint:Port reach DstAddress:DstPort behind the router until ExpiresAt
// or an early revoke.
type Forward struct {
	ID         uuid.UUID
	RouterID   uuid.UUID
	Region     string
	EntryPoint string
	Port       uint16
	DstAddress netip.Addr
	DstPort    uint16
	AllowFrom  netip.Prefix
	// Masquerade adds a source NAT rule so devices whose default gateway is
	// not the router answer through it.
	Masquerade bool
	CreatedAt  time.Time
	ExpiresAt  time.Time
	// RevokedAt is set when the forward was revoked before it expired.
	RevokedAt *time.Time
	// EndedAt is set once the forward stopped: at its expiry or revoke.
	EndedAt *time.Time
	// RouterError says why the router's agent refused or failed the forward.
	RouterError string
	// EdgeError says why the edge could not listen for the forward.
	EdgeError string
	// ConnectionsActive is how many connections the edge relays for it.
	ConnectionsActive int
	// RouterTunnel is its router's management tunnel, when the region's
	// tunnel is managed (TunnelManaged); it decides TunnelErrorAt.
	TunnelManaged bool
	RouterTunnel  TunnelState
	// status is the stored status; StatusAt derives the one to show.
	status Status
}

// SetStatus records the stored status; used by the store when loading.
func (f *Forward) SetStatus(s Status) { f.status = s }

// Expired reports whether the forward's time has run out at now.
func (f Forward) Expired(now time.Time) bool { return !now.Before(f.ExpiresAt) }

// Live reports whether the forward should be in place at now.
func (f Forward) Live(now time.Time) bool { return f.EndedAt == nil && !f.Expired(now) }

// StatusAt is the forward's status at now: a forward whose time ran out is
// removing even before the expiry clock has recorded it.
func (f Forward) StatusAt(now time.Time) Status {
	if (f.status == StatusPending || f.status == StatusActive) && f.Expired(now) {
		return StatusRemoving
	}
	return f.status
}

// TunnelErrorAt says why the forward cannot be reached at now because of
// its router's management tunnel; empty when the tunnel is up, the region's
// tunnel is the operator's own, or the forward is no longer live.
func (f Forward) TunnelErrorAt(now time.Time) string {
	if !f.TunnelManaged || !f.Live(now) {
		return ""
	}
	t := f.RouterTunnel
	switch t.State(now) {
	case TunnelUp:
		return ""
	case TunnelNever:
		if t.Error != "" {
			return "the router's management tunnel is not built: " + t.Error
		}
		return "the router's management tunnel has not shaken hands with the edge yet"
	default:
		msg := "the router's management tunnel is down: last handshake with the edge at " + t.LastHandshake.UTC().Format(time.RFC3339)
		if t.Error != "" {
			msg += " (" + t.Error + ")"
		}
		return msg
	}
}

// NewForward is a request for a forward, already validated.
type NewForward struct {
	DstAddress netip.Addr
	DstPort    uint16
	AllowFrom  netip.Prefix
	Masquerade bool
	Duration   time.Duration
}

// Connection is one connection an edge relayed for a forward.
type Connection struct {
	ID        uuid.UUID
	ForwardID uuid.UUID
	Source    string
	StartedAt time.Time
	EndedAt   *time.Time
	BytesUp   int64
	BytesDown int64
	Reason    string
}

// AuditEvent is one entry of an account's audit log.
type AuditEvent struct {
	ID        int64
	At        time.Time
	Actor     string
	Action    string
	SubjectID uuid.UUID
	// Detail is a JSON object with the action's particulars.
	Detail []byte
}

// Audit actions.
const (
	ActionForwardCreate = "forward.create"
	ActionForwardRevoke = "forward.revoke"
	ActionForwardExpire = "forward.expire"
	// ActionAccessCreate, ActionAccessRevoke and ActionAccessExpire are a
	// transient access's (its detail never holds the password).
	ActionAccessCreate = "access.create"
	ActionAccessRevoke = "access.revoke"
	ActionAccessExpire = "access.expire"
	ActionRouterCreate = "router.create"
	ActionRouterDelete = "router.delete"
	// ActionAgentTokenRotate: a router's agent token was replaced.
	ActionAgentTokenRotate = "router.agent_token_rotate"
	// ActionTokenCreate and ActionTokenRevoke: an API token of the account
	// was issued or revoked (its subject is the token's id).
	ActionTokenCreate = "api_token.create"
	ActionTokenRevoke = "api_token.revoke"
)

// ActorExpiry is the audit actor for forwards the expiry clock ended.
const ActorExpiry = "system (expiry)"

// ActorAdmin is the audit actor for tpf-controller's admin commands.
const ActorAdmin = "system (admin command)"

// MaxTokenName is the longest API token name, in bytes.
const MaxTokenName = 64

// APIToken is an API token of an account, without its secret (which is
// shown once, when it is issued, and stored only as a hash).
type APIToken struct {
	ID        uuid.UUID
	AccountID uuid.UUID
	Name      string
	CreatedAt time.Time
	// RevokedAt is set once the token was revoked; it then authenticates
	// nothing, and its web sessions are over.
	RevokedAt *time.Time
}

// Package apijson holds the JSON of tpf's REST API: the body of every answer
// and request under /api/ (the product contract's transient port forwarding
// object first), the contract's time format (2024-06-22T04:33:29+00:00) and
// its relative-time wording ("2 hours from now", "3 minutes ago"). The
// server (package api) encodes these types; clients (tpfctl, tests) decode
// them.
//
// Field order and names are the contract: encoding/json writes fields in
// declaration order, and the contract's sample is checked byte for byte. Do
// not rename, retype or reorder a field; add new ones after the existing
// ones.
//
// It imports only the standard library, so that any client can use it
// without the server. The conversions from the controller's types (package
// fleet) to these live in package api.
package apijson

import "encoding/json"

// Forward is the contract's transient port forwarding object: its eleven
// fields first, in the contract's order, then tpf's additions. It is the
// answer of GET, POST …/transient-forwarding[/{id}].
type Forward struct {
	ID            string `json:"id"`
	Port          int    `json:"port"`
	RevokedEarly  bool   `json:"revoked_early"`
	AllowOnlyCIDR string `json:"allow_only_cidr"`
	// AuthorizedAt is not in use: always null.
	AuthorizedAt *string `json:"authorized_at"`
	ExpiresAt    string  `json:"expires_at"`
	Expired      bool    `json:"expired"`
	EntryPoint   string  `json:"entry_point"`
	DstAddress   string  `json:"dst_address"`
	DstPort      int     `json:"dst_port"`
	TimeToExpire string  `json:"time_to_expire"`

	RouterID string `json:"router_id"`
	// Status is pending, active, removing or removed.
	Status     string  `json:"status"`
	Masquerade bool    `json:"masquerade"`
	CreatedAt  string  `json:"created_at"`
	RevokedAt  *string `json:"revoked_at"`
	// RouterError says why the router's agent refused or failed the
	// forward; null when it did not.
	RouterError *string `json:"router_error"`
	// EdgeError says why the edge could not listen for it; null when it
	// could.
	EdgeError         *string `json:"edge_error"`
	ConnectionsActive int     `json:"connections_active"`
	// TunnelError says why the forward cannot be reached through its
	// router's management tunnel (not built, or no handshake lately); null
	// while the tunnel is up, in a manual region and once it ended.
	TunnelError *string `json:"tunnel_error"`
}

// NewForward is the creation object of POST …/transient-forwarding as a
// client sends it. The API also takes the integers as digit strings
// ("120"), and masquerade is optional (default false).
type NewForward struct {
	ExpireAfterMinutes int64  `json:"expire_after_minutes"`
	DstPort            int    `json:"dst_port"`
	DstAddress         string `json:"dst_address"`
	AllowFrom          string `json:"allow_from"`
	Masquerade         bool   `json:"masquerade"`
}

// Access is a transient access: a time-limited WinBox or SSH login to a
// router itself (GET, POST /api/routers/{router_id}/transient-access[/{id}]).
type Access struct {
	ID       string `json:"id"`
	RouterID string `json:"router_id"`
	// Type is winbox or ssh.
	Type     string `json:"type"`
	Username string `json:"username"`
	// Password is shown once, in the answer to the create; omitted
	// everywhere else.
	Password     string  `json:"password,omitempty"`
	EntryPoint   string  `json:"entry_point"`
	Port         int     `json:"port"`
	AllowFrom    string  `json:"allow_from"`
	ReadOnly     bool    `json:"read_only"`
	CreatedAt    string  `json:"created_at"`
	ExpiresAt    string  `json:"expires_at"`
	TimeToExpire string  `json:"time_to_expire"`
	Expired      bool    `json:"expired"`
	RevokedEarly bool    `json:"revoked_early"`
	RevokedAt    *string `json:"revoked_at"`
	// Status is pending, active, removing or removed, as for forwards.
	Status string `json:"status"`
	// ServicePort is the router's port of the service, where the edge
	// relays to.
	ServicePort int `json:"service_port"`
	// SSHCommand is the command line that logs in (ssh accesses only).
	SSHCommand        string  `json:"ssh_command,omitempty"`
	RouterError       *string `json:"router_error"`
	EdgeError         *string `json:"edge_error"`
	TunnelError       *string `json:"tunnel_error"`
	ConnectionsActive int     `json:"connections_active"`
}

// NewAccess is the creation object of POST
// /api/routers/{router_id}/transient-access; read_only is optional (default
// false), and expire_after_minutes may be a digit string.
type NewAccess struct {
	Type               string `json:"type"`
	ExpireAfterMinutes int64  `json:"expire_after_minutes"`
	AllowFrom          string `json:"allow_from"`
	ReadOnly           bool   `json:"read_only"`
}

// Connection is one connection the edge relayed for a forward, an element
// of GET …/transient-forwarding/{id}/connections.
type Connection struct {
	ID        string `json:"id"`
	Source    string `json:"source"`
	StartedAt string `json:"started_at"`
	// EndedAt is null while the connection is open.
	EndedAt   *string `json:"ended_at"`
	BytesUp   int64   `json:"bytes_up"`
	BytesDown int64   `json:"bytes_down"`
	Reason    string  `json:"reason"`
}

// Router is the API's router object (GET /api/routers[/{id}]).
type Router struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Region        string `json:"region"`
	TunnelAddress string `json:"tunnel_address"`
	CreatedAt     string `json:"created_at"`
	Agent         Agent  `json:"agent"`
	// Tunnel is the router's end of its region's managed WireGuard tunnel;
	// null in a region whose tunnel is the operator's own VPN.
	Tunnel *Tunnel `json:"tunnel"`
	// AgentToken is shown once, in the answer to the create; omitted
	// everywhere else.
	AgentToken string `json:"agent_token,omitempty"`
}

// Tunnel is a router's end of the management tunnel, as its agent last
// reported it.
type Tunnel struct {
	// State is up (a handshake with the edge within 3 minutes), down (one
	// before that) or never.
	State           string  `json:"state"`
	LastHandshakeAt *string `json:"last_handshake_at"`
	// Endpoint is the edge as the router reached it, HOST:PORT.
	Endpoint  string `json:"endpoint"`
	RxBytes   int64  `json:"rx_bytes"`
	TxBytes   int64  `json:"tx_bytes"`
	PublicKey string `json:"public_key"`
	// Error says why the agent could not build the tunnel; empty when it
	// could.
	Error string `json:"error"`
}

// Agent is what the controller knows of a router's agent.
type Agent struct {
	Connected bool `json:"connected"`
	// ConnectedAt and LastSeenAt are null until the agent first connected.
	ConnectedAt     *string `json:"connected_at"`
	LastSeenAt      *string `json:"last_seen_at"`
	AgentVersion    string  `json:"agent_version"`
	RouterOSVersion string  `json:"routeros_version"`
	Board           string  `json:"board"`
	Identity        string  `json:"identity"`
	DesiredRevision int64   `json:"desired_revision"`
	AppliedRevision int64   `json:"applied_revision"`
	InSync          bool    `json:"in_sync"`
	LastError       string  `json:"last_error"`
	// ClockOffsetMs is how far the router's clock is ahead of the
	// controller's (negative: behind), as the agent measured it; null while
	// unknown. ClockOff says it is off by more than the controller allows.
	ClockOffsetMs *int64 `json:"clock_offset_ms"`
	ClockOff      bool   `json:"clock_off"`
}

// NewRouter is the body of POST /api/routers.
type NewRouter struct {
	Name          string `json:"name"`
	Region        string `json:"region"`
	TunnelAddress string `json:"tunnel_address"`
}

// AgentToken is the answer of POST /api/routers/{id}/agent-token: the
// router's new agent token, shown only then.
type AgentToken struct {
	AgentToken string `json:"agent_token"`
}

// Region is an element of GET /api/regions.
type Region struct {
	ID         string `json:"id"`
	EntryPoint string `json:"entry_point"`
	PortMin    int    `json:"port_min"`
	PortMax    int    `json:"port_max"`
	// Edge is null when no tpf edge serves the region.
	Edge *Edge `json:"edge"`
	// Tunnel is how routers reach the region's edge.
	Tunnel RegionTunnel `json:"tunnel"`
}

// RegionTunnel is how a region's routers reach its edge: a WireGuard
// tunnel tpf manages, or the operator's own VPN (manual).
type RegionTunnel struct {
	// Mode is managed or manual.
	Mode string `json:"mode"`
	// Prefix, Endpoint and EdgePublicKey are those of a managed tunnel,
	// null otherwise (EdgePublicKey until the edge reported it).
	Prefix        *string `json:"prefix"`
	Endpoint      *string `json:"endpoint"`
	EdgeAddress   string  `json:"edge_address"`
	EdgePublicKey *string `json:"edge_public_key"`
}

// Edge is what the controller knows of a region's edge.
type Edge struct {
	Connected       bool    `json:"connected"`
	LastSeenAt      *string `json:"last_seen_at"`
	Version         string  `json:"version"`
	DesiredRevision int64   `json:"desired_revision"`
	AppliedRevision int64   `json:"applied_revision"`
	LastError       string  `json:"last_error"`
}

// AuditEvent is an element of GET /api/audit-log.
type AuditEvent struct {
	ID        int64  `json:"id"`
	At        string `json:"at"`
	Actor     string `json:"actor"`
	Action    string `json:"action"`
	SubjectID string `json:"subject_id"`
	// Detail is a JSON object with the action's particulars.
	Detail json.RawMessage `json:"detail"`
}

// Token is an API token as the API lists it: never its secret.
type Token struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	CreatedAt string  `json:"created_at"`
	RevokedAt *string `json:"revoked_at"`
}

// NewToken is the body of POST /api/tokens.
type NewToken struct {
	Name string `json:"name"`
}

// CreatedToken is the answer of POST /api/tokens: the token with its
// secret, shown only then.
type CreatedToken struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
	Token     string `json:"token"`
}

// Health is the body of /healthz and /readyz.
type Health struct {
	// Status is ok or unavailable.
	Status string `json:"status"`
	// Message says what is wrong when not ok.
	Message string `json:"message,omitempty"`
}

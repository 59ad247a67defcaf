// Package syncproto defines the messages the controller exchanges with agents
// (and, later, edges) over one websocket: JSON text messages, each an
// Envelope whose Type says which body it carries.
//
// The protocol is level-triggered. The controller sends the full desired set
// with a revision that only grows: on connect, on every change and
// periodically. Applying a set twice changes nothing. The agent answers each
// set it applied with a Report. Unknown fields are ignored in both
// directions, and a message a side cannot parse is reported, not fatal.
// Decode refuses a message with a NUL character (U+0000) in any string:
// PostgreSQL cannot store one, so it is stopped at the boundary.
//
// Time: the edge enforces expiry on its own clock. The agent enforces it on
// the controller's: routers often have no battery-backed clock and run off
// until NTP answers, so the agent tells the controller's time as the newest
// Desired.SentAt plus the time elapsed since it arrived, and reports how far
// its own clock is off in Report.ClockOffsetMillis.
//
// It imports only the standard library.
package syncproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Version is the protocol version this package speaks. A peer sending a
// higher version is refused with an Error message naming both.
const Version = 1

// AgentPath is the controller's websocket endpoint for agents; they
// authenticate with "Authorization: Bearer <agent token>".
const AgentPath = "/api/agent/v1/connect"

// EdgePath is the controller's websocket endpoint for edges; they
// authenticate with "Authorization: Bearer <edge token>" of their region.
const EdgePath = "/api/edge/v1/connect"

// Message types.
const (
	TypeHello   = "hello"   // agent → controller, first message
	TypeDesired = "desired" // controller → agent: the full desired set
	TypeReport  = "report"  // agent → controller: what was applied
	TypeError   = "error"   // either way: a message could not be handled

	TypeListeners   = "listeners"   // controller → edge: the full set of listeners
	TypeConnections = "connections" // edge → controller: connections opened and closed
)

// MaxMessageBytes bounds one message; a desired set of 10,000 forwards fits.
const MaxMessageBytes = 4 << 20

// Envelope is one message on the wire.
type Envelope struct {
	Type    string   `json:"type"`
	Version int      `json:"v"`
	Hello   *Hello   `json:"hello,omitempty"`
	Desired *Desired `json:"desired,omitempty"`
	Report  *Report  `json:"report,omitempty"`
	Error   *Error   `json:"error,omitempty"`

	Listeners   *Listeners   `json:"listeners,omitempty"`
	Connections *Connections `json:"connections,omitempty"`
}

// Hello introduces an agent and what it sees of its router.
type Hello struct {
	AgentVersion string `json:"agent_version"`
	Router       Router `json:"router"`
}

// Router is what the agent reads off its router; empty while unreachable.
type Router struct {
	RouterOSVersion string `json:"routeros_version,omitempty"`
	Board           string `json:"board,omitempty"`
	Identity        string `json:"identity,omitempty"`
}

// Desired is the full set of forwards a router must hold.
type Desired struct {
	Revision int64 `json:"revision"`
	// TunnelAddress is the router's address in the management tunnel: the
	// dst-address of its rules.
	TunnelAddress netip.Addr `json:"tunnel_address"`
	// EdgeAddress is the region's edge address in the tunnel: the
	// src-address of its rules.
	EdgeAddress netip.Addr `json:"edge_address"`
	Forwards    []Forward  `json:"forwards"`
	// Accesses are the transient logins to the router itself that it must
	// hold: RouterOS users and the input rules that let the edge reach
	// their service.
	Accesses []Access `json:"accesses,omitempty"`
	// Tunnel is the router's end of the management tunnel to its region's
	// edge, which the agent keeps on the router; nil means the region has
	// no managed tunnel (the operator brings a VPN), and the agent removes
	// any tunnel objects it made.
	Tunnel *Tunnel `json:"tunnel,omitempty"`
	// SentAt is the controller's clock when it sent the set. The agent
	// decides expiry on the controller's time derived from it (see the
	// package comment); zero leaves the agent's estimate unchanged.
	SentAt time.Time `json:"sent_at"`
}

// Forward is one forward as a router holds it.
type Forward struct {
	ID         string     `json:"id"`
	Port       uint16     `json:"port"`
	DstAddress netip.Addr `json:"dst_address"`
	DstPort    uint16     `json:"dst_port"`
	ExpiresAt  time.Time  `json:"expires_at"`
	Masquerade bool       `json:"masquerade,omitempty"`
}

// Access services: the router service an access logs in to.
const (
	ServiceSSH    = "ssh"
	ServiceWinbox = "winbox"
)

// Access is a transient login to the router itself: a RouterOS user named
// Username in a group tpf keeps (full or read-only), allowed to log in only
// from the edge's tunnel address, and an input rule that accepts the
// edge's connections to Service over the tunnel, until ExpiresAt.
type Access struct {
	ID string `json:"id"`
	// Service is ServiceSSH or ServiceWinbox: the /ip/service whose port
	// the agent reports back in Result.ServicePort.
	Service  string `json:"service"`
	Username string `json:"username"`
	// Password is the user's password. The controller sends it only until
	// the agent has confirmed the user; after that it is empty, and the
	// agent never changes the password of a user it holds. An agent that
	// must create the user again without it refuses the access.
	Password  string    `json:"password,omitempty"`
	ReadOnly  bool      `json:"read_only,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Tunnel is a router's end of the WireGuard management tunnel: one
// tpf-named interface with Address on it (a /32 whose network is the edge's
// address, so the router routes the edge's replies into the tunnel), and
// one peer, the edge, at Endpoint.
type Tunnel struct {
	// Address is the router's address in the tunnel (TunnelAddress).
	Address netip.Addr `json:"address"`
	// EdgeAddress is the edge's address in the tunnel: the peer's
	// allowed-address (/32) and the network of Address.
	EdgeAddress netip.Addr `json:"edge_address"`
	// EdgePublicKey is the edge's WireGuard public key (base64); empty
	// while the edge has not reported one: the agent then builds the
	// interface and its address, and adds the peer later.
	EdgePublicKey string `json:"edge_public_key,omitempty"`
	// Endpoint is where the edge listens, HOST:PORT (UDP).
	Endpoint string `json:"endpoint"`
	// KeepaliveSeconds is the peer's persistent-keepalive, which keeps the
	// router's NAT and firewall state open for the edge's packets.
	KeepaliveSeconds int `json:"keepalive_seconds"`
}

// TunnelState is what a router's or an edge's end of a tunnel reports.
type TunnelState struct {
	// PublicKey is this end's public key (the private key never leaves the
	// machine that generated it).
	PublicKey string `json:"public_key,omitempty"`
	// Peers has one entry per peer: the edge for an agent, the routers for
	// an edge.
	Peers []PeerState `json:"peers,omitempty"`
	// Error says why the tunnel could not be built, empty when it stands.
	Error string `json:"error,omitempty"`
}

// PeerState is one WireGuard peer as its device sees it.
type PeerState struct {
	PublicKey string `json:"public_key"`
	// LastHandshake is zero when the peer never completed one.
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	// Endpoint is where the peer's packets come from (HOST:PORT), empty
	// when unknown.
	Endpoint string `json:"endpoint,omitempty"`
	RxBytes  int64  `json:"rx_bytes"`
	TxBytes  int64  `json:"tx_bytes"`
}

// Listeners is the full set of entry-point listeners an edge must hold.
type Listeners struct {
	Revision  int64      `json:"revision"`
	Region    string     `json:"region"`
	Listeners []Listener `json:"listeners"`
	// Tunnel is the edge's end of its region's management tunnel; nil
	// means the region has none (the operator brings a VPN).
	Tunnel *EdgeTunnel `json:"tunnel,omitempty"`
	SentAt time.Time   `json:"sent_at"`
}

// EdgeTunnel is the edge's end of a region's management tunnel: one
// WireGuard device with Address (the region's edge tunnel address, with the
// region's tunnel prefix length, so every router's address routes into the
// device), listening on ListenPort, with one peer per router that has
// reported its public key.
type EdgeTunnel struct {
	Address    netip.Prefix `json:"address"`
	ListenPort uint16       `json:"listen_port"`
	Peers      []EdgePeer   `json:"peers"`
}

// EdgePeer is one router as the edge's WireGuard device holds it.
type EdgePeer struct {
	PublicKey string `json:"public_key"`
	// Address is the router's tunnel address: the peer's only allowed IP.
	Address netip.Addr `json:"address"`
}

// Listener is one forward as the edge holds it: connections from Allow to
// the edge's Port are relayed to Target, the router's tunnel address and
// the same port, until ExpiresAt.
type Listener struct {
	ID        string         `json:"id"`
	Port      uint16         `json:"port"`
	Allow     netip.Prefix   `json:"allow"`
	Target    netip.AddrPort `json:"target"`
	ExpiresAt time.Time      `json:"expires_at"`
	Limits    Limits         `json:"limits"`
}

// Limits keep a forward to management traffic. Zero means no limit.
type Limits struct {
	// MaxConnections is the most concurrent connections of the forward.
	MaxConnections int `json:"max_connections,omitempty"`
	// IdleSeconds cuts a connection that moved no byte for that long.
	IdleSeconds int `json:"idle_seconds,omitempty"`
	// BytesPerSecond caps each direction of each connection.
	BytesPerSecond int64 `json:"bytes_per_second,omitempty"`
}

// Connections reports connections through an edge: each record is sent when
// the connection opens (End zero) and again when it ends. After
// reconnecting, an edge sends the records of every connection still open.
type Connections struct {
	Records []Connection `json:"records"`
}

// Connection is one relayed connection.
type Connection struct {
	ID        string         `json:"id"`
	ForwardID string         `json:"forward_id"`
	Source    netip.AddrPort `json:"source"`
	Start     time.Time      `json:"start"`
	End       time.Time      `json:"end,omitzero"`
	// BytesUp is client → device, BytesDown device → client.
	BytesUp   int64 `json:"bytes_up"`
	BytesDown int64 `json:"bytes_down"`
	// Reason says why it ended: client closed, target closed, idle, cut
	// (revoked or expired), refused (over a limit), unreachable, error.
	Reason string `json:"reason,omitempty"`
}

// Report says what an agent or edge applied. For an edge, Results are per
// listener (applied: listening) and Present lists the forwards listened for.
type Report struct {
	// Revision is the revision of the set applied; 0 when none was received.
	Revision     int64  `json:"revision"`
	AgentVersion string `json:"agent_version"`
	Router       Router `json:"router"`
	// Results has one entry per forward and per access of the set.
	Results []Result `json:"results"`
	// Present lists the ids of every tpf forward with a rule on the router
	// and of every access with a user or a rule on it, after applying: one
	// missing here is confirmed removed.
	Present []string `json:"present"`
	// Error is a failure of the whole pass (router unreachable, login
	// refused), empty when the pass ran.
	Error string `json:"error,omitempty"`
	// ClockOffsetMillis is the agent's wall clock minus the controller's,
	// in milliseconds (positive: the router's clock is ahead), measured
	// from the SentAt of the sets received; nil while unknown (no set
	// received since the agent started) and from edges. It is good to about
	// a second: SentAt is in whole seconds and ignores transit time.
	ClockOffsetMillis *int64 `json:"clock_offset_ms,omitempty"`
	// Tunnel is the state of the sender's end of the management tunnel;
	// nil when it has none.
	Tunnel *TunnelState `json:"tunnel,omitempty"`
}

// Result states.
const (
	StateApplied = "applied" // the forward's rules are in place
	StateRefused = "refused" // the agent's own checks refused it; Error says why
	StateFailed  = "failed"  // the router refused or failed; retried next pass
	StateExpired = "expired" // its expiry passed (agent: on the controller's clock)
)

// Result is the outcome for one forward.
type Result struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// ServicePort is, for an applied access, the port its service listens
	// on, as the router's /ip/service says: where the edge must relay.
	ServicePort uint16 `json:"service_port,omitempty"`
}

// Error reports a message that could not be handled.
type Error struct {
	Message string `json:"message"`
}

// ErrVersion means the peer speaks a newer protocol.
var ErrVersion = errors.New("unsupported protocol version")

// Encode returns the wire form of a message carrying body, which must be a
// *Hello, *Desired, *Report, *Error, *Listeners or *Connections.
func Encode(body any) ([]byte, error) {
	e := Envelope{Version: Version}
	switch b := body.(type) {
	case *Hello:
		e.Type, e.Hello = TypeHello, b
	case *Desired:
		e.Type, e.Desired = TypeDesired, b
	case *Report:
		e.Type, e.Report = TypeReport, b
	case *Error:
		e.Type, e.Error = TypeError, b
	case *Listeners:
		e.Type, e.Listeners = TypeListeners, b
	case *Connections:
		e.Type, e.Connections = TypeConnections, b
	default:
		return nil, fmt.Errorf("syncproto: cannot encode %T", body)
	}
	return json.Marshal(e)
}

// Decode parses one message. It fails on malformed JSON, a string holding
// a NUL character, a newer version, an unknown type or a type without its
// body.
func Decode(data []byte) (Envelope, error) {
	if hasNUL(data) {
		return Envelope{}, errors.New(`syncproto: a string holds a NUL character (\u0000), which PostgreSQL cannot store`)
	}
	var e Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return Envelope{}, fmt.Errorf("syncproto: %w", err)
	}
	if e.Version > Version || e.Version < 1 {
		return Envelope{}, fmt.Errorf("syncproto: version %d, this side speaks %d: %w", e.Version, Version, ErrVersion)
	}
	var missing bool
	switch e.Type {
	case TypeHello:
		missing = e.Hello == nil
	case TypeDesired:
		missing = e.Desired == nil
	case TypeReport:
		missing = e.Report == nil
	case TypeError:
		missing = e.Error == nil
	case TypeListeners:
		missing = e.Listeners == nil
	case TypeConnections:
		missing = e.Connections == nil
	default:
		return Envelope{}, fmt.Errorf("syncproto: unknown message type %q", e.Type)
	}
	if missing {
		return Envelope{}, fmt.Errorf("syncproto: %s message without its body", e.Type)
	}
	return e, nil
}

// hasNUL reports whether the JSON text data writes a NUL character: the
// escape \u0000 in a string. (A raw NUL byte is not valid JSON, and
// Unmarshal refuses it.) An escape starts at a backslash preceded by an
// even number of backslashes: in "\\u0000" the first two are one escaped
// backslash, followed by plain text.
func hasNUL(data []byte) bool {
	esc := []byte(`\u0000`)
	for i := 0; ; {
		j := bytes.Index(data[i:], esc)
		if j < 0 {
			return false
		}
		j += i
		n := 0 // backslashes right before this one
		for k := j - 1; k >= 0 && data[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return true
		}
		i = j + 1
	}
}

// URL turns a controller's base URL (http, https, ws or wss, with an
// optional path prefix) into the websocket URL of one of its endpoints,
// AgentPath or EdgePath.
func URL(base, endpoint string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("controller URL %q: %w", base, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("controller URL %q: use http(s)://host[:port]", base)
	}
	if u.Host == "" {
		return "", fmt.Errorf("controller URL %q has no host", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + endpoint
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

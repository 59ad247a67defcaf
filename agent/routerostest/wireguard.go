package routerostest

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/tpf-dev/tpf/shared/rosschema"
)

// This file holds /interface/wireguard and /interface/wireguard/peers, with
// the API field names and behaviour of ROUTEROS-WIREGUARD.md §1–2.
// Interfaces and peers refer to each other, and /ip/address to both, by
// name; RouterOS keeps internal references, so a rename carries over to
// the rows that refer to the interface (done here by rewriting them).

// otherInterfaces are the router's interfaces besides the WireGuard ones:
// /ip/address accepts them, and no new interface may take their names.
// No menu lists them.
var otherInterfaces = []string{"ether1", "bridge"}

// wgOrder is the order /interface/wireguard/print lists properties in.
var wgOrder = []string{"name", "mtu", "listen-port", "private-key", "public-key", "running", "disabled", "comment"}

// wgParsers are the properties add and set accept. public-key and running
// are read-only; vrf (7.21+) is not modelled, nor is copy-from, so both
// are refused as unknown parameters.
var wgParsers = map[string]parser{
	"name":        nil,
	"mtu":         intRange(0, 65536),
	"listen-port": intRange(1, 65535),
	"private-key": keyProp,
	"comment":     nil,
	"disabled":    boolProp,
}

// wgDefaults are what every interface prints when never set: MTU 1420 and
// port 13231 (MT-WG). name, private-key and public-key are filled on add.
func wgDefaults() map[string]string {
	return map[string]string{"mtu": "1420", "listen-port": "13231", "disabled": "false", "running": "true"}
}

// peerOrder is the order /interface/wireguard/peers/print lists
// properties in; a version prints only the fields it has.
var peerOrder = []string{
	"interface", "name", "public-key", "preshared-key", "endpoint-address", "endpoint-port",
	"allowed-address", "persistent-keepalive", "responder", "is-responder",
	"current-endpoint-address", "current-endpoint-port", "last-handshake", "rx", "tx",
	"dynamic", "disabled", "comment",
}

// peerFields says which version-dependent peer fields the mimicked version
// has: name since 7.15, is-responder in 7.15–7.16 which 7.17 renamed to
// responder, and allowed-address required since 7.12.2
// (ROUTEROS-WIREGUARD.md §2, §8.6). With a command tree they follow the
// tree, so what can be written is what prints.
type peerFields struct {
	name             bool
	responder        string // "responder", "is-responder" or "" for none
	requireAllowedIP bool
}

func peerFieldsFor(tree *rosschema.Tree, v version) peerFields {
	f := peerFields{requireAllowedIP: v.atLeast(7, 12, 2)}
	if tree == nil {
		return f // 6.x (no WireGuard) or 7.x before 7.12.2: neither field yet
	}
	add, _ := tree.Command("/interface/wireguard/peers/add")
	f.name = add.Has("name")
	switch {
	case add.Has("responder"):
		f.responder = "responder"
	case add.Has("is-responder"):
		f.responder = "is-responder"
	}
	return f
}

// peerParsers are the peer properties add and set accept in this version.
// The client-* fields (7.12+, only used to export a client config), the
// peer's own private-key (auto/none) and copy-from are not modelled and
// are refused as unknown parameters.
func (s *Server) peerParsers() map[string]parser {
	m := map[string]parser{
		"interface":            nil,
		"public-key":           keyProp,
		"preshared-key":        keyProp,
		"endpoint-address":     nil, // an IP address or a host name
		"endpoint-port":        intRange(0, 65535),
		"allowed-address":      prefixListProp,
		"persistent-keepalive": durationProp(65535 * time.Second), // 0s..18h12m15s, the dumps' hint
		"comment":              nil,
		"disabled":             boolProp,
	}
	if s.peers.name {
		m["name"] = nil
	}
	if s.peers.responder != "" {
		m[s.peers.responder] = boolProp
	}
	return m
}

// peerDefaults are what every peer prints when never set. RouterOS prints
// endpoint-port=0 for an unset port; that it also prints keepalive and
// responder when unset follows the terraform provider, which treats them
// as always present [inference]. endpoint-address is left out until set
// [inference].
func (s *Server) peerDefaults() map[string]string {
	d := map[string]string{"endpoint-port": "0", "persistent-keepalive": "0s", "dynamic": "false", "disabled": "false"}
	if s.peers.responder != "" {
		d[s.peers.responder] = "false"
	}
	return d
}

// PeerStatus is what the WireGuard device reports about one peer, shown by
// /interface/wireguard/peers/print as read-only fields. The zero value is
// a peer that never shook hands.
type PeerStatus struct {
	// LastHandshake is when the last handshake completed; zero means
	// never, and print then shows no last-handshake at all (as RouterOS
	// does). Otherwise print shows the time since, as a RouterOS duration
	// such as "1m6s".
	LastHandshake time.Time
	// Rx and Tx are the bytes received from and sent to the peer; print
	// shows them as plain integers.
	Rx, Tx uint64
	// CurrentEndpoint is where the last authenticated packet came from;
	// the zero value shows no current-endpoint-address or -port.
	CurrentEndpoint netip.AddrPort
}

// newWireGuardKey returns a fresh Curve25519 private key, clamped the way
// `wg genkey` clamps it, and its public key, both in base64.
func newWireGuardKey() (private, public string) {
	b := make([]byte, 32)
	rand.Read(b)
	b[0] &= 248
	b[31] = b[31]&127 | 64
	pub, _ := wireGuardPublicKey(base64.StdEncoding.EncodeToString(b))
	return base64.StdEncoding.EncodeToString(b), pub
}

// wireGuardPublicKey derives the public key of a base64 private key.
// X25519 clamps the scalar itself, so unclamped keys work too.
func wireGuardPublicKey(private string) (string, bool) {
	b, ok := decodeKey(private)
	if !ok {
		return "", false
	}
	k, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return "", false
	}
	return base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()), true
}

// wireGuardTables is what OnWireGuardChange receives: copies of the three
// tables a WireGuard device is built from.
type wireGuardTables struct {
	interfaces, peers, addresses []map[string]string
}

// wireGuardChangedLocked hands the WireGuard interfaces, peers and
// addresses to OnWireGuardChange (through wgEvents, so that calls keep
// their order and never run under mu). After Close nothing is sent.
func (s *Server) wireGuardChangedLocked() {
	if s.wgEvents == nil || s.closed {
		return
	}
	s.wgEvents <- wireGuardTables{
		interfaces: s.wireguard.snapshot(),
		peers:      s.wgPeers.snapshot(),
		addresses:  s.addresses.snapshot(),
	}
}

// --- /interface/wireguard ---

func (s *Server) wgPrintLocked(req *request) []sentence {
	return s.printLocked(req, s.wireguard, s.wireguard.rows)
}

// wgAddLocked creates an interface, named wireguardN and given a new key
// pair unless the request names them, and answers its id in =ret=.
func (s *Server) wgAddLocked(req *request) []sentence {
	if name, bad := req.unknownAttr(slices.Collect(maps.Keys(wgParsers))...); bad {
		return unknownParameter(name)
	}
	row := wgDefaults()
	if r := applyProps(row, req, wgParsers, wgDefaults()); r != nil {
		return r
	}
	s.fillWireGuardLocked(row)
	if r := s.checkInterfaceNamesLocked([]map[string]string{row}, nil); r != nil {
		return r
	}
	id := s.wireguard.insert(row, -1)
	s.interfacesChangedLocked()
	s.writes++
	return []sentence{done("=ret=" + id)}
}

// wgSetLocked changes the interfaces named by =.id= (ids or names), all
// of them or none. A new name carries over to peers and addresses.
func (s *Server) wgSetLocked(req *request) []sentence {
	allowed := append(slices.Collect(maps.Keys(wgParsers)), ".id", "numbers")
	if name, bad := req.unknownAttr(allowed...); bad {
		return unknownParameter(name)
	}
	idx, ok := s.wireguard.lookup(targetIDs(req))
	if !ok {
		return noSuchItem()
	}
	updated := make([]map[string]string, len(idx))
	for k, i := range idx {
		updated[k] = maps.Clone(s.wireguard.rows[i])
		if r := applyProps(updated[k], req, wgParsers, wgDefaults()); r != nil {
			return r
		}
		if updated[k]["name"] == "" {
			return trapDone(1, "failure: name not specified")
		}
		s.fillWireGuardLocked(updated[k])
	}
	if r := s.checkInterfaceNamesLocked(updated, idx); r != nil {
		return r
	}
	for k, i := range idx {
		s.replaceWireGuardLocked(i, updated[k])
	}
	s.writes++
	return []sentence{done()}
}

// wgRemoveLocked removes interfaces. Their peers and addresses stay, now
// referring to the removed interface's id, and the addresses turn invalid:
// that is how RouterOS shows configuration left pointing at a deleted
// interface (e.g. "*F" in the interface column) [inference: neither
// ROUTEROS-WIREGUARD.md nor MikroTik's manual says what happens to the
// peers; an agent must remove its peer itself either way].
func (s *Server) wgRemoveLocked(req *request) []sentence {
	if name, bad := req.unknownAttr(".id", "numbers"); bad {
		return unknownParameter(name)
	}
	idx, ok := s.wireguard.lookup(targetIDs(req))
	if !ok {
		return noSuchItem()
	}
	s.removeWireGuardLocked(idx)
	s.writes++
	return []sentence{done()}
}

// fillWireGuardLocked completes an interface row: a name if it has none,
// a key pair if it has no private key, and the derived public-key and
// running.
func (s *Server) fillWireGuardLocked(row map[string]string) {
	if row["name"] == "" {
		row["name"] = s.freeNameLocked(s.wireguard, "wireguard")
	}
	if _, ok := row["private-key"]; !ok {
		row["private-key"], row["public-key"] = newWireGuardKey()
	}
	if pub, ok := wireGuardPublicKey(row["private-key"]); ok {
		row["public-key"] = pub
	} else {
		delete(row, "public-key") // a hook may store any text
	}
	// A WireGuard interface runs whenever it is enabled: it has no
	// carrier to lose [inference; MT-WG only lists running as read-only].
	row["running"] = strconv.FormatBool(row["disabled"] != "true")
}

// freeNameLocked returns prefix1, prefix2, … : the first one no row of t
// uses, as RouterOS names new interfaces (wireguard1) and, since 7.15,
// peers (peer1) [inference from exports].
func (s *Server) freeNameLocked(t *table, prefix string) string {
	for n := 1; ; n++ {
		name := prefix + strconv.Itoa(n)
		if !slices.ContainsFunc(t.rows, func(r map[string]string) bool { return r["name"] == name }) {
			return name
		}
	}
}

// checkInterfaceNamesLocked refuses rows (about to replace the rows at
// positions idx, or to be added when idx is nil) whose names clash with
// each other, another WireGuard interface or one of otherInterfaces.
func (s *Server) checkInterfaceNamesLocked(rows []map[string]string, idx []int) []sentence {
	taken := slices.Clone(otherInterfaces)
	for i, r := range s.wireguard.rows {
		if !slices.Contains(idx, i) {
			taken = append(taken, r["name"])
		}
	}
	for _, r := range rows {
		if slices.Contains(taken, r["name"]) {
			return trapDone(-1, "failure: already have interface with such name")
		}
		taken = append(taken, r["name"])
	}
	return nil
}

// replaceWireGuardLocked stores row at position i, carrying a rename over
// to the peers and addresses that referred to the old name.
func (s *Server) replaceWireGuardLocked(i int, row map[string]string) {
	old, name := s.wireguard.rows[i]["name"], row["name"]
	s.wireguard.rows[i] = row
	if old != name {
		for _, p := range s.wgPeers.rows {
			if p["interface"] == old {
				p["interface"] = name
			}
		}
		for _, a := range s.addresses.rows {
			if a["interface"] == old {
				a["interface"] = name
			}
		}
	}
	s.interfacesChangedLocked()
}

// removeWireGuardLocked removes the interfaces at positions idx, leaving
// their peers and addresses pointing at the removed id (see
// wgRemoveLocked).
func (s *Server) removeWireGuardLocked(idx []int) {
	for _, i := range idx {
		name, id := s.wireguard.rows[i]["name"], s.wireguard.rows[i][".id"]
		for _, p := range s.wgPeers.rows {
			if p["interface"] == name {
				p["interface"] = id
			}
		}
		for _, a := range s.addresses.rows {
			if a["interface"] == name {
				a["interface"] = id
			}
		}
	}
	s.wireguard.removeAt(idx)
	s.interfacesChangedLocked()
}

// interfacesChangedLocked recomputes what depends on which interfaces
// exist: each address's actual-interface and invalid flag.
func (s *Server) interfacesChangedLocked() {
	for _, a := range s.addresses.rows {
		deriveAddress(a, s.interfaceExistsLocked(a["interface"]), false)
	}
}

// interfaceExistsLocked reports whether name is an interface of the
// router: a WireGuard one or one of otherInterfaces.
func (s *Server) interfaceExistsLocked(name string) bool {
	return slices.Contains(otherInterfaces, name) || s.isWireGuardLocked(name)
}

func (s *Server) isWireGuardLocked(name string) bool {
	return name != "" && slices.ContainsFunc(s.wireguard.rows, func(r map[string]string) bool { return r["name"] == name })
}

// --- /interface/wireguard/peers ---

// peerPrintLocked prints the peers with their live status.
func (s *Server) peerPrintLocked(req *request) []sentence {
	return s.printLocked(req, s.wgPeers, s.peerViewsLocked())
}

// peerViewsLocked returns the peers as print shows them: the stored row
// plus the read-only fields of their PeerStatus.
func (s *Server) peerViewsLocked() []map[string]string {
	out := make([]map[string]string, len(s.wgPeers.rows))
	for i, row := range s.wgPeers.rows {
		v := maps.Clone(row)
		st := s.peerStatus[row[".id"]]
		v["rx"], v["tx"] = strconv.FormatUint(st.Rx, 10), strconv.FormatUint(st.Tx, 10)
		if !st.LastHandshake.IsZero() {
			v["last-handshake"] = formatUptime(max(time.Since(st.LastHandshake), 0))
		}
		if st.CurrentEndpoint.IsValid() {
			v["current-endpoint-address"] = st.CurrentEndpoint.Addr().Unmap().String()
			v["current-endpoint-port"] = strconv.Itoa(int(st.CurrentEndpoint.Port()))
		}
		out[i] = v
	}
	return out
}

// peerAddLocked adds a peer at the end, or before place-before, and
// answers its id in =ret=.
func (s *Server) peerAddLocked(req *request) []sentence {
	parsers := s.peerParsers()
	if name, bad := req.unknownAttr(append(slices.Collect(maps.Keys(parsers)), "place-before")...); bad {
		return unknownParameter(name)
	}
	row := s.peerDefaults()
	if r := applyProps(row, req, parsers, s.peerDefaults()); r != nil {
		return r
	}
	if r := s.checkPeerLocked(row, -1); r != nil {
		return r
	}
	before := -1
	if id, ok := req.attrs["place-before"]; ok {
		if before = s.wgPeers.index(id); before < 0 {
			return noSuchItem()
		}
	}
	if s.peers.name && row["name"] == "" {
		row["name"] = s.freeNameLocked(s.wgPeers, "peer")
	}
	id := s.wgPeers.insert(row, before)
	s.writes++
	return []sentence{done("=ret=" + id)}
}

// peerSetLocked changes the peers named by =.id=, all of them or none.
func (s *Server) peerSetLocked(req *request) []sentence {
	parsers := s.peerParsers()
	if name, bad := req.unknownAttr(append(slices.Collect(maps.Keys(parsers)), ".id", "numbers")...); bad {
		return unknownParameter(name)
	}
	idx, ok := s.wgPeers.lookup(targetIDs(req))
	if !ok {
		return noSuchItem()
	}
	updated := make([]map[string]string, len(idx))
	for k, i := range idx {
		updated[k] = maps.Clone(s.wgPeers.rows[i])
		if r := applyProps(updated[k], req, parsers, s.peerDefaults()); r != nil {
			return r
		}
		if r := s.checkPeerLocked(updated[k], i); r != nil {
			return r
		}
		for _, other := range updated[:k] { // one key given to several peers
			if other["interface"] == updated[k]["interface"] && other["public-key"] == updated[k]["public-key"] {
				return trapDone(-1, "failure: already have peer with such public key")
			}
		}
	}
	for k, i := range idx {
		s.wgPeers.rows[i] = updated[k]
	}
	s.writes++
	return []sentence{done()}
}

func (s *Server) peerRemoveLocked(req *request) []sentence {
	ids := s.wgPeers.snapshot()
	r := s.removeLocked(req, s.wgPeers)
	s.forgetRemovedPeersLocked(ids)
	return r
}

// forgetRemovedPeersLocked drops the status of peers in before that are
// gone.
func (s *Server) forgetRemovedPeersLocked(before []map[string]string) {
	for _, p := range before {
		if s.wgPeers.index(p[".id"]) < 0 {
			delete(s.peerStatus, p[".id"])
		}
	}
}

// checkPeerLocked checks a complete peer about to be stored at position
// self (-1 for a new one). Required fields and the trap texts for missing
// ones follow the emulator's NAT pattern (ROUTEROS.md §7 leaves RouterOS's
// wording open); a second peer with the same public key on one interface
// is refused, as one WireGuard device cannot hold two [inference].
// Overlapping allowed-address ranges are not refused: MikroTik's manual
// says they must not overlap but not that RouterOS checks.
func (s *Server) checkPeerLocked(row map[string]string, self int) []sentence {
	for _, p := range []string{"interface", "public-key"} {
		if row[p] == "" {
			return trapDone(1, fmt.Sprintf("failure: %s not specified", p))
		}
	}
	if s.peers.requireAllowedIP && row["allowed-address"] == "" {
		return trapDone(1, "failure: allowed-address not specified")
	}
	if !s.isWireGuardLocked(row["interface"]) {
		// An orphan keeps its "*ID" until set to a real interface.
		if self < 0 || s.wgPeers.rows[self]["interface"] != row["interface"] {
			return trapDone(1, "input does not match any value of interface")
		}
	}
	for i, p := range s.wgPeers.rows {
		if i != self && p["interface"] == row["interface"] && p["public-key"] == row["public-key"] {
			return trapDone(-1, "failure: already have peer with such public key")
		}
	}
	return nil
}

package routerostest

import (
	"maps"
	"slices"
	"time"
)

// This file holds the test hooks: ways for a test to look at the router,
// change it behind the client's back, and make it misbehave.

// Fault describes misbehaviour to inject; the zero Fault injects nothing.
// Counters count down as commands consume them. /login is governed by
// RefuseLogin only, and /quit and pre-login commands are never faulted.
type Fault struct {
	// FailNext makes the next FailNext commands answer
	// !trap =message=<FailMessage> and !done without running.
	FailNext int
	// FailMessage is the trap text; empty means "failure: injected fault".
	FailMessage string
	// FailCommand, when set, makes FailNext count only commands with this
	// command word (e.g. "/user/add"); others run as usual.
	FailCommand string
	// DropNext makes the next DropNext commands run (their changes stay)
	// and then closes the connection halfway through the reply, so the
	// client cannot know whether the command took effect.
	DropNext int
	// Delay holds every reply back this long (a slow or stalled router).
	Delay time.Duration
	// RefuseLogin makes every /login fail as if the password were wrong.
	RefuseLogin bool
	// SplitWrites sends replies one byte per write, exercising readers
	// that assume a length prefix or word arrives in one read.
	SplitWrites bool
}

func (f Fault) failMessage() string {
	if f.FailMessage == "" {
		return "failure: injected fault"
	}
	return f.FailMessage
}

// SetFault replaces the injected fault; SetFault(Fault{}) clears it.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// DropConnections closes every open API connection at once, as a router
// reboot or a network cut would. The server keeps listening.
func (s *Server) DropConnections() {
	s.mu.Lock()
	sessions := s.sessionsLocked()
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.kill()
	}
}

// NAT returns copies of the /ip/firewall/nat rows in list order, each
// with its ".id" and exactly the properties print would show.
func (s *Server) NAT() []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nat.snapshot()
}

// AddNAT appends a rule as someone at the console would: props are copied
// over the defaults without validation (so a test may build rows the API
// refuses, e.g. dynamic=true), ".id" in props is ignored, and the new id
// is returned.
func (s *Server) AddNAT(props map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	row := natDefaults()
	maps.Copy(row, props)
	id := s.nat.insert(row, -1)
	s.natChangedLocked()
	return id
}

// RemoveNAT deletes the rule with the given id behind the client's back
// and reports whether it existed.
func (s *Server) RemoveNAT(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.nat.remove(id)
	s.natChangedLocked()
	return ok
}

// AddConnection adds a connection-tracking entry, e.g.
// {"protocol": "tcp", "src-address": "10.99.0.2:50000",
// "dst-address": "10.99.0.1:10022", "reply-src-address": "192.168.88.43:22",
// "reply-dst-address": "10.99.0.2:50000", "tcp-state": "established",
// "dstnat": "true"}, over defaults for counters and flags, and returns its id.
func (s *Server) AddConnection(props map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	row := conntrackDefaults()
	maps.Copy(row, props)
	return s.conntrack.insert(row, -1)
}

// Connections returns copies of the /ip/firewall/connection rows in order.
func (s *Server) Connections() []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conntrack.snapshot()
}

// Commands returns every command word received so far, from all
// connections in arrival order, /login included (arguments are not kept,
// so passwords never are).
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.commands)
}

// Writes counts the API commands that changed state (add, set, remove,
// move), so a test can assert that a dry run wrote nothing. Hooks do not
// count.
func (s *Server) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// The menus that Rows, AddRow, SetRow and RemoveRow work on.
const (
	MenuWireGuard      = "/interface/wireguard"
	MenuWireGuardPeers = "/interface/wireguard/peers"
	MenuIPAddress      = "/ip/address"
	MenuFilter         = "/ip/firewall/filter"
	MenuIPService      = "/ip/service"
	MenuUser           = "/user"
	MenuUserGroup      = "/user/group"
	MenuUserActive     = "/user/active"
)

// tableLocked returns the table of one of the Menu… menus, and panics
// for any other: a test asking for a menu the emulator does not have is
// a bug in the test.
func (s *Server) tableLocked(menu string) *table {
	switch menu {
	case MenuWireGuard:
		return s.wireguard
	case MenuWireGuardPeers:
		return s.wgPeers
	case MenuIPAddress:
		return s.addresses
	case MenuFilter:
		return s.filter
	case MenuIPService:
		return s.services
	case MenuUser:
		return s.users
	case MenuUserGroup:
		return s.groups
	case MenuUserActive:
		return s.active
	}
	panic("routerostest: no hooks for menu " + menu)
}

// Rows returns copies of a menu's rows (one of the Menu… menus) in list
// order, each with its ".id" and exactly the properties print would show,
// read-only ones included (a peer's last-handshake, rx, tx from
// SetPeerStatus). A user's password is never among them.
func (s *Server) Rows(menu string) []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tableLocked(menu)
	if t == s.wgPeers {
		return s.peerViewsLocked()
	}
	return t.snapshot()
}

// AddRow adds a row to a menu as someone at the console would: props are
// copied over the menu's defaults without validation (so a test may build
// rows the API refuses, e.g. dynamic=true, or a peer on a missing
// interface), ".id" in props is ignored, and the new id is returned. What
// RouterOS derives is derived unless props sets it: an interface's name
// (wireguard1), key pair, public-key and running; a peer's name (7.15+);
// an address's network, actual-interface and invalid. A user's "password"
// is kept apart, write-only, as the API keeps it. An active row added
// this way has no session behind it.
func (s *Server) AddRow(menu string, props map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tableLocked(menu)
	props = withoutID(props)
	password, hasPassword := props["password"]
	var row map[string]string
	switch t {
	case s.wireguard:
		row = withDefaults(wgDefaults(), props)
		s.fillWireGuardLocked(row)
		maps.Copy(row, props) // a test's public-key or running wins
	case s.wgPeers:
		row = withDefaults(s.peerDefaults(), props)
		if s.peers.name && row["name"] == "" {
			row["name"] = s.freeNameLocked(s.wgPeers, "peer")
		}
	case s.addresses:
		row = withDefaults(addressDefaults(), props)
		deriveAddress(row, s.interfaceExistsLocked(row["interface"]), false)
		maps.Copy(row, props)
	case s.filter:
		row = withDefaults(filterDefaults(), props)
	case s.users:
		delete(props, "password")
		row = withDefaults(userDefaults(), props)
	case s.groups:
		row = withDefaults(groupDefaults(), props)
	default:
		row = props
	}
	id := t.insert(row, -1)
	if t == s.users && hasPassword {
		s.passwords[id] = password
	}
	if t == s.wireguard {
		s.interfacesChangedLocked()
	}
	s.tableChangedLocked(t)
	return id
}

// SetRow changes the row with the given id (or, for interfaces, users,
// groups and services, name) behind the client's back and reports whether
// it existed: props are copied over it without validation, an empty value
// removes a property, and derived properties are derived again from the
// result (a new private-key gives a new public-key, a new address a new
// network, a renamed interface carries its peers and addresses along),
// unless props sets them. A user's "password" is set apart; a changed
// service moves the SSH stand-in.
func (s *Server) SetRow(menu, id string, props map[string]string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tableLocked(menu)
	i := t.index(id)
	if i < 0 {
		return false
	}
	props = withoutID(props)
	if t == s.users {
		if pw, ok := props["password"]; ok {
			s.passwords[t.rows[i][".id"]] = pw
			delete(props, "password")
		}
	}
	row := maps.Clone(t.rows[i])
	for k, v := range props {
		if v == "" {
			delete(row, k)
		} else {
			row[k] = v
		}
	}
	switch t {
	case s.wireguard:
		s.fillWireGuardLocked(row)
		maps.Copy(row, withoutEmpty(props))
		s.replaceWireGuardLocked(i, row)
	case s.addresses:
		_, newAddress := props["address"]
		_, explicit := props["network"]
		deriveAddress(row, s.interfaceExistsLocked(row["interface"]), newAddress && !explicit)
		maps.Copy(row, withoutEmpty(props))
		t.rows[i] = row
	default:
		t.rows[i] = row
	}
	s.tableChangedLocked(t)
	return true
}

// RemoveRow deletes the row with the given id (or, where SetRow takes
// one, name) behind the client's back, with what the API's remove does
// besides (an interface's peers and addresses are left pointing at its
// id; removing an active row ends its session; a user's sessions go on),
// and reports whether it existed.
func (s *Server) RemoveRow(menu, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tableLocked(menu)
	i := t.index(id)
	if i < 0 {
		return false
	}
	switch t {
	case s.wireguard:
		s.removeWireGuardLocked([]int{i})
	case s.wgPeers:
		delete(s.peerStatus, t.rows[i][".id"])
		t.removeAt([]int{i})
	case s.active:
		s.endActiveLocked(t.rows[i][".id"])
	case s.users:
		delete(s.passwords, t.rows[i][".id"])
		t.removeAt([]int{i})
	default:
		t.removeAt([]int{i})
	}
	s.tableChangedLocked(t)
	return true
}

// tableChangedLocked runs what follows a hook's change to t: the
// WireGuard hook for its tables, the SSH stand-in for /ip/service.
func (s *Server) tableChangedLocked(t *table) {
	switch t {
	case s.wireguard, s.wgPeers, s.addresses:
		s.wireGuardChangedLocked()
	case s.services:
		s.servicesChangedLocked()
	}
}

// SetPeerStatus sets what the WireGuard device reports about the peer with
// the given id (see PeerStatus), and reports whether the peer exists.
func (s *Server) SetPeerStatus(id string, st PeerStatus) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.wgPeers.index(id)
	if i < 0 {
		return false
	}
	s.peerStatus[s.wgPeers.rows[i][".id"]] = st
	return true
}

// withoutID returns props without ".id".
func withoutID(props map[string]string) map[string]string {
	out := maps.Clone(props)
	delete(out, ".id")
	return out
}

// withoutEmpty returns props without ".id" and empty values.
func withoutEmpty(props map[string]string) map[string]string {
	out := withoutID(props)
	maps.DeleteFunc(out, func(_, v string) bool { return v == "" })
	return out
}

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

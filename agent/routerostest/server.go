package routerostest

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/tpf-dev/tpf/shared/rosschema"
)

// Server is a RouterOS API emulator. Create it with New, then Start it on
// an address or Serve it on a listener; Close stops everything. It is safe
// for concurrent use by any number of connections and test hooks.
type Server struct {
	cfg        Config
	log        *slog.Logger
	started    time.Time
	emitsEmpty bool // 7.18+: !empty for prints without rows
	md5Works   bool // the challenge response can log in (legacy, or before 6.45.1)
	routes     map[string]handler
	// tree is the command tree of the mimicked version, or nil when there
	// is none (6.x, 7.x before 7.12.2): then nothing is refused for being
	// missing from the version, only for being unknown to the emulator.
	tree      *rosschema.Tree
	v         version
	peers     peerFields    // the version's /interface/wireguard/peers fields
	svcFields serviceFields // the version's /ip/service fields
	policies  []string      // the version's user group policies, in print order

	wg sync.WaitGroup // accept loops started by Start, and connections

	mu         sync.Mutex
	closed     bool
	listeners  []net.Listener
	sessions   map[*session]struct{}
	nat        *table
	conntrack  *table
	wireguard  *table                // /interface/wireguard
	wgPeers    *table                // /interface/wireguard/peers
	addresses  *table                // /ip/address
	peerStatus map[string]PeerStatus // by peer .id; what the WireGuard device reports
	filter     *table                // /ip/firewall/filter
	services   *table                // /ip/service
	users      *table                // /user; the passwords are apart
	groups     *table                // /user/group
	active     *table                // /user/active

	passwords     map[string]string // by /user .id: write-only, never printed
	builtinGroups map[string]bool   // .id of read, write and full
	sessionEnds   map[string]func() // by /user/active .id: ends that session
	ssh           *sshService       // the SSH stand-in, once StartSSH ran
	identity      string
	fault         Fault
	commands      []string
	writes        int

	natListeners map[string]natListener // user-space NAT, by listen address
	relays       map[string]*relayed    // user-space NAT connections, by conntrack id
	natEvents    chan []map[string]string
	wgEvents     chan wireGuardTables // to OnWireGuardChange, in order
}

// handler runs one command with Server.mu held and returns its replies.
type handler func(req *request) []sentence

// New returns a Server for cfg (see Config for what zero fields mean).
// It does not listen yet.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	v := parseVersion(cfg.Version)
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		started:    time.Now(),
		emitsEmpty: v.atLeast(7, 18, 0),
		md5Works:   cfg.LegacyLogin || !v.atLeast(6, 45, 1),
		sessions:   map[*session]struct{}{},
		tree:       rosschema.For(cfg.Version),
		nat:        newTable(natOrder...),
		conntrack:  newTable(conntrackOrder...),
		wireguard:  &table{order: wgOrder, named: true},
		wgPeers:    newTable(peerOrder...),
		addresses:  newTable(addressOrder...),
		peerStatus: map[string]PeerStatus{},
		filter:     newTable(filterOrder...),
		identity:   cfg.Identity,
		v:          v,
		policies:   policiesFor(v),

		passwords:     map[string]string{},
		builtinGroups: map[string]bool{},
		sessionEnds:   map[string]func(){},

		natListeners: map[string]natListener{},
		relays:       map[string]*relayed{},
	}
	s.peers = peerFieldsFor(s.tree, v)
	s.svcFields = serviceFieldsFor(s.tree)
	s.newServices()
	s.newUserTables(cfg.Users)
	s.routes = s.routeTable(v)
	if cfg.OnNATChange != nil {
		s.natEvents = make(chan []map[string]string, 1024)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for rules := range s.natEvents {
				cfg.OnNATChange(rules)
			}
		}()
	}
	if cfg.OnWireGuardChange != nil {
		s.wgEvents = make(chan wireGuardTables, 1024)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for t := range s.wgEvents {
				cfg.OnWireGuardChange(t.interfaces, t.peers, t.addresses)
			}
		}()
	}
	return s
}

// Start listens on addr (use "127.0.0.1:0" for a free port) and serves in
// the background until Close.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("routerostest: listen on %s: %w", addr, err)
	}
	if err := s.addListener(ln); err != nil {
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.acceptLoop(ln); err != nil {
			s.log.Error("accept failed; no longer listening", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return nil
}

// Serve accepts connections on l until l fails or Close is called, and
// blocks meanwhile. It returns nil after Close. The Server owns l.
func (s *Server) Serve(l net.Listener) error {
	if err := s.addListener(l); err != nil {
		return err
	}
	return s.acceptLoop(l)
}

func (s *Server) addListener(l net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		l.Close()
		return errors.New("routerostest: server is closed")
	}
	s.listeners = append(s.listeners, l)
	return nil
}

func (s *Server) acceptLoop(l net.Listener) error {
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			return fmt.Errorf("routerostest: accept: %w", err)
		}
		sess := newSession(nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		// Add under mu, before Close can set closed and Wait.
		s.wg.Add(1)
		s.sessions[sess] = struct{}{}
		s.mu.Unlock()
		go s.serveSession(sess)
	}
}

// Addr returns the address of the first listener, or "" before Start or
// Serve. Dial it to reach the emulator.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) == 0 {
		return ""
	}
	return s.listeners[0].Addr().String()
}

// Close stops listening, closes every connection and waits for their
// goroutines. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	listeners := s.listeners
	sessions := s.sessionsLocked()
	for _, l := range s.natListeners {
		l.ln.Close()
	}
	for _, r := range s.relays {
		r.cut()
	}
	var sshConns []net.Conn
	if s.ssh != nil {
		if s.ssh.ln != nil {
			s.ssh.ln.Close()
		}
		for nc := range s.ssh.conns {
			sshConns = append(sshConns, nc)
		}
	}
	if s.natEvents != nil {
		close(s.natEvents)
	}
	if s.wgEvents != nil {
		close(s.wgEvents)
	}
	s.mu.Unlock()

	var errs []error
	for _, l := range listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("routerostest: close listener %s: %w", l.Addr(), err))
		}
	}
	for _, sess := range sessions {
		sess.kill()
	}
	for _, nc := range sshConns {
		nc.Close()
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

func (s *Server) sessionsLocked() []*session {
	out := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		out = append(out, sess)
	}
	return out
}

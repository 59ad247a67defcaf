package routerostest

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
)

// UserNAT makes the emulated router carry TCP traffic the way its dst-nat
// rules say, in user space, so that a whole forward can be tried on one
// machine without privileges. For every enabled rule with chain=dstnat,
// action=dst-nat, protocol=tcp, one dst-address and one dst-port, it listens
// on dst-address:dst-port, admits sources matching src-address, and relays
// to to-addresses:to-ports. Each relayed connection appears in
// /ip/firewall/connection; removing the entry cuts the connection, as
// flushing conntrack does on a real router.
type UserNAT struct {
	// Map turns a rule's destination into the address to dial, e.g. to
	// stand a loopback service in for a LAN device; nil dials it as is.
	Map func(netip.AddrPort) netip.AddrPort
}

// natListener is one user-space dst-nat listener.
type natListener struct {
	ln     net.Listener
	src    string // the rule's src-address, "" for any
	target netip.AddrPort
}

// relayed is one connection the user-space NAT carries.
type relayed struct {
	client, target net.Conn
	once           sync.Once
}

func (r *relayed) cut() {
	r.once.Do(func() { r.client.Close(); r.target.Close() })
}

// natChangedLocked brings the data plane in line with the NAT table: the
// user-space listeners and the OnNATChange hook.
func (s *Server) natChangedLocked() {
	// After Close the hook's channel is closed: changes made then (a hook,
	// a command still in flight) reach nobody.
	if s.cfg.OnNATChange != nil && !s.closed {
		s.natEvents <- s.nat.snapshot()
	}
	if s.cfg.UserNAT == nil || s.closed {
		return
	}
	want := map[string]natListener{}
	for _, r := range s.nat.rows {
		addr, l, ok := userNATRule(r)
		if ok {
			if m := s.cfg.UserNAT.Map; m != nil {
				l.target = m(l.target)
			}
			want[addr] = l
		}
	}
	for addr, l := range s.natListeners {
		if w, ok := want[addr]; !ok || w.src != l.src || w.target != l.target {
			l.ln.Close()
			delete(s.natListeners, addr)
		}
	}
	for addr, w := range want {
		if _, ok := s.natListeners[addr]; ok {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.log.Warn("user-space NAT cannot listen", "addr", addr, "err", err)
			continue
		}
		w.ln = ln
		s.natListeners[addr] = w
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.natAccept(w)
		}()
	}
}

// userNATRule reads a rule the user-space NAT can carry.
func userNATRule(r map[string]string) (string, natListener, bool) {
	if r["chain"] != "dstnat" || r["action"] != "dst-nat" || r["protocol"] != "tcp" || r["disabled"] == "true" {
		return "", natListener{}, false
	}
	dst, err1 := netip.ParseAddr(r["dst-address"])
	port, err2 := strconv.ParseUint(r["dst-port"], 10, 16)
	to, err3 := netip.ParseAddr(r["to-addresses"])
	toPort, err4 := strconv.ParseUint(r["to-ports"], 10, 16)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return "", natListener{}, false
	}
	addr := netip.AddrPortFrom(dst, uint16(port)).String()
	return addr, natListener{src: r["src-address"], target: netip.AddrPortFrom(to, uint16(toPort))}, true
}

func (s *Server) natAccept(l natListener) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		if !matchSource(l.src, c.RemoteAddr()) {
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.natRelay(c, l)
		}()
	}
}

// matchSource applies a rule's src-address (an address or prefix).
func matchSource(src string, remote net.Addr) bool {
	if src == "" {
		return true
	}
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return false
	}
	if !strings.Contains(src, "/") {
		src += "/32"
	}
	p, err := netip.ParsePrefix(src)
	return err == nil && p.Contains(ap.Addr().Unmap())
}

func (s *Server) natRelay(c net.Conn, l natListener) {
	t, err := net.Dial("tcp", l.target.String())
	if err != nil {
		c.Close()
		return
	}
	r := &relayed{client: c, target: t}
	s.mu.Lock()
	id := s.conntrack.insert(withDefaults(conntrackDefaults(), map[string]string{
		"protocol": "tcp", "src-address": c.RemoteAddr().String(), "dst-address": c.LocalAddr().String(),
		"reply-src-address": l.target.String(), "reply-dst-address": c.RemoteAddr().String(),
		"tcp-state": "established", "dstnat": "true", "seen-reply": "true", "assured": "true",
	}), -1)
	s.relays[id] = r
	s.mu.Unlock()

	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(t, c)
	go pipe(c, t)
	<-done
	<-done
	r.cut()
	s.mu.Lock()
	delete(s.relays, id)
	s.conntrack.remove(id)
	s.mu.Unlock()
}

// conntrackChangedLocked cuts relayed connections whose entry is gone.
func (s *Server) conntrackChangedLocked() {
	for id, r := range s.relays {
		if s.conntrack.index(id) < 0 {
			r.cut()
			delete(s.relays, id)
		}
	}
}

func withDefaults(defaults, props map[string]string) map[string]string {
	for k, v := range props {
		defaults[k] = v
	}
	return defaults
}

package routerostest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// This file is a stand-in for the router's SSH service: enough of it for a
// test to log in as a RouterOS user and run a command or two. Logins are
// checked against /user as RouterOS checks them (see doc.go), each one is a
// /user/active row (via=ssh) while the session lasts, and removing the row
// ends the session. It is not RouterOS's console: it knows a handful of
// commands and answers the rest with RouterOS's "bad command name".

// sshHandshakeTimeout bounds a client's SSH handshake and login.
const sshHandshakeTimeout = 10 * time.Second

// sshService is the SSH stand-in's state, guarded by Server.mu.
type sshService struct {
	host   string // where to listen, with the port from /ip/service ssh
	config *ssh.ServerConfig
	ln     net.Listener // nil while not listening (service disabled, or the port was taken)
	addr   string       // the address ln was opened on
	conns  map[net.Conn]struct{}
}

// StartSSH serves the emulated router's SSH service on host (an IP
// address such as "127.0.0.1", or "" for every address) at the port
// /ip/service ssh gives (22 unless changed), in the background until
// Close. It follows the service: setting another port moves the listener
// (sessions already open stay), disabling the service closes it, and an
// address list on the service closes connections from other sources
// right after they open, as RouterOS does. If the port cannot be bound,
// the service row turns invalid and StartSSH says why; the next change to
// the service tries again. Call it once.
//
// The host key is a fresh Ed25519 key; the server identifies itself as
// RouterOS does ("SSH-2.0-ROSSSH").
func (s *Server) StartSSH(host string) error {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("routerostest: SSH host key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return fmt.Errorf("routerostest: SSH host key: %w", err)
	}
	cfg := &ssh.ServerConfig{ServerVersion: "SSH-2.0-ROSSSH", PasswordCallback: s.sshPassword}
	cfg.AddHostKey(signer)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("routerostest: server is closed")
	}
	if s.ssh != nil {
		return errors.New("routerostest: SSH already started")
	}
	s.ssh = &sshService{host: host, config: cfg, conns: map[net.Conn]struct{}{}}
	return s.syncSSHLocked()
}

// SSHAddr returns the address the SSH stand-in listens on, "" when it does
// not (StartSSH not called, service disabled, port taken).
func (s *Server) SSHAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ssh == nil || s.ssh.ln == nil {
		return ""
	}
	return s.ssh.ln.Addr().String()
}

// syncSSHLocked makes the SSH listener match /ip/service ssh: listening on
// its port while it is enabled. It marks the service invalid when the port
// cannot be bound, as RouterOS shows a service whose port is taken.
func (s *Server) syncSSHLocked() error {
	svc := s.ssh
	i := s.services.index("ssh")
	if svc == nil || s.closed || i < 0 {
		return nil
	}
	row := s.services.rows[i]
	want := row["disabled"] != "true"
	addr := net.JoinHostPort(svc.host, row["port"])
	if svc.ln != nil && (!want || addr != svc.addr) {
		svc.ln.Close() // its accept loop ends
		svc.ln, svc.addr = nil, ""
	}
	row["invalid"] = "false"
	if !want || svc.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		row["invalid"] = "true"
		return fmt.Errorf("routerostest: SSH service: %w", err)
	}
	svc.ln, svc.addr = ln, addr
	s.log.Info("ssh service listening", "addr", ln.Addr().String())
	s.wg.Add(1)
	go s.sshAcceptLoop(ln)
	return nil
}

// sshAcceptLoop serves ln until it is closed (the service moved, was
// disabled, or the Server closed).
func (s *Server) sshAcceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.wg.Add(1)
		s.ssh.conns[nc] = struct{}{}
		s.mu.Unlock()
		go s.serveSSH(nc)
	}
}

// serveSSH runs one SSH connection: the source check, the handshake and
// login, then the session channels until the connection ends. It owns and
// closes nc.
func (s *Server) serveSSH(nc net.Conn) {
	defer s.wg.Done()
	defer func() {
		nc.Close()
		s.mu.Lock()
		delete(s.ssh.conns, nc)
		s.mu.Unlock()
	}()
	from := addrOf(nc.RemoteAddr())
	s.mu.Lock()
	admitted := s.serviceAdmitsLocked("ssh", from)
	cfg := s.ssh.config
	s.mu.Unlock()
	if !admitted {
		s.log.Info("ssh connection from an address the service does not admit; closed", "remote", from)
		return
	}
	nc.SetDeadline(time.Now().Add(sshHandshakeTimeout))
	conn, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		s.log.Debug("ssh handshake failed", "remote", from, "err", err)
		return
	}
	nc.SetDeadline(time.Time{})
	user := conn.User()
	s.mu.Lock()
	id := s.addActiveLocked(user, from, "ssh", func() { conn.Close() })
	s.mu.Unlock()
	s.log.Info("ssh login", "user", user, "remote", from, "active", id)
	defer func() {
		s.mu.Lock()
		s.endActiveLocked(id)
		s.mu.Unlock()
		s.log.Info("ssh session ended", "user", user, "remote", from)
	}()

	go ssh.DiscardRequests(reqs)
	var sessions sync.WaitGroup
	for nch := range chans { // closed when the connection ends
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		sessions.Go(func() { s.serveSSHSession(ch, creqs, user) })
	}
	sessions.Wait()
}

// sshPassword checks a password login the way /user says (see
// userLoginLocked), with the ssh policy. It never logs the password.
func (s *Server) sshPassword(meta ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
	from := addrOf(meta.RemoteAddr())
	s.mu.Lock()
	pw, _, ok := s.userLoginLocked(meta.User(), from, "ssh")
	s.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare([]byte(pw), password) != 1 {
		s.log.Info("ssh login refused", "user", meta.User(), "remote", from)
		return nil, errors.New("login refused")
	}
	return nil, nil
}

// serveSSHSession answers one session channel: a command (exec) or an
// interactive shell, with or without a terminal (pty-req). It closes ch.
func (s *Server) serveSSHSession(ch ssh.Channel, reqs <-chan *ssh.Request, user string) {
	defer ch.Close()
	pty := false
	for req := range reqs {
		switch req.Type {
		case "pty-req":
			pty = true
			req.Reply(true, nil)
		case "env", "window-change":
			req.Reply(true, nil)
		case "exec":
			var cmd struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &cmd); err != nil {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			out, status := s.sshCommand(cmd.Command)
			io.WriteString(ch, out)
			ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
			return
		case "shell":
			req.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			s.sshShell(ch, user, pty)
			ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
			return
		default:
			req.Reply(false, nil)
		}
	}
}

// sshShell is a minimal console: a prompt, a line editor that echoes when
// the client asked for a terminal, and sshCommand for each line, until
// /quit, Ctrl-D on an empty line or the end of the channel.
func (s *Server) sshShell(ch ssh.Channel, user string, echo bool) {
	write := func(text string) { io.WriteString(ch, text) }
	prompt := func() {
		s.mu.Lock()
		identity := s.identity
		s.mu.Unlock()
		write("[" + user + "@" + identity + "] > ")
	}
	write("\r\n  MikroTik RouterOS (tpf's emulator)\r\n\r\n")
	prompt()
	var line []byte
	lastCR := false
	buf := make([]byte, 512)
	for {
		n, err := ch.Read(buf)
		if err != nil {
			return
		}
		for _, b := range buf[:n] {
			cr := b == '\r'
			switch {
			case b == '\n' && lastCR: // the second half of CR LF
			case b == '\r' || b == '\n':
				if echo {
					write("\r\n")
				}
				cmd := strings.TrimSpace(string(line))
				line = line[:0]
				if cmd == "/quit" || cmd == "quit" {
					write("interrupted\r\n")
					return
				}
				if cmd != "" {
					out, _ := s.sshCommand(cmd)
					write(out)
				}
				prompt()
			case b == 0x03: // Ctrl-C drops the line
				line = line[:0]
				write("\r\n")
				prompt()
			case b == 0x04: // Ctrl-D on an empty line logs out
				if len(line) == 0 {
					return
				}
			case b == 0x7f || b == 0x08:
				if len(line) > 0 {
					line = line[:len(line)-1]
					if echo {
						write("\b \b")
					}
				}
			case b >= 0x20:
				line = append(line, b)
				if echo {
					ch.Write([]byte{b})
				}
			}
			lastCR = cr
		}
	}
}

// sshCommand runs one console command and returns its output (lines ending
// in CR LF, as RouterOS writes them) and exit status. It knows
// "/system identity print" (also as /system/identity/print), ":put TEXT"
// and "/user active print"; anything else is a bad command name.
func (s *Server) sshCommand(line string) (string, uint32) {
	line = strings.TrimSpace(line)
	if text, ok := strings.CutPrefix(line, ":put "); ok {
		return strings.Trim(strings.TrimSpace(text), `"`) + "\r\n", 0
	}
	words := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '/' || r == '\t' })
	s.mu.Lock()
	defer s.mu.Unlock()
	switch strings.Join(words, " ") {
	case "system identity print":
		return "  name: " + s.identity + "\r\n", 0
	case "user active print":
		var b strings.Builder
		for i, r := range s.active.rows {
			fmt.Fprintf(&b, "%2d %s %s %s %s\r\n", i, r["when"], r["name"], r["address"], r["via"])
		}
		return b.String(), 0
	}
	bad := ""
	if len(words) > 0 {
		bad = words[0]
	}
	column := strings.Index(line, bad) + 1
	return fmt.Sprintf("bad command name %s (line 1 column %d)\r\n", bad, column), 1
}

// addrOf returns the IP address of a TCP address, IPv4 unmapped; the zero
// Addr for anything else.
func addrOf(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

package routerostest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// session is one API connection. Its login fields are only touched by the
// connection's own goroutine, inside handle (so also under Server.mu).
type session struct {
	nc     net.Conn
	remote string
	gone   chan struct{} // closed by kill
	once   sync.Once

	loggedIn  bool
	user      string
	active    string // the session's /user/active .id once logged in
	challenge []byte // the last /login challenge, until a response uses it
}

func newSession(nc net.Conn) *session {
	return &session{nc: nc, remote: nc.RemoteAddr().String(), gone: make(chan struct{})}
}

// kill closes the connection; any blocked read, write or delay returns.
func (sess *session) kill() {
	sess.once.Do(func() {
		close(sess.gone)
		sess.nc.Close()
	})
}

// outcome is what handle decided to send back, and how.
type outcome struct {
	replies []sentence
	tag     string
	hangUp  bool          // close after sending (!fatal)
	cut     bool          // fault: send half the bytes, then close
	delay   time.Duration // fault: hold the reply back
	split   bool          // fault: one byte per Write
}

// errHungUp ends a session on purpose (after !fatal or a cut reply).
var errHungUp = errors.New("connection closed by the emulator")

// serveSession reads sentences in arrival order and answers each before
// reading the next, so replies never interleave. It owns and closes the
// connection.
func (s *Server) serveSession(sess *session) {
	defer s.wg.Done()
	defer func() {
		sess.kill()
		s.mu.Lock()
		delete(s.sessions, sess)
		if sess.active != "" {
			s.endActiveLocked(sess.active)
		}
		s.mu.Unlock()
	}()
	s.log.Debug("api connection opened", "remote", sess.remote)
	br := bufio.NewReader(sess.nc)
	for {
		words, err := ReadSentence(br)
		if err != nil {
			s.logReadError(sess, err)
			return
		}
		if err := s.send(sess, s.handle(sess, parseRequest(words))); err != nil {
			if !errors.Is(err, errHungUp) {
				s.log.Debug("api write failed", "remote", sess.remote, "err", err)
			}
			return
		}
	}
}

func (s *Server) logReadError(sess *session, err error) {
	switch {
	case errors.Is(err, ErrProtocol):
		s.log.Warn("api protocol error; closing", "remote", sess.remote, "err", err)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		s.log.Debug("api connection closed", "remote", sess.remote)
	default:
		s.log.Debug("api read failed", "remote", sess.remote, "err", err)
	}
}

// handle runs one request under the server lock and decides the reply.
func (s *Server) handle(sess *session, req *request) outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands = append(s.commands, req.command)
	out := outcome{tag: req.tag, delay: s.fault.Delay, split: s.fault.SplitWrites}
	switch {
	case req.command == "/login":
		out.replies = s.loginLocked(sess, req)
	case !sess.loggedIn:
		out.replies, out.hangUp = []sentence{{"!fatal", "not logged in"}}, true
	case req.command == "/quit":
		out.replies, out.hangUp = []sentence{{"!fatal", "session terminated on request"}}, true
	case s.fault.FailNext > 0 && (s.fault.FailCommand == "" || s.fault.FailCommand == req.command):
		s.fault.FailNext--
		out.replies = trapDone(-1, s.fault.failMessage())
	default:
		if s.fault.DropNext > 0 {
			s.fault.DropNext--
			out.cut = true
		}
		out.replies = s.dispatchLocked(req)
	}
	s.logCommand(sess, req, out)
	return out
}

func (s *Server) logCommand(sess *session, req *request, out outcome) {
	attrs := []any{"remote", sess.remote}
	if sess.loggedIn {
		attrs = append(attrs, "user", sess.user)
	}
	attrs = append(attrs, "command", req.command)
	if req.tag != "" {
		attrs = append(attrs, "tag", req.tag)
	}
	if args := req.logArgs(); len(args) > 0 {
		attrs = append(attrs, "args", args)
	}
	rows := 0
	result := "!done"
	for _, r := range out.replies {
		switch r[0] {
		case "!re":
			rows++
		case "!trap":
			if result == "!done" { // the first trap says the most
				result = "!trap " + strings.TrimPrefix(r[len(r)-1], "=message=")
			}
		case "!fatal":
			result = "!fatal " + r[1]
		}
	}
	attrs = append(attrs, "rows", rows, "result", result)
	if out.cut {
		attrs = append(attrs, "fault", "reply cut")
	}
	s.log.Info("api command", attrs...)
}

// send writes the outcome, applying the faults it carries.
func (s *Server) send(sess *session, out outcome) error {
	b := encodeReply(nil, out.replies, out.tag)
	if out.delay > 0 {
		t := time.NewTimer(out.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-sess.gone:
			return errHungUp
		}
	}
	if out.cut {
		b = b[:len(b)/2] // mid-sentence: the client sees a truncated reply
	}
	if err := writeAll(sess.nc, b, out.split); err != nil {
		return fmt.Errorf("write reply to %s: %w", sess.remote, err)
	}
	if out.hangUp || out.cut {
		return errHungUp
	}
	return nil
}

// writeAll writes b in one call, or one byte per call when split, which
// exercises clients that assume a length prefix arrives in one read.
func writeAll(w io.Writer, b []byte, split bool) error {
	if !split {
		_, err := w.Write(b)
		return err
	}
	for i := range b {
		if _, err := w.Write(b[i : i+1]); err != nil {
			return err
		}
	}
	return nil
}

// dispatchLocked runs the handler for req's command, or answers the way
// RouterOS answers a command or parameter the mimicked version lacks
// (refuseBySchema) or a path it does not know.
func (s *Server) dispatchLocked(req *request) []sentence {
	if r := s.refuseBySchema(req); r != nil {
		return r
	}
	h, ok := s.routes[req.command]
	if !ok {
		return s.unknownCommand(req.command)
	}
	writes := s.writes
	out := h(req)
	switch {
	case strings.HasPrefix(req.command, "/ip/firewall/nat/") && !strings.HasSuffix(req.command, "/print"):
		s.natChangedLocked()
	case strings.HasPrefix(req.command, "/ip/firewall/connection/") && !strings.HasSuffix(req.command, "/print"):
		s.conntrackChangedLocked()
	case s.writes != writes && (strings.HasPrefix(req.command, "/interface/wireguard/") || strings.HasPrefix(req.command, "/ip/address/")):
		s.wireGuardChangedLocked()
	}
	return out
}

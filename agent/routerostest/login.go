package routerostest

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"strings"
)

// loginLocked answers /login in the two dialects of ROUTEROS.md §1.7:
//
//   - plain (6.43+): =name= =password= logs in or traps;
//   - challenge: a bare /login, a name without a password, or any /login
//     in LegacyLogin mode gets !done =ret=<16 random bytes as hex>; then
//     =name= =response=00<md5(0x00 password challenge)> logs in, but only
//     where that still works (LegacyLogin, or versions before 6.45.1).
//
// Either way the user must be able to log in through the API as /user
// says: enabled, in a group with the api policy, and connecting from
// within its address list. A login is a /user/active row (via=api) until
// the connection ends; removing the row closes the connection.
func (s *Server) loginLocked(sess *session, req *request) []sentence {
	name, hasName := req.attrs["name"]
	password, hasPassword := req.attrs["password"]
	response, hasResponse := req.attrs["response"]

	failure := "invalid user name or password (6)"
	if s.cfg.LegacyLogin {
		failure = "cannot log in" // what pre-6.43 routers said
	}
	from, _ := netip.ParseAddrPort(sess.remote)
	pw, _, known := s.userLoginLocked(name, from.Addr().Unmap(), "api")
	switch {
	case hasResponse:
		challenge := sess.challenge
		sess.challenge = nil // one response per challenge
		if !s.md5Works || challenge == nil || !known || s.fault.RefuseLogin ||
			!strings.EqualFold(response, challengeResponse(pw, challenge)) {
			return trapDone(-1, failure)
		}
	case s.cfg.LegacyLogin || !hasName || !hasPassword:
		sess.challenge = make([]byte, 16)
		rand.Read(sess.challenge) // never fails since Go 1.24
		return []sentence{done("=ret=" + hex.EncodeToString(sess.challenge))}
	default:
		if !known || pw != password || s.fault.RefuseLogin {
			return trapDone(-1, failure)
		}
	}
	sess.loggedIn, sess.user = true, name
	sess.active = s.addActiveLocked(name, from.Addr(), "api", sess.kill)
	return []sentence{done()}
}

// challengeResponse is "00" + hex(MD5(0x00 || password || challenge)).
func challengeResponse(password string, challenge []byte) string {
	h := md5.New()
	h.Write([]byte{0})
	h.Write([]byte(password))
	h.Write(challenge)
	return "00" + hex.EncodeToString(h.Sum(nil))
}

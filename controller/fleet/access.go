package fleet

import (
	"crypto/rand"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A transient access is a time-limited login to a router itself, WinBox or
// SSH, for one source range. It is kept as a forward whose target is the
// router's own service: the edge listens on a port of the region for
// AllowFrom and relays to the router's tunnel address on the service's
// port, and the router's agent keeps a RouterOS user (Username, with the
// password shown once) that may log in only from the edge's tunnel
// address. Ports, expiry, revoke, connections and statuses are the
// forward's.

// Access services: the router service an access logs in to.
const (
	ServiceSSH    = "ssh"
	ServiceWinbox = "winbox"
)

// Services are the access services, in the order they are offered.
var Services = []string{ServiceWinbox, ServiceSSH}

// DefaultServicePort is the port RouterOS serves service on by default; an
// access targets it until the router's agent has read the configured one.
func DefaultServicePort(service string) uint16 {
	if service == ServiceWinbox {
		return 8291
	}
	return 22
}

// Access is a transient access. Its Forward holds what it shares with
// forwards; there DstAddress is the router's tunnel address and DstPort the
// router's port of Service.
type Access struct {
	Forward
	// Service is ServiceSSH or ServiceWinbox.
	Service string
	// Username is the RouterOS user the router's agent keeps for it.
	Username string
	// Password is the user's password: set only in the answer to the
	// create, never stored past the agent's confirmation, never shown again.
	Password string
	// ReadOnly puts the user in tpf's read-only group (read, no write).
	ReadOnly bool
}

// NewAccess is a request for an access, already validated.
type NewAccess struct {
	Service   string
	AllowFrom netip.Prefix
	ReadOnly  bool
	Duration  time.Duration
}

// NewAccessInput is a request for an access as a client wrote it, before any
// rule; as NewForwardInput, an empty string is a missing field and WrongType
// names the fields the transport could not read as their type.
type NewAccessInput struct {
	Type               string
	ExpireAfterMinutes string
	AllowFrom          string
	ReadOnly           bool
	WrongType          []string
}

// Fields of an access's creation object (besides expire_after_minutes and
// allow_from, as for forwards).
const (
	FieldType     = "type"
	FieldReadOnly = "read_only"
)

// ValidateNewAccess applies the rules of a new access to in, in the order
// type, expire_after_minutes, allow_from, read_only; the bounds and the
// source rules are the forwards'.
func ValidateNewAccess(in NewAccessInput, rules ForwardRules) (na NewAccess, problems Problems) {
	rules = rules.WithDefaults()
	p := &problems
	wrong := func(field, want string) bool {
		if slices.Contains(in.WrongType, field) {
			p.WrongType(field, want)
			return true
		}
		return false
	}
	if !wrong(FieldType, "a string") {
		if text, ok := p.Text(FieldType, in.Type, MaxAddressText); ok {
			if slices.Contains(Services, text) {
				na.Service = text
			} else {
				p.Add(FieldType, "The selected type is invalid.")
			}
		}
	}
	if !wrong(FieldExpireAfterMinutes, "an integer") {
		if d, ok := p.expireAfter(in.ExpireAfterMinutes, rules); ok {
			na.Duration = d
		}
	}
	if !wrong(FieldAllowFrom, "a string") {
		if prefix, ok := p.allowFrom(in.AllowFrom, rules); ok {
			na.AllowFrom = prefix
		}
	}
	if !wrong(FieldReadOnly, "true or false") {
		na.ReadOnly = in.ReadOnly
	}
	return na, problems
}

// AccessUserPrefix starts the name of every RouterOS user tpf keeps; the
// agent never touches a user without it.
const AccessUserPrefix = "tpf-"

// NewAccessUsername returns a fresh username: AccessUserPrefix and ten
// random lowercase letters and digits.
func NewAccessUsername() string {
	return AccessUserPrefix + randomText(10, lowers+digits)
}

const (
	lowers  = "abcdefghijkmnpqrstuvwxyz" // no l or o: read aloud and typed
	uppers  = "ABCDEFGHJKLMNPQRSTUVWXYZ" // no I or O
	digits  = "23456789"                 // no 0 or 1
	symbols = "-_.+"                     // safe in shells, URLs and WinBox
)

// NewAccessPassword returns a fresh password of 24 characters (about 140
// bits) with at least one lowercase letter, uppercase letter, digit and
// symbol, so it meets RouterOS 7's strictest password policy (four
// categories).
func NewAccessPassword() string {
	for {
		pw := randomText(24, lowers+uppers+digits+symbols)
		if strings.ContainsAny(pw, lowers) && strings.ContainsAny(pw, uppers) &&
			strings.ContainsAny(pw, digits) && strings.ContainsAny(pw, symbols) {
			return pw
		}
	}
}

// randomText returns n characters of alphabet, uniformly drawn.
func randomText(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[randomBelow(len(alphabet))]
	}
	return string(b)
}

// randomBelow returns a uniform random integer in [0, n), n ≤ 256.
func randomBelow(n int) int {
	limit := 256 - 256%n // reject the top values that would bias the draw
	var b [1]byte
	for {
		rand.Read(b[:]) // never fails (Go 1.24+: it crashes the program instead)
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// SSHCommand is the command line that logs in through an SSH access; empty
// for WinBox.
func (a Access) SSHCommand() string {
	if a.Service != ServiceSSH {
		return ""
	}
	return "ssh -p " + strconv.Itoa(int(a.Port)) + " " + a.Username + "@" + a.EntryPoint
}

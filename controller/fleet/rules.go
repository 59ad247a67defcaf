package fleet

// The rules a new forward obeys, and the messages users read when a request
// breaks one. The API (for a JSON body) and the web views (for their form)
// both map what they received to a NewForwardInput and call
// ValidateNewForward, so the two accept exactly the same forwards and say
// exactly the same things; reading the transport (JSON numbers, digit
// strings, a value of the wrong type) stays with each of them.
//
// These rules live here rather than in shared/forward: shared holds what the
// controller and the agent both speak (address and CIDR classes, the rule
// tag), and the agent never reads a user's request. The operator's bounds
// and these Laravel-style messages are the controller's contract with its
// users, beside NewForward, which they produce. The address rules themselves
// are still shared/forward's, so the agent re-checks the same ones.

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tpf-dev/tpf/shared/forward"
)

// Defaults for ForwardRules' zero values: the contract's bounds of
// expire_after_minutes.
const (
	DefaultMinExpireMinutes = 10
	DefaultMaxExpireMinutes = 1440
)

// MaxAddressText is the longest dst_address or allow_from, in bytes.
const MaxAddressText = 64

// ForwardRules are the operator's settings for new forwards. The zero value
// is the contract's rules: 10 to 1440 minutes, only globally reachable
// sources.
type ForwardRules struct {
	// MinExpireMinutes and MaxExpireMinutes bound expire_after_minutes;
	// zero means DefaultMinExpireMinutes and DefaultMaxExpireMinutes.
	MinExpireMinutes int
	MaxExpireMinutes int
	// AllowSources are extra ranges accepted as allow_from although not
	// globally reachable (labs, tests); nil accepts only global ranges.
	AllowSources []netip.Prefix
}

// WithDefaults fills the zero bounds with the defaults.
func (r ForwardRules) WithDefaults() ForwardRules {
	if r.MinExpireMinutes == 0 {
		r.MinExpireMinutes = DefaultMinExpireMinutes
	}
	if r.MaxExpireMinutes == 0 {
		r.MaxExpireMinutes = DefaultMaxExpireMinutes
	}
	return r
}

// NewForwardInput is a request for a forward as a client wrote it, before
// any rule: the fields of the contract's creation object. An empty string
// is a missing field.
type NewForwardInput struct {
	// ExpireAfterMinutes and DstPort are integers as written, in decimal
	// ("120"); anything else is refused as not an integer.
	ExpireAfterMinutes string
	DstPort            string
	DstAddress         string
	AllowFrom          string
	// Masquerade is optional; false when missing.
	Masquerade bool
	// WrongType names the fields (by their JSON names) whose value the
	// transport could not read as the field's type, such as a JSON number
	// for dst_address or a string for masquerade. Each is refused as such,
	// in its place in check order, and its other rules are skipped.
	WrongType []string
}

// Fields of the creation object, in the order the rules check them.
const (
	FieldExpireAfterMinutes = "expire_after_minutes"
	FieldDstPort            = "dst_port"
	FieldDstAddress         = "dst_address"
	FieldAllowFrom          = "allow_from"
	FieldMasquerade         = "masquerade"
)

// ValidateNewForward applies the contract's rules for a new forward to in,
// in the contract's order (expire_after_minutes, dst_port, dst_address,
// allow_from, masquerade), collecting every failure. nf is meaningful only
// when problems is empty.
func ValidateNewForward(in NewForwardInput, rules ForwardRules) (nf NewForward, problems Problems) {
	rules = rules.WithDefaults()
	p := &problems
	wrong := func(field, want string) bool {
		for _, f := range in.WrongType {
			if f == field {
				p.WrongType(field, want)
				return true
			}
		}
		return false
	}

	if !wrong(FieldExpireAfterMinutes, "an integer") {
		if d, ok := p.expireAfter(in.ExpireAfterMinutes, rules); ok {
			nf.Duration = d
		}
	}
	if !wrong(FieldDstPort, "an integer") {
		if port, ok := p.Integer(FieldDstPort, in.DstPort, 1, 65535); ok {
			nf.DstPort = uint16(port)
		}
	}
	if !wrong(FieldDstAddress, "a string") {
		if text, ok := p.Text(FieldDstAddress, in.DstAddress, MaxAddressText); ok {
			addr, err := forward.Destination(text)
			switch {
			case errors.Is(err, forward.ErrNotRoutable):
				addr, _ := forward.ParseIPv4(text)
				p.Add(FieldDstAddress, "The dst address field must be a private (RFC 1918) or publicly routed IPv4 address; "+text+" is "+forward.Class(addr)+".")
			case err != nil:
				p.Add(FieldDstAddress, "The dst address field must be a valid IPv4 address.")
			default:
				nf.DstAddress = addr
			}
		}
	}
	if !wrong(FieldAllowFrom, "a string") {
		if prefix, ok := p.allowFrom(in.AllowFrom, rules); ok {
			nf.AllowFrom = prefix
		}
	}
	if !wrong(FieldMasquerade, "true or false") {
		nf.Masquerade = in.Masquerade
	}
	return nf, problems
}

// allowFrom checks an allow_from: a publicly routed IPv4 address or range
// between /24 and /32 (or one of rules.AllowSources).
func (p *Problems) allowFrom(in string, rules ForwardRules) (netip.Prefix, bool) {
	text, ok := p.Text(FieldAllowFrom, in, MaxAddressText)
	if !ok {
		return netip.Prefix{}, false
	}
	prefix, err := forward.Source(text, rules.AllowSources)
	switch {
	case errors.Is(err, forward.ErrPrefixLength):
		p.Add(FieldAllowFrom, "The allow from field must be a CIDR range between /24 and /32.")
	case errors.Is(err, forward.ErrNotRoutable):
		s := sourcePrefix(text)
		p.Add(FieldAllowFrom, "The allow from field must be a publicly routed IPv4 address or range; "+s.String()+" is "+forward.PrefixClass(s)+".")
	case err != nil:
		p.Add(FieldAllowFrom, "The allow from field must be a valid IPv4 address or CIDR range.")
	default:
		return prefix, true
	}
	return netip.Prefix{}, false
}

// expireAfter checks an expire_after_minutes against the rules' bounds.
func (p *Problems) expireAfter(in string, rules ForwardRules) (time.Duration, bool) {
	minutes, ok := p.Integer(FieldExpireAfterMinutes, in, int64(rules.MinExpireMinutes), int64(rules.MaxExpireMinutes))
	return time.Duration(minutes) * time.Minute, ok
}

// sourcePrefix reads an allow_from that passed the syntax checks, for
// messages about its class.
func sourcePrefix(text string) netip.Prefix {
	if p, err := netip.ParsePrefix(text); err == nil {
		return p.Masked()
	}
	a, _ := netip.ParseAddr(text)
	return netip.PrefixFrom(a, 32)
}

// Problems are the rules a request broke: each field's messages, the fields
// in the order they were checked. Its messages are safe to show users. The
// zero value holds none; Add and the checks record into it.
type Problems struct {
	fields []string
	msgs   map[string][]string
}

// Add records a broken rule of field.
func (p *Problems) Add(field, msg string) {
	if p.msgs == nil {
		p.msgs = map[string][]string{}
	}
	if _, ok := p.msgs[field]; !ok {
		p.fields = append(p.fields, field)
	}
	p.msgs[field] = append(p.msgs[field], msg)
}

// Len is the number of fields with problems; zero means the request passed.
func (p Problems) Len() int { return len(p.fields) }

// Fields are the fields with problems, in check order.
func (p Problems) Fields() []string { return p.fields }

// Messages are field's messages, in the order they were recorded.
func (p Problems) Messages(field string) []string { return p.msgs[field] }

// FieldLabel is how a field is named in messages: dst_port → "dst port".
func FieldLabel(field string) string {
	return strings.ReplaceAll(field, "_", " ")
}

// Required records that field is missing.
func (p *Problems) Required(field string) {
	p.Add(field, "The "+FieldLabel(field)+" field is required.")
}

// WrongType records that field's value is not of its type; want says what
// it must be: "a string", "an integer", "true or false".
func (p *Problems) WrongType(field, want string) {
	p.Add(field, "The "+FieldLabel(field)+" field must be "+want+".")
}

var integerText = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// Integer checks a required integer written in decimal ("" is missing)
// and within [lo, hi], recording the first rule it breaks.
func (p *Problems) Integer(field, text string, lo, hi int64) (int64, bool) {
	if text == "" {
		p.Required(field)
		return 0, false
	}
	if !integerText.MatchString(text) {
		p.WrongType(field, "an integer")
		return 0, false
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n < lo || n > hi {
		p.Add(field, fmt.Sprintf("The %s field must be between %d and %d.", FieldLabel(field), lo, hi))
		return 0, false
	}
	return n, true
}

// Text checks a required text of at most maxLen bytes ("" or blanks are
// missing) without control characters, recording the first rule it breaks.
func (p *Problems) Text(field, s string, maxLen int) (string, bool) {
	if strings.TrimSpace(s) == "" {
		p.Required(field)
		return "", false
	}
	if len(s) > maxLen {
		p.Add(field, fmt.Sprintf("The %s field must not be greater than %d characters.", FieldLabel(field), maxLen))
		return "", false
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		p.Add(field, "The "+FieldLabel(field)+" field must not contain control characters.")
		return "", false
	}
	return s, true
}

// Fields of a new router, and the longest name.
const (
	FieldName          = "name"
	FieldRegion        = "region"
	FieldTunnelAddress = "tunnel_address"
	MaxRouterName      = 100
)

// TunnelAddress checks a router's tunnel address as given (a manual
// region's): a canonical unicast IPv4 address.
func (p *Problems) TunnelAddress(text string) (netip.Addr, bool) {
	addr, err := forward.ParseIPv4(text)
	switch {
	case err != nil:
		p.Add(FieldTunnelAddress, "The tunnel address field must be a valid IPv4 address.")
	case addr.IsUnspecified() || addr.IsMulticast() || addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		p.Add(FieldTunnelAddress, "The tunnel address field must be a unicast IPv4 address.")
	default:
		return addr, true
	}
	return netip.Addr{}, false
}

// CreateRouterError records on p what an error of creating a router means
// for its fields (an unknown region, a tunnel address the region needs or
// refuses, a full tunnel prefix), and reports whether it was one of those.
func (p *Problems) CreateRouterError(err error) bool {
	switch {
	case errors.Is(err, ErrNotFound):
		p.Add(FieldRegion, "The selected region is invalid.")
	case errors.Is(err, ErrTunnelAddressRequired):
		p.Required(FieldTunnelAddress)
	case errors.Is(err, ErrTunnelAddressManaged):
		p.Add(FieldTunnelAddress, "The tunnel address field must be left out: tpf allocates it in a region whose tunnel it manages.")
	case errors.Is(err, ErrTunnelFull):
		p.Add(FieldRegion, "The selected region's tunnel has no free address left.")
	default:
		return false
	}
	return true
}

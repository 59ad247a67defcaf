package forward

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Errors returned, wrapped with the offending input, by the address checks.
// Branch on them with errors.Is.
var (
	// ErrSyntax means the text is not a canonical IPv4 address or CIDR.
	ErrSyntax = errors.New("not a canonical IPv4 address or CIDR")
	// ErrPrefixLength means an allow_from prefix is shorter than /24, so it
	// would admit too many sources.
	ErrPrefixLength = errors.New("prefix length must be between /24 and /32")
	// ErrNotRoutable means the address falls in a class a forward may not use,
	// such as loopback, link-local, shared, documentation or multicast.
	ErrNotRoutable = errors.New("address class not allowed")
)

// Source prefixes shorter than this are refused: a forward is meant for one
// user's address or small network, not for half the internet.
const minSourceBits = 24

// Class names used in logic as well as in messages.
const (
	classGlobal  = "global"
	classPrivate = "private"
)

// specialBlocks lists the IPv4 blocks that are not globally reachable, from
// the IANA IPv4 Special-Purpose Address Registry plus multicast, together with
// the two globally reachable exceptions nested inside 192.0.0.0/24. Other
// registry entries (192.31.196.0/24, 192.52.193.0/24, 192.175.48.0/24) are
// globally reachable and need no row. Where rows nest, the most specific one
// decides; see Class.
var specialBlocks = []struct {
	prefix netip.Prefix
	class  string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	{netip.MustParsePrefix("10.0.0.0/8"), classPrivate},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), classPrivate},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.0.9/32"), classGlobal},  // Port Control Protocol anycast
	{netip.MustParsePrefix("192.0.0.10/32"), classGlobal}, // TURN anycast
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast"},
	{netip.MustParsePrefix("192.168.0.0/16"), classPrivate},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
}

// notRoutable is an ErrNotRoutable with a message that fits the check that
// failed: private addresses are fine as a destination but not as a source.
type notRoutable string

func (e notRoutable) Error() string      { return string(e) }
func (notRoutable) Is(target error) bool { return target == ErrNotRoutable }

const (
	errDestinationClass notRoutable = "not a private or globally reachable address"
	errSourceClass      notRoutable = "neither globally reachable nor in an allowed source range"
)

// ParseIPv4 parses s as a dotted-quad IPv4 address in canonical form only.
// Anything another parser might read differently is refused: leading zeros
// ("010.1.1.1", octal to some), shorthand ("10.1"), hex, IPv6 including
// IPv4-mapped ("::ffff:1.2.3.4"), zones and surrounding spaces.
func ParseIPv4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s) // already rejects leading zeros
	if err != nil || !a.Is4() || a.String() != s {
		return netip.Addr{}, fmt.Errorf("%q: %w", s, ErrSyntax)
	}
	return a, nil
}

// Destination checks a dst_address: a canonical IPv4 address that is private
// (RFC 1918) or globally reachable. Everything else, link-local included,
// is refused so that a forward cannot reach the router itself or metadata
// and other special services.
func Destination(s string) (netip.Addr, error) {
	a, err := ParseIPv4(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if c := Class(a); c != classPrivate && c != classGlobal {
		return netip.Addr{}, fmt.Errorf("%q is %s: %w", s, c, errDestinationClass)
	}
	return a, nil
}

// Source checks an allow_from: a canonical IPv4 address (meaning /32) or CIDR
// "a.b.c.d/n" with 24 <= n <= 32, returned normalised to its network address
// ("1.2.3.4/24" gives 1.2.3.0/24). The whole range must be globally
// reachable, or lie within one of extra, the operator's own ranges
// (TPF_ALLOW_SOURCES, see ParsePrefixes) used for labs and tests.
func Source(s string, extra []netip.Prefix) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = parseCIDR(s); err != nil {
			return netip.Prefix{}, err
		}
	} else {
		a, err := ParseIPv4(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		p = netip.PrefixFrom(a, 32)
	}
	if p.Bits() < minSourceBits {
		return netip.Prefix{}, fmt.Errorf("%q: %w", s, ErrPrefixLength)
	}
	p = p.Masked()
	if IsGlobal(p) {
		return p, nil
	}
	for _, e := range extra {
		if within(p, e) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%q is %s: %w", s, PrefixClass(p), errSourceClass)
}

// ParsePrefixes parses the operator setting TPF_ALLOW_SOURCES: a
// comma-separated list of IPv4 CIDRs, spaces around items allowed. An empty
// (or all-space) string gives nil. Because the setting widens what Source
// accepts, it is strict: every item needs an explicit "/n" and must be a
// network address, so "10.0.0.1/8" (a likely typo for a narrower prefix) is
// refused rather than silently widened to 10.0.0.0/8. Errors name the bad item.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var ps []netip.Prefix
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		p, err := parseCIDR(item)
		if err != nil {
			return nil, err
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("%q: %w: host bits set (network is %s)", item, ErrSyntax, p.Masked())
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// IsGlobal reports whether every address of p is globally reachable. It is
// false for an invalid or non-IPv4 prefix.
func IsGlobal(p netip.Prefix) bool {
	if !p.IsValid() || !p.Addr().Is4() {
		return false
	}
	p = p.Masked()
	// The global rows are exceptions nested inside a non-global block, so
	// they must be checked first.
	for _, b := range specialBlocks {
		if b.class == classGlobal && within(p, b.prefix) {
			return true
		}
	}
	for _, b := range specialBlocks {
		if b.class != classGlobal && b.prefix.Overlaps(p) {
			return false
		}
	}
	return true
}

// Class returns a short human name for the special-purpose block a falls in,
// such as "loopback" or "private", or "global" when a is globally reachable.
// It returns "not IPv4" for anything but an IPv4 address.
func Class(a netip.Addr) string {
	if !a.Is4() {
		return "not IPv4"
	}
	class, bits := classGlobal, -1
	for _, b := range specialBlocks {
		if b.prefix.Bits() > bits && b.prefix.Contains(a) {
			class, bits = b.class, b.prefix.Bits()
		}
	}
	return class
}

// PrefixClass names the non-global class that stops p from being global
// ("global" when nothing does), for error messages.
func PrefixClass(p netip.Prefix) string {
	if c := Class(p.Addr()); c != classGlobal {
		return c
	}
	// The first address is global but a later one is not, as in 192.0.0.10/31.
	for _, b := range specialBlocks {
		if b.class != classGlobal && b.prefix.Overlaps(p) {
			return b.class
		}
	}
	return classGlobal
}

// within reports whether every address of inner is in outer.
func within(inner, outer netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// parseCIDR parses a canonical "a.b.c.d/n" without masking it. Requiring
// the text to round-trip refuses whatever netip would otherwise accept or
// normalise: IPv6 and IPv4-mapped forms, leading zeros, spaces.
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() || p.String() != s {
		return netip.Prefix{}, fmt.Errorf("%q: %w", s, ErrSyntax)
	}
	return p, nil
}

package routerostest

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// parser checks one written property value and returns what print shows
// for it, or the trap refusing it. A nil parser takes any text.
type parser func(name, v string) (string, []sentence)

// applyProps copies the request's properties that have a parser entry into
// row, normalised by the parser, in arrival order. An empty value removes
// a property that has no default (comment= unsets the comment, as on
// RouterOS); a property with a default has its empty value parsed like any
// other. Properties without an entry are left alone: callers refuse them
// first with unknownAttr.
func applyProps(row map[string]string, req *request, parsers map[string]parser, defaults map[string]string) []sentence {
	for _, name := range req.names {
		p, ok := parsers[name]
		if !ok {
			continue
		}
		v := req.attrs[name]
		if _, hasDefault := defaults[name]; v == "" && !hasDefault {
			delete(row, name)
			continue
		}
		if p != nil {
			norm, r := p(name, v)
			if r != nil {
				return r
			}
			v = norm
		}
		row[name] = v
	}
	return nil
}

// The trap texts of the parsers below follow the patterns ROUTEROS.md
// documents ("input does not match any value of <prop>", category 1); the
// exact wording for numbers, addresses and keys is the emulator's own, as
// ROUTEROS.md §7 leaves it open.

// boolProp accepts yes/no/true/false and prints true/false.
func boolProp(name, v string) (string, []sentence) {
	b, ok := parseBool(v)
	if !ok {
		return "", trapDone(1, "input does not match any value of "+name)
	}
	return b, nil
}

// oneOf accepts the given words only.
func oneOf(words []string) parser {
	return func(name, v string) (string, []sentence) {
		if !slices.Contains(words, v) {
			return "", trapDone(1, "input does not match any value of "+name)
		}
		return v, nil
	}
}

// intRange accepts a decimal integer in [lo, hi].
func intRange(lo, hi int) parser {
	return func(name, v string) (string, []sentence) {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return "", trapDone(1, fmt.Sprintf("value of %s out of range (%d..%d)", name, lo, hi))
		}
		return strconv.Itoa(n), nil
	}
}

// durationProp accepts whole seconds ("25") or a RouterOS duration
// ("25s", "1m30s", "1h") up to max, and prints it the RouterOS way
// ("25s", "1m30s"), as persistent-keepalive reads back (ROUTEROS-WIREGUARD.md §2).
func durationProp(max time.Duration) parser {
	return func(name, v string) (string, []sentence) {
		d, ok := parseROSDuration(v)
		if !ok || d < 0 || d > max {
			return "", trapDone(1, fmt.Sprintf("value of %s out of range (0s..%s)", name, formatUptime(max)))
		}
		return formatUptime(d), nil
	}
}

// parseROSDuration reads a bare number of seconds or a sequence of
// <number><unit> with units w, d, h, m, s.
func parseROSDuration(v string) (time.Duration, bool) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, true
	}
	units := map[byte]time.Duration{'w': 7 * 24 * time.Hour, 'd': 24 * time.Hour, 'h': time.Hour, 'm': time.Minute, 's': time.Second}
	var total time.Duration
	for v != "" {
		i := 0
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		if i == 0 || i == len(v) || i > 9 {
			return 0, false
		}
		n, _ := strconv.Atoi(v[:i])
		unit, ok := units[v[i]]
		if !ok {
			return 0, false
		}
		total += time.Duration(n) * unit
		v = v[i+1:]
	}
	return total, true
}

// keyProp accepts a WireGuard key: standard base64 of 32 bytes.
func keyProp(name, v string) (string, []sentence) {
	if _, ok := decodeKey(v); !ok {
		return "", trapDone(1, "invalid value for argument "+name)
	}
	return v, nil
}

func decodeKey(v string) ([]byte, bool) {
	b, err := base64.StdEncoding.DecodeString(v)
	return b, err == nil && len(b) == 32
}

// prefixListProp accepts a comma-separated list of IPv4 or IPv6 prefixes,
// a bare address meaning the whole-length prefix, and prints it
// comma-separated without spaces (allowed-address).
func prefixListProp(name, v string) (string, []sentence) {
	var out []string
	for _, p := range strings.Split(v, ",") {
		pfx, ok := parsePrefix(p, false)
		if !ok {
			return "", trapDone(1, "invalid value for argument "+name)
		}
		out = append(out, pfx.String())
	}
	return strings.Join(out, ","), nil
}

// parsePrefix reads "10.0.0.1/24" or "10.0.0.1" (as /32; /128 for IPv6),
// keeping the host bits, as RouterOS does for interface addresses.
func parsePrefix(s string, v4only bool) (netip.Prefix, bool) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" || (v4only && !a.Is4()) {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || (v4only && !p.Addr().Is4()) {
		return netip.Prefix{}, false
	}
	return p, true
}

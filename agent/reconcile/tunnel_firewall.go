package reconcile

import (
	"fmt"
	"slices"
	"strings"
)

// This file looks at /ip/firewall/filter for a rule that would obviously
// drop what the edge forwards over the tunnel. tpf adds no forward-chain
// rules (its only filter rules are the input rules of accesses, access.go);
// here it only warns.
//
// What is assumed, from ROUTEROS-WIREGUARD.md §4 (defconf's rules there
// are [S], from many /export captures; the rest is [I] from them):
//
//   - The tunnel is started by the router (its peer has the edge's
//     endpoint), so the edge's UDP replies are established connections,
//     which defconf's first input rule accepts: no input rule is needed
//     for WireGuard itself (§4a, [I]; Altostrat documents the same for its
//     router-initiated VPN, §7 [V]). Input rules are therefore not checked.
//   - A forward from the edge is dst-nat'ed in prerouting and then passes
//     the forward chain with in-interface=tpf, connection-state=new and
//     connection-nat-state=dstnat. defconf's only forward drops are for
//     connection-state=invalid and for in-interface-list=WAN; the tpf
//     interface is in neither LAN nor WAN (§4c), and a packet that no rule
//     drops is accepted (§4, [S]). So with defconf the forward passes, and
//     replies are established (§4b, [I]).
//   - Interface-list membership is not read, so a rule matching on
//     in-interface-list (other than all) is never counted as certain either
//     way: the warning is for rules that name the tunnel interface, or
//     match any interface, and nothing narrower.

// forwardChain is the filter chain forwarded connections pass.
const forwardChain = "forward"

// narrowing lists filter matchers that restrict a rule to part of the
// traffic: a rule with any of them set may or may not match the tunnel's
// connections, so it is never a certain match. Matchers not listed (and
// not asked for) are unknown to the check; it may then over-warn.
var narrowing = []string{
	"protocol", "src-address", "dst-address", "src-port", "dst-port", "port",
	"src-address-list", "dst-address-list", "src-address-type", "dst-address-type",
	"out-interface", "out-interface-list", "in-bridge-port", "in-bridge-port-list",
	"out-bridge-port", "out-bridge-port-list", "src-mac-address",
	"connection-mark", "packet-mark", "routing-mark", "connection-type",
	"connection-bytes", "connection-limit", "connection-rate", "limit", "dst-limit",
	"nth", "time", "content", "layer7-protocol", "tcp-flags", "icmp-options",
	"packet-size", "psd", "random", "per-connection-classifier", "hotspot", "p2p",
	"dscp", "ttl", "priority", "fragment", "ipv4-options", "tls-host", "tcp-mss",
	"ingress-priority",
}

// Filter properties the check reads besides the narrowing ones.
const (
	propInInterface     = "in-interface"
	propInInterfaceList = "in-interface-list"
	propConnState       = "connection-state"
	propConnNATState    = "connection-nat-state"
	propIPsecPolicy     = "ipsec-policy"
)

// FirewallProperties returns what TunnelFirewallWarning reads of each
// /ip/firewall/filter rule, for print =.proplist= (.id included). A fresh
// slice on every call.
func FirewallProperties() []string {
	return append([]string{".id", propChain, propAction, propDisabled, propInInterface, propInInterfaceList,
		propConnState, propConnNATState, propIPsecPolicy}, narrowing...)
}

// match is whether a filter rule matches the tunnel's new dst-nat'ed
// connections.
type match int

const (
	matchNo match = iota
	matchMaybe
	matchYes
)

// TunnelFirewallWarning walks the forward chain of rules (the
// /ip/firewall/filter rows in table order; other chains are skipped) the
// way a new connection forwarded over the tunnel would, and returns a
// warning when an enabled drop, reject or tarpit rule certainly catches it
// before any rule that may accept it (or jump elsewhere); "" otherwise. A
// rule certainly catches it when it matches in-interface=tpf or any
// interface, connection-state new (or any) and connection-nat-state dstnat
// (or any), and nothing narrower.
func TunnelFirewallWarning(rules []Row) string {
	maybeAccepted := false
	for _, r := range rules {
		p := r.Props
		if p[propChain] != forwardChain || p[propDisabled] == "true" || p[propDisabled] == "yes" {
			continue
		}
		m := matchTunnel(p)
		if m == matchNo {
			continue
		}
		switch p[propAction] {
		case "accept", "fasttrack-connection", "return":
			if m == matchYes {
				return ""
			}
			maybeAccepted = true
		case "jump":
			maybeAccepted = true // where it leads is not followed
		case "drop", "reject", "tarpit":
			if m == matchYes && !maybeAccepted {
				return fmt.Sprintf("firewall filter rule %s (chain=forward action=%s%s) drops the connections the edge forwards over the tunnel; "+
					"tpf adds no forward-chain rules: accept them before it, e.g. chain=forward in-interface=%s connection-nat-state=dstnat action=accept",
					r.ID, p[propAction], describeMatch(p), TunnelInterface)
			}
		}
	}
	return ""
}

// matchTunnel says whether a rule's matchers catch a new connection that
// arrives on the tunnel interface and was dst-nat'ed, without IPsec.
func matchTunnel(p map[string]string) match {
	if v := p[propInInterface]; v != "" && !listMatches(v, TunnelInterface) {
		return matchNo
	}
	if v := p[propConnState]; v != "" && !listMatches(v, "new") {
		return matchNo
	}
	if v := p[propConnNATState]; v != "" && !listMatches(v, "dstnat") {
		return matchNo
	}
	if v := p[propIPsecPolicy]; v != "" {
		// "in,ipsec" matches only decapsulated IPsec traffic (defconf's
		// first forward rule); the tunnel's is not; "none" matches it.
		_, policy, _ := strings.Cut(v, ",")
		if policy == "ipsec" {
			return matchNo
		}
	}
	m := matchYes
	switch v := p[propInInterfaceList]; v {
	case "", "all":
	case "!all":
		return matchNo
	default:
		m = matchMaybe // membership is not read
	}
	for _, k := range narrowing {
		if p[k] != "" {
			m = matchMaybe
		}
	}
	return m
}

// listMatches reports whether a matcher value, a comma-separated list
// optionally negated with a leading "!", matches want.
func listMatches(v, want string) bool {
	neg := strings.HasPrefix(v, "!")
	return slices.Contains(strings.Split(strings.TrimPrefix(v, "!"), ","), want) != neg
}

// describeMatch renders the matchers of a rule that the check read.
func describeMatch(p map[string]string) string {
	var b strings.Builder
	for _, k := range []string{propInInterface, propInInterfaceList, propConnState, propConnNATState} {
		if v := p[k]; v != "" {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	return b.String()
}

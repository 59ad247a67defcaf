package routerostest

import (
	"fmt"
	"slices"
)

// natOrder is the order /ip/firewall/nat/print lists properties in.
var natOrder = []string{
	"chain", "action", "to-addresses", "to-ports", "protocol",
	"src-address", "dst-address", "src-port", "dst-port",
	"src-address-list", "dst-address-list",
	"in-interface", "out-interface", "in-interface-list", "out-interface-list",
	"log", "log-prefix", "bytes", "packets", "invalid", "dynamic", "disabled", "comment",
}

// natWritable are the properties add and set accept. The read-only ones
// (bytes, packets, dynamic, invalid) are refused as unknown parameters.
var natWritable = []string{
	"chain", "action", "to-addresses", "to-ports", "protocol",
	"src-address", "dst-address", "src-port", "dst-port",
	"src-address-list", "dst-address-list",
	"in-interface", "out-interface", "in-interface-list", "out-interface-list",
	"log", "log-prefix", "disabled", "comment",
}

// natDefaults are the properties every rule prints even when never set.
func natDefaults() map[string]string {
	return map[string]string{
		"log": "false", "log-prefix": "", "bytes": "0", "packets": "0",
		"invalid": "false", "dynamic": "false", "disabled": "false",
	}
}

var natActions = []string{
	"accept", "add-dst-to-address-list", "add-src-to-address-list", "dst-nat",
	"endpoint-independent-nat", "jump", "log", "masquerade", "netmap",
	"passthrough", "redirect", "return", "same", "src-nat",
}

var ipProtocols = []string{
	"dccp", "ddp", "egp", "encap", "etherip", "ggp", "gre", "hmp", "icmp",
	"icmpv6", "idpr-cmtp", "igmp", "ipencap", "ipip", "ipsec-ah", "ipsec-esp",
	"ipv6-encap", "ipv6-frag", "ipv6-nonxt", "ipv6-opts", "ipv6-route",
	"iso-tp4", "l2tp", "ospf", "pim", "pup", "rdp", "rspf", "rsvp", "sctp",
	"st", "tcp", "udp", "udp-lite", "vmtp", "vrrp", "xns-idp", "xtp",
}

// portProps need protocol tcp or udp.
var portProps = []string{"src-port", "dst-port", "to-ports"}

func (s *Server) natPrintLocked(req *request) []sentence {
	return s.printLocked(req, s.nat, s.nat.rows)
}

// natMenu is /ip/firewall/nat as a rule menu.
func (s *Server) natMenu() ruleMenu {
	return ruleMenu{t: s.nat, writable: natWritable, parsers: natParsers, defaults: natDefaults, validate: validateNAT}
}

// natAddLocked adds a rule at the end, or before place-before, and
// answers its id in =ret=.
func (s *Server) natAddLocked(req *request) []sentence { return s.ruleAddLocked(s.natMenu(), req) }

// natSetLocked changes the rules named by =.id= (or =numbers=), all of
// them or, if any id is unknown or any result invalid, none.
func (s *Server) natSetLocked(req *request) []sentence { return s.ruleSetLocked(s.natMenu(), req) }

func (s *Server) natRemoveLocked(req *request) []sentence {
	return s.removeLocked(req, s.nat)
}

// removeLocked removes the rows named by =.id= (or =numbers=); a list
// with any unknown id removes nothing.
func (s *Server) removeLocked(req *request, t *table) []sentence {
	if name, bad := req.unknownAttr(".id", "numbers"); bad {
		return unknownParameter(name)
	}
	if !t.remove(targetIDs(req)) {
		return noSuchItem()
	}
	s.writes++
	return []sentence{done()}
}

// natMoveLocked moves =numbers= before =destination=, or to the end
// without one.
func (s *Server) natMoveLocked(req *request) []sentence { return s.moveLocked(req, s.nat) }

// targetIDs returns the id list of set/remove/move: =.id=, or =numbers=
// as RouterOS also accepts.
func targetIDs(req *request) string {
	if ids, ok := req.attrs[".id"]; ok {
		return ids
	}
	return req.attrs["numbers"]
}

// natParsers check the NAT properties that have a fixed vocabulary; the
// rest of natWritable is free text.
var natParsers = func() map[string]parser {
	m := map[string]parser{}
	for _, name := range natWritable {
		m[name] = nil
	}
	m["disabled"], m["log"] = boolProp, boolProp
	m["action"] = oneOf(natActions)
	m["protocol"] = func(name, v string) (string, []sentence) {
		if !slices.Contains(ipProtocols, v) && !isByte(v) {
			return "", trapDone(1, "input does not match any value of protocol")
		}
		return v, nil
	}
	return m
}()

// validateNAT checks a complete rule. The trap texts are the emulator's;
// ROUTEROS.md §7 leaves RouterOS's exact wording open.
func validateNAT(row map[string]string) []sentence {
	for _, p := range []string{"chain", "action"} {
		if row[p] == "" {
			return trapDone(1, fmt.Sprintf("failure: %s not specified", p))
		}
	}
	proto := row["protocol"]
	for _, p := range portProps {
		if _, ok := row[p]; ok && proto != "tcp" && proto != "udp" && proto != "6" && proto != "17" {
			return trapDone(1, fmt.Sprintf("failure: %s can be used only with protocol tcp or udp", p))
		}
	}
	return nil
}

// parseBool accepts the spellings RouterOS accepts on write and returns
// the one it prints.
func parseBool(v string) (string, bool) {
	switch v {
	case "yes", "true":
		return "true", true
	case "no", "false":
		return "false", true
	}
	return "", false
}

func isByte(v string) bool {
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
		if n > 255 {
			return false
		}
	}
	return v != ""
}

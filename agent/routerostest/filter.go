package routerostest

// This file holds /ip/firewall/filter: rules in list order, like the NAT
// table, with the filter's actions and matchers. Nothing filters traffic:
// the emulator's data plane (UserNAT, nftables) carries NAT only, so a
// filter rule changes what print shows and nothing else.

// filterOrder is the order /ip/firewall/filter/print lists properties in.
var filterOrder = []string{
	"chain", "action", "jump-target", "reject-with", "protocol",
	"src-address", "dst-address", "src-port", "dst-port",
	"src-address-list", "dst-address-list",
	"in-interface", "out-interface", "in-interface-list", "out-interface-list",
	"connection-state", "connection-nat-state", "ipsec-policy",
	"log", "log-prefix", "bytes", "packets", "invalid", "dynamic", "disabled", "comment",
}

// filterWritable are the properties add and set accept; other matchers
// the real menu has (connection-mark, limit, …) are not modelled and are
// refused as unknown parameters.
var filterWritable = []string{
	"chain", "action", "jump-target", "reject-with", "protocol",
	"src-address", "dst-address", "src-port", "dst-port",
	"src-address-list", "dst-address-list",
	"in-interface", "out-interface", "in-interface-list", "out-interface-list",
	"connection-state", "connection-nat-state", "ipsec-policy",
	"log", "log-prefix", "disabled", "comment",
}

// filterDefaults are the properties every rule prints even when never set
// (as the NAT table's, ROUTEROS.md §1.10).
func filterDefaults() map[string]string {
	return map[string]string{
		"log": "false", "log-prefix": "", "bytes": "0", "packets": "0",
		"invalid": "false", "dynamic": "false", "disabled": "false",
	}
}

var filterActions = []string{
	"accept", "add-dst-to-address-list", "add-src-to-address-list", "drop",
	"fasttrack-connection", "jump", "log", "passthrough", "reject", "return", "tarpit",
}

// filterParsers check the filter properties that have a fixed vocabulary;
// the rest of filterWritable is free text.
var filterParsers = func() map[string]parser {
	m := map[string]parser{}
	for _, name := range filterWritable {
		m[name] = nil
	}
	m["disabled"], m["log"] = boolProp, boolProp
	m["action"] = oneOf(filterActions)
	m["protocol"] = natParsers["protocol"]
	return m
}()

// filterMenu is /ip/firewall/filter as a rule menu. Its rules are checked
// as NAT rules are: chain and action required, ports only with tcp or udp.
func (s *Server) filterMenu() ruleMenu {
	return ruleMenu{t: s.filter, writable: filterWritable, parsers: filterParsers, defaults: filterDefaults, validate: validateNAT}
}

func (s *Server) filterPrintLocked(req *request) []sentence {
	return s.printLocked(req, s.filter, s.filter.rows)
}

func (s *Server) filterAddLocked(req *request) []sentence {
	return s.ruleAddLocked(s.filterMenu(), req)
}
func (s *Server) filterSetLocked(req *request) []sentence {
	return s.ruleSetLocked(s.filterMenu(), req)
}
func (s *Server) filterRemoveLocked(req *request) []sentence {
	return s.removeLocked(req, s.filter)
}
func (s *Server) filterMoveLocked(req *request) []sentence { return s.moveLocked(req, s.filter) }

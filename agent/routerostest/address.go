package routerostest

import (
	"maps"
	"slices"
	"strconv"
)

// This file holds /ip/address (ROUTEROS-WIREGUARD.md §3): IPv4 addresses
// with their prefix on an interface, the network derived from them, and
// the read-only actual-interface, dynamic and invalid.

// addressOrder is the order /ip/address/print lists properties in.
var addressOrder = []string{"address", "network", "interface", "actual-interface", "invalid", "dynamic", "disabled", "comment"}

// addressParsers are the properties add and set accept. broadcast and
// netmask (legacy) and copy-from are not modelled and are refused as
// unknown parameters.
var addressParsers = map[string]parser{
	"address":   addressProp,
	"network":   networkProp,
	"interface": nil,
	"comment":   nil,
	"disabled":  boolProp,
}

func addressDefaults() map[string]string {
	return map[string]string{"invalid": "false", "dynamic": "false", "disabled": "false"}
}

// addressProp accepts an IPv4 address with a prefix length ("100.64.0.2/32")
// or without one (then /32), and keeps the host part, as RouterOS does.
func addressProp(name, v string) (string, []sentence) {
	p, ok := parsePrefix(v, true)
	if !ok {
		return "", trapDone(1, "invalid value for argument "+name)
	}
	return p.String(), nil
}

// networkProp accepts an IPv4 address.
func networkProp(name, v string) (string, []sentence) {
	p, ok := parsePrefix(v, true)
	if !ok || p.Bits() != 32 {
		return "", trapDone(1, "invalid value for argument "+name)
	}
	return p.Addr().String(), nil
}

// deriveAddress fills an address row's read-only fields: network (only
// when recompute is set, or it has none), actual-interface and invalid.
//
// network is the address masked by its prefix. For a /32 RouterOS lets
// it be set, to the remote end of a point-to-point link ("configurable
// only for addresses with /32 netmask", MikroTik's manual); a network
// written for any other prefix is recomputed, which is how the emulator
// reads "only" [inference]. An address whose interface does not exist
// (its WireGuard interface was removed, so it names a "*ID") is invalid.
func deriveAddress(row map[string]string, interfaceExists, recompute bool) {
	if p, ok := parsePrefix(row["address"], true); ok {
		if _, has := row["network"]; recompute || !has || p.Bits() != 32 {
			row["network"] = p.Masked().Addr().String()
		}
	}
	if row["interface"] != "" {
		row["actual-interface"] = row["interface"]
	} else {
		delete(row, "actual-interface")
	}
	row["invalid"] = strconv.FormatBool(!interfaceExists)
}

func (s *Server) addressPrintLocked(req *request) []sentence {
	return s.printLocked(req, s.addresses, s.addresses.rows)
}

// addressAddLocked adds an address and answers its id in =ret=.
func (s *Server) addressAddLocked(req *request) []sentence {
	if name, bad := req.unknownAttr(slices.Collect(maps.Keys(addressParsers))...); bad {
		return unknownParameter(name)
	}
	row := addressDefaults()
	if r := applyProps(row, req, addressParsers, addressDefaults()); r != nil {
		return r
	}
	if r := s.checkAddressLocked(row, -1); r != nil {
		return r
	}
	_, explicit := req.attrs["network"]
	deriveAddress(row, true, !explicit)
	id := s.addresses.insert(row, -1)
	s.writes++
	return []sentence{done("=ret=" + id)}
}

// addressSetLocked changes the addresses named by =.id=, all or none. A
// new address recomputes the network unless the request sets it too.
func (s *Server) addressSetLocked(req *request) []sentence {
	allowed := append(slices.Collect(maps.Keys(addressParsers)), ".id", "numbers")
	if name, bad := req.unknownAttr(allowed...); bad {
		return unknownParameter(name)
	}
	idx, ok := s.addresses.lookup(targetIDs(req))
	if !ok {
		return noSuchItem()
	}
	_, newAddress := req.attrs["address"]
	_, explicit := req.attrs["network"]
	updated := make([]map[string]string, len(idx))
	for k, i := range idx {
		updated[k] = maps.Clone(s.addresses.rows[i])
		if r := applyProps(updated[k], req, addressParsers, addressDefaults()); r != nil {
			return r
		}
		if r := s.checkAddressLocked(updated[k], i); r != nil {
			return r
		}
		deriveAddress(updated[k], s.interfaceExistsLocked(updated[k]["interface"]), newAddress && !explicit)
	}
	for k, i := range idx {
		s.addresses.rows[i] = updated[k]
	}
	s.writes++
	return []sentence{done()}
}

func (s *Server) addressRemoveLocked(req *request) []sentence {
	return s.removeLocked(req, s.addresses)
}

// checkAddressLocked checks a complete address about to be stored at
// position self (-1 for a new one): address and interface given, the
// interface existing (an orphan may keep its "*ID"), and the same IP not
// already on that interface ("failure: already have such address",
// ROUTEROS.md §2).
func (s *Server) checkAddressLocked(row map[string]string, self int) []sentence {
	for _, p := range []string{"address", "interface"} {
		if row[p] == "" {
			return trapDone(1, "failure: "+p+" not specified")
		}
	}
	if !s.interfaceExistsLocked(row["interface"]) && (self < 0 || s.addresses.rows[self]["interface"] != row["interface"]) {
		return trapDone(1, "input does not match any value of interface")
	}
	ip, _ := parsePrefix(row["address"], true)
	for i, a := range s.addresses.rows {
		other, _ := parsePrefix(a["address"], true)
		if i != self && a["interface"] == row["interface"] && other.Addr() == ip.Addr() {
			return trapDone(-1, "failure: already have such address")
		}
	}
	return nil
}

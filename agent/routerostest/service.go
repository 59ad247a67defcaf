package routerostest

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"

	"github.com/tpf-dev/tpf/shared/rosschema"
)

// This file holds /ip/service: the router's management services, which
// can be changed and disabled but not added or removed. Only ssh does
// anything here (see StartSSH); the API keeps listening where Start put
// it, whatever its row says.

// serviceOrder is the order /ip/service/print lists properties in.
var serviceOrder = []string{"name", "port", "address", "available-from", "vrf", "max-sessions",
	"certificate", "tls-version", "invalid", "dynamic", "disabled"}

// defaultServices are RouterOS 7's services, in print order, with their
// default ports; www-ssl starts disabled, and the TLS ones have a
// certificate and tls-version (MikroTik's /ip/service reference).
var defaultServices = []struct {
	name     string
	port     int
	disabled bool
	tls      bool
}{
	{"telnet", 23, false, false},
	{"ftp", 21, false, false},
	{"www", 80, false, false},
	{"ssh", 22, false, false},
	{"www-ssl", 443, true, true},
	{"api", 8728, false, false},
	{"winbox", 8291, false, false},
	{"api-ssl", 8729, false, true},
}

// serviceFields says which version-dependent fields the services have:
// vrf (RouterOS 7), max-sessions (7.18 by the dumps) and available-from,
// which 7.24 has and to which it writes a value set with the deprecated
// address (MikroTik's reference) [inference: that 7.24 then prints only
// available-from].
type serviceFields struct {
	vrf, maxSessions, availableFrom bool
}

func serviceFieldsFor(tree *rosschema.Tree) serviceFields {
	if tree == nil {
		return serviceFields{} // 6.x, or 7.x before the dumps
	}
	set, _ := tree.Command("/ip/service/set")
	return serviceFields{vrf: set.Has("vrf"), maxSessions: set.Has("max-sessions"), availableFrom: set.Has("available-from")}
}

// newServices fills /ip/service with the default services.
func (s *Server) newServices() {
	s.services = &table{order: serviceOrder, named: true}
	for _, d := range defaultServices {
		row := map[string]string{
			"name": d.name, "port": strconv.Itoa(d.port), s.serviceAddressField(): "",
			"invalid": "false", "dynamic": "false", "disabled": strconv.FormatBool(d.disabled),
		}
		if s.svcFields.vrf {
			row["vrf"] = "main"
		}
		if s.svcFields.maxSessions {
			row["max-sessions"] = "20"
		}
		if d.tls {
			row["certificate"], row["tls-version"] = "none", "any"
		}
		s.services.insert(row, -1)
	}
}

// serviceAddressField is the property that holds the admitted addresses.
func (s *Server) serviceAddressField() string {
	if s.svcFields.availableFrom {
		return "available-from"
	}
	return "address"
}

// serviceParsers are the properties set accepts: port, the address list
// (address, and available-from where the version has it), disabled. vrf,
// max-sessions, certificate and tls-version are not modelled and are
// refused as unknown parameters.
func (s *Server) serviceParsers() map[string]parser {
	m := map[string]parser{
		"port":     intRange(1, 65535),
		"address":  addressListProp,
		"disabled": boolProp,
	}
	if s.svcFields.availableFrom {
		m["available-from"] = addressListProp
	}
	return m
}

// addressListProp is prefixListProp that also takes the empty list (any
// address).
func addressListProp(name, v string) (string, []sentence) {
	if v == "" {
		return "", nil
	}
	return prefixListProp(name, v)
}

func (s *Server) servicePrintLocked(req *request) []sentence {
	return s.printLocked(req, s.services, s.services.rows)
}

// serviceSetLocked changes the services named by =.id= (ids or names such
// as "ssh"), all of them or none, and moves the SSH stand-in when ssh
// changed.
func (s *Server) serviceSetLocked(req *request) []sentence {
	parsers := s.serviceParsers()
	if name, bad := req.unknownAttr(append(slices.Collect(maps.Keys(parsers)), ".id", "numbers")...); bad {
		return unknownParameter(name)
	}
	idx, ok := s.services.lookup(targetIDs(req))
	if !ok {
		return noSuchItem()
	}
	if s.svcFields.availableFrom {
		req = req.renamed("address", "available-from") // the deprecated name, written through
	}
	defaults := map[string]string{"address": "", "available-from": ""}
	updated := make([]map[string]string, len(idx))
	for k, i := range idx {
		updated[k] = maps.Clone(s.services.rows[i])
		if r := applyProps(updated[k], req, parsers, defaults); r != nil {
			return r
		}
	}
	for k, i := range idx {
		s.services.rows[i] = updated[k]
	}
	s.writes++
	s.servicesChangedLocked()
	return []sentence{done()}
}

// servicesChangedLocked moves the SSH stand-in to where /ip/service ssh
// says it listens now.
func (s *Server) servicesChangedLocked() {
	if err := s.syncSSHLocked(); err != nil {
		s.log.Warn("ssh service cannot listen", "err", err)
	}
}

// serviceAdmitsLocked reports whether the service's address list admits
// addr; RouterOS closes a connection from elsewhere without serving it
// (MikroTik's reference on available-from).
func (s *Server) serviceAdmitsLocked(name string, addr netip.Addr) bool {
	i := s.services.index(name)
	return i >= 0 && addressAdmits(s.services.rows[i][s.serviceAddressField()], addr)
}

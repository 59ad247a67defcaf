package routerostest

import (
	"maps"
	"slices"
)

// ruleMenu describes a firewall rule menu (/ip/firewall/nat, .../filter):
// rows in list order that add, set, remove and move the same way and
// differ only in their properties.
type ruleMenu struct {
	t        *table
	writable []string                           // what add and set accept
	parsers  map[string]parser                  // checks of writable properties; nil entries take any text
	defaults func() map[string]string           // what a rule prints when never set
	validate func(map[string]string) []sentence // checks a complete rule
}

// apply copies the request's writable properties into row, normalising
// booleans to true/false. An empty value unsets an optional property, as
// on RouterOS, so comment= removes the comment.
func (m ruleMenu) apply(row map[string]string, req *request) []sentence {
	return applyProps(row, req, m.parsers, m.defaults())
}

// ruleAddLocked adds a rule at the end, or before place-before, and
// answers its id in =ret=.
func (s *Server) ruleAddLocked(m ruleMenu, req *request) []sentence {
	if name, bad := req.unknownAttr(slices.Concat(m.writable, []string{"place-before"})...); bad {
		return unknownParameter(name)
	}
	row := m.defaults()
	if r := m.apply(row, req); r != nil {
		return r
	}
	if r := m.validate(row); r != nil {
		return r
	}
	before := -1
	if id, ok := req.attrs["place-before"]; ok {
		if before = m.t.index(id); before < 0 {
			return noSuchItem()
		}
	}
	id := m.t.insert(row, before)
	s.writes++
	return []sentence{done("=ret=" + id)}
}

// ruleSetLocked changes the rules named by =.id= (or =numbers=), all of
// them or, if any id is unknown or any result invalid, none.
func (s *Server) ruleSetLocked(m ruleMenu, req *request) []sentence {
	if name, bad := req.unknownAttr(slices.Concat(m.writable, []string{".id", "numbers"})...); bad {
		return unknownParameter(name)
	}
	idx, ok := m.t.lookup(targetIDs(req))
	if !ok {
		return noSuchItem()
	}
	updated := make([]map[string]string, len(idx))
	for k, i := range idx {
		updated[k] = maps.Clone(m.t.rows[i])
		if r := m.apply(updated[k], req); r != nil {
			return r
		}
		if r := m.validate(updated[k]); r != nil {
			return r
		}
	}
	for k, i := range idx {
		m.t.rows[i] = updated[k]
	}
	s.writes++
	return []sentence{done()}
}

// moveLocked moves =numbers= before =destination=, or to the end without
// one.
func (s *Server) moveLocked(req *request, t *table) []sentence {
	if name, bad := req.unknownAttr(".id", "numbers", "destination"); bad {
		return unknownParameter(name)
	}
	idx, ok := t.lookup(targetIDs(req))
	if !ok {
		return noSuchItem()
	}
	dest := ""
	if d, ok := req.attrs["destination"]; ok {
		i := t.index(d)
		if i < 0 {
			return noSuchItem()
		}
		dest = t.rows[i][".id"]
	}
	var moved []map[string]string
	for _, i := range idx {
		moved = append(moved, t.rows[i])
	}
	t.removeAt(idx)
	at := len(t.rows) // also when the destination was itself moved
	if i := t.index(dest); i >= 0 {
		at = i
	}
	t.rows = slices.Insert(t.rows, at, moved...)
	s.writes++
	return []sentence{done()}
}

package routerostest

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// This file holds /user, /user/group and /user/active (the facts are
// listed in doc.go): users log in to the API and to the SSH stand-in
// against this table, and every login is a /user/active row until its
// session ends or the row is removed, which ends the session.

// Policy names of a version, in the order print lists them: RouterOS 7
// (from MikroTik's /user/group reference) and 6 (which has dude and tikapp,
// and no rest-api).
var (
	policies7 = []string{"local", "telnet", "ssh", "ftp", "reboot", "read", "write", "policy", "test",
		"winbox", "password", "web", "sniff", "sensitive", "api", "romon", "rest-api"}
	policies6 = []string{"local", "telnet", "ssh", "ftp", "reboot", "read", "write", "policy", "test",
		"winbox", "password", "web", "sniff", "sensitive", "api", "romon", "dude", "tikapp"}
)

// policiesFor returns the policy names of version v.
func policiesFor(v version) []string {
	if v.atLeast(7, 0, 0) {
		return policies7
	}
	return policies6
}

// Orders in which print lists properties.
var (
	userOrder   = []string{"name", "group", "address", "last-logged-in", "disabled", "comment"}
	groupOrder  = []string{"name", "policy", "skin", "comment"}
	activeOrder = []string{"when", "name", "address", "via", "group", "radius"}
)

// userParsers are the /user properties add and set accept, besides the
// write-only password. inactivity-policy and inactivity-timeout (7.18+)
// and copy-from are not modelled and are refused as unknown parameters.
var userParsers = map[string]parser{
	"name":     userNameProp,
	"group":    nil, // checked against /user/group
	"address":  prefixListProp,
	"disabled": boolProp,
	"comment":  nil,
}

func userDefaults() map[string]string { return map[string]string{"disabled": "false"} }

// groupParsers are the /user/group properties add and set accept besides
// policy, which merges rather than replaces on set.
var groupParsers = map[string]parser{
	"name":    nil,
	"skin":    oneOf([]string{"default"}),
	"comment": nil,
}

func groupDefaults() map[string]string { return map[string]string{"skin": "default"} }

// userNameProp accepts a user name as MikroTik's /user reference says:
// letters, digits and _ . # - @, ending with a letter or digit, not
// starting with . or -. The trap text is the emulator's.
func userNameProp(name, v string) (string, []sentence) {
	ok := v != "" && !strings.HasPrefix(v, ".") && !strings.HasPrefix(v, "-")
	for _, c := range v {
		if !isAlnum(c) && !strings.ContainsRune("_.#-@", c) {
			ok = false
		}
	}
	if !ok || !isAlnum(rune(v[len(v)-1])) {
		return "", trapDone(1, "invalid value for argument "+name)
	}
	return v, nil
}

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// newUserTables fills /user/group with the built-in read, write and full
// groups of the version and /user with users, each in group full.
func (s *Server) newUserTables(users map[string]string) {
	s.groups = &table{order: groupOrder, named: true}
	s.users = &table{order: userOrder, named: true}
	s.active = newTable(activeOrder...)
	all := map[string]bool{}
	for _, p := range s.policies {
		all[p] = true
	}
	without := func(drop ...string) map[string]bool {
		m := maps.Clone(all)
		for _, p := range drop {
			delete(m, p)
		}
		return m
	}
	// The built-in groups as MikroTik's manual prints them: read and write
	// lack ftp and policy (and dude on 6), read lacks write too.
	for _, g := range []struct {
		name string
		has  map[string]bool
	}{
		{"read", without("ftp", "write", "policy", "dude")},
		{"write", without("ftp", "policy", "dude")},
		{"full", all},
	} {
		id := s.groups.insert(map[string]string{"name": g.name, "policy": s.formatPolicy(g.has), "skin": "default"}, -1)
		s.builtinGroups[id] = true
	}
	for _, name := range slices.Sorted(maps.Keys(users)) {
		id := s.users.insert(map[string]string{"name": name, "group": "full", "disabled": "false"}, -1)
		s.passwords[id] = users[name]
	}
}

// formatPolicy writes a policy set the way print shows it: the granted
// policies, then the others negated, each in the version's order.
func (s *Server) formatPolicy(has map[string]bool) string {
	var on, off []string
	for _, p := range s.policies {
		if has[p] {
			on = append(on, p)
		} else {
			off = append(off, "!"+p)
		}
	}
	return strings.Join(append(on, off...), ",")
}

// policySet reads a group's printed policy into the set it grants.
func policySet(policy string) map[string]bool {
	has := map[string]bool{}
	for _, p := range strings.Split(policy, ",") {
		if p != "" && !strings.HasPrefix(p, "!") {
			has[p] = true
		}
	}
	return has
}

// applyPolicy changes has by a written policy list: each name grants, each
// !name revokes. A name the version lacks is refused as RouterOS refuses
// it ("input does not match any value of policy", seen on 7.x for dude).
func (s *Server) applyPolicy(has map[string]bool, v string) []sentence {
	for _, item := range strings.Split(v, ",") {
		name, revoke := strings.CutPrefix(item, "!")
		if !slices.Contains(s.policies, name) {
			return trapDone(1, "input does not match any value of policy")
		}
		has[name] = !revoke
	}
	return nil
}

// --- /user ---

func (s *Server) userPrintLocked(req *request) []sentence {
	return s.printLocked(req, s.users, s.users.rows)
}

// userAddLocked adds a user; name, group and password are required (the
// password may be empty), and the group must exist.
func (s *Server) userAddLocked(req *request) []sentence {
	if name, bad := req.unknownAttr(append(slices.Collect(maps.Keys(userParsers)), "password")...); bad {
		return unknownParameter(name)
	}
	row := userDefaults()
	if r := applyProps(row, req, userParsers, userDefaults()); r != nil {
		return r
	}
	for _, p := range []string{"name", "group"} {
		if row[p] == "" {
			return trapDone(1, "failure: "+p+" not specified")
		}
	}
	pw, ok := req.attrs["password"]
	if !ok {
		return trapDone(1, "failure: password not specified")
	}
	if r := s.checkUserLocked(row, -1); r != nil {
		return r
	}
	id := s.users.insert(row, -1)
	s.passwords[id] = pw
	s.writes++
	return []sentence{done("=ret=" + id)}
}

// userSetLocked changes the users named by =.id= (ids or names), all of
// them or none; a password given is set on each.
func (s *Server) userSetLocked(req *request) []sentence {
	allowed := append(slices.Collect(maps.Keys(userParsers)), "password", ".id", "numbers")
	if name, bad := req.unknownAttr(allowed...); bad {
		return unknownParameter(name)
	}
	idx, ok := s.users.lookup(targetIDs(req))
	if !ok {
		return noSuchItem()
	}
	updated := make([]map[string]string, len(idx))
	for k, i := range idx {
		updated[k] = maps.Clone(s.users.rows[i])
		if r := applyProps(updated[k], req, userParsers, userDefaults()); r != nil {
			return r
		}
		if updated[k]["group"] == "" {
			return trapDone(1, "failure: group not specified")
		}
		if r := s.checkUserLocked(updated[k], i); r != nil {
			return r
		}
	}
	pw, setPassword := req.attrs["password"]
	for k, i := range idx {
		s.users.rows[i] = updated[k]
		if setPassword {
			s.passwords[updated[k][".id"]] = pw
		}
	}
	s.writes++
	return []sentence{done()}
}

// userRemoveLocked removes users. Their sessions go on: the active rows
// stay until the sessions end or are removed themselves (see doc.go).
func (s *Server) userRemoveLocked(req *request) []sentence {
	if name, bad := req.unknownAttr(".id", "numbers"); bad {
		return unknownParameter(name)
	}
	idx, ok := s.users.lookup(targetIDs(req))
	if !ok {
		return noSuchItem()
	}
	for _, i := range idx {
		delete(s.passwords, s.users.rows[i][".id"])
	}
	s.users.removeAt(idx)
	s.writes++
	return []sentence{done()}
}

// checkUserLocked checks a complete user about to be stored at position
// self (-1 for a new one): a name no other user has and a group that
// exists. The trap texts follow ROUTEROS.md's patterns; the duplicate's
// wording is the emulator's.
func (s *Server) checkUserLocked(row map[string]string, self int) []sentence {
	for i, u := range s.users.rows {
		if i != self && u["name"] == row["name"] {
			return trapDone(-1, "failure: user with the same name already exists")
		}
	}
	if s.groups.index(row["group"]) < 0 {
		return trapDone(1, "input does not match any value of group")
	}
	return nil
}

// userLoginLocked checks that name may log in from addr through a service
// whose policy is policy (api, ssh, winbox): the user exists and is
// enabled, its group grants the policy, and addr is within its address
// list when it has one. It returns the user's password, to compare with
// what the client sent, and group.
func (s *Server) userLoginLocked(name string, addr netip.Addr, policy string) (password, group string, ok bool) {
	i := slices.IndexFunc(s.users.rows, func(r map[string]string) bool { return r["name"] == name })
	if i < 0 {
		return "", "", false
	}
	u := s.users.rows[i]
	g := s.groups.index(u["group"])
	if u["disabled"] == "true" || g < 0 || !policySet(s.groups.rows[g]["policy"])[policy] || !addressAdmits(u["address"], addr) {
		return "", "", false
	}
	return s.passwords[u[".id"]], u["group"], true
}

// addressAdmits reports whether addr is within a comma-separated prefix
// list; an empty list admits every address.
func addressAdmits(list string, addr netip.Addr) bool {
	if list == "" {
		return true
	}
	for _, item := range strings.Split(list, ",") {
		if p, ok := parsePrefix(item, false); ok && p.Contains(addr.Unmap()) {
			return true
		}
	}
	return false
}

// --- /user/group ---

func (s *Server) groupPrintLocked(req *request) []sentence {
	return s.printLocked(req, s.groups, s.groups.rows)
}

// groupAddLocked adds a group. add revokes every policy it does not list:
// a group added without policy has none (MikroTik's /user/group
// reference).
func (s *Server) groupAddLocked(req *request) []sentence {
	if name, bad := req.unknownAttr(append(slices.Collect(maps.Keys(groupParsers)), "policy")...); bad {
		return unknownParameter(name)
	}
	row := groupDefaults()
	if r := applyProps(row, req, groupParsers, groupDefaults()); r != nil {
		return r
	}
	if row["name"] == "" {
		return trapDone(1, "failure: name not specified")
	}
	has := map[string]bool{}
	if v, ok := req.attrs["policy"]; ok && v != "" {
		if r := s.applyPolicy(has, v); r != nil {
			return r
		}
	}
	row["policy"] = s.formatPolicy(has)
	if r := s.checkGroupNameLocked(row["name"], -1); r != nil {
		return r
	}
	id := s.groups.insert(row, -1)
	s.writes++
	return []sentence{done("=ret=" + id)}
}

// groupSetLocked changes the groups named by =.id=, all or none. set
// changes only the policies it lists; a new name carries over to the
// group's users.
func (s *Server) groupSetLocked(req *request) []sentence {
	allowed := append(slices.Collect(maps.Keys(groupParsers)), "policy", ".id", "numbers")
	if name, bad := req.unknownAttr(allowed...); bad {
		return unknownParameter(name)
	}
	idx, ok := s.groups.lookup(targetIDs(req))
	if !ok {
		return noSuchItem()
	}
	updated := make([]map[string]string, len(idx))
	for k, i := range idx {
		updated[k] = maps.Clone(s.groups.rows[i])
		if r := applyProps(updated[k], req, groupParsers, groupDefaults()); r != nil {
			return r
		}
		if v, ok := req.attrs["policy"]; ok && v != "" {
			has := policySet(updated[k]["policy"])
			if r := s.applyPolicy(has, v); r != nil {
				return r
			}
			updated[k]["policy"] = s.formatPolicy(has)
		}
		if updated[k]["name"] == "" {
			return trapDone(1, "failure: name not specified")
		}
		if r := s.checkGroupNameLocked(updated[k]["name"], i); r != nil {
			return r
		}
	}
	for k, i := range idx {
		old, name := s.groups.rows[i]["name"], updated[k]["name"]
		s.groups.rows[i] = updated[k]
		for _, u := range s.users.rows {
			if u["group"] == old {
				u["group"] = name
			}
		}
	}
	s.writes++
	return []sentence{done()}
}

// groupRemoveLocked removes groups, but never a built-in one (MikroTik's
// manual: "cannot be removed") nor one a user is in; the trap texts are
// the emulator's [inference: the manual does not say what RouterOS
// answers].
func (s *Server) groupRemoveLocked(req *request) []sentence {
	if name, bad := req.unknownAttr(".id", "numbers"); bad {
		return unknownParameter(name)
	}
	idx, ok := s.groups.lookup(targetIDs(req))
	if !ok {
		return noSuchItem()
	}
	for _, i := range idx {
		g := s.groups.rows[i]
		if s.builtinGroups[g[".id"]] {
			return trapDone(-1, "failure: can not remove default group")
		}
		if slices.ContainsFunc(s.users.rows, func(u map[string]string) bool { return u["group"] == g["name"] }) {
			return trapDone(-1, "failure: group is in use by a user")
		}
	}
	s.groups.removeAt(idx)
	s.writes++
	return []sentence{done()}
}

func (s *Server) checkGroupNameLocked(name string, self int) []sentence {
	for i, g := range s.groups.rows {
		if i != self && g["name"] == name {
			return trapDone(-1, "failure: group with the same name already exists")
		}
	}
	return nil
}

// --- /user/active ---

func (s *Server) activePrintLocked(req *request) []sentence {
	return s.printLocked(req, s.active, s.active.rows)
}

// activeRemoveLocked answers /user/active/remove (7.20 and later) and
// request-logout (before): both end the sessions named by =.id=, all of
// them or, if any id is unknown, none.
func (s *Server) activeRemoveLocked(req *request) []sentence {
	if name, bad := req.unknownAttr(".id", "numbers"); bad {
		return unknownParameter(name)
	}
	idx, ok := s.active.lookup(targetIDs(req))
	if !ok {
		return noSuchItem()
	}
	var ids []string
	for _, i := range idx {
		ids = append(ids, s.active.rows[i][".id"])
	}
	for _, id := range ids {
		s.endActiveLocked(id)
	}
	s.writes++
	return []sentence{done()}
}

// addActiveLocked records a login of user from addr via a service (api,
// ssh) as a /user/active row, and end as the way to end its session. It
// returns the row's id.
func (s *Server) addActiveLocked(user string, addr netip.Addr, via string, end func()) string {
	group := ""
	now := s.dateLocked(time.Now())
	if i := slices.IndexFunc(s.users.rows, func(r map[string]string) bool { return r["name"] == user }); i >= 0 {
		group = s.users.rows[i]["group"]
		s.users.rows[i]["last-logged-in"] = now
	}
	id := s.active.insert(map[string]string{
		"when": now, "name": user, "address": addr.Unmap().String(), "via": via, "group": group, "radius": "false",
	}, -1)
	s.sessionEnds[id] = end
	return id
}

// endActiveLocked removes an active row, if still there, and ends its
// session. The session's own cleanup calls it again, which does nothing.
func (s *Server) endActiveLocked(id string) {
	if end := s.sessionEnds[id]; end != nil {
		delete(s.sessionEnds, id)
		end() // closes a connection; never takes mu
	}
	s.active.remove(id)
}

// dateLocked writes t the way the version prints dates: "2026-09-25
// 09:32:20" on RouterOS 7 (MikroTik's manual), "jul/21/2023 09:38:39" on 6
// (captures).
func (s *Server) dateLocked(t time.Time) string {
	if s.v.atLeast(7, 0, 0) {
		return t.Format(time.DateTime)
	}
	return strings.ToLower(t.Format("Jan")) + t.Format("/02/2006 15:04:05")
}

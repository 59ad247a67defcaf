package reconcile

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tpf-dev/tpf/shared/forward"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// This file plans transient accesses (logins to the router itself) the way
// Compute plans forwards. On the router tpf keeps, per access:
//
//	/user                user tpf-…, group tpf-full or tpf-read,
//	                     address=<edge>/32, comment=tpf:<id>:<expiry>
//	/ip/firewall/filter  chain=input action=accept protocol=tcp
//	                     src-address=<edge> dst-address=<router>
//	                     dst-port=<service port> [in-interface=tpf]
//	                     comment=tpf:<id>:<expiry>, before the router's own rules
//
// and the groups its users are in, by name and comment:
//
//	/user/group          name=tpf-full or tpf-read, comment=tpf:access
//
// A user is tpf's only when its name starts with "tpf-" AND its comment is
// a tpf tag; a filter rule when its comment is a tpf tag (tpf adds no
// other filter rules); a group when both its name and comment are tpf's.
// Nothing else in these menus is ever changed, removed or logged out.
//
// Which policies the groups have, and why, is in USERS.md of package
// routeros.

// Names, comments and menus of what tpf keeps for accesses.
const (
	// AccessUserPrefix starts the name of every user tpf keeps.
	AccessUserPrefix = "tpf-"
	// GroupFull and GroupRead are the groups of full and read-only users.
	GroupFull = "tpf-full"
	GroupRead = "tpf-read"
	// GroupComment marks the groups tpf made.
	GroupComment = "tpf:access"

	MenuUser    = "/user"
	MenuGroup   = "/user/group"
	MenuActive  = "/user/active"
	MenuFilter  = "/ip/firewall/filter"
	MenuService = "/ip/service"
)

// Policies the groups never get: sensitive (reveals secrets: WireGuard
// and IPsec keys, RADIUS and SNMP secrets), policy (user management: a
// transient user could make itself a permanent one) and romon (reaches
// other routers of the RoMON domain from this one, which is beyond a
// login to this router).
var withheldPolicies = []string{"sensitive", "policy", "romon"}

// readPolicies are what a read-only WinBox or SSH login needs: to log in
// through either, to read the configuration, and to run the diagnostic
// tools (ping, traceroute) that change nothing.
var readPolicies = []string{"ssh", "read", "test", "winbox"}

// routerOS7Policies are RouterOS 7's policy names (MikroTik's /user/group
// reference), used only when the router has no built-in full group to read
// them from.
var routerOS7Policies = []string{"local", "telnet", "ssh", "ftp", "reboot", "read", "write", "policy", "test",
	"winbox", "password", "web", "sniff", "sensitive", "api", "romon", "rest-api"}

// Secret is a password on its way to the router. Printed, formatted,
// logged or marshalled it reads "<redacted>"; only string(s) gives the
// password, for the one command that sets it.
type Secret string

const redacted = "<redacted>"

func (Secret) String() string                  { return redacted }
func (Secret) GoString() string                { return redacted }
func (Secret) LogValue() slog.Value            { return slog.StringValue(redacted) }
func (Secret) MarshalText() ([]byte, error)    { return []byte(redacted), nil }
func (s Secret) Format(f fmt.State, verb rune) { fmt.Fprint(f, redacted) }

// AccessRows is what the router holds in the menus accesses use, dynamic
// rows excluded, each in table order: every user, group, active session,
// filter rule (all chains: rules are placed among them) and service.
type AccessRows struct {
	Users    []Row
	Groups   []Row
	Active   []Row
	Rules    []Row
	Services []Row
}

// AccessProperties returns, per menu, the properties the reader must ask
// for (print =.proplist=), .id included. Never a password: RouterOS does
// not print them. A fresh map on every call.
func AccessProperties() map[string][]string {
	return map[string][]string{
		MenuUser:    {".id", propName, propGroup, propAddress, propDisabled, propComment},
		MenuGroup:   {".id", propName, propPolicy, propComment},
		MenuActive:  {".id", propName, propAddress, propVia},
		MenuFilter:  {".id", propChain, propAction, propProtocol, propSrcAddress, propDstAddress, propDstPort, propInInterface, propComment, propDisabled, "dynamic"},
		MenuService: {".id", propName, propPort, propDisabled, propAddress, propAvailableFrom, propInvalid, "dynamic"},
	}
}

// Properties of the access menus besides those of rules and the tunnel.
const (
	propGroup         = "group"
	propPolicy        = "policy"
	propVia           = "via"
	propPort          = "port"
	propAvailableFrom = "available-from"
	propInvalid       = "invalid"
)

// AccessOp is what an AccessStep does.
type AccessOp int

const (
	// OpLogout ends the session of a /user/active row (ID).
	OpLogout AccessOp = iota
	// OpRemove removes the item ID.
	OpRemove
	// OpSet changes Props of the item ID.
	OpSet
	// OpAdd adds an item with Props (and, for a user, Password).
	OpAdd
	// OpMove moves the filter rule ID before the rule PlaceBefore.
	OpMove
)

// AccessStep is one command of an AccessPlan.
type AccessStep struct {
	Op   AccessOp
	Menu string // MenuActive, MenuUser, MenuGroup or MenuFilter
	ID   string // the .id of the item; empty for an add
	// Props holds, for an add, every property of the new item; for a set,
	// only those to change, with their new values.
	Props map[string]string
	// Password is the password of a new user; empty for anything else.
	// It is never set on a user that exists.
	Password Secret
	// PlaceBefore is, for a rule add or move, the .id of the first rule of
	// the input chain that is not tpf's; empty means append (add only).
	PlaceBefore string
	// Accesses are the ids of the accesses that fail when the step fails.
	Accesses []string
}

// AccessPlan is what PlanAccesses decides. Apply Steps in order: logouts,
// then removals of users and rules, then group fixes and adds, user fixes
// and adds, rule fixes, adds and moves, and last the removal of groups no
// user is in any more.
type AccessPlan struct {
	Steps []AccessStep
	// Results has one entry per access of the desired set, in set order;
	// nil when no set was given. StateApplied (with ServicePort) means
	// "in place once the plan is applied": the caller downgrades it to
	// StateFailed for accesses whose steps fail.
	Results []syncproto.Result
	// Next is the earliest expiry, after now, of the accesses whose users
	// or rules stay on the router; zero when none stays.
	Next time.Time
}

// Empty reports whether applying p would change nothing on the router.
func (p AccessPlan) Empty() bool { return len(p.Steps) == 0 }

// NoPasswordError is the Result.Error of an access the agent must refuse
// because its user is missing and no password to create it is known.
func NoPasswordError(username string) string {
	return "the router has no user " + username + " for this access and the agent holds no password to create it " +
		"(the agent restarted, or the user was removed on the router): end this access and create a new one"
}

// access is an admitted access and what it needs on the router.
type access struct {
	id       string
	tag      forward.Tag
	username string
	group    string
	password Secret // to create the user; empty when it exists
	user     map[string]string
	rule     map[string]string // nil when the service's port is unknown
	port     uint16
	problem  string // the service's problem: StateFailed, user and rule kept
}

// PlanAccesses plans the changes that make the router hold exactly the
// desired set's accesses at now, and the result for each. It is
// deterministic and does no I/O. passwords holds what the agent remembers
// of passwords sets sent earlier, by access id; a set's own Password wins.
//
// desired == nil means no set was received yet: only users and rules
// whose tag has expired or is malformed are removed (sessions logged out
// first), the rest is kept as it is, and expiry is still enforced.
//
// Otherwise each access is checked again as the controller checks it;
// one that fails, or has expired, gets no user and no rule, and the ones
// it had are removed after its sessions are logged out. An admitted
// access whose user is missing is refused when no password is known; the
// password of a user that exists is never set. An admitted access whose
// service is disabled, or does not admit the edge's address, is failed
// with a message saying what to change, but its user and rule are kept,
// so that it works once the service is fixed.
func PlanAccesses(desired *syncproto.Desired, cur AccessRows, passwords map[string]string, now time.Time) AccessPlan {
	var p AccessPlan
	users := classifyOwned(cur.Users, isAccessUser)
	rules := classifyOwned(cur.Rules, func(r Row) bool { return forward.IsTPF(r.Props[propComment]) })

	vocabulary := groupVocabulary(cur.Groups)
	wants := map[string]*access{}
	var admitted []*access // in set order
	if desired != nil {
		p.Results, admitted = admitAccesses(desired, cur, users, passwords, now)
		for _, a := range admitted {
			wants[a.id] = a
		}
	}

	// Users: keep one per admitted access, the first with the right name;
	// drop the rest, and every user whose tag has expired, is malformed, or
	// names no admitted access.
	var userFixes, logouts, removals []AccessStep
	keptUser := map[string]bool{}
	droppedUser := make([]bool, len(cur.Users))
	for _, id := range users.order {
		a := wants[id]
		idx := users.byID[id]
		keep := -1
		switch {
		case desired == nil:
			if users.tags[idx[0]].Expires.After(now) {
				keep = idx[0]
				p.Next = earliest(p.Next, users.tags[idx[0]].Expires)
			}
		case a != nil:
			keep = idx[0]
			for _, i := range idx {
				if cur.Users[i].Props[propName] == a.username {
					keep = i
					break
				}
			}
		}
		for _, i := range idx {
			if i != keep {
				droppedUser[i] = true
			}
		}
		if keep >= 0 && a != nil {
			keptUser[id] = true
			if d := userDrift(a.user, cur.Users[keep].Props); d != nil {
				userFixes = append(userFixes, AccessStep{Op: OpSet, Menu: MenuUser, ID: cur.Users[keep].ID, Props: d, Accesses: []string{id}})
			}
		}
	}
	for _, i := range users.bad {
		droppedUser[i] = true
	}
	for i, r := range cur.Users {
		if !droppedUser[i] {
			continue
		}
		ids := tagIDs(r)
		for _, s := range cur.Active {
			if s.Props[propName] == r.Props[propName] {
				logouts = append(logouts, AccessStep{Op: OpLogout, Menu: MenuActive, ID: s.ID, Accesses: ids})
			}
		}
		removals = append(removals, AccessStep{Op: OpRemove, Menu: MenuUser, ID: r.ID, Accesses: ids})
	}

	// Groups: the ones admitted accesses need, made or fixed before their
	// users; the ones no user is in any more, removed last.
	groups := planGroups(cur, admitted, droppedUser, vocabulary)

	// Users to add.
	var userAdds []AccessStep
	for _, a := range admitted {
		if keptUser[a.id] {
			continue
		}
		props := maps.Clone(a.user)
		delete(props, propDisabled) // a new user is enabled by default
		userAdds = append(userAdds, AccessStep{Op: OpAdd, Menu: MenuUser, Props: props, Password: a.password, Accesses: []string{a.id}})
	}

	// Rules: one per admitted access with a known port, in the input chain,
	// before the router's own input rules.
	firstForeign := ""
	for _, r := range cur.Rules {
		if r.Props[propChain] == inputChain && !forward.IsTPF(r.Props[propComment]) {
			firstForeign = r.ID
			break
		}
	}
	var ruleSteps []AccessStep
	keptRule := map[string]bool{}
	droppedRule := make([]bool, len(cur.Rules))
	for _, i := range rules.bad {
		droppedRule[i] = true
	}
	for _, id := range rules.order {
		a := wants[id]
		var inInput []int // tpf's rules of the access in the input chain; others go
		for _, i := range rules.byID[id] {
			if cur.Rules[i].Props[propChain] == inputChain {
				inInput = append(inInput, i)
			}
		}
		chosen := -1
		switch {
		case len(inInput) == 0:
		case desired == nil:
			if tag := rules.tags[inInput[0]]; tag.Expires.After(now) {
				chosen = inInput[0]
				p.Next = earliest(p.Next, tag.Expires)
			}
		case a != nil && a.rule != nil:
			chosen = pickRule(a.rule, cur.Rules, inInput)
		}
		for _, i := range rules.byID[id] {
			if i != chosen {
				droppedRule[i] = true
			}
		}
		if chosen < 0 || a == nil {
			continue
		}
		keptRule[id] = true
		r := cur.Rules[chosen]
		if d, _ := ruleDrift(a.rule, r.Props); d != nil {
			ruleSteps = append(ruleSteps, AccessStep{Op: OpSet, Menu: MenuFilter, ID: r.ID, Props: d, Accesses: []string{id}})
		}
		if firstForeign != "" && ruleIndex(cur.Rules, firstForeign) < chosen {
			ruleSteps = append(ruleSteps, AccessStep{Op: OpMove, Menu: MenuFilter, ID: r.ID, PlaceBefore: firstForeign, Accesses: []string{id}})
		}
	}
	for i, r := range cur.Rules {
		if droppedRule[i] {
			removals = append(removals, AccessStep{Op: OpRemove, Menu: MenuFilter, ID: r.ID, Accesses: tagIDs(r)})
		}
	}
	for _, a := range admitted {
		if a.rule == nil || keptRule[a.id] {
			continue
		}
		props := maps.Clone(a.rule)
		delete(props, propDisabled) // a new rule is enabled by default
		ruleSteps = append(ruleSteps, AccessStep{Op: OpAdd, Menu: MenuFilter, Props: props, PlaceBefore: firstForeign, Accesses: []string{a.id}})
	}

	for _, a := range admitted {
		p.Next = earliest(p.Next, a.tag.Expires)
	}
	p.Steps = slices.Concat(logouts, removals, groups.fix, userFixes, userAdds, ruleSteps, groups.remove)
	return p
}

// ownedRows is the classification of a menu's rows that may be tpf's.
type ownedRows struct {
	byID  map[string][]int // access id → indices of rows with its valid tag, in order
	order []string         // access ids in order of first appearance
	tags  map[int]forward.Tag
	bad   []int // tpf's rows whose tag is malformed
}

// classifyOwned sorts the rows mine reports as tpf's by the access id of
// their tag.
func classifyOwned(rows []Row, mine func(Row) bool) ownedRows {
	o := ownedRows{byID: map[string][]int{}, tags: map[int]forward.Tag{}}
	for i, r := range rows {
		if !mine(r) {
			continue
		}
		tag, err := forward.ParseTag(r.Props[propComment])
		if err != nil {
			o.bad = append(o.bad, i)
			continue
		}
		if o.byID[tag.ID] == nil {
			o.order = append(o.order, tag.ID)
		}
		o.byID[tag.ID] = append(o.byID[tag.ID], i)
		o.tags[i] = tag
	}
	return o
}

// isAccessUser reports whether a user is tpf's: its name starts with
// AccessUserPrefix and its comment is a tpf tag.
func isAccessUser(r Row) bool {
	return strings.HasPrefix(r.Props[propName], AccessUserPrefix) && forward.IsTPF(r.Props[propComment])
}

// tagIDs returns the access id of a row's tag, as a one-element list; nil
// when the tag is malformed.
func tagIDs(r Row) []string {
	if tag, err := forward.ParseTag(r.Props[propComment]); err == nil {
		return []string{tag.ID}
	}
	return nil
}

// admitAccesses checks every desired access and returns one result per
// access, in set order, and the accesses that get a user and a rule.
func admitAccesses(d *syncproto.Desired, cur AccessRows, users ownedRows, passwords map[string]string, now time.Time) ([]syncproto.Result, []*access) {
	results := make([]syncproto.Result, 0, len(d.Accesses))
	var admitted []*access
	setErr := checkEndpoints(d.TunnelAddress, d.EdgeAddress)
	foreignGroup := map[string]string{} // group name → .id of a group with that name that is not tpf's
	for _, g := range cur.Groups {
		if name := g.Props[propName]; (name == GroupFull || name == GroupRead) && g.Props[propComment] != GroupComment {
			foreignGroup[name] = g.ID
		}
	}
	seenID, seenName := map[string]bool{}, map[string]bool{}
	for _, a := range d.Accesses {
		res := syncproto.Result{ID: a.ID}
		tag := forward.Tag{ID: a.ID, Expires: time.Unix(a.ExpiresAt.Unix(), 0).UTC()}
		err := setErr
		if err == nil {
			err = checkAccess(a)
		}
		if err == nil && seenID[a.ID] {
			err = errors.New("duplicate access id in the desired set")
		}
		if err == nil && seenName[a.Username] {
			err = fmt.Errorf("username %s is used by another access of the desired set", a.Username)
		}
		seenID[a.ID], seenName[a.Username] = true, true
		group := GroupFull
		if a.ReadOnly {
			group = GroupRead
		}
		_, hasUser := users.byID[a.ID]
		password := a.Password
		if password == "" {
			password = passwords[a.ID]
		}
		switch {
		case err != nil:
			res.State, res.Error = syncproto.StateRefused, err.Error()
		case !tag.Expires.After(now):
			res.State = syncproto.StateExpired
		case !tagRoundTrips(tag):
			res.State = syncproto.StateRefused
			res.Error = fmt.Sprintf("expires_at %s cannot be written in a tag", a.ExpiresAt.UTC().Format(time.RFC3339))
		case foreignGroup[group] != "":
			res.State = syncproto.StateFailed
			res.Error = fmt.Sprintf("the router has a user group named %s (%s) that tpf did not make (its comment is not %q): "+
				"tpf leaves it alone and makes no user in it; rename or remove it", group, foreignGroup[group], GroupComment)
		case !hasUser && foreignUser(cur.Users, a.Username) != "":
			res.State = syncproto.StateFailed
			res.Error = fmt.Sprintf("the router has a user named %s (%s) that tpf did not make (its comment is not a tpf tag): "+
				"tpf leaves it alone; remove it, or end this access", a.Username, foreignUser(cur.Users, a.Username))
		case !hasUser && password == "":
			res.State, res.Error = syncproto.StateRefused, NoPasswordError(a.Username)
		default:
			acc := &access{id: a.ID, tag: tag, username: a.Username, group: group}
			if !hasUser {
				acc.password = Secret(password)
			}
			acc.user = map[string]string{
				propName: a.Username, propGroup: group, propAddress: netip.PrefixFrom(d.EdgeAddress, 32).String(),
				propComment: tag.String(), propDisabled: "false",
			}
			acc.port, acc.problem = checkService(cur.Services, a.Service, d.EdgeAddress)
			if acc.port != 0 {
				acc.rule = map[string]string{
					propChain: inputChain, propAction: "accept", propProtocol: "tcp",
					propSrcAddress: d.EdgeAddress.String(), propDstAddress: d.TunnelAddress.String(),
					propDstPort: strconv.Itoa(int(acc.port)), propComment: tag.String(), propDisabled: "false",
				}
				if d.Tunnel != nil {
					acc.rule[propInInterface] = TunnelInterface
				}
			}
			if acc.problem != "" {
				res.State, res.Error = syncproto.StateFailed, acc.problem
			} else {
				res.State, res.ServicePort = syncproto.StateApplied, acc.port
			}
			admitted = append(admitted, acc)
		}
		results = append(results, res)
	}
	return results, admitted
}

// checkAccess applies the controller's rules to one access: a canonical
// id, a known service, and a username tpf makes: AccessUserPrefix and
// lower-case letters, digits, '-', '_' or '.', ending in a letter or digit,
// at most 64 characters.
func checkAccess(a syncproto.Access) error {
	if _, err := forward.ParseTag(forward.TagPrefix + a.ID + ":1"); err != nil {
		return fmt.Errorf("id %q is not a canonical lower-case UUID", a.ID)
	}
	if a.Service != syncproto.ServiceSSH && a.Service != syncproto.ServiceWinbox {
		return fmt.Errorf("service %q is neither %s nor %s", a.Service, syncproto.ServiceSSH, syncproto.ServiceWinbox)
	}
	rest, ok := strings.CutPrefix(a.Username, AccessUserPrefix)
	valid := ok && rest != "" && len(a.Username) <= 64
	for _, c := range rest {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			valid = false
		}
	}
	if !valid || !isLowerAlnum(a.Username[len(a.Username)-1]) {
		return fmt.Errorf("username %q is not one tpf makes (%s and lower-case letters or digits)", a.Username, AccessUserPrefix)
	}
	return nil
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// foreignUser returns the .id of a user named name that is not tpf's, "".
func foreignUser(users []Row, name string) string {
	for _, u := range users {
		if u.Props[propName] == name && !isAccessUser(u) {
			return u.ID
		}
	}
	return ""
}

// checkService reads the /ip/service row of service and returns the port
// it listens on (0 when there is no such service, or its port is
// unreadable) and what keeps the edge from reaching it, "" when nothing:
// the service disabled, invalid, or its address list not admitting edge.
// RouterOS 7.24 calls the list available-from (address is its deprecated
// name); either is read.
func checkService(services []Row, service string, edge netip.Addr) (uint16, string) {
	i := slices.IndexFunc(services, func(r Row) bool { return r.Props[propName] == service })
	if i < 0 {
		return 0, fmt.Sprintf("the router has no %s service in /ip service", service)
	}
	p := services[i].Props
	port, err := strconv.ParseUint(p[propPort], 10, 16)
	if err != nil || port == 0 {
		return 0, fmt.Sprintf("the router's %s service has no readable port (/ip service %s port=%q)", service, service, p[propPort])
	}
	switch {
	case p[propDisabled] == "true" || p[propDisabled] == "yes":
		return uint16(port), fmt.Sprintf("the router's %s service is disabled: enable it (/ip service enable %s)", service, service)
	case p[propInvalid] == "true" || p[propInvalid] == "yes":
		return uint16(port), fmt.Sprintf("the router's %s service is invalid (its port %d may be taken by another service): "+
			"give it a free port (/ip service set %s port=…)", service, port, service)
	}
	field := propAddress
	if _, ok := p[propAvailableFrom]; ok {
		field = propAvailableFrom
	}
	if list := p[field]; !listAdmits(list, edge) {
		return uint16(port), fmt.Sprintf("the router's %s service accepts connections only from %s, which does not include the edge's tunnel address %s: "+
			"add it (/ip service set %s %s=%s,%s/32) or clear the list", service, list, edge, service, field, list, edge)
	}
	return uint16(port), ""
}

// listAdmits reports whether a comma-separated list of prefixes (bare
// addresses count as whole-length prefixes) contains a; an empty list
// admits every address. Entries that do not parse (IPv6 ones parse and
// simply do not contain an IPv4 address) admit nothing.
func listAdmits(list string, a netip.Addr) bool {
	if strings.TrimSpace(list) == "" {
		return true
	}
	for _, item := range strings.Split(list, ",") {
		set, ok := prefixSet(item)
		if !ok {
			continue
		}
		for p := range set {
			if p.Contains(a) {
				return true
			}
		}
	}
	return false
}

// userDrift returns the properties of a tpf user that differ from want,
// with the values to set; nil when none. The address compares as a set of
// prefixes; the password is never compared nor set.
func userDrift(want, got map[string]string) map[string]string {
	d := diffProps([]string{propName, propGroup, propComment, propDisabled}, want, got)
	if !samePrefixes(want[propAddress], got[propAddress]) {
		if d == nil {
			d = map[string]string{}
		}
		d[propAddress] = want[propAddress]
	}
	return d
}

// ruleProps are the filter rule properties compared.
var ruleProps = []string{propChain, propAction, propProtocol, propSrcAddress, propDstAddress, propDstPort, propInInterface, propComment, propDisabled}

// inputChain is the filter chain of connections to the router itself.
const inputChain = "input"

// ruleDrift returns the properties of a tpf rule that differ from want,
// with the values to set (nil when none), and whether the rule must be
// added again instead: it matches an in-interface that want has none of,
// which a set cannot take away.
func ruleDrift(want, got map[string]string) (map[string]string, bool) {
	_, wantIface := want[propInInterface]
	return diffProps(ruleProps, want, got), !wantIface && got[propInInterface] != ""
}

// pickRule returns which of the rules at idx to keep for want: the first
// that needs no fix, else the first; -1 when the one it would keep must be
// added again (see ruleDrift).
func pickRule(want map[string]string, rules []Row, idx []int) int {
	for _, i := range idx {
		if d, readd := ruleDrift(want, rules[i].Props); d == nil && !readd {
			return i
		}
	}
	if _, readd := ruleDrift(want, rules[idx[0]].Props); readd {
		return -1
	}
	return idx[0]
}

func ruleIndex(rules []Row, id string) int {
	return slices.IndexFunc(rules, func(r Row) bool { return r.ID == id })
}

// groupVocabulary returns the policy names the router knows: those the
// built-in full group lists, granted or negated ("!ftp"), which is every
// policy of its version; RouterOS 7's list when there is no such group.
func groupVocabulary(groups []Row) []string {
	for _, g := range groups {
		if g.Props[propName] != "full" || g.Props[propPolicy] == "" {
			continue
		}
		var names []string
		for _, p := range strings.Split(g.Props[propPolicy], ",") {
			if p = strings.TrimPrefix(p, "!"); p != "" && !slices.Contains(names, p) {
				names = append(names, p)
			}
		}
		return names
	}
	return routerOS7Policies
}

// GroupPolicies returns the policies tpf gives group (GroupFull or
// GroupRead) on a router that knows the policy names vocabulary: full gets
// every one but the withheld ones, read the read-only ones it has.
func GroupPolicies(group string, vocabulary []string) []string {
	var out []string
	for _, p := range vocabulary {
		if group == GroupRead && slices.Contains(readPolicies, p) ||
			group == GroupFull && !slices.Contains(withheldPolicies, p) {
			out = append(out, p)
		}
	}
	return out
}

// groupPlan is what planGroups decides.
type groupPlan struct {
	fix    []AccessStep // adds and policy fixes, before the users
	remove []AccessStep // groups no user is in any more, last
}

// planGroups makes or fixes the groups admitted accesses need, and
// removes tpf's groups that no user will be in once the plan is applied.
// A group's policy is fixed by listing every wanted policy and negating
// each other one it has, since set changes only the policies it lists;
// every name sent is the vocabulary's or the router's own.
func planGroups(cur AccessRows, admitted []*access, droppedUser []bool, vocabulary []string) groupPlan {
	var gp groupPlan
	need := map[string][]string{} // group → ids of the accesses needing it
	for _, a := range admitted {
		need[a.group] = append(need[a.group], a.id)
	}
	for _, name := range []string{GroupFull, GroupRead} {
		ids := need[name]
		if ids == nil {
			continue
		}
		want := GroupPolicies(name, vocabulary)
		i := slices.IndexFunc(cur.Groups, func(g Row) bool {
			return g.Props[propName] == name && g.Props[propComment] == GroupComment
		})
		if i < 0 {
			gp.fix = append(gp.fix, AccessStep{Op: OpAdd, Menu: MenuGroup, Accesses: ids,
				Props: map[string]string{propName: name, propPolicy: strings.Join(want, ","), propComment: GroupComment}})
			continue
		}
		has := policySet(cur.Groups[i].Props[propPolicy])
		var extra []string
		for _, p := range splitPolicy(cur.Groups[i].Props[propPolicy]) {
			if has[p] && !slices.Contains(want, p) {
				extra = append(extra, "!"+p)
			}
		}
		missing := slices.ContainsFunc(want, func(p string) bool { return !has[p] })
		if missing || len(extra) > 0 {
			gp.fix = append(gp.fix, AccessStep{Op: OpSet, Menu: MenuGroup, ID: cur.Groups[i].ID, Accesses: ids,
				Props: map[string]string{propPolicy: strings.Join(append(slices.Clone(want), extra...), ",")}})
		}
	}
	used := map[string]bool{}
	for i, u := range cur.Users {
		if !droppedUser[i] {
			used[u.Props[propGroup]] = true
		}
	}
	for name := range need {
		used[name] = true
	}
	for _, g := range cur.Groups {
		if g.Props[propComment] == GroupComment && strings.HasPrefix(g.Props[propName], AccessUserPrefix) && !used[g.Props[propName]] {
			gp.remove = append(gp.remove, AccessStep{Op: OpRemove, Menu: MenuGroup, ID: g.ID})
		}
	}
	return gp
}

// splitPolicy lists the names of a printed policy, negations stripped.
func splitPolicy(policy string) []string {
	var out []string
	for _, p := range strings.Split(policy, ",") {
		if p = strings.TrimPrefix(p, "!"); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// policySet reads a printed policy into the set of policies it grants.
func policySet(policy string) map[string]bool {
	has := map[string]bool{}
	for _, p := range strings.Split(policy, ",") {
		if p != "" && !strings.HasPrefix(p, "!") {
			has[p] = true
		}
	}
	return has
}

// earliest returns the earlier of two times, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// AccessPresent lists the ids of the accesses that have a tpf user or a
// tpf filter rule among rows (Report.Present's share of accesses), in
// order of first appearance, users first.
func AccessPresent(cur AccessRows) []string {
	ids := []string{}
	seen := map[string]bool{}
	add := func(rows []Row, mine func(Row) bool) {
		for _, r := range rows {
			if !mine(r) {
				continue
			}
			if tag, err := forward.ParseTag(r.Props[propComment]); err == nil && !seen[tag.ID] {
				seen[tag.ID] = true
				ids = append(ids, tag.ID)
			}
		}
	}
	add(cur.Users, isAccessUser)
	add(cur.Rules, func(r Row) bool { return forward.IsTPF(r.Props[propComment]) })
	return ids
}

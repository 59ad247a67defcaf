package reconcile

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

const (
	user1 = "tpf-k3m9x2q7ab"
	user2 = "tpf-p4n8c6w2zz"
	pw1   = "Xq7-mK2_pL9.vR4+wT8-hN3_"
)

// fullPolicy is the built-in full group of RouterOS 7 as it prints.
var fullPolicy = strings.Join(routerOS7Policies, ",")

func acc(id, user, pw string, expires time.Time) syncproto.Access {
	return syncproto.Access{ID: id, Service: syncproto.ServiceSSH, Username: user, Password: pw, ExpiresAt: expires}
}

func accessDesired(as ...syncproto.Access) *syncproto.Desired {
	d := set()
	d.Accesses = as
	return d
}

// router is a router's access menus as a test builds them: the built-in
// groups, the default services, and whatever else is added.
func router() AccessRows {
	return AccessRows{
		Groups: rows(
			map[string]string{"name": "read", "policy": "local,telnet,ssh,reboot,read,test,winbox,password,web,sniff,sensitive,api,romon,rest-api,!ftp,!write,!policy"},
			map[string]string{"name": "write", "policy": "local,telnet,ssh,reboot,read,write,test,winbox,password,web,sniff,sensitive,api,romon,rest-api,!ftp,!policy"},
			map[string]string{"name": "full", "policy": fullPolicy},
		),
		Users: rows(map[string]string{"name": "admin", "group": "full", "disabled": "false"}),
		Services: rows(
			map[string]string{"name": "ssh", "port": "22", "address": "", "disabled": "false", "invalid": "false"},
			map[string]string{"name": "winbox", "port": "8291", "address": "", "disabled": "false", "invalid": "false"},
		),
	}
}

// applyAccessPlan carries a plan out on rows the way RouterOS would, well
// enough for the planner's tests: ids continue from the highest.
func applyAccessPlan(t testing.TB, cur AccessRows, p AccessPlan) AccessRows {
	t.Helper()
	deep := func(rs []Row) []Row {
		out := make([]Row, len(rs))
		for i, r := range rs {
			out[i] = Row{ID: r.ID, Props: maps.Clone(r.Props)}
		}
		return out
	}
	out := AccessRows{Users: deep(cur.Users), Groups: deep(cur.Groups), Active: deep(cur.Active),
		Rules: deep(cur.Rules), Services: deep(cur.Services)}
	menus := map[string]*[]Row{MenuUser: &out.Users, MenuGroup: &out.Groups, MenuActive: &out.Active, MenuFilter: &out.Rules}
	next := 100
	for _, s := range p.Steps {
		rs := menus[s.Menu]
		if s.Op == OpLogout {
			rs = &out.Active
		}
		i := slices.IndexFunc(*rs, func(r Row) bool { return r.ID == s.ID })
		switch s.Op {
		case OpLogout, OpRemove:
			if i < 0 {
				t.Fatalf("step %+v: no such item", s)
			}
			*rs = slices.Delete(*rs, i, i+1)
		case OpSet:
			if i < 0 {
				t.Fatalf("step %+v: no such item", s)
			}
			props := maps.Clone((*rs)[i].Props)
			if s.Menu == MenuGroup {
				has := policySet(props[propPolicy])
				for _, p := range strings.Split(s.Props[propPolicy], ",") {
					name, neg := strings.CutPrefix(p, "!")
					has[name] = !neg
				}
				props[propPolicy] = formatPolicy(has)
			} else {
				maps.Copy(props, s.Props)
			}
			if props[propDisabled] == "no" { // as RouterOS prints it back
				props[propDisabled] = "false"
			}
			(*rs)[i] = Row{ID: s.ID, Props: props}
		case OpAdd, OpMove:
			row := Row{ID: fmt.Sprintf("*%d", next), Props: maps.Clone(s.Props)}
			next++
			if s.Op == OpMove {
				row = (*rs)[i]
				*rs = slices.Delete(*rs, i, i+1)
			} else {
				row.Props[propDisabled] = "false"
				if s.Menu == MenuGroup {
					row.Props[propPolicy] = formatPolicy(policySet(s.Props[propPolicy]))
				}
			}
			at := len(*rs)
			if s.PlaceBefore != "" {
				at = slices.IndexFunc(*rs, func(r Row) bool { return r.ID == s.PlaceBefore })
			}
			*rs = slices.Insert(*rs, at, row)
		}
	}
	return out
}

// formatPolicy prints a policy set as RouterOS 7 does.
func formatPolicy(has map[string]bool) string {
	var on, off []string
	for _, p := range routerOS7Policies {
		if has[p] {
			on = append(on, p)
		} else {
			off = append(off, "!"+p)
		}
	}
	return strings.Join(append(on, off...), ",")
}

func TestPlanAccessesNew(t *testing.T) {
	d := accessDesired(acc(id1, user1, pw1, later))
	d.Tunnel = &syncproto.Tunnel{}
	cur := router()
	cur.Rules = rows(map[string]string{"chain": "input", "action": "drop", "in-interface-list": "!LAN", "comment": "defconf"})
	p := PlanAccesses(d, cur, nil, now)
	tg := tag(id1, later)
	want := []AccessStep{
		{Op: OpAdd, Menu: MenuGroup, Accesses: []string{id1}, Props: map[string]string{"name": GroupFull, "comment": GroupComment,
			"policy": "local,telnet,ssh,ftp,reboot,read,write,test,winbox,password,web,sniff,api,rest-api"}},
		{Op: OpAdd, Menu: MenuUser, Accesses: []string{id1}, Password: pw1, Props: map[string]string{"name": user1, "group": GroupFull,
			"address": edge + "/32", "comment": tg}},
		{Op: OpAdd, Menu: MenuFilter, Accesses: []string{id1}, PlaceBefore: "*1", Props: map[string]string{"chain": "input", "action": "accept",
			"protocol": "tcp", "src-address": edge, "dst-address": tunnel, "dst-port": "22", "in-interface": TunnelInterface, "comment": tg}},
	}
	if !reflect.DeepEqual(p.Steps, want) {
		t.Errorf("steps:\ngot  %s\nwant %s", dump(p.Steps), dump(want))
	}
	if want := []syncproto.Result{{ID: id1, State: syncproto.StateApplied, ServicePort: 22}}; !reflect.DeepEqual(p.Results, want) {
		t.Errorf("results: got %+v, want %+v", p.Results, want)
	}
	if !p.Next.Equal(later) {
		t.Errorf("next: got %v, want %v", p.Next, later)
	}

	// Applied, the same set plans nothing; the agent then holds no
	// password, and needs none.
	after := applyAccessPlan(t, cur, p)
	if again := PlanAccesses(d, after, nil, now); !again.Empty() || !reflect.DeepEqual(again.Results, p.Results) {
		t.Errorf("second pass: steps %s, results %+v", dump(again.Steps), again.Results)
	}
	if got := AccessPresent(after); !slices.Equal(got, []string{id1}) {
		t.Errorf("present: got %v", got)
	}
}

func TestPlanAccessesEnd(t *testing.T) {
	d := accessDesired(acc(id1, user1, pw1, later), acc(id2, user2, pw1, latest))
	cur := router()
	on := applyAccessPlan(t, cur, PlanAccesses(d, cur, nil, now))
	on.Active = rows(
		map[string]string{"name": user1, "address": edge, "via": "ssh"},
		map[string]string{"name": "admin", "address": "192.168.88.2", "via": "winbox"},
		map[string]string{"name": user1, "address": edge, "via": "ssh"},
	)

	// id1 revoked: its sessions out first, then its user and rule; the
	// group stays for id2.
	p := PlanAccesses(accessDesired(acc(id2, user2, "", latest)), on, nil, now)
	var ops []string
	for _, s := range p.Steps {
		ops = append(ops, fmt.Sprintf("%d %s %s", s.Op, s.Menu, s.ID))
	}
	userID := on.Users[1].ID
	ruleID := on.Rules[0].ID
	want := []string{"0 /user/active *1", "0 /user/active *3", "1 /user " + userID, "1 /ip/firewall/filter " + ruleID}
	if !slices.Equal(ops, want) {
		t.Errorf("steps: got %v, want %v", ops, want)
	}
	off := applyAccessPlan(t, on, p)

	// id2 expires on the agent's clock: everything of tpf goes, the group
	// last, and the admin's session stays.
	p = PlanAccesses(accessDesired(acc(id2, user2, "", latest)), off, nil, latest)
	if want := []syncproto.Result{{ID: id2, State: syncproto.StateExpired}}; !reflect.DeepEqual(p.Results, want) {
		t.Errorf("results: got %+v", p.Results)
	}
	last := p.Steps[len(p.Steps)-1]
	if last.Op != OpRemove || last.Menu != MenuGroup {
		t.Errorf("last step: got %+v, want the group's removal", last)
	}
	gone := applyAccessPlan(t, off, p)
	if len(gone.Users) != 1 || len(gone.Rules) != 0 || len(gone.Groups) != 3 || len(gone.Active) != 1 {
		t.Errorf("left: %s", dump(gone))
	}
}

func TestPlanAccessesWithoutSet(t *testing.T) {
	d := accessDesired(acc(id1, user1, pw1, later), acc(id2, user2, pw1, latest))
	cur := router()
	on := applyAccessPlan(t, cur, PlanAccesses(d, cur, nil, now))
	// Someone edited a user: without a set it is left as it is.
	on.Users[1].Props["disabled"] = "true"
	if p := PlanAccesses(nil, on, nil, now); !p.Empty() || !p.Next.Equal(later) || p.Results != nil {
		t.Errorf("before any expiry: %s", dump(p))
	}
	p := PlanAccesses(nil, on, nil, later)
	after := applyAccessPlan(t, on, p)
	if got := AccessPresent(after); !slices.Equal(got, []string{id2}) || !p.Next.Equal(latest) {
		t.Errorf("after the first expiry: present %v, next %v", got, p.Next)
	}
}

func TestPlanAccessesRefused(t *testing.T) {
	good := acc(id1, user1, pw1, later)
	cur := router()
	cur.Users = append(cur.Users, Row{ID: "*9", Props: map[string]string{"name": "tpf-taken00", "group": "full"}})
	tests := []struct {
		name string
		a    syncproto.Access
		want syncproto.Result
	}{
		{"no password", acc(id1, user1, "", later), syncproto.Result{State: syncproto.StateRefused, Error: NoPasswordError(user1)}},
		{"expired", acc(id1, user1, pw1, past), syncproto.Result{State: syncproto.StateExpired}},
		{"bad id", acc("X", user1, pw1, later), syncproto.Result{State: syncproto.StateRefused, Error: `id "X" is not a canonical lower-case UUID`}},
		{"not tpf's name", acc(id1, "admin", pw1, later), syncproto.Result{State: syncproto.StateRefused,
			Error: `username "admin" is not one tpf makes (tpf- and lower-case letters or digits)`}},
		{"bad service", func() syncproto.Access { a := good; a.Service = "telnet"; return a }(), syncproto.Result{State: syncproto.StateRefused,
			Error: `service "telnet" is neither ssh nor winbox`}},
		{"name taken", acc(id1, "tpf-taken00", pw1, later), syncproto.Result{State: syncproto.StateFailed,
			Error: "the router has a user named tpf-taken00 (*9) that tpf did not make (its comment is not a tpf tag): tpf leaves it alone; remove it, or end this access"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := PlanAccesses(accessDesired(tc.a), cur, nil, now)
			tc.want.ID = tc.a.ID
			if !reflect.DeepEqual(p.Results, []syncproto.Result{tc.want}) {
				t.Errorf("results: got %+v, want %+v", p.Results, tc.want)
			}
			if !p.Empty() {
				t.Errorf("steps: got %s, want none", dump(p.Steps))
			}
		})
	}
}

func TestPlanAccessesForeignGroup(t *testing.T) {
	cur := router()
	cur.Groups = append(cur.Groups, Row{ID: "*7", Props: map[string]string{"name": GroupFull, "policy": "read"}})
	p := PlanAccesses(accessDesired(acc(id1, user1, pw1, later)), cur, nil, now)
	if p.Results[0].State != syncproto.StateFailed || !strings.Contains(p.Results[0].Error, "user group named tpf-full (*7) that tpf did not make") || !p.Empty() {
		t.Errorf("got %s", dump(p))
	}
}

func TestPlanAccessesService(t *testing.T) {
	tests := []struct {
		name    string
		service map[string]string
		want    syncproto.Result
		rule    bool
	}{
		{"moved", map[string]string{"port": "2222"}, syncproto.Result{State: syncproto.StateApplied, ServicePort: 2222}, true},
		{"admits the edge", map[string]string{"address": "10.99.0.0/24,fd00::/64"}, syncproto.Result{State: syncproto.StateApplied, ServicePort: 22}, true},
		{"disabled", map[string]string{"disabled": "true"}, syncproto.Result{State: syncproto.StateFailed,
			Error: "the router's ssh service is disabled: enable it (/ip service enable ssh)"}, true},
		{"restricted", map[string]string{"address": "192.168.88.0/24"}, syncproto.Result{State: syncproto.StateFailed,
			Error: "the router's ssh service accepts connections only from 192.168.88.0/24, which does not include the edge's tunnel address 10.99.0.254: add it (/ip service set ssh address=192.168.88.0/24,10.99.0.254/32) or clear the list"}, true},
		{"restricted on 7.24", map[string]string{"available-from": "192.168.88.1"}, syncproto.Result{State: syncproto.StateFailed,
			Error: "the router's ssh service accepts connections only from 192.168.88.1, which does not include the edge's tunnel address 10.99.0.254: add it (/ip service set ssh available-from=192.168.88.1,10.99.0.254/32) or clear the list"}, true},
		{"invalid", map[string]string{"invalid": "true"}, syncproto.Result{State: syncproto.StateFailed,
			Error: "the router's ssh service is invalid (its port 22 may be taken by another service): give it a free port (/ip service set ssh port=…)"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cur := router()
			maps.Copy(cur.Services[0].Props, tc.service)
			p := PlanAccesses(accessDesired(acc(id1, user1, pw1, later)), cur, nil, now)
			tc.want.ID = id1
			if !reflect.DeepEqual(p.Results, []syncproto.Result{tc.want}) {
				t.Errorf("results: got %+v, want %+v", p.Results, tc.want)
			}
			hasRule := slices.ContainsFunc(p.Steps, func(s AccessStep) bool { return s.Menu == MenuFilter })
			if hasRule != tc.rule {
				t.Errorf("rule planned: got %v, want %v (%s)", hasRule, tc.rule, dump(p.Steps))
			}
		})
	}
}

func TestPlanAccessesRepairs(t *testing.T) {
	d := accessDesired(acc(id1, user1, pw1, later))
	cur := router()
	cur.Rules = rows(map[string]string{"chain": "input", "action": "drop", "comment": "defconf"})
	on := applyAccessPlan(t, cur, PlanAccesses(d, cur, nil, now))

	edited := applyAccessPlan(t, on, AccessPlan{}) // a deep copy
	edited.Users[1].Props["disabled"] = "true"
	edited.Users[1].Props["address"] = ""
	edited.Groups[3].Props["policy"] = formatPolicy(map[string]bool{"ssh": true, "sensitive": true})
	edited.Rules = []Row{edited.Rules[1], edited.Rules[0]} // the router's drop moved above tpf's accept
	p := PlanAccesses(d, edited, nil, now)
	for _, s := range p.Steps {
		if s.Op == OpAdd || s.Op == OpRemove {
			t.Errorf("a repair adds or removes: %s", dump(s))
		}
		if s.Menu == MenuUser && s.Password != "" {
			t.Errorf("a repair sets a password: %s", dump(s))
		}
	}
	fixed := applyAccessPlan(t, edited, p)
	if again := PlanAccesses(d, fixed, nil, now); !again.Empty() {
		t.Errorf("after the repair: %s", dump(again.Steps))
	}
	if !reflect.DeepEqual(fixed.Users, on.Users) || !reflect.DeepEqual(fixed.Groups, on.Groups) || fixed.Rules[0].ID != on.Rules[0].ID {
		t.Errorf("repaired:\ngot  %s\nwant %s", dump(fixed), dump(on))
	}

	// No managed tunnel any more: the rule's in-interface cannot be set
	// away, so the rule is made again.
	d.Tunnel = &syncproto.Tunnel{}
	withIface := applyAccessPlan(t, fixed, PlanAccesses(d, fixed, nil, now))
	d.Tunnel = nil
	p = PlanAccesses(d, withIface, nil, now)
	if len(p.Steps) != 2 || p.Steps[0].Op != OpRemove || p.Steps[1].Op != OpAdd {
		t.Errorf("dropping the in-interface: %s", dump(p.Steps))
	}
}

func TestGroupPolicies(t *testing.T) {
	if got, want := GroupPolicies(GroupRead, routerOS7Policies), []string{"ssh", "read", "test", "winbox"}; !slices.Equal(got, want) {
		t.Errorf("read: got %v, want %v", got, want)
	}
	// RouterOS 6's full group has dude and tikapp, and no rest-api.
	v6 := groupVocabulary(rows(map[string]string{"name": "full",
		"policy": "local,telnet,ssh,ftp,reboot,read,write,policy,test,winbox,password,web,sniff,sensitive,api,romon,dude,tikapp"}))
	got := GroupPolicies(GroupFull, v6)
	if slices.Contains(got, "rest-api") || !slices.Contains(got, "dude") || slices.ContainsFunc(got, func(p string) bool { return slices.Contains(withheldPolicies, p) }) {
		t.Errorf("full on 6: got %v", got)
	}
}

// TestSecretRedacted: a plan printed, formatted or logged in any way shows
// no password.
func TestSecretRedacted(t *testing.T) {
	p := PlanAccesses(accessDesired(acc(id1, user1, pw1, later)), router(), nil, now)
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("plan", "plan", p, "secret", p.Steps[1].Password)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("plan", "plan", p)
	for _, text := range []string{fmt.Sprint(p), fmt.Sprintf("%+v %#v %s %q", p, p, p.Steps[1].Password, p.Steps[1].Password), dump(p), logged.String()} {
		if strings.Contains(text, pw1) {
			t.Errorf("the password shows: %s", text)
		}
	}
	if string(p.Steps[1].Password) != pw1 {
		t.Error("string(Secret) does not give the password")
	}
}

func TestAccessAddresses(t *testing.T) {
	for list, want := range map[string]bool{"": true, "10.99.0.254": true, "10.0.0.0/8,192.168.0.0/16": true,
		"192.168.88.0/24": false, "fd00::/8": false, "nonsense,10.99.0.254/32": true} {
		if got := listAdmits(list, netip.MustParseAddr(edge)); got != want {
			t.Errorf("listAdmits(%q): got %v, want %v", list, got, want)
		}
	}
}

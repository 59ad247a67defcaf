package routeros_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ros "github.com/go-routeros/routeros/v3"
	"golang.org/x/crypto/ssh"

	"github.com/tpf-dev/tpf/agent/reconcile"
	"github.com/tpf-dev/tpf/agent/routeros"
	"github.com/tpf-dev/tpf/agent/routerostest"
	"github.com/tpf-dev/tpf/shared/forward"
	"github.com/tpf-dev/tpf/shared/rosschema"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// An access's credentials, as the controller makes them.
const (
	accessUser     = "tpf-k3m9x2q7ab"
	accessPassword = "Xq7-mK2_pL9.vR4+wT8-hN3_"
	otherUser      = "tpf-p4n8c6w2zz"
	otherPassword  = "Bn4_cH7-xJ2.mQ9+kL5_rS8-"
)

// accessSet is a desired set of accesses between the test tunnel and edge
// addresses.
func accessSet(as ...syncproto.Access) *syncproto.Desired {
	d := set()
	d.Accesses = as
	return d
}

func sshAccess(id, user, password string, expires time.Time) syncproto.Access {
	return syncproto.Access{ID: id, Service: syncproto.ServiceSSH, Username: user, Password: password, ExpiresAt: expires}
}

// applyAccesses runs one pass that must not stop and returns its report.
func applyAccesses(t testing.TB, c *routeros.Client, d *syncproto.Desired, passwords map[string]string, now time.Time) routeros.AccessReport {
	t.Helper()
	rep, err := c.ApplyAccesses(context.Background(), d, passwords, now)
	if err != nil {
		t.Fatalf("ApplyAccesses: %v", err)
	}
	return rep
}

// rowsNamed returns the rows of menu whose name is name.
func rowsNamed(srv *routerostest.Server, menu, name string) []map[string]string {
	var out []map[string]string
	for _, r := range srv.Rows(menu) {
		if r["name"] == name {
			out = append(out, r)
		}
	}
	return out
}

// tpfRules returns the filter rules commented with a tpf tag.
func tpfRules(srv *routerostest.Server) []map[string]string {
	var out []map[string]string
	for _, r := range srv.Rows(routerostest.MenuFilter) {
		if forward.IsTPF(r["comment"]) {
			out = append(out, r)
		}
	}
	return out
}

// granted returns the policies a printed group policy grants.
func granted(policy string) []string {
	var out []string
	for _, p := range strings.Split(policy, ",") {
		if p != "" && !strings.HasPrefix(p, "!") {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// wantResults compares results, naming the difference.
func wantResults(t testing.TB, got []syncproto.Result, want ...syncproto.Result) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results:\ngot  %+v\nwant %+v", got, want)
	}
}

// defconfInput adds defconf's input rules, which drop what does not come
// from the LAN.
func defconfInput(srv *routerostest.Server) {
	srv.AddRow(routerostest.MenuFilter, map[string]string{"chain": "input", "action": "accept",
		"connection-state": "established,related,untracked", "comment": "defconf: accept established,related,untracked"})
	srv.AddRow(routerostest.MenuFilter, map[string]string{"chain": "input", "action": "drop",
		"in-interface-list": "!LAN", "comment": "defconf: drop all not coming from LAN"})
}

// TestAccessApplied: one pass makes the group, the user and the input rule
// (before the router's own input rules); the next pass changes nothing.
func TestAccessApplied(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		defconfInput(srv)
		c := dial(t, config(srv))
		now := time.Now()
		expires := now.Add(time.Hour).Truncate(time.Second)
		d := accessSet(sshAccess(id1, accessUser, accessPassword, expires))
		d.Tunnel = tun(edgeKey)

		rep := applyAccesses(t, c, d, nil, now)
		wantResults(t, rep.Results, syncproto.Result{ID: id1, State: syncproto.StateApplied, ServicePort: 22})
		if !slices.Equal(rep.Present, []string{id1}) {
			t.Errorf("present: got %v, want [%s]", rep.Present, id1)
		}
		if !rep.Next.Equal(expires) {
			t.Errorf("next: got %v, want %v", rep.Next, expires)
		}
		tag := forward.Tag{ID: id1, Expires: expires}.String()

		groups := rowsNamed(srv, routerostest.MenuUserGroup, reconcile.GroupFull)
		if len(groups) != 1 || groups[0]["comment"] != reconcile.GroupComment {
			t.Fatalf("group %s: got %v, want one commented %s", reconcile.GroupFull, groups, reconcile.GroupComment)
		}
		got := granted(groups[0]["policy"])
		for _, never := range []string{"sensitive", "policy", "romon"} {
			if slices.Contains(got, never) {
				t.Errorf("group %s grants %s: %v", reconcile.GroupFull, never, got)
			}
		}
		for _, must := range []string{"ssh", "winbox", "read", "write", "test", "ftp", "reboot"} {
			if !slices.Contains(got, must) {
				t.Errorf("group %s lacks %s: %v", reconcile.GroupFull, must, got)
			}
		}

		users := rowsNamed(srv, routerostest.MenuUser, accessUser)
		if len(users) != 1 {
			t.Fatalf("users named %s: got %v, want one", accessUser, users)
		}
		wantUser := map[string]string{"group": reconcile.GroupFull, "address": edge + "/32", "comment": tag, "disabled": "false"}
		for k, v := range wantUser {
			if users[0][k] != v {
				t.Errorf("user %s: got %q, want %q", k, users[0][k], v)
			}
		}
		if _, ok := users[0]["password"]; ok {
			t.Errorf("the router prints a password: %v", users[0])
		}

		rules := srv.Rows(routerostest.MenuFilter)
		wantRule := map[string]string{"chain": "input", "action": "accept", "protocol": "tcp", "src-address": edge,
			"dst-address": tunnel, "dst-port": "22", "in-interface": "tpf", "comment": tag, "disabled": "false"}
		for k, v := range wantRule {
			if rules[0][k] != v {
				t.Errorf("first filter rule %s: got %q, want %q (rules %v)", k, rules[0][k], v, rules)
			}
		}
		if len(rules) != 3 {
			t.Errorf("filter rules: got %d, want defconf's two and tpf's", len(rules))
		}

		writes := srv.Writes()
		rep = applyAccesses(t, c, d, nil, now)
		wantResults(t, rep.Results, syncproto.Result{ID: id1, State: syncproto.StateApplied, ServicePort: 22})
		if srv.Writes() != writes || rep.Changes != 0 {
			t.Errorf("second pass: %d writes, %d changes; want none", srv.Writes()-writes, rep.Changes)
		}
	})
}

// TestAccessReadOnly: a read-only access's user is in tpf-read, which has
// the login and read policies and nothing that writes.
func TestAccessReadOnly(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		c := dial(t, config(srv))
		a := sshAccess(id1, accessUser, accessPassword, time.Now().Add(time.Hour))
		a.ReadOnly, a.Service = true, syncproto.ServiceWinbox
		rep := applyAccesses(t, c, accessSet(a), nil, time.Now())
		wantResults(t, rep.Results, syncproto.Result{ID: id1, State: syncproto.StateApplied, ServicePort: 8291})
		groups := rowsNamed(srv, routerostest.MenuUserGroup, reconcile.GroupRead)
		if len(groups) != 1 {
			t.Fatalf("group %s: got %v", reconcile.GroupRead, groups)
		}
		if got, want := granted(groups[0]["policy"]), []string{"read", "ssh", "test", "winbox"}; !slices.Equal(got, want) {
			t.Errorf("group %s grants %v, want %v", reconcile.GroupRead, got, want)
		}
		if u := rowsNamed(srv, routerostest.MenuUser, accessUser); len(u) != 1 || u[0]["group"] != reconcile.GroupRead {
			t.Errorf("user: got %v, want one in %s", u, reconcile.GroupRead)
		}
		if len(rowsNamed(srv, routerostest.MenuUserGroup, reconcile.GroupFull)) != 0 {
			t.Errorf("a full group was made for a read-only access")
		}
	})
}

// TestAccessGroupRepaired: a tpf group whose policy was edited is set back,
// sensitive taken away, with no other change.
func TestAccessGroupRepaired(t *testing.T) {
	t.Parallel()
	srv := startRouter(t, "7.18.2")
	c := dial(t, config(srv))
	d := accessSet(sshAccess(id1, accessUser, accessPassword, time.Now().Add(time.Hour)))
	applyAccesses(t, c, d, nil, time.Now())
	g := rowsNamed(srv, routerostest.MenuUserGroup, reconcile.GroupFull)[0]
	want := g["policy"]
	srv.SetRow(routerostest.MenuUserGroup, g[".id"], map[string]string{"policy": "ssh,sensitive,policy,!local"})
	rep := applyAccesses(t, c, d, nil, time.Now())
	if rep.Changes != 1 {
		t.Errorf("changes: got %d, want 1 (the group's policy)", rep.Changes)
	}
	if got := rowsNamed(srv, routerostest.MenuUserGroup, reconcile.GroupFull)[0]["policy"]; got != want {
		t.Errorf("policy: got %s, want %s", got, want)
	}
}

// TestAccessServicePort: the rule and the reported port follow the port
// /ip/service gives the service.
func TestAccessServicePort(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		c := dial(t, config(srv))
		d := accessSet(sshAccess(id1, accessUser, accessPassword, time.Now().Add(time.Hour)))
		applyAccesses(t, c, d, nil, time.Now())
		srv.SetRow(routerostest.MenuIPService, "ssh", map[string]string{"port": "2222"})
		rep := applyAccesses(t, c, d, nil, time.Now())
		wantResults(t, rep.Results, syncproto.Result{ID: id1, State: syncproto.StateApplied, ServicePort: 2222})
		if rules := tpfRules(srv); len(rules) != 1 || rules[0]["dst-port"] != "2222" {
			t.Errorf("tpf rules: got %v, want one to port 2222", rules)
		}
		if rep.Changes != 1 {
			t.Errorf("changes: got %d, want 1 (the rule's port)", rep.Changes)
		}
	})
}

// TestAccessServiceProblems: a disabled service and an address list that
// does not admit the edge are reported, saying what to change; the user
// and rule stay, so the access works once the service is fixed.
func TestAccessServiceProblems(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"6.49.10", "7.18.2", "7.24"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			srv := startRouter(t, version)
			c := dial(t, config(srv))
			d := accessSet(sshAccess(id1, accessUser, accessPassword, time.Now().Add(time.Hour)))

			srv.SetRow(routerostest.MenuIPService, "ssh", map[string]string{"disabled": "true"})
			rep := applyAccesses(t, c, d, nil, time.Now())
			wantResults(t, rep.Results, syncproto.Result{ID: id1, State: syncproto.StateFailed,
				Error: "the router's ssh service is disabled: enable it (/ip service enable ssh)"})
			if len(rowsNamed(srv, routerostest.MenuUser, accessUser)) != 1 || len(tpfRules(srv)) != 1 {
				t.Errorf("user and rule: got %v and %v, want both in place", rowsNamed(srv, routerostest.MenuUser, accessUser), tpfRules(srv))
			}

			// Through the API, as an operator would: 7.24 writes address
			// to available-from.
			setService := func(props ...string) {
				t.Helper()
				operatorRun(t, srv, append([]string{"/ip/service/set", "=.id=ssh"}, props...)...)
			}
			setService("=disabled=no", "=address=192.168.88.0/24")
			field := "address"
			if version == "7.24" {
				field = "available-from"
			}
			rep = applyAccesses(t, c, d, nil, time.Now())
			wantResults(t, rep.Results, syncproto.Result{ID: id1, State: syncproto.StateFailed,
				Error: "the router's ssh service accepts connections only from 192.168.88.0/24, which does not include the edge's tunnel address " + edge +
					": add it (/ip service set ssh " + field + "=192.168.88.0/24," + edge + "/32) or clear the list"})

			setService("=address=192.168.88.0/24," + edge + "/32")
			rep = applyAccesses(t, c, d, nil, time.Now())
			wantResults(t, rep.Results, syncproto.Result{ID: id1, State: syncproto.StateApplied, ServicePort: 22})
		})
	}
}

// operatorRun runs one command as the router's administrator would, with
// go-routeros on a connection of its own.
func operatorRun(t testing.TB, srv *routerostest.Server, words ...string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ros.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, password); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RunArgs(words); err != nil {
		t.Fatalf("%s: %v", words[0], err)
	}
}

// TestAccessForeignUntouched: users, groups, rules and sessions tpf did
// not make stay as they are, also those that look like tpf's in one way
// only; ending the access leaves them too.
func TestAccessForeignUntouched(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		defconfInput(srv)
		tag := forward.Tag{ID: id2, Expires: time.Now().Add(-time.Hour).Truncate(time.Second)}.String()
		srv.AddRow(routerostest.MenuUser, map[string]string{"name": "tpf-ops", "group": "full", "password": "ops"})             // prefix, no tag
		srv.AddRow(routerostest.MenuUser, map[string]string{"name": "alice", "group": "read", "comment": tag, "password": "a"}) // tag, no prefix
		srv.AddRow(routerostest.MenuUserGroup, map[string]string{"name": "tpf-ops", "policy": "read", "comment": "ops"})
		srv.AddRow(routerostest.MenuUserGroup, map[string]string{"name": "audit", "policy": "read", "comment": reconcile.GroupComment})
		srv.AddRow(routerostest.MenuFilter, map[string]string{"chain": "input", "action": "accept", "protocol": "tcp", "dst-port": "22", "comment": "ssh from office"})
		srv.AddRow(routerostest.MenuUserActive, map[string]string{"name": "tpf-ops", "address": edge, "via": "ssh"})
		snapshot := func() map[string][]map[string]string {
			out := map[string][]map[string]string{}
			for _, m := range []string{routerostest.MenuUser, routerostest.MenuUserGroup, routerostest.MenuFilter, routerostest.MenuUserActive} {
				for _, r := range srv.Rows(m) {
					if m == routerostest.MenuUser && r["name"] == accessUser || m == routerostest.MenuUserGroup && r["name"] == reconcile.GroupFull ||
						m == routerostest.MenuFilter && forward.IsTPF(r["comment"]) || m == routerostest.MenuUserActive && r["via"] == "api" {
						continue
					}
					delete(r, "last-logged-in") // the agent's own login
					out[m] = append(out[m], r)
				}
			}
			return out
		}
		before := snapshot()
		c := dial(t, config(srv))
		applyAccesses(t, c, accessSet(sshAccess(id1, accessUser, accessPassword, time.Now().Add(time.Hour))), nil, time.Now())
		if len(rowsNamed(srv, routerostest.MenuUser, accessUser)) != 1 {
			t.Fatal("the access's user was not made")
		}
		rep := applyAccesses(t, c, accessSet(), nil, time.Now())
		if len(rep.Present) != 0 || len(rowsNamed(srv, routerostest.MenuUser, accessUser)) != 0 || len(tpfRules(srv)) != 0 {
			t.Errorf("after the end: present %v, user %v, rules %v; want none", rep.Present, rowsNamed(srv, routerostest.MenuUser, accessUser), tpfRules(srv))
		}
		if after := snapshot(); !reflect.DeepEqual(after, before) {
			t.Errorf("foreign rows changed:\ngot  %v\nwant %v", after, before)
		}
	})
}

// TestAccessNoPassword: a user that is missing is made with the password
// the agent holds; without one the access is refused, saying to end it.
func TestAccessNoPassword(t *testing.T) {
	t.Parallel()
	srv := startRouter(t, "7.18.2")
	c := dial(t, config(srv))
	a := sshAccess(id1, accessUser, "", time.Now().Add(time.Hour)) // the controller sends it no more
	d := accessSet(a)

	rep := applyAccesses(t, c, d, nil, time.Now())
	wantResults(t, rep.Results, syncproto.Result{ID: id1, State: syncproto.StateRefused, Error: reconcile.NoPasswordError(accessUser)})
	if !strings.Contains(rep.Results[0].Error, "end this access and create a new one") {
		t.Errorf("the message does not say what to do: %s", rep.Results[0].Error)
	}
	if len(srv.Rows(routerostest.MenuUser)) != 1 || len(tpfRules(srv)) != 0 {
		t.Errorf("a refused access left objects: users %v, rules %v", srv.Rows(routerostest.MenuUser), tpfRules(srv))
	}

	held := map[string]string{id1: accessPassword}
	rep = applyAccesses(t, c, d, held, time.Now())
	wantResults(t, rep.Results, syncproto.Result{ID: id1, State: syncproto.StateApplied, ServicePort: 22})

	// Removed behind the agent's back: made again with the held password,
	// refused without it (and its rule removed).
	srv.RemoveRow(routerostest.MenuUser, accessUser)
	applyAccesses(t, c, d, held, time.Now())
	if len(rowsNamed(srv, routerostest.MenuUser, accessUser)) != 1 {
		t.Error("the user was not made again from the held password")
	}
	srv.RemoveRow(routerostest.MenuUser, accessUser)
	rep = applyAccesses(t, c, d, nil, time.Now())
	wantResults(t, rep.Results, syncproto.Result{ID: id1, State: syncproto.StateRefused, Error: reconcile.NoPasswordError(accessUser)})
	if len(tpfRules(srv)) != 0 || len(rep.Present) != 0 {
		t.Errorf("refused: rules %v, present %v; want none", tpfRules(srv), rep.Present)
	}
}

// TestAccessExpiresOnOwnClock: after a restart, with no set, an access
// whose expiry has passed on the agent's clock is removed; one that has
// not stays.
func TestAccessExpiresOnOwnClock(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		c := dial(t, config(srv))
		now := time.Now()
		soon, later := now.Add(10*time.Minute).Truncate(time.Second), now.Add(time.Hour).Truncate(time.Second)
		d := accessSet(sshAccess(id1, accessUser, accessPassword, soon), sshAccess(id2, otherUser, otherPassword, later))
		applyAccesses(t, c, d, nil, now)

		rep := applyAccesses(t, c, nil, nil, now)
		if rep.Changes != 0 || !rep.Next.Equal(soon) {
			t.Errorf("before expiry: %d changes, next %v; want none and %v", rep.Changes, rep.Next, soon)
		}
		rep = applyAccesses(t, c, nil, nil, soon.Add(time.Second))
		if !slices.Equal(rep.Present, []string{id2}) {
			t.Errorf("present: got %v, want [%s]", rep.Present, id2)
		}
		if len(rowsNamed(srv, routerostest.MenuUser, accessUser)) != 0 || len(rowsNamed(srv, routerostest.MenuUser, otherUser)) != 1 {
			t.Errorf("users: got %v", srv.Rows(routerostest.MenuUser))
		}
		if rep.Results != nil || !rep.Next.Equal(later) {
			t.Errorf("no set: results %v, next %v; want none and %v", rep.Results, rep.Next, later)
		}
	})
}

// TestAccessPasswordNeverLeaks: the router's refusal of the user, even
// one quoting the password, reaches the report and the error without it;
// the emulator's log of what the agent sent has none either.
func TestAccessPasswordNeverLeaks(t *testing.T) {
	t.Parallel()
	srv, log := startRecordedRouter(t, "7.18.2")
	c := dial(t, config(srv))
	srv.SetFault(routerostest.Fault{FailNext: 1, FailCommand: "/user/add", FailMessage: "failure: password " + accessPassword + " is too weak"})
	rep := applyAccesses(t, c, accessSet(sshAccess(id1, accessUser, accessPassword, time.Now().Add(time.Hour))), nil, time.Now())
	if rep.Results[0].State != syncproto.StateFailed || !strings.Contains(rep.Results[0].Error, "<redacted>") {
		t.Errorf("result: got %+v, want failed with the password redacted", rep.Results[0])
	}
	report, _ := json.Marshal(rep.Results)
	var sent []string // the commands, without the router's answers (the injected trap quotes the password)
	for _, l := range log.since(0) {
		cmd, _, _ := strings.Cut(l, " -> ")
		sent = append(sent, cmd)
	}
	for what, text := range map[string]string{"results": string(report), "error": fmt.Sprint(rep.Err()), "commands": strings.Join(sent, "\n")} {
		if strings.Contains(text, accessPassword) {
			t.Errorf("the password is in the %s: %s", what, text)
		}
	}
	if !slices.ContainsFunc(log.since(0), func(l string) bool {
		return strings.HasPrefix(l, "/user/add") && strings.Contains(l, "=password=<redacted>")
	}) {
		t.Errorf("the emulator's log shows no /user/add: %v", log.since(0))
	}
}

// TestAccessEveryVersion: on every RouterOS 7 with a command tree, the
// agent's access commands exist (none is refused), including the
// logout of a session, which changed its command in 7.20.
func TestAccessEveryVersion(t *testing.T) {
	t.Parallel()
	for _, v := range rosschema.Versions() {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			srv, log := startRecordedRouter(t, v)
			c := dial(t, config(srv))
			d := accessSet(sshAccess(id1, accessUser, accessPassword, time.Now().Add(time.Hour)))
			d.Tunnel = tun(edgeKey)
			wantResults(t, applyAccesses(t, c, d, nil, time.Now()).Results, syncproto.Result{ID: id1, State: syncproto.StateApplied, ServicePort: 22})
			srv.AddRow(routerostest.MenuUserActive, map[string]string{"name": accessUser, "address": edge, "via": "ssh"})
			rep := applyAccesses(t, c, accessSet(), nil, time.Now())
			if rep.Err() != nil {
				t.Errorf("ending the access: %v", rep.Err())
			}
			if got := rowsNamed(srv, routerostest.MenuUserActive, accessUser); len(got) != 0 {
				t.Errorf("the session was not logged out: %v", got)
			}
			for _, line := range log.since(0) {
				if strings.Contains(line, "-> !trap") {
					t.Errorf("refused: %s", line)
				}
			}
		})
	}
}

// --- SSH through the emulator's stand-in ---

// Loopback stands in for the tunnel: the edge is 127.0.0.1, so the
// access's user may log in only from there; 127.0.0.3 is anywhere else.
const (
	loopEdge   = "127.0.0.1"
	loopRouter = "127.0.0.2"
	elsewhere  = "127.0.0.3"
)

// startSSHRouter runs an emulator whose SSH service listens on loopback,
// on a free port that /ip/service ssh is set to.
func startSSHRouter(t testing.TB, version string) *routerostest.Server {
	t.Helper()
	srv := startRouter(t, version)
	ln, err := net.Listen("tcp", loopEdge+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	srv.SetRow(routerostest.MenuIPService, "ssh", map[string]string{"port": strconv.Itoa(port)})
	if err := srv.StartSSH(loopEdge); err != nil {
		t.Fatal(err)
	}
	return srv
}

// loopSet is a desired set whose edge and router addresses are loopback.
func loopSet(as ...syncproto.Access) *syncproto.Desired {
	return &syncproto.Desired{Revision: 1, TunnelAddress: netip.MustParseAddr(loopRouter), EdgeAddress: netip.MustParseAddr(loopEdge), Accesses: as}
}

// sshDial logs in to the router's SSH service from the address from.
func sshDial(srv *routerostest.Server, from, user, password string) (*ssh.Client, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	nc, err := d.Dial("tcp", srv.SSHAddr())
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	conn, chans, reqs, err := ssh.NewClientConn(nc, srv.SSHAddr(), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.Password(password)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second,
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(conn, chans, reqs), nil
}

// sshRun runs one command in a new session and returns its output.
func sshRun(t testing.TB, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	defer s.Close()
	out, err := s.Output(cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(out)
}

// TestAccessSSHLogin: the access's credentials log in to the router's SSH
// service from the edge's address only, and only with its password.
func TestAccessSSHLogin(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startSSHRouter(t, version)
		c := dial(t, config(srv))
		rep := applyAccesses(t, c, loopSet(sshAccess(id1, accessUser, accessPassword, time.Now().Add(time.Hour))), nil, time.Now())
		if rep.Results[0].State != syncproto.StateApplied || netip.MustParseAddrPort(srv.SSHAddr()).Port() != rep.Results[0].ServicePort {
			t.Fatalf("result %+v: want applied on the SSH port of %s", rep.Results[0], srv.SSHAddr())
		}

		cl, err := sshDial(srv, loopEdge, accessUser, accessPassword)
		if err != nil {
			t.Fatalf("login from the edge: %v", err)
		}
		defer cl.Close()
		if out := sshRun(t, cl, "/system identity print"); strings.TrimSpace(out) != "name: edge-router-7" {
			t.Errorf("identity: got %q", out)
		}
		active := rowsNamed(srv, routerostest.MenuUserActive, accessUser)
		if len(active) != 1 || active[0]["via"] != "ssh" || active[0]["address"] != loopEdge || active[0]["group"] != reconcile.GroupFull {
			t.Errorf("active: got %v, want one ssh session from %s", active, loopEdge)
		}

		if cl, err := sshDial(srv, elsewhere, accessUser, accessPassword); err == nil {
			cl.Close()
			t.Errorf("login from %s: got in, want refused", elsewhere)
		}
		if cl, err := sshDial(srv, loopEdge, accessUser, accessPassword+"x"); err == nil {
			cl.Close()
			t.Error("login with a wrong password: got in, want refused")
		}
		// The agent's own user has no address restriction; it logs in
		// from anywhere, which shows the refusal above is the address's.
		if cl, err := sshDial(srv, elsewhere, user, password); err != nil {
			t.Errorf("the agent's user from %s: %v", elsewhere, err)
		} else {
			cl.Close()
		}
	})
}

// TestAccessRevoked: ending an access logs out its open sessions, then
// removes its user, its rule and the group no one is in any more.
func TestAccessRevoked(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"6.49.10", "7.18.2", "7.20.8"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			srv := startSSHRouter(t, version)
			c := dial(t, config(srv))
			applyAccesses(t, c, loopSet(sshAccess(id1, accessUser, accessPassword, time.Now().Add(time.Hour))), nil, time.Now())

			cl, err := sshDial(srv, loopEdge, accessUser, accessPassword)
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			defer cl.Close()
			shell, err := cl.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			stdin, _ := shell.StdinPipe()
			stdout, _ := shell.StdoutPipe()
			if err := shell.Shell(); err != nil {
				t.Fatal(err)
			}
			io.WriteString(stdin, "/system identity print\r")
			ended := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, stdout)
				ended <- errors.Join(err, shell.Wait())
			}()

			rep := applyAccesses(t, c, loopSet(), nil, time.Now())
			if rep.Err() != nil {
				t.Fatalf("revoke: %v", rep.Err())
			}
			select {
			case <-ended:
			case <-time.After(5 * time.Second):
				t.Fatal("the session is still open after the revoke")
			}
			if len(rowsNamed(srv, routerostest.MenuUser, accessUser)) != 0 || len(tpfRules(srv)) != 0 ||
				len(rowsNamed(srv, routerostest.MenuUserGroup, reconcile.GroupFull)) != 0 || len(rowsNamed(srv, routerostest.MenuUserActive, accessUser)) != 0 {
				t.Errorf("left behind: users %v, rules %v, groups %v, active %v", srv.Rows(routerostest.MenuUser), tpfRules(srv),
					srv.Rows(routerostest.MenuUserGroup), srv.Rows(routerostest.MenuUserActive))
			}
			if len(rep.Present) != 0 {
				t.Errorf("present: got %v, want none", rep.Present)
			}
			if _, err := sshDial(srv, loopEdge, accessUser, accessPassword); err == nil {
				t.Error("logged in again after the revoke")
			}
		})
	}
}

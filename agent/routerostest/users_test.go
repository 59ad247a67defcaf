package routerostest_test

import (
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tpf-dev/tpf/agent/routerostest"
)

// These tests drive /user, /user/group, /user/active, /ip/service and
// /ip/firewall/filter with the real go-routeros client, and log in to the
// SSH stand-in with x/crypto/ssh.

func TestClientUserGroups(t *testing.T) {
	t.Parallel()
	c := mustClient(t, startServer(t, routerostest.Config{Version: "7.18.2"}))
	groups := run(t, c, "/user/group/print", "=.proplist=name,policy")
	want := []string{
		"read local,telnet,ssh,reboot,read,test,winbox,password,web,sniff,sensitive,api,romon,rest-api,!ftp,!write,!policy",
		"write local,telnet,ssh,reboot,read,write,test,winbox,password,web,sniff,sensitive,api,romon,rest-api,!ftp,!policy",
		"full local,telnet,ssh,ftp,reboot,read,write,policy,test,winbox,password,web,sniff,sensitive,api,romon,rest-api",
	}
	var got []string
	for _, g := range groups.Re {
		got = append(got, g.Map["name"]+" "+g.Map["policy"])
	}
	if !slices.Equal(got, want) {
		t.Errorf("built-in groups:\ngot  %v\nwant %v", got, want)
	}

	// add revokes what it does not list; set changes only what it lists.
	run(t, c, "/user/group/add", "=name=ops", "=policy=read,ssh", "=comment=ops")
	policy := func() string { return printOne(t, c, "/user/group/print", "?name=ops")["policy"] }
	if got := policy(); got != "ssh,read,!local,!telnet,!ftp,!reboot,!write,!policy,!test,!winbox,!password,!web,!sniff,!sensitive,!api,!romon,!rest-api" {
		t.Errorf("added: %s", got)
	}
	run(t, c, "/user/group/set", "=.id=ops", "=policy=winbox,!ssh")
	if got := policy(); !strings.HasPrefix(got, "read,winbox,!local") {
		t.Errorf("set: %s", got)
	}
	wantTrap(t, c, "input does not match any value of policy", "/user/group/set", "=.id=ops", "=policy=dude")
	wantTrap(t, c, "failure: can not remove default group", "/user/group/remove", "=.id=full")

	// Users need an existing group and a password; names are unique.
	wantTrap(t, c, "input does not match any value of group", "/user/add", "=name=bob", "=group=nope", "=password=x")
	wantTrap(t, c, "failure: password not specified", "/user/add", "=name=bob", "=group=ops")
	wantTrap(t, c, "invalid value for argument name", "/user/add", "=name=-bob", "=group=ops", "=password=x")
	run(t, c, "/user/add", "=name=bob", "=group=ops", "=password=x", "=address=192.168.88.0/24")
	wantTrap(t, c, "failure: user with the same name already exists", "/user/add", "=name=bob", "=group=ops", "=password=y")
	wantTrap(t, c, "failure: group is in use by a user", "/user/group/remove", "=.id=ops")

	// A renamed group takes its users along.
	run(t, c, "/user/group/set", "=.id=ops", "=name=operators")
	bob := printOne(t, c, "/user/print", "?name=bob")
	if bob["group"] != "operators" || bob["address"] != "192.168.88.0/24" {
		t.Errorf("bob: %v", bob)
	}
	// RouterOS never prints a password, even when asked.
	if r := printOne(t, c, "/user/print", "?name=bob", "=.proplist=name,password"); len(r) != 1 {
		t.Errorf("bob with his password: %v", r)
	}
}

func TestClientUserGroupsV6(t *testing.T) {
	t.Parallel()
	c := mustClient(t, startServer(t, routerostest.Config{Version: "6.49.10"}))
	full := printOne(t, c, "/user/group/print", "?name=full")["policy"]
	if !strings.HasSuffix(full, ",romon,dude,tikapp") || strings.Contains(full, "rest-api") {
		t.Errorf("full on 6: %s", full)
	}
	if when := printOne(t, c, "/user/active/print")["when"]; len(when) != len("jul/21/2023 09:38:39") || when[3] != '/' {
		t.Errorf("a 6.x date: %q", when)
	}
}

// TestClientLoginChecksUser: the API login follows /user: enabled, a
// group with the api policy, a source within the address list.
func TestClientLoginChecksUser(t *testing.T) {
	t.Parallel()
	srv := startServer(t, routerostest.Config{})
	srv.AddRow(routerostest.MenuUserGroup, map[string]string{"name": "sshonly", "policy": "ssh,read,!api"})
	srv.AddRow(routerostest.MenuUser, map[string]string{"name": "nope-api", "group": "sshonly", "password": "p"})
	srv.AddRow(routerostest.MenuUser, map[string]string{"name": "off", "group": "full", "password": "p", "disabled": "true"})
	srv.AddRow(routerostest.MenuUser, map[string]string{"name": "far", "group": "full", "password": "p", "address": "10.0.0.0/8"})
	srv.AddRow(routerostest.MenuUser, map[string]string{"name": "near", "group": "full", "password": "p", "address": "127.0.0.0/8"})
	for name, ok := range map[string]bool{"nope-api": false, "off": false, "far": false, "near": true} {
		_, err := dialClient(t, srv, name, "p")
		if (err == nil) != ok {
			t.Errorf("login as %s: got %v, want success %v", name, err, ok)
		}
	}
}

// TestClientUserActive: API logins are /user/active rows (via=api);
// removing one closes that connection. The command is request-logout up
// to 7.19 and remove from 7.20.
func TestClientUserActive(t *testing.T) {
	t.Parallel()
	for version, cmd := range map[string]string{"7.18.2": "/user/active/request-logout", "7.20.8": "/user/active/remove"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, routerostest.Config{Version: version})
			admin := mustClient(t, srv)
			victim := mustClient(t, srv)
			rows := run(t, admin, "/user/active/print").Re
			if len(rows) != 2 || rows[0].Map["via"] != "api" || rows[0].Map["name"] != "admin" || rows[0].Map["address"] != "127.0.0.1" || rows[0].Map["group"] != "full" {
				t.Fatalf("active: %v", rows)
			}
			other := "/user/active/remove"
			if cmd == other {
				other = "/user/active/request-logout"
			}
			// (go-routeros keeps the last of the two traps.)
			wantTrap(t, admin, "no such command prefix", other, "=.id="+rows[1].Map[".id"])
			run(t, admin, cmd, "=.id="+rows[1].Map[".id"])
			if _, err := victim.RunArgs([]string{"/system/identity/print"}); err == nil {
				t.Error("the logged-out connection still answers")
			}
			if got := run(t, admin, "/user/active/print").Re; len(got) != 1 {
				t.Errorf("active after the logout: %v", got)
			}
		})
	}
}

func TestClientServices(t *testing.T) {
	t.Parallel()
	c := mustClient(t, startServer(t, routerostest.Config{Version: "7.22.3"}))
	var got []string
	for _, r := range run(t, c, "/ip/service/print").Re {
		got = append(got, r.Map["name"]+":"+r.Map["port"]+":"+r.Map["disabled"]+":"+r.Map["vrf"]+":"+r.Map["max-sessions"])
	}
	want := []string{"telnet:23:false:main:20", "ftp:21:false:main:20", "www:80:false:main:20", "ssh:22:false:main:20",
		"www-ssl:443:true:main:20", "api:8728:false:main:20", "winbox:8291:false:main:20", "api-ssl:8729:false:main:20"}
	if !slices.Equal(got, want) {
		t.Errorf("services:\ngot  %v\nwant %v", got, want)
	}
	run(t, c, "/ip/service/set", "=.id=ssh", "=port=2222", "=address=10.0.0.0/8,192.168.88.1")
	ssh := printOne(t, c, "/ip/service/print", "?name=ssh")
	if ssh["port"] != "2222" || ssh["address"] != "10.0.0.0/8,192.168.88.1/32" {
		t.Errorf("ssh: %v", ssh)
	}
	wantTrap(t, c, "unknown parameter available-from", "/ip/service/set", "=.id=ssh", "=available-from=10.0.0.0/8")
	wantTrap(t, c, "value of port out of range (1..65535)", "/ip/service/set", "=.id=ssh", "=port=0")
	wantTrap(t, c, "no such command prefix", "/ip/service/add", "=name=gopher")

	// 7.24 renamed address to available-from and writes the old name
	// through.
	c = mustClient(t, startServer(t, routerostest.Config{Version: "7.24"}))
	run(t, c, "/ip/service/set", "=.id=winbox", "=address=10.0.0.0/8")
	winbox := printOne(t, c, "/ip/service/print", "?name=winbox")
	if _, ok := winbox["address"]; ok || winbox["available-from"] != "10.0.0.0/8" {
		t.Errorf("winbox on 7.24: %v", winbox)
	}
}

func TestClientFilter(t *testing.T) {
	t.Parallel()
	c := mustClient(t, startServer(t, routerostest.Config{}))
	run(t, c, "/ip/firewall/filter/add", "=chain=input", "=action=drop", "=in-interface-list=!LAN")
	ret := run(t, c, "/ip/firewall/filter/add", "=chain=input", "=action=accept", "=protocol=tcp", "=dst-port=22",
		"=comment=tpf", "=place-before=*1").Done.Map["ret"]
	wantTrap(t, c, "input does not match any value of action", "/ip/firewall/filter/add", "=chain=input", "=action=dst-nat")
	wantTrap(t, c, "failure: dst-port can be used only with protocol tcp or udp", "/ip/firewall/filter/add", "=chain=input", "=action=accept", "=dst-port=22")
	ids := func() string {
		var out []string
		for _, r := range run(t, c, "/ip/firewall/filter/print", "=.proplist=.id").Re {
			out = append(out, r.Map[".id"])
		}
		return strings.Join(out, ",")
	}
	if got := ids(); got != ret+",*1" {
		t.Errorf("order: %s", got)
	}
	run(t, c, "/ip/firewall/filter/move", "=numbers=*1", "=destination="+ret)
	if got := ids(); got != "*1,"+ret {
		t.Errorf("after move: %s", got)
	}
	run(t, c, "/ip/firewall/filter/set", "=.id="+ret, "=dst-port=2222")
	run(t, c, "/ip/firewall/filter/remove", "=.id=*1")
	if r := printOne(t, c, "/ip/firewall/filter/print"); r["dst-port"] != "2222" || r["bytes"] != "0" {
		t.Errorf("rule: %v", r)
	}
}

// --- the SSH stand-in ---

// startSSH runs an emulator whose SSH service listens on 127.0.0.1 at a
// free port, with users: alice (full), bob (group without ssh), carol
// (from 10.0.0.0/8 only).
func startSSH(t testing.TB) *routerostest.Server {
	t.Helper()
	srv := startServer(t, routerostest.Config{Identity: "branch-7"})
	srv.AddRow(routerostest.MenuUserGroup, map[string]string{"name": "apionly", "policy": "api,read,!ssh"})
	srv.AddRow(routerostest.MenuUser, map[string]string{"name": "alice", "group": "full", "password": "a"})
	srv.AddRow(routerostest.MenuUser, map[string]string{"name": "bob", "group": "apionly", "password": "b"})
	srv.AddRow(routerostest.MenuUser, map[string]string{"name": "carol", "group": "full", "password": "c", "address": "10.0.0.0/8"})
	srv.SetRow(routerostest.MenuIPService, "ssh", map[string]string{"port": strconv.Itoa(freeTCPPort(t))})
	if err := srv.StartSSH("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	return srv
}

// freeTCPPort returns a port nothing listens on at the moment.
func freeTCPPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func sshLogin(srv *routerostest.Server, user, password string) (*ssh.Client, error) {
	return ssh.Dial("tcp", srv.SSHAddr(), &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.Password(password)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: testTimeout})
}

func TestSSHLogin(t *testing.T) {
	t.Parallel()
	srv := startSSH(t)
	cl, err := sshLogin(srv, "alice", "a")
	if err != nil {
		t.Fatalf("alice: %v", err)
	}
	defer cl.Close()
	if string(cl.ServerVersion()) != "SSH-2.0-ROSSSH" {
		t.Errorf("server version: %s", cl.ServerVersion())
	}
	for cmd, want := range map[string]string{
		"/system identity print": "  name: branch-7\r\n",
		"/system/identity/print": "  name: branch-7\r\n",
		":put hello":             "hello\r\n",
		"/frob":                  "bad command name frob (line 1 column 2)\r\n",
	} {
		s, _ := cl.NewSession()
		out, _ := s.Output(cmd)
		s.Close()
		if string(out) != want {
			t.Errorf("%s: got %q, want %q", cmd, out, want)
		}
	}
	for user, pw := range map[string]string{"alice": "wrong", "bob": "b", "carol": "c", "nobody": "x"} {
		if cl, err := sshLogin(srv, user, pw); err == nil {
			cl.Close()
			t.Errorf("%s logged in; want refused", user)
		}
	}
	srv.SetRow(routerostest.MenuUser, "alice", map[string]string{"disabled": "true"})
	if cl, err := sshLogin(srv, "alice", "a"); err == nil {
		cl.Close()
		t.Error("disabled alice logged in")
	}
}

// TestSSHShell: an interactive session prompts with user and identity,
// echoes on a terminal and ends with /quit.
func TestSSHShell(t *testing.T) {
	t.Parallel()
	srv := startSSH(t)
	cl, err := sshLogin(srv, "alice", "a")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	s, _ := cl.NewSession()
	stdin, _ := s.StdinPipe()
	stdout, _ := s.StdoutPipe()
	if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "/system identity print\r/quit\r")
	out, _ := io.ReadAll(stdout)
	for _, want := range []string{"[alice@branch-7] > ", "/system identity print\r\n  name: branch-7\r\n", "interrupted"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("shell output %q lacks %q", out, want)
		}
	}
	if err := s.Wait(); err != nil {
		t.Errorf("exit: %v", err)
	}
}

// TestSSHSessions: a session is a /user/active row while it lasts;
// removing the row ends it, removing its user does not (see doc.go).
func TestSSHSessions(t *testing.T) {
	t.Parallel()
	srv := startSSH(t)
	cl, err := sshLogin(srv, "alice", "a")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	active := func() []map[string]string {
		var out []map[string]string
		for _, r := range srv.Rows(routerostest.MenuUserActive) {
			if r["via"] == "ssh" {
				out = append(out, r)
			}
		}
		return out
	}
	rows := active()
	if len(rows) != 1 || rows[0]["name"] != "alice" || rows[0]["address"] != "127.0.0.1" || rows[0]["group"] != "full" || rows[0]["when"] == "" {
		t.Fatalf("active: %v", rows)
	}
	srv.RemoveRow(routerostest.MenuUser, "alice")
	if s, err := cl.NewSession(); err != nil {
		t.Errorf("after alice was removed: %v; want her session to go on", err)
	} else {
		s.Close()
	}
	c := mustClient(t, srv)
	run(t, c, "/user/active/request-logout", "=.id="+rows[0][".id"])
	done := make(chan error, 1)
	go func() { done <- cl.Wait() }()
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatal("the session outlived its active row")
	}
	if rows := active(); len(rows) != 0 {
		t.Errorf("active after the logout: %v", rows)
	}
}

// TestSSHFollowsService: the stand-in moves with the ssh service's port,
// stops when it is disabled, and closes connections its address list does
// not admit.
func TestSSHFollowsService(t *testing.T) {
	t.Parallel()
	srv := startSSH(t)
	c := mustClient(t, srv)
	old := srv.SSHAddr()
	port := freeTCPPort(t)
	run(t, c, "/ip/service/set", "=.id=ssh", "=port="+strconv.Itoa(port))
	if got := srv.SSHAddr(); got != "127.0.0.1:"+strconv.Itoa(port) {
		t.Errorf("moved to %s, want port %d", got, port)
	}
	if nc, err := net.DialTimeout("tcp", old, testTimeout); err == nil {
		nc.Close()
		t.Errorf("the old port %s still listens", old)
	}
	if cl, err := sshLogin(srv, "alice", "a"); err != nil {
		t.Errorf("login on the new port: %v", err)
	} else {
		cl.Close()
	}

	run(t, c, "/ip/service/set", "=.id=ssh", "=address=10.0.0.0/8")
	if _, err := sshLogin(srv, "alice", "a"); err == nil || !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
		t.Errorf("from outside the service's list: got %v, want the connection closed", err)
	}
	run(t, c, "/ip/service/set", "=.id=ssh", "=address=", "=disabled=yes")
	if srv.SSHAddr() != "" {
		t.Errorf("disabled, still listening on %s", srv.SSHAddr())
	}
	run(t, c, "/ip/service/set", "=.id=ssh", "=disabled=no")
	if cl, err := sshLogin(srv, "alice", "a"); err != nil {
		t.Errorf("enabled again: %v", err)
	} else {
		cl.Close()
	}
}

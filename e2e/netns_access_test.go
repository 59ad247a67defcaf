package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/ssh"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
)

// labAccess is a transient access as POST …/transient-access answered.
type labAccess struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	Password    string `json:"password"`
	Port        int    `json:"port"`
	EntryPoint  string `json:"entry_point"`
	ServicePort int    `json:"service_port"`
	SSHCommand  string `json:"ssh_command"`
}

// sshLogin logs in to the entry point's port as user with password, from
// source (an address of the client host), and runs command; it returns the
// command's output.
func (l *tunnelLab) sshLogin(source string, port int, user, password, command string) (string, error) {
	c, err := l.sshClient(source, port, user, password)
	if err != nil {
		return "", err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.Output(command)
	return string(out), err
}

// sshClient opens an SSH connection through the entry point.
func (l *tunnelLab) sshClient(source string, port int, user, password string) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var nc net.Conn
	err := inNamespace(l.n.name("client"), func() (err error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		nc, err = d.DialContext(ctx, "tcp", fmt.Sprintf("10.10.1.1:%d", port))
		return err
	})
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	cc, chans, reqs, err := ssh.NewClientConn(nc, nc.RemoteAddr().String(), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.Password(password)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second,
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

// routerUser returns the emulated router's user name, nil when it has none.
func (l *tunnelLab) routerUser(name string) (map[string]string, error) {
	rows, err := l.routerRun("/user/print", "?name="+name)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return rows[0], nil
}

// TestNamespacesAccess runs transient access end to end across network
// namespaces (tunnelTopology): an SSH login to the router itself through
// the edge and the management tunnel, with the credentials the API showed
// once. The router's SSH service (the emulator's stand-in, which checks
// the emulated router's users) listens on a port the operator changed,
// which the agent reads. The login is refused from a source outside
// allow_from and with a wrong password; revoke cuts the live session and
// the agent removes the user, its group and its input rule; an access that
// expires while the controller is down still loses its user on time. No
// component ever logs a password.
func TestNamespacesAccess(t *testing.T) {
	l := newTunnelLab(t)
	n := l.n
	// The client host's second address, 10.10.1.3, is outside the
	// access's allow_from.

	r := l.addRouter("r1")
	l.startAgent("agent", r)
	waitUntil(t, "the router's tunnel to be up", 90*time.Second, 100*time.Millisecond, func() bool {
		return l.tunnel(r.ID).State == "up"
	}, func() string { return fmt.Sprintf("tunnel %+v, edge peers %v", l.tunnel(r.ID), edgePeers()) })
	if _, err := l.routerRun("/ip/service/set", "=numbers=ssh", "=port=2222"); err != nil {
		t.Fatalf("move the router's ssh service to 2222: %v", err)
	}

	path := "/api/routers/" + r.ID + "/transient-access"
	var passwords []string
	create := func(body string) labAccess {
		t.Helper()
		code, b := l.api.do("POST", path, body)
		var a labAccess
		if code != http.StatusCreated || json.Unmarshal(b, &a) != nil || a.Password == "" || a.Username == "" {
			t.Fatalf("POST %s: %d %s, want 201 with a username and a password", path, code, b)
		}
		passwords = append(passwords, a.Password)
		return a
	}
	a := create(`{"type":"ssh","expire_after_minutes":60,"allow_from":"10.10.1.2"}`)
	if want := fmt.Sprintf("ssh -p %d %s@10.10.1.1", a.Port, a.Username); a.SSHCommand != want {
		t.Errorf("ssh_command: got %q, want %q", a.SSHCommand, want)
	}
	l.api.waitStatusWithin(path+"/"+a.ID, "active", 60*time.Second)

	t.Run("the API shows the access without its password, at the port the router serves", func(t *testing.T) {
		code, b := l.api.do("GET", path+"/"+a.ID, "")
		var got labAccess
		if code != http.StatusOK || json.Unmarshal(b, &got) != nil || strings.Contains(string(b), `"password"`) || got.ServicePort != 2222 {
			t.Errorf("GET: %d %s; want 200, no password, service_port 2222", code, b)
		}
	})
	t.Run("the router holds the user, the group and the input rule", func(t *testing.T) {
		u, err := l.routerUser(a.Username)
		if err != nil || u == nil || u["group"] != "tpf-full" || u["address"] != tunnelEdge+"/32" || !strings.HasPrefix(u["comment"], "tpf:"+a.ID) {
			t.Errorf("the router's user: got %v, %v; want group tpf-full, address %s/32, tagged with the access", u, err, tunnelEdge)
		}
		rules, err := l.routerRun("/ip/firewall/filter/print", "?chain=input")
		if err != nil || len(rules) == 0 || !strings.HasPrefix(rules[0]["comment"], "tpf:"+a.ID) || rules[0]["dst-port"] != "2222" ||
			rules[0]["src-address"] != tunnelEdge || rules[0]["dst-address"] != r.TunnelAddress {
			t.Errorf("the router's input rules: got %v, %v; want the access's first, from %s to %s:2222", rules, err, tunnelEdge, r.TunnelAddress)
		}
	})
	t.Run("ssh login through the access", func(t *testing.T) {
		out, err := l.sshLogin("10.10.1.2", a.Port, a.Username, a.Password, "/system identity print")
		if err != nil || !strings.Contains(out, "name:") {
			t.Fatalf("ssh through the access: %q, %v", out, err)
		}
	})
	t.Run("a wrong password is refused", func(t *testing.T) {
		if _, err := l.sshLogin("10.10.1.2", a.Port, a.Username, a.Password+"x", "/system identity print"); err == nil {
			t.Fatal("logged in with a wrong password")
		}
	})
	t.Run("a source outside allow_from is refused", func(t *testing.T) {
		if _, err := l.sshLogin("10.10.1.3", a.Port, a.Username, a.Password, "/system identity print"); err == nil {
			t.Fatal("logged in from 10.10.1.3, outside allow_from 10.10.1.2/32")
		}
	})
	t.Run("revoke cuts the session and removes the user, group and rule", func(t *testing.T) {
		c, err := l.sshClient("10.10.1.2", a.Port, a.Username, a.Password)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Shell(); err != nil {
			t.Fatal(err)
		}
		ended := make(chan struct{})
		go func() { c.Wait(); close(ended) }()
		l.api.delete(path + "/" + a.ID)
		select {
		case <-ended:
		case <-time.After(1500 * time.Millisecond):
			t.Error("the live session survived the revoke by 1.5 s")
		}
		waitUntil(t, "the access's user, group and rule to go", 30*time.Second, 100*time.Millisecond, func() bool {
			u, err := l.routerUser(a.Username)
			groups, gerr := l.routerRun("/user/group/print", "?name=tpf-full")
			rules, rerr := l.routerRun("/ip/firewall/filter/print", "?dst-port=2222")
			return err == nil && u == nil && gerr == nil && len(groups) == 0 && rerr == nil && len(rules) == 0
		}, nil)
		l.api.waitStatus(path+"/"+a.ID, "removed")
	})
	t.Run("expiry cuts the session and removes the user with the controller down", func(t *testing.T) {
		// Created ten minutes less eight seconds ago for ten minutes: it
		// expires eight seconds from now.
		created := time.Now().UTC().Truncate(time.Second).Add(-10*time.Minute + 8*time.Second)
		rid, err := uuid.Parse(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := forwards.New(l.db.st).CreateAccess(context.Background(), l.db.p, rid, fleet.NewAccess{
			Service: fleet.ServiceSSH, AllowFrom: netip.MustParsePrefix("10.10.1.2/32"), ReadOnly: true, Duration: 10 * time.Minute,
		}, created)
		if err != nil {
			t.Fatal(err)
		}
		passwords = append(passwords, b.Password)
		l.api.waitStatusWithin(path+"/"+b.ID.String(), "active", 5*time.Second)
		if u, err := l.routerUser(b.Username); err != nil || u == nil || u["group"] != "tpf-read" {
			t.Fatalf("the read-only access's user: got %v, %v; want one in tpf-read", u, err)
		}
		c, err := l.sshClient("10.10.1.2", int(b.Port), b.Username, b.Password)
		if err != nil {
			t.Fatalf("ssh through the read-only access: %v", err)
		}
		defer c.Close()
		ended := make(chan time.Time, 1)
		go func() { c.Wait(); ended <- time.Now() }()

		n.stop("controller")
		waitUntil(t, "the expired access's user to go", 15*time.Second, 50*time.Millisecond, func() bool {
			u, err := l.routerUser(b.Username)
			return err == nil && u == nil
		}, nil)
		if early := time.Until(b.ExpiresAt); early > 0 {
			t.Errorf("the user went %v before the access expired", early)
		}
		select {
		case at := <-ended:
			if at.Before(b.ExpiresAt) || at.After(b.ExpiresAt.Add(2*time.Second)) {
				t.Errorf("the session ended at %v, want at the expiry %v (within 2 s)", at, b.ExpiresAt)
			}
		case <-time.After(2 * time.Second):
			t.Error("the session outlived the access's expiry")
		}
	})
	t.Run("no component logs a password", func(t *testing.T) {
		logs, err := filepath.Glob(filepath.Join(n.logs, "*.log"))
		if err != nil || len(logs) < 3 {
			t.Fatalf("logs: %v, %v", logs, err)
		}
		for _, f := range logs {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, pw := range passwords {
				if strings.Contains(string(b), pw) {
					t.Errorf("%s holds a password", filepath.Base(f))
				}
			}
		}
	})
}

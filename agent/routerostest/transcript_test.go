package routerostest_test

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/tpf-dev/tpf/agent/routerostest"
)

// These tests speak raw sentences and check the emulator's replies byte for
// byte against ROUTEROS.md.

func TestTranscriptLogin(t *testing.T) {
	t.Parallel()
	srv := startServer(t, routerostest.Config{Users: map[string]string{"api": "secret"}})
	c := dialRaw(t, srv)
	c.send("/login", "=name=api", "=password=wrong", ".tag=1")
	c.expect(
		[]string{"!trap", ".tag=1", "=message=invalid user name or password (6)"},
		[]string{"!done", ".tag=1"},
	)
	c.send("/login", "=name=nobody", "=password=secret")
	c.expect([]string{"!trap", "=message=invalid user name or password (6)"}, []string{"!done"})
	c.send("/login", "=name=api", "=password=secret")
	c.expect([]string{"!done"})
	c.send("/system/identity/print")
	c.expect([]string{"!re", "=name=MikroTik"}, []string{"!done"})
}

func TestTranscriptCommandBeforeLogin(t *testing.T) {
	t.Parallel()
	srv := startServer(t, routerostest.Config{})
	c := dialRaw(t, srv)
	c.send("/ip/firewall/nat/print", ".tag=5")
	c.expect([]string{"!fatal", "not logged in"})
	c.expectClosed()
}

func TestTranscriptQuit(t *testing.T) {
	t.Parallel()
	srv := startServer(t, routerostest.Config{})
	c := dialRaw(t, srv)
	c.login()
	c.send("/quit")
	// The exact bytes quoted in ROUTEROS.md §1.5.
	want, _ := hex.DecodeString("0621666174616c1d73657373696f6e207465726d696e61746564206f6e207265717565737400")
	c.expectBytes(want)
	c.expectClosed()
}

func TestTranscriptAddPrintRemove(t *testing.T) {
	t.Parallel()
	srv := startServer(t, routerostest.Config{})
	c := dialRaw(t, srv)
	c.login()

	c.send("/ip/firewall/nat/add", "=chain=dstnat", "=action=dst-nat", "=protocol=tcp",
		"=in-interface=wg-mgmt", "=dst-port=10022", "=to-addresses=192.168.88.43",
		"=to-ports=22", "=comment=mgr:r1:ssh43", ".tag=7")
	c.expect([]string{"!done", ".tag=7", "=ret=*1"})

	c.send("/ip/firewall/nat/add", "=chain=srcnat", "=action=masquerade", "=out-interface=ether1")
	c.expect([]string{"!done", "=ret=*2"})

	c.send("/ip/firewall/nat/print", "=.proplist=.id,comment", "?comment=mgr:r1:ssh43")
	c.expect([]string{"!re", "=.id=*1", "=comment=mgr:r1:ssh43"}, []string{"!done"})

	// Without .proplist every property is printed, .id included, defaults
	// filled, comment absent when unset.
	c.send("/ip/firewall/nat/print", "?chain=srcnat", ".tag=x")
	c.expect(
		[]string{"!re", ".tag=x", "=.id=*2", "=chain=srcnat", "=action=masquerade", "=out-interface=ether1",
			"=log=false", "=log-prefix=", "=bytes=0", "=packets=0", "=invalid=false", "=dynamic=false", "=disabled=false"},
		[]string{"!done", ".tag=x"},
	)

	// .id only when asked for; a row left with nothing is an empty !re.
	c.send("/ip/firewall/nat/print", "=.proplist=comment,chain")
	c.expect([]string{"!re", "=comment=mgr:r1:ssh43", "=chain=dstnat"}, []string{"!re", "=chain=srcnat"}, []string{"!done"})
	c.send("/ip/firewall/nat/print", "=.proplist=comment", "?chain=srcnat")
	c.expect([]string{"!re"}, []string{"!done"})

	c.send("/ip/firewall/nat/print", "=count-only=", "?action=dst-nat", "?action=masquerade", "?#|")
	c.expect([]string{"!done", "=ret=2"})

	c.send("/ip/firewall/nat/remove", "=.id=*1,*9")
	c.expect([]string{"!trap", "=message=no such item"}, []string{"!done"})
	c.send("/ip/firewall/nat/remove", "=.id=*1")
	c.expect([]string{"!done"})
	c.send("/ip/firewall/nat/remove", "=.id=*1")
	c.expect([]string{"!trap", "=message=no such item"}, []string{"!done"})

	c.send("/ip/firewall/nat/add", "=chain=dstnat", "=action=dst-nat", "=frob=1")
	c.expect([]string{"!trap", "=message=unknown parameter frob"}, []string{"!done"})
	c.send("/ip/firewall/nat/add", "=action=dst-nat")
	c.expect([]string{"!trap", "=category=1", "=message=failure: chain not specified"}, []string{"!done"})
	c.send("/ip/firewall/nat/add", "=chain=dstnat", "=action=dst-nat", "=to-ports=22")
	c.expect([]string{"!trap", "=category=1", "=message=failure: to-ports can be used only with protocol tcp or udp"}, []string{"!done"})
	c.send("/ip/firewall/nat/add", "=chain=dstnat", "=action=accept", "=place-before=*7")
	c.expect([]string{"!trap", "=message=no such item"}, []string{"!done"})
	c.send("/ip/firewall/nat/set", "=.id=*2", "=place-before=*2")
	c.expect([]string{"!trap", "=message=unknown parameter place-before"}, []string{"!done"})

	// Ids are never reused.
	c.send("/ip/firewall/nat/add", "=chain=dstnat", "=action=accept", "=place-before=*2", ".tag=8")
	c.expect([]string{"!done", ".tag=8", "=ret=*3"})
	if got := ids(srv.NAT()); got != "*3,*2" {
		t.Errorf("NAT ids = %s, want *3,*2", got)
	}
}

func ids(rows []map[string]string) string {
	var out []string
	for _, r := range rows {
		out = append(out, r[".id"])
	}
	return strings.Join(out, ",")
}

func TestTranscriptEmpty(t *testing.T) {
	t.Parallel()
	tests := []struct {
		version string
		want    [][]string
	}{
		{"7.18.2", [][]string{{"!empty", ".tag=3"}, {"!done", ".tag=3"}}},
		{"7.20.8", [][]string{{"!empty", ".tag=3"}, {"!done", ".tag=3"}}},
		{"7.17.2", [][]string{{"!done", ".tag=3"}}},
		{"6.49.10", [][]string{{"!done", ".tag=3"}}},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, startServer(t, routerostest.Config{Version: tt.version}))
			c.login()
			c.send("/ip/firewall/nat/print", "=.proplist=.id", "?comment=nope", ".tag=3")
			c.expect(tt.want...)
			// count-only answers a number even when it is zero.
			c.send("/ip/firewall/nat/print", "=count-only=")
			c.expect([]string{"!done", "=ret=0"})
		})
	}
}

func TestTranscriptEmptyBytes(t *testing.T) {
	t.Parallel()
	c := dialRaw(t, startServer(t, routerostest.Config{}))
	c.login()
	c.send("/ip/firewall/connection/print")
	want, _ := hex.DecodeString("06" + hex.EncodeToString([]byte("!empty")) + "00" + "05" + hex.EncodeToString([]byte("!done")) + "00")
	c.expectBytes(want)
}

func TestTranscriptUnknownCommand(t *testing.T) {
	t.Parallel()
	c := dialRaw(t, startServer(t, routerostest.Config{}))
	c.login()
	tests := map[string]string{
		"/system/routerboard/print": "routerboard",
		"/ip/firewall/nat/frob":     "frob",
		"/interface/frob/print":     "frob",
		"/frob/print":               "frob",
	}
	for command, seg := range tests {
		c.send(command, ".tag=9")
		c.expect(
			[]string{"!trap", ".tag=9", "=category=0", "=message=no such command or directory (" + seg + ")"},
			[]string{"!trap", ".tag=9", "=message=no such command prefix"},
			[]string{"!done", ".tag=9"},
		)
	}
}

// TestTranscriptSplitWrites sends a request one byte per write, with empty
// sentences around it, and reads a reply the emulator also splits.
func TestTranscriptSplitWrites(t *testing.T) {
	t.Parallel()
	srv := startServer(t, routerostest.Config{})
	c := dialRaw(t, srv)
	c.login()
	srv.SetFault(routerostest.Fault{SplitWrites: true})
	req := []byte{0}
	req = routerostest.AppendSentence(req, "/ip/firewall/nat/add", "=chain=srcnat", "=action=masquerade",
		"=comment="+strings.Repeat("c", 300), ".tag=long")
	req = append(req, 0)
	for i := range req {
		if _, err := c.nc.Write(req[i : i+1]); err != nil {
			t.Fatalf("write byte %d: %v", i, err)
		}
	}
	c.expect([]string{"!done", ".tag=long", "=ret=*1"})
	c.send("/ip/firewall/nat/print", "=.proplist=comment")
	c.expect([]string{"!re", "=comment=" + strings.Repeat("c", 300)}, []string{"!done"})
}

func TestTranscriptControlByteCloses(t *testing.T) {
	t.Parallel()
	c := dialRaw(t, startServer(t, routerostest.Config{}))
	c.login()
	if _, err := c.nc.Write([]byte{0xF8, 1, 2, 3, 4, 5}); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.expectClosed()
}

// TestTranscriptChallengeLogin follows the two-step MD5 login, and its
// refusal on routers after 6.45.1.
func TestTranscriptChallengeLogin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cfg   routerostest.Config
		first []string // the first /login
		want  []string // the reply to the response
	}{
		{"legacy mode ignores the password", routerostest.Config{LegacyLogin: true, Users: map[string]string{"admin": "tset"}},
			[]string{"/login", "=name=admin", "=password=tset"}, []string{"!done"}},
		{"6.43 bare login", routerostest.Config{Version: "6.43.16", Users: map[string]string{"admin": "tset"}},
			[]string{"/login"}, []string{"!done"}},
		{"7.x refuses the response", routerostest.Config{Users: map[string]string{"admin": "tset"}},
			[]string{"/login", "=name=admin"}, []string{"!trap", "=message=invalid user name or password (6)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, startServer(t, tt.cfg))
			br := bufio.NewReader(c.nc)
			c.send(tt.first...)
			got := c.readSentence(br)
			if len(got) != 2 || got[0] != "!done" || !strings.HasPrefix(got[1], "=ret=") || len(got[1]) != len("=ret=")+32 {
				t.Fatalf("challenge reply = %q, want !done =ret=<32 hex>", got)
			}
			challenge, err := hex.DecodeString(strings.TrimPrefix(got[1], "=ret="))
			if err != nil {
				t.Fatalf("challenge %q is not hex: %v", got[1], err)
			}
			sum := md5.Sum(append(append([]byte{0}, "tset"...), challenge...))
			c.send("/login", "=name=admin", "=response=00"+hex.EncodeToString(sum[:]))
			if got := c.readSentence(br); strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("reply to the response = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTranscriptSetMove covers =numbers=, id lists, all-or-nothing set and
// move.
func TestTranscriptSetMove(t *testing.T) {
	t.Parallel()
	srv := startServer(t, routerostest.Config{})
	for range 3 {
		srv.AddNAT(map[string]string{"chain": "srcnat", "action": "masquerade"})
	}
	c := dialRaw(t, srv)
	c.login()

	c.send("/ip/firewall/nat/set", "=numbers=*1,*3", "=comment=x")
	c.expect([]string{"!done"})
	c.send("/ip/firewall/nat/set", "=.id=*1,*2", "=dst-port=22")
	c.expect([]string{"!trap", "=category=1", "=message=failure: dst-port can be used only with protocol tcp or udp"}, []string{"!done"})
	c.send("/ip/firewall/nat/set", "=.id=*1", "=disabled=maybe")
	c.expect([]string{"!trap", "=category=1", "=message=input does not match any value of disabled"}, []string{"!done"})
	c.send("/ip/firewall/nat/print", "=.proplist=.id,comment,dst-port")
	c.expect([]string{"!re", "=.id=*1", "=comment=x"}, []string{"!re", "=.id=*2"}, []string{"!re", "=.id=*3", "=comment=x"}, []string{"!done"})

	// comment= unsets the comment, as on RouterOS.
	c.send("/ip/firewall/nat/set", "=.id=*3", "=comment=")
	c.expect([]string{"!done"})
	c.send("/ip/firewall/nat/move", "=numbers=*3", "=destination=*1")
	c.expect([]string{"!done"})
	c.send("/ip/firewall/nat/print", "=.proplist=.id,comment")
	c.expect([]string{"!re", "=.id=*3"}, []string{"!re", "=.id=*1", "=comment=x"}, []string{"!re", "=.id=*2"}, []string{"!done"})
	if got := srv.Writes(); got != 3 {
		t.Errorf("Writes: got %d, want 3 (two sets and a move; refused sets do not count)", got)
	}
}

// TestTranscriptSchemaRefusals shows, byte for byte, how a version's
// command tree refuses what that version lacks: the traps RouterOS sends
// for an unknown parameter and an unknown command.
func TestTranscriptSchemaRefusals(t *testing.T) {
	t.Parallel()
	c := dialRaw(t, startServer(t, routerostest.Config{Version: "7.20.8"}))
	c.login()
	// 7.17 renamed is-responder to responder (ROUTEROS-WIREGUARD.md §2).
	c.send("/interface/wireguard/peers/add", "=interface=wg0", "=is-responder=yes", ".tag=4")
	c.expect([]string{"!trap", ".tag=4", "=message=unknown parameter is-responder"}, []string{"!done", ".tag=4"})
	c.send("/interface/wireguard/peers/frob")
	c.expect(
		[]string{"!trap", "=category=0", "=message=no such command or directory (frob)"},
		[]string{"!trap", "=message=no such command prefix"},
		[]string{"!done"},
	)
	// .proplist, .id and queries are API syntax, not parameters.
	c.send("/ip/address/add", "=address=100.64.0.2/32", "=interface=ether1")
	c.expect([]string{"!done", "=ret=*1"})
	c.send("/ip/address/print", "?address=100.64.0.2/32")
	c.expect(
		[]string{"!re", "=.id=*1", "=address=100.64.0.2/32", "=network=100.64.0.2", "=interface=ether1",
			"=actual-interface=ether1", "=invalid=false", "=dynamic=false", "=disabled=false"},
		[]string{"!done"},
	)
	c.send("/ip/address/set", "=.id=*1", "=comment=tpf")
	c.expect([]string{"!done"})
	c.send("/ip/address/getall", "=.proplist=.id,comment")
	c.expect([]string{"!re", "=.id=*1", "=comment=tpf"}, []string{"!done"})
}

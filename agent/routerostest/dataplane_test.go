package routerostest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestUserNAT(t *testing.T) {
	t.Parallel()
	// The "LAN device": an echo server on loopback standing in for 192.168.88.43:22.
	dev, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	go func() {
		for {
			c, err := dev.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	devAddr := netip.MustParseAddrPort(dev.Addr().String())
	changes := make(chan int, 10)
	s := New(Config{
		UserNAT:     &UserNAT{Map: func(netip.AddrPort) netip.AddrPort { return devAddr }},
		OnNATChange: func(rules []map[string]string) { changes <- len(rules) },
	})
	t.Cleanup(func() { s.Close() })

	port := freePort(t)
	id := s.AddNAT(map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "src-address": "127.0.0.1",
		"dst-address": "127.0.0.2", "dst-port": fmt.Sprint(port), "to-addresses": "192.168.88.43", "to-ports": "22"})
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.2:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, "hello")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("echo through the NAT: got %q, %v", line, err)
	}
	var entry map[string]string
	for _, e := range s.Connections() {
		if e["dst-address"] == fmt.Sprintf("127.0.0.2:%d", port) {
			entry = e
		}
	}
	if entry == nil {
		t.Fatalf("no conntrack entry for the relayed connection: %v", s.Connections())
	}
	// Flushing the entry cuts the connection, as on a real router.
	s.mu.Lock()
	s.conntrack.remove(entry[".id"])
	s.conntrackChangedLocked()
	s.mu.Unlock()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the connection survived its conntrack entry")
	}
	// Without the rule, nothing listens.
	s.RemoveNAT(id)
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.2:%d", port), time.Second); err == nil {
		c.Close()
		t.Error("the port still answers after its rule went")
	}
	for _, want := range []int{1, 0} {
		select {
		case got := <-changes:
			if got != want {
				t.Errorf("OnNATChange: got %d rules, want %d", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("OnNATChange was not called for every change")
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

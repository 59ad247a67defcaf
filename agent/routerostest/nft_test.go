package routerostest

import "testing"

func TestNFTScript(t *testing.T) {
	t.Parallel()
	rules := []map[string]string{
		{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "src-address": "10.99.0.1", "dst-address": "10.99.0.2",
			"dst-port": "50000", "to-addresses": "192.168.88.43", "to-ports": "22", "comment": "tpf:x:1"},
		{"chain": "srcnat", "action": "masquerade", "protocol": "tcp", "src-address": "10.99.0.1", "dst-address": "192.168.88.43", "dst-port": "22"},
		{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "dst-port": "1000-2000", "to-addresses": "1.1.1.1", "to-ports": "1"},
		{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "dst-port": "80", "to-addresses": "1.1.1.1", "to-ports": "80", "disabled": "true"},
		{"chain": "srcnat", "action": "masquerade", "out-interface": "ether1"},
	}
	want := `table ip emu
delete table ip emu
table ip emu {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip saddr 10.99.0.1 ip daddr 10.99.0.2 tcp dport 50000 dnat to 192.168.88.43:22
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.99.0.1 ip daddr 192.168.88.43 tcp dport 22 masquerade
	}
}
`
	if got := NFTScript("emu", rules); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

package routerostest

import (
	"strings"
	"testing"
	"time"
)

func TestQueryMatch(t *testing.T) {
	t.Parallel()
	ether := map[string]string{"type": "ether", "name": "ether1", "mtu": "1500", "comment": "uplink"}
	vlan := map[string]string{"type": "vlan", "name": "vlan10", "mtu": "900"}
	bridge := map[string]string{"type": "bridge", "name": "bridge", "mtu": "1500", "comment": ""}
	route := map[string]string{"distance": "2", "gateway": "172.16.1.1"}
	nearRoute := map[string]string{"distance": "1", "gateway": "172.16.1.1"}
	tests := []struct {
		query string // space-separated words without '?'
		row   map[string]string
		want  bool
	}{
		{"", ether, true},
		{"type=ether", ether, true},
		{"type=ether", vlan, false},
		{"=type=ether", ether, true},
		{"comment", ether, true},
		{"comment", vlan, false},
		{"-comment", vlan, true},
		{"-comment", ether, false},
		{"comment", bridge, true}, // present though empty
		{">comment=", ether, true},
		{">comment=", bridge, false},
		{">comment=", vlan, false},
		{"<mtu=1000", vlan, true}, // numeric, not bytewise ("900" > "1000")
		{"<mtu=1000", ether, false},
		{">mtu=1000", ether, true},
		{"type=ether type=vlan #|", ether, true},
		{"type=ether type=vlan #|", vlan, true},
		{"type=ether type=vlan #|", bridge, false},
		{"type=ether type=vlan", ether, false}, // AND by default
		{"type=ether #!", vlan, true},
		{"type=ether #!", ether, false},
		{">distance=1 gateway=172.16.1.1 #&!", route, false},
		{">distance=1 gateway=172.16.1.1 #&!", nearRoute, true},
		{"type=ether type=vlan type=bridge #||", bridge, true},
		{"type=vlan type=ether #1", vlan, true}, // stack replaced by element 1 (type=vlan)
		{"type=vlan type=ether #1", ether, false},
		{"type=ether #.!", ether, false},        // dup then negate: {true,false}
		{"type=ether #0.!", ether, false},       // index 0 then '.' no-op then negate
		{"type=vlan #0.!&", ether, false},       // false AND true
		{"type=ether #0!|", ether, true},        // true OR false
		{"type=ether type=vlan #5", vlan, true}, // beyond the stack: an implicit true
		{"name=ether1=x", ether, false},
	}
	for _, tt := range tests {
		var words []string
		if tt.query != "" {
			words = strings.Split(tt.query, " ")
		}
		q, err := parseQuery(words)
		if err != nil {
			t.Fatalf("parseQuery(%q): %v", tt.query, err)
		}
		if got := q.match(tt.row); got != tt.want {
			t.Errorf("?%s on %v = %v, want %v", strings.ReplaceAll(tt.query, " ", " ?"), tt.row, got, tt.want)
		}
	}
}

func TestQueryRejectsUnknownOperations(t *testing.T) {
	t.Parallel()
	if _, err := parseQuery([]string{"#x"}); err == nil {
		t.Error("parseQuery(?#x) succeeded, want an error")
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v          string
		at718      bool
		before6451 bool
	}{
		{"7.18.2", true, false},
		{"7.18", true, false},
		{"7.17.2", false, false},
		{"7.19beta2", true, false},
		{"6.49.10", false, false},
		{"6.45.1", false, false},
		{"6.45.0", false, true},
		{"6.42.12", false, true},
	}
	for _, tt := range tests {
		v := parseVersion(tt.v)
		if got := v.atLeast(7, 18, 0); got != tt.at718 {
			t.Errorf("%s at least 7.18: got %v, want %v", tt.v, got, tt.at718)
		}
		if got := !v.atLeast(6, 45, 1); got != tt.before6451 {
			t.Errorf("%s before 6.45.1: got %v, want %v", tt.v, got, tt.before6451)
		}
	}
}

func TestFormatUptime(t *testing.T) {
	t.Parallel()
	tests := map[int64]string{0: "0s", 59: "59s", 60: "1m", 3661: "1h1m1s", 8*86400 + 5: "1w1d5s"}
	for secs, want := range tests {
		if got := formatUptime(time.Duration(secs) * time.Second); got != want {
			t.Errorf("formatUptime(%ds) = %q, want %q", secs, got, want)
		}
	}
}

package rosschema

import (
	"slices"
	"strings"
	"testing"
)

func TestVersions(t *testing.T) {
	t.Parallel()
	want := []string{"7.12.2", "7.15.3", "7.18.2", "7.19.6", "7.20.8", "7.22.3", "7.24"}
	if got := Versions(); !slices.Equal(got, want) {
		t.Errorf("Versions: got %v, want %v", got, want)
	}
}

func TestFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		version string
		want    string // "" for nil
	}{
		{"7.12.2", "7.12.2"},
		{"7.15.3", "7.15.3"},
		{"7.16.1", "7.15.3"},
		{"7.17", "7.15.3"},
		{"7.18.2 (stable)", "7.18.2"},
		{"7.19beta2", "7.18.2"},
		{"7.19.6", "7.19.6"},
		{"7.20", "7.19.6"},
		{"7.24", "7.24"},
		{"7.30.1", "7.24"},
		{"7.12.1", ""},
		{"7.11", ""},
		{"6.49.10", ""},
		{"8.1", ""},
		{"7", ""},
		{"", ""},
		{"stable", ""},
	}
	for _, tt := range tests {
		tree := For(tt.version)
		got := ""
		if tree != nil {
			got = tree.Version()
		}
		if got != tt.want {
			t.Errorf("For(%q): got tree %q, want %q", tt.version, got, tt.want)
		}
	}
}

// TestKnownFacts checks changes between versions that the routeros-schema
// README and ROUTEROS-WIREGUARD.md name.
func TestKnownFacts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, param string
		has         map[string]bool // version -> whether the command takes param
	}{
		{"/container/envs/add", "name", map[string]bool{"7.12.2": true, "7.18.2": true, "7.19.6": true, "7.20.8": false, "7.24": false}},
		{"/container/envs/add", "list", map[string]bool{"7.12.2": false, "7.19.6": false, "7.20.8": true, "7.24": true}},
		{"/container/add", "envlist", map[string]bool{"7.19.6": true, "7.20.8": false}},
		{"/container/add", "envlists", map[string]bool{"7.19.6": false, "7.20.8": true}},
		{"/interface/wireguard/peers/add", "name", map[string]bool{"7.12.2": false, "7.15.3": true, "7.20.8": true}},
		{"/interface/wireguard/peers/add", "is-responder", map[string]bool{"7.12.2": false, "7.15.3": true, "7.18.2": false}},
		{"/interface/wireguard/peers/add", "responder", map[string]bool{"7.15.3": false, "7.18.2": true, "7.24": true}},
		{"/interface/wireguard/peers/add", "client-allowed-address", map[string]bool{"7.20.8": false, "7.22.3": true}},
		{"/interface/wireguard/peers/set", "numbers", map[string]bool{"7.12.2": true, "7.24": true}},
		{"/interface/wireguard/add", "private-key", map[string]bool{"7.12.2": true, "7.24": true}},
		{"/interface/wireguard/add", "public-key", map[string]bool{"7.12.2": false, "7.24": false}}, // read-only
		{"/ip/address/add", "address", map[string]bool{"7.12.2": true, "7.24": true}},
		{"/ip/firewall/nat/add", "place-before", map[string]bool{"7.12.2": true, "7.24": true}},
		{"/ip/firewall/nat/set", "place-before", map[string]bool{"7.12.2": false, "7.24": false}},
		{"/ip/firewall/nat/print", "count-only", map[string]bool{"7.12.2": true, "7.24": true}},
	}
	for _, tt := range tests {
		for v, want := range tt.has {
			params, ok := mustTree(t, v).Command(tt.path)
			if !ok {
				t.Errorf("%s: %s missing", v, tt.path)
				continue
			}
			if got := params.Has(tt.param); got != want {
				t.Errorf("%s %s: has %s = %v, want %v", v, tt.path, tt.param, got, want)
			}
		}
	}
}

func mustTree(t *testing.T, version string) *Tree {
	t.Helper()
	tree := For(version)
	if tree == nil || tree.Version() != version {
		t.Fatalf("For(%q): got %v, want that version's tree", version, tree)
	}
	return tree
}

// TestAgentCommands checks that every command the tpf agent sends, with
// the parameters it sends, exists in every tree: the emulator refuses
// anything else, so a gap here would be a real incompatibility.
func TestAgentCommands(t *testing.T) {
	t.Parallel()
	commands := map[string][]string{
		"/ip/firewall/nat/print":         {"count-only"},
		"/ip/firewall/nat/add":           {"chain", "action", "protocol", "src-address", "dst-address", "dst-port", "to-addresses", "to-ports", "comment", "disabled", "place-before"},
		"/ip/firewall/nat/set":           {"numbers", "chain", "action", "protocol", "src-address", "dst-address", "dst-port", "to-addresses", "to-ports", "comment", "disabled"},
		"/ip/firewall/nat/remove":        {"numbers"},
		"/ip/firewall/nat/move":          {"numbers", "destination"},
		"/ip/firewall/connection/print":  nil,
		"/ip/firewall/connection/remove": {"numbers"},
		"/system/resource/print":         nil,
		"/system/identity/print":         nil,
		"/system/identity/set":           {"name"},
		"/interface/wireguard/add":       {"name", "listen-port", "mtu", "private-key", "comment", "disabled"},
		"/interface/wireguard/set":       {"numbers", "name", "listen-port", "mtu", "private-key", "comment", "disabled"},
		"/interface/wireguard/remove":    {"numbers"},
		"/interface/wireguard/print":     nil,
		"/interface/wireguard/peers/add": {"interface", "public-key", "endpoint-address", "endpoint-port", "allowed-address", "persistent-keepalive", "preshared-key", "comment", "disabled"},
		"/interface/wireguard/peers/set": {"numbers", "interface", "public-key", "endpoint-address", "endpoint-port", "allowed-address", "persistent-keepalive", "comment", "disabled"},
		"/ip/address/add":                {"address", "interface", "network", "comment", "disabled"},
		"/ip/address/set":                {"numbers", "address", "interface", "network", "comment", "disabled"},
		"/ip/address/remove":             {"numbers"},
		"/ip/address/print":              nil,
	}
	for _, v := range Versions() {
		tree := For(v)
		for path, want := range commands {
			params, ok := tree.Command(path)
			if !ok {
				t.Errorf("%s: no command %s", v, path)
				continue
			}
			for _, p := range want {
				if !params.Has(p) {
					t.Errorf("%s %s: no parameter %s (has %s)", v, path, p, strings.Join(params.Names(), ","))
				}
			}
		}
	}
}

func TestTreeShape(t *testing.T) {
	t.Parallel()
	tree := mustTree(t, "7.20.8")
	for _, dir := range []string{"/", "/ip", "/ip/firewall", "/interface/wireguard/peers", "/user/group", "/container/envs", "/system/resource", "/file"} {
		if !tree.IsDir(dir) {
			t.Errorf("IsDir(%s): got false, want true", dir)
		}
	}
	for _, notDir := range []string{"/ip/address/add", "/ip/frob", "/tool/fetch", ""} {
		if notDir != "" && tree.IsDir(notDir) {
			t.Errorf("IsDir(%s): got true, want false", notDir)
		}
	}
	if _, ok := tree.Command("/interface/wireguard"); ok {
		t.Error("Command(/interface/wireguard): got a command, want none (a menu)")
	}
	if _, ok := tree.Command("/interface/wireguard/frob"); ok {
		t.Error("Command(/interface/wireguard/frob): got a command, want none")
	}
	fetch, ok := tree.Command("/tool/fetch")
	if !ok || !fetch.Has("url") || !fetch.Has("output") {
		t.Errorf("/tool/fetch: got %v %v, want a command taking url and output", fetch.Names(), ok)
	}
	// Spellings of one path.
	for _, p := range []string{"/interface/wireguard/peers/add", "interface/wireguard/peers/add/", "/interface wireguard peers add", "/interface/wireguard/peers add"} {
		if _, ok := tree.Command(p); !ok {
			t.Errorf("Command(%q): not found", p)
		}
	}
	// Names returns a copy.
	params, _ := tree.Command("/ip/address/add")
	names := params.Names()
	names[0] = "zzz"
	if params.Has("zzz") {
		t.Error("changing Names() changed the tree")
	}
}

func TestCovers(t *testing.T) {
	t.Parallel()
	tree := mustTree(t, "7.24")
	for path, want := range map[string]bool{
		"/ip/address":                  true,
		"/ip/address/add":              true,
		"/interface/wireguard/peers":   true,
		"/container/envs/add":          true,
		"/tool/fetch":                  true,
		"/user/group/add":              true,
		"/system/resource/print":       true,
		"/ip":                          false,
		"/ip/firewall/mangle/add":      false,
		"/interface/print":             false,
		"/interface/ethernet":          false,
		"/tool/ping":                   false,
		"/system/scheduler/add":        false,
		"/ip/addressbook":              false,
		"/interface/wireguardian/list": false,
	} {
		if got := tree.Covers(path); got != want {
			t.Errorf("Covers(%s): got %v, want %v", path, got, want)
		}
	}
}

func TestParseRejectsBadData(t *testing.T) {
	t.Parallel()
	if _, err := parse([]byte("not gzip")); err == nil {
		t.Error("parse of non-gzip data: got no error")
	}
}

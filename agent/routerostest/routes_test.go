package routerostest

import (
	"slices"
	"strings"
	"testing"

	"github.com/tpf-dev/tpf/shared/rosschema"
)

// TestRoutesExistInEveryTree checks that every command the emulator
// answers, and every parameter its handlers take, exists in each RouterOS
// 7 tree: otherwise refuseBySchema would hide the handler, or the handler
// would accept what the real version refuses. The agent's NAT commands
// are among them.
func TestRoutesExistInEveryTree(t *testing.T) {
	t.Parallel()
	handlerParams := map[string][]string{
		"/ip/firewall/nat/add":              slices.Concat(natWritable, []string{"place-before"}),
		"/ip/firewall/nat/set":              slices.Concat(natWritable, []string{"numbers"}),
		"/ip/firewall/nat/move":             {"numbers", "destination"},
		"/ip/firewall/nat/print":            printArgs,
		"/interface/wireguard/add":          keys(wgParsers),
		"/interface/wireguard/set":          slices.Concat(keys(wgParsers), []string{"numbers"}),
		"/interface/wireguard/peers/add":    {"interface", "public-key", "preshared-key", "endpoint-address", "endpoint-port", "allowed-address", "persistent-keepalive", "comment", "disabled", "place-before"},
		"/ip/address/add":                   keys(addressParsers),
		"/ip/address/set":                   slices.Concat(keys(addressParsers), []string{"numbers"}),
		"/ip/firewall/connection/remove":    {"numbers"},
		"/interface/wireguard/remove":       {"numbers"},
		"/interface/wireguard/peers/remove": {"numbers"},
		"/ip/address/remove":                {"numbers"},
		"/system/identity/set":              {"name"},
		"/ip/firewall/filter/add":           slices.Concat(filterWritable, []string{"place-before"}),
		"/ip/firewall/filter/set":           slices.Concat(filterWritable, []string{"numbers"}),
		"/ip/firewall/filter/move":          {"numbers", "destination"},
		"/ip/firewall/filter/remove":        {"numbers"},
		"/user/add":                         slices.Concat(keys(userParsers), []string{"password"}),
		"/user/set":                         slices.Concat(keys(userParsers), []string{"password", "numbers"}),
		"/user/remove":                      {"numbers"},
		"/user/group/add":                   slices.Concat(keys(groupParsers), []string{"policy"}),
		"/user/group/set":                   slices.Concat(keys(groupParsers), []string{"policy", "numbers"}),
		"/user/group/remove":                {"numbers"},
		"/user/active/remove":               {"numbers"},
		"/user/active/request-logout":       {"numbers"},
	}
	for _, v := range rosschema.Versions() {
		s := New(Config{Version: v})
		handlerParams["/ip/service/set"] = slices.Concat(keys(s.serviceParsers()), []string{"numbers"})
		for path := range s.routes {
			if path == "/cancel" {
				continue
			}
			cmd := strings.Replace(path, "/getall", "/print", 1)
			params, ok := s.tree.Command(cmd)
			if !ok {
				t.Errorf("%s: the emulator answers %s, which the version does not have", v, path)
				continue
			}
			for _, p := range handlerParams[path] {
				if !strings.HasPrefix(p, ".") && !params.Has(p) {
					t.Errorf("%s: %s takes %s here but not in the version", v, path, p)
				}
			}
		}
		s.Close()
	}
}

func keys(m map[string]parser) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

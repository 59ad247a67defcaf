package routerostest

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// NFTScript renders the NAT table's TCP dst-nat and masquerade rules as an
// nftables script that replaces table `ip <table>` whole, so that a Linux
// host (typically a network namespace standing in for the router) does the
// NAT for real. Rules it cannot express are left out.
func NFTScript(table string, rules []map[string]string) string {
	var pre, post strings.Builder
	for _, r := range rules {
		if r["disabled"] == "true" || r["protocol"] != "tcp" {
			continue
		}
		match := nftMatch(r)
		if match == "" {
			continue
		}
		switch {
		case r["chain"] == "dstnat" && r["action"] == "dst-nat":
			to, err1 := netip.ParseAddr(r["to-addresses"])
			port, err2 := strconv.ParseUint(r["to-ports"], 10, 16)
			if err1 != nil || err2 != nil {
				continue
			}
			fmt.Fprintf(&pre, "\t\t%s dnat to %s\n", match, netip.AddrPortFrom(to, uint16(port)))
		case r["chain"] == "srcnat" && r["action"] == "masquerade":
			fmt.Fprintf(&post, "\t\t%s masquerade\n", match)
		}
	}
	return fmt.Sprintf(`table ip %[1]s
delete table ip %[1]s
table ip %[1]s {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
%[2]s	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
%[3]s	}
}
`, table, pre.String(), post.String())
}

// nftMatch renders a rule's matchers, or "" when one cannot be expressed.
func nftMatch(r map[string]string) string {
	parts := []string{}
	for _, m := range []struct{ prop, nft string }{{"src-address", "ip saddr"}, {"dst-address", "ip daddr"}} {
		v := r[m.prop]
		if v == "" {
			continue
		}
		if _, err := netip.ParsePrefix(v); err != nil {
			if _, err := netip.ParseAddr(v); err != nil {
				return ""
			}
		}
		parts = append(parts, m.nft+" "+v)
	}
	if p := r["dst-port"]; p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return ""
		}
		parts = append(parts, "tcp dport "+p)
	} else {
		parts = append(parts, "meta l4proto tcp")
	}
	return strings.Join(parts, " ")
}

// ApplyNFT loads an NFTScript with `nft -f -` (in the caller's network
// namespace).
func ApplyNFT(table string, rules []map[string]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(NFTScript(table, rules))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

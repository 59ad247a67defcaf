package routerostest

import (
	"io"
	"log/slog"
	"maps"
	"strconv"
	"strings"
)

// Config says which router to pretend to be. The zero value is a RouterOS
// 7.18.2 CHR named "MikroTik" with user admin and an empty password.
type Config struct {
	// Users maps user names to passwords: the /user table the router
	// starts with, each user in group full. Nil means {"admin": ""}; an
	// empty non-nil map lets nobody in.
	Users map[string]string

	// Version is the RouterOS version reported and mimicked, e.g. "7.18.2"
	// or "6.49.10". Empty means "7.18.2". From 7.18 on, a print that finds
	// nothing answers !empty before !done; older versions send !done only.
	// From 6.45.1 on, the MD5 challenge response is refused (RouterOS
	// removed the password storage it needs) unless LegacyLogin is set.
	// From 7.12.2 on, commands and parameters missing from the version's
	// command tree (rosschema.For) are refused, and WireGuard peers have
	// the fields that tree gives them (name, is-responder or responder);
	// 6.x has no /interface/wireguard.
	Version string

	// LegacyLogin mimics RouterOS before 6.43: /login answers every
	// request, even one with a password, with a challenge (!done =ret=...)
	// and only the MD5 response logs in. Failures then read "cannot log in".
	LegacyLogin bool

	// Identity is the /system/identity name. Empty means "MikroTik".
	Identity string

	// BoardName is the /system/resource board-name. Empty means "CHR".
	BoardName string

	// Logger receives one line per command. Nil discards. Passwords and
	// challenge responses are never logged.
	Logger *slog.Logger

	// UserNAT, when set, carries traffic through the NAT table in user
	// space (see UserNAT).
	UserNAT *UserNAT

	// OnNATChange, when set, is called with a copy of the NAT table after
	// every change, one call at a time and in order, e.g. to apply the
	// rules to a kernel's NAT in a network namespace.
	OnNATChange func(rules []map[string]string)

	// OnWireGuardChange, when set, is called after every change to the
	// WireGuard interfaces, their peers or /ip/address, made through the
	// API or the hooks (AddRow, SetRow, RemoveRow), one call at a time and
	// in order, with copies of the three tables as stored: the interfaces
	// with their private-key, the peers without the read-only fields
	// SetPeerStatus gives them. It runs on a goroutine of its own and may
	// call the Server (SetPeerStatus, Rows), e.g. to run a real WireGuard
	// device per interface in a network namespace and feed its state back.
	OnWireGuardChange func(interfaces, peers, addresses []map[string]string)
}

// withDefaults returns c with every zero field replaced by its documented
// default, and Users copied so the caller may keep editing its map.
func (c Config) withDefaults() Config {
	if c.Users == nil {
		c.Users = map[string]string{"admin": ""}
	} else {
		c.Users = maps.Clone(c.Users)
	}
	if c.Version == "" {
		c.Version = "7.18.2"
	}
	if c.Identity == "" {
		c.Identity = "MikroTik"
	}
	if c.BoardName == "" {
		c.BoardName = "CHR"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// version is a parsed RouterOS version: major, minor, patch.
type version [3]int

// parseVersion reads the leading numbers of a version string such as
// "7.18.2", "6.49.10" or "7.19beta2"; missing or unreadable parts are 0.
func parseVersion(s string) version {
	var v version
	for i, part := range strings.SplitN(s, ".", 3) {
		end := 0
		for end < len(part) && part[end] >= '0' && part[end] <= '9' {
			end++
		}
		v[i], _ = strconv.Atoi(part[:end])
	}
	return v
}

// atLeast reports whether v >= major.minor.patch.
func (v version) atLeast(major, minor, patch int) bool {
	w := version{major, minor, patch}
	for i := range v {
		if v[i] != w[i] {
			return v[i] > w[i]
		}
	}
	return true
}

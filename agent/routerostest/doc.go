// Package routerostest holds a RouterOS API server emulator for tests and
// local demos: the binary protocol of TCP port 8728 (words, sentences, login,
// tags, !empty, !fatal), a few menus backed by in-memory tables
// (/ip/firewall/nat, /ip/firewall/connection, /ip/address,
// /interface/wireguard and its peers, /system/resource,
// /system/identity), and hooks that let a test look at and disturb the
// router behind the client's back.
//
// The emulator follows the team's RouterOS specification (ROUTEROS.md and,
// for WireGuard and /ip/address, ROUTEROS-WIREGUARD.md) and aims to be
// indistinguishable from a real router for a go-routeros client doing the
// tpf agent's work: log in, add, find, set and remove tagged NAT rules and
// the connection-tracking entries they leave behind, and keep a WireGuard
// interface, its peer and the tunnel address.
//
// Mimicking a RouterOS 7 version with a known command tree (package
// rosschema: real 7.12.2 to 7.24; a version between two dumps gets the
// older one), it first refuses what that version lacks, as the router
// would: a command not in the tree gets the "no such command or directory"
// traps, a parameter the command does not take "unknown parameter <name>".
// API syntax (.id, .proplist, .tag, ?queries) is not checked, and getall
// counts as print. Then the emulator's own handlers refuse what they do not
// model, the same way; so a command the real version has but the emulator
// lacks still answers "no such command". RouterOS 6, which has no
// WireGuard, and 7.x before 7.12.2 are not checked against a tree.
//
// Besides the WireGuard interfaces the router has the interfaces ether1
// and bridge, which /ip/address accepts and no menu lists.
//
// It uses the standard library and tpf's shared/rosschema (itself standard
// library only) and must not import the rest of tpf, so any package's tests
// can depend on it.
package routerostest

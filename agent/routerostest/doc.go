// Package routerostest holds a RouterOS API server emulator for tests and
// local demos: the binary protocol of TCP port 8728 (words, sentences, login,
// tags, !empty, !fatal), a few menus backed by in-memory tables
// (/ip/firewall/nat, /ip/firewall/connection, /system/resource,
// /system/identity), and hooks that let a test look at and disturb the
// router behind the client's back.
//
// The emulator follows the team's RouterOS specification (ROUTEROS.md) and
// aims to be indistinguishable from a real router for a go-routeros client
// doing the tpf agent's work: log in, add, find, set and remove tagged NAT rules and
// the connection-tracking entries they leave behind.
//
// It uses the standard library only and must not import the rest of tpf, so
// any package's tests can depend on it.
package routerostest

// Package routerostest holds a RouterOS API server emulator for tests and
// local demos: the binary protocol of TCP port 8728 (words, sentences, login,
// tags, !empty, !fatal), a few menus backed by in-memory tables
// (/ip/firewall/nat, /ip/firewall/filter, /ip/firewall/connection,
// /ip/address, /ip/service, /interface/wireguard and its peers, /user,
// /user/group, /user/active, /system/resource, /system/identity), a
// stand-in for the router's SSH service (StartSSH), and hooks that let a
// test look at and disturb the router behind the client's back.
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
// Users (the facts and their sources are in agent/routeros/USERS.md):
// Config.Users seeds /user, each in the built-in group full; read, write
// and full have the version's policies (RouterOS 7's, or 6's with dude
// and tikapp). Passwords are write-only: stored apart, never printed. A
// group's policy prints granted then negated names in the version's
// order; add revokes what it does not list, set changes only what it
// lists, an unknown name is "input does not match any value of policy".
// Built-in groups and groups a user is in are not removed (the texts of
// those traps are the emulator's). The API login and the SSH stand-in
// check /user as RouterOS does: the user enabled, its group granting api
// or ssh, the source within its address list. Every login is a
// /user/active row (via=api or ssh, with when, address, group) until its
// session ends; removing the row, with request-logout up to 7.19 or
// remove from 7.20, ends the session. Removing a user leaves its sessions
// open: RouterOS does not document what it does, and this is the
// assumption that makes a client log them out itself.
//
// /ip/service has RouterOS 7's eight services at their default ports
// (www-ssl disabled), set-only, with address, or available-from on 7.24
// (where address is written through to it). Only ssh does something: the
// SSH stand-in listens on its port, moves when it changes, stops while it
// is disabled and closes connections from sources the list does not
// admit. The API listener stays where Start put it whatever api's row
// says. /ip/firewall/filter holds rules like the NAT table, with the
// filter's actions; nothing filters traffic.
//
// The SSH stand-in (golang.org/x/crypto/ssh) serves password logins,
// "exec" commands and a minimal interactive shell that knows
// "/system identity print", ":put" and "/user active print", and answers
// anything else with RouterOS's "bad command name".
//
// It uses the standard library, golang.org/x/crypto/ssh and tpf's
// shared/rosschema (itself standard library only) and must not import the
// rest of tpf, so any package's tests can depend on it.
package routerostest

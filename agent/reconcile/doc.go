// Package reconcile is the agent's pure core: given the desired set of
// forwards from the controller, the router's NAT rules as read, and the
// agent's clock, Compute returns the plan of removals, fixes and additions
// that makes the router hold exactly the desired set, and the per-forward
// results to report.
//
// Compute enforces the agent's half of the design invariants: it re-checks
// every forward the way the API does (so a controller bug cannot open a
// path to the router itself or a metadata service), enforces expiry on the
// agent's own clock, removes every tpf rule that is stale, expired or
// malformed, and never touches a rule whose comment lacks the tpf prefix.
//
// PlanTunnel does the same for the router's end of the WireGuard
// management tunnel (an interface, its peer, the edge, and a
// point-to-point address, all commented tpf:tunnel), TunnelStatus reads
// the tunnel's state off the same rows, and TunnelFirewallWarning looks
// for a filter rule that would obviously drop what the tunnel carries.
//
// PlanAccesses does it for transient accesses, logins to the router
// itself: a user in a group tpf keeps, allowed to log in only from the
// edge's tunnel address, and an input rule that lets the edge reach the
// user's service; sessions of users that end are logged out first.
// Passwords pass through it as Secret values, which never print.
//
// It does no I/O and keeps no state; package routeros reads rules and
// applies plans. It imports only the standard library and tpf's shared
// packages.
package reconcile

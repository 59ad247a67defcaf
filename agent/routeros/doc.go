// Package routeros is the agent's RouterOS side: it talks to the router's
// binary API (api, TCP 8728, or api-ssl, 8729) through
// github.com/go-routeros/routeros/v3, reads the NAT table into
// reconcile.Rule values, applies reconcile.Plan values, and flushes the
// connection-tracking entries of removed forwards. ApplyTunnel keeps the
// router's end of the WireGuard management tunnel the same way, through
// reconcile.PlanTunnel, and reads back its state. ApplyAccesses keeps
// transient accesses (logins to the router itself: users, their groups,
// their input rules, and the logout of sessions that end) through
// reconcile.PlanAccesses; USERS.md lists what it relies on in RouterOS.
//
// go-routeros's synchronous calls ignore their context, and its async mode
// can lose a fast reply, so this package dials the connection itself, uses
// only synchronous calls, and bounds every command with a deadline on the
// connection (the per-command timeout or the context's deadline, whichever
// comes first); cancelling the context interrupts a command in flight. A
// failed or timed-out exchange leaves the stream at an unknown point, so
// the Client then refuses further commands with ErrBroken: Close it and
// Dial again.
//
// It imports go-routeros, the standard library and tpf's reconcile and
// shared packages; nothing else in tpf.
package routeros

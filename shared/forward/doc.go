// Package forward holds the vocabulary shared by the tpf controller and the
// on-router agent for describing a port forward: which destination and source
// addresses a forward may use, and the tag that marks a router NAT rule as
// created by tpf.
//
// The controller uses it to validate API requests; the agent uses it again to
// re-check every forward it is told to install, so that a controller bug cannot
// open a path into a customer network. Both sides must therefore agree
// exactly, which is why the rules live here and nowhere else.
//
// The package imports only the standard library.
package forward

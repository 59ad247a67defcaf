// Package e2e holds tpf's end-to-end tests: the controller (API, hub,
// expiry clock, edge, on real PostgreSQL) with real agents and emulated
// RouterOS routers, on loopback and across network namespaces, and the
// benchmarks that measure the whole path. It also holds the tests of the
// codebase's import rules (imports_test.go) and the demo program
// (cmd/tpf-demo), which composes the same parts in one process.
//
// It is the only place that may import both the controller's tree and the
// agent's: controller/… never imports agent/… and agent/… never imports
// controller/…, tests included, so that each side's own tests run without
// the other (`go test ./agent/... ./shared/...` needs no PostgreSQL).
// Nothing imports this package.
package e2e

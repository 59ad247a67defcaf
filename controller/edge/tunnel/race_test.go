//go:build race

package tunnel_test

// raceEnabled: the race detector slows code down several times over.
const raceEnabled = true

package daemon

import (
	"testing"
	"time"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

// While the tunnel waits for its first handshake the agent looks every
// second, for a while; a tunnel that shook hands lately needs no extra look,
// and one that cannot come up is left to the usual resync.
func TestTunnelRecheck(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := &Daemon{clock: &controllerClock{own: func() time.Time { return now }}}
	waiting := &syncproto.TunnelState{Peers: []syncproto.PeerState{{PublicKey: "edge"}}}
	if got := d.tunnelRecheck(waiting); !got.Equal(now.Add(handshakeWait)) {
		t.Errorf("waiting for the first handshake: got %v, want a look in %v", got, handshakeWait)
	}
	now = now.Add(handshakeHurry + time.Second)
	if got := d.tunnelRecheck(waiting); !got.IsZero() {
		t.Errorf("still waiting after %v: got %v, want the usual resync", handshakeHurry, got)
	}
	up := &syncproto.TunnelState{Peers: []syncproto.PeerState{{PublicKey: "edge", LastHandshake: now.Add(-time.Minute)}}}
	if got := d.tunnelRecheck(up); !got.IsZero() {
		t.Errorf("up: got %v, want no extra look", got)
	}
	// The wait starts again once the tunnel was up: a late handshake is
	// looked for soon again.
	late := &syncproto.TunnelState{Peers: []syncproto.PeerState{{PublicKey: "edge", LastHandshake: now.Add(-3 * time.Minute)}}}
	if got := d.tunnelRecheck(late); !got.Equal(now.Add(handshakeWait)) {
		t.Errorf("handshake late: got %v, want a look in %v", got, handshakeWait)
	}
	if got := d.tunnelRecheck(nil); !got.IsZero() {
		t.Errorf("no tunnel: got %v, want no extra look", got)
	}
}

package forwards

import (
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

var (
	idA = uuid.MustParse("00000000-0000-4000-8000-00000000000a")
	idB = uuid.MustParse("00000000-0000-4000-8000-00000000000b")
	idC = uuid.MustParse("00000000-0000-4000-8000-00000000000c")
)

func TestAgentReported(t *testing.T) {
	pending := forwardState{ID: idA, Status: fleet.StatusPending, EdgeManaged: true}
	tests := []struct {
		name      string
		rows      []forwardState
		results   []syncproto.Result
		present   []uuid.UUID
		want      []forwardState
		activated []uuid.UUID
		removed   []uuid.UUID
		// tunnelDown: the router's tunnel has not shaken hands lately (in
		// every other case it has, or the region has no managed tunnel).
		tunnelDown bool
		// regionHeld: the caller locked the region, so service ports may
		// move.
		regionHeld   bool
		portsChanged bool
	}{{
		name:    "rule confirmed, edge not yet listening: still pending",
		rows:    []forwardState{pending},
		results: []syncproto.Result{{ID: idA.String(), State: syncproto.StateApplied}},
		want:    []forwardState{{ID: idA, Status: fleet.StatusPending, EdgeManaged: true, RuleConfirmed: true}},
	}, {
		name:      "rule and listener in place: active",
		rows:      []forwardState{{ID: idA, Status: fleet.StatusPending, EdgeManaged: true, ListenerConfirmed: true, RouterError: "failed: x"}},
		results:   []syncproto.Result{{ID: idA.String(), State: syncproto.StateApplied}},
		want:      []forwardState{{ID: idA, Status: fleet.StatusActive, EdgeManaged: true, ListenerConfirmed: true, RuleConfirmed: true}},
		activated: []uuid.UUID{idA},
	}, {
		name:      "no edge in the region: the rule is enough",
		rows:      []forwardState{{ID: idA, Status: fleet.StatusPending}},
		results:   []syncproto.Result{{ID: idA.String(), State: syncproto.StateApplied}},
		want:      []forwardState{{ID: idA, Status: fleet.StatusActive, RuleConfirmed: true}},
		activated: []uuid.UUID{idA},
	}, {
		name:       "rule and listener in place, tunnel down: still pending",
		rows:       []forwardState{{ID: idA, Status: fleet.StatusPending, EdgeManaged: true, ListenerConfirmed: true}},
		results:    []syncproto.Result{{ID: idA.String(), State: syncproto.StateApplied}},
		want:       []forwardState{{ID: idA, Status: fleet.StatusPending, EdgeManaged: true, ListenerConfirmed: true, RuleConfirmed: true}},
		tunnelDown: true,
	}, {
		name:    "confirmed again: nothing to write",
		rows:    []forwardState{{ID: idA, Status: fleet.StatusActive, RuleConfirmed: true}},
		results: []syncproto.Result{{ID: idA.String(), State: syncproto.StateApplied}},
	}, {
		name:    "refused: the message is kept, once",
		rows:    []forwardState{pending, {ID: idB, Status: fleet.StatusPending, RouterError: "refused: loopback"}},
		results: []syncproto.Result{{ID: idA.String(), State: syncproto.StateRefused, Error: "loopback"}, {ID: idB.String(), State: syncproto.StateRefused, Error: "loopback"}},
		want:    []forwardState{{ID: idA, Status: fleet.StatusPending, EdgeManaged: true, RouterError: "refused: loopback"}},
	}, {
		name:    "ended and gone from the router: removed; still there: removing",
		rows:    []forwardState{{ID: idB, Status: fleet.StatusRemoving}, {ID: idC, Status: fleet.StatusRemoving}},
		present: []uuid.UUID{idC},
		want:    []forwardState{{ID: idB, Status: fleet.StatusRemoved}},
		removed: []uuid.UUID{idB},
	}, {
		name:    "a revoked forward an old set still applied is confirmed, not revived",
		rows:    []forwardState{{ID: idB, Status: fleet.StatusRemoving}},
		results: []syncproto.Result{{ID: idB.String(), State: syncproto.StateApplied}},
		present: []uuid.UUID{idB},
		want:    []forwardState{{ID: idB, Status: fleet.StatusRemoving, RuleConfirmed: true}},
	}, {
		name:         "an access's service on another port: the port moves",
		rows:         []forwardState{{ID: idA, Status: fleet.StatusPending, Service: fleet.ServiceSSH, DstPort: 22}},
		results:      []syncproto.Result{{ID: idA.String(), State: syncproto.StateApplied, ServicePort: 2222}},
		want:         []forwardState{{ID: idA, Status: fleet.StatusActive, Service: fleet.ServiceSSH, DstPort: 2222, RuleConfirmed: true}},
		activated:    []uuid.UUID{idA},
		regionHeld:   true,
		portsChanged: true,
	}, {
		name:    "an access's service port changed but the region is not held: the next report moves it",
		rows:    []forwardState{{ID: idA, Status: fleet.StatusActive, Service: fleet.ServiceWinbox, DstPort: 8291, RuleConfirmed: true}},
		results: []syncproto.Result{{ID: idA.String(), State: syncproto.StateApplied, ServicePort: 18291}},
	}, {
		name:       "the same service port: nothing to write",
		rows:       []forwardState{{ID: idA, Status: fleet.StatusActive, Service: fleet.ServiceWinbox, DstPort: 8291, RuleConfirmed: true}},
		results:    []syncproto.Result{{ID: idA.String(), State: syncproto.StateApplied, ServicePort: 8291}},
		regionHeld: true,
	}, {
		name:       "a forward's result with a service port: ignored",
		rows:       []forwardState{{ID: idA, Status: fleet.StatusActive, DstPort: 22, RuleConfirmed: true}},
		results:    []syncproto.Result{{ID: idA.String(), State: syncproto.StateApplied, ServicePort: 2222}},
		regionHeld: true,
	}, {
		name:       "an ended access keeps its port",
		rows:       []forwardState{{ID: idA, Status: fleet.StatusRemoving, Service: fleet.ServiceSSH, DstPort: 22, RuleConfirmed: true}},
		results:    []syncproto.Result{{ID: idA.String(), State: syncproto.StateApplied, ServicePort: 2222}},
		present:    []uuid.UUID{idA},
		regionHeld: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withTunnel(tt.rows, !tt.tunnelDown)
			withTunnel(tt.want, !tt.tunnelDown)
			present := map[uuid.UUID]bool{}
			for _, id := range tt.present {
				present[id] = true
			}
			out := agentReported(tt.rows, readResults(tt.results), present, tt.regionHeld)
			if !reflect.DeepEqual(out.changed, tt.want) {
				t.Errorf("changed: got %+v, want %+v", out.changed, tt.want)
			}
			var activated []uuid.UUID
			for _, a := range out.activated {
				activated = append(activated, a.ID)
			}
			if !reflect.DeepEqual(activated, tt.activated) {
				t.Errorf("activated: got %+v, want %+v", activated, tt.activated)
			}
			if !reflect.DeepEqual(out.removed, tt.removed) {
				t.Errorf("removed: got %+v, want %+v", out.removed, tt.removed)
			}
			if out.portsChanged != tt.portsChanged {
				t.Errorf("portsChanged: got %v, want %v", out.portsChanged, tt.portsChanged)
			}
		})
	}
}

func TestEdgeReported(t *testing.T) {
	rows := []forwardState{
		{ID: idA, Status: fleet.StatusPending, EdgeManaged: true, RuleConfirmed: true},
		{ID: idB, Status: fleet.StatusPending, EdgeManaged: true},
		{ID: idC, Status: fleet.StatusPending, EdgeManaged: true, EdgeError: "failed: port taken"},
	}
	withTunnel(rows, true)
	out := edgeReported(rows, readResults([]syncproto.Result{
		{ID: idA.String(), State: syncproto.StateApplied},
		{ID: idB.String(), State: syncproto.StateApplied},
		{ID: idC.String(), State: syncproto.StateFailed, Error: "port taken"},
		{ID: "not-a-uuid", State: syncproto.StateApplied},
	}))
	want := []forwardState{
		{ID: idA, Status: fleet.StatusActive, EdgeManaged: true, RuleConfirmed: true, ListenerConfirmed: true},
		{ID: idB, Status: fleet.StatusPending, EdgeManaged: true, ListenerConfirmed: true},
	}
	withTunnel(want, true)
	if !reflect.DeepEqual(out.changed, want) {
		t.Errorf("changed: got %+v, want %+v", out.changed, want)
	}
	if len(out.activated) != 1 || out.activated[0].ID != idA {
		t.Errorf("activated: got %v, want only %s", out.activated, idA)
	}
}

// withTunnel sets every state's TunnelUp.
func withTunnel(states []forwardState, up bool) {
	for i := range states {
		states[i].TunnelUp = up
	}
}

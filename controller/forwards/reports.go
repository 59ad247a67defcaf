package forwards

import (
	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// This file holds what agents' and edges' reports do to forwards: a pure
// step from the locked rows to their new states, then one write of the rows
// that changed.

// forwardState is what a report may change of one forward.
type forwardState = store.ForwardState

// activate makes a pending forward active once everything it needs is in
// place: the router's rule, the edge's listener (in a region a tpf edge
// serves) and the tunnel between them (in a region with a managed tunnel).
func activate(f *forwardState) {
	if f.Status == fleet.StatusPending && f.RuleConfirmed && (f.ListenerConfirmed || !f.EdgeManaged) && f.TunnelUp {
		f.Status = fleet.StatusActive
	}
}

// reportResults is a report's results by forward id: the forwards applied,
// the message to keep on each other one ("refused: …"), and the service
// ports reported with applied results (accesses'). Results whose ids are not
// UUIDs are ignored.
type reportResults struct {
	applied map[uuid.UUID]bool
	failed  map[uuid.UUID]string
	ports   map[uuid.UUID]uint16
}

func readResults(results []syncproto.Result) reportResults {
	rr := reportResults{applied: map[uuid.UUID]bool{}, failed: map[uuid.UUID]string{}, ports: map[uuid.UUID]uint16{}}
	for _, res := range results {
		id, err := uuid.Parse(res.ID)
		if err != nil {
			continue
		}
		if res.State == syncproto.StateApplied {
			rr.applied[id] = true
			delete(rr.failed, id)
			if res.ServicePort != 0 {
				rr.ports[id] = res.ServicePort
			}
		} else if !rr.applied[id] {
			rr.failed[id] = res.State + ": " + res.Error
		}
	}
	return rr
}

// ids lists every forward the results speak of.
func (rr reportResults) ids() []uuid.UUID {
	ids := make([]uuid.UUID, 0, len(rr.applied)+len(rr.failed))
	for id := range rr.applied {
		ids = append(ids, id)
	}
	for id := range rr.failed {
		ids = append(ids, id)
	}
	return ids
}

// reportOutcome is what a report changed.
type reportOutcome struct {
	changed   []forwardState
	activated []Activation
	removed   []uuid.UUID
	// portsChanged: a live access's service port changed, and with it its
	// region's listener set.
	portsChanged bool
}

// record notes the change from old to f, if any.
func (o *reportOutcome) record(old, f forwardState) {
	if f == old {
		return
	}
	o.changed = append(o.changed, f)
	if old.Status == fleet.StatusPending && f.Status == fleet.StatusActive {
		o.activated = append(o.activated, Activation{ID: f.ID, CreatedAt: f.CreatedAt.UTC()})
	}
	if old.Status != fleet.StatusRemoved && f.Status == fleet.StatusRemoved {
		o.removed = append(o.removed, f.ID)
	}
	if old.DstPort != f.DstPort {
		o.portsChanged = true
	}
}

// agentReported applies an agent's results to its router's locked forwards:
// applied rules are confirmed (and may make their forward active), failures
// are kept on the forward, and ended forwards the router no longer holds
// (not in present) are removed. With movePorts (the caller holds the
// region's lock), a live access takes the service port reported with it.
func agentReported(rows []forwardState, rr reportResults, present map[uuid.UUID]bool, movePorts bool) reportOutcome {
	var out reportOutcome
	for _, old := range rows {
		f := old
		if rr.applied[f.ID] {
			f.RuleConfirmed, f.RouterError = true, ""
			activate(&f)
			if port, ok := rr.ports[f.ID]; ok && movePorts && f.Service != "" &&
				(f.Status == fleet.StatusPending || f.Status == fleet.StatusActive) {
				f.DstPort = port
			}
		} else if msg, ok := rr.failed[f.ID]; ok {
			f.RouterError = msg
		}
		if f.Status == fleet.StatusRemoving && !present[f.ID] {
			f.Status = fleet.StatusRemoved
		}
		out.record(old, f)
	}
	return out
}

// edgeReported applies an edge's results to its region's locked forwards:
// listeners in place are confirmed (and may make their forward active),
// failures are kept on the forward.
func edgeReported(rows []forwardState, rr reportResults) reportOutcome {
	var out reportOutcome
	for _, old := range rows {
		f := old
		if rr.applied[f.ID] {
			f.ListenerConfirmed, f.EdgeError = true, ""
			activate(&f)
		} else if msg, ok := rr.failed[f.ID]; ok {
			f.EdgeError = msg
		}
		out.record(old, f)
	}
	return out
}

package hub

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// agentPeer is a router's agent.
type agentPeer struct {
	h      *Hub
	router uuid.UUID
	secret string // the agent token it connected with
}

// next is the set the builders prepared (see buildSets): a deleted
// router's agent gets its last set, which removes every forward and the
// tunnel, and is dropped; an agent whose token was replaced is dropped.
func (p *agentPeer) next(_ context.Context, c *peerConn, _ time.Time) (any, bool, error) {
	a := c.takePrepared()
	switch {
	case a == nil:
		return nil, false, nil
	case a.Token == forwards.TokenStands:
		return a.Desired, false, nil
	case a.Token == forwards.TokenRetired:
		return a.Desired, true, nil
	}
	return nil, true, nil
}

func (p *agentPeer) key() string  { return routerKey(p.router) }
func (p *agentPeer) kind() string { return "agent" }

func (p *agentPeer) connected(ctx context.Context, now time.Time) error {
	return p.h.svc.AgentConnected(ctx, p.router, now)
}

func (p *agentPeer) disconnected(ctx context.Context, now time.Time) error {
	return p.h.svc.AgentDisconnected(ctx, p.router, now)
}

// seen notes the sign of life; the hub records those of all its agents
// together (see recordSeen).
func (p *agentPeer) seen(context.Context, time.Time) error {
	p.h.agentsSeen.add(p.router)
	return nil
}

func (p *agentPeer) handle(ctx context.Context, msg syncproto.Envelope, now time.Time, log *slog.Logger) error {
	switch msg.Type {
	case syncproto.TypeHello:
		return p.h.svc.AgentHello(ctx, p.router, *msg.Hello, now)
	case syncproto.TypeReport:
		out, err := p.h.svc.ApplyReport(ctx, p.router, *msg.Report, now)
		if msg.Report.Error != "" {
			log.Warn("agent could not apply its set", "revision", msg.Report.Revision, "err", msg.Report.Error)
		}
		if len(out.Activated) > 0 || len(out.Removed) > 0 {
			log.Info("agent applied set", "revision", msg.Report.Revision, "activated", len(out.Activated), "removed", len(out.Removed))
		}
		p.h.observeActivations(out.Activated)
		return err
	}
	return nil
}

// edgePeer is a region's edge.
type edgePeer struct {
	h      *Hub
	region string
	secret string // the edge token it connected with; "" for the embedded edge
}

// next is the region's listener set, after checking the edge's token when
// it may have been replaced (see peerConn.recheck); an edge whose token no
// longer stands is dropped.
func (p *edgePeer) next(ctx context.Context, c *peerConn, now time.Time) (any, bool, error) {
	if c.takeRecheck() && p.secret != "" {
		r, err := p.h.svc.AuthenticateEdge(ctx, p.secret)
		if errors.Is(err, fleet.ErrUnauthenticated) || err == nil && r.ID != p.region {
			return nil, true, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
	set, err := p.h.svc.Listeners(ctx, p.region, p.h.cfg.EdgeLimits, now)
	return set, false, err
}

func (p *edgePeer) key() string  { return edgeKey(p.region) }
func (p *edgePeer) kind() string { return "edge" }

func (p *edgePeer) connected(ctx context.Context, now time.Time) error {
	return p.h.svc.EdgeConnected(ctx, p.region, now)
}

func (p *edgePeer) disconnected(ctx context.Context, now time.Time) error {
	return p.h.svc.EdgeDisconnected(ctx, p.region, now)
}

func (p *edgePeer) seen(ctx context.Context, now time.Time) error {
	return p.h.svc.EdgeSeen(ctx, p.region, now)
}

func (p *edgePeer) handle(ctx context.Context, msg syncproto.Envelope, now time.Time, log *slog.Logger) error {
	switch msg.Type {
	case syncproto.TypeReport:
		activated, err := p.h.svc.ApplyEdgeReport(ctx, p.region, *msg.Report, now)
		if msg.Report.Error != "" {
			log.Warn("edge could not apply its listeners", "revision", msg.Report.Revision, "err", msg.Report.Error)
		}
		if len(activated) > 0 {
			log.Info("edge applied listeners", "revision", msg.Report.Revision, "activated", len(activated))
		}
		p.h.observeActivations(activated)
		return err
	case syncproto.TypeConnections:
		for _, c := range msg.Connections.Records {
			if !c.End.IsZero() {
				p.h.cfg.Observer.ConnectionEnded(p.region, c.Reason, c.BytesUp, c.BytesDown)
			}
		}
		return p.h.svc.RecordConnections(ctx, p.region, msg.Connections.Records)
	}
	return nil
}

// observeErrors tells the Observer about a report's errors. The reader calls
// it for every report received, before reports waiting for the database are
// merged, so that every report counts.
func (h *Hub) observeErrors(peer string, r *syncproto.Report) {
	if r.Error != "" {
		h.cfg.Observer.ReconcileError(peer, "pass")
	}
	for _, res := range r.Results {
		if res.State == syncproto.StateRefused || res.State == syncproto.StateFailed {
			h.cfg.Observer.ReconcileError(peer, res.State)
		}
	}
}

// observeActivations tells the Observer about the forwards a report made
// active.
func (h *Hub) observeActivations(activated []forwards.Activation) {
	now := h.now()
	for _, a := range activated {
		h.cfg.Observer.ForwardActivated(now.Sub(a.CreatedAt))
	}
}

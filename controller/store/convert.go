package store

import (
	"net/netip"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
)

// Rows become fleet values here; times leave the store in UTC.

func toAccount(a db.Account) fleet.Account {
	return fleet.Account{ID: a.ID, Name: a.Name, CreatedAt: a.CreatedAt.UTC()}
}

// toRegion leaves Revision zero: the reads that need it compute it
// (region_revision).
func toRegion(r db.Region) fleet.Region {
	return fleet.Region{
		ID: r.ID, EntryPoint: r.EntryPoint, Ports: fleet.PortRange{Min: uint16(r.PortMin), Max: uint16(r.PortMax)},
		EdgeTunnelAddress: r.EdgeTunnelAddress, CreatedAt: r.CreatedAt.UTC(),
		EdgeManaged: r.EdgeManaged,
		Edge: fleet.EdgeState{
			ConnectedAt: utcPtr(r.EdgeConnectedAt), DisconnectedAt: utcPtr(r.EdgeDisconnectedAt), SeenAt: utcPtr(r.EdgeSeenAt),
			Version: r.EdgeVersion, AppliedRevision: r.EdgeAppliedRevision, LastError: r.EdgeError,
		},
		Tunnel: fleet.RegionTunnel{
			Managed: r.TunnelMode == tunnelManaged, Endpoint: r.TunnelEndpoint, EdgePublicKey: r.EdgePublicKey,
			Prefix: prefixOf(r.TunnelPrefix),
		},
	}
}

// Tunnel modes as the database spells them.
const (
	tunnelManaged = "managed"
	tunnelManual  = "manual"
)

func toRouter(r db.Router) fleet.Router {
	return fleet.Router{
		ID: r.ID, AccountID: r.AccountID, Region: r.RegionID, Name: r.Name,
		TunnelAddress: r.TunnelAddress, CreatedAt: r.CreatedAt.UTC(), Revision: r.Revision,
		Agent: fleet.AgentState{
			ConnectedAt: utcPtr(r.AgentConnectedAt), DisconnectedAt: utcPtr(r.AgentDisconnectedAt),
			SeenAt: utcPtr(r.AgentSeenAt), AgentVersion: r.AgentVersion, RouterOSVersion: r.RouterosVersion,
			Board: r.Board, Identity: r.Identity, AppliedRevision: r.AppliedRevision, LastError: r.AgentError,
			ClockOffset: millisPtr(r.ClockOffsetMs),
		},
		Tunnel: fleet.TunnelState{
			PublicKey: r.TunnelPublicKey, LastHandshake: utcPtr(r.TunnelHandshakeAt), Endpoint: r.TunnelEndpoint,
			RxBytes: r.TunnelRxBytes, TxBytes: r.TunnelTxBytes, Error: r.TunnelError, ReportedAt: utcPtr(r.TunnelReportedAt),
		},
	}
}

func toForward(f db.Forward, entryPoint string, connectionsActive int32) fleet.Forward {
	out := fleet.Forward{
		ConnectionsActive: int(connectionsActive),
		ID:                f.ID, RouterID: f.RouterID, Region: f.RegionID, EntryPoint: entryPoint,
		Port: uint16(f.Port), DstAddress: f.DstAddress, DstPort: uint16(f.DstPort), AllowFrom: f.AllowCidr,
		Masquerade: f.Masquerade, CreatedAt: f.CreatedAt.UTC(), ExpiresAt: f.ExpiresAt.UTC(),
		RevokedAt: utcPtr(f.RevokedAt), EndedAt: utcPtr(f.EndedAt), RouterError: f.RouterError, EdgeError: f.EdgeError,
	}
	out.SetStatus(fleet.Status(f.Status))
	return out
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func millisPtr(ms *int64) *time.Duration {
	if ms == nil {
		return nil
	}
	d := time.Duration(*ms) * time.Millisecond
	return &d
}

func prefixOf(p *netip.Prefix) netip.Prefix {
	if p == nil {
		return netip.Prefix{}
	}
	return *p
}

// withTunnel adds the router's tunnel to a forward read with it.
func withTunnel(f fleet.Forward, managed bool, handshake *time.Time, tunnelErr string) fleet.Forward {
	f.TunnelManaged = managed
	f.RouterTunnel = fleet.TunnelState{LastHandshake: utcPtr(handshake), Error: tunnelErr}
	return f
}

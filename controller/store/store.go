// Package store keeps the controller's state in PostgreSQL: it wraps the
// sqlc-generated queries of package db (generated from ../../sql) and turns
// rows into fleet values. PostgreSQL is the only source of truth; every write
// that changes what a router or edge should hold publishes a notification on
// ChangesChannel in the same transaction.
//
// Times are always passed in by the caller (one clock reading per request),
// never taken from the database's now(), so tests can inject a clock.
package store

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
)

// ChangesChannel is the PostgreSQL NOTIFY channel on which every change to a
// router's desired set is announced; the payload is a JSON Change.
const ChangesChannel = "tpf_changes"

// Change says whose desired set changed: a router's (and so its region's
// listeners), or only a region's when RouterID is zero.
type Change struct {
	RouterID uuid.UUID `json:"router_id"`
	Region   string    `json:"region"`
	// Revision is the router's new desired-set revision.
	Revision int64 `json:"revision,omitempty"`
	// Disconnect says the router's agent token (or, with a zero RouterID,
	// the region's edge token) was replaced: the replica holding the peer
	// checks its token and drops it.
	Disconnect bool `json:"disconnect,omitempty"`
}

// Store is the controller's state. Its zero value is not usable; call New.
type Store struct {
	pool *pgxpool.Pool
	q    *db.Queries
}

// New returns a Store over pool. The caller keeps ownership of the pool.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, q: db.New(pool)}
}

// Pool returns the underlying connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Token prefixes make leaked secrets recognisable (and greppable by secret scanners).
const (
	apiTokenPrefix   = "tpf_"
	agentTokenPrefix = "tpfa_"
)

// newSecret returns a fresh random token with the given prefix and its hash.
func newSecret(prefix string) (secret string, hash []byte) {
	b := make([]byte, 32)
	if _, err := crand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error()) // never fails on supported platforms
	}
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, hashSecret(secret)
}

// hashSecret is how tokens are stored: a high-entropy random secret needs no
// slow hash, and SHA-256 lets us look it up by index.
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(q *db.Queries) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(s.q.WithTx(tx)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fleet.ErrNotFound
	}
	return err
}

func audit(ctx context.Context, q *db.Queries, at time.Time, account uuid.UUID, actor, action string, subject uuid.UUID, detail any) error {
	b, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	if err := q.InsertAuditEvent(ctx, db.InsertAuditEventParams{
		At: at, AccountID: account, Actor: actor, Action: action, SubjectID: subject, Detail: b,
	}); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// publish bumps the revisions of the router's desired set and the region's
// listener set, and announces the change; call it in the transaction that
// made the change, so the notification goes out only on commit.
func publish(ctx context.Context, q *db.Queries, c Change) error {
	rev, err := q.BumpRevision(ctx, c.RouterID)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("bump revision: %w", err)
	}
	c.Revision = rev
	if _, err := q.BumpRegionRevision(ctx, c.Region); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("bump region revision: %w", err)
	}
	return notify(ctx, q, c)
}

// notify announces c on ChangesChannel (on commit, inside a transaction).
func notify(ctx context.Context, q *db.Queries, c Change) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := q.Notify(ctx, db.NotifyParams{Channel: ChangesChannel, Payload: string(b)}); err != nil {
		return fmt.Errorf("publish change: %w", err)
	}
	return nil
}

// CreateAccount creates an account with a first API token named "default"
// and returns the token's secret, which is not stored and cannot be shown
// again.
func (s *Store) CreateAccount(ctx context.Context, name string, now time.Time) (fleet.Account, string, error) {
	var acc db.Account
	var secret string
	err := s.inTx(ctx, func(q *db.Queries) error {
		var err error
		acc, err = q.CreateAccount(ctx, db.CreateAccountParams{Name: name, CreatedAt: now})
		if err != nil {
			return err
		}
		secret, err = createToken(ctx, q, acc.ID, "default", now)
		return err
	})
	if isUniqueViolation(err) {
		return fleet.Account{}, "", fmt.Errorf("account %q: %w", name, fleet.ErrExists)
	}
	if err != nil {
		return fleet.Account{}, "", fmt.Errorf("create account %q: %w", name, err)
	}
	return toAccount(acc), secret, nil
}

// CreateToken adds an API token to the named account and returns its secret.
// Older tokens keep working, so a token can be rotated without downtime.
func (s *Store) CreateToken(ctx context.Context, account, tokenName string, now time.Time) (string, error) {
	acc, err := s.q.GetAccountByName(ctx, account)
	if err != nil {
		return "", fmt.Errorf("account %q: %w", account, notFound(err))
	}
	secret, err := createToken(ctx, s.q, acc.ID, tokenName, now)
	if err != nil {
		return "", fmt.Errorf("create token for %q: %w", account, err)
	}
	return secret, nil
}

func createToken(ctx context.Context, q *db.Queries, account uuid.UUID, name string, now time.Time) (string, error) {
	secret, hash := newSecret(apiTokenPrefix)
	_, err := q.CreateAPIToken(ctx, db.CreateAPITokenParams{AccountID: account, Name: name, TokenHash: hash, CreatedAt: now})
	return secret, err
}

// Accounts lists every account.
func (s *Store) Accounts(ctx context.Context) ([]fleet.Account, error) {
	rows, err := s.q.ListAccounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	out := make([]fleet.Account, len(rows))
	for i, r := range rows {
		out[i] = toAccount(r)
	}
	return out, nil
}

// Account returns the named account.
func (s *Store) Account(ctx context.Context, name string) (fleet.Account, error) {
	acc, err := s.q.GetAccountByName(ctx, name)
	if err != nil {
		return fleet.Account{}, fmt.Errorf("account %q: %w", name, notFound(err))
	}
	return toAccount(acc), nil
}

// Authenticate returns the principal a token secret stands for, or
// fleet.ErrUnauthenticated.
func (s *Store) Authenticate(ctx context.Context, secret string) (fleet.Principal, error) {
	row, err := s.q.AuthenticateToken(ctx, hashSecret(secret))
	if errors.Is(err, pgx.ErrNoRows) {
		return fleet.Principal{}, fleet.ErrUnauthenticated
	}
	if err != nil {
		return fleet.Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	return fleet.Principal{AccountID: row.AccountID, AccountName: row.AccountName, TokenID: row.TokenID, TokenName: row.TokenName}, nil
}

// CreateRegion adds a region.
func (s *Store) CreateRegion(ctx context.Context, r fleet.Region) (fleet.Region, error) {
	row, err := s.q.CreateRegion(ctx, db.CreateRegionParams{
		ID: r.ID, EntryPoint: r.EntryPoint, PortMin: int32(r.Ports.Min), PortMax: int32(r.Ports.Max),
		EdgeTunnelAddress: r.EdgeTunnelAddress, CreatedAt: r.CreatedAt,
	})
	if isUniqueViolation(err) {
		return fleet.Region{}, fmt.Errorf("region %q: %w", r.ID, fleet.ErrExists)
	}
	if err != nil {
		return fleet.Region{}, fmt.Errorf("create region %q: %w", r.ID, err)
	}
	return toRegion(row), nil
}

// Regions lists every region.
func (s *Store) Regions(ctx context.Context) ([]fleet.Region, error) {
	rows, err := s.q.ListRegions(ctx)
	if err != nil {
		return nil, fmt.Errorf("list regions: %w", err)
	}
	out := make([]fleet.Region, len(rows))
	for i, r := range rows {
		out[i] = toRegion(r)
	}
	return out, nil
}

// Region returns one region.
func (s *Store) Region(ctx context.Context, id string) (fleet.Region, error) {
	row, err := s.q.GetRegion(ctx, id)
	if err != nil {
		return fleet.Region{}, fmt.Errorf("region %q: %w", id, notFound(err))
	}
	return toRegion(row), nil
}

// NewRouter is a router to register.
type NewRouter struct {
	Name          string
	Region        string
	TunnelAddress netip.Addr
}

// CreateRouter registers a router for the principal's account and returns it
// with its agent token's secret, shown only this once. An unknown region is
// fleet.ErrNotFound.
func (s *Store) CreateRouter(ctx context.Context, p fleet.Principal, nr NewRouter, now time.Time) (fleet.Router, string, error) {
	secret, hash := newSecret(agentTokenPrefix)
	var row db.Router
	err := s.inTx(ctx, func(q *db.Queries) error {
		if _, err := q.GetRegion(ctx, nr.Region); err != nil {
			return fmt.Errorf("region %q: %w", nr.Region, notFound(err))
		}
		var err error
		row, err = q.CreateRouter(ctx, db.CreateRouterParams{
			AccountID: p.AccountID, RegionID: nr.Region, Name: nr.Name,
			TunnelAddress: nr.TunnelAddress, AgentTokenHash: hash, CreatedAt: now,
		})
		if err != nil {
			return err
		}
		return audit(ctx, q, now, p.AccountID, p.Actor(), fleet.ActionRouterCreate, row.ID, map[string]any{
			"name": nr.Name, "region": nr.Region, "tunnel_address": nr.TunnelAddress.String(),
		})
	})
	if err != nil {
		return fleet.Router{}, "", fmt.Errorf("create router: %w", err)
	}
	return toRouter(row), secret, nil
}

// Router returns one of the account's routers.
func (s *Store) Router(ctx context.Context, account, id uuid.UUID) (fleet.Router, error) {
	row, err := s.q.GetRouter(ctx, db.GetRouterParams{ID: id, AccountID: account})
	if err != nil {
		return fleet.Router{}, fmt.Errorf("router %s: %w", id, notFound(err))
	}
	return toRouter(row), nil
}

// Routers lists the account's routers, oldest first.
func (s *Store) Routers(ctx context.Context, account uuid.UUID) ([]fleet.Router, error) {
	rows, err := s.q.ListRouters(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("list routers: %w", err)
	}
	out := make([]fleet.Router, len(rows))
	for i, r := range rows {
		out[i] = toRouter(r)
	}
	return out, nil
}

// DeleteRouter removes one of the account's routers after ending its live
// forwards; their ports are released by the grace period, since the router
// will no longer confirm anything.
func (s *Store) DeleteRouter(ctx context.Context, p fleet.Principal, id uuid.UUID, now time.Time) error {
	err := s.inTx(ctx, func(q *db.Queries) error {
		row, err := q.DeleteRouter(ctx, db.DeleteRouterParams{ID: id, AccountID: p.AccountID, Now: now})
		if err != nil {
			return notFound(err)
		}
		ended, err := q.EndRouterForwards(ctx, db.EndRouterForwardsParams{Now: now, RevokedBy: &p.TokenID, RouterID: id})
		if err != nil {
			return err
		}
		for _, f := range ended {
			if f.RevokedAt == nil {
				continue
			}
			if err := audit(ctx, q, now, p.AccountID, p.Actor(), fleet.ActionForwardRevoke, f.ID, map[string]any{
				"router_id": id, "reason": "router deleted",
			}); err != nil {
				return err
			}
		}
		if err := audit(ctx, q, now, p.AccountID, p.Actor(), fleet.ActionRouterDelete, id, map[string]any{
			"name": row.Name, "forwards_ended": len(ended),
		}); err != nil {
			return err
		}
		return publish(ctx, q, Change{RouterID: id, Region: row.RegionID})
	})
	if err != nil {
		return fmt.Errorf("delete router %s: %w", id, err)
	}
	return nil
}

// portTries is how many random ports CreateForward tries before it scans the
// whole range for a free one; random picks keep ports unpredictable and make
// concurrent creates rarely collide.
const portTries = 8

// CreateForward creates a forward on router, taking a free port of the
// router's region. The caller has read router with Router, which checks that
// it belongs to the principal's account. It returns fleet.ErrPortsExhausted
// when the region has no port left.
func (s *Store) CreateForward(ctx context.Context, p fleet.Principal, router fleet.Router, nf fleet.NewForward, now time.Time) (fleet.Forward, error) {
	if router.AccountID != p.AccountID {
		return fleet.Forward{}, fmt.Errorf("router %s: %w", router.ID, fleet.ErrNotFound)
	}
	var f fleet.Forward
	err := s.inTx(ctx, func(q *db.Queries) error {
		region, err := q.GetRegion(ctx, router.Region)
		if err != nil {
			return fmt.Errorf("region %q: %w", router.Region, err)
		}
		params := db.InsertForwardParams{
			RouterID: router.ID, RegionID: region.ID, DstAddress: nf.DstAddress, DstPort: int32(nf.DstPort),
			AllowCidr: nf.AllowFrom, Masquerade: nf.Masquerade, CreatedAt: now,
			ExpiresAt: now.Add(nf.Duration), CreatedBy: &p.TokenID,
		}
		row, err := insertForward(ctx, q, region, params)
		if err != nil {
			return err
		}
		if err := audit(ctx, q, now, p.AccountID, p.Actor(), fleet.ActionForwardCreate, row.ID, map[string]any{
			"router_id": router.ID, "port": row.Port, "dst_address": nf.DstAddress.String(),
			"dst_port": nf.DstPort, "allow_from": nf.AllowFrom.String(), "expires_at": params.ExpiresAt,
			"masquerade": nf.Masquerade,
		}); err != nil {
			return err
		}
		if err := publish(ctx, q, Change{RouterID: router.ID, Region: region.ID}); err != nil {
			return err
		}
		f = toForward(row, region.EntryPoint, 0)
		return nil
	})
	if err != nil {
		return fleet.Forward{}, fmt.Errorf("create forward: %w", err)
	}
	return f, nil
}

// insertForward inserts the forward on a free port: a few random picks first,
// then a scan of the range. The partial unique index on held ports is what
// makes concurrent creates safe; a pick that loses a race inserts nothing.
func insertForward(ctx context.Context, q *db.Queries, region db.Region, params db.InsertForwardParams) (db.Forward, error) {
	span := int(region.PortMax-region.PortMin) + 1
	for range portTries {
		params.Port = region.PortMin + int32(rand.IntN(span))
		row, err := q.InsertForward(ctx, params)
		if !errors.Is(err, pgx.ErrNoRows) {
			return row, err
		}
	}
	for {
		port, err := q.FreePort(ctx, db.FreePortParams{
			PortMin: region.PortMin, PortMax: region.PortMax, RegionID: region.ID, RouterID: params.RouterID,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return db.Forward{}, fmt.Errorf("region %q: %w", region.ID, fleet.ErrPortsExhausted)
		}
		if err != nil {
			return db.Forward{}, err
		}
		params.Port = port
		row, err := q.InsertForward(ctx, params)
		if !errors.Is(err, pgx.ErrNoRows) {
			return row, err
		}
		// Another create took that port between the scan and the insert.
	}
}

// Forward returns one forward of one of the account's routers.
func (s *Store) Forward(ctx context.Context, account, router, id uuid.UUID) (fleet.Forward, error) {
	row, err := s.q.GetForward(ctx, db.GetForwardParams{ID: id, RouterID: router, AccountID: account})
	if err != nil {
		return fleet.Forward{}, fmt.Errorf("forward %s: %w", id, notFound(err))
	}
	return toForward(row.Forward, row.EntryPoint, row.ConnectionsActive), nil
}

// LiveForwards lists the router's forwards that are neither expired nor
// revoked at now, oldest first.
func (s *Store) LiveForwards(ctx context.Context, account, router uuid.UUID, now time.Time) ([]fleet.Forward, error) {
	if _, err := s.Router(ctx, account, router); err != nil {
		return nil, err
	}
	rows, err := s.q.ListLiveForwards(ctx, db.ListLiveForwardsParams{RouterID: router, Now: now})
	if err != nil {
		return nil, fmt.Errorf("list forwards: %w", err)
	}
	out := make([]fleet.Forward, len(rows))
	for i, r := range rows {
		out[i] = toForward(r.Forward, r.EntryPoint, r.ConnectionsActive)
	}
	return out, nil
}

// ForwardHistory lists up to limit of the router's forwards, newest first:
// all of them, or only those that ended (expired or revoked) by now.
func (s *Store) ForwardHistory(ctx context.Context, account, router uuid.UUID, onlyEnded bool, limit int, now time.Time) ([]fleet.Forward, error) {
	if _, err := s.Router(ctx, account, router); err != nil {
		return nil, err
	}
	rows, err := s.q.ListForwards(ctx, db.ListForwardsParams{RouterID: router, OnlyEnded: onlyEnded, Now: now, MaxRows: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list forwards: %w", err)
	}
	out := make([]fleet.Forward, len(rows))
	for i, r := range rows {
		out[i] = toForward(r.Forward, r.EntryPoint, r.ConnectionsActive)
	}
	return out, nil
}

// RevokeForward ends a forward early. Revoking a forward that already ended
// (revoked or expired) changes nothing and is not an error.
func (s *Store) RevokeForward(ctx context.Context, p fleet.Principal, router, id uuid.UUID, now time.Time) error {
	if _, err := s.Forward(ctx, p.AccountID, router, id); err != nil {
		return err
	}
	err := s.inTx(ctx, func(q *db.Queries) error {
		row, err := q.RevokeForward(ctx, db.RevokeForwardParams{Now: now, RevokedBy: &p.TokenID, ID: id, RouterID: router})
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // already ended
		}
		if err != nil {
			return err
		}
		if err := audit(ctx, q, now, p.AccountID, p.Actor(), fleet.ActionForwardRevoke, id, map[string]any{"router_id": router}); err != nil {
			return err
		}
		return publish(ctx, q, Change{RouterID: row.RouterID, Region: row.RegionID})
	})
	if err != nil {
		return fmt.Errorf("revoke forward %s: %w", id, err)
	}
	return nil
}

// ExpireDue ends up to limit forwards whose expiry is at or before now, and
// returns how many it ended. Concurrent callers (other replicas) skip rows
// being processed, so each forward ends once.
func (s *Store) ExpireDue(ctx context.Context, now time.Time, limit int) (int, error) {
	var n int
	err := s.inTx(ctx, func(q *db.Queries) error {
		rows, err := q.ExpireDue(ctx, db.ExpireDueParams{Now: now, MaxRows: int32(limit)})
		if err != nil {
			return err
		}
		n = len(rows)
		published := map[Change]bool{}
		for _, r := range rows {
			if err := audit(ctx, q, now, r.AccountID, fleet.ActorExpiry, fleet.ActionForwardExpire, r.ID, map[string]any{
				"router_id": r.RouterID, "expires_at": r.ExpiresAt,
			}); err != nil {
				return err
			}
			c := Change{RouterID: r.RouterID, Region: r.RegionID}
			if published[c] {
				continue
			}
			published[c] = true
			if err := publish(ctx, q, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("expire forwards: %w", err)
	}
	return n, nil
}

// NextExpiry returns when the next live forward expires; ok is false when
// none is live.
func (s *Store) NextExpiry(ctx context.Context) (next time.Time, ok bool, err error) {
	next, err = s.q.NextExpiry(ctx)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next expiry: %w", err)
	}
	return next, true, nil
}

// ReleasePorts frees the ports of forwards that ended at or before cutoff
// without their router confirming the removal, and returns how many it freed.
func (s *Store) ReleasePorts(ctx context.Context, cutoff, now time.Time) (int64, error) {
	n, err := s.q.ReleasePorts(ctx, db.ReleasePortsParams{Now: now, Cutoff: cutoff})
	if err != nil {
		return 0, fmt.Errorf("release ports: %w", err)
	}
	return n, nil
}

// AuditEvents lists the account's audit events newest first, starting below
// the event id before (0 means from the newest).
func (s *Store) AuditEvents(ctx context.Context, account uuid.UUID, before int64, limit int) ([]fleet.AuditEvent, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.q.ListAuditEvents(ctx, db.ListAuditEventsParams{AccountID: account, BeforeID: before, MaxRows: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	out := make([]fleet.AuditEvent, len(rows))
	for i, r := range rows {
		out[i] = fleet.AuditEvent{ID: r.ID, At: r.At.UTC(), Actor: r.Actor, Action: r.Action, SubjectID: r.SubjectID, Detail: r.Detail}
	}
	return out, nil
}

func toAccount(a db.Account) fleet.Account {
	return fleet.Account{ID: a.ID, Name: a.Name, CreatedAt: a.CreatedAt.UTC()}
}

func toRegion(r db.Region) fleet.Region {
	return fleet.Region{
		ID: r.ID, EntryPoint: r.EntryPoint, Ports: fleet.PortRange{Min: uint16(r.PortMin), Max: uint16(r.PortMax)},
		EdgeTunnelAddress: r.EdgeTunnelAddress, CreatedAt: r.CreatedAt.UTC(), Revision: r.Revision,
		EdgeManaged: r.EdgeManaged,
		Edge: fleet.EdgeState{
			ConnectedAt: utcPtr(r.EdgeConnectedAt), DisconnectedAt: utcPtr(r.EdgeDisconnectedAt), SeenAt: utcPtr(r.EdgeSeenAt),
			Version: r.EdgeVersion, AppliedRevision: r.EdgeAppliedRevision, LastError: r.EdgeError,
		},
	}
}

func toRouter(r db.Router) fleet.Router {
	return fleet.Router{
		ID: r.ID, AccountID: r.AccountID, Region: r.RegionID, Name: r.Name,
		TunnelAddress: r.TunnelAddress, CreatedAt: r.CreatedAt.UTC(), Revision: r.Revision,
		Agent: fleet.AgentState{
			ConnectedAt: utcPtr(r.AgentConnectedAt), DisconnectedAt: utcPtr(r.AgentDisconnectedAt),
			SeenAt: utcPtr(r.AgentSeenAt), AgentVersion: r.AgentVersion, RouterOSVersion: r.RouterosVersion,
			Board: r.Board, Identity: r.Identity, AppliedRevision: r.AppliedRevision, LastError: r.AgentError,
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

// Package store keeps the controller's state in PostgreSQL: an adapter over
// the sqlc-generated queries of package db (generated from ../../sql), split
// by noun, that turns rows into fleet values (transient accesses are rows
// of the forwards table of another kind: see accesses.go). It holds no
// protocol types and no business flow: package forwards composes its
// transaction steps (Tx, through InTx) into the changes of routers' and
// regions' sets, and every such change publishes a notification on
// ChangesChannel in the same transaction (Tx.Publish). PostgreSQL is the
// only source of truth (Authenticate remembers tokens for a few seconds at
// most, and forgets revoked ones as their announcements arrive); only this
// package imports package db.
//
// Times are always passed in by the caller (one clock reading per request),
// never taken from the database's now(), so tests can inject a clock.
//
// # Lock order
//
// Concurrent writers (API requests, agent and edge reports, the expiry clock,
// other replicas) never deadlock because every transaction takes its row
// locks in one order:
//
//	routers (by id) → regions (by id) → forwards (by id) → connections
//
// A write to a router's desired set first locks the router (Tx.LockRouter,
// or the expiry clock's routers), then the forwards it changes, and bumps
// the router's revision. It does not lock the region: a region's listener
// set revision is its own counter plus its routers' revisions
// (region_revision, migration 0008), so writes to different routers of one
// region never queue on the region's row. A region's row is locked (after
// its routers, when any) only by a change of the region alone — its edge's
// key, an access's service port, a tunnel address to allocate — whose
// transaction bumps the region's own counter. Revision bumps touch only rows
// already locked. Several rows of
// one table are locked in one statement ordered by id (select … order by id
// for no key update). Reports lock only forwards, in id order, and write
// their changes in one statement — but for an agent's report that changes
// an access's service port (and so its region's listener set), which locks
// the region first; the status columns of an agent or edge
// (last seen, versions, applied revision) are written in single-statement
// transactions of their own, holding nothing else (AgentsSeen, which
// records many agents' heartbeats at once, locks their routers in id order
// first). Revoking an API token locks only the token's row, then its web
// sessions, outside this order. Locks are "for no key
// update", which does not conflict with the "for key share" that inserting a
// connection takes on its forward. A transaction that still fails with a
// deadlock (40P01), a serialization failure (40001) or a lock timeout
// (55P03) is retried with jittered backoff (see InTx).
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
	"sync/atomic"
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
	// Disconnect says a peer's credential changed: the router's agent token
	// was replaced or the router deleted (or, with a zero RouterID, the
	// region's edge token was replaced). The replica holding the peer
	// checks its token and drops it.
	Disconnect bool `json:"disconnect,omitempty"`
	// Token is an API token that was revoked: every replica forgets it at
	// once (see Authenticate). A Change with only a Token changes no set.
	Token uuid.UUID `json:"token,omitzero"`
}

// Config configures a Store. The zero value means the defaults.
type Config struct {
	// AuthCacheTTL is how long Authenticate remembers a token it found,
	// in the worst case (see Authenticate); zero means
	// DefaultAuthCacheTTL, a negative value remembers nothing.
	AuthCacheTTL time.Duration
	// AuthCacheSize bounds how many tokens are remembered; zero means
	// DefaultAuthCacheSize.
	AuthCacheSize int
	// Now reads the clock for AuthCacheTTL; nil means time.Now.
	Now func() time.Time
}

// Defaults of Config.
const (
	DefaultAuthCacheTTL  = 5 * time.Second
	DefaultAuthCacheSize = 10_000
)

// Store is the controller's state. Its zero value is not usable; call New.
type Store struct {
	pool    *pgxpool.Pool
	q       *db.Queries
	retries atomic.Int64
	auth    *authCache
}

// New returns a Store over pool (see OpenPool) with the default Config.
// The caller keeps ownership of the pool.
func New(pool *pgxpool.Pool) *Store {
	return NewWithConfig(pool, Config{})
}

// NewWithConfig returns a Store over pool with cfg.
func NewWithConfig(pool *pgxpool.Pool, cfg Config) *Store {
	if cfg.AuthCacheTTL == 0 {
		cfg.AuthCacheTTL = DefaultAuthCacheTTL
	}
	if cfg.AuthCacheSize <= 0 {
		cfg.AuthCacheSize = DefaultAuthCacheSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{pool: pool, q: db.New(pool), auth: newAuthCache(cfg.AuthCacheTTL, cfg.AuthCacheSize, cfg.Now)}
}

// Pool returns the underlying connection pool, for migrations and tests.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Retries is how many transactions this Store retried after a deadlock, a
// serialization failure or a lock timeout.
func (s *Store) Retries() int64 { return s.retries.Load() }

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

// The retry policy of inTx and retry.
const (
	maxAttempts  = 8
	retryBase    = 2 * time.Millisecond
	retryCeiling = 200 * time.Millisecond
)

// inTx runs fn in a transaction, committing when it returns nil, and runs
// it again in a new transaction when PostgreSQL aborts it for a deadlock, a
// serialization failure or a lock timeout. fn may run several times: it must
// set its results, never append to what an earlier run left.
func (s *Store) inTx(ctx context.Context, fn func(q *db.Queries) error) error {
	return s.retry(ctx, func() error {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		if err := fn(s.q.WithTx(tx)); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
}

// retry runs fn until it succeeds, fails for a reason a retry cannot cure,
// or maxAttempts runs failed; it waits a random time below an exponentially
// growing ceiling between runs, so that contenders spread out.
func (s *Store) retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return err
		}
		s.retries.Add(1)
		ceiling := min(retryBase<<attempt, retryCeiling)
		t := time.NewTimer(rand.N(ceiling))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// retryable reports whether err aborted a transaction that may succeed when
// run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"55P03": // lock_not_available (lock_timeout)
		return true
	}
	return false
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

func isExclusionViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23P01"
}

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fleet.ErrNotFound
	}
	return err
}

// audit records one event.
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

// auditEvent is one of several events of one action that auditAll records.
type auditEvent struct {
	account, subject uuid.UUID
	detail           any
}

// auditAll records events of one action by one actor in one round trip.
func auditAll(ctx context.Context, q *db.Queries, at time.Time, actor, action string, events []auditEvent) error {
	if len(events) == 0 {
		return nil
	}
	p := db.InsertAuditEventsParams{
		At: at, Actor: actor, Action: action,
		AccountIds: make([]uuid.UUID, len(events)), SubjectIds: make([]uuid.UUID, len(events)), Details: make([]string, len(events)),
	}
	for i, e := range events {
		b, err := json.Marshal(e.detail)
		if err != nil {
			return fmt.Errorf("audit %s: %w", action, err)
		}
		p.AccountIds[i], p.SubjectIds[i], p.Details[i] = e.account, e.subject, string(b)
	}
	if err := q.InsertAuditEvents(ctx, p); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// publish bumps the revisions of the changed routers' desired sets (and so
// their regions' listener sets), or a region's own revision for a change of
// the region alone, and announces each change on commit. The caller holds
// the locks of those routers, and of a region changed alone (see the lock
// order).
func publish(ctx context.Context, q *db.Queries, changes ...Change) error {
	p := db.PublishParams{Channel: ChangesChannel, RouterIds: []uuid.UUID{}, RegionIds: []string{}, Payloads: make([]string, len(changes))}
	for i, c := range changes {
		// A router's bump moves its region's revision too (region_revision),
		// so the region's own counter moves only for a change of the region
		// alone.
		switch {
		case c.RouterID != uuid.Nil:
			p.RouterIds = append(p.RouterIds, c.RouterID)
		case c.Region != "":
			p.RegionIds = append(p.RegionIds, c.Region)
		}
		b, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("publish change: %w", err)
		}
		p.Payloads[i] = string(b)
	}
	if err := q.Publish(ctx, p); err != nil {
		return fmt.Errorf("publish change: %w", err)
	}
	return nil
}

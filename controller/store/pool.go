package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolConfig sizes the connection pool and bounds how long one statement
// may wait or run. The zero value means the defaults.
type PoolConfig struct {
	// MaxConns is the pool's size; zero means DefaultMaxConns. The change
	// listener (Listen) holds one more connection of its own.
	MaxConns int32
	// LockTimeout bounds a statement's wait for a row lock (the statement
	// then fails and its transaction is retried); zero means
	// DefaultLockTimeout.
	LockTimeout time.Duration
	// StatementTimeout bounds one statement; zero means
	// DefaultStatementTimeout.
	StatementTimeout time.Duration
}

// Defaults of PoolConfig.
const (
	DefaultMaxConns         = 16
	DefaultLockTimeout      = 5 * time.Second
	DefaultStatementTimeout = 30 * time.Second
	// idleInTxTimeout ends a session that keeps a transaction open without a
	// statement (a stuck client), so that it cannot hold locks forever.
	idleInTxTimeout = time.Minute
)

func (c PoolConfig) withDefaults() PoolConfig {
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.LockTimeout <= 0 {
		c.LockTimeout = DefaultLockTimeout
	}
	if c.StatementTimeout <= 0 {
		c.StatementTimeout = DefaultStatementTimeout
	}
	return c
}

// ParsePoolConfig reads a pool configuration from url with cfg's settings
// applied; OpenPool uses it, and tests that open pools of their own.
func ParsePoolConfig(url string, cfg PoolConfig) (*pgxpool.Config, error) {
	cfg = cfg.withDefaults()
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = cfg.MaxConns
	rp := pc.ConnConfig.RuntimeParams
	rp["lock_timeout"] = millis(cfg.LockTimeout)
	rp["statement_timeout"] = millis(cfg.StatementTimeout)
	rp["idle_in_transaction_session_timeout"] = millis(idleInTxTimeout)
	if rp["application_name"] == "" {
		rp["application_name"] = "tpf-controller"
	}
	pc.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		registerUUID(c.TypeMap())
		return nil
	}
	return pc, nil
}

func millis(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// OpenPool connects to PostgreSQL at url with cfg, and checks that it
// answers within ten seconds.
func OpenPool(ctx context.Context, url string, cfg PoolConfig) (*pgxpool.Pool, error) {
	pc, err := ParsePoolConfig(url, cfg)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return pool, nil
}

// Listen follows the changes every replica announces, calling each for
// every one, until ctx ends or the connection fails. It holds a connection
// of its own, outside the pool, so it never takes one from the requests.
// listening is called once the subscription stands: changes announced
// before then are not seen, so the caller resends what it holds. While it
// stands, Authenticate remembers tokens, and forgets revoked ones as their
// changes arrive (before each sees them).
func (s *Store) Listen(ctx context.Context, listening func(), each func(Change)) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "listen "+pgx.Identifier{ChangesChannel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.auth.listening(true)
	defer s.auth.listening(false)
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		var c Change
		if err := json.Unmarshal([]byte(n.Payload), &c); err != nil {
			continue // not ours: every replica of this version writes Change
		}
		if c.Token != uuid.Nil {
			s.auth.forget(c.Token)
		}
		each(c)
	}
}

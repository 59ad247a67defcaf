package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
)

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
// fleet.ErrUnauthenticated. While a change listener (Listen) stands on this
// Store, a token found is remembered for Config.AuthCacheTTL without asking
// the database again; a revoke, by this replica or another, ends that at
// once (RevokeToken announces it), and within the TTL should the
// announcement be lost.
func (s *Store) Authenticate(ctx context.Context, secret string) (fleet.Principal, error) {
	key := sha256.Sum256([]byte(secret))
	p, ok, epoch := s.auth.get(key)
	if ok {
		return p, nil
	}
	row, err := s.q.AuthenticateToken(ctx, key[:])
	if errors.Is(err, pgx.ErrNoRows) {
		return fleet.Principal{}, fleet.ErrUnauthenticated
	}
	if err != nil {
		return fleet.Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	p = fleet.Principal{AccountID: row.AccountID, AccountName: row.AccountName, TokenID: row.TokenID, TokenName: row.TokenName}
	s.auth.put(key, p, epoch)
	return p, nil
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

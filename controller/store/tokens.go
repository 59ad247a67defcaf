package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
)

// IssueToken adds an API token named name to the account and returns it
// with its secret, which is stored only as a hash and cannot be shown again.
// The issue is audit-logged as actor's (a principal's Actor, or
// fleet.ActorAdmin). Other tokens keep working, so tokens can be rotated
// without downtime. The caller validates name.
func (s *Store) IssueToken(ctx context.Context, account uuid.UUID, actor, name string, now time.Time) (fleet.APIToken, string, error) {
	secret, hash := newSecret(apiTokenPrefix)
	var tok fleet.APIToken
	err := s.inTx(ctx, func(q *db.Queries) error {
		row, err := q.InsertAPIToken(ctx, db.InsertAPITokenParams{AccountID: account, Name: name, TokenHash: hash, CreatedAt: now})
		if err != nil {
			return err
		}
		tok = toAPIToken(db.ListAPITokensRow(row))
		return audit(ctx, q, now, account, actor, fleet.ActionTokenCreate, tok.ID, map[string]any{"name": name})
	})
	if err != nil {
		return fleet.APIToken{}, "", fmt.Errorf("issue API token %q: %w", name, err)
	}
	return tok, secret, nil
}

// Tokens lists the account's API tokens, revoked ones too, oldest first.
func (s *Store) Tokens(ctx context.Context, account uuid.UUID) ([]fleet.APIToken, error) {
	rows, err := s.q.ListAPITokens(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("list API tokens: %w", err)
	}
	out := make([]fleet.APIToken, len(rows))
	for i, r := range rows {
		out[i] = toAPIToken(r)
	}
	return out, nil
}

// RevokeToken revokes one of the account's API tokens and ends its web
// sessions; from then on it authenticates nothing (a token may revoke
// itself). Revoking a revoked token changes nothing and is not an error;
// another account's or an unknown token is fleet.ErrNotFound. The revoke is
// audit-logged as actor's and announced to every replica, which stop
// accepting the token at once (see Authenticate). It returns the token as it is afterwards, and
// whether this call revoked it (false: it already was). It locks only the
// token's row (for no key update, so forwards and sessions referencing the
// token are not held up) and then its sessions, outside the lock order of
// routers, regions and forwards.
func (s *Store) RevokeToken(ctx context.Context, account uuid.UUID, actor string, id uuid.UUID, now time.Time) (tok fleet.APIToken, revoked bool, err error) {
	err = s.inTx(ctx, func(q *db.Queries) error {
		revoked = false
		row, err := q.LockAPIToken(ctx, db.LockAPITokenParams{ID: id, AccountID: account})
		if err != nil {
			return notFound(err)
		}
		tok = toAPIToken(db.ListAPITokensRow(row))
		if tok.RevokedAt != nil {
			return nil // already revoked
		}
		done, err := q.RevokeAPIToken(ctx, db.RevokeAPITokenParams{Now: now, ID: id, AccountID: account})
		if err != nil {
			return err
		}
		tok, revoked = toAPIToken(db.ListAPITokensRow(done)), true
		ended, err := q.DeleteTokenWebSessions(ctx, id)
		if err != nil {
			return fmt.Errorf("end web sessions: %w", err)
		}
		if err := audit(ctx, q, now, account, actor, fleet.ActionTokenRevoke, id, map[string]any{
			"name": tok.Name, "web_sessions_ended": ended,
		}); err != nil {
			return err
		}
		return publish(ctx, q, Change{Token: id})
	})
	if err != nil {
		return fleet.APIToken{}, false, fmt.Errorf("revoke API token %s: %w", id, err)
	}
	s.auth.forget(id) // here at once; other replicas on the announcement
	return tok, revoked, nil
}

func toAPIToken(r db.ListAPITokensRow) fleet.APIToken {
	return fleet.APIToken{
		ID: r.ID, AccountID: r.AccountID, Name: r.Name, CreatedAt: r.CreatedAt.UTC(), RevokedAt: utcPtr(r.RevokedAt),
	}
}

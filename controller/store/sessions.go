package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
)

// WebSession is a signed-in browser of the web views (package web). Its id
// is the cookie's value, a random secret stored only as a SHA-256 hash; the
// session acts for an API token and ends with it.
type WebSession struct {
	TokenID uuid.UUID
	// CSRF is the token every form of the session carries.
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CreateWebSession starts a session acting for the API token tokenID from
// now until expires, and returns its id (shown only now) with the session.
// It also deletes the sessions that expired by now, so abandoned ones do not
// pile up.
func (s *Store) CreateWebSession(ctx context.Context, tokenID uuid.UUID, now, expires time.Time) (string, WebSession, error) {
	id, hash := newSecret("")
	csrf, _ := newSecret("")
	sess := WebSession{TokenID: tokenID, CSRF: csrf, CreatedAt: now, ExpiresAt: expires}
	err := s.inTx(ctx, func(q *db.Queries) error {
		if _, err := q.DeleteExpiredWebSessions(ctx, now); err != nil {
			return fmt.Errorf("delete expired sessions: %w", err)
		}
		return q.InsertWebSession(ctx, db.InsertWebSessionParams{
			IDHash: hash, TokenID: tokenID, Csrf: csrf, CreatedAt: now, ExpiresAt: expires,
		})
	})
	if err != nil {
		return "", WebSession{}, fmt.Errorf("create web session: %w", err)
	}
	return id, sess, nil
}

// WebSession returns the session with id and who its token acts for, read
// on every request so that revoking the token ends the session at once. An
// unknown or expired session, or one whose token has been revoked, is
// fleet.ErrUnauthenticated; expired and revoked ones are deleted on the way.
func (s *Store) WebSession(ctx context.Context, id string, now time.Time) (WebSession, fleet.Principal, error) {
	if id == "" {
		return WebSession{}, fleet.Principal{}, fleet.ErrUnauthenticated
	}
	hash := hashSecret(id)
	row, err := s.q.GetWebSession(ctx, hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return WebSession{}, fleet.Principal{}, fleet.ErrUnauthenticated
	}
	if err != nil {
		return WebSession{}, fleet.Principal{}, fmt.Errorf("web session: %w", err)
	}
	if !now.Before(row.ExpiresAt) || row.TokenRevokedAt != nil {
		if err := s.q.DeleteWebSession(ctx, hash); err != nil {
			return WebSession{}, fleet.Principal{}, fmt.Errorf("delete ended web session: %w", err)
		}
		return WebSession{}, fleet.Principal{}, fleet.ErrUnauthenticated
	}
	sess := WebSession{TokenID: row.TokenID, CSRF: row.Csrf, CreatedAt: row.CreatedAt.UTC(), ExpiresAt: row.ExpiresAt.UTC()}
	p := fleet.Principal{AccountID: row.AccountID, AccountName: row.AccountName, TokenID: row.TokenID, TokenName: row.TokenName}
	return sess, p, nil
}

// DeleteWebSession ends the session with id (signing out); an unknown one
// is not an error.
func (s *Store) DeleteWebSession(ctx context.Context, id string) error {
	if err := s.q.DeleteWebSession(ctx, hashSecret(id)); err != nil {
		return fmt.Errorf("delete web session: %w", err)
	}
	return nil
}

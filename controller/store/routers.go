package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
)

// Router returns one of the account's routers.
func (s *Store) Router(ctx context.Context, account, id uuid.UUID) (fleet.Router, error) {
	row, err := s.q.GetRouter(ctx, db.GetRouterParams{ID: id, AccountID: account})
	if err != nil {
		return fleet.Router{}, fmt.Errorf("router %s: %w", id, notFound(err))
	}
	r := toRouter(row.Router)
	r.TunnelManaged = row.TunnelManaged
	return r, nil
}

// Routers lists the account's routers, oldest first.
func (s *Store) Routers(ctx context.Context, account uuid.UUID) ([]fleet.Router, error) {
	rows, err := s.q.ListRouters(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("list routers: %w", err)
	}
	out := make([]fleet.Router, len(rows))
	for i, r := range rows {
		out[i] = toRouter(r.Router)
		out[i].TunnelManaged = r.TunnelManaged
	}
	return out, nil
}

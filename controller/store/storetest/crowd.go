package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Crowd is many routers added at once, for benchmarks of a large fleet.
type Crowd struct {
	Routers []uuid.UUID
	// Tokens are the routers' agent tokens, by position.
	Tokens []string
}

// AddCrowd adds n routers to account in region (tunnel address 10.99.0.2
// for all, which a manual region allows) in two statements: one for the
// routers and, when forwardFor is positive, one giving each a live forward
// lasting forwardFor from at on the region's ports from firstPort up (n
// ports must be free there). Nothing is audited or announced: the routers
// exist as if they had been created long ago, statistics included.
func AddCrowd(t testing.TB, pool *pgxpool.Pool, account uuid.UUID, region string, n int, firstPort uint16, forwardFor time.Duration, at time.Time) Crowd {
	t.Helper()
	ctx := context.Background()
	c := Crowd{Routers: make([]uuid.UUID, n), Tokens: make([]string, n)}
	hashes := make([][]byte, n)
	for i := range n {
		b := make([]byte, 32)
		rand.Read(b)
		c.Routers[i] = uuid.New()
		c.Tokens[i] = "tpfa_" + base64.RawURLEncoding.EncodeToString(b)
		h := sha256.Sum256([]byte(c.Tokens[i]))
		hashes[i] = h[:]
	}
	_, err := pool.Exec(ctx, `
		insert into routers (id, account_id, region_id, name, tunnel_address, agent_token_hash, created_at)
		select u.id, $1, $2, 'crowd-' || u.n, $3, u.hash, $4
		from unnest($5::uuid[], $6::bytea[]) with ordinality as u(id, hash, n)`,
		account, region, netip.MustParseAddr("10.99.0.2"), at, c.Routers, hashes)
	if err != nil {
		t.Fatalf("storetest: add %d routers: %v", n, err)
	}
	if forwardFor > 0 {
		_, err = pool.Exec(ctx, `
		insert into forwards (router_id, region_id, port, dst_address, dst_port, allow_cidr, masquerade, status, created_at, expires_at)
		select u.id, $1, $2::integer + u.n - 1, '192.168.88.43', 22, '81.2.69.0/24', false, 'active', $3, $4
		from unnest($5::uuid[]) with ordinality as u(id, n)`,
			region, int(firstPort), at, at.Add(forwardFor), c.Routers)
		if err != nil {
			t.Fatalf("storetest: add %d forwards: %v", n, err)
		}
	}
	// Statistics as if the rows had always been there: plans made for a
	// table of a few rows would scan the whole table.
	if _, err := pool.Exec(ctx, `analyze routers, forwards`); err != nil {
		t.Fatalf("storetest: analyze: %v", err)
	}
	return c
}

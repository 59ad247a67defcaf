package store

import (
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
)

// authCache remembers the principals of recently authenticated API tokens
// (by the SHA-256 of the secret), so that a request costs no database round
// trip for its token. It caches only while a change listener (Store.Listen)
// stands, because only then does a revoke made by any replica (announced
// on ChangesChannel) reach it at once; a notification lost while the
// listener's link silently fails costs at most ttl. Failed lookups are not
// cached.
type authCache struct {
	ttl  time.Duration
	size int
	now  func() time.Time

	mu sync.Mutex
	// listeners is how many change listeners stand on the store.
	listeners int
	// epoch counts invalidations: a lookup that began before one must not
	// store what it read, which may predate the revoke.
	epoch   uint64
	entries map[[32]byte]authEntry
}

type authEntry struct {
	p       fleet.Principal
	expires time.Time
}

func newAuthCache(ttl time.Duration, size int, now func() time.Time) *authCache {
	return &authCache{ttl: ttl, size: size, now: now, entries: map[[32]byte]authEntry{}}
}

// get returns the cached principal of key, if any, and the epoch to hand
// to put after a lookup in the database.
func (c *authCache) get(key [32]byte) (p fleet.Principal, ok bool, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.listeners == 0 || c.ttl <= 0 {
		return fleet.Principal{}, false, c.epoch
	}
	e, ok := c.entries[key]
	if ok && c.now().Before(e.expires) {
		return e.p, true, c.epoch
	}
	if ok {
		delete(c.entries, key)
	}
	return fleet.Principal{}, false, c.epoch
}

// put caches p for key unless the cache was invalidated since epoch (see
// get) or no listener stands. A full cache drops an arbitrary entry.
func (c *authCache) put(key [32]byte, p fleet.Principal, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.listeners == 0 || c.ttl <= 0 || epoch != c.epoch {
		return
	}
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.size {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[key] = authEntry{p: p, expires: c.now().Add(c.ttl)}
}

// forget drops the entries of an API token (it was revoked).
func (c *authCache) forget(token uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	for k, e := range c.entries {
		if e.p.TokenID == token {
			delete(c.entries, k)
		}
	}
}

// listening counts a change listener in (on) or out; either way the cache
// starts empty, since notifications sent while none stood are lost.
func (c *authCache) listening(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on {
		c.listeners++
	} else {
		c.listeners--
	}
	c.epoch++
	clear(c.entries)
}

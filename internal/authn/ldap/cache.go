package ldap

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// cache remembers identities for a bounded time, keyed by an HMAC under a
// key made at start and never stored (as the htpasswd verification cache):
// neither a password nor anything that could be checked offline against a
// guess is kept. Only successes are remembered: a wrong password always
// asks the directory, and counts towards the brute-force limits.
type cache struct {
	secret  [32]byte
	ttl     time.Duration
	now     func() time.Time
	entries *lru.Cache[[sha256.Size]byte, cached]
	flight  singleflight.Group
}

type cached struct {
	id    identity.Identity
	until time.Time
}

func newCache(ttl time.Duration, size int, now func() time.Time) *cache {
	c := &cache{ttl: ttl, now: now}
	_, _ = rand.Read(c.secret[:])
	c.entries, _ = lru.New[[sha256.Size]byte, cached](max(size, 1))
	return c
}

func (c *cache) key(parts ...string) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.secret[:])
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		m.Write(n[:])
		m.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	return sum
}

func (c *cache) get(k [sha256.Size]byte) (identity.Identity, bool) {
	e, ok := c.entries.Get(k)
	if !ok {
		return identity.Identity{}, false
	}
	if !c.now().Before(e.until) {
		c.entries.Remove(k)
		return identity.Identity{}, false
	}
	id := e.id
	id.Groups = slices.Clone(id.Groups)
	return id, true
}

func (c *cache) put(k [sha256.Size]byte, id identity.Identity) {
	id.Groups = slices.Clone(id.Groups)
	c.entries.Add(k, cached{id: id, until: c.now().Add(c.ttl)})
}

// Len is the number of entries.
func (c *cache) Len() int { return c.entries.Len() }

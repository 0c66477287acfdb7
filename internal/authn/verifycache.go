package authn

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// Defaults of the password verification cache.
const (
	DefaultPasswordCacheTTL  = 5 * time.Minute
	DefaultPasswordCacheSize = 10000
)

// verifyCache remembers, for a bounded time, that a user name and password
// passed bcrypt, so a client pulling layer after layer with the same Basic
// credentials costs one bcrypt check per TTL instead of one per request.
//
// It holds an HMAC of the pair under a key made at start and never stored,
// so neither the password nor anything that could be checked offline
// against a guess is kept. Only successes are remembered: a wrong password
// always costs a full bcrypt comparison, and so does an unknown user (against
// the dummy hash), so the cache tells nobody whether a user exists.
// Each htpasswd table has its own cache: a reloaded file starts empty.
type verifyCache struct {
	key     [32]byte
	ttl     time.Duration
	now     func() time.Time
	entries *lru.Cache[[sha256.Size]byte, time.Time] // HMAC -> valid until
	flight  singleflight.Group                       // one bcrypt per HMAC at a time
}

func newVerifyCache(ttl time.Duration, size int, now func() time.Time) *verifyCache {
	c := &verifyCache{ttl: ttl, now: now}
	_, _ = rand.Read(c.key[:])
	c.entries, _ = lru.New[[sha256.Size]byte, time.Time](max(size, 1))
	return c
}

func (c *verifyCache) mac(user, password string, hash []byte) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.key[:])
	// Length prefixes keep ("ab","c") and ("a","bc") apart; the stored
	// hash ties the entry to that user's current line.
	var n [8]byte
	for _, part := range [][]byte{[]byte(user), []byte(password), hash} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		m.Write(n[:])
		m.Write(part)
	}
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	return sum
}

// verified reports whether the pair passed bcrypt within the TTL.
func (c *verifyCache) verified(mac [sha256.Size]byte) bool {
	until, ok := c.entries.Get(mac)
	if !ok {
		return false
	}
	if !c.now().Before(until) {
		c.entries.Remove(mac)
		return false
	}
	return true
}

func (c *verifyCache) remember(mac [sha256.Size]byte) {
	c.entries.Add(mac, c.now().Add(c.ttl))
}

// Len is the number of remembered successes.
func (c *verifyCache) Len() int { return c.entries.Len() }

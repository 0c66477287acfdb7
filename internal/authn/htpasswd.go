package authn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// Htpasswd checks passwords against bcrypt lines as `htpasswd -B` writes them.
// Update swaps in a reloaded file without disturbing checks in flight.
type Htpasswd struct {
	table atomic.Pointer[htpasswdTable]

	// Set by EnableCache; a table swapped in by Update gets a fresh cache
	// made with them.
	cacheTTL  time.Duration
	cacheSize int
	now       func() time.Time

	metrics *passwordMetrics
}

type htpasswdTable struct {
	users map[string][]byte
	// dummy is compared against when the user is unknown, so a wrong user
	// name costs as much as a wrong password and does not reveal who exists.
	dummy []byte
	// cache remembers recent successes; nil when disabled.
	cache *verifyCache
	// sum is the SHA-256 of the file, to tell a reload of the same file.
	sum [sha256.Size]byte
}

// EnableCache turns on the verification cache: a user name and password
// that passed bcrypt are accepted without bcrypt for ttl. Call it before
// serving.
func (h *Htpasswd) EnableCache(ttl time.Duration, size int, now func() time.Time) {
	h.cacheTTL, h.cacheSize, h.now = ttl, size, now
	h.table.Load().cache = newVerifyCache(ttl, size, now)
}

// LoadHtpasswd reads an htpasswd file. Lines that are not bcrypt are refused
// (by line number: a hash is never echoed), since MD5 and SHA1 htpasswd
// formats are too weak to accept silently.
func LoadHtpasswd(path string) (*Htpasswd, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	h, err := ParseHtpasswd(data)
	if err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", path, err)
	}
	return h, nil
}

// ParseHtpasswd parses the contents of an htpasswd file.
func ParseHtpasswd(data []byte) (*Htpasswd, error) {
	h := &htpasswdTable{users: map[string][]byte{}, sum: sha256.Sum256(data)}
	dummyCost := bcrypt.DefaultCost
	sc := bufio.NewScanner(bytes.NewReader(data))
	var problems []string
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok || user == "":
			problems = append(problems, fmt.Sprintf("line %d: want user:bcrypt-hash", n))
		case !isBcrypt(hash):
			problems = append(problems, fmt.Sprintf("line %d (user %q): not a bcrypt hash; create it with `htpasswd -B` or `srht-registry hash-password`", n, user))
		case bcryptCost(hash) > maxCost:
			problems = append(problems, fmt.Sprintf("line %d (user %q): bcrypt cost %d is above %d (htpasswd -B's limit): each login would take minutes or more; hash it again with `htpasswd -B` or `srht-registry hash-password`",
				n, user, bcryptCost(hash), maxCost))
		case h.users[user] != nil:
			problems = append(problems, fmt.Sprintf("line %d: user %q appears twice", n, user))
		default:
			h.users[user] = []byte(hash)
			if cost, _ := bcrypt.Cost([]byte(hash)); cost > dummyCost {
				dummyCost = min(cost, maxDummyCost)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	// The dummy costs what a real user's check costs, so the two cannot be
	// told apart by timing; its password is random and thrown away.
	secret := make([]byte, 32)
	rand.Read(secret)
	dummy, err := bcrypt.GenerateFromPassword(secret, dummyCost)
	if err != nil {
		return nil, fmt.Errorf("dummy hash: %w", err)
	}
	h.dummy = dummy
	ht := &Htpasswd{}
	ht.table.Store(h)
	ht.metrics = newPasswordMetrics(ht)
	return ht, nil
}

// Update makes the users of other the ones checked from now on, with an
// empty verification cache: a changed file drops every remembered password.
// The same file read again (a reload for another file's sake) changes
// nothing, so the cache is kept.
func (h *Htpasswd) Update(other *Htpasswd) {
	t := other.table.Load()
	if t.sum == h.table.Load().sum {
		return
	}
	if h.cacheTTL > 0 {
		t.cache = newVerifyCache(h.cacheTTL, h.cacheSize, h.now)
	}
	h.table.Store(t)
}

// CachedLen is the number of passwords the verification cache holds.
func (h *Htpasswd) CachedLen() int {
	if c := h.table.Load().cache; c != nil {
		return c.Len()
	}
	return 0
}

// compareHashAndPassword is bcrypt's check; tests count its calls.
var compareHashAndPassword = bcrypt.CompareHashAndPassword

// maxDummyCost bounds the start-up cost of making the dummy hash.
const maxDummyCost = 13

func isBcrypt(hash string) bool {
	_, err := bcrypt.Cost([]byte(hash))
	return err == nil
}

// maxCost is the highest bcrypt cost accepted: htpasswd -B's own limit (-C
// 4 to 17). bcrypt allows 31, where one check takes days: a line like that
// would hold a request, and a CPU, for as long.
const maxCost = 17

func bcryptCost(hash string) int {
	cost, _ := bcrypt.Cost([]byte(hash))
	return cost
}

// HasUser reports whether the file has a line for user: a local account,
// which reserves its name against every other provider.
func (h *Htpasswd) HasUser(user string) bool {
	_, ok := h.table.Load().users[user]
	return ok
}

// Len is the number of users.
func (h *Htpasswd) Len() int { return len(h.table.Load().users) }

// Authenticate checks a user name and password.
func (h *Htpasswd) Authenticate(_ context.Context, user string, password identity.Secret) (identity.Identity, error) {
	t := h.table.Load()
	hash, known := t.users[user]
	if !known {
		hash = t.dummy
	}
	var mac [32]byte
	if t.cache != nil {
		// Computed for unknown users too, so both paths do the same work
		// up to bcrypt; only a known user's success is ever remembered.
		mac = t.cache.mac(user, password.Reveal(), hash)
		if known && t.cache.verified(mac) {
			h.metrics.cacheHits.Inc()
			return identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: user}, nil
		}
	}
	check := func() error {
		err := compareHashAndPassword(hash, []byte(password.Reveal()))
		h.metrics.verified(known, err)
		return err
	}
	var err error
	if t.cache != nil {
		// Concurrent first requests with the same credentials (a client
		// pulling many layers at once) share one bcrypt check.
		_, err, _ = t.cache.flight.Do(string(mac[:]), func() (any, error) { return nil, check() })
	} else {
		err = check()
	}
	if !known || err != nil {
		return identity.Identity{}, fmt.Errorf("%w: wrong user name or password", identity.ErrUnauthenticated)
	}
	if t.cache != nil {
		t.cache.remember(mac)
	}
	return identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: user}, nil
}

// PasswordHash returns the bcrypt hash the current file holds for user, and
// whether the user exists. A refresh token of a password user is bound to
// it (through an HMAC; the hash itself never leaves the server), so a new
// line for the user, or none, invalidates the user's refresh tokens.
func (h *Htpasswd) PasswordHash(user string) ([]byte, bool) {
	hash, ok := h.table.Load().users[user]
	if !ok {
		return nil, false
	}
	return bytes.Clone(hash), true
}

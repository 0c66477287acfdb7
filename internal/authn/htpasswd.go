package authn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"slices"
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
	// top is the highest bcrypt cost in the file (bcrypt.DefaultCost in a
	// file without users): every failed check costs bcrypt work of that
	// cost, whoever it is for. See failed.
	top int
	// usual is the cost most users have (of equals, the higher): an unknown
	// user is checked as a user at that cost with a wrong password.
	usual int
	// dummies[c] is a bcrypt hash at cost c, for bcrypt.MinCost <= c <= top,
	// of a random password thrown away. An unknown user is compared against
	// dummies[usual]; they pad failures (failed).
	dummies [][]byte
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
	sc := bufio.NewScanner(bytes.NewReader(data))
	var problems []string
	var users [maxCost + 1]int // by cost
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
			users[bcryptCost(hash)]++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	h.top, h.usual = bcrypt.DefaultCost, bcrypt.DefaultCost
	if len(h.users) > 0 {
		h.top, h.usual = 0, 0
		for cost, n := range users {
			if n > 0 {
				h.top = cost
			}
			if n > 0 && n >= users[h.usual] {
				h.usual = cost
			}
		}
	}
	dummies, err := dummyHashes(h.top)
	if err != nil {
		return nil, err
	}
	h.dummies = dummies
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

// compareHashAndPassword is bcrypt's check, the padding of a failure
// included; tests count its calls and read the cost of the hashes compared.
var compareHashAndPassword = bcrypt.CompareHashAndPassword

// dummyHashes returns hashes of one random password at every cost from
// bcrypt.MinCost to top, indexed by cost (below MinCost: nil). The password
// is thrown away, so no password matches them.
//
// One hash is made at MinCost and its cost field rewritten: comparing
// against "$2a$13$<salt><hash>" runs bcrypt at cost 13 over the salt and then
// finds a mismatch, the work of any other cost-13 check, while making it
// costs a millisecond rather than the check's own time (at cost 17, about
// ten seconds, at every start and reload).
func dummyHashes(top int) ([][]byte, error) {
	secret := make([]byte, 32)
	rand.Read(secret)
	base, err := bcrypt.GenerateFromPassword(secret, bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("dummy hash: %w", err)
	}
	// base is "$2a$04$" and 53 characters of salt and hash.
	const prefix = len("$2a$04$")
	dummies := make([][]byte, top+1)
	for cost := bcrypt.MinCost; cost <= top; cost++ {
		dummies[cost] = fmt.Appendf(nil, "$2a$%02d$%s", cost, base[prefix:])
	}
	return dummies, nil
}

// failed pads a failed check of a hash at cost to the work of a check at
// t.top, so that every failure costs the same whatever the user: a user at
// the top cost is not padded; a user at a lower cost, and an unknown user
// (compared against dummies[usual]), are followed by checks against the
// dummies at cost, cost+1, ..., top-1. bcrypt at cost c runs 2^c rounds of
// its key schedule, and 2^c + (2^c + 2^(c+1) + ... + 2^(top-1)) = 2^top: the
// same rounds. Left over is the set-up of each comparison, under one round:
// an unknown user does exactly what a user at the usual cost does, and users
// at other costs differ from them by a few set-ups in 2^top rounds (2% at
// costs 4 and 5, 0.1% at 6 and 12).
//
// The file's costs may then differ (an `htpasswd -B` line at cost 5 beside a
// `hash-password` line at 10 is the common case, and refusing it would
// break upgrades): a wrong password for any user, or any password for
// nobody, costs one check at the highest cost in the file. A right password
// is not padded: its timing tells only the one who knows the password that
// it is right. Without the padding a user at a lower cost was told apart
// from an unknown name by a faster answer (3.6 ms at cost 6 against 237 ms
// at 12, measured).
func (t *htpasswdTable) failed(cost int, password []byte) {
	for c := max(cost, bcrypt.MinCost); c < t.top; c++ {
		_ = compareHashAndPassword(t.dummies[c], password)
	}
}

// isBcrypt reports whether hash is a bcrypt hash that bcrypt can check: a
// version, a cost and a salt in bcrypt's base64. (A salt it cannot decode
// would fail every check at once, without the work of the cost: that user
// could never log in, and the quick failure would tell that the user exists.)
func isBcrypt(hash string) bool {
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return false
	}
	// After "$2a$10$" (or "$2$10$"): 22 characters of salt.
	parts := strings.SplitN(hash, "$", 4)
	if len(parts) != 4 || len(parts[3]) < 22 {
		return false
	}
	_, err := bcryptBase64.DecodeString(parts[3][:22])
	return err == nil
}

// bcryptBase64 is the base64 of bcrypt hashes, as bcrypt decodes salts.
var bcryptBase64 = base64.NewEncoding("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789").WithPadding(base64.NoPadding)

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

// Users lists the user names, sorted.
func (h *Htpasswd) Users() []string {
	return slices.Sorted(maps.Keys(h.table.Load().users))
}

// Len is the number of users.
func (h *Htpasswd) Len() int { return len(h.table.Load().users) }

// Authenticate checks a user name and password.
func (h *Htpasswd) Authenticate(_ context.Context, user string, password identity.Secret) (identity.Identity, error) {
	t := h.table.Load()
	hash, known := t.users[user]
	if !known {
		hash = t.dummies[t.usual]
	}
	var mac [32]byte
	if t.cache != nil {
		// Computed for unknown users too, so both paths do the same work
		// up to bcrypt; only a known user's success is ever remembered.
		// A hit is fast, but it needs the user's right password (the key
		// is the user, the password and the user's hash), so it tells
		// whether a user exists only to one who can log in as that user;
		// an unknown user never hits, and neither does a wrong password.
		mac = t.cache.mac(user, password.Reveal(), hash)
		if known && t.cache.verified(mac) {
			h.metrics.cacheHits.Inc()
			return identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: user}, nil
		}
	}
	check := func() error {
		pw := []byte(password.Reveal())
		err := compareHashAndPassword(hash, pw)
		h.metrics.verified(known, err)
		if err != nil {
			t.failed(bcryptCost(string(hash)), pw)
		}
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

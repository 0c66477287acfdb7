package authn

import (
	"context"
	"encoding/base64"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// Authenticator is what Throttle wraps: the Chain.
type Authenticator interface {
	Authenticate(ctx context.Context, cred identity.Credentials) (identity.Identity, error)
}

var _ Authenticator = (*Chain)(nil)

// Throttle counts failed logins and, past Threshold failures within
// Window, refuses further attempts with an *identity.ThrottledError before
// any credential is checked: a brute-force attempt costs us no bcrypt and no
// meta.sr.ht call. It is built to hit the attacker, not the neighbours who
// share an address (builds.sr.ht runners, NAT, CGNAT):
//
//   - Failures are counted per kind of credential and per client address
//     (IPv6 clients by their /64: one host holds a whole /64), and a block
//     stops only that kind: failed passwords from an address block
//     passwords from it, not its anonymous pulls or its tokens.
//   - Failed passwords are also counted per user name, which stops a
//     guess at one password spread over many addresses; a user who logged
//     in successfully from an address within the window is not locked out
//     there by failures from elsewhere.
//   - Credentials that are cheap to check and cannot be guessed are never
//     blocked (Exempt): refresh tokens and ID tokens, whose signatures we
//     check ourselves, and Sourcehut tokens meta.sr.ht already vouched for.
//   - Anonymous requests are never counted or blocked.
//
// Memory is bounded by Tracked entries per table. Counts are an LRU, but a
// block, once reached, moves to its own table and stays until it ends; when
// that table is full (Tracked active blocks, each earned with Threshold
// failures), a new offender is not blocked until an old block ends, and
// srht_registry_rate_limit_blocks_dropped_total counts it.
//
// The counts live in this process (memStore) unless Share gives the
// throttle a store the replicas share (RedisStore); while that store
// fails, the process's own memory serves (see use).
type Throttle struct {
	next      Authenticator
	threshold int
	window    time.Duration
	now       func() time.Time
	// Exempt, when set, says which credentials are cheap to check and
	// need no limit (a Sourcehut token already verified). Refresh
	// credentials are always exempt.
	Exempt func(cred identity.Credentials) bool

	mem    *memStore    // this replica's own counts and blocks
	shared *sharedStore // when set (brute_force.store): the fleet's, with mem as the fallback

	metrics *throttleMetrics
}

// throttleStore holds the throttle's state: failure counts and blocks per
// key ("ip|<kind>|<addr>" or "user|<name>"), and the last successful login
// per user and address ("<name>|<addr>"). The policy (which keys, when a
// recent login exempts a user) is the Throttle's; a store only counts,
// blocks and forgets, everything within the window it was made with.
type throttleStore interface {
	// Blocked returns when the active block of key ends, or the zero time.
	Blocked(key string, now time.Time) (until time.Time, err error)
	// Fail counts a failure for key; the threshold-th within the window
	// (which starts at the first) blocks key until that window ends.
	Fail(key string, now time.Time) error
	// Clear forgets the failures and the block of key.
	Clear(key string) error
	// Succeeded records a successful login for key (user and address).
	Succeeded(key string, now time.Time) error
	// RecentSuccess reports whether key logged in successfully within the
	// window before now.
	RecentSuccess(key string, now time.Time) (bool, error)
}

// NewThrottle wraps next.
func NewThrottle(next Authenticator, threshold int, window time.Duration, tracked int, now func() time.Time) *Throttle {
	t := &Throttle{next: next, threshold: threshold, window: window, now: now}
	t.metrics = newThrottleMetrics(t)
	t.mem = newMemStore(threshold, window, tracked, t.metrics.dropped)
	return t
}

// memStore is the in-memory throttleStore, bounded by tracked entries per
// table.
type memStore struct {
	threshold int
	window    time.Duration
	tracked   int
	dropped   interface{ Inc() }

	mu     sync.Mutex
	counts *lru.Cache[string, failures]  // failures in the window
	blocks map[string]time.Time          // blocked until
	okFrom *lru.Cache[string, time.Time] // last successful login
}

type failures struct {
	count int
	since time.Time // the window starts at the first failure
}

var _ throttleStore = (*memStore)(nil)

func newMemStore(threshold int, window time.Duration, tracked int, dropped interface{ Inc() }) *memStore {
	tracked = max(tracked, 1)
	counts, _ := lru.New[string, failures](2 * tracked) // addresses and user names
	okFrom, _ := lru.New[string, time.Time](tracked)
	return &memStore{threshold: threshold, window: window, tracked: tracked, dropped: dropped,
		counts: counts, blocks: map[string]time.Time{}, okFrom: okFrom}
}

func (m *memStore) Blocked(key string, now time.Time) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	until, ok := m.blocks[key]
	switch {
	case !ok:
		return time.Time{}, nil
	case !now.Before(until):
		delete(m.blocks, key)
		return time.Time{}, nil
	}
	return until, nil
}

func (m *memStore) Fail(key string, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.counts.Get(key)
	if !ok || now.Sub(f.since) >= m.window {
		f = failures{since: now}
	}
	f.count++
	if f.count < m.threshold {
		m.counts.Add(key, f)
		return nil
	}
	m.counts.Remove(key)
	m.block(key, f.since.Add(m.window), now)
	return nil
}

// block records an active block, never evicting another before it ends.
func (m *memStore) block(key string, until, now time.Time) {
	if _, ok := m.blocks[key]; !ok && len(m.blocks) >= m.tracked {
		for k, u := range m.blocks {
			if !now.Before(u) {
				delete(m.blocks, k)
			}
		}
		if len(m.blocks) >= m.tracked {
			m.dropped.Inc()
			return
		}
	}
	m.blocks[key] = until
}

func (m *memStore) Clear(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counts.Remove(key)
	delete(m.blocks, key)
	return nil
}

func (m *memStore) Succeeded(key string, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.okFrom.Add(key, now)
	return nil
}

func (m *memStore) RecentSuccess(key string, now time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	last, ok := m.okFrom.Peek(key)
	return ok && now.Sub(last) < m.window, nil
}

// trackedLen are the addresses and user names counted or blocked.
func (m *memStore) trackedLen() (addresses, users int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range m.counts.Keys() {
		if strings.HasPrefix(k, "user|") {
			users++
		} else {
			addresses++
		}
	}
	for k := range m.blocks {
		if strings.HasPrefix(k, "user|") {
			users++
		} else {
			addresses++
		}
	}
	return addresses, users
}

// Kinds of credentials, counted apart.
const (
	kindPassword = "password"
	kindToken    = "token" // Sourcehut tokens and OIDC ID tokens, as password or Bearer
)

// kindOf is the kind of credentials, or "" for those never limited: none
// (anonymous), and refresh tokens.
func kindOf(cred identity.Credentials) string {
	switch cred.Kind {
	case identity.CredentialBasic:
		if looksLikeToken(cred.Secret.Reveal()) {
			return kindToken
		}
		return kindPassword
	case identity.CredentialBearer:
		return kindToken
	default:
		return ""
	}
}

// looksLikeToken reports whether a password is a Sourcehut token or a JWT
// (an OIDC ID token): what `docker login -u sourcehut|oidc -p TOKEN` sends.
func looksLikeToken(secret string) bool {
	if _, err := sourcehut.Decode(secret); err == nil {
		return true
	}
	parts := strings.Split(secret, ".")
	if len(parts) != 3 || len(secret) > 16<<10 {
		return false
	}
	for _, p := range parts[:2] {
		if _, err := base64.RawURLEncoding.DecodeString(p); err != nil || p == "" {
			return false
		}
	}
	return strings.HasPrefix(parts[0], "eyJ") // a JSON object
}

// userKey is the user name a password guess is for, or "" when failures
// are counted per address only: for tokens, a user name means nothing (the
// Basic user name of a token login is "sourcehut" or "oidc" for every job,
// and the user a token names is unverified until it is checked, so
// counting per that name would let anyone lock a CI user out with made-up
// tokens); and a token cannot be guessed.
func userKey(cred identity.Credentials) string {
	if kindOf(cred) != kindPassword {
		return ""
	}
	// A directory matches names as its schema says, usually ignoring case
	// and surrounding spaces (uid's caseIgnoreMatch): "Alice " logs in as
	// alice there, so guesses at alice's password under such variants
	// count for one name. (For htpasswd names, which are exact, this only
	// merges counts.)
	return strings.ToLower(strings.TrimSpace(cred.Username))
}

// addressKey groups client addresses as one attacker controls them: an
// IPv4 address alone, an IPv6 address with its /64. Anything else (a
// client key that is not an address) is taken as it is.
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// Authenticate checks the limits, then the credentials.
func (t *Throttle) Authenticate(ctx context.Context, cred identity.Credentials) (identity.Identity, error) {
	kind := kindOf(cred)
	if kind == "" || (t.Exempt != nil && t.Exempt(cred)) {
		return t.next.Authenticate(ctx, cred)
	}
	addr, user := addressKey(cred.ClientIP), userKey(cred)
	if wait, limit := t.blocked(kind, addr, user); wait > 0 {
		t.metrics.rejected(limit)
		return identity.Identity{}, &identity.ThrottledError{RetryAfter: wait}
	}
	id, err := t.next.Authenticate(ctx, cred)
	switch {
	case err == nil:
		if user != "" {
			now := t.now()
			t.use(func(s throttleStore) error {
				if err := s.Clear("user|" + user); err != nil {
					return err
				}
				return s.Succeeded(user+"|"+addr, now)
			})
		}
	case errors.Is(err, identity.ErrUnauthenticated):
		// Only wrong credentials count: upstream outages are not guesses.
		t.fail(kind, addr, user)
	}
	return id, err
}

// blocked returns how long the client must wait, or 0, and which limit
// (limitClientIP or limitUser) sets the wait.
func (t *Throttle) blocked(kind, addr, user string) (wait time.Duration, limit string) {
	now := t.now()
	t.use(func(s throttleStore) error {
		wait, limit = 0, ""
		check := func(key, l string) error {
			until, err := s.Blocked(key, now)
			if err == nil && until.Sub(now) > wait {
				wait, limit = until.Sub(now), l
			}
			return err
		}
		if err := check("ip|"+kind+"|"+addr, limitClientIP); err != nil || user == "" {
			return err
		}
		recent, err := s.RecentSuccess(user+"|"+addr, now)
		if err != nil || recent {
			return err
		}
		return check("user|"+user, limitUser)
	})
	return wait, limit
}

func (t *Throttle) fail(kind, addr, user string) {
	now := t.now()
	keys := []string{"ip|" + kind + "|" + addr}
	if user != "" {
		keys = append(keys, "user|"+user)
	}
	t.use(func(s throttleStore) error {
		for _, key := range keys {
			if err := s.Fail(key, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// use runs f on the shared store when there is one, and on this
// replica's own when there is none or the shared store fails: an
// unreachable Redis neither blocks everyone nor lets everyone guess
// freely; each replica limits on its own until it is back.
func (t *Throttle) use(f func(throttleStore) error) {
	if t.shared != nil && t.shared.up() {
		err := f(t.shared.store)
		if err == nil {
			return
		}
		t.shared.failed(err)
	}
	_ = f(t.mem) // the memory store does not fail
}

// trackedLen are the addresses and user names counted or blocked in this
// replica's memory, for the tracked gauge.
func (t *Throttle) trackedLen() (addresses, users int) {
	return t.mem.trackedLen()
}

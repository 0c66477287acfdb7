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
type Throttle struct {
	next      Authenticator
	threshold int
	window    time.Duration
	tracked   int
	now       func() time.Time
	// Exempt, when set, says which credentials are cheap to check and
	// need no limit (a Sourcehut token already verified). Refresh
	// credentials are always exempt.
	Exempt func(cred identity.Credentials) bool

	mu     sync.Mutex
	counts *lru.Cache[string, failures]  // "ip|<kind>|<addr>" or "user|<name>": failures in the window
	blocks map[string]time.Time          // the same keys: blocked until
	okFrom *lru.Cache[string, time.Time] // "<name>|<addr>": last successful login

	metrics *throttleMetrics
}

type failures struct {
	count int
	since time.Time // the window starts at the first failure
}

// NewThrottle wraps next.
func NewThrottle(next Authenticator, threshold int, window time.Duration, tracked int, now func() time.Time) *Throttle {
	tracked = max(tracked, 1)
	counts, _ := lru.New[string, failures](2 * tracked) // addresses and user names
	okFrom, _ := lru.New[string, time.Time](tracked)
	t := &Throttle{next: next, threshold: threshold, window: window, tracked: tracked, now: now,
		counts: counts, blocks: map[string]time.Time{}, okFrom: okFrom}
	t.metrics = newThrottleMetrics(t)
	return t
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
	return cred.Username
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
			t.mu.Lock()
			t.counts.Remove("user|" + user)
			delete(t.blocks, "user|"+user)
			t.okFrom.Add(user+"|"+addr, t.now())
			t.mu.Unlock()
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
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	check := func(key, l string) {
		until, ok := t.blocks[key]
		switch {
		case !ok:
		case !now.Before(until):
			delete(t.blocks, key)
		case until.Sub(now) > wait:
			wait, limit = until.Sub(now), l
		}
	}
	check("ip|"+kind+"|"+addr, limitClientIP)
	if user != "" {
		if last, ok := t.okFrom.Peek(user + "|" + addr); !ok || now.Sub(last) >= t.window {
			check("user|"+user, limitUser)
		}
	}
	return wait, limit
}

func (t *Throttle) fail(kind, addr, user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	keys := []string{"ip|" + kind + "|" + addr}
	if user != "" {
		keys = append(keys, "user|"+user)
	}
	for _, key := range keys {
		f, ok := t.counts.Get(key)
		if !ok || now.Sub(f.since) >= t.window {
			f = failures{since: now}
		}
		f.count++
		if f.count < t.threshold {
			t.counts.Add(key, f)
			continue
		}
		t.counts.Remove(key)
		t.block(key, f.since.Add(t.window), now)
	}
}

// block records an active block, never evicting another before it ends.
func (t *Throttle) block(key string, until, now time.Time) {
	if _, ok := t.blocks[key]; !ok && len(t.blocks) >= t.tracked {
		for k, u := range t.blocks {
			if !now.Before(u) {
				delete(t.blocks, k)
			}
		}
		if len(t.blocks) >= t.tracked {
			t.metrics.dropped.Inc()
			return
		}
	}
	t.blocks[key] = until
}

// trackedLen are the addresses and user names counted or blocked, for
// the tracked gauge.
func (t *Throttle) trackedLen() (addresses, users int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.counts.Keys() {
		if strings.HasPrefix(k, "user|") {
			users++
		} else {
			addresses++
		}
	}
	for k := range t.blocks {
		if strings.HasPrefix(k, "user|") {
			users++
		} else {
			addresses++
		}
	}
	return addresses, users
}

package authn

import (
	"context"
	"errors"
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

// Throttle counts failed logins per client IP and per user name, and past
// Threshold failures within Window refuses further attempts from that IP or
// for that name with an *identity.ThrottledError, before any password is
// checked: a brute-force attempt costs us no bcrypt. A success resets the
// user's count (not the IP's: one good login must not clear an attacker's
// record). Memory is bounded: each table is an LRU of Tracked entries.
//
// Counting per user name means an attacker can lock a user out for Window
// by failing on purpose; that is the price of stopping a distributed guess
// at one password, and the window is short.
type Throttle struct {
	next      Authenticator
	threshold int
	window    time.Duration
	now       func() time.Time

	mu    sync.Mutex
	byIP  *lru.Cache[string, failures]
	byUse *lru.Cache[string, failures]

	metrics *throttleMetrics
}

type failures struct {
	count int
	since time.Time // the window starts at the first failure
}

// NewThrottle wraps next.
func NewThrottle(next Authenticator, threshold int, window time.Duration, tracked int, now func() time.Time) *Throttle {
	byIP, _ := lru.New[string, failures](max(tracked, 1))
	byUser, _ := lru.New[string, failures](max(tracked, 1))
	t := &Throttle{next: next, threshold: threshold, window: window, now: now, byIP: byIP, byUse: byUser}
	t.metrics = newThrottleMetrics(t)
	return t
}

// userKey is the user name a password guess is for, or "" when failures
// are counted per address only: for no credentials, and for Sourcehut
// tokens. A token's MAC cannot be guessed, so counting per user protects
// nothing there; and the user it names is unverified until meta.sr.ht has
// checked it, so counting per that name would let anyone lock a CI user
// out with made-up tokens (the Basic user name, "sourcehut" for every job,
// means nothing either).
func userKey(cred identity.Credentials) string {
	if cred.Kind != identity.CredentialBasic {
		return ""
	}
	if _, err := sourcehut.Decode(cred.Secret.Reveal()); err == nil {
		return ""
	}
	return "password:" + cred.Username
}

// Authenticate checks the limits, then the credentials.
func (t *Throttle) Authenticate(ctx context.Context, cred identity.Credentials) (identity.Identity, error) {
	user := userKey(cred)
	if wait, limit := t.blocked(cred.ClientIP, user); wait > 0 {
		t.metrics.rejected(limit)
		return identity.Identity{}, &identity.ThrottledError{RetryAfter: wait}
	}
	id, err := t.next.Authenticate(ctx, cred)
	switch {
	case err == nil:
		if user != "" {
			t.mu.Lock()
			t.byUse.Remove(user)
			t.mu.Unlock()
		}
	case errors.Is(err, identity.ErrUnauthenticated) && cred.Kind != identity.CredentialNone:
		// Only wrong credentials count: anonymous requests where anonymous
		// is off, and upstream outages, are not guesses.
		t.fail(cred.ClientIP, user)
	}
	return id, err
}

// blocked returns how long the IP or user must wait, or 0, and which of the
// two limits (limitClientIP or limitUser) sets the wait.
func (t *Throttle) blocked(ip, user string) (wait time.Duration, limit string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, c := range []struct {
		table *lru.Cache[string, failures]
		key   string
		limit string
	}{{t.byIP, ip, limitClientIP}, {t.byUse, user, limitUser}} {
		if c.key == "" {
			continue
		}
		f, ok := c.table.Peek(c.key)
		if !ok || f.count < t.threshold {
			continue
		}
		if left := f.since.Add(t.window).Sub(now); left > wait {
			wait, limit = left, c.limit
		}
	}
	return wait, limit
}

func (t *Throttle) fail(ip, user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, c := range []struct {
		table *lru.Cache[string, failures]
		key   string
	}{{t.byIP, ip}, {t.byUse, user}} {
		if c.key == "" {
			continue
		}
		f, ok := c.table.Get(c.key)
		if !ok || now.Sub(f.since) >= t.window {
			f = failures{since: now}
		}
		f.count++
		c.table.Add(c.key, f)
	}
}

package sourcehut

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// Validator checks a token with meta.sr.ht; *MetaClient is the real one.
type Validator interface {
	Validate(ctx context.Context, token string) error
}

var _ Validator = (*MetaClient)(nil)

// Defaults of Options.
const (
	DefaultCacheSize   = 10000
	DefaultNegativeTTL = 30 * time.Second
	// DefaultMaxCacheTTL is the configuration's default revocation delay:
	// how long a validation is trusted before meta.sr.ht is asked again.
	DefaultMaxCacheTTL = 10 * time.Minute
)

// Options configure an Authenticator.
type Options struct {
	Meta Validator
	// CacheSize bounds the cache of validated tokens, and separately the
	// cache of rejected ones, so a flood of bad tokens cannot evict good.
	CacheSize int
	// MaxCacheTTL bounds how long a validation is trusted; 0 means up to
	// the token's expiry. A revoked token keeps working until its entry
	// ages out, so this is the revocation delay an operator accepts.
	MaxCacheTTL time.Duration
	// NegativeTTL is how long a rejected token is remembered, so a client
	// retrying a bad token cannot hammer meta.sr.ht.
	NegativeTTL time.Duration
	// Users are the user names that may log in; "*" alone lets every
	// account of the instance in. Empty lets nobody in. SetUsers replaces
	// the list while requests run.
	Users []string
	Now   func() time.Time
}

// AnyUser in Options.Users lets every account log in.
const AnyUser = "*"

// AllowList is who may log in: every account, or the names listed.
type AllowList struct {
	everyone bool
	users    map[string]bool
}

// NewAllowList lets users in; "*" among them lets every account in.
func NewAllowList(users []string) *AllowList {
	l := &AllowList{users: map[string]bool{}}
	for _, u := range users {
		if u == AnyUser {
			l.everyone = true
		}
		l.users[u] = true
	}
	return l
}

// Admits reports whether user may log in.
func (l *AllowList) Admits(user string) bool { return l.everyone || l.users[user] }

// Authenticator authenticates Sourcehut tokens.
type Authenticator struct {
	meta        Validator
	maxTTL      time.Duration
	negativeTTL time.Duration
	now         func() time.Time
	valid       *lru.Cache[tokenKey, time.Time] // token hash -> trusted until
	rejected    *lru.Cache[tokenKey, time.Time] // token hash -> remembered until
	flight      singleflight.Group
	metrics     *metrics
	allowed     atomic.Pointer[AllowList]
}

// tokenKey is the SHA-256 of a token: the cache never holds a token.
type tokenKey [sha256.Size]byte

// New returns an Authenticator.
func New(opts Options) (*Authenticator, error) {
	if opts.Meta == nil || opts.Now == nil {
		return nil, errors.New("sourcehut: Meta and Now are required")
	}
	size := opts.CacheSize
	if size <= 0 {
		size = DefaultCacheSize
	}
	valid, err := lru.New[tokenKey, time.Time](size)
	if err != nil {
		return nil, err
	}
	rejected, err := lru.New[tokenKey, time.Time](size)
	if err != nil {
		return nil, err
	}
	negativeTTL := opts.NegativeTTL
	if negativeTTL <= 0 {
		negativeTTL = DefaultNegativeTTL
	}
	a := &Authenticator{
		meta: opts.Meta, maxTTL: opts.MaxCacheTTL, negativeTTL: negativeTTL, now: opts.Now,
		valid: valid, rejected: rejected,
	}
	a.metrics = newMetrics(a)
	a.SetUsers(opts.Users)
	return a, nil
}

// SetUsers replaces who may log in, for a reloaded config. Tokens already
// validated are held to the new list at once: the cache says only that a
// token is genuine, not that its owner may log in.
func (a *Authenticator) SetUsers(users []string) { a.allowed.Store(NewAllowList(users)) }

// Admits reports whether the Sourcehut user may log in now. A refresh token
// made at a Sourcehut login is held to it too.
func (a *Authenticator) Admits(user string) bool { return a.allowed.Load().Admits(user) }

// Len returns the number of validated tokens cached.
func (a *Authenticator) Len() int { return a.valid.Len() }

// Verified reports whether token is one meta.sr.ht vouched for and the
// cache still trusts: answering it costs no upstream call. It neither
// counts as a cache hit nor changes the cache's order.
func (a *Authenticator) Verified(token string) bool {
	until, ok := a.valid.Peek(tokenKey(sha256.Sum256([]byte(token))))
	return ok && a.now().Before(until)
}

// Authenticate returns the identity a token proves for the registry named
// service. A string that does not decode as a token gives an error wrapping
// ErrNotToken, so the caller may try it as a password; every other failure
// wraps identity.ErrUnauthenticated or identity.ErrUnavailable.
func (a *Authenticator) Authenticate(ctx context.Context, service string, secret identity.Secret) (identity.Identity, error) {
	raw := secret.Reveal()
	tok, err := Decode(raw)
	if err != nil {
		return identity.Identity{}, err
	}
	// Everything we can check without meta.sr.ht is checked first, so a
	// token that cannot succeed costs no upstream call.
	now := a.now()
	if tok.Version != 0 {
		return identity.Identity{}, fmt.Errorf("%w: unsupported Sourcehut token version %d", identity.ErrUnauthenticated, tok.Version)
	}
	if !tok.Expires.After(now) {
		return identity.Identity{}, fmt.Errorf("%w: the Sourcehut token has expired", identity.ErrUnauthenticated)
	}
	if tok.Username == "" {
		return identity.Identity{}, fmt.Errorf("%w: the Sourcehut token names no user", identity.ErrUnauthenticated)
	}
	// Decided from the token's own claim, before meta.sr.ht is asked: an
	// account that may not log in costs no upstream call, whether or not
	// its token is genuine. (The name is the token holder's own, so saying
	// it leaks nothing.)
	if !a.Admits(tok.Username) {
		return identity.Identity{}, fmt.Errorf("%w: the Sourcehut account %q may not log in to this registry", identity.ErrUnauthenticated, tok.Username)
	}
	grants, all, err := ParseGrants(tok.Grants)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("%w: the Sourcehut token's grants do not parse", identity.ErrUnauthenticated)
	}
	if RegistryAccess(grants, all, service) == "" {
		return identity.Identity{}, fmt.Errorf("%w: the Sourcehut token lacks the grant %s/%s:RW or :RO", identity.ErrUnauthenticated, service, RegistryScope)
	}
	if err := a.validate(ctx, raw, tok.Expires); err != nil {
		return identity.Identity{}, err
	}
	return identity.Identity{
		Method:   identity.MethodSourcehut,
		Provider: identity.ProviderSourcehut,
		Subject:  tok.Username,
		Sourcehut: &identity.Sourcehut{
			Username:  tok.Username,
			ClientID:  tok.ClientID,
			Expires:   tok.Expires,
			AllGrants: all,
			Grants:    grants,
			Access:    RegistryAccess(grants, all, service),
		},
	}, nil
}

// validate answers from the cache, or asks meta.sr.ht once for all
// concurrent requests with the same token.
func (a *Authenticator) validate(ctx context.Context, raw string, expires time.Time) error {
	key := tokenKey(sha256.Sum256([]byte(raw)))
	if err := a.cached(key); !errors.Is(err, errMiss) {
		a.metrics.hit(err)
		return err
	}
	a.metrics.misses.Inc()
	// The upstream call runs detached from this request, so one client
	// giving up does not fail the others waiting on the same call; the
	// client's Timeout still bounds it.
	_, err, _ := a.flight.Do(string(key[:]), func() (any, error) {
		if err := a.cached(key); !errors.Is(err, errMiss) {
			return nil, err
		}
		start := time.Now()
		err := a.meta.Validate(context.WithoutCancel(ctx), raw)
		a.metrics.called(time.Since(start), err)
		now := a.now()
		switch {
		case err == nil:
			until := expires
			if a.maxTTL > 0 && now.Add(a.maxTTL).Before(until) {
				until = now.Add(a.maxTTL)
			}
			a.valid.Add(key, until)
			return nil, nil
		case errors.Is(err, ErrRejected):
			a.rejected.Add(key, now.Add(a.negativeTTL))
			return nil, fmt.Errorf("%w: %w", identity.ErrUnauthenticated, err)
		default:
			// Not cached: the next request asks again.
			return nil, fmt.Errorf("%w: %w", identity.ErrUnavailable, err)
		}
	})
	return err
}

var errMiss = errors.New("cache miss")

func (a *Authenticator) cached(key tokenKey) error {
	now := a.now()
	if until, ok := a.valid.Get(key); ok {
		if now.Before(until) {
			return nil
		}
		a.valid.Remove(key)
	}
	if until, ok := a.rejected.Get(key); ok {
		if now.Before(until) {
			return fmt.Errorf("%w: %w (remembered)", identity.ErrUnauthenticated, ErrRejected)
		}
		a.rejected.Remove(key)
	}
	return errMiss
}

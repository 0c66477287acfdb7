package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// redisPrefix starts every key the throttle writes, so that a Redis or
// Valkey shared with other programs tells them apart.
const redisPrefix = "srht-registry:bf:"

// redisTimeout bounds each call: a slow Redis must not hold up logins.
const redisTimeout = 100 * time.Millisecond

// sharedRetry is how long, after a failed call, the throttle uses its own
// memory before it tries the shared store again: an unreachable Redis
// costs a login one timeout at most that often, not one per login.
const sharedRetry = time.Second

// RedisStore keeps the throttle's counts and blocks in Redis or Valkey,
// shared by every replica that uses the same one, so that a threshold of
// N is N for the whole fleet. Everything it writes expires within the
// window: counts (INCR, PEXPIRE on the first) when their window ends,
// blocks (SET PX) when they end, successful logins after one window.
// Under a maxmemory policy that evicts keys with an expiry (volatile-* or
// allkeys-*), Redis may drop a count or block before it ends; use
// noeviction, or a Redis of its own.
type RedisStore struct {
	client    *redis.Client
	threshold int
	window    time.Duration
	redacted  string // the URL without its password, for logs
}

var _ throttleStore = (*RedisStore)(nil)

// NewRedisStore connects to nothing yet: it parses rawURL
// (redis://[user:password@]host:port/db or rediss:// for TLS) and makes a
// client whose connections are opened on first use. Its errors never
// repeat the URL, which may hold a password.
func NewRedisStore(rawURL string, threshold int, window time.Duration) (*RedisStore, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("brute_force.store: not a valid URL")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("brute_force.store: the scheme must be redis or rediss, not %q", u.Scheme)
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("brute_force.store: %s", redactErr(err, u))
	}
	opts.DialTimeout = redisTimeout
	opts.ReadTimeout = redisTimeout
	opts.WriteTimeout = redisTimeout
	opts.PoolTimeout = redisTimeout
	opts.MaxRetries = -1 // a retry would double the wait; the memory store takes over instead
	opts.ContextTimeoutEnabled = true
	return &RedisStore{client: redis.NewClient(opts), threshold: threshold, window: window, redacted: u.Redacted()}, nil
}

// redactErr is err's text with u's password, if any, removed.
func redactErr(err error, u *url.URL) string {
	msg := err.Error()
	if pw, ok := u.User.Password(); ok && pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	return msg
}

// String is the store's URL without its password.
func (r *RedisStore) String() string { return r.redacted }

// Close closes the client's connections.
func (r *RedisStore) Close() error { return r.client.Close() }

// Keys of one throttle key. The braces are a hash tag: a key's count and
// block hash to the same slot, as the script that touches both needs.
func countKey(key string) string   { return redisPrefix + "{" + key + "}:n" }
func blockKey(key string) string   { return redisPrefix + "{" + key + "}:block" }
func successKey(key string) string { return redisPrefix + "ok:" + key }

// failScript counts a failure and, at the threshold, turns the count into
// a block until the count's window ends (its remaining time to live), in
// one step: replicas failing the same key at once neither lose a count
// nor block twice.
var failScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n < tonumber(ARGV[2]) then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then ttl = tonumber(ARGV[1]) end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', ttl)
return ttl
`)

func (r *RedisStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), redisTimeout)
}

func (r *RedisStore) Blocked(key string, now time.Time) (time.Time, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	ttl, err := r.client.PTTL(ctx, blockKey(key)).Result()
	if err != nil || ttl <= 0 { // -2: no block; -1 (no expiry) is never written
		return time.Time{}, err
	}
	return now.Add(ttl), nil
}

func (r *RedisStore) Fail(key string, _ time.Time) error {
	ctx, cancel := r.ctx()
	defer cancel()
	return failScript.Run(ctx, r.client, []string{countKey(key), blockKey(key)},
		r.window.Milliseconds(), r.threshold).Err()
}

func (r *RedisStore) Clear(key string) error {
	ctx, cancel := r.ctx()
	defer cancel()
	return r.client.Del(ctx, countKey(key), blockKey(key)).Err()
}

func (r *RedisStore) Succeeded(key string, now time.Time) error {
	ctx, cancel := r.ctx()
	defer cancel()
	return r.client.Set(ctx, successKey(key), strconv.FormatInt(now.UnixMilli(), 10), r.window).Err()
}

// RecentSuccess: the record expires one window after the login, so that
// it exists is the answer, by Redis's clock, whatever the replicas'.
func (r *RedisStore) RecentSuccess(key string, _ time.Time) (bool, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	n, err := r.client.Exists(ctx, successKey(key)).Result()
	return n > 0, err
}

// sharedStore is the Throttle's use of a shared store: after a failed
// call it steps aside for sharedRetry, logs at most once a minute, and
// counts each failure.
type sharedStore struct {
	store  throttleStore
	log    *slog.Logger
	errors prometheus.Counter

	mu        sync.Mutex
	downUntil time.Time
	lastLog   time.Time
}

func (s *sharedStore) up() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !time.Now().Before(s.downUntil)
}

func (s *sharedStore) failed(err error) {
	s.errors.Inc()
	now := time.Now()
	s.mu.Lock()
	s.downUntil = now.Add(sharedRetry)
	logIt := now.Sub(s.lastLog) >= time.Minute
	if logIt {
		s.lastLog = now
	}
	s.mu.Unlock()
	if logIt && s.log != nil {
		s.log.Warn("brute-force store unreachable: this replica limits logins on its own until it is back (logged at most once a minute; srht_registry_rate_limit_store_errors_total counts every failure)",
			"store", fmt.Sprint(s.store), "error", err)
	}
}

// Share makes t keep its counts and blocks in s, shared with the other
// replicas that use the same store; while s fails, t falls back to its
// own memory. Call it before t serves.
func (t *Throttle) Share(s *RedisStore, log *slog.Logger) {
	t.shared = &sharedStore{store: s, log: log, errors: t.metrics.storeErrors}
}

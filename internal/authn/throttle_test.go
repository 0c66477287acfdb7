package authn

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// countingAuth accepts one password and counts the checks that reach it.
type countingAuth struct{ checks int }

func (c *countingAuth) Authenticate(_ context.Context, cred identity.Credentials) (identity.Identity, error) {
	c.checks++
	if cred.Kind == identity.CredentialBasic && cred.Secret.Reveal() == "right" {
		return identity.Identity{Method: identity.MethodPassword, Subject: cred.Username}, nil
	}
	return identity.Identity{}, fmt.Errorf("%w: wrong", identity.ErrUnauthenticated)
}

func basicFrom(ip, user, pw string) identity.Credentials {
	return identity.Credentials{Kind: identity.CredentialBasic, Username: user, Secret: identity.Secret(pw), ClientIP: ip}
}

func TestThrottle(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Unix(1e9, 0)}
	next := &countingAuth{}
	th := NewThrottle(next, 3, time.Minute, 100, clock.Now)
	login := func(ip, user, pw string) error {
		_, err := th.Authenticate(ctx, basicFrom(ip, user, pw))
		return err
	}
	throttled := func(err error) bool {
		var te *identity.ThrottledError
		return errors.As(err, &te) && te.RetryAfter > 0
	}

	// Three failures from one address for alice...
	for range 3 {
		if err := login("198.51.100.1", "alice", "guess"); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Fatalf("want a plain failure, got %v", err)
		}
	}
	// ...then that address is refused without a check, even for bob,
	checks := next.checks
	if err := login("198.51.100.1", "bob", "right"); !throttled(err) {
		t.Fatalf("attacking address: %v", err)
	}
	// and alice is refused from anywhere, even with her right password.
	if err := login("203.0.113.5", "alice", "right"); !throttled(err) {
		t.Fatalf("attacked user: %v", err)
	}
	if next.checks != checks {
		t.Errorf("%d checks ran while throttled, want none", next.checks-checks)
	}
	// Others are not affected.
	if err := login("203.0.113.5", "bob", "right"); err != nil {
		t.Fatalf("bystander: %v", err)
	}
	// Retry-After counts down to the end of the window.
	clock.now = clock.now.Add(40 * time.Second)
	var te *identity.ThrottledError
	if err := login("198.51.100.1", "carol", "x"); !errors.As(err, &te) || te.RetryAfter != 20*time.Second {
		t.Fatalf("retry after: %v", err)
	}
	// After the window everything may try again.
	clock.now = clock.now.Add(21 * time.Second)
	if err := login("203.0.113.5", "alice", "right"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestThrottleSuccessResetsUser(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Unix(1e9, 0)}
	th := NewThrottle(&countingAuth{}, 3, time.Minute, 100, clock.Now)
	// Two typos from two addresses, then the right password: the count
	// for alice starts again, so two more typos do not lock her out.
	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		_, _ = th.Authenticate(ctx, basicFrom(ip, "alice", "typo"))
	}
	if _, err := th.Authenticate(ctx, basicFrom("192.0.2.3", "alice", "right")); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"192.0.2.4", "192.0.2.5"} {
		_, _ = th.Authenticate(ctx, basicFrom(ip, "alice", "typo"))
	}
	if _, err := th.Authenticate(ctx, basicFrom("192.0.2.6", "alice", "right")); err != nil {
		t.Fatalf("alice locked out after a success reset her count: %v", err)
	}
}

func TestThrottleCountsOnlyWrongCredentials(t *testing.T) {
	ctx := context.Background()
	down := authFunc(func(context.Context, identity.Credentials) (identity.Identity, error) {
		return identity.Identity{}, fmt.Errorf("%w: meta.sr.ht is down", identity.ErrUnavailable)
	})
	th := NewThrottle(down, 2, time.Minute, 100, time.Now)
	for range 5 {
		if _, err := th.Authenticate(ctx, basicFrom("192.0.2.1", "alice", "x")); !errors.Is(err, identity.ErrUnavailable) {
			t.Fatalf("an upstream outage was counted as a failed login: %v", err)
		}
	}
	anonOff := authFunc(func(context.Context, identity.Credentials) (identity.Identity, error) {
		return identity.Identity{}, identity.ErrCredentialsRequired
	})
	th = NewThrottle(anonOff, 2, time.Minute, 100, time.Now)
	for range 5 {
		if _, err := th.Authenticate(ctx, identity.Credentials{ClientIP: "192.0.2.1"}); !errors.Is(err, identity.ErrCredentialsRequired) {
			t.Fatalf("requests without credentials were throttled: %v", err)
		}
	}
}

func TestThrottleBounded(t *testing.T) {
	th := NewThrottle(&countingAuth{}, 3, time.Minute, 50, time.Now)
	for i := range 1000 {
		_, _ = th.Authenticate(context.Background(), basicFrom(fmt.Sprintf("10.0.%d.%d", i/256, i%256), fmt.Sprintf("u%d", i), "x"))
	}
	if addresses, users := th.trackedLen(); addresses > 50 || users > 50 {
		t.Errorf("tables grew to %d and %d entries, want at most 50", addresses, users)
	}
}

type authFunc func(context.Context, identity.Credentials) (identity.Identity, error)

func (f authFunc) Authenticate(ctx context.Context, c identity.Credentials) (identity.Identity, error) {
	return f(ctx, c)
}

// TestThrottleTokensCountPerAddressOnly: made-up tokens naming a user must
// not lock that user's real CI token out.
func TestThrottleTokensCountPerAddressOnly(t *testing.T) {
	ctx := context.Background()
	// A structurally valid token naming dora (an unverifiable MAC of zeros).
	forged := forgedToken("dora")
	rejectTokens := authFunc(func(_ context.Context, c identity.Credentials) (identity.Identity, error) {
		if c.Secret.Reveal() == forged {
			return identity.Identity{}, fmt.Errorf("%w: expired", identity.ErrUnauthenticated)
		}
		return identity.Identity{Method: identity.MethodSourcehut, Subject: "dora"}, nil
	})
	th := NewThrottle(rejectTokens, 2, time.Minute, 100, time.Now)
	for i := range 5 {
		cred := identity.Credentials{Kind: identity.CredentialBasic, Username: "sourcehut", Secret: identity.Secret(forged), ClientIP: fmt.Sprintf("203.0.113.%d", i)}
		_, _ = th.Authenticate(ctx, cred)
	}
	real := identity.Credentials{Kind: identity.CredentialBasic, Username: "sourcehut", Secret: "real-token-of-dora", ClientIP: "192.0.2.50"}
	if _, err := th.Authenticate(ctx, real); err != nil {
		t.Fatalf("dora's CI was locked out by forged tokens: %v", err)
	}
	// The forging address itself is throttled.
	cred := identity.Credentials{Kind: identity.CredentialBasic, Username: "sourcehut", Secret: identity.Secret(forged), ClientIP: "203.0.113.0"}
	_, _ = th.Authenticate(ctx, cred)
	var te *identity.ThrottledError
	if _, err := th.Authenticate(ctx, cred); !errors.As(err, &te) {
		t.Fatalf("the forging address is not throttled: %v", err)
	}
}

// forgedToken encodes a Sourcehut token payload naming user, with a zero MAC.
func forgedToken(user string) string {
	payload := []byte{0}                              // version 0
	payload = append(payload, 0, 0, 0, 0, 0, 0, 0, 0) // expires: the epoch
	for _, s := range []string{"", "", user} {        // grants, client_id, username
		payload = append(payload, byte(len(s)))
		payload = append(payload, s...)
	}
	return base64.RawStdEncoding.EncodeToString(append(payload, make([]byte, 32)...))
}

// TestThrottleRefreshNeverBlocked: a refresh token's signature is ours to
// check, cheaply, and cannot be guessed: forged ones fail one by one and
// never block the address, so a neighbour's valid refresh token still
// works.
func TestThrottleRefreshNeverBlocked(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Unix(1e9, 0)}
	th := NewThrottle(&countingAuth{}, 3, time.Minute, 100, clock.Now)
	if got := userKey(identity.Credentials{Kind: identity.CredentialRefresh, Username: "alice", Secret: "x"}); got != "" {
		t.Errorf("userKey of a refresh grant = %q, want none", got)
	}
	for range 10 {
		_, err := th.Authenticate(ctx, identity.Credentials{Kind: identity.CredentialRefresh, Secret: "forged", ClientIP: "198.51.100.1"})
		if !errors.Is(err, identity.ErrUnauthenticated) {
			t.Fatalf("want a plain failure, never a block: %v", err)
		}
	}
	if _, err := th.Authenticate(ctx, basicFrom("198.51.100.1", "alice", "right")); err != nil {
		t.Errorf("a password login from that address: %v", err)
	}
}

// TestThrottlePerKind: failed passwords from an address block its
// passwords, not its tokens or anonymous requests; forged tokens block its
// tokens, not its passwords.
func TestThrottlePerKind(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Unix(1e9, 0)}
	const forgedID = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln" // JWT-shaped: an ID token
	next := authFunc(func(_ context.Context, c identity.Credentials) (identity.Identity, error) {
		switch {
		case c.Kind == identity.CredentialNone:
			return identity.Anonymous, nil
		case c.Secret.Reveal() == "right" || c.Secret.Reveal() == "good-token":
			return identity.Identity{Method: identity.MethodPassword, Subject: c.Username}, nil
		}
		return identity.Identity{}, fmt.Errorf("%w: wrong", identity.ErrUnauthenticated)
	})
	th := NewThrottle(next, 3, time.Minute, 100, clock.Now)
	const nat = "198.51.100.7"
	for range 3 {
		_, _ = th.Authenticate(ctx, basicFrom(nat, "mallory", "guess"))
	}
	var te *identity.ThrottledError
	if _, err := th.Authenticate(ctx, basicFrom(nat, "bob", "right")); !errors.As(err, &te) {
		t.Fatalf("passwords from the attacking address: %v, want blocked", err)
	}
	if _, err := th.Authenticate(ctx, identity.Credentials{ClientIP: nat}); err != nil {
		t.Errorf("anonymous from that address: %v", err)
	}
	if _, err := th.Authenticate(ctx, identity.Credentials{Kind: identity.CredentialBearer, Secret: "good-token", ClientIP: nat}); err != nil {
		t.Errorf("a token from that address: %v", err)
	}
	// Forged ID tokens as passwords count per address as tokens, never
	// per the user name "oidc" every CI job logs in with.
	if got := userKey(identity.Credentials{Kind: identity.CredentialBasic, Username: "oidc", Secret: forgedID}); got != "" {
		t.Errorf("userKey of an ID-token login = %q, want none", got)
	}
	const forger = "203.0.113.66"
	for range 3 {
		_, _ = th.Authenticate(ctx, identity.Credentials{Kind: identity.CredentialBasic, Username: "oidc", Secret: forgedID, ClientIP: forger})
	}
	if _, err := th.Authenticate(ctx, identity.Credentials{Kind: identity.CredentialBearer, Secret: "good-token", ClientIP: forger}); !errors.As(err, &te) {
		t.Errorf("tokens from the forging address: %v, want blocked", err)
	}
	if _, err := th.Authenticate(ctx, basicFrom(forger, "bob", "right")); err != nil {
		t.Errorf("a password from the forging address: %v", err)
	}
	// Exempt credentials (a Sourcehut token already verified) pass a block.
	th.Exempt = func(c identity.Credentials) bool { return c.Secret.Reveal() == "good-token" }
	if _, err := th.Authenticate(ctx, identity.Credentials{Kind: identity.CredentialBearer, Secret: "good-token", ClientIP: forger}); err != nil {
		t.Errorf("an exempt token from the forging address: %v", err)
	}
}

// TestThrottleRecentLoginKeepsUserIn: failures for alice from elsewhere do
// not lock her out where she logged in within the window.
func TestThrottleRecentLoginKeepsUserIn(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Unix(1e9, 0)}
	th := NewThrottle(&countingAuth{}, 3, time.Minute, 100, clock.Now)
	if _, err := th.Authenticate(ctx, basicFrom("192.0.2.10", "alice", "right")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_, _ = th.Authenticate(ctx, basicFrom(fmt.Sprintf("203.0.113.%d", i), "alice", "guess"))
	}
	var te *identity.ThrottledError
	if _, err := th.Authenticate(ctx, basicFrom("192.0.2.99", "alice", "right")); !errors.As(err, &te) {
		t.Errorf("alice from a new address: %v, want blocked", err)
	}
	if _, err := th.Authenticate(ctx, basicFrom("192.0.2.10", "alice", "right")); err != nil {
		t.Errorf("alice where she logged in: %v", err)
	}
}

// TestThrottleIPv6Prefix: an IPv6 host's /64 is one client.
func TestThrottleIPv6Prefix(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Unix(1e9, 0)}
	th := NewThrottle(&countingAuth{}, 3, time.Minute, 100, clock.Now)
	for i := range 3 {
		_, _ = th.Authenticate(ctx, basicFrom(fmt.Sprintf("2001:db8:1:2::%x", i+1), fmt.Sprintf("u%d", i), "guess"))
	}
	var te *identity.ThrottledError
	if _, err := th.Authenticate(ctx, basicFrom("2001:db8:1:2:ffff::1", "bob", "right")); !errors.As(err, &te) {
		t.Errorf("another address of the /64: %v, want blocked", err)
	}
	if _, err := th.Authenticate(ctx, basicFrom("2001:db8:1:3::1", "bob", "right")); err != nil {
		t.Errorf("the next /64: %v", err)
	}
	if got := addressKey("::ffff:192.0.2.1"); got != "192.0.2.1" {
		t.Errorf("addressKey of an IPv4-mapped address = %q", got)
	}
}

// TestThrottleBlocksNotEvicted: failures under many other names and
// addresses (an IPv6 /64's worth) do not evict an active block; when the
// table of blocks is full, new offenders are counted as dropped.
func TestThrottleBlocksNotEvicted(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Unix(1e9, 0)}
	th := NewThrottle(&countingAuth{}, 2, time.Minute, 3, clock.Now)
	for range 2 {
		_, _ = th.Authenticate(ctx, basicFrom("192.0.2.1", "alice", "guess"))
	}
	// 500 offenders, each failing twice: enough for a block each.
	for i := range 1000 {
		j := i / 2
		_, _ = th.Authenticate(ctx, basicFrom(fmt.Sprintf("10.1.%d.%d", j/256, j%256), fmt.Sprintf("n%d", j), "guess"))
	}
	var te *identity.ThrottledError
	if _, err := th.Authenticate(ctx, basicFrom("198.51.100.1", "alice", "right")); !errors.As(err, &te) {
		t.Errorf("alice's block was evicted: %v", err)
	}
	if _, err := th.Authenticate(ctx, basicFrom("192.0.2.1", "bob", "right")); !errors.As(err, &te) {
		t.Errorf("the address's block was evicted: %v", err)
	}
	if addresses, users := th.trackedLen(); addresses+users > 3*3 {
		t.Errorf("%d entries tracked, want the tables bounded", addresses+users)
	}
	var dropped dto.Metric
	if err := th.metrics.dropped.Write(&dropped); err != nil {
		t.Fatal(err)
	}
	if dropped.GetCounter().GetValue() == 0 {
		t.Error("no offender was counted as dropped though the table of blocks was full")
	}
	// Blocks end with their window, and make room.
	clock.now = clock.now.Add(time.Minute)
	if _, err := th.Authenticate(ctx, basicFrom("198.51.100.1", "alice", "right")); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

// TestThrottleUserVariants: guesses at one user's password under the
// variants a directory takes for the same name (case, surrounding spaces)
// count for one name, whatever the addresses.
func TestThrottleUserVariants(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Unix(1e9, 0)}
	th := NewThrottle(&countingAuth{}, 3, time.Minute, 100, clock.Now)
	for i, user := range []string{"alice", "Alice", " ALICE "} {
		ip := fmt.Sprintf("198.51.100.%d", i+1)
		if _, err := th.Authenticate(ctx, basicFrom(ip, user, "guess")); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Fatalf("%q: want a plain failure, got %v", user, err)
		}
	}
	var te *identity.ThrottledError
	if _, err := th.Authenticate(ctx, basicFrom("203.0.113.9", "aLiCe", "guess")); !errors.As(err, &te) {
		t.Fatalf("a fourth variant from a fourth address: %v, want throttled", err)
	}
}

package authn

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
	"time"

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
	if th.byIP.Len() > 50 || th.byUse.Len() > 50 {
		t.Errorf("tables grew to %d and %d entries, want at most 50", th.byIP.Len(), th.byUse.Len())
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

// TestThrottleRefreshPerAddress: failed refresh grants count against the
// client's address only. A refresh token names no user until it verifies,
// and its signature cannot be guessed, so no user can be locked out with
// forged ones.
func TestThrottleRefreshPerAddress(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Unix(1e9, 0)}
	th := NewThrottle(&countingAuth{}, 3, time.Minute, 100, clock.Now)
	if got := userKey(identity.Credentials{Kind: identity.CredentialRefresh, Username: "alice", Secret: "x"}); got != "" {
		t.Errorf("userKey of a refresh grant = %q, want none", got)
	}
	for range 3 {
		_, err := th.Authenticate(ctx, identity.Credentials{Kind: identity.CredentialRefresh, Secret: "forged", ClientIP: "198.51.100.1"})
		if !errors.Is(err, identity.ErrUnauthenticated) {
			t.Fatalf("want a plain failure, got %v", err)
		}
	}
	var te *identity.ThrottledError
	if _, err := th.Authenticate(ctx, identity.Credentials{Kind: identity.CredentialRefresh, Secret: "forged", ClientIP: "198.51.100.1"}); !errors.As(err, &te) {
		t.Errorf("the forging address is not throttled: %v", err)
	}
	if _, err := th.Authenticate(ctx, basicFrom("203.0.113.5", "alice", "right")); err != nil {
		t.Errorf("alice from elsewhere: %v", err)
	}
}

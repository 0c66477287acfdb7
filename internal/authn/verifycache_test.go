package authn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// countBcrypt counts bcrypt comparisons for the duration of a test.
func countBcrypt(t *testing.T) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	orig := compareHashAndPassword
	compareHashAndPassword = func(hash, pw []byte) error {
		n.Add(1)
		return orig(hash, pw)
	}
	t.Cleanup(func() { compareHashAndPassword = orig })
	return &n
}

func htpasswdOf(t *testing.T, users map[string]string) *Htpasswd {
	t.Helper()
	var b strings.Builder
	for u, pw := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, hash)
	}
	h, err := ParseHtpasswd([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type testClock struct{ now time.Time }

func (c *testClock) Now() time.Time { return c.now }

func TestVerifyCache(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Unix(1e9, 0)}
	h := htpasswdOf(t, map[string]string{"alice": "right", "bob": "bobs"})
	h.EnableCache(5*time.Minute, 100, clock.Now)
	calls := countBcrypt(t)
	auth := func(user, pw string) error {
		_, err := h.Authenticate(ctx, user, identity.Secret(pw))
		return err
	}

	// The first success costs bcrypt; repeats within the TTL do not.
	if err := auth("alice", "right"); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if err := auth("alice", "right"); err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d bcrypt checks for 101 logins with the same credentials, want 1", n)
	}

	// A wrong password is never remembered as right, and always costs bcrypt.
	calls.Store(0)
	for range 3 {
		if err := auth("alice", "wrong"); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d bcrypt checks for 3 wrong passwords, want 3", n)
	}
	// A prefix, suffix or other user's password does not hit alice's entry.
	for _, c := range [][2]string{{"alice", "righ"}, {"alice", "rightx"}, {"bob", "right"}, {"alicer", "ight"}} {
		if err := auth(c[0], c[1]); err == nil {
			t.Errorf("%s/%s accepted", c[0], c[1])
		}
	}

	// An unknown user costs a bcrypt check (against the dummy) every time
	// and is never cached.
	calls.Store(0)
	for range 3 {
		if err := auth("mallory", "anything"); err == nil {
			t.Fatal("unknown user accepted")
		}
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d bcrypt checks for 3 unknown-user attempts, want 3", n)
	}
	if h.CachedLen() != 1 {
		t.Errorf("cache holds %d entries, want 1 (alice)", h.CachedLen())
	}

	// Past the TTL, bcrypt again.
	calls.Store(0)
	clock.now = clock.now.Add(5*time.Minute + time.Second)
	if err := auth("alice", "right"); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d bcrypt checks after the TTL, want 1", n)
	}
}

func TestVerifyCacheDroppedOnUpdate(t *testing.T) {
	ctx := context.Background()
	h := htpasswdOf(t, map[string]string{"alice": "old"})
	h.EnableCache(time.Hour, 100, time.Now)
	if _, err := h.Authenticate(ctx, "alice", "old"); err != nil {
		t.Fatal(err)
	}
	// The file changes alice's password: the remembered old one must stop
	// working at once, and the cache starts empty for everyone.
	h.Update(htpasswdOf(t, map[string]string{"alice": "new", "bob": "b"}))
	if h.CachedLen() != 0 {
		t.Errorf("cache holds %d entries after a reload", h.CachedLen())
	}
	if _, err := h.Authenticate(ctx, "alice", "old"); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("old password after the file changed: %v", err)
	}
	calls := countBcrypt(t)
	for range 5 {
		if _, err := h.Authenticate(ctx, "alice", "new"); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("the reloaded table has no cache: %d bcrypt checks", calls.Load())
	}
}

// TestVerifyCacheKeptOnSameFile: a reload made for another file's sake
// reads the same htpasswd file again; that must not cost every user a
// bcrypt check.
func TestVerifyCacheKeptOnSameFile(t *testing.T) {
	ctx := context.Background()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	file := []byte("alice:" + string(hash) + "\n")
	h, err := ParseHtpasswd(file)
	if err != nil {
		t.Fatal(err)
	}
	h.EnableCache(time.Hour, 100, time.Now)
	if _, err := h.Authenticate(ctx, "alice", "pw"); err != nil {
		t.Fatal(err)
	}
	same, err := ParseHtpasswd(file)
	if err != nil {
		t.Fatal(err)
	}
	h.Update(same)
	calls := countBcrypt(t)
	if _, err := h.Authenticate(ctx, "alice", "pw"); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 0 || h.CachedLen() != 1 {
		t.Errorf("after reloading the same file: %d bcrypt checks, %d cached; want 0 and 1", calls.Load(), h.CachedLen())
	}
}

func TestVerifyCacheBounded(t *testing.T) {
	users := map[string]string{}
	for i := range 20 {
		users[fmt.Sprintf("u%d", i)] = fmt.Sprintf("p%d", i)
	}
	h := htpasswdOf(t, users)
	h.EnableCache(time.Hour, 5, time.Now)
	for u, pw := range users {
		if _, err := h.Authenticate(context.Background(), u, identity.Secret(pw)); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.CachedLen(); n != 5 {
		t.Errorf("cache holds %d entries, want the bound 5", n)
	}
}

func TestVerifyCacheKeyIsNotThePassword(t *testing.T) {
	c := newVerifyCache(time.Minute, 10, time.Now)
	a := c.mac("alice", "secret", []byte("$2y$hash"))
	other := newVerifyCache(time.Minute, 10, time.Now)
	if a == other.mac("alice", "secret", []byte("$2y$hash")) {
		t.Error("two processes derive the same MAC: the key is not random")
	}
	if strings.Contains(string(a[:]), "secret") {
		t.Error("the MAC holds the password")
	}
	if c.mac("ab", "c", nil) == c.mac("a", "bc", nil) {
		t.Error("user/password boundary is ambiguous")
	}
}

// TestVerifyCacheSingleFlight: a client pulling many layers at once sends
// the same new credentials on many connections; they share one bcrypt.
func TestVerifyCacheSingleFlight(t *testing.T) {
	h := htpasswdOf(t, map[string]string{"alice": "right"})
	h.EnableCache(time.Minute, 10, time.Now)
	release := make(chan struct{})
	var calls atomic.Int64
	orig := compareHashAndPassword
	compareHashAndPassword = func(hash, pw []byte) error {
		calls.Add(1)
		<-release // hold the first check until every caller is waiting
		return orig(hash, pw)
	}
	t.Cleanup(func() { compareHashAndPassword = orig })
	const n = 16
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := h.Authenticate(context.Background(), "alice", "right")
			errs <- err
		}()
	}
	// Wait until the one check is running, then let it finish.
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the other callers join the flight
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if c := calls.Load(); c > 2 {
		t.Errorf("%d bcrypt checks for %d concurrent identical logins, want 1 (2 if a caller came after the first check ended)", c, n)
	}
}

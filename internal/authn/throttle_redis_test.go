package authn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// startRedis starts Debian's redis-server (or valkey-server) on a free
// loopback port, without persistence, in a temporary directory, and
// returns its URL and a function that stops it (also run at Cleanup).
// Without the binary the test is skipped, except in CI (CI set), where
// .ci/run installs it and a missing one is a failure.
func startRedis(t *testing.T) (url string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		bin, err = exec.LookPath("valkey-server")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed: .ci/run installs it (apt-get install redis-server)")
		}
		t.Skip("redis-server not installed (apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir := t.TempDir()
	var out bytes.Buffer
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--requirepass", "s3cret-pw")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not start: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "redis://:s3cret-pw@" + addr + "/0", stop
}

// replica is one server's throttle, sharing the store at url.
func replica(t *testing.T, url string, threshold int, window time.Duration, log *slog.Logger) (*Throttle, *RedisStore) {
	t.Helper()
	store, err := NewRedisStore(url, threshold, window)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	th := NewThrottle(&countingAuth{}, threshold, window, 100, time.Now)
	th.Share(store, log)
	return th, store
}

// TestThrottleSharedRedis: two replicas sharing one Redis hold one limit.
func TestThrottleSharedRedis(t *testing.T) {
	url, stop := startRedis(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	const window = 300 * time.Millisecond
	a, _ := replica(t, url, 4, window, log)
	b, _ := replica(t, url, 4, window, log)
	ctx := context.Background()
	login := func(th *Throttle, ip, user, pw string) error {
		_, err := th.Authenticate(ctx, basicFrom(ip, user, pw))
		return err
	}
	throttled := func(err error) bool {
		var te *identity.ThrottledError
		return errors.As(err, &te) && te.RetryAfter > 0 && te.RetryAfter <= window
	}

	// Four failures spread over both replicas block on both: the address...
	for i := range 4 {
		th := []*Throttle{a, b}[i%2]
		if err := login(th, "198.51.100.1", "alice", "guess"); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	for name, th := range map[string]*Throttle{"a": a, "b": b} {
		if err := login(th, "198.51.100.1", "bob", "right"); !throttled(err) {
			t.Errorf("replica %s, the attacking address: %v, want blocked", name, err)
		}
		// ...and the user, from anywhere.
		if err := login(th, "203.0.113.5", "alice", "right"); !throttled(err) {
			t.Errorf("replica %s, the attacked user: %v, want blocked", name, err)
		}
		if err := login(th, "203.0.113.5", "bob", "right"); err != nil {
			t.Errorf("replica %s, a bystander: %v", name, err)
		}
	}

	// A success on one replica resets the user on both: three typos for
	// carol, a success on a, three more typos, and carol still gets in.
	for i := range 3 {
		_ = login([]*Throttle{a, b}[i%2], fmt.Sprintf("192.0.2.%d", i+1), "carol", "typo")
	}
	if err := login(a, "192.0.2.50", "carol", "right"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_ = login(b, fmt.Sprintf("192.0.2.%d", i+10), "carol", "typo")
	}
	if err := login(b, "192.0.2.51", "carol", "right"); err != nil {
		t.Errorf("carol locked out on b after a success on a: %v", err)
	}
	// A recent login on a keeps dave in there, on b too, though failures
	// elsewhere block dave.
	if err := login(a, "192.0.2.60", "dave", "right"); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		_ = login([]*Throttle{a, b}[i%2], fmt.Sprintf("203.0.113.%d", i+20), "dave", "guess")
	}
	if err := login(b, "192.0.2.99", "dave", "right"); !throttled(err) {
		t.Errorf("dave from a new address: %v, want blocked", err)
	}
	if err := login(b, "192.0.2.60", "dave", "right"); err != nil {
		t.Errorf("dave where he logged in (on a): %v", err)
	}

	// Blocks and counts end with the window.
	time.Sleep(window + 50*time.Millisecond)
	for name, th := range map[string]*Throttle{"a": a, "b": b} {
		if err := login(th, "198.51.100.1", "alice", "right"); err != nil {
			t.Errorf("replica %s after the window: %v", name, err)
		}
	}
	if logs.Len() != 0 {
		t.Errorf("logged while Redis was up:\n%s", logs.String())
	}

	// Redis gone: logins still work, each replica limits on its own, a
	// warning is logged once, and no password reaches it.
	stop()
	start := time.Now()
	if err := login(a, "192.0.2.70", "erin", "right"); err != nil {
		t.Fatalf("with Redis down: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a login with Redis down took %v", d)
	}
	for range 4 {
		_ = login(a, "198.51.100.9", "frank", "guess")
	}
	if err := login(a, "198.51.100.9", "bob", "right"); !throttled(err) {
		t.Errorf("with Redis down, the attacking address on a: %v, want blocked by a's memory", err)
	}
	if err := login(b, "192.0.2.71", "erin", "right"); err != nil {
		t.Errorf("with Redis down, on b: %v", err)
	}
	time.Sleep(sharedRetry + 100*time.Millisecond) // a tries Redis again, and fails again
	if err := login(a, "192.0.2.72", "erin", "right"); err != nil {
		t.Errorf("with Redis down, later: %v", err)
	}
	if n := strings.Count(logs.String(), "brute-force store unreachable"); n != 2 {
		t.Errorf("%d warnings from a and b together, want one per replica per minute (2):\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "s3cret-pw") {
		t.Errorf("the password reached the log:\n%s", logs.String())
	}
	var m dto.Metric
	if err := a.metrics.storeErrors.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.GetCounter().GetValue() < 2 {
		t.Errorf("store errors counted: %v, want at least 2", m.GetCounter().GetValue())
	}
}

// TestThrottleSharedRedisExpires: nothing outlives the window in Redis.
func TestThrottleSharedRedisExpires(t *testing.T) {
	url, _ := startRedis(t)
	const window = 300 * time.Millisecond
	th, store := replica(t, url, 2, window, nil)
	for i := range 5 {
		_, _ = th.Authenticate(context.Background(), basicFrom(fmt.Sprintf("10.0.0.%d", i), "u"+strconv.Itoa(i), "x"))
	}
	_, _ = th.Authenticate(context.Background(), basicFrom("10.0.0.1", "alice", "right"))
	keys := func() []string {
		ks, err := store.client.Keys(context.Background(), redisPrefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	if len(keys()) == 0 {
		t.Fatal("nothing written to Redis")
	}
	for _, k := range keys() {
		if ttl := store.client.PTTL(context.Background(), k).Val(); ttl <= 0 || ttl > window {
			t.Errorf("%s expires in %v, want within the window", k, ttl)
		}
	}
	time.Sleep(window + 50*time.Millisecond)
	if ks := keys(); len(ks) != 0 {
		t.Errorf("left after the window: %v", ks)
	}
}

func TestNewRedisStoreRedacts(t *testing.T) {
	for _, u := range []string{"redis://:hunter2@host:bad/0", "http://:hunter2@host/", "redis://:hunter2@host:6379/notadb", "redis://:hunter2@[::1"} {
		_, err := NewRedisStore(u, 1, time.Second)
		if err == nil {
			t.Errorf("%s: accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the password is in the error: %v", err)
		}
	}
	s, err := NewRedisStore("rediss://user:hunter2@host:6380/1", 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if strings.Contains(s.String(), "hunter2") || !strings.Contains(s.String(), "host:6380") {
		t.Errorf("String() = %q", s.String())
	}
}

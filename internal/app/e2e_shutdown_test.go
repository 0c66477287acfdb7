package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

// TestGracefulShutdown cancels serve's context (what SIGTERM does in main)
// while a request is in flight: the request is answered, new connections
// are refused, and serve returns 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	meta := fakemeta.Start(t)
	meta.SetDelay(700 * time.Millisecond) // keeps a Sourcehut login in flight
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, cfg, "listen: 127.0.0.1:0\nauthn:\n  sourcehut:\n    meta_url: "+meta.URL()+"\n    timeout: 5s\n    users: [alice]\nlimits:\n  shutdown_timeout: 5s\n")
	addr, logs, cancel, exited := serveToStop(t, cfg)

	tok := meta.Mint(fakemeta.TokenOptions{Username: "alice", Grants: "registry.example.com/REGISTRY:RW", Expires: time.Now().Add(time.Hour)})
	answered := make(chan tokenResult, 1)
	go func() {
		res, err := fetchToken(context.Background(), addr, "sourcehut", tok, "repository:alice/app:push")
		if err != nil {
			res.message = err.Error()
		}
		answered <- res
	}()
	waitFor(t, "the login to reach meta.sr.ht", func() bool { return meta.Calls() > 0 })
	cancel() // SIGTERM

	res := <-answered
	if res.status != http.StatusOK || len(res.access) != 1 {
		t.Fatalf("the request in flight was not finished: %+v", res)
	}
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("serve exited %d; log:\n%s", code, logs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after shutdown")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("new connections are still accepted after shutdown")
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Error("no shutdown line in the log")
	}
}

// TestShutdownDelay: with limits.shutdown_delay, SIGTERM first turns
// /readyz to 503 while tokens are still issued, so a balancer's health check
// takes the replica out before its listener closes; then it shuts down.
func TestShutdownDelay(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, cfg, "listen: 127.0.0.1:0\nlimits:\n  shutdown_delay: 1500ms\n")
	addr, logs, cancel, exited := serveToStop(t, cfg)
	if got := getStatus(t, "http://"+addr+"/readyz"); got != http.StatusOK {
		t.Fatalf("/readyz before SIGTERM: %d", got)
	}
	signalled := time.Now()
	cancel() // SIGTERM
	waitFor(t, "/readyz to say 503", func() bool { return getStatus(t, "http://"+addr+"/readyz") == http.StatusServiceUnavailable })
	if got := getStatus(t, "http://"+addr+"/auth?service=registry.example.com&scope=repository:library/alpine:pull"); got != http.StatusOK {
		t.Errorf("a token request while draining: %d, want 200", got)
	}
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("serve exited %d; log:\n%s", code, logs)
		}
		if took := time.Since(signalled); took < 1500*time.Millisecond {
			t.Errorf("serve returned %v after SIGTERM, before the 1.5 s shutdown delay", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return after the shutdown delay")
	}
	if !strings.Contains(logs.String(), "draining") {
		t.Error("no draining line in the log")
	}
}

// serveToStop runs serve until the test calls cancel (what SIGTERM does in
// main); exited receives serve's exit code.
func serveToStop(t *testing.T, cfg string) (addr string, logs *syncBuffer, cancel context.CancelFunc, exited <-chan int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logs = &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--config", cfg}, strings.NewReader(""), io.Discard, logs)
	}()
	waitFor(t, "the server to listen", func() bool {
		if m := listeningRE.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
			return true
		}
		return false
	})
	return addr, logs, cancel, done
}

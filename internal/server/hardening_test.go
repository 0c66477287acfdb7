package server_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/server"
)

// TestBruteForceThrottled drives the real chain behind the throttle: past
// the threshold the client gets 429 with Retry-After, for any password.
func TestBruteForceThrottled(t *testing.T) {
	e := newReal(t, func(o *server.Options, c *authn.Chain) {
		o.Authenticator = authn.NewThrottle(c, 3, time.Minute, 100, time.Now)
	})
	for range 3 {
		rec := e.do(t, req{query: "service=" + service + "&scope=repository:alice/app:pull", auth: []string{basic("alice", "guess")}})
		checkError(t, rec, http.StatusUnauthorized)
	}
	rec := e.do(t, req{query: "service=" + service + "&scope=repository:alice/app:pull", auth: []string{basic("alice", alicePassword)}})
	_, item := checkError(t, rec, http.StatusTooManyRequests)
	if ra := rec.Header().Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
	if !strings.Contains(item.Message, "too many failed logins") {
		t.Errorf("message %q", item.Message)
	}
	noSecrets(t, "body", rec.Body.String())
	noSecrets(t, "logs", e.logs.String())
}

func TestTrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.10/32")}
	tests := []struct {
		name, remote, xff, realIP, want string
	}{
		{"direct client, headers ignored", "203.0.113.7:1234", "198.51.100.1", "198.51.100.2", "203.0.113.7"},
		{"trusted proxy, one hop", "10.1.1.1:1234", "198.51.100.1", "", "198.51.100.1"},
		{"trusted chain, forged left part ignored", "10.1.1.1:1234", "6.6.6.6, 198.51.100.1, 10.2.2.2", "", "198.51.100.1"},
		{"all hops trusted", "10.1.1.1:1234", "10.3.3.3, 10.2.2.2", "", "10.3.3.3"},
		// A garbage hop stops the walk, and is the client's key: never the
		// proxy's address (forwarded.go).
		{"garbage hop stops the walk", "10.1.1.1:1234", "198.51.100.1, not-an-ip", "", "forwarded:not-an-ip"},
		{"X-Real-IP from a trusted proxy", "192.0.2.10:80", "", "198.51.100.9", "198.51.100.9"},
		{"X-Real-IP garbage", "192.0.2.10:80", "", "<script>", "forwarded:%3Cscript%3E"},
		{"IPv6 client", "10.1.1.1:1234", "2001:db8::1", "", "2001:db8::1"},
		{"address with a port", "10.1.1.1:1234", "203.0.113.9:4444, 10.2.2.2", "", "203.0.113.9"},
		{"IPv6 with a port", "10.1.1.1:1234", "[2001:db8::9]:4444", "", "2001:db8::9"},
		{"trusted proxy, no header", "10.1.1.1:1234", "", "", "10.1.1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakes()
			h := server.New(server.Options{
				Services: []string{service}, Realm: realm, MaxScopes: 4, MaxBodyBytes: maxBody,
				Authenticator: f.authn, Authorizer: f.authz, Minter: f.minter, JWKS: []byte(`{}`),
				Logger: discardLogger(), Now: time.Now, TrustedProxies: trusted,
			})
			r := httptest.NewRequest(http.MethodGet, "/auth?scope=repository:alice/app:pull", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if tt.realIP != "" {
				r.Header.Set("X-Real-IP", tt.realIP)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if got := f.authz.gotReq.ClientIP; got != tt.want {
				t.Errorf("policy saw client_ip %q, want %q", got, tt.want)
			}
			if got := f.authn.got[len(f.authn.got)-1].ClientIP; got != tt.want {
				t.Errorf("authenticator saw %q, want %q", got, tt.want)
			}
		})
	}
}

// blockingAuthz holds every request until released.
type blockingAuthz struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingAuthz) Authorize(ctx context.Context, _ identity.Identity, _ identity.Request, scs []access.Scope) ([]access.Decision, error) {
	b.entered <- struct{}{}
	<-b.release
	return nil, nil
}

func TestMaxConcurrent(t *testing.T) {
	f := newFakes()
	block := &blockingAuthz{entered: make(chan struct{}, 10), release: make(chan struct{})}
	h := server.New(server.Options{
		Services: []string{service}, Realm: realm, MaxScopes: 4, MaxBodyBytes: maxBody, MaxConcurrent: 2,
		Authenticator: f.authn, Authorizer: block, Minter: f.minter, JWKS: []byte(`{}`),
		Logger: discardLogger(), Now: time.Now,
	})
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- serve(h, req{query: "scope=repository:alice/app:pull"}).Code
		}()
	}
	<-block.entered
	<-block.entered
	// Both slots are taken: the next request is shed with 503 at once, but
	// health checks still answer.
	rec := serve(h, req{query: "scope=repository:alice/app:pull"})
	checkError(t, rec, http.StatusServiceUnavailable)
	if rec.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After on a shed request")
	}
	if rec := serve(h, req{path: "/healthz"}); rec.Code != http.StatusOK {
		t.Errorf("healthz while full: %d", rec.Code)
	}
	close(block.release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("an admitted request got %d", c)
		}
	}
	// The slots are free again.
	block.release = make(chan struct{})
	close(block.release)
	if rec := serve(h, req{query: "scope=repository:alice/app:pull"}); rec.Code != http.StatusOK {
		t.Errorf("after the burst: %d %s", rec.Code, rec.Body)
	}
}

func TestQueryTooLongAndReady(t *testing.T) {
	f := newFakes()
	notReady := errors.New("policy bundle not activated yet")
	ready := notReady
	h := server.New(server.Options{
		Services: []string{service}, Realm: realm, MaxScopes: 4, MaxBodyBytes: maxBody, MaxQueryBytes: 512,
		Authenticator: f.authn, Authorizer: f.authz, Minter: f.minter, JWKS: []byte(`{}`),
		Logger: discardLogger(), Now: time.Now, Ready: func() error { return ready },
	})
	rec := serve(h, req{query: "scope=" + strings.Repeat("a", 600)})
	checkError(t, rec, http.StatusRequestURITooLong)

	rec = serve(h, req{path: "/readyz"})
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), notReady.Error()) {
		t.Errorf("readyz not ready: %d %s", rec.Code, rec.Body)
	}
	ready = nil
	if rec := serve(h, req{path: "/readyz"}); rec.Code != http.StatusOK {
		t.Errorf("readyz ready: %d %s", rec.Code, rec.Body)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

package server_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/server"
)

// forwardedWarning is the message of the warning about an unusable entry.
const forwardedWarning = "forwarding header from a trusted proxy names no client address where the client should be; its entry is the client key"

// proxied is a request to /auth from the socket address remote with the
// headers given as name, value pairs (a name twice adds a second line).
func proxied(remote string, auth string, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/auth?service="+service+"&scope=repository:alice/app:pull", nil)
	r.RemoteAddr = remote
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

// TestForwardedClientIP drives the handler: which client the
// authenticator and the policy see, spoofing attempts included.
func TestForwardedClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	tests := []struct {
		name, remote string
		headers      []string
		want         string
	}{
		// Spoofing: an untrusted peer's headers are ignored, all of them.
		{"untrusted peer, X-Forwarded-For ignored", "203.0.113.7:1234", []string{"X-Forwarded-For", "198.51.100.1"}, "203.0.113.7"},
		{"untrusted peer, X-Real-IP ignored", "203.0.113.7:1234", []string{"X-Real-IP", "198.51.100.1"}, "203.0.113.7"},
		{"untrusted peer, Forwarded ignored", "203.0.113.7:1234", []string{"Forwarded", "for=198.51.100.1"}, "203.0.113.7"},
		{"untrusted peer, garbage ignored", "203.0.113.7:1234", []string{"X-Forwarded-For", "unknown"}, "203.0.113.7"},
		{"untrusted IPv6 peer", "[2001:db8::7]:1234", []string{"X-Forwarded-For", "198.51.100.1"}, "2001:db8::7"},
		// A client behind an X-Forwarded-For proxy cannot pick its address
		// with a Forwarded or X-Real-IP header the proxy passes through.
		{"client's Forwarded behind an XFF proxy", "10.0.0.1:1234",
			[]string{"Forwarded", "for=6.6.6.6", "X-Forwarded-For", "203.0.113.9"}, "203.0.113.9"},
		{"client's X-Real-IP behind an XFF proxy", "10.0.0.1:1234",
			[]string{"X-Real-IP", "6.6.6.6", "X-Forwarded-For", "203.0.113.9"}, "203.0.113.9"},
		{"client's prefix to XFF", "10.0.0.1:1234", []string{"X-Forwarded-For", "6.6.6.6, 10.0.0.9", "X-Forwarded-For", "203.0.113.9:4444"}, "203.0.113.9"},
		{"client's XFF behind a Forwarded proxy that drops it", "[2001:db8:ffff::1]:1234",
			[]string{"Forwarded", `for=6.6.6.6, for="[2001:db8::9]:4444";proto=https`}, "2001:db8::9"},
		// The forms balancers write.
		{"XFF ip:port", "10.0.0.1:1234", []string{"X-Forwarded-For", "203.0.113.9:4444"}, "203.0.113.9"},
		{"XFF [v6]:port", "10.0.0.1:1234", []string{"X-Forwarded-For", "[2001:db8::9]:4444"}, "2001:db8::9"},
		{"X-Real-IP [v6]:port", "10.0.0.1:1234", []string{"X-Real-IP", "[2001:db8::9]:4444"}, "2001:db8::9"},
		{"Forwarded quoted", "10.0.0.1:1234", []string{"Forwarded", `For="[2001:db8:cafe::17]:4711";Proto=https`}, "2001:db8:cafe::17"},
		{"v4-mapped peer and hop", "[::ffff:10.0.0.1]:1234", []string{"X-Forwarded-For", "::ffff:203.0.113.9"}, "203.0.113.9"},
		// Unusable where the client is: a key of its own, not the proxy.
		{"Forwarded obfuscated", "10.0.0.1:1234", []string{"Forwarded", "for=_hidden"}, "forwarded:_hidden"},
		{"Forwarded unknown", "10.0.0.1:1234", []string{"Forwarded", "for=unknown"}, "forwarded:unknown"},
		{"XFF garbage", "10.0.0.1:1234", []string{"X-Forwarded-For", "203.0.113.9 , bogus"}, "forwarded:bogus"},
		{"trusted peer, no header: the peer", "10.0.0.1:1234", nil, "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakes()
			h := server.New(server.Options{
				Services: []string{service}, Realm: realm, MaxScopes: 4, MaxBodyBytes: maxBody,
				Authenticator: f.authn, Authorizer: f.authz, Minter: f.minter, JWKS: []byte(`{}`),
				Logger: discardLogger(), Now: time.Now, TrustedProxies: trusted,
			})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, proxied(tt.remote, "", tt.headers...))
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

// TestForwardedWarning: an unusable entry is logged at warn through the
// request's logger, the header cut to 200 bytes, at most once a minute
// (with the count held back); the request line carries the key.
func TestForwardedWarning(t *testing.T) {
	f := newFakes()
	var mu sync.Mutex
	now := fakeNow
	h := server.New(server.Options{
		Services: []string{service}, Realm: realm, MaxScopes: 4, MaxBodyBytes: maxBody,
		Authenticator: f.authn, Authorizer: f.authz, Minter: f.minter, JWKS: []byte(`{}`),
		Logger: slog.New(slog.NewJSONHandler(f.logs, nil)), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")},
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
	})
	forged := strings.Repeat("6.6.6.6, ", 500) // the client's part, left of the proxy's
	send := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, proxied("10.0.0.1:1234", "", "X-Forwarded-For", forged+"unknown"))
		return rec
	}
	rec := send()
	send()
	send()
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	send()

	warns := logLines(t, f.logs.String(), forwardedWarning)
	if len(warns) != 2 {
		t.Fatalf("%d warnings, want 2 (one a minute):\n%s", len(warns), f.logs)
	}
	w := warns[0]
	if w["level"] != "WARN" || w["header"] != "X-Forwarded-For" || w["client_key"] != "forwarded:unknown" || w["peer"] != "10.0.0.1" {
		t.Errorf("warning %v", w)
	}
	if w["request_id"] != rec.Header().Get("X-Request-Id") {
		t.Errorf("warning's request_id %v, response's %q", w["request_id"], rec.Header().Get("X-Request-Id"))
	}
	if v, _ := w["value"].(string); len(v) > 200 || !strings.HasPrefix(v, "6.6.6.6, ") {
		t.Errorf("value of %d bytes: %.80q", len(v), v)
	}
	if warns[0]["suppressed"] != 0.0 || warns[1]["suppressed"] != 2.0 {
		t.Errorf("suppressed %v then %v, want 0 then 2", warns[0]["suppressed"], warns[1]["suppressed"])
	}
	for _, line := range logLines(t, f.logs.String(), "request") {
		if line["client_ip"] != "forwarded:unknown" {
			t.Errorf("request line's client_ip %v", line["client_ip"])
		}
	}
}

// TestForwardedThrottle is the case: behind a trusted proxy that
// writes ip:port or [v6]:port, one client's failed logins block that
// client, not the proxy and the others behind it; and failures under an
// unusable entry's key block neither the proxy nor the clients it names.
func TestForwardedThrottle(t *testing.T) {
	e := newReal(t, func(o *server.Options, c *authn.Chain) {
		o.Authenticator = authn.NewThrottle(c, 3, time.Minute, 100, time.Now)
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}
	})
	const proxy = "10.0.0.1:40000"
	do := func(auth string, headers ...string) int {
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, proxied(proxy, auth, headers...))
		return rec.Code
	}
	attacker := []string{"X-Forwarded-For", "203.0.113.9:4444"}
	for i := range 10 {
		// Made-up users, so that only the per-client limit counts.
		if code := do(basic("nobody"+string(rune('a'+i)), wrongPassword), attacker...); code != http.StatusUnauthorized && code != http.StatusTooManyRequests {
			t.Fatalf("failure %d: status %d", i, code)
		}
	}
	if code := do(basic("nobodyz", wrongPassword), "X-Forwarded-For", "203.0.113.9:5555"); code != http.StatusTooManyRequests {
		t.Errorf("the attacker from another port: %d, want 429", code)
	}
	// Unusable entries: their own keys.
	for i := range 10 {
		do(basic("nobody"+string(rune('a'+i)), wrongPassword), "Forwarded", "for=unknown")
	}
	for _, other := range [][]string{
		{"X-Forwarded-For", "[2001:db8::9]:4444"},
		{"X-Forwarded-For", "203.0.113.10"},
		{"Forwarded", `for="[2001:db8::10]:4711"`},
		{"Forwarded", "for=_other-client"},
		nil, // the proxy itself
	} {
		if code := do(basic("alice", alicePassword), other...); code != http.StatusOK {
			t.Errorf("%q behind the same proxy: status %d, want 200", other, code)
		}
	}
	if code := do(basic("nobodyz", wrongPassword), "Forwarded", "for=unknown"); code != http.StatusTooManyRequests {
		t.Errorf("for=unknown after its failures: %d, want 429", code)
	}
}

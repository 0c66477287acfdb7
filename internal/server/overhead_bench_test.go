package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/server"
)

// discardResponse is a ResponseWriter that keeps nothing but its header
// map, cleared between requests as net/http's own is renewed: what the
// handler itself costs, without httptest.ResponseRecorder's copies.
type discardResponse struct {
	h      http.Header
	status int
}

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardResponse) WriteHeader(code int)        { d.status = code }

// BenchmarkOverhead is the handler's own cost for one /auth request: the
// authenticator, the policy and the signer are fakes that answer at once,
// so what is left is parsing, request IDs, metrics, the log line(s) (at
// info, to io.Discard, in each format) and writing the headers and JSON.
func BenchmarkOverhead(b *testing.B) {
	for _, format := range []string{"text", "json"} {
		for _, c := range []struct{ name, method, query, body string }{
			{"GET-1-scope", http.MethodGet, "service=registry.example.com&scope=repository:library/base:pull", ""},
			{"POST-3-scopes", http.MethodPost, "", "grant_type=password&service=registry.example.com&client_id=docker&username=alice&password=x" +
				"&scope=repository:alice/app:pull,push+repository:alice/b:pull+repository:library/base:pull"},
		} {
			b.Run(format+"/"+c.name, func(b *testing.B) {
				var handler slog.Handler = slog.NewTextHandler(io.Discard, nil)
				if format == "json" {
					handler = slog.NewJSONHandler(io.Discard, nil)
				}
				f := newFakes()
				f.authn.id = identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice"}
				f.authz.grant = map[string][]string{"alice/app": {"pull", "push"}, "library/base": {"pull"}}
				h := server.New(server.Options{
					Services: []string{service}, Realm: realm, MaxScopes: 4, MaxBodyBytes: maxBody,
					Authenticator: f.authn, Authorizer: f.authz, Minter: f.minter, JWKS: []byte(`{"keys":[]}`),
					Logger: slog.New(handler), Now: time.Now,
				})
				w := &discardResponse{h: http.Header{}}
				b.ReportAllocs()
				for b.Loop() {
					var r *http.Request
					if c.method == http.MethodPost {
						r = httptest.NewRequest(c.method, "/auth", strings.NewReader(c.body))
						r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					} else {
						r = httptest.NewRequest(c.method, "/auth?"+c.query, nil)
					}
					r.RemoteAddr = "192.0.2.7:40000"
					clear(w.h)
					h.ServeHTTP(w, r)
					if w.status != http.StatusOK {
						b.Fatalf("status %d", w.status)
					}
				}
			})
		}
	}
}

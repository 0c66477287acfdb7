package server_test

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/authz"
	"git.sr.ht/~zozs/srht-registry/internal/server"
	"git.sr.ht/~zozs/srht-registry/internal/token"
	"git.sr.ht/~zozs/srht-registry/policy"
)

// BenchmarkAuth is one whole /auth request through the handler, with the
// real authenticator, the embedded policy and an ES256 key, as serve wires
// them (bcrypt cost 10 on disk, the password cache on).
func BenchmarkAuth(b *testing.B) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), 10)
	if err != nil {
		b.Fatal(err)
	}
	users, err := authn.ParseHtpasswd([]byte("alice:" + string(hash) + "\n"))
	if err != nil {
		b.Fatal(err)
	}
	users.EnableCache(5*time.Minute, 1000, time.Now)
	az, err := authz.New(context.Background(), authz.Options{Modules: policy.FS(), Schema: policy.InputSchema(),
		Data: map[string]any{"public": []any{"library/*"}}})
	if err != nil {
		b.Fatal(err)
	}
	signer, err := token.Generate(token.KeyEC)
	if err != nil {
		b.Fatal(err)
	}
	key, err := token.NewKey(signer, nil)
	if err != nil {
		b.Fatal(err)
	}
	h := server.New(server.Options{
		Services: []string{"registry.example.com"}, Realm: "srht-registry", MaxScopes: 64, MaxBodyBytes: 16384,
		Authenticator: &authn.Chain{Anonymous: true, Passwords: users, Local: users},
		Authorizer:    az,
		Minter:        &token.Minter{Issuer: "srht-registry", TTL: 5 * time.Minute, Key: key, Now: time.Now},
		JWKS:          []byte(`{"keys":[]}`),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Now:           time.Now,
	})
	cases := []struct{ name, query, auth string }{
		{"anonymous-1-scope", "service=registry.example.com&scope=repository:library/base:pull", ""},
		{"password-1-scope", "service=registry.example.com&scope=repository:alice/app:pull,push", "alice:secret"},
		{"password-3-scopes", "service=registry.example.com&scope=repository:alice/app:pull,push&scope=repository:alice/b:pull&scope=repository:library/base:pull", "alice:secret"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/auth?"+c.query, nil)
			req.RemoteAddr = "192.0.2.7:40000"
			if c.auth != "" {
				req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.auth)))
			}
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

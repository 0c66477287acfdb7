package token_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	regtoken "github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/token"
)

const refreshTTL = 30 * 24 * time.Hour

// hashes is an htpasswd table: user -> bcrypt hash.
type hashes map[string]string

func (h hashes) PasswordHash(user string) ([]byte, bool) {
	hash, ok := h[user]
	return []byte(hash), ok
}

// A made-up but well-formed bcrypt hash: the binding only reads the bytes.
const aliceHash = "$2y$10$abcdefghijklmnopqrstuuQ1bU8TGIbx6D8Mq0cCVgqIhTQ3vjjSe"

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }
func refreshCred(tok identity.Secret) identity.Credentials {
	return refreshCredFor(tok, testAudience, "docker")
}

func refreshCredFor(tok identity.Secret, service, clientID string) identity.Credentials {
	return identity.Credentials{Kind: identity.CredentialRefresh, Secret: tok, Service: service, ClientID: clientID}
}

func newRefresher(k *token.Key, pw token.PasswordHashes, c *clock) *token.Refresher {
	return &token.Refresher{Issuer: testIssuer, TTL: refreshTTL, Keys: keyRing(k), Passwords: pw, Now: c.Now}
}

func keyRing(k *token.Key, published ...*token.PublicKey) *token.KeyRing {
	set, err := token.NewKeySet(k, published...)
	if err != nil {
		panic(err)
	}
	return token.NewKeyRing(set)
}

// alice is htpasswd:alice as authn.Chain makes her: she owns alice/*.
var alice = identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice",
	Groups: []string{"ci"}}

// sourcehutID is sourcehut:bob, whose token expires at expires.
func sourcehutID(access string, expires time.Time) identity.Identity {
	return identity.Identity{Method: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: "bob", Namespace: "bob",
		Sourcehut: &identity.Sourcehut{
			Username: "bob", ClientID: "builds.sr.ht", Expires: expires.UTC().Truncate(time.Second), Access: access,
			Grants: []identity.Grant{
				{Service: testAudience, Scope: "REGISTRY", Access: access},
				{Service: "meta.sr.ht", Scope: "PROFILE", Access: "RO"},
			},
		}}
}

func issue(t *testing.T, r *token.Refresher, id identity.Identity) identity.Secret {
	t.Helper()
	tok, err := r.Issue(id, testAudience, "docker")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return tok
}

// wantRefused checks that a redemption failed as a 401 does, with a message
// that says why and does not carry the token.
func wantRefused(t *testing.T, tok identity.Secret, id identity.Identity, err error, why string) {
	t.Helper()
	if err == nil {
		t.Fatalf("redeemed as %+v, want a refusal (%s)", id, why)
	}
	if !errors.Is(err, identity.ErrUnauthenticated) {
		t.Errorf("error %v does not wrap ErrUnauthenticated", err)
	}
	if !strings.Contains(err.Error(), why) {
		t.Errorf("error %q does not say %q", err, why)
	}
	for part := range strings.SplitSeq(tok.Reveal(), ".") {
		if len(part) >= 8 && strings.Contains(err.Error(), part) {
			t.Errorf("error %q carries the token", err)
		}
	}
}

// decode returns the decoded header and claims of a compact JWS.
func decode(t testing.TB, raw string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	for i, v := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

// signAs signs claims with s under the given header fields: a token we
// did not issue but that carries our signature, to test each check past the
// signature on its own.
func signAs(t testing.TB, s crypto.Signer, alg jwa.SignatureAlgorithm, header, claims map[string]any) identity.Secret {
	t.Helper()
	h := jws.NewHeaders()
	for k, v := range header {
		if err := h.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, s, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return identity.Secret(signed)
}

func TestRefreshRoundTrip(t *testing.T) {
	for _, kt := range keyTypes {
		t.Run(string(kt.typ), func(t *testing.T) {
			c := newClock()
			key := newKey(t, signer(t, kt.typ, 0))
			r := newRefresher(key, hashes{"alice": aliceHash}, c)

			tok := issue(t, r, alice)
			header, claims := decode(t, tok.Reveal())
			wantHeader := map[string]any{"alg": kt.alg, "kid": key.ID(), "typ": "refresh+jwt"}
			if !reflect.DeepEqual(header, wantHeader) {
				t.Errorf("header = %v, want %v", header, wantHeader)
			}
			now := c.Now().Unix()
			for k, want := range map[string]any{
				"iss": testIssuer, "sub": "alice", "aud": testAudience + "#refresh", "token_use": "refresh",
				"service": testAudience, "method": "password", "provider": "htpasswd", "client_id": "docker",
				"iat": float64(now), "exp": float64(now + int64(refreshTTL/time.Second)),
			} {
				if claims[k] != want {
					t.Errorf("claim %s = %#v, want %#v", k, claims[k], want)
				}
			}
			// Groups and the namespace are the site's word at redemption,
			// not the token's.
			for _, absent := range []string{"access", "sourcehut", "nbf", "groups", "namespace"} {
				if _, ok := claims[absent]; ok {
					t.Errorf("claim %s present: %v", absent, claims)
				}
			}
			if jti, _ := claims["jti"].(string); len(jti) < 16 {
				t.Errorf("jti = %q, want a random string", jti)
			}
			binding, _ := claims["htpasswd_binding"].(string)
			if b, err := base64.RawURLEncoding.DecodeString(binding); err != nil || len(b) != 32 {
				t.Errorf("htpasswd_binding = %q, want a base64url HMAC-SHA256", binding)
			}
			// The payload is readable by the client: no part of the hash in it.
			if p := strings.Split(tok.Reveal(), ".")[1]; strings.Contains(string(mustDecode(t, p)), aliceHash[7:29]) {
				t.Error("the refresh token carries the bcrypt hash (or its salt)")
			}
			if other := issue(t, r, alice); other == tok {
				t.Error("two refresh tokens are identical: jti is not random")
			}

			c.Advance(refreshTTL - time.Second)
			id, err := r.Redeem(context.Background(), refreshCred(tok))
			if err != nil {
				t.Fatalf("Redeem: %v", err)
			}
			want := identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice"}
			if !reflect.DeepEqual(id, want) {
				t.Errorf("identity = %+v, want %+v (groups and namespace come from the config at redemption)", id, want)
			}
			if id.EffectiveMethod() != identity.MethodPassword {
				t.Errorf("EffectiveMethod() = %q", id.EffectiveMethod())
			}
			// Without a client_id the request is not held to one.
			if _, err := r.Redeem(context.Background(), refreshCredFor(tok, testAudience, "")); err != nil {
				t.Errorf("Redeem without client_id: %v", err)
			}

			c.Advance(time.Second)
			id, err = r.Redeem(context.Background(), refreshCred(tok))
			wantRefused(t, tok, id, err, "expired")
		})
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRefreshSourcehut(t *testing.T) {
	c := newClock()
	key := newKey(t, signer(t, token.KeyEC, 0))
	r := newRefresher(key, nil, c) // no password users: Sourcehut needs none

	// A personal token living a year: the refresh token lives TTL.
	year := sourcehutID("RW", c.Now().Add(365*24*time.Hour))
	_, claims := decode(t, issue(t, r, year).Reveal())
	if claims["exp"] != float64(c.Now().Add(refreshTTL).Unix()) {
		t.Errorf("exp = %v, want now + TTL", claims["exp"])
	}

	// A build token living 45 minutes: the refresh token dies with it.
	expires := c.Now().Add(45 * time.Minute)
	id := sourcehutID("RO", expires)
	tok := issue(t, r, id)
	_, claims = decode(t, tok.Reveal())
	if claims["exp"] != float64(expires.Unix()) {
		t.Errorf("exp = %v, want the Sourcehut token's expiry %d", claims["exp"], expires.Unix())
	}
	if _, ok := claims["htpasswd_binding"]; ok {
		t.Error("a Sourcehut refresh token carries a password binding")
	}
	if claims["provider"] != "sourcehut" {
		t.Errorf("claim provider = %#v, want \"sourcehut\"", claims["provider"])
	}
	got, err := r.Redeem(context.Background(), refreshCred(tok))
	if err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	want := identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodSourcehut, Provider: identity.ProviderSourcehut,
		Subject: "bob", Sourcehut: id.Sourcehut}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("identity = %+v %+v\nwant %+v %+v", got, got.Sourcehut, want, want.Sourcehut)
	}
	if got.Sourcehut.Access != "RO" {
		t.Errorf("access = %q: the read-only grant must survive the refresh", got.Sourcehut.Access)
	}

	// A personal access token (all grants) comes back as one.
	all := sourcehutID("RW", c.Now().Add(time.Hour))
	all.Sourcehut.AllGrants, all.Sourcehut.Grants = true, nil
	got, err = r.Redeem(context.Background(), refreshCred(issue(t, r, all)))
	if err != nil || !reflect.DeepEqual(got.Sourcehut, all.Sourcehut) {
		t.Errorf("all grants: %+v, %v; want %+v", got.Sourcehut, err, all.Sourcehut)
	}

	c.Advance(45 * time.Minute)
	got, err = r.Redeem(context.Background(), refreshCred(tok))
	wantRefused(t, tok, got, err, "expired")

	// An already expired Sourcehut token gets no refresh token.
	if _, err := r.Issue(sourcehutID("RW", c.Now()), testAudience, "docker"); err == nil {
		t.Error("a refresh token for an expired Sourcehut token")
	}
}

func TestRefreshIssueRefuses(t *testing.T) {
	c := newClock()
	r := newRefresher(newKey(t, signer(t, token.KeyEC, 0)), hashes{"alice": aliceHash}, c)
	htpasswd, sourcehut := identity.ProviderHtpasswd, identity.ProviderSourcehut
	shOfProvider := func(p string) identity.Identity {
		id := sourcehutID("RW", c.Now().Add(time.Hour))
		id.Provider = p
		return id
	}
	for name, id := range map[string]identity.Identity{
		"anonymous":                 identity.Anonymous,
		"a refresh token":           {Method: identity.MethodRefresh, RefreshedFrom: identity.MethodPassword, Provider: htpasswd, Subject: "alice"},
		"no subject":                {Method: identity.MethodPassword, Provider: htpasswd},
		"an unknown password user":  {Method: identity.MethodPassword, Provider: htpasswd, Subject: "mallory"},
		"Sourcehut without details": {Method: identity.MethodSourcehut, Provider: sourcehut, Subject: "bob"},
		// alice's htpasswd line must not bind a password login that
		// another provider vouched for.
		"password of sourcehut":      {Method: identity.MethodPassword, Provider: sourcehut, Subject: "alice", Namespace: "alice"},
		"password of another":        {Method: identity.MethodPassword, Provider: "ldap", Subject: "alice"},
		"password without provider":  {Method: identity.MethodPassword, Subject: "alice", Namespace: "alice"},
		"Sourcehut of htpasswd":      shOfProvider(htpasswd),
		"Sourcehut of another":       shOfProvider("ldap"),
		"Sourcehut without provider": shOfProvider(""),
	} {
		if tok, err := r.Issue(id, testAudience, "docker"); err == nil || tok != "" {
			t.Errorf("%s: Issue = %q, %v; want an error", name, tok, err)
		}
	}
	noPasswords := newRefresher(newKey(t, signer(t, token.KeyEC, 0)), nil, c)
	if _, err := noPasswords.Issue(alice, testAudience, "docker"); err == nil {
		t.Error("a password refresh token without password users")
	}
}

// TestRefreshBinding: a password user's refresh token stops working when the
// user's htpasswd line changes or goes, and only then.
func TestRefreshBinding(t *testing.T) {
	c := newClock()
	table := hashes{"alice": aliceHash, "carol": aliceHash}
	r := newRefresher(newKey(t, signer(t, token.KeyEC, 0)), table, c)
	tok := issue(t, r, alice)
	ctx := context.Background()

	// Another user's line changing does not matter.
	table["carol"] = "$2y$10$zzzzzzzzzzzzzzzzzzzzzuQ1bU8TGIbx6D8Mq0cCVgqIhTQ3vjjSe"
	if _, err := r.Redeem(ctx, refreshCred(tok)); err != nil {
		t.Fatalf("after carol's change: %v", err)
	}
	// A new password for alice (a new salt and hash).
	table["alice"] = "$2y$10$ABCDEFGHIJKLMNOPQRSTUuQ1bU8TGIbx6D8Mq0cCVgqIhTQ3vjjSe"
	id, err := r.Redeem(ctx, refreshCred(tok))
	wantRefused(t, tok, id, err, "password changed or the user was removed")
	// The old line back: the binding holds again (it is the line, not a
	// revocation list).
	table["alice"] = aliceHash
	if _, err := r.Redeem(ctx, refreshCred(tok)); err != nil {
		t.Fatalf("with the line restored: %v", err)
	}
	// Alice removed.
	delete(table, "alice")
	id, err = r.Redeem(ctx, refreshCred(tok))
	wantRefused(t, tok, id, err, "password changed or the user was removed")
	// Password login turned off since.
	r.Passwords = nil
	id, err = r.Redeem(ctx, refreshCred(tok))
	wantRefused(t, tok, id, err, "password login is not configured")

	// Another key's binding of the same line is different: the binding key
	// is the signing key's, and only its holder can compute it.
	table["alice"] = aliceHash
	r.Passwords = table
	other := newRefresher(newKey(t, signer(t, token.KeyEC, 1)), table, c)
	_, a := decode(t, tok.Reveal())
	_, b := decode(t, issue(t, other, alice).Reveal())
	if a["htpasswd_binding"] == b["htpasswd_binding"] {
		t.Error("two keys bind the same line to the same value")
	}
}

func TestRefreshRequestMismatch(t *testing.T) {
	c := newClock()
	r := newRefresher(newKey(t, signer(t, token.KeyEC, 0)), hashes{"alice": aliceHash}, c)
	tok := issue(t, r, alice)
	ctx := context.Background()
	id, err := r.Redeem(ctx, refreshCredFor(tok, "registry.example.org", "docker"))
	wantRefused(t, tok, id, err, "another service")
	// Another client_id is accepted: docker stores the token for every
	// tool that reads its config, and each refreshes under its own name.
	if id, err = r.Redeem(ctx, refreshCredFor(tok, testAudience, "skopeo")); err != nil || id.Method != identity.MethodRefresh {
		t.Fatalf("refresh under another client_id: %+v, %v", id, err)
	}
	r.Issuer = "someone-else"
	id, err = r.Redeem(ctx, refreshCred(tok))
	wantRefused(t, tok, id, err, "another issuer")
}

// TestRefreshTampered: any change to a refresh token, or a token we did not
// sign, is refused.
func TestRefreshTampered(t *testing.T) {
	for _, kt := range keyTypes {
		t.Run(string(kt.typ), func(t *testing.T) {
			c := newClock()
			s := signer(t, kt.typ, 0)
			key := newKey(t, s)
			r := newRefresher(key, hashes{"alice": aliceHash, "root": aliceHash}, c)
			tok := issue(t, r, alice).Reveal()
			parts := strings.Split(tok, ".")
			header, claims := decode(t, tok)
			reencode := func(v map[string]any) string {
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				return base64.RawURLEncoding.EncodeToString(b)
			}
			with := func(m map[string]any, k string, v any) map[string]any {
				out := maps.Clone(m)
				if v == nil {
					delete(out, k)
				} else {
					out[k] = v
				}
				return out
			}
			sig := mustDecode(t, parts[2])
			sig[len(sig)/2] ^= 1
			unsigned := parts[0] + "." + parts[1] + "."
			noneHeader := reencode(map[string]any{"alg": "none", "kid": key.ID(), "typ": "refresh+jwt"})
			hmacKey := []byte(key.ID())
			hsHeader := map[string]any{"kid": key.ID(), "typ": "refresh+jwt"}
			cases := []struct {
				name, token, why string
			}{
				{"empty", "", "missing"},
				{"garbage", "not-a-token", "malformed"},
				{"two parts", parts[0] + "." + parts[1], "malformed"},
				{"four parts", tok + ".x", "malformed"},
				{"oversized", strings.Repeat("a", 9000), "malformed"},
				{"flipped signature bit", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig), "bad signature"},
				{"no signature", unsigned, "bad signature"},
				{"another subject", parts[0] + "." + reencode(with(claims, "sub", "root")) + "." + parts[2], "bad signature"},
				{"another provider", parts[0] + "." + reencode(with(claims, "provider", "sourcehut")) + "." + parts[2], "bad signature"},
				{"no provider", parts[0] + "." + reencode(with(claims, "provider", nil)) + "." + parts[2], "bad signature"},
				{"a later expiry", parts[0] + "." + reencode(with(claims, "exp", claims["exp"].(float64)+1e6)) + "." + parts[2], "bad signature"},
				{"alg none", noneHeader + "." + parts[1] + ".", "bad signature"},
				{"alg of another family", reencode(with(header, "alg", "HS256")) + "." + parts[1] + "." + parts[2], "bad signature"},
				{"unknown kid", reencode(with(header, "kid", "nope")) + "." + parts[1] + "." + parts[2], "no longer publishes"},
				{"typ of an access token", reencode(with(header, "typ", "JWT")) + "." + parts[1] + "." + parts[2], "not a refresh token"},
				{"crit header", reencode(with(header, "crit", []string{"exp"})) + "." + parts[1] + "." + parts[2], "not a refresh token"},
				{"signed by another key under our kid", string(signAs(t, signer(t, kt.typ, 1), key.Algorithm(), header, claims)), "bad signature"},
				{"HMAC with the kid as secret", string(signAsHMAC(t, hmacKey, hsHeader, claims)), "bad signature"},
			}
			for _, tc := range cases {
				id, err := r.Redeem(context.Background(), refreshCred(identity.Secret(tc.token)))
				t.Run(tc.name, func(t *testing.T) { wantRefused(t, identity.Secret(tc.token), id, err, tc.why) })
			}
		})
	}
}

func signAsHMAC(t *testing.T, secret []byte, header, claims map[string]any) identity.Secret {
	t.Helper()
	h := jws.NewHeaders()
	for k, v := range header {
		if err := h.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jws.Sign(payload, jws.WithKey(jwa.HS256, secret, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return identity.Secret(signed)
}

// TestRefreshClaimChecks: tokens with our signature but claims we never
// issue (forged with the key, as a bug elsewhere might make them) are
// refused claim by claim.
func TestRefreshClaimChecks(t *testing.T) {
	c := newClock()
	s := signer(t, token.KeyEC, 0)
	key := newKey(t, s)
	r := newRefresher(key, hashes{"alice": aliceHash}, c)
	header, claims := decode(t, issue(t, r, alice).Reveal())
	_, shClaims := decode(t, issue(t, r, sourcehutID("RW", c.Now().Add(time.Hour))).Reveal())
	with := func(base map[string]any, kv ...any) map[string]any {
		out := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}
	// Re-signed unchanged, the claims pass: the cases below fail for their
	// change alone.
	if _, err := r.Redeem(context.Background(), refreshCred(signAs(t, s, key.Algorithm(), header, claims))); err != nil {
		t.Fatalf("re-signed token refused: %v", err)
	}
	cases := []struct {
		name   string
		claims map[string]any
		why    string
	}{
		{"audience of the registry", with(claims, "aud", testAudience), "not a refresh token"},
		{"audience as a list", with(claims, "aud", []string{testAudience + "#refresh"}), "malformed"},
		{"no token_use", with(claims, "token_use", nil), "not a refresh token"},
		{"token_use access", with(claims, "token_use", "access"), "not a refresh token"},
		{"service differs from audience", with(claims, "service", "registry.example.org"), "not a refresh token"},
		{"method refresh", with(claims, "method", "refresh"), "malformed"},
		{"method anonymous", with(claims, "method", "anonymous", "sub", ""), "malformed"},
		{"no subject", with(claims, "sub", ""), "malformed"},
		{"no jti", with(claims, "jti", nil), "malformed"},
		{"password without binding", with(claims, "htpasswd_binding", nil), "malformed"},
		{"password with a Sourcehut part", with(claims, "sourcehut", shClaims["sourcehut"]), "malformed"},
		{"Sourcehut without its part", with(shClaims, "sourcehut", nil), "malformed"},
		{"Sourcehut for another user", with(shClaims, "sub", "alice"), "malformed"},
		{"Sourcehut with a binding", with(shClaims, "htpasswd_binding", claims["htpasswd_binding"]), "malformed"},
		// The provider must be the one the method implies.
		{"password of sourcehut", with(claims, "provider", "sourcehut"), "malformed"},
		{"password of another provider", with(claims, "provider", "ldap"), "malformed"},
		{"password of HTPASSWD", with(claims, "provider", "HTPASSWD"), "malformed"},
		{"password with a non-string provider", with(claims, "provider", 1), "malformed"},
		{"Sourcehut of htpasswd", with(shClaims, "provider", "htpasswd"), "malformed"},
		{"Sourcehut of another provider", with(shClaims, "provider", "ldap"), "malformed"},
		{"method refresh, provider htpasswd", with(claims, "method", "refresh", "provider", "htpasswd"), "malformed"},
		{"Sourcehut token expired, refresh not", with(shClaims, "sourcehut", with(shClaims["sourcehut"].(map[string]any), "expires", float64(c.Now().Unix()))),
			"expired with its Sourcehut token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := signAs(t, s, key.Algorithm(), header, tc.claims)
			id, err := r.Redeem(context.Background(), refreshCred(tok))
			wantRefused(t, tok, id, err, tc.why)
		})
	}
}

// TestRefreshLegacyWithoutProvider: a refresh token issued before
// providers were named has no provider claim; it redeems with the provider
// its method implies (password logins were htpasswd's, token logins
// Sourcehut's), and otherwise exactly as a token that names it.
func TestRefreshLegacyWithoutProvider(t *testing.T) {
	c := newClock()
	s := signer(t, token.KeyEC, 0)
	key := newKey(t, s)
	r := newRefresher(key, hashes{"alice": aliceHash}, c)
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		id       identity.Identity
		provider string
	}{
		{"password", alice, identity.ProviderHtpasswd},
		{"sourcehut", sourcehutID("RO", c.Now().Add(time.Hour)), identity.ProviderSourcehut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			current := issue(t, r, tc.id)
			header, claims := decode(t, current.Reveal())
			if claims["provider"] != tc.provider {
				t.Fatalf("claim provider = %#v, want %q", claims["provider"], tc.provider)
			}
			withProvider, err := r.Redeem(ctx, refreshCred(current))
			if err != nil {
				t.Fatalf("Redeem: %v", err)
			}
			if withProvider.Provider != tc.provider {
				t.Errorf("Provider = %q, want %q", withProvider.Provider, tc.provider)
			}
			delete(claims, "provider")
			legacy := signAs(t, s, key.Algorithm(), header, claims)
			got, err := r.Redeem(ctx, refreshCred(legacy))
			if err != nil {
				t.Fatalf("a token without the provider claim is refused: %v", err)
			}
			if !reflect.DeepEqual(got, withProvider) {
				t.Errorf("legacy token = %+v\nwant      %+v", got, withProvider)
			}
			// Its other checks still hold: the password binding, expiry.
			if tc.id.Method == identity.MethodPassword {
				r.Passwords = hashes{"alice": "$2y$10$ABCDEFGHIJKLMNOPQRSTUuQ1bU8TGIbx6D8Mq0cCVgqIhTQ3vjjSe"}
				id, err := r.Redeem(ctx, refreshCred(legacy))
				wantRefused(t, legacy, id, err, "password changed or the user was removed")
				r.Passwords = hashes{"alice": aliceHash}
			}
		})
	}
	// A legacy token whose method implies no provider stays refused.
	header, claims := decode(t, issue(t, r, alice).Reveal())
	delete(claims, "provider")
	claims["method"] = "refresh"
	tok := signAs(t, s, key.Algorithm(), header, claims)
	id, err := r.Redeem(ctx, refreshCred(tok))
	wantRefused(t, tok, id, err, "malformed")
}

// TestAccessTokenIsNotARefreshToken: neither kind of token passes for the
// other, at our server or at a registry.
func TestAccessTokenIsNotARefreshToken(t *testing.T) {
	for _, kt := range keyTypes {
		t.Run(string(kt.typ), func(t *testing.T) {
			c := newClock()
			key := newKey(t, signer(t, kt.typ, 0))
			r := newRefresher(key, hashes{"alice": aliceHash}, c)
			m := &token.Minter{Issuer: testIssuer, TTL: testTTL, Key: key, Now: c.Now}
			access, _, _, err := m.Mint("alice", testAudience, sampleGrant)
			if err != nil {
				t.Fatal(err)
			}
			id, err := r.Redeem(context.Background(), refreshCred(identity.Secret(access)))
			wantRefused(t, identity.Secret(access), id, err, "not a refresh token")

			// The registry refuses a refresh token as an access token: its
			// audience is not the service, and it grants nothing anyway.
			refresh := issue(t, r, alice).Reveal()
			tok, err := regtoken.NewToken(refresh, []jose.SignatureAlgorithm{kt.jose})
			if err != nil {
				return // not even parsed: refused
			}
			claims, err := tok.Verify(regtoken.VerifyOptions{
				TrustedIssuers:    []string{testIssuer},
				AcceptedAudiences: []string{testAudience},
				TrustedKeys:       trustedKeys(t, key),
			})
			if err == nil {
				t.Errorf("the registry accepts a refresh token as an access token: %+v", claims)
			}
		})
	}
}

// pemForms are the encodings a key file may come in.
func pemForms(t *testing.T, s crypto.Signer) map[string][]byte {
	t.Helper()
	forms := map[string][]byte{"PKCS#8": privatePEM(t, s)}
	switch k := s.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		forms["SEC 1"] = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	case *rsa.PrivateKey:
		forms["PKCS#1"] = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	case ed25519.PrivateKey:
	}
	return forms
}

// TestRefreshAcrossReplicas: every process that loads the same key file, in
// any encoding, accepts the others' refresh tokens (the binding key is
// derived from the key, not made up per process).
func TestRefreshAcrossReplicas(t *testing.T) {
	for _, kt := range keyTypes {
		t.Run(string(kt.typ), func(t *testing.T) {
			c := newClock()
			table := hashes{"alice": aliceHash}
			s := signer(t, kt.typ, 0)
			var replicas []*token.Refresher
			for form, data := range pemForms(t, s) {
				k, err := token.ParseKey(data, nil)
				if err != nil {
					t.Fatalf("%s: %v", form, err)
				}
				replicas = append(replicas, newRefresher(k, table, c))
			}
			replicas = append(replicas, newRefresher(newKey(t, s), table, c))
			for i, a := range replicas {
				tok := issue(t, a, alice)
				for j, b := range replicas {
					if _, err := b.Redeem(context.Background(), refreshCred(tok)); err != nil {
						t.Errorf("issued by replica %d, refused by replica %d: %v", i, j, err)
					}
				}
			}
		})
	}
}

// TestRefreshKeyRotation: refresh tokens survive a rotation while the key
// that signed them is published; a password user's only while its private
// half is (the binding cannot be checked without it).
func TestRefreshKeyRotation(t *testing.T) {
	c := newClock()
	table := hashes{"alice": aliceHash}
	oldSigner := signer(t, token.KeyEC, 0)
	oldKey := newKey(t, oldSigner)
	newK := newKey(t, signer(t, token.KeyEC, 1))
	r := newRefresher(oldKey, table, c)
	pw := issue(t, r, alice)
	sh := issue(t, r, sourcehutID("RW", c.Now().Add(time.Hour)))
	ctx := context.Background()
	rotate := func(published ...*token.PublicKey) {
		set, err := token.NewKeySet(newK, published...)
		if err != nil {
			t.Fatal(err)
		}
		r.Keys.Swap(set)
	}

	// The documented rotation: the old key file listed in published_keys.
	rotate(parsePublic(t, privatePEM(t, oldSigner)))
	for name, tok := range map[string]identity.Secret{"password": pw, "sourcehut": sh} {
		if _, err := r.Redeem(ctx, refreshCred(tok)); err != nil {
			t.Errorf("%s token after rotation with the old private key published: %v", name, err)
		}
	}
	if h, _ := decode(t, issue(t, r, alice).Reveal()); h["kid"] != newK.ID() {
		t.Errorf("new refresh tokens are signed by %v, want the new key %s", h["kid"], newK.ID())
	}

	// Only the old public key published: Sourcehut tokens still verify,
	// password bindings cannot be checked.
	rotate(parsePublic(t, pkixPEM(t, oldSigner.Public())))
	if _, err := r.Redeem(ctx, refreshCred(sh)); err != nil {
		t.Errorf("sourcehut token with the old public key published: %v", err)
	}
	id, err := r.Redeem(ctx, refreshCred(pw))
	wantRefused(t, pw, id, err, "private half")

	// The old key retired: both are gone.
	rotate()
	for _, tok := range []identity.Secret{pw, sh} {
		id, err := r.Redeem(ctx, refreshCred(tok))
		wantRefused(t, tok, id, err, "no longer publishes")
	}
}

// TestRefreshTokenNeverPrinted: the token is a Secret: formatting it, as a
// log call or an error might, shows a placeholder.
func TestRefreshTokenNeverPrinted(t *testing.T) {
	r := newRefresher(newKey(t, signer(t, token.KeyEC, 0)), hashes{"alice": aliceHash}, newClock())
	tok := issue(t, r, alice)
	sig := tok.Reveal()[strings.LastIndex(tok.Reveal(), ".")+1:]
	for _, s := range []string{tok.String(), fmt.Sprintf("%v %+v %#v", tok, tok, tok), string(mustMarshal(t, tok))} {
		if strings.Contains(s, sig) {
			t.Errorf("the refresh token prints itself: %s", s)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzRefreshRedeem feeds Redeem arbitrary strings: it never panics, and
// whatever it accepts stands for the identity a real token was issued for
// (an ECDSA signature has two valid forms, so an accepted string need not
// be the issued one, but its claims are).
func FuzzRefreshRedeem(f *testing.F) {
	c := newClock()
	priv := mustGenerate(f)
	key, err := token.NewKey(priv, nil)
	if err != nil {
		f.Fatal(err)
	}
	r := &token.Refresher{Issuer: testIssuer, TTL: refreshTTL, Keys: keyRing(key), Passwords: hashes{"alice": aliceHash}, Now: c.Now}
	pw, err := r.Issue(alice, testAudience, "docker")
	if err != nil {
		f.Fatal(err)
	}
	sh, err := r.Issue(sourcehutID("RO", c.Now().Add(time.Hour)), testAudience, "docker")
	if err != nil {
		f.Fatal(err)
	}
	// What a token may stand for: subject, method and provider together.
	want := map[string]bool{"alice/password/htpasswd": true, "bob/sourcehut/sourcehut": true}
	seeds := []string{pw.Reveal(), sh.Reveal(), "", ".", "..", "a.b.c", pw.Reveal()[:40], strings.ReplaceAll(sh.Reveal(), "A", "B")}
	// Tokens from before providers were named, and ones whose provider
	// contradicts their method, with our signature.
	for _, tok := range []identity.Secret{pw, sh} {
		header, claims := decode(f, tok.Reveal())
		for _, p := range []any{nil, "htpasswd", "sourcehut", "ldap"} {
			cl := maps.Clone(claims)
			if p == nil {
				delete(cl, "provider")
			} else {
				cl["provider"] = p
			}
			seeds = append(seeds, signAs(f, priv, key.Algorithm(), header, cl).Reveal())
		}
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := r.Redeem(context.Background(), refreshCred(identity.Secret(s)))
		if err != nil {
			if !errors.Is(err, identity.ErrUnauthenticated) {
				t.Fatalf("error %v is not ErrUnauthenticated", err)
			}
			return
		}
		if id.Method != identity.MethodRefresh || !want[id.Subject+"/"+string(id.RefreshedFrom)+"/"+id.Provider] || id.Namespace != "" || id.Groups != nil {
			t.Fatalf("accepted %q as %+v", s, id)
		}
	})
}

func mustGenerate(f *testing.F) crypto.Signer {
	f.Helper()
	s, err := token.Generate(token.KeyEC)
	if err != nil {
		f.Fatal(err)
	}
	return s
}

package refresh_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/sirupsen/logrus"

	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/authn/refresh"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/token"
	"git.sr.ht/~zozs/srht-registry/internal/token/tokentest"
)

// The real implementations of what Tokens uses, and of what uses Tokens.
var (
	_ refresh.Keys           = (*token.KeyRing)(nil)
	_ refresh.Keys           = (*token.Key)(nil)
	_ refresh.PasswordHashes = (*authn.Htpasswd)(nil)
	_ authn.RefreshChecker   = (*refresh.Tokens)(nil)
)

// distribution logs every refused token through logrus; the refusals here
// are intended.
func init() { logrus.SetOutput(io.Discard) }

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
	return refreshCredFor(tok, tokentest.Audience, "docker")
}

func refreshCredFor(tok identity.Secret, service, clientID string) identity.Credentials {
	return identity.Credentials{Kind: identity.CredentialRefresh, Secret: tok, Service: service, ClientID: clientID}
}

func newRefresher(k *token.Key, pw refresh.PasswordHashes, c *clock) *refresh.Tokens {
	return &refresh.Tokens{Issuer: tokentest.Issuer, TTL: refreshTTL, Keys: keyRing(k), Passwords: pw, Now: c.Now}
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
				{Service: tokentest.Audience, Scope: "REGISTRY", Access: access},
				{Service: "meta.sr.ht", Scope: "PROFILE", Access: "RO"},
			},
		}}
}

func issue(t *testing.T, r *refresh.Tokens, id identity.Identity) identity.Secret {
	t.Helper()
	tok, err := r.Issue(id, tokentest.Audience, "docker", "")
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

// signAs signs claims under the given header fields with key: a
// crypto.Signer, or an HMAC secret ([]byte). Signed with our key, it is a
// token we did not issue but that carries our signature, to test each check
// past the signature on its own.
func signAs(t testing.TB, key any, alg jwa.SignatureAlgorithm, header, claims map[string]any) identity.Secret {
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
	signed, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return identity.Secret(signed)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pemForms are the encodings a key file may come in.
func pemForms(t *testing.T, s crypto.Signer) map[string][]byte {
	t.Helper()
	forms := map[string][]byte{"PKCS#8": tokentest.PrivatePEM(t, s)}
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

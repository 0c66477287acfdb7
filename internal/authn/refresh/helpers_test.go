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

	"github.com/go-jose/go-jose/v4"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/sirupsen/logrus"

	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/authn/refresh"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/token"
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

const (
	testIssuer   = "srht-registry-test"
	testAudience = "registry.example.com"
	testTTL      = 5 * time.Minute
)

var keyTypes = []struct {
	typ  token.KeyType
	alg  string
	jose jose.SignatureAlgorithm
}{
	{token.KeyEC, "ES256", jose.ES256},
	{token.KeyRSA, "RS256", jose.RS256},
	{token.KeyEd25519, "EdDSA", jose.EdDSA},
}

// keyCache holds one generated signer per type: RSA generation is slow and
// the tests only need distinct keys, not fresh ones per subtest.
var keyCache = map[token.KeyType][]crypto.Signer{}

// signer returns the i-th test key of type t, generating it on first use.
func signer(t *testing.T, typ token.KeyType, i int) crypto.Signer {
	t.Helper()
	for len(keyCache[typ]) <= i {
		s, err := token.Generate(typ)
		if err != nil {
			t.Fatalf("Generate(%s): %v", typ, err)
		}
		keyCache[typ] = append(keyCache[typ], s)
	}
	return keyCache[typ][i]
}

func newKey(t *testing.T, s crypto.Signer) *token.Key {
	t.Helper()
	k, err := token.NewKey(s, nil)
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	return k
}

func pkixPEM(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func privatePEM(t *testing.T, s crypto.Signer) []byte {
	t.Helper()
	p, err := token.EncodePrivateKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func parsePublic(t *testing.T, data []byte) *token.PublicKey {
	t.Helper()
	p, err := token.ParsePublicKey(data)
	if err != nil {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	return p
}

// trustedKeys builds the registry's TrustedKeys the way distribution does
// from a `jwks` file: every key of the set under its kid.
func trustedKeys(t *testing.T, keys ...*token.Key) map[string]crypto.PublicKey {
	t.Helper()
	raw, err := token.JWKS(keys...)
	if err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("go-jose cannot read our JWKS: %v\n%s", err, raw)
	}
	trusted := map[string]crypto.PublicKey{}
	for _, k := range set.Keys {
		trusted[k.KeyID] = k.Public().Key
	}
	return trusted
}

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

func newRefresher(k *token.Key, pw refresh.PasswordHashes, c *clock) *refresh.Tokens {
	return &refresh.Tokens{Issuer: testIssuer, TTL: refreshTTL, Keys: keyRing(k), Passwords: pw, Now: c.Now}
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

func issue(t *testing.T, r *refresh.Tokens, id identity.Identity) identity.Secret {
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

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
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

func mustGenerate(f *testing.F) crypto.Signer {
	f.Helper()
	s, err := token.Generate(token.KeyEC)
	if err != nil {
		f.Fatal(err)
	}
	return s
}

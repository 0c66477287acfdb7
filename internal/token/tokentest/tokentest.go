package tokentest

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/token"
)

// The issuer the tests mint as, the audience (the registry's service) they
// mint for, and the lifetime of the access tokens they mint.
const (
	Issuer   = "srht-registry-test"
	Audience = "registry.example.com"
	TTL      = 5 * time.Minute
)

// KeyTypeAlg is a type of signing key with the algorithm its keys sign
// with, as a JWS header names it (Alg) and as go-jose, and so distribution,
// does (JOSE).
type KeyTypeAlg struct {
	Type token.KeyType
	Alg  string
	JOSE jose.SignatureAlgorithm
}

// KeyTypes are the types of signing key the server supports, for the
// tests that run once per type.
var KeyTypes = []KeyTypeAlg{
	{token.KeyEC, "ES256", jose.ES256},
	{token.KeyRSA, "RS256", jose.RS256},
	{token.KeyEd25519, "EdDSA", jose.EdDSA},
}

// Grant is a grant of one scope of each shape a registry reads: a
// repository, a repository with a class, and the catalog.
var Grant = []access.Scope{
	{Resource: access.Resource{Type: "repository", Name: "alice/app"}, Actions: []string{"pull", "push"}},
	{Resource: access.Resource{Type: "repository", Class: "plugin", Name: "library/x"}, Actions: []string{"pull"}},
	{Resource: access.Resource{Type: "registry", Name: "catalog"}, Actions: []string{"*"}},
}

// signers holds the keys Signer generated, by type: RSA generation is slow
// and the tests only need distinct keys, not fresh ones per test.
var (
	signersMu sync.Mutex
	signers   = map[token.KeyType][]crypto.Signer{}
)

// Signer returns the i-th test key of type typ, generating it on first
// use. Every test of the binary that asks for (typ, i) gets the same key;
// keys of different i differ. Safe for parallel tests.
func Signer(t testing.TB, typ token.KeyType, i int) crypto.Signer {
	t.Helper()
	signersMu.Lock()
	defer signersMu.Unlock()
	for len(signers[typ]) <= i {
		s, err := token.Generate(typ)
		if err != nil {
			t.Fatalf("Generate(%s): %v", typ, err)
		}
		signers[typ] = append(signers[typ], s)
	}
	return signers[typ][i]
}

// NewKey is the signing key of s, with the certificate chain certs (none
// for a key that is only named by its kid).
func NewKey(t testing.TB, s crypto.Signer, certs ...*x509.Certificate) *token.Key {
	t.Helper()
	k, err := token.NewKey(s, certs)
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	return k
}

// Key is the signing key of Signer(t, typ, i), without a certificate.
func Key(t testing.TB, typ token.KeyType, i int) *token.Key {
	t.Helper()
	return NewKey(t, Signer(t, typ, i))
}

// PKIXPEM is the PEM "PUBLIC KEY" file (PKIX) of pub.
func PKIXPEM(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// PrivatePEM is the PKCS #8 key file of s, as the server writes it.
func PrivatePEM(t testing.TB, s crypto.Signer) []byte {
	t.Helper()
	p, err := token.EncodePrivateKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ParsePublic parses a published key's file.
func ParsePublic(t testing.TB, data []byte) *token.PublicKey {
	t.Helper()
	p, err := token.ParsePublicKey(data)
	if err != nil {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	return p
}

// TrustedKeys builds the registry's TrustedKeys the way distribution does
// from a `jwks` file: every key of the set under its kid. On the way it
// checks the set as go-jose reads it: the keys in order, each public, for
// signing, with its kid and algorithm.
func TrustedKeys(t testing.TB, keys ...*token.Key) map[string]crypto.PublicKey {
	t.Helper()
	raw, err := token.JWKS(keys...)
	if err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("go-jose cannot read our JWKS: %v\n%s", err, raw)
	}
	if len(set.Keys) != len(keys) {
		t.Fatalf("JWKS holds %d keys, want %d", len(set.Keys), len(keys))
	}
	trusted := map[string]crypto.PublicKey{}
	for i, k := range set.Keys {
		if k.KeyID != keys[i].ID() {
			t.Errorf("JWKS key %d kid = %q, want %q", i, k.KeyID, keys[i].ID())
		}
		if !k.IsPublic() {
			t.Errorf("JWKS key %d is not a public key", i)
		}
		if k.Use != "sig" {
			t.Errorf("JWKS key %d use = %q, want sig", i, k.Use)
		}
		if k.Algorithm != keys[i].Algorithm().String() {
			t.Errorf("JWKS key %d alg = %q, want %q", i, k.Algorithm, keys[i].Algorithm())
		}
		trusted[k.KeyID] = k.Public().Key
	}
	return trusted
}

// DecodeSegment decodes one segment of a compact JWS: base64url without
// padding.
func DecodeSegment(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

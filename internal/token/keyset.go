package token

import (
	"crypto"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// PublicKey is a verification key published beside the signing key: a
// previous signing key whose tokens are still valid, or the next one, so
// that a registry trusts it before it signs.
type PublicKey struct {
	public   jwk.Key // carries kid, alg and use
	alg      jwa.SignatureAlgorithm
	verifier jws.Verifier
	// bindingKey is the key's binding key (see deriveBindingKey), known
	// only when the file held the private key: then what this key bound
	// (a password user's refresh token) stays checkable after it stopped
	// signing. Nil for a public key or certificate.
	bindingKey []byte
}

// ID is the key ID: the RFC 7638 thumbprint, the same kid the key has
// while it signs.
func (p *PublicKey) ID() string { return p.public.KeyID() }

// Algorithm is the JWS algorithm the key verifies.
func (p *PublicKey) Algorithm() jwa.SignatureAlgorithm { return p.alg }

// newPublicKey makes the published JWK of a public key: kid (thumbprint),
// alg and use, like the public half of a Key.
func newPublicKey(pub crypto.PublicKey, kidFormat KeyIDFormat) (*PublicKey, error) {
	alg, err := algorithmForPublic(pub)
	if err != nil {
		return nil, err
	}
	public, err := jwk.FromRaw(pub)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	kid, err := keyID(public, pub, kidFormat)
	if err != nil {
		return nil, err
	}
	for name, value := range map[string]any{
		jwk.KeyIDKey:     kid,
		jwk.AlgorithmKey: alg,
		jwk.KeyUsageKey:  jwk.ForSignature,
	} {
		if err := public.Set(name, value); err != nil {
			return nil, err
		}
	}
	verifier, err := jws.NewVerifier(alg)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return &PublicKey{public: public, alg: alg, verifier: verifier}, nil
}

// ContainsPrivateKey reports whether PEM data holds a private key block, the
// kind of file only its owner may read.
func ContainsPrivateKey(pemData []byte) bool {
	for rest := pemData; len(rest) > 0; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return false
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			return true
		}
	}
	return false
}

// ParsePublicKey reads the public half of a key from PEM data holding a
// private key (PKCS#8, SEC 1 EC or PKCS#1 RSA), a public key (PKIX or
// PKCS#1 RSA) or a certificate (the first one: the leaf of a chain). A key
// block wins over a certificate in the same data. The key must be one this
// package could sign with: EC P-256, RSA of 2048 bits or more, Ed25519.
func ParsePublicKey(pemData []byte, opts ...KeyOption) (*PublicKey, error) {
	var keyBlock, certBlock *pem.Block
	for rest := pemData; len(rest) > 0 && keyBlock == nil; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case strings.HasSuffix(block.Type, "PRIVATE KEY") || strings.HasSuffix(block.Type, "PUBLIC KEY"):
			keyBlock = block
		case block.Type == "CERTIFICATE" && certBlock == nil:
			certBlock = block
		}
	}
	block := keyBlock
	if block == nil {
		block = certBlock
	}
	if block == nil {
		return nil, errors.New("no PEM private key, public key or certificate block found")
	}
	// The error text of a PEM or DER parser can quote input; say only what
	// failed.
	raw, _, err := jwk.DecodePEM(pem.EncodeToMemory(block))
	if err != nil {
		if block == certBlock {
			return nil, errors.New("certificate: cannot be parsed")
		}
		return nil, errors.New("key: not a PEM-encoded EC, RSA or Ed25519 private or public key")
	}
	pub := raw
	signer, isPrivate := raw.(crypto.Signer)
	if isPrivate {
		pub = signer.Public()
	}
	p, err := newPublicKey(pub, applyKeyOptions(opts).kid)
	if err != nil {
		return nil, err
	}
	if isPrivate {
		if p.bindingKey, err = deriveBindingKey(signer); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// KeySet is the signing key and the keys published beside it. It is
// immutable; a reload makes a new one and swaps it into a KeyRing.
type KeySet struct {
	signing   *Key
	published []*PublicKey
	jwks      []byte
}

// NewKeySet holds signing and the published keys. The JWK set lists the
// signing key first, then each published key once: one that is the signing
// key, or listed twice, is dropped by kid.
func NewKeySet(signing *Key, published ...*PublicKey) (*KeySet, error) {
	if signing == nil {
		return nil, errors.New("key set: no signing key")
	}
	s := &KeySet{signing: signing}
	seen := map[string]bool{signing.ID(): true}
	keys := []jwk.Key{signing.public}
	for _, p := range published {
		if seen[p.ID()] {
			continue
		}
		seen[p.ID()] = true
		s.published = append(s.published, p)
		keys = append(keys, p.public)
	}
	var err error
	if s.jwks, err = jwksOf(keys); err != nil {
		return nil, err
	}
	return s, nil
}

// Signing is the key that signs new tokens.
func (s *KeySet) Signing() *Key { return s.signing }

// Published are the keys published beside the signing key, without it and
// without duplicates.
func (s *KeySet) Published() []*PublicKey { return s.published }

// KeyIDs lists the kid of every key in the JWK set, the signing key first.
func (s *KeySet) KeyIDs() []string {
	ids := []string{s.signing.ID()}
	for _, p := range s.published {
		ids = append(ids, p.ID())
	}
	return ids
}

// verifier is KeyRing.Verifier over this set: the signing key and the
// published keys.
func (s *KeySet) verifier(kid, alg string) (verify func(signingInput, signature []byte) bool, bindingKey []byte, known bool) {
	if kid == "" {
		return nil, nil, false
	}
	if s.signing.ID() == kid {
		return verifierOf(s.signing.public, s.signing.alg, s.signing.verifier, alg), s.signing.bindingKey, true
	}
	for _, p := range s.published {
		if p.ID() == kid {
			return verifierOf(p.public, p.alg, p.verifier, alg), p.bindingKey, true
		}
	}
	return nil, nil, false
}

// JWKS is the public JWK set of every key, as served at
// /.well-known/jwks.json and written for a registry's `jwks` option.
func (s *KeySet) JWKS() []byte { return s.jwks }

// KeyRing holds the current KeySet. Readers take the set of the moment with
// one atomic load, so a reload swaps keys without a lock and without
// failing a request in flight: a token being signed with the previous key
// stays valid, since that key is published until it is retired.
type KeyRing struct {
	current atomic.Pointer[KeySet]
}

// NewKeyRing starts a ring with set.
func NewKeyRing(set *KeySet) *KeyRing {
	r := &KeyRing{}
	r.current.Store(set)
	return r
}

// Current is the set in use.
func (r *KeyRing) Current() *KeySet { return r.current.Load() }

// Swap makes set current and returns the previous one.
func (r *KeyRing) Swap(set *KeySet) *KeySet { return r.current.Swap(set) }

// JWKS is the current set's public JWK set.
func (r *KeyRing) JWKS() []byte { return r.Current().JWKS() }

func jwksOf(keys []jwk.Key) ([]byte, error) {
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k); err != nil {
			return nil, err
		}
	}
	return json.MarshalIndent(set, "", "  ")
}

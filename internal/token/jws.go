package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Besides registry tokens (Minter), the keys sign tokens that this server
// issues for itself to read back, such as refresh tokens: SignJWS makes one
// with the signing key of the moment, Verifier finds the published key that
// checks one. What such a token says (its typ, its claims) is its owner's
// business; this package signs and verifies bytes. Each key also has a
// binding key, a secret derived from its private half, with which a token
// can bind state kept outside it (a user's htpasswd line) so that the token
// stops verifying when that state changes.

// bindingInfo is the HKDF label of binding keys. It names the binding's
// first use; it must never change, or every binding made so far (every
// password user's refresh token) stops verifying.
const bindingInfo = "srht-registry refresh token htpasswd binding v1"

// deriveBindingKey derives a key's binding key: HKDF-SHA256 over the key's
// private scalar (EC), seed (Ed25519) or private exponent (RSA), with a
// fixed label. Whoever has the key file gets the same key, on every replica
// and after every restart; nobody without it can compute a binding.
func deriveBindingKey(signer crypto.Signer) ([]byte, error) {
	var secret []byte
	switch k := signer.(type) {
	case *ecdsa.PrivateKey:
		d, err := k.Bytes()
		if err != nil {
			return nil, fmt.Errorf("binding key: %w", err)
		}
		secret = append([]byte("ecdsa:"), d...)
	case ed25519.PrivateKey:
		secret = append([]byte("ed25519:"), k.Seed()...)
	case *rsa.PrivateKey:
		secret = append([]byte("rsa:"), k.D.Bytes()...)
	default:
		return nil, fmt.Errorf("binding key: unsupported key type %T", signer)
	}
	return hkdf.Key(sha256.New, secret, nil, bindingInfo, sha256.Size)
}

// SignJWS signs a JWS compact serialisation (RFC 7515 §7.1) with k. Its
// protected header holds k's alg and kid and the given typ, and no x5c: the
// token is for this server to read back, not for a registry. Its payload is
// what payload returns when handed k's binding key, so that whatever the
// payload binds is bound under the key that signs it. An error of payload
// is returned as it is.
func (k *Key) SignJWS(typ string, payload func(bindingKey []byte) ([]byte, error)) (string, error) {
	headerB64, err := encodeHeader(k.alg, k.ID(), typ, nil)
	if err != nil {
		return "", err
	}
	p, err := payload(k.bindingKey)
	if err != nil {
		return "", err
	}
	raw, err := k.signCompact(headerB64, p)
	if err != nil {
		return "", err
	}
	return string(raw), nil
}

// Verifier finds the key that checks a JWS whose protected header names kid
// and alg: k itself, if kid is its key ID. See KeyRing.Verifier.
func (k *Key) Verifier(kid, alg string) (verify func(signingInput, signature []byte) bool, bindingKey []byte, known bool) {
	return (&KeySet{signing: k}).verifier(kid, alg)
}

// SignJWS signs a JWS compact serialisation with the signing key of the
// moment; see Key.SignJWS.
func (r *KeyRing) SignJWS(typ string, payload func(bindingKey []byte) ([]byte, error)) (string, error) {
	return r.Current().Signing().SignJWS(typ, payload)
}

// Verifier finds, among the signing key and the keys published beside it at
// the moment, the key that checks a JWS whose protected header names kid and
// alg. known is false when none has that kid: the token was signed by a key
// no longer published (or never). verify checks a signature over the JWS
// signing input (its first two parts, "header.payload"); it is nil when alg
// is not the key's own algorithm, for the algorithm is the key's, never the
// token's choice. bindingKey is the key's binding key (see Key.SignJWS), nil
// when only the key's public half is known.
func (r *KeyRing) Verifier(kid, alg string) (verify func(signingInput, signature []byte) bool, bindingKey []byte, known bool) {
	return r.Current().verifier(kid, alg)
}

// verifierOf is the verify function of a key (public, of algorithm own) for
// a JWS that claims alg: nil unless alg is own.
func verifierOf(public jwk.Key, own jwa.SignatureAlgorithm, v jws.Verifier, alg string) func(signingInput, signature []byte) bool {
	if alg != own.String() {
		return nil
	}
	return func(signingInput, signature []byte) bool { return v.Verify(signingInput, signature, public) == nil }
}

package fakeoidc

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// MintOption changes the protected header of a minted token.
type MintOption func(*mintConfig)

type mintConfig struct {
	alg     jwa.SignatureAlgorithm // "" = the key's
	kid     *string                // nil = the key's; "" = no kid
	headers map[string]any
}

// HeaderAlg signs with alg (and says so in the header) instead of the
// key's own algorithm: PS256 with an RS256 key, say. The key must be able
// to sign with alg.
func HeaderAlg(alg string) MintOption {
	return func(c *mintConfig) { c.alg = jwa.SignatureAlgorithm(alg) }
}

// HeaderKid sets the header's kid; "" leaves it out.
func HeaderKid(kid string) MintOption {
	return func(c *mintConfig) { c.kid = &kid }
}

// Header sets a protected header parameter (typ, crit, jku, …); alg and
// kid have their own options.
func Header(name string, value any) MintOption {
	return func(c *mintConfig) {
		if c.headers == nil {
			c.headers = map[string]any{}
		}
		c.headers[name] = value
	}
}

// Mint returns a compact JWS of claims (marshalled with encoding/json;
// give times as Unix seconds) signed with the current key, with the
// header {"alg": <alg>, "kid": <kid>, "typ": "JWT"}. It panics if the
// claims do not marshal or the key cannot sign as asked.
func (s *Issuer) Mint(claims map[string]any, opts ...MintOption) string {
	s.mu.Lock()
	key := s.current()
	s.mu.Unlock()
	return mintWith(key.priv, key.alg, key.kid, claims, opts)
}

// MintWithKey signs claims with key (a crypto.Signer: *rsa.PrivateKey,
// *ecdsa.PrivateKey, ed25519.PrivateKey), not the issuer's, under the
// issuer's current kid and algorithm unless opts say otherwise: a forgery
// that names a key the verifier trusts.
func (s *Issuer) MintWithKey(key crypto.Signer, claims map[string]any, opts ...MintOption) string {
	s.mu.Lock()
	cur := s.current()
	s.mu.Unlock()
	return mintWith(key, cur.alg, cur.kid, claims, opts)
}

// MintForeign signs claims with a freshly generated key of the issuer's
// algorithm under the issuer's current kid.
func (s *Issuer) MintForeign(claims map[string]any, opts ...MintOption) string {
	priv, err := generate(s.alg)
	if err != nil {
		panic(fmt.Sprintf("fakeoidc: %v", err))
	}
	return s.MintWithKey(priv, claims, opts...)
}

// MintNone returns an unsigned token: header {"alg": "none", "kid": <the
// current kid>, "typ": "JWT"} and an empty signature ("h.p."), RFC 7519's
// unsecured JWT.
func (s *Issuer) MintNone(claims map[string]any, opts ...MintOption) string {
	h := s.forgedHeader("none", opts)
	return encodeSegment(h) + "." + encodeSegment(claims) + "."
}

// MintHMAC returns a token signed with HS256 keyed with secret, under the
// issuer's current kid.
func (s *Issuer) MintHMAC(claims map[string]any, secret []byte, opts ...MintOption) string {
	h := s.forgedHeader(string(jwa.HS256), opts)
	signingInput := encodeSegment(h) + "." + encodeSegment(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signingInput))
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// MintHMACWithPublicKey is the classic key-confusion forgery: HS256 keyed
// with the issuer's public key as PEM ([Issuer.PublicKeyPEM]), which a
// verifier that lets the token choose the algorithm would accept. For the
// DER or JWK forms, use [Issuer.MintHMAC] with [Issuer.PublicKeyDER] or
// [Issuer.JWKS].
func (s *Issuer) MintHMACWithPublicKey(claims map[string]any, opts ...MintOption) string {
	return s.MintHMAC(claims, s.PublicKeyPEM(), opts...)
}

func (s *Issuer) forgedHeader(alg string, opts []MintOption) map[string]any {
	var c mintConfig
	for _, o := range opts {
		o(&c)
	}
	h := map[string]any{"typ": "JWT"}
	for k, v := range c.headers {
		h[k] = v
	}
	h["alg"] = alg
	if c.alg != "" {
		h["alg"] = string(c.alg)
	}
	switch {
	case c.kid == nil:
		h["kid"] = s.KeyID()
	case *c.kid != "":
		h["kid"] = *c.kid
	}
	return h
}

func mintWith(priv crypto.Signer, alg jwa.SignatureAlgorithm, kid string, claims map[string]any, opts []MintOption) string {
	var c mintConfig
	for _, o := range opts {
		o(&c)
	}
	if c.alg != "" {
		alg = c.alg
	}
	if c.kid != nil {
		kid = *c.kid
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.TypeKey, "JWT"); err != nil {
		panic(fmt.Sprintf("fakeoidc: %v", err))
	}
	for name, v := range c.headers {
		if err := h.Set(name, v); err != nil {
			panic(fmt.Sprintf("fakeoidc: header %s: %v", name, err))
		}
	}
	if kid != "" {
		if err := h.Set(jws.KeyIDKey, kid); err != nil {
			panic(fmt.Sprintf("fakeoidc: %v", err))
		}
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(fmt.Sprintf("fakeoidc: claims: %v", err))
	}
	tok, err := jws.Sign(payload, jws.WithKey(alg, priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		panic(fmt.Sprintf("fakeoidc: sign: %v", err))
	}
	return string(tok)
}

func encodeSegment(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("fakeoidc: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

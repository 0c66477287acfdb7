package token

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"git.sr.ht/~zozs/srht-registry/internal/access"
)

// Minter signs registry bearer tokens.
type Minter struct {
	Issuer string
	TTL    time.Duration
	// Keys, when set, is where each Mint takes the signing key of the
	// moment, so a reload rotates it without a restart.
	Keys *KeyRing
	// Key is a fixed signing key, used when Keys is nil.
	Key *Key
	// Now is the clock; tests pass their own.
	Now func() time.Time
}

// claims is the registry token's claim set. A struct marshals in a fraction
// of the time a jwt.Token with a map of private claims takes, and the field
// order is fixed; jws signs the bytes.
type claims struct {
	Issuer     string         `json:"iss"`
	Subject    string         `json:"sub"`
	Audience   string         `json:"aud"` // one string: registry 2.8 cannot decode an array
	Expiration int64          `json:"exp"`
	NotBefore  int64          `json:"nbf"`
	IssuedAt   int64          `json:"iat"`
	JWTID      string         `json:"jti"`
	Access     []access.Scope `json:"access"`
}

// Mint signs a token for subject ("" for anonymous) valid at the registry
// whose service name is audience, carrying the granted access. Every call
// signs anew, with a fresh jti: tokens are never reused.
func (m *Minter) Mint(subject, audience string, granted []access.Scope) (access.Token, error) {
	now := m.Now().Truncate(time.Second)
	if granted == nil {
		// The registry wants a list, even an empty one.
		granted = []access.Scope{}
	}
	payload, err := json.Marshal(claims{
		Issuer:     m.Issuer,
		Subject:    subject,
		Audience:   audience,
		Expiration: now.Add(m.TTL).Unix(),
		NotBefore:  now.Unix(),
		IssuedAt:   now.Unix(),
		JWTID:      rand.Text(),
		Access:     granted,
	})
	if err != nil {
		return access.Token{}, fmt.Errorf("claims: %w", err)
	}
	// JWS compact serialisation: the key's fixed protected header, the
	// payload, and jwx's signature over both (RFC 7515 §7.1).
	k := m.Key
	if m.Keys != nil {
		k = m.Keys.Current().Signing()
	}
	raw, err := k.signCompact(k.headerB64, payload)
	if err != nil {
		return access.Token{}, fmt.Errorf("sign token: %w", err)
	}
	return access.Token{Signed: string(raw), IssuedAt: now, ExpiresIn: m.TTL}, nil
}

// JWKS returns the public JWK set of the given keys, as published at
// /.well-known/jwks.json and written for a registry's `jwks` option.
func JWKS(keys ...*Key) ([]byte, error) {
	public := make([]jwk.Key, len(keys))
	for i, k := range keys {
		public[i] = k.public
	}
	return jwksOf(public)
}

// signCompact is the JWS compact serialisation of payload under a protected
// header already encoded (RFC 7515 §7.1): header.payload.signature, the
// signature made by jwx's signer for the key's algorithm.
func (k *Key) signCompact(headerB64 string, payload []byte) ([]byte, error) {
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(headerB64)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(512))
	buf = append(buf, headerB64...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	sig, err := k.signer.Sign(buf, k.raw)
	if err != nil {
		return nil, err
	}
	buf = append(buf, '.')
	return enc.AppendEncode(buf, sig), nil
}

package token

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"git.sr.ht/~zozs/srht-registry/internal/access"
)

// Minter signs registry bearer tokens.
type Minter struct {
	Issuer string
	TTL    time.Duration
	Key    *Key
	// Now is the clock; tests pass their own.
	Now func() time.Time
}

// Mint signs a token for subject ("" for anonymous) valid at the registry
// whose service name is audience, carrying the granted access.
func (m *Minter) Mint(subject, audience string, granted []access.Scope) (signed string, issuedAt time.Time, expiresIn time.Duration, err error) {
	now := m.Now().Truncate(time.Second)
	if granted == nil {
		// The registry wants a list, even an empty one.
		granted = []access.Scope{}
	}
	tok := jwt.New()
	// registry 2.8 cannot decode an array aud: always send a single string.
	tok.Options().Enable(jwt.FlattenAudience)
	claims := map[string]any{
		jwt.IssuerKey:     m.Issuer,
		jwt.SubjectKey:    subject,
		jwt.AudienceKey:   audience,
		jwt.IssuedAtKey:   now,
		jwt.NotBeforeKey:  now,
		jwt.ExpirationKey: now.Add(m.TTL),
		jwt.JwtIDKey:      rand.Text(),
		"access":          granted,
	}
	for k, v := range claims {
		if err := tok.Set(k, v); err != nil {
			return "", time.Time{}, 0, fmt.Errorf("claim %s: %w", k, err)
		}
	}
	headers := jws.NewHeaders()
	if err := headers.Set(jws.TypeKey, "JWT"); err != nil {
		return "", time.Time{}, 0, err
	}
	if m.Key.chain != nil {
		if err := headers.Set(jws.X509CertChainKey, m.Key.chain); err != nil {
			return "", time.Time{}, 0, err
		}
	}
	raw, err := jwt.Sign(tok, jwt.WithKey(m.Key.alg, m.Key.private, jws.WithProtectedHeaders(headers)))
	if err != nil {
		return "", time.Time{}, 0, fmt.Errorf("sign token: %w", err)
	}
	return string(raw), now, m.TTL, nil
}

// JWKS returns the public JWK set of the given keys, as published at
// /.well-known/jwks.json and written for a registry's `jwks` option.
func JWKS(keys ...*Key) ([]byte, error) {
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k.public); err != nil {
			return nil, err
		}
	}
	return json.MarshalIndent(set, "", "  ")
}

package access

import "time"

// Token is a signed registry bearer token carrying granted access, as the
// token response hands it to the client: the compact JWS, the time it was
// issued (whole seconds, its iat) and how long it is valid from then.
type Token struct {
	// Signed is the JWS compact serialisation the registry verifies.
	Signed string
	// IssuedAt is when it was issued: its iat and nbf claims.
	IssuedAt time.Time
	// ExpiresIn is its lifetime: exp minus iat.
	ExpiresIn time.Duration
}

package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"
)

// tokenBody is the part of a /auth answer every 200 must have.
type tokenBody struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// parseTokenBody decodes a 200 body and checks that it carries a token,
// the same in token and access_token, with a positive lifetime.
func parseTokenBody(b []byte) (string, error) {
	var tb tokenBody
	if err := json.Unmarshal(b, &tb); err != nil {
		return "", errors.New("body is not JSON")
	}
	switch {
	case tb.Token == "":
		return "", errors.New("no token in body")
	case tb.AccessToken != tb.Token:
		return "", errors.New("access_token differs from token")
	case tb.ExpiresIn <= 0:
		return "", errors.New("no expires_in in body")
	case strings.Count(tb.Token, ".") != 2:
		return "", errors.New("token is not a compact JWS")
	}
	return tb.Token, nil
}

// tokenClaims are the claims the reuse check reads.
type tokenClaims struct {
	JTI string `json:"jti"`
	IAT int64  `json:"iat"`
}

// decodeClaims reads a compact JWS's payload without verifying it (the
// signature is the server's business; the benchmark checks freshness).
func decodeClaims(token string) (tokenClaims, error) {
	var c tokenClaims
	_, rest, ok := strings.Cut(token, ".")
	payload, _, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return c, errors.New("token is not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return c, errors.New("token payload is not base64url")
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, errors.New("token payload is not JSON")
	}
	return c, nil
}

// Problems the reuse checker reports; each is an error kind and a failure.
const (
	problemDupToken = "reused token"
	problemDupJTI   = "reused jti"
	problemNoJTI    = "token without jti"
	problemStaleIAT = "iat not within the request"
	problemClaims   = "undecodable claims"
)

// ReuseChecker remembers the first Limit tokens it is shown (a SHA-256 of
// each, and its jti) and reports any token or jti seen twice, a missing jti,
// and an iat outside the request's time. Tokens past Limit are not checked
// (memory stays bounded). It is safe for concurrent use.
type ReuseChecker struct {
	Limit int

	mu      sync.Mutex
	hashes  map[[sha256.Size]byte]struct{}
	jtis    map[string]struct{}
	checked int
}

// NewReuseChecker returns a checker of the first limit tokens.
func NewReuseChecker(limit int) *ReuseChecker {
	return &ReuseChecker{
		Limit:  limit,
		hashes: make(map[[sha256.Size]byte]struct{}, min(limit, 1<<16)),
		jtis:   make(map[string]struct{}, min(limit, 1<<16)),
	}
}

// Check checks a token received for a request sent at start and answered
// at end; it returns "" or the problem found.
func (c *ReuseChecker) Check(token string, start, end time.Time) string {
	c.mu.Lock()
	if c.checked >= c.Limit {
		c.mu.Unlock()
		return ""
	}
	c.checked++
	c.mu.Unlock()

	sum := sha256.Sum256([]byte(token))
	claims, err := decodeClaims(token)

	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.hashes[sum]; dup {
		return problemDupToken
	}
	c.hashes[sum] = struct{}{}
	switch {
	case err != nil:
		return problemClaims
	case claims.JTI == "":
		return problemNoJTI
	}
	if _, dup := c.jtis[claims.JTI]; dup {
		return problemDupJTI
	}
	c.jtis[claims.JTI] = struct{}{}
	// iat is whole seconds, truncated: it may be up to a second before
	// the request was sent, never after it was answered.
	if claims.IAT < start.Unix()-1 || claims.IAT > end.Unix()+1 {
		return problemStaleIAT
	}
	return ""
}

// Checked is how many tokens were checked.
func (c *ReuseChecker) Checked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checked
}

// isFailure reports whether an error kind means the server broke a rule
// (rather than being slow or refusing): such kinds fail the run.
func isFailure(kind string) bool {
	switch kind {
	case problemDupToken, problemDupJTI, problemNoJTI, problemStaleIAT, problemClaims, kindWrongAccepted:
		return true
	}
	return false
}

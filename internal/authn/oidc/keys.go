package oidc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// minRSABits is the smallest RSA key trusted.
const minRSABits = 2048

// verifyKey is one public key of the issuer, as it may verify a token.
type verifyKey struct {
	kid string
	alg string // the JWK's alg; "" when it names none
	pub crypto.PublicKey
}

// compatible reports whether the key may verify a token of alg: the
// algorithm's key type (and curve) and, when the JWK names an alg, that
// one.
func (k verifyKey) compatible(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve == elliptic.P256()
		case "ES384":
			return pub.Curve == elliptic.P384()
		case "ES512":
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// keySnapshot is the usable part of one fetched key set.
type keySnapshot struct {
	all     []verifyKey
	byKid   map[string][]verifyKey
	fetched time.Time
}

func (s *keySnapshot) len() int {
	if s == nil {
		return 0
	}
	return len(s.all)
}

// lookup returns the keys the token's kid names, or, for a token without
// a kid, the issuer's only key.
func (s *keySnapshot) lookup(u *unverified) []verifyKey {
	switch {
	case s == nil:
		return nil
	case u.hasKid:
		return s.byKid[u.kid]
	case len(s.all) == 1:
		return s.all
	default:
		return nil
	}
}

// usableKey turns a JWK into a verifyKey: a public (or the public part of
// a private) RSA key of at least 2048 bits, EC key on P-256, P-384 or
// P-521, or Ed25519 key, meant for signatures. Anything else (symmetric
// keys above all) is left out, with the reason.
func usableKey(k jwk.Key) (verifyKey, string) {
	if use := k.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return verifyKey{}, "not a signature key (use " + use + ")"
	}
	switch k.KeyType() {
	case jwa.RSA, jwa.EC, jwa.OKP:
	default:
		return verifyKey{}, "key type " + k.KeyType().String() + " is not for asymmetric signatures"
	}
	pk, err := k.PublicKey()
	if err != nil {
		return verifyKey{}, "no public key"
	}
	var raw any
	if err := pk.Raw(&raw); err != nil {
		return verifyKey{}, "the key does not decode"
	}
	switch pub := raw.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return verifyKey{}, fmt.Sprintf("RSA key of %d bits, fewer than %d", pub.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return verifyKey{}, "EC key on an unsupported curve"
		}
	case ed25519.PublicKey:
	default:
		return verifyKey{}, fmt.Sprintf("unsupported key (%T)", raw)
	}
	return verifyKey{kid: k.KeyID(), alg: k.Algorithm().String(), pub: raw}, ""
}

// postFetch takes a key set the cache fetched (on a token's demand or in
// the background): its usable keys become the ones tokens are verified
// with. A set without a usable key is an error, and the keys held stay.
func (a *Authenticator) postFetch(u string, set jwk.Set) (jwk.Set, error) {
	snap := &keySnapshot{byKid: map[string][]verifyKey{}, fetched: a.now()}
	var kids, leftOut []string
	for i := range set.Len() {
		k, _ := set.Key(i)
		vk, why := usableKey(k)
		if why != "" {
			leftOut = append(leftOut, fmt.Sprintf("kid %q: %s", k.KeyID(), why))
			continue
		}
		snap.all = append(snap.all, vk)
		snap.byKid[vk.kid] = append(snap.byKid[vk.kid], vk)
		kids = append(kids, vk.kid)
	}
	if len(snap.all) == 0 {
		return nil, fmt.Errorf("the key set at %s has no usable signing key (%s)", u, strings.Join(leftOut, "; "))
	}
	old := a.keys.Swap(snap)
	a.setFetchResult(nil)
	a.metrics.fetchOK.Inc()
	if old == nil || !sameKids(old, snap) {
		// Logged when the keys change, not at every refresh.
		a.log.Info("OIDC issuer keys loaded", "keys", len(snap.all), "kids", strings.Join(kids, " "))
		if len(leftOut) > 0 {
			a.log.Warn("OIDC issuer keys left out", "keys", strings.Join(leftOut, "; "))
		}
	}
	return set, nil
}

func sameKids(a, b *keySnapshot) bool {
	if len(a.all) != len(b.all) {
		return false
	}
	for i := range a.all {
		if a.all[i].kid != b.all[i].kid {
			return false
		}
	}
	return true
}

func (a *Authenticator) setFetchResult(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastErr = err
}

// errSink takes the failures of the cache's background refreshes; the
// keys held stay in use.
type errSink struct{ a *Authenticator }

func (s errSink) Error(err error) {
	s.a.setFetchResult(err)
	s.a.metrics.fetchError.Inc()
	s.a.log.Warn("OIDC issuer keys could not be refreshed; the keys held stay in use", "error", err)
}

// refetch fetches the keys for a token whose kid is not among those in
// seen (the snapshot it looked in), unless they changed since, or a fetch
// was made less than RefetchInterval ago (5 s after a failed one): then
// it returns the keys held, or, when that last fetch failed, an error
// wrapping identity.ErrUnavailable. One fetch runs at a time; concurrent
// callers wait for it and use its result.
func (a *Authenticator) refetch(ctx context.Context, seen *keySnapshot) (*keySnapshot, error) {
	select {
	case a.fetching <- struct{}{}:
	case <-ctx.Done():
		return nil, a.unavailable(ctx.Err())
	case <-a.ctx.Done():
		return nil, a.unavailable(errors.New("the authenticator is closed"))
	}
	defer func() { <-a.fetching }()
	if cur := a.keys.Load(); cur != seen {
		return cur, nil
	}
	now := a.now()
	a.mu.Lock()
	last, lastErr := a.lastAttempt, a.lastErr
	a.mu.Unlock()
	gap := a.refetchInterval
	if lastErr != nil {
		gap = min(gap, failedRetryInterval)
	}
	if since := now.Sub(last); !last.IsZero() && since >= 0 && since < gap {
		a.metrics.rateLimited.Inc()
		switch {
		case lastErr != nil:
			return nil, a.unavailable(lastErr)
		case seen == nil:
			return nil, a.unavailable(errors.New("no key set fetched yet"))
		}
		return seen, nil
	}
	a.mu.Lock()
	a.lastAttempt = now
	a.mu.Unlock()
	if err := a.fetch(ctx); err != nil {
		a.setFetchResult(err)
		a.metrics.fetchError.Inc()
		a.log.Warn("OIDC issuer keys could not be fetched", "error", err)
		return nil, a.unavailable(err)
	}
	return a.keys.Load(), nil
}

// initialFetch fetches the keys at start. Unlike a fetch for a token's
// unknown kid, a successful one does not start the rate limit's interval:
// a key the issuer rotates in just after the server started is picked up
// by the first token that uses it. A failed one does (5 s), as any failed
// fetch.
func (a *Authenticator) initialFetch() error {
	select {
	case a.fetching <- struct{}{}:
	case <-a.ctx.Done():
		return a.ctx.Err()
	}
	defer func() { <-a.fetching }()
	if err := a.fetch(a.ctx); err != nil {
		a.mu.Lock()
		a.lastAttempt = a.now()
		a.mu.Unlock()
		a.setFetchResult(err)
		a.metrics.fetchError.Inc()
		return err
	}
	return nil
}

// fetch discovers the key set's URL if need be, and has the cache fetch
// the key set anew (postFetch takes it). It runs detached from ctx's
// cancellation, so that a client giving up does not waste the fetch that
// others wait for, but ends at Close, and after the fetch timeout.
func (a *Authenticator) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*a.fetchTimeout)
	defer cancel()
	stop := context.AfterFunc(a.ctx, cancel)
	defer stop()
	u, err := a.keySetURL(ctx)
	if err != nil {
		return err
	}
	if _, err := a.cache.Refresh(ctx, u); err != nil {
		return err
	}
	return nil
}

// keySetURL is the configured or discovered key set URL, registered with
// the cache.
func (a *Authenticator) keySetURL(ctx context.Context) (string, error) {
	a.mu.Lock()
	u := a.jwksURL
	a.mu.Unlock()
	if u != "" {
		return u, nil
	}
	u, err := a.discover(ctx)
	if err != nil {
		return "", err
	}
	if err := a.register(u); err != nil {
		return "", err
	}
	return u, nil
}

// register hands the key set URL to the cache, which refreshes it in the
// background from its first fetch on.
func (a *Authenticator) register(u string) error {
	err := a.cache.Register(u,
		jwk.WithHTTPClient(a.client),
		jwk.WithMinRefreshInterval(a.refreshInterval),
		jwk.WithPostFetcher(jwk.PostFetchFunc(a.postFetch)))
	if err != nil {
		return fmt.Errorf("key set %s: %w", u, err)
	}
	a.mu.Lock()
	a.jwksURL = u
	a.mu.Unlock()
	return nil
}

// discover reads the issuer's discovery document: its issuer must be the
// configured one exactly (OpenID Connect Discovery 1.0, 4.3), and its
// jwks_uri https (or on loopback).
func (a *Authenticator) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(a.issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discovery document %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("discovery document %s: %w", u, err)
	}
	var doc struct {
		Issuer  *string `json:"issuer"`
		JWKSURI *string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery document %s is not a JSON object with string issuer and jwks_uri", u)
	}
	switch {
	case doc.Issuer == nil:
		return "", fmt.Errorf("discovery document %s names no issuer", u)
	case *doc.Issuer != a.issuer:
		return "", fmt.Errorf("discovery document %s names the issuer %q, not %q", u, truncate(*doc.Issuer), a.issuer)
	case doc.JWKSURI == nil || *doc.JWKSURI == "":
		return "", fmt.Errorf("discovery document %s names no jwks_uri", u)
	}
	if err := CheckURL(*doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery document %s: jwks_uri %w", u, err)
	}
	return *doc.JWKSURI, nil
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// newClient is base (or a default client) with a timeout if it has none,
// responses limited to maxDocumentSize, and redirects that must stay on
// https (or loopback).
func newClient(base *http.Client, timeout time.Duration) *http.Client {
	c := &http.Client{}
	if base != nil {
		*c = *base
	}
	if c.Timeout == 0 {
		c.Timeout = timeout
	}
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = limitTransport{base: rt, limit: maxDocumentSize}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := CheckURL(req.URL.String()); err != nil {
			return fmt.Errorf("redirect refused: %w", err)
		}
		if len(via) >= 5 {
			return errors.New("more than 5 redirects")
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return c
}

// limitTransport fails the reading of a response body longer than limit.
type limitTransport struct {
	base  http.RoundTripper
	limit int64
}

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.limit}
	return resp, nil
}

var errTooLong = fmt.Errorf("response longer than %d bytes", maxDocumentSize)

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, err := b.rc.Read(one[:]); n > 0 {
			return 0, errTooLong
		} else if err != nil {
			return 0, err
		}
		return 0, nil
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

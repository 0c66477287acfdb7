package oidc

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// ErrNotIDToken is returned by Set.Authenticate for a string that is not
// an ID token of a configured issuer: not a JWT, or one whose iss is no
// configured issuer. The caller may try it as something else (a Sourcehut
// token, a password); no network call was made for it.
var ErrNotIDToken = errors.New("not an ID token of a configured OIDC issuer")

// Set holds the authenticators of the configured issuers, and picks the
// one a token is for by its iss. A nil *Set holds none.
type Set struct {
	list     []*Authenticator
	byIssuer map[string]*Authenticator
}

// NewSet returns the set of auths. Two authenticators may share neither an
// issuer (a token names one issuer, so it could not be told which) nor a
// name.
func NewSet(auths ...*Authenticator) (*Set, error) {
	s := &Set{byIssuer: map[string]*Authenticator{}}
	names := map[string]bool{}
	for _, a := range auths {
		if a == nil {
			return nil, errors.New("oidc: nil authenticator")
		}
		if _, dup := s.byIssuer[a.issuer]; dup {
			return nil, fmt.Errorf("oidc: two providers have the issuer %s", a.issuer)
		}
		if names[a.name] {
			return nil, fmt.Errorf("oidc: two providers are named %s", a.name)
		}
		names[a.name] = true
		s.byIssuer[a.issuer] = a
		s.list = append(s.list, a)
	}
	return s, nil
}

// Find returns the authenticator of the issuer that token names, without
// network and with bounded work; false when token is not a JWT or names no
// configured issuer.
func (s *Set) Find(token string) (*Authenticator, bool) {
	if s == nil || len(s.byIssuer) == 0 {
		return nil, false
	}
	u, err := parseUnverified(token)
	if err != nil {
		return nil, false
	}
	a, ok := s.byIssuer[u.iss]
	return a, ok
}

// Recognize reports, without any network call, whether token is an ID
// token of one of the set's issuers (authn.IDTokenChecker).
func (s *Set) Recognize(token string) bool {
	_, ok := s.Find(token)
	return ok
}

// Authenticate verifies token with the authenticator of its issuer. A
// token that is no ID token of a configured issuer gives ErrNotIDToken
// (and costs nothing); otherwise see Authenticator.Authenticate.
func (s *Set) Authenticate(ctx context.Context, token identity.Secret) (identity.Identity, error) {
	a, ok := s.Find(token.Reveal())
	if !ok {
		return identity.Identity{}, ErrNotIDToken
	}
	return a.Authenticate(ctx, token)
}

// Authenticators are the set's authenticators, in the order given.
func (s *Set) Authenticators() []*Authenticator {
	if s == nil {
		return nil
	}
	return append([]*Authenticator(nil), s.list...)
}

// Collectors returns the metrics of every authenticator.
func (s *Set) Collectors() []prometheus.Collector {
	var cs []prometheus.Collector
	for _, a := range s.Authenticators() {
		cs = append(cs, a.Collectors()...)
	}
	return cs
}

// Close closes every authenticator.
func (s *Set) Close() {
	for _, a := range s.Authenticators() {
		a.Close()
	}
}

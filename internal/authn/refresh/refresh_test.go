package refresh_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/token"
	"git.sr.ht/~zozs/srht-registry/internal/token/tokentest"
)

func TestRefreshRoundTrip(t *testing.T) {
	for _, kt := range tokentest.KeyTypes {
		t.Run(string(kt.Type), func(t *testing.T) {
			c := newClock()
			key := tokentest.Key(t, kt.Type, 0)
			r := newRefresher(key, hashes{"alice": aliceHash}, c)

			tok := issue(t, r, alice)
			header, claims := decode(t, tok.Reveal())
			wantHeader := map[string]any{"alg": kt.Alg, "kid": key.ID(), "typ": "refresh+jwt"}
			if !reflect.DeepEqual(header, wantHeader) {
				t.Errorf("header = %v, want %v", header, wantHeader)
			}
			now := c.Now().Unix()
			for k, want := range map[string]any{
				"iss": tokentest.Issuer, "sub": "alice", "aud": tokentest.Audience + "#refresh", "token_use": "refresh",
				"service": tokentest.Audience, "method": "password", "provider": "htpasswd", "client_id": "docker",
				"iat": float64(now), "exp": float64(now + int64(refreshTTL/time.Second)),
			} {
				if claims[k] != want {
					t.Errorf("claim %s = %#v, want %#v", k, claims[k], want)
				}
			}
			// Groups and the namespace are the site's word at redemption,
			// not the token's.
			for _, absent := range []string{"access", "sourcehut", "nbf", "groups", "namespace"} {
				if _, ok := claims[absent]; ok {
					t.Errorf("claim %s present: %v", absent, claims)
				}
			}
			if jti, _ := claims["jti"].(string); len(jti) < 16 {
				t.Errorf("jti = %q, want a random string", jti)
			}
			binding, _ := claims["htpasswd_binding"].(string)
			if b, err := base64.RawURLEncoding.DecodeString(binding); err != nil || len(b) != 32 {
				t.Errorf("htpasswd_binding = %q, want a base64url HMAC-SHA256", binding)
			}
			// The payload is readable by the client: no part of the hash in it.
			if p := strings.Split(tok.Reveal(), ".")[1]; strings.Contains(string(tokentest.DecodeSegment(t, p)), aliceHash[7:29]) {
				t.Error("the refresh token carries the bcrypt hash (or its salt)")
			}
			if other := issue(t, r, alice); other == tok {
				t.Error("two refresh tokens are identical: jti is not random")
			}

			c.Advance(refreshTTL - time.Second)
			id, err := r.Redeem(context.Background(), refreshCred(tok))
			if err != nil {
				t.Fatalf("Redeem: %v", err)
			}
			want := identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice"}
			if !reflect.DeepEqual(id, want) {
				t.Errorf("identity = %+v, want %+v (groups and namespace come from the config at redemption)", id, want)
			}
			if id.EffectiveMethod() != identity.MethodPassword {
				t.Errorf("EffectiveMethod() = %q", id.EffectiveMethod())
			}
			// Without a client_id the request is not held to one.
			if _, err := r.Redeem(context.Background(), refreshCredFor(tok, tokentest.Audience, "")); err != nil {
				t.Errorf("Redeem without client_id: %v", err)
			}

			c.Advance(time.Second)
			id, err = r.Redeem(context.Background(), refreshCred(tok))
			wantRefused(t, tok, id, err, "expired")
		})
	}
}

func TestRefreshSourcehut(t *testing.T) {
	c := newClock()
	key := tokentest.Key(t, token.KeyEC, 0)
	r := newRefresher(key, nil, c) // no password users: Sourcehut needs none

	// A personal token living a year: the refresh token lives TTL.
	year := sourcehutID("RW", c.Now().Add(365*24*time.Hour))
	_, claims := decode(t, issue(t, r, year).Reveal())
	if claims["exp"] != float64(c.Now().Add(refreshTTL).Unix()) {
		t.Errorf("exp = %v, want now + TTL", claims["exp"])
	}

	// A build token living 45 minutes: the refresh token dies with it.
	expires := c.Now().Add(45 * time.Minute)
	id := sourcehutID("RO", expires)
	tok := issue(t, r, id)
	_, claims = decode(t, tok.Reveal())
	if claims["exp"] != float64(expires.Unix()) {
		t.Errorf("exp = %v, want the Sourcehut token's expiry %d", claims["exp"], expires.Unix())
	}
	if _, ok := claims["htpasswd_binding"]; ok {
		t.Error("a Sourcehut refresh token carries a password binding")
	}
	if claims["provider"] != "sourcehut" {
		t.Errorf("claim provider = %#v, want \"sourcehut\"", claims["provider"])
	}
	got, err := r.Redeem(context.Background(), refreshCred(tok))
	if err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	want := identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodSourcehut, Provider: identity.ProviderSourcehut,
		Subject: "bob", Sourcehut: id.Sourcehut}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("identity = %+v %+v\nwant %+v %+v", got, got.Sourcehut, want, want.Sourcehut)
	}
	if got.Sourcehut.Access != "RO" {
		t.Errorf("access = %q: the read-only grant must survive the refresh", got.Sourcehut.Access)
	}

	// A personal access token (all grants) comes back as one.
	all := sourcehutID("RW", c.Now().Add(time.Hour))
	all.Sourcehut.AllGrants, all.Sourcehut.Grants = true, nil
	got, err = r.Redeem(context.Background(), refreshCred(issue(t, r, all)))
	if err != nil || !reflect.DeepEqual(got.Sourcehut, all.Sourcehut) {
		t.Errorf("all grants: %+v, %v; want %+v", got.Sourcehut, err, all.Sourcehut)
	}

	c.Advance(45 * time.Minute)
	got, err = r.Redeem(context.Background(), refreshCred(tok))
	wantRefused(t, tok, got, err, "expired")

	// An already expired Sourcehut token gets no refresh token.
	if _, err := r.Issue(sourcehutID("RW", c.Now()), tokentest.Audience, "docker", ""); err == nil {
		t.Error("a refresh token for an expired Sourcehut token")
	}
}

func TestRefreshIssueRefuses(t *testing.T) {
	c := newClock()
	r := newRefresher(tokentest.Key(t, token.KeyEC, 0), hashes{"alice": aliceHash}, c)
	htpasswd, sourcehut := identity.ProviderHtpasswd, identity.ProviderSourcehut
	shOfProvider := func(p string) identity.Identity {
		id := sourcehutID("RW", c.Now().Add(time.Hour))
		id.Provider = p
		return id
	}
	for name, id := range map[string]identity.Identity{
		"anonymous":                 identity.Anonymous,
		"a refresh token":           {Method: identity.MethodRefresh, RefreshedFrom: identity.MethodPassword, Provider: htpasswd, Subject: "alice"},
		"no subject":                {Method: identity.MethodPassword, Provider: htpasswd},
		"an unknown password user":  {Method: identity.MethodPassword, Provider: htpasswd, Subject: "mallory"},
		"Sourcehut without details": {Method: identity.MethodSourcehut, Provider: sourcehut, Subject: "bob"},
		// alice's htpasswd line must not bind a password login that
		// another provider vouched for.
		"password of sourcehut":      {Method: identity.MethodPassword, Provider: sourcehut, Subject: "alice", Namespace: "alice"},
		"password of another":        {Method: identity.MethodPassword, Provider: "ldap", Subject: "alice"},
		"password without provider":  {Method: identity.MethodPassword, Subject: "alice", Namespace: "alice"},
		"Sourcehut of htpasswd":      shOfProvider(htpasswd),
		"Sourcehut of another":       shOfProvider("ldap"),
		"Sourcehut without provider": shOfProvider(""),
	} {
		if tok, err := r.Issue(id, tokentest.Audience, "docker", ""); err == nil || tok != "" {
			t.Errorf("%s: Issue = %q, %v; want an error", name, tok, err)
		}
	}
	noPasswords := newRefresher(tokentest.Key(t, token.KeyEC, 0), nil, c)
	if _, err := noPasswords.Issue(alice, tokentest.Audience, "docker", ""); err == nil {
		t.Error("a password refresh token without password users")
	}
}

// TestRefreshBinding: a password user's refresh token stops working when the
// user's htpasswd line changes or goes, and only then.
func TestRefreshBinding(t *testing.T) {
	c := newClock()
	table := hashes{"alice": aliceHash, "carol": aliceHash}
	r := newRefresher(tokentest.Key(t, token.KeyEC, 0), table, c)
	tok := issue(t, r, alice)
	ctx := context.Background()

	// Another user's line changing does not matter.
	table["carol"] = "$2y$10$zzzzzzzzzzzzzzzzzzzzzuQ1bU8TGIbx6D8Mq0cCVgqIhTQ3vjjSe"
	if _, err := r.Redeem(ctx, refreshCred(tok)); err != nil {
		t.Fatalf("after carol's change: %v", err)
	}
	// A new password for alice (a new salt and hash).
	table["alice"] = "$2y$10$ABCDEFGHIJKLMNOPQRSTUuQ1bU8TGIbx6D8Mq0cCVgqIhTQ3vjjSe"
	id, err := r.Redeem(ctx, refreshCred(tok))
	wantRefused(t, tok, id, err, "password changed or the user was removed")
	// The old line back: the binding holds again (it is the line, not a
	// revocation list).
	table["alice"] = aliceHash
	if _, err := r.Redeem(ctx, refreshCred(tok)); err != nil {
		t.Fatalf("with the line restored: %v", err)
	}
	// Alice removed.
	delete(table, "alice")
	id, err = r.Redeem(ctx, refreshCred(tok))
	wantRefused(t, tok, id, err, "password changed or the user was removed")
	// Password login turned off since.
	r.Passwords = nil
	id, err = r.Redeem(ctx, refreshCred(tok))
	wantRefused(t, tok, id, err, "password login is not configured")

	// Another key's binding of the same line is different: the binding key
	// is the signing key's, and only its holder can compute it.
	table["alice"] = aliceHash
	r.Passwords = table
	other := newRefresher(tokentest.Key(t, token.KeyEC, 1), table, c)
	_, a := decode(t, tok.Reveal())
	_, b := decode(t, issue(t, other, alice).Reveal())
	if a["htpasswd_binding"] == b["htpasswd_binding"] {
		t.Error("two keys bind the same line to the same value")
	}
}

func TestRefreshRequestMismatch(t *testing.T) {
	c := newClock()
	r := newRefresher(tokentest.Key(t, token.KeyEC, 0), hashes{"alice": aliceHash}, c)
	tok := issue(t, r, alice)
	ctx := context.Background()
	id, err := r.Redeem(ctx, refreshCredFor(tok, "registry.example.org", "docker"))
	wantRefused(t, tok, id, err, "another service")
	// Another client_id is accepted: docker stores the token for every
	// tool that reads its config, and each refreshes under its own name.
	if id, err = r.Redeem(ctx, refreshCredFor(tok, tokentest.Audience, "skopeo")); err != nil || id.Method != identity.MethodRefresh {
		t.Fatalf("refresh under another client_id: %+v, %v", id, err)
	}
	r.Issuer = "someone-else"
	id, err = r.Redeem(ctx, refreshCred(tok))
	wantRefused(t, tok, id, err, "another issuer")
}

// TestRefreshLegacyWithoutProvider: a refresh token issued before
// providers were named has no provider claim; it redeems with the provider
// its method implies (password logins were htpasswd's, token logins
// Sourcehut's), and otherwise exactly as a token that names it.
func TestRefreshLegacyWithoutProvider(t *testing.T) {
	c := newClock()
	s := tokentest.Signer(t, token.KeyEC, 0)
	key := tokentest.NewKey(t, s)
	r := newRefresher(key, hashes{"alice": aliceHash}, c)
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		id       identity.Identity
		provider string
	}{
		{"password", alice, identity.ProviderHtpasswd},
		{"sourcehut", sourcehutID("RO", c.Now().Add(time.Hour)), identity.ProviderSourcehut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			current := issue(t, r, tc.id)
			header, claims := decode(t, current.Reveal())
			if claims["provider"] != tc.provider {
				t.Fatalf("claim provider = %#v, want %q", claims["provider"], tc.provider)
			}
			withProvider, err := r.Redeem(ctx, refreshCred(current))
			if err != nil {
				t.Fatalf("Redeem: %v", err)
			}
			if withProvider.Provider != tc.provider {
				t.Errorf("Provider = %q, want %q", withProvider.Provider, tc.provider)
			}
			delete(claims, "provider")
			legacy := signAs(t, s, key.Algorithm(), header, claims)
			got, err := r.Redeem(ctx, refreshCred(legacy))
			if err != nil {
				t.Fatalf("a token without the provider claim is refused: %v", err)
			}
			if !reflect.DeepEqual(got, withProvider) {
				t.Errorf("legacy token = %+v\nwant      %+v", got, withProvider)
			}
			// Its other checks still hold: the password binding, expiry.
			if tc.id.Method == identity.MethodPassword {
				r.Passwords = hashes{"alice": "$2y$10$ABCDEFGHIJKLMNOPQRSTUuQ1bU8TGIbx6D8Mq0cCVgqIhTQ3vjjSe"}
				id, err := r.Redeem(ctx, refreshCred(legacy))
				wantRefused(t, legacy, id, err, "password changed or the user was removed")
				r.Passwords = hashes{"alice": aliceHash}
			}
		})
	}
	// A legacy token whose method implies no provider stays refused.
	header, claims := decode(t, issue(t, r, alice).Reveal())
	delete(claims, "provider")
	claims["method"] = "refresh"
	tok := signAs(t, s, key.Algorithm(), header, claims)
	id, err := r.Redeem(ctx, refreshCred(tok))
	wantRefused(t, tok, id, err, "malformed")
}

// TestRefreshTokenNeverPrinted: the token is a Secret: formatting it, as a
// log call or an error might, shows a placeholder.
func TestRefreshTokenNeverPrinted(t *testing.T) {
	r := newRefresher(tokentest.Key(t, token.KeyEC, 0), hashes{"alice": aliceHash}, newClock())
	tok := issue(t, r, alice)
	sig := tok.Reveal()[strings.LastIndex(tok.Reveal(), ".")+1:]
	for _, s := range []string{tok.String(), fmt.Sprintf("%v %+v %#v", tok, tok, tok), string(mustMarshal(t, tok))} {
		if strings.Contains(s, sig) {
			t.Errorf("the refresh token prints itself: %s", s)
		}
	}
}

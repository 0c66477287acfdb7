package refresh_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/authn/refresh"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/token"
	"git.sr.ht/~zozs/srht-registry/internal/token/tokentest"
)

const githubIssuer = "https://token.actions.githubusercontent.com"

// githubJob is an OIDC login of a GitHub Actions job, as authn/oidc makes it.
var githubJob = identity.Identity{Method: identity.MethodOIDC, Provider: "github",
	Subject: "repo:octo-org/octo-repo:ref:refs/heads/main",
	OIDC: &identity.OIDC{Issuer: githubIssuer, Claims: map[string]any{
		"repository": "octo-org/octo-repo", "repository_owner": "octo-org", "ref": "refs/heads/main",
		"ref_protected": "true", "run_attempt": "1",
	}}}

func oidcRefresher(k *token.Key, c *clock, sessions map[string]refresh.OIDCSession) *refresh.Tokens {
	r := newRefresher(k, nil, c)
	r.OIDC = sessions
	return r
}

// TestRefreshOIDC: the refresh token of an OIDC login lives the issuer's
// session TTL and stands for the same provider, subject and claims, while
// the issuer stays configured as it was.
func TestRefreshOIDC(t *testing.T) {
	t.Parallel()
	key := tokentest.Key(t, token.KeyEC, 0)
	sessions := map[string]refresh.OIDCSession{"github": {Issuer: githubIssuer, TTL: time.Hour}}
	c := newClock()
	tok := issue(t, oidcRefresher(key, c, sessions), githubJob)
	_, claims := decode(t, tok.Reveal())
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != time.Hour.Seconds() {
		t.Errorf("lives %v s, want the session TTL of an hour", exp-iat)
	}

	c.Advance(59 * time.Minute) // long after the ID token's five minutes
	id, err := oidcRefresher(key, c, sessions).Redeem(context.Background(), refreshCred(tok))
	if err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	if id.Method != identity.MethodRefresh || id.RefreshedFrom != identity.MethodOIDC || id.Provider != "github" || id.Subject != githubJob.Subject {
		t.Errorf("redeemed as %+v", id)
	}
	if id.OIDC == nil || id.OIDC.Issuer != githubIssuer || !reflect.DeepEqual(id.OIDC.Claims, githubJob.OIDC.Claims) {
		t.Errorf("claims %+v, want %+v", id.OIDC, githubJob.OIDC)
	}

	c.Advance(2 * time.Minute)
	_, err = oidcRefresher(key, c, sessions).Redeem(context.Background(), refreshCred(tok))
	wantRefused(t, tok, identity.Identity{}, err, "has expired")

	c = newClock()
	_, err = oidcRefresher(key, c, nil).Redeem(context.Background(), refreshCred(tok))
	wantRefused(t, tok, identity.Identity{}, err, "OIDC issuer this server no longer trusts")
	moved := map[string]refresh.OIDCSession{"github": {Issuer: "https://ghes.example.com/_services/token", TTL: time.Hour}}
	_, err = oidcRefresher(key, c, moved).Redeem(context.Background(), refreshCred(tok))
	wantRefused(t, tok, identity.Identity{}, err, "OIDC issuer this server no longer trusts")
}

// TestRefreshOIDCSessionBoundedByTTL: token.refresh.ttl still caps an
// issuer's session.
func TestRefreshOIDCSessionBoundedByTTL(t *testing.T) {
	t.Parallel()
	key := tokentest.Key(t, token.KeyEC, 0)
	c := newClock()
	r := oidcRefresher(key, c, map[string]refresh.OIDCSession{"github": {Issuer: githubIssuer, TTL: 10 * 24 * time.Hour}})
	r.TTL = 2 * time.Hour
	_, claims := decode(t, issue(t, r, githubJob).Reveal())
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != (2 * time.Hour).Seconds() {
		t.Errorf("lives %v s, want token.refresh.ttl's two hours", exp-iat)
	}
}

func TestRefreshOIDCIssueRefused(t *testing.T) {
	t.Parallel()
	key := tokentest.Key(t, token.KeyEC, 0)
	sessions := map[string]refresh.OIDCSession{"github": {Issuer: githubIssuer, TTL: time.Hour}}
	r := oidcRefresher(key, newClock(), sessions)
	other := githubJob
	other.Provider = "gitlab"
	noClaims := githubJob
	noClaims.OIDC = nil
	wrongIssuer := githubJob
	wrongIssuer.OIDC = &identity.OIDC{Issuer: "https://gitlab.com", Claims: map[string]any{}}
	for name, id := range map[string]identity.Identity{"unconfigured provider": other, "no claims": noClaims, "another issuer": wrongIssuer} {
		if _, err := r.Issue(id, tokentest.Audience, "docker", ""); err == nil {
			t.Errorf("%s: issued", name)
		}
	}
}

package app

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"git.sr.ht/~zozs/srht-registry/internal/fakeoidc"
)

// idTokenLogin is `docker login -u oidc -p "$ID_TOKEN"` as a client holds
// it.
func idTokenLogin(token string) authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{Username: "oidc", Password: token})
}

// TestEndToEndOIDC is a CI job pushing with the ID token it already has,
// against a real registry: GitHub Actions tokens of a fake issuer with
// GitHub's claims, a claim rule in the default policy's data, and every
// way a token must be refused.
func TestEndToEndOIDC(t *testing.T) {
	t.Parallel()
	github := fakeoidc.Start(t)
	other := fakeoidc.Start(t) // an issuer nobody configured
	gitlab := fakeoidc.Start(t)
	gitlab.SetDown(true) // configured, and down from the start
	d := deploy(t, deployOptions{
		keyType: "ec",
		authn: `  oidc:
    - name: github
      issuer: ` + github.URL() + `
      audience: registry.example.com
    - name: gitlab
      issuer: ` + gitlab.URL() + `
`,
		data: `    oidc:
      - provider: github
        claims: {repository_owner: octo-org, ref: ["refs/heads/main", "refs/tags/v*"]}
        repositories: ["{repository}", "{repository}/*"]
        actions: [pull, push]`,
	})
	job := func(o fakeoidc.GitHubOptions) map[string]any {
		if o.Audience == "" {
			o.Audience = "registry.example.com"
		}
		return github.GitHubClaims(o)
	}
	octoApp := github.Mint(job(fakeoidc.GitHubOptions{Owner: "octo-org", Repo: "app"}))

	t.Run("a job pushes to its repository and pulls it", func(t *testing.T) {
		if err := pushImage(t, d.registry, "octo-org/app:v1", idTokenLogin(octoApp)); err != nil {
			t.Fatalf("push with the ID token: %v", err)
		}
		if err := pushImage(t, d.registry, "octo-org/app/cache:v1", idTokenLogin(octoApp)); err != nil {
			t.Fatalf("push below the repository: %v", err)
		}
		if err := pullImage(t, d.registry, "octo-org/app:v1", idTokenLogin(octoApp)); err != nil {
			t.Fatalf("pull with the ID token: %v", err)
		}
		res := requestToken(t, d.addr, "oidc", octoApp, "repository:octo-org/app:push")
		if res.status != http.StatusOK || res.subject != "github:repo:octo-org/app:ref:refs/heads/main" {
			t.Errorf("token for the job: %d, sub %q", res.status, res.subject)
		}
	})

	t.Run("a job gets nothing elsewhere", func(t *testing.T) {
		if err := pushImage(t, d.registry, "octo-org/other:v1", idTokenLogin(octoApp)); err == nil {
			t.Error("the job of octo-org/app pushed to octo-org/other")
		} else {
			wantDenied(t, err)
		}
		if err := pushImage(t, d.registry, "alice/app:v1", idTokenLogin(octoApp)); err == nil {
			t.Error("the job pushed to alice/*")
		}
		evil := github.Mint(job(fakeoidc.GitHubOptions{Owner: "evil-org", Repo: "app"}))
		if err := pushImage(t, d.registry, "octo-org/app:evil", idTokenLogin(evil)); err == nil {
			t.Error("a token of another repository owner pushed to octo-org/app")
		} else {
			wantDenied(t, err)
		}
		// A pull request's ref matches no rule: nothing.
		pr := github.Mint(job(fakeoidc.GitHubOptions{Owner: "octo-org", Repo: "app", EventName: "pull_request"}))
		if res := requestToken(t, d.addr, "oidc", pr, "repository:octo-org/app:pull,push"); res.status != http.StatusOK || len(res.access) != 0 {
			t.Errorf("a pull request's token: %d, granted %v, want nothing", res.status, res.access)
		}
	})

	t.Run("bad tokens are refused at the token endpoint", func(t *testing.T) {
		good := job(fakeoidc.GitHubOptions{Owner: "octo-org", Repo: "app"})
		with := func(k string, v any) map[string]any {
			c := map[string]any{}
			for key, val := range good {
				c[key] = val
			}
			c[k] = v
			return c
		}
		now := time.Now()
		unknownBefore := other.Calls()
		for name, tok := range map[string]string{
			"wrong audience":                 github.Mint(with("aud", "https://github.com/octo-org")),
			"expired":                        github.Mint(with("exp", now.Add(-10*time.Minute).Unix())),
			"alg none":                       github.MintNone(good),
			"HMAC keyed with the public key": github.MintHMACWithPublicKey(good),
			"a foreign key with the kid":     github.MintForeign(good),
			"an issuer nobody configured":    other.Mint(with("iss", other.URL())),
			"not yet valid":                  github.Mint(with("nbf", now.Add(10*time.Minute).Unix())),
		} {
			res := requestToken(t, d.addr, "oidc", tok, "repository:octo-org/app:pull")
			if res.status != http.StatusUnauthorized {
				t.Errorf("%s: %d %q, want 401", name, res.status, res.message)
			}
			if strings.Contains(d.logs.String(), tok) {
				t.Errorf("%s: the token is in the log", name)
			}
		}
		if n := other.Calls() - unknownBefore; n != 0 {
			t.Errorf("the unconfigured issuer was asked %d times, want never", n)
		}
	})

	t.Run("a refresh token outlives the ID token", func(t *testing.T) {
		rt := offlineLogin(t, d.addr, "oidc", octoApp, "docker")
		var claims struct{ Exp, Iat int64 }
		if err := decodeClaims(rt, &claims); err != nil {
			t.Fatal(err)
		}
		idExp := expOf(t, octoApp)
		if claims.Exp-claims.Iat != int64(time.Hour/time.Second) || claims.Exp <= idExp+60 {
			t.Errorf("the refresh token lives %ds until %d; the ID token until %d: want the one-hour session", claims.Exp-claims.Iat, claims.Exp, idExp)
		}
		// What the refresh token stands for is the login's claims: the
		// claim rule decides a refresh as it decided the login.
		res := refreshGrant(t, d.addr, rt, "docker", "repository:octo-org/app:pull,push")
		if res.status != http.StatusOK || len(res.actionsOn("octo-org/app")) != 2 {
			t.Errorf("refresh grant of the OIDC login: %d %q %v", res.status, res.message, res.access)
		}
		if err := pushImage(t, d.registry, "octo-org/app:v2", identityToken(rt)); err != nil {
			t.Errorf("push with only the refresh token: %v", err)
		}
	})

	t.Run("key rotation is picked up; an outage keeps cached keys working", func(t *testing.T) {
		github.RotateKey(true)
		rotated := github.Mint(job(fakeoidc.GitHubOptions{Owner: "octo-org", Repo: "app", Ref: "refs/tags/v1.2.0"}))
		if err := pushImage(t, d.registry, "octo-org/app:v1.2.0", idTokenLogin(rotated)); err != nil {
			t.Fatalf("push with a token of the issuer's new key: %v", err)
		}
		github.SetDown(true)
		t.Cleanup(func() { github.SetDown(false) })
		if err := pullImage(t, d.registry, "octo-org/app:v1.2.0", idTokenLogin(rotated)); err != nil {
			t.Errorf("pull with cached keys while the issuer is down: %v", err)
		}
		// An issuer whose keys the server never got: 503, never a grant.
		stuck := gitlab.Mint(gitlab.GitLabClaims(fakeoidc.GitLabOptions{Audience: "registry.example.com"}))
		if res := requestToken(t, d.addr, "oidc", stuck, "repository:group/project:pull"); res.status != http.StatusServiceUnavailable {
			t.Errorf("a token needing keys the server cannot fetch: %d %q, want 503", res.status, res.message)
		}
	})
}

// expOf is the exp of an ID token, read without verifying it.
func expOf(t *testing.T, token string) int64 {
	t.Helper()
	var c struct{ Exp int64 }
	if err := decodeClaims(token, &c); err != nil {
		t.Fatal(err)
	}
	return c.Exp
}

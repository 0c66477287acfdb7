package oidc_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"git.sr.ht/~zozs/srht-registry/internal/authn/oidc"
	"git.sr.ht/~zozs/srht-registry/internal/fakeoidc"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

const service = "registry.example.com"

// clock is a test clock that the authenticator and the fake issuer share.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// setup starts a fake issuer and an authenticator for it, sharing clk,
// and waits for the authenticator's startup key fetch.
func setup(t *testing.T, mod func(*oidc.Options), issOpts ...fakeoidc.Option) (*fakeoidc.Issuer, *oidc.Authenticator, *clock) {
	t.Helper()
	iss := fakeoidc.Start(t, issOpts...)
	clk := newClock()
	iss.SetClock(clk.Now)
	return iss, start(t, iss, clk, mod), clk
}

func start(t *testing.T, iss *fakeoidc.Issuer, clk *clock, mod func(*oidc.Options)) *oidc.Authenticator {
	t.Helper()
	opts := oidc.Options{
		Name:       "github",
		Issuer:     iss.URL(),
		Audiences:  []string{service},
		HTTPClient: iss.Client(),
		Now:        clk.Now,
	}
	if mod != nil {
		mod(&opts)
	}
	a, err := oidc.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	<-a.Ready()
	return a
}

func authenticate(a *oidc.Authenticator, tok string) (identity.Identity, error) {
	return a.Authenticate(context.Background(), identity.Secret(tok))
}

// checkSecretFree fails if err's text holds the token, a segment of it, or
// a claim's string value other than what the configuration says anyway.
func checkSecretFree(t *testing.T, err error, tok string, claims map[string]any, config ...string) {
	t.Helper()
	msg := err.Error()
	for _, seg := range append(strings.Split(tok, "."), tok) {
		if len(seg) >= 8 && strings.Contains(msg, seg) {
			t.Errorf("error %q holds the token", msg)
		}
	}
	for k, v := range claims {
		s, ok := v.(string)
		if !ok || len(s) < 4 {
			continue
		}
		configured := false
		for _, c := range config {
			configured = configured || s == c
		}
		if !configured && strings.Contains(msg, s) {
			t.Errorf("error %q holds the value of claim %s", msg, k)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	iss, a, clk := setup(t, nil)
	now := clk.Now()
	gh := func(mod func(c map[string]any)) map[string]any {
		c := iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service})
		if mod != nil {
			mod(c)
		}
		return c
	}
	foreignKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tamper := func(tok string, claims map[string]any) string {
		parts := strings.Split(tok, ".")
		b, err := json.Marshal(claims)
		if err != nil {
			t.Fatal(err)
		}
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	}

	tests := []struct {
		name    string
		claims  map[string]any
		mint    func(c map[string]any) string // default iss.Mint
		subject string                        // want success with this subject
		wantErr string                        // want ErrUnauthenticated with this text
	}{
		{name: "github push", claims: gh(nil), subject: "repo:octo-org/octo-repo:ref:refs/heads/main"},
		{name: "github environment", claims: iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service, Owner: "acme", Repo: "app", Environment: "prod"}),
			subject: "repo:acme/app:environment:prod"},
		{name: "github pull request", claims: iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service, EventName: "pull_request"}),
			subject: "repo:octo-org/octo-repo:pull_request"},
		{name: "gitlab", claims: iss.GitLabClaims(fakeoidc.GitLabOptions{Audience: service, Namespace: "group", Project: "app"}),
			subject: "project_path:group/app:ref_type:branch:ref:main"},
		{name: "kubernetes, aud array", claims: iss.KubernetesClaims(fakeoidc.KubernetesOptions{Namespace: "ci", ServiceAccount: "builder", PodName: "p",
			Audiences: []string{"other", service}}), subject: "system:serviceaccount:ci:builder"},
		{name: "no kid, one key", claims: gh(nil), subject: "repo:octo-org/octo-repo:ref:refs/heads/main",
			mint: func(c map[string]any) string { return iss.Mint(c, fakeoidc.HeaderKid("")) }},
		{name: "expired within leeway", claims: gh(func(c map[string]any) { c["exp"] = now.Add(-30 * time.Second).Unix() }),
			subject: "repo:octo-org/octo-repo:ref:refs/heads/main"},
		{name: "nbf within leeway", claims: gh(func(c map[string]any) { c["nbf"] = now.Add(30 * time.Second).Unix() }),
			subject: "repo:octo-org/octo-repo:ref:refs/heads/main"},

		{name: "default GitHub audience", claims: iss.GitHubClaims(fakeoidc.GitHubOptions{}),
			wantErr: "ID token audience does not include registry.example.com"},
		{name: "other audience array", claims: gh(func(c map[string]any) { c["aud"] = []any{"a", "b"} }),
			wantErr: "ID token audience does not include registry.example.com"},
		{name: "no audience", claims: gh(func(c map[string]any) { delete(c, "aud") }),
			wantErr: "ID token audience does not include"},
		{name: "expired", claims: gh(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }),
			wantErr: "ID token expired"},
		{name: "exp zero", claims: gh(func(c map[string]any) { c["exp"] = 0 }), wantErr: "ID token expired"},
		{name: "no exp", claims: gh(func(c map[string]any) { delete(c, "exp") }), wantErr: "ID token has no exp"},
		{name: "exp a string", claims: gh(func(c map[string]any) { c["exp"] = "tomorrow" }), wantErr: "claim exp is not of its type"},
		{name: "aud a number", claims: gh(func(c map[string]any) { c["aud"] = 7 }), wantErr: "claim aud is not of its type"},
		{name: "nbf null", claims: gh(func(c map[string]any) { c["nbf"] = nil }), wantErr: "claim nbf is not of its type"},
		{name: "not yet valid", claims: gh(func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() }),
			wantErr: "ID token is not valid yet"},
		{name: "issued in the future", claims: gh(func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix() }),
			wantErr: "issued in the future"},
		{name: "other issuer", claims: gh(func(c map[string]any) { c["iss"] = "https://token.actions.githubusercontent.com" }),
			wantErr: "ID token issuer is not " + iss.URL()},
		{name: "issuer with a trailing slash", claims: gh(func(c map[string]any) { c["iss"] = iss.URL() + "/" }),
			wantErr: "ID token issuer is not"},
		{name: "no subject", claims: gh(func(c map[string]any) { delete(c, "sub") }),
			wantErr: `claim "sub" (the subject) is missing`},
		{name: "empty subject", claims: gh(func(c map[string]any) { c["sub"] = "" }), wantErr: `claim "sub" (the subject) is missing`},
		{name: "subject not a string", claims: gh(func(c map[string]any) { c["sub"] = 42 }), wantErr: `not a non-empty string`},

		{name: "alg none", claims: gh(nil), mint: func(c map[string]any) string { return iss.MintNone(c) },
			wantErr: "ID token signed with alg none: refused"},
		{name: "alg None", claims: gh(nil), mint: func(c map[string]any) string { return iss.MintNone(c, fakeoidc.HeaderAlg("None")) },
			wantErr: "alg none: refused"},
		{name: "HMAC keyed with the public key PEM", claims: gh(nil), mint: func(c map[string]any) string { return iss.MintHMACWithPublicKey(c) },
			wantErr: "ID token signed with HMAC (HS256): refused"},
		{name: "HMAC keyed with the public key DER", claims: gh(nil), mint: func(c map[string]any) string { return iss.MintHMAC(c, iss.PublicKeyDER()) },
			wantErr: "signed with HMAC"},
		{name: "HMAC keyed with the JWKS", claims: gh(nil),
			mint:    func(c map[string]any) string { return iss.MintHMAC(c, iss.JWKS(), fakeoidc.HeaderAlg("HS512")) },
			wantErr: "ID token signed with HMAC (HS512): refused"},
		{name: "foreign key with the issuer's kid", claims: gh(nil), mint: func(c map[string]any) string { return iss.MintWithKey(foreignKey, c) },
			wantErr: "ID token signature does not verify"},
		{name: "tampered payload", claims: gh(nil), mint: func(c map[string]any) string {
			tok := iss.Mint(c)
			c2 := map[string]any{}
			for k, v := range c {
				c2[k] = v
			}
			c2["repository_owner"] = "evil-org"
			return tamper(tok, c2)
		}, wantErr: "ID token signature does not verify"},
		{name: "PS256 with the RS256 key", claims: gh(nil), mint: func(c map[string]any) string { return iss.Mint(c, fakeoidc.HeaderAlg("PS256")) },
			wantErr: "ID token alg PS256 does not match the key its kid names"},
		{name: "unknown alg", claims: gh(nil), mint: func(c map[string]any) string { return iss.MintNone(c, fakeoidc.HeaderAlg("XY999")) },
			wantErr: "ID token alg (unknown) is not accepted"},
		{name: "critical header", claims: gh(nil), mint: func(c map[string]any) string {
			return iss.Mint(c, fakeoidc.Header("crit", []string{"exp"}), fakeoidc.Header("exp", 1))
		}, wantErr: "critical header parameters"},
		{name: "claims that look like a JWS", claims: gh(func(c map[string]any) {
			delete(c, "aud")
			c["payload"] = base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"` + service + `"}`))
			c["signatures"] = []any{map[string]any{"protected": "e30", "signature": "c2ln"}}
		}), wantErr: "ID token audience does not include registry.example.com"},
		{name: "not a JWT", claims: gh(nil), mint: func(map[string]any) string { return "hunter2" },
			wantErr: "not an ID token"},
		{name: "too large", claims: gh(func(c map[string]any) { c["padding"] = strings.Repeat("x", oidc.MaxTokenSize) }),
			wantErr: "larger than 16384 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mint := tt.mint
			if mint == nil {
				mint = func(c map[string]any) string { return iss.Mint(c) }
			}
			tok := mint(tt.claims)
			id, err := authenticate(a, tok)
			if tt.wantErr != "" {
				if !errors.Is(err, identity.ErrUnauthenticated) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrUnauthenticated with %q", err, tt.wantErr)
				}
				if id.Authenticated() || id.OIDC != nil {
					t.Errorf("an identity with the error: %+v", id)
				}
				checkSecretFree(t, err, tok, tt.claims, iss.URL(), service)
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if id.Method != identity.MethodOIDC || id.Provider != "github" || id.Subject != tt.subject || id.OIDC == nil || id.OIDC.Issuer != iss.URL() {
				t.Fatalf("identity %+v", id)
			}
			if len(id.OIDC.Claims) != len(tt.claims) {
				t.Errorf("%d claims, want %d", len(id.OIDC.Claims), len(tt.claims))
			}
		})
	}
}

// TestClaimsAsSent: every claim reaches the identity, numbers as
// json.Number with the exact digits, objects as map[string]any.
func TestClaimsAsSent(t *testing.T) {
	t.Parallel()
	iss, a, _ := setup(t, nil)
	c := iss.KubernetesClaims(fakeoidc.KubernetesOptions{Namespace: "ci", ServiceAccount: "builder", PodName: "build-1",
		Audiences: []string{service}})
	c["big"] = json.Number("12345678901234567890")
	c["flag"] = true
	c["list"] = []any{"a", 1.5, nil}
	id, err := authenticate(a, iss.Mint(c))
	if err != nil {
		t.Fatal(err)
	}
	got := id.OIDC.Claims
	if got["big"] != json.Number("12345678901234567890") || got["flag"] != true {
		t.Errorf("big %#v flag %#v", got["big"], got["flag"])
	}
	if got["iat"] != json.Number(fmt.Sprint(c["iat"])) {
		t.Errorf("iat %#v (%T), want json.Number %v", got["iat"], got["iat"], c["iat"])
	}
	if l, ok := got["list"].([]any); !ok || len(l) != 3 || l[0] != "a" || l[1] != json.Number("1.5") || l[2] != nil {
		t.Errorf("list %#v", got["list"])
	}
	k8s, ok := got["kubernetes.io"].(map[string]any)
	if !ok {
		t.Fatalf("kubernetes.io %#v", got["kubernetes.io"])
	}
	if sa, ok := k8s["serviceaccount"].(map[string]any); !ok || sa["name"] != "builder" || k8s["namespace"] != "ci" {
		t.Errorf("kubernetes.io %#v", k8s)
	}
	if aud, ok := got["aud"].([]any); !ok || aud[0] != service {
		t.Errorf("aud %#v", got["aud"])
	}
	// The claims survive a JSON round trip unchanged (a refresh token keeps them).
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"big":12345678901234567890`) {
		t.Errorf("marshalled %s", b)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	iss := fakeoidc.Start(t)
	clk := newClock()
	iss.SetClock(clk.Now)
	now := clk.Now()

	t.Run("subject claim", func(t *testing.T) {
		a := start(t, iss, clk, func(o *oidc.Options) { o.SubjectClaim = "repository" })
		id, err := authenticate(a, iss.Mint(iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service, Owner: "acme", Repo: "app"})))
		if err != nil || id.Subject != "acme/app" {
			t.Fatalf("%+v, %v", id, err)
		}
		c := iss.KubernetesClaims(fakeoidc.KubernetesOptions{Audiences: []string{service}})
		_, err = authenticate(a, iss.Mint(c))
		if !errors.Is(err, identity.ErrUnauthenticated) || !strings.Contains(err.Error(), `claim "repository" (the subject) is missing`) {
			t.Errorf("err = %v", err)
		}
		// An object is not a subject.
		b := start(t, iss, clk, func(o *oidc.Options) { o.Name = "cluster"; o.SubjectClaim = "kubernetes.io" })
		if _, err := authenticate(b, iss.Mint(c)); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Errorf("object subject: err = %v", err)
		}
	})
	t.Run("several audiences", func(t *testing.T) {
		a := start(t, iss, clk, func(o *oidc.Options) { o.Audiences = []string{"one.example", "two.example"} })
		if _, err := authenticate(a, iss.Mint(iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: "two.example"}))); err != nil {
			t.Error(err)
		}
		_, err := authenticate(a, iss.Mint(iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service})))
		if err == nil || !strings.Contains(err.Error(), "audience does not include one.example or two.example") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("max token age", func(t *testing.T) {
		a := start(t, iss, clk, func(o *oidc.Options) { o.MaxTokenAge = 10 * time.Minute })
		c := iss.GitLabClaims(fakeoidc.GitLabOptions{Audience: service})
		if _, err := authenticate(a, iss.Mint(c)); err != nil {
			t.Fatal(err)
		}
		c["iat"] = now.Add(-20 * time.Minute).Unix()
		_, err := authenticate(a, iss.Mint(c))
		if !errors.Is(err, identity.ErrUnauthenticated) || !strings.Contains(err.Error(), "issued more than 10m0s ago") {
			t.Errorf("too old: err = %v", err)
		}
		c["iat"] = now.Add(-10*time.Minute - 30*time.Second).Unix() // within the leeway
		if _, err := authenticate(a, iss.Mint(c)); err != nil {
			t.Errorf("within leeway: %v", err)
		}
		delete(c, "iat")
		if _, err := authenticate(a, iss.Mint(c)); err == nil || !strings.Contains(err.Error(), "no iat") {
			t.Errorf("no iat: err = %v", err)
		}
	})
	t.Run("no leeway", func(t *testing.T) {
		a := start(t, iss, clk, func(o *oidc.Options) { o.Leeway = -1 })
		c := iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service})
		c["exp"] = now.Add(-time.Second).Unix()
		if _, err := authenticate(a, iss.Mint(c)); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("algorithms", func(t *testing.T) {
		a := start(t, iss, clk, func(o *oidc.Options) { o.Algorithms = []string{"ES256"} })
		_, err := authenticate(a, iss.Mint(iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service})))
		if !errors.Is(err, identity.ErrUnauthenticated) || !strings.Contains(err.Error(), "ID token alg RS256 is not accepted") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestAlgorithms: each asymmetric algorithm verifies with a key of its
// kind, and the JWKS URL option skips discovery.
func TestAlgorithms(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"RS256", "RS512", "PS256", "ES256", "ES384", "ES512", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			iss := fakeoidc.Start(t, fakeoidc.WithAlgorithm(alg), fakeoidc.WithJWKSPath("/openid/v1/jwks"))
			clk := newClock()
			iss.SetClock(clk.Now)
			a := start(t, iss, clk, func(o *oidc.Options) { o.JWKSURL = iss.JWKSURL() })
			if _, err := authenticate(a, iss.Mint(iss.KubernetesClaims(fakeoidc.KubernetesOptions{Audiences: []string{service}}))); err != nil {
				t.Fatal(err)
			}
			if iss.DiscoveryCalls() != 0 || iss.JWKSCalls() != 1 {
				t.Errorf("discovery calls %d, key set calls %d; want 0 and 1", iss.DiscoveryCalls(), iss.JWKSCalls())
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	good := oidc.Options{Name: "github", Issuer: "https://token.actions.githubusercontent.com", Audiences: []string{service}}
	tests := []struct {
		name string
		mod  func(*oidc.Options)
		want string
	}{
		{"http issuer", func(o *oidc.Options) { o.Issuer = "http://token.example.com" }, "must be https"},
		{"issuer with a query", func(o *oidc.Options) { o.Issuer = "https://token.example.com/?x=1" }, "without query"},
		{"no issuer", func(o *oidc.Options) { o.Issuer = "" }, "issuer"},
		{"http JWKS URL", func(o *oidc.Options) { o.JWKSURL = "http://keys.example.com/jwks" }, "must be https"},
		{"alg none", func(o *oidc.Options) { o.Algorithms = []string{"RS256", "none"} }, "algorithm none is refused"},
		{"HS256", func(o *oidc.Options) { o.Algorithms = []string{"HS256"} }, "algorithm HS256 is refused"},
		{"unknown algorithm", func(o *oidc.Options) { o.Algorithms = []string{"RSA-OAEP"} }, "not supported"},
		{"no audience", func(o *oidc.Options) { o.Audiences = nil }, "audience"},
		{"empty audience", func(o *oidc.Options) { o.Audiences = []string{""} }, "audience"},
		{"bad name", func(o *oidc.Options) { o.Name = "GitHub" }, "provider name"},
		{"reserved name", func(o *oidc.Options) { o.Name = "group" }, "reserved"},
		{"built-in provider", func(o *oidc.Options) { o.Name = "sourcehut" }, "built-in"},
		{"negative max age", func(o *oidc.Options) { o.MaxTokenAge = -time.Second }, "negative"},
	}
	for _, tt := range tests {
		opts := good
		tt.mod(&opts)
		a, err := oidc.New(context.Background(), opts)
		if err == nil {
			a.Close()
			t.Errorf("%s: New accepted %+v", tt.name, opts)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestUnreachableAtStart: New does not need the issuer; http on loopback
// is accepted.
func TestUnreachableAtStart(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close() // nothing listens there now
	clk := newClock()
	a, err := oidc.New(context.Background(), oidc.Options{Name: "local", Issuer: url, Audiences: []string{service}, Now: clk.Now})
	if err != nil {
		t.Fatalf("New with an unreachable issuer: %v", err)
	}
	defer a.Close()
	select {
	case <-a.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the startup fetch did not end")
	}
}

// TestUnknownIssuer: a token of an issuer not configured is not
// recognised, and costs no call to anyone.
func TestUnknownIssuer(t *testing.T) {
	t.Parallel()
	iss, a, _ := setup(t, nil)
	other := fakeoidc.Start(t)
	gitlab, b, _ := setup(t, func(o *oidc.Options) { o.Name = "gitlab" })
	set, err := oidc.NewSet(a, b)
	if err != nil {
		t.Fatal(err)
	}
	iss.ResetCalls()
	gitlab.ResetCalls()

	foreign := other.Mint(other.GitHubClaims(fakeoidc.GitHubOptions{Audience: service}))
	if a.Recognize(foreign) || b.Recognize(foreign) {
		t.Error("a token of another issuer is recognised")
	}
	if got, ok := set.Find(foreign); ok {
		t.Errorf("Find picked %s", got.Name())
	}
	if _, err := set.Authenticate(context.Background(), identity.Secret(foreign)); !errors.Is(err, oidc.ErrNotIDToken) {
		t.Errorf("err = %v, want ErrNotIDToken", err)
	}
	for _, s := range []string{"", "hunter2", "a.b.c", strings.Repeat("x", 100000)} {
		if _, ok := set.Find(s); ok {
			t.Errorf("Find(%.20q) found", s)
		}
		if _, err := set.Authenticate(context.Background(), identity.Secret(s)); !errors.Is(err, oidc.ErrNotIDToken) {
			t.Errorf("%.20q: err = %v", s, err)
		}
	}
	if n := other.Calls() + iss.Calls() + gitlab.Calls(); n != 0 {
		t.Errorf("%d calls for tokens of no configured issuer", n)
	}

	// The set picks by iss.
	mine := gitlab.Mint(gitlab.GitLabClaims(fakeoidc.GitLabOptions{Audience: service}))
	if got, ok := set.Find(mine); !ok || got != b || !b.Recognize(mine) || a.Recognize(mine) {
		t.Errorf("Find picked %v, %v", got, ok)
	}
	id, err := set.Authenticate(context.Background(), identity.Secret(mine))
	if err != nil || id.Provider != "gitlab" {
		t.Errorf("%+v, %v", id, err)
	}

	var none *oidc.Set
	if _, ok := none.Find(mine); ok {
		t.Error("a nil set found an authenticator")
	}
	if _, err := oidc.NewSet(a, a); err == nil {
		t.Error("NewSet took two authenticators of one issuer")
	}
}

// TestKeyRotation: a token with a kid the authenticator does not hold
// triggers one key fetch (the startup fetch does not count), and the next
// one no sooner than the refetch interval after it; the old key keeps
// working while published.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	iss, a, clk := setup(t, nil)
	claims := func() map[string]any { return iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service}) }
	oldTok := iss.Mint(claims())
	if _, err := authenticate(a, oldTok); err != nil {
		t.Fatal(err)
	}
	if iss.JWKSCalls() != 1 || iss.DiscoveryCalls() != 1 {
		t.Fatalf("startup: %d key set and %d discovery calls, want 1 and 1", iss.JWKSCalls(), iss.DiscoveryCalls())
	}

	// A key rotated in right after the start is picked up at once.
	iss.RotateKey(true)
	if _, err := authenticate(a, iss.Mint(claims())); err != nil {
		t.Fatalf("a key rotated in after the start: %v", err)
	}
	if iss.JWKSCalls() != 2 {
		t.Fatalf("%d key set calls, want the startup one and one refetch", iss.JWKSCalls())
	}

	iss.RotateKey(true)
	newTok := iss.Mint(claims())
	// Right after that refetch: no other yet; the kid is unknown.
	_, err := authenticate(a, newTok)
	if !errors.Is(err, identity.ErrUnauthenticated) || !strings.Contains(err.Error(), "unknown kid") {
		t.Fatalf("err = %v", err)
	}
	if iss.JWKSCalls() != 2 {
		t.Fatalf("%d key set calls within the refetch interval", iss.JWKSCalls())
	}

	clk.Advance(oidc.DefaultRefetchInterval)
	if _, err := authenticate(a, newTok); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if _, err := authenticate(a, oldTok); err != nil {
		t.Fatalf("old key still published: %v", err)
	}
	if iss.JWKSCalls() != 3 || iss.DiscoveryCalls() != 1 {
		t.Errorf("%d key set and %d discovery calls, want 3 and 1 (discovery once)", iss.JWKSCalls(), iss.DiscoveryCalls())
	}
	for range 5 {
		if _, err := authenticate(a, iss.Mint(claims())); err != nil {
			t.Fatal(err)
		}
	}
	if iss.JWKSCalls() != 3 {
		t.Errorf("%d key set calls for tokens of known keys", iss.JWKSCalls())
	}

	// The old key withdrawn: once the keys are refetched, its tokens fail.
	iss.RotateKey(false)
	newest := iss.Mint(claims())
	clk.Advance(oidc.DefaultRefetchInterval)
	if _, err := authenticate(a, newest); err != nil {
		t.Fatal(err)
	}
	if _, err := authenticate(a, oldTok); err == nil || !strings.Contains(err.Error(), "unknown kid") {
		t.Errorf("withdrawn key: err = %v", err)
	}
}

// TestRefetchRateLimited: a flood of tokens with unknown kids costs at
// most one key fetch per refetch interval, and each is refused as
// unauthenticated (the keys are fresh), not unavailable.
func TestRefetchRateLimited(t *testing.T) {
	t.Parallel()
	iss, a, clk := setup(t, nil)
	claims := iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service})
	foreignKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	flood := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for range 50 {
			tok := iss.MintWithKey(foreignKey, claims, fakeoidc.HeaderKid(hex.EncodeToString(randomBytes(t, 8))))
			wg.Go(func() {
				_, err := authenticate(a, tok)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, identity.ErrUnauthenticated) || !strings.Contains(err.Error(), "unknown kid") {
				t.Fatalf("err = %v", err)
			}
		}
	}
	// The startup fetch, and one refetch for the whole flood.
	flood()
	if iss.JWKSCalls() != 2 {
		t.Errorf("%d key set calls, want the startup one and one refetch", iss.JWKSCalls())
	}
	clk.Advance(oidc.DefaultRefetchInterval)
	flood()
	if iss.JWKSCalls() != 3 {
		t.Errorf("%d key set calls, want 3 (one per interval)", iss.JWKSCalls())
	}
	clk.Advance(oidc.DefaultRefetchInterval / 2)
	flood()
	if iss.JWKSCalls() != 3 {
		t.Errorf("%d key set calls half an interval on, want still 3", iss.JWKSCalls())
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIssuerDown: with the issuer down, tokens of the keys held keep
// verifying; one that needs keys gets ErrUnavailable, never a grant.
func TestIssuerDown(t *testing.T) {
	t.Parallel()
	for _, fault := range []string{"down", "503", "slow"} {
		t.Run(fault, func(t *testing.T) {
			t.Parallel()
			iss, a, clk := setup(t, func(o *oidc.Options) { o.FetchTimeout = 200 * time.Millisecond })
			claims := func() map[string]any { return iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service}) }
			oldTok := iss.Mint(claims())
			if _, err := authenticate(a, oldTok); err != nil {
				t.Fatal(err)
			}
			switch fault {
			case "down":
				iss.SetDown(true)
			case "503":
				iss.SetStatus(http.StatusServiceUnavailable)
			case "slow":
				iss.SetDelay(time.Hour)
			}
			iss.RotateKey(true)
			newTok := iss.Mint(claims())
			clk.Advance(oidc.DefaultRefetchInterval)
			_, err := authenticate(a, newTok)
			if !errors.Is(err, identity.ErrUnavailable) || errors.Is(err, identity.ErrUnauthenticated) {
				t.Fatalf("unknown kid, issuer %s: err = %v, want ErrUnavailable", fault, err)
			}
			// Keys held keep working, with no call.
			calls := iss.Calls()
			for range 3 {
				if _, err := authenticate(a, iss.Mint(claims(), fakeoidc.HeaderKid(iss.KeyIDs()[0]), fakeoidc.HeaderAlg("RS256"))); err == nil {
					t.Fatal("a token signed with the new key under the old kid verified")
				}
				if _, err := authenticate(a, oldTok); err != nil {
					t.Fatalf("cached key, issuer %s: %v", fault, err)
				}
			}
			// Within the retry interval after a failure: no new call.
			if _, err := authenticate(a, newTok); !errors.Is(err, identity.ErrUnavailable) {
				t.Errorf("err = %v", err)
			}
			if iss.Calls() != calls {
				t.Errorf("%d calls within the retry interval", iss.Calls()-calls)
			}

			// The issuer back: after the retry interval, the new key is fetched.
			iss.SetDown(false)
			iss.SetStatus(0)
			iss.SetDelay(0)
			clk.Advance(6 * time.Second)
			if _, err := authenticate(a, newTok); err != nil {
				t.Errorf("issuer back: %v", err)
			}
		})
	}
}

// TestIssuerDownAtStart: no keys, and the issuer down: ErrUnavailable,
// with at most one fetch per retry interval; then the issuer comes back.
func TestIssuerDownAtStart(t *testing.T) {
	t.Parallel()
	iss := fakeoidc.Start(t)
	clk := newClock()
	iss.SetClock(clk.Now)
	iss.SetDown(true)
	a := start(t, iss, clk, nil)
	tok := iss.Mint(iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service}))
	calls := iss.Calls()
	if calls == 0 {
		t.Fatal("no startup fetch")
	}
	for range 10 {
		id, err := authenticate(a, tok)
		if !errors.Is(err, identity.ErrUnavailable) || id.Authenticated() {
			t.Fatalf("%+v, %v; want ErrUnavailable", id, err)
		}
	}
	if iss.Calls() != calls {
		t.Errorf("%d calls within the retry interval", iss.Calls()-calls)
	}
	clk.Advance(6 * time.Second)
	if _, err := authenticate(a, tok); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if iss.Calls() == calls {
		t.Error("no retry after the retry interval")
	}
	iss.SetDown(false)
	clk.Advance(6 * time.Second)
	if _, err := authenticate(a, tok); err != nil {
		t.Fatalf("issuer back: %v", err)
	}
}

// TestDiscoveryRefused: a discovery document naming another issuer, or a
// key set off https, is not followed; tokens get ErrUnavailable.
func TestDiscoveryRefused(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		field string
		value any
		want  string
	}{
		"issuer mismatch":     {"issuer", "https://evil.example", `names the issuer "https://evil.example"`},
		"issuer with a slash": {"issuer", "", "names the issuer"},
		"no issuer":           {"issuer", nil, "names no issuer"},
		"jwks_uri http":       {"jwks_uri", "http://keys.example.com/jwks", "must be https"},
		"no jwks_uri":         {"jwks_uri", nil, "no jwks_uri"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			iss := fakeoidc.Start(t)
			value := tt.value
			if name == "issuer with a slash" {
				value = iss.URL() + "/"
			}
			iss.SetDiscoveryField(tt.field, value)
			clk := newClock()
			iss.SetClock(clk.Now)
			a := start(t, iss, clk, nil)
			_, err := authenticate(a, iss.Mint(iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service})))
			if !errors.Is(err, identity.ErrUnavailable) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrUnavailable with %q", err, tt.want)
			}
			if iss.JWKSCalls() != 0 {
				t.Errorf("%d key set calls", iss.JWKSCalls())
			}
		})
	}
}

// keySetServer serves body as a key set.
func keySetServer(t *testing.T, body func(w http.ResponseWriter, r *http.Request)) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(body))
	t.Cleanup(ts.Close)
	return ts.URL + "/jwks"
}

// TestKeySetFiltered: keys that are not for asymmetric signatures are left
// out; a key set with none is refused; a huge one is not read; a redirect
// off https is not followed.
func TestKeySetFiltered(t *testing.T) {
	t.Parallel()
	iss := fakeoidc.Start(t)
	clk := newClock()
	iss.SetClock(clk.Now)
	var good map[string]any
	if err := json.Unmarshal(iss.JWKS(), &good); err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	keys := []any{
		map[string]any{"kty": "oct", "kid": "sym", "k": b64([]byte("secret"))},
		map[string]any{"kty": "RSA", "kid": "weak", "n": b64(weak.N.Bytes()), "e": "AQAB"},
		map[string]any{"kty": "RSA", "kid": "enc", "use": "enc", "n": good["keys"].([]any)[0].(map[string]any)["n"], "e": "AQAB"},
	}
	url := keySetServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": append(keys, good["keys"].([]any)...)})
	})
	a := start(t, iss, clk, func(o *oidc.Options) { o.JWKSURL = url; o.HTTPClient = nil })
	claims := iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service})
	if _, err := authenticate(a, iss.Mint(claims)); err != nil {
		t.Fatalf("good key among bad ones: %v", err)
	}
	for _, kid := range []string{"sym", "weak", "enc"} {
		_, err := authenticate(a, iss.MintWithKey(weak, claims, fakeoidc.HeaderKid(kid)))
		if !errors.Is(err, identity.ErrUnauthenticated) || !strings.Contains(err.Error(), "unknown kid") {
			t.Errorf("kid %s: err = %v", kid, err)
		}
	}
	_, err = authenticate(a, iss.MintHMAC(claims, []byte("secret"), fakeoidc.HeaderKid("sym")))
	if !errors.Is(err, identity.ErrUnauthenticated) || !strings.Contains(err.Error(), "HMAC") {
		t.Errorf("HS256 with the oct key: err = %v", err)
	}

	for name, handler := range map[string]func(w http.ResponseWriter, r *http.Request){
		"only bad keys": func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
		},
		"huge": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"keys":[` + strings.Repeat(" ", 2<<20) + `]}`))
		},
		"redirect off https": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://keys.example.com/jwks", http.StatusFound)
		},
		"not JSON": func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>")) },
	} {
		t.Run(name, func(t *testing.T) {
			a := start(t, iss, clk, func(o *oidc.Options) { o.JWKSURL = keySetServer(t, handler); o.HTTPClient = nil })
			if _, err := authenticate(a, iss.Mint(claims)); !errors.Is(err, identity.ErrUnavailable) {
				t.Errorf("err = %v, want ErrUnavailable", err)
			}
		})
	}
}

// TestKidlessTokens: a token without kid is verified with the issuer's
// only key, and refused when it publishes several.
func TestKidlessTokens(t *testing.T) {
	t.Parallel()
	iss, a, clk := setup(t, nil)
	claims := iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service})
	if _, err := authenticate(a, iss.Mint(claims, fakeoidc.HeaderKid(""))); err != nil {
		t.Fatal(err)
	}
	iss.RotateKey(true)
	clk.Advance(oidc.DefaultRefetchInterval)
	if _, err := authenticate(a, iss.Mint(claims)); err != nil {
		t.Fatal(err)
	}
	_, err := authenticate(a, iss.Mint(claims, fakeoidc.HeaderKid("")))
	if !errors.Is(err, identity.ErrUnauthenticated) || !strings.Contains(err.Error(), "no kid") {
		t.Errorf("err = %v", err)
	}
}

// TestBackgroundRefresh: the keys are refreshed without a token asking.
func TestBackgroundRefresh(t *testing.T) {
	t.Parallel()
	iss, a, _ := setup(t, func(o *oidc.Options) { o.RefreshInterval = time.Second })
	iss.RotateKey(false)
	tok := iss.Mint(iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service}))
	// The test clock stands still, so no token may trigger a refetch:
	// only the background refresh can bring the new key.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := authenticate(a, tok)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new key was not refreshed in the background: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if iss.JWKSCalls() < 2 {
		t.Errorf("%d key set calls", iss.JWKSCalls())
	}
}

// TestConcurrent runs verifications while the keys rotate.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	iss, a, clk := setup(t, nil)
	claims := iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if _, err := authenticate(a, iss.Mint(claims)); err != nil && !strings.Contains(err.Error(), "unknown kid") {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 3 {
		iss.RotateKey(true)
		clk.Advance(oidc.DefaultRefetchInterval)
	}
	wg.Wait()
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				if !hasLabel(m, k, v) {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	iss, a, _ := setup(t, nil)
	gl, b, _ := setup(t, func(o *oidc.Options) { o.Name = "gitlab" })
	set, err := oidc.NewSet(a, b)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	for _, c := range set.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatalf("two providers' metrics do not register side by side: %v", err)
		}
	}
	good := iss.Mint(iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service}))
	for range 3 {
		if _, err := authenticate(a, good); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = authenticate(a, iss.MintNone(iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service})))
	_, _ = authenticate(b, gl.Mint(gl.GitLabClaims(fakeoidc.GitLabOptions{Audience: service})))
	// An unknown kid: one refetch; another right after: rate limited.
	_, _ = authenticate(a, iss.MintForeign(iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service}), fakeoidc.HeaderKid("nope")))
	_, _ = authenticate(a, iss.MintForeign(iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service}), fakeoidc.HeaderKid("nope-2")))

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"srht_registry_oidc_verifications_total", map[string]string{"provider": "github", "result": "ok"}, 3},
		{"srht_registry_oidc_verifications_total", map[string]string{"provider": "github", "result": "rejected"}, 3},
		{"srht_registry_oidc_verifications_total", map[string]string{"provider": "gitlab", "result": "ok"}, 1},
		{"srht_registry_oidc_key_fetches_total", map[string]string{"provider": "github", "result": "ok"}, 2},
		{"srht_registry_oidc_key_fetches_rate_limited_total", map[string]string{"provider": "github"}, 1},
		{"srht_registry_oidc_keys", map[string]string{"provider": "gitlab"}, 1},
	} {
		if got := metricValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if ts := metricValue(t, reg, "srht_registry_oidc_keys_fetched_timestamp_seconds", map[string]string{"provider": "github"}); ts < 1e9 {
		t.Errorf("keys fetched at %v", ts)
	}
}

// TestClose: after Close, a token whose keys are not held is unavailable
// at once.
func TestClose(t *testing.T) {
	t.Parallel()
	iss := fakeoidc.Start(t)
	clk := newClock()
	iss.SetClock(clk.Now)
	iss.SetDown(true)
	a := start(t, iss, clk, nil)
	a.Close()
	a.Close()
	clk.Advance(time.Minute)
	if _, err := authenticate(a, iss.Mint(iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service}))); !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("err = %v", err)
	}
}

// BenchmarkAuthenticate measures a verification with the keys held: what
// every OIDC login costs (no network).
func BenchmarkAuthenticate(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			iss := fakeoidc.Start(b, fakeoidc.WithAlgorithm(alg))
			a, err := oidc.New(context.Background(), oidc.Options{Name: "github", Issuer: iss.URL(), Audiences: []string{service}, HTTPClient: iss.Client()})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			<-a.Ready()
			tok := identity.Secret(iss.Mint(iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: service})))
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authenticate(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package fakeoidc_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"git.sr.ht/~zozs/srht-registry/internal/fakeoidc"
)

func get(t *testing.T, client *http.Client, method, url string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

func keySet(t *testing.T, iss *fakeoidc.Issuer) jwk.Set {
	t.Helper()
	code, _, body := get(t, iss.Client(), http.MethodGet, iss.JWKSURL())
	if code != http.StatusOK {
		t.Fatalf("JWKS: %d %s", code, body)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		t.Fatalf("JWKS does not parse with jwx: %v\n%s", err, body)
	}
	return set
}

func decodeSegment(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d segments", tok, len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDiscoveryDocument(t *testing.T) {
	t.Parallel()
	iss := fakeoidc.Start(t)
	code, h, body := get(t, iss.Client(), http.MethodGet, iss.DiscoveryURL())
	if code != http.StatusOK || h.Get("Content-Type") != "application/json" {
		t.Fatalf("discovery: %d %s %s", code, h.Get("Content-Type"), body)
	}
	var doc struct {
		Issuer          string   `json:"issuer"`
		JWKSURI         string   `json:"jwks_uri"`
		Algs            []string `json:"id_token_signing_alg_values_supported"`
		ResponseTypes   []string `json:"response_types_supported"`
		SubjectTypes    []string `json:"subject_types_supported"`
		ClaimsSupported []string `json:"claims_supported"`
		Scopes          []string `json:"scopes_supported"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != iss.URL() || doc.JWKSURI != iss.URL()+"/.well-known/jwks" || doc.JWKSURI != iss.JWKSURL() {
		t.Errorf("issuer %q, jwks_uri %q; want %q and its /.well-known/jwks", doc.Issuer, doc.JWKSURI, iss.URL())
	}
	if !slices.Equal(doc.Algs, []string{"RS256"}) || !slices.Equal(doc.ResponseTypes, []string{"id_token"}) ||
		!slices.Equal(doc.SubjectTypes, []string{"public", "pairwise"}) || !slices.Equal(doc.Scopes, []string{"openid"}) {
		t.Errorf("discovery document: %s", body)
	}
	for _, c := range []string{"sub", "aud", "repository_owner", "job_workflow_ref", "ref_protected", "runner_environment"} {
		if !slices.Contains(doc.ClaimsSupported, c) {
			t.Errorf("claims_supported lacks %s", c)
		}
	}
	if strings.HasSuffix(iss.URL(), "/") || !strings.HasPrefix(iss.URL(), "http://127.0.0.1:") {
		t.Errorf("issuer URL %q", iss.URL())
	}

	// Only GET and HEAD; other paths are 404 and not counted.
	if code, _, _ := get(t, iss.Client(), http.MethodPost, iss.DiscoveryURL()); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", code)
	}
	iss.ResetCalls()
	if code, _, _ := get(t, iss.Client(), http.MethodGet, iss.URL()+"/elsewhere"); code != http.StatusNotFound {
		t.Errorf("other path: %d", code)
	}
	if iss.Calls() != 0 {
		t.Errorf("a 404 was counted: %d", iss.Calls())
	}
}

func TestKeySetAndSignatures(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			iss := fakeoidc.Start(t, fakeoidc.WithAlgorithm(alg))
			set := keySet(t, iss)
			if set.Len() != 1 {
				t.Fatalf("%d keys", set.Len())
			}
			k, _ := set.Key(0)
			if k.KeyID() != iss.KeyID() || k.Algorithm().String() != alg || k.KeyUsage() != "sig" {
				t.Errorf("key kid %q alg %q use %q; want %q, %s, sig", k.KeyID(), k.Algorithm(), k.KeyUsage(), iss.KeyID(), alg)
			}
			switch k.(type) {
			case jwk.RSAPrivateKey, jwk.ECDSAPrivateKey, jwk.OKPPrivateKey:
				t.Fatalf("the key set publishes a private key")
			}
			if strings.Contains(string(iss.JWKS()), `"d":`) {
				t.Fatalf("the key set has private material: %s", iss.JWKS())
			}

			tok := iss.Mint(map[string]any{"iss": iss.URL(), "sub": "x"})
			if _, err := jws.Verify([]byte(tok), jws.WithKeySet(set, jws.WithRequireKid(true))); err != nil {
				t.Fatalf("token does not verify with the key set: %v", err)
			}
			h := decodeSegment(t, tok, 0)
			if h["alg"] != alg || h["kid"] != iss.KeyID() || h["typ"] != "JWT" {
				t.Errorf("header %v", h)
			}
			if got := decodeSegment(t, tok, 1); got["iss"] != iss.URL() || got["sub"] != "x" {
				t.Errorf("payload %v", got)
			}
			if iss.Algorithm() != alg {
				t.Errorf("Algorithm() = %s", iss.Algorithm())
			}
		})
	}
}

func TestRotateKey(t *testing.T) {
	t.Parallel()
	iss := fakeoidc.Start(t, fakeoidc.WithAlgorithm("ES256"))
	first := iss.KeyID()
	second := iss.RotateKey(true)
	if second == first || iss.KeyID() != second {
		t.Fatalf("rotation: %s -> %s (current %s)", first, second, iss.KeyID())
	}
	if got := iss.KeyIDs(); !slices.Equal(got, []string{first, second}) {
		t.Errorf("published %v, want both", got)
	}
	set := keySet(t, iss)
	if _, ok := set.LookupKeyID(first); !ok {
		t.Error("old key not published with keepOld")
	}
	tok := iss.Mint(map[string]any{"iss": iss.URL()})
	if h := decodeSegment(t, tok, 0); h["kid"] != second {
		t.Errorf("minted with kid %v, want the new %s", h["kid"], second)
	}
	if _, err := jws.Verify([]byte(tok), jws.WithKeySet(set)); err != nil {
		t.Error(err)
	}

	third := iss.RotateKey(false)
	if got := iss.KeyIDs(); !slices.Equal(got, []string{third}) {
		t.Errorf("published %v, want only %s", got, third)
	}
	set = keySet(t, iss)
	if _, ok := set.LookupKeyID(second); ok || set.Len() != 1 {
		t.Error("old keys still published without keepOld")
	}
}

func TestForgeries(t *testing.T) {
	t.Parallel()
	iss := fakeoidc.Start(t)
	set := keySet(t, iss)
	claims := map[string]any{"iss": iss.URL(), "sub": "x"}

	none := iss.MintNone(claims)
	if !strings.HasSuffix(none, ".") || strings.Count(none, ".") != 2 {
		t.Errorf("alg none token %q", none)
	}
	if h := decodeSegment(t, none, 0); h["alg"] != "none" || h["kid"] != iss.KeyID() {
		t.Errorf("alg none header %v", h)
	}

	// The key-confusion token is a valid HS256 token keyed with the PEM.
	hm := iss.MintHMACWithPublicKey(claims)
	parts := strings.Split(hm, ".")
	mac := hmac.New(sha256.New, iss.PublicKeyPEM())
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) != parts[2] {
		t.Error("HS256 token is not keyed with the public key PEM")
	}
	if h := decodeSegment(t, hm, 0); h["alg"] != "HS256" || h["kid"] != iss.KeyID() {
		t.Errorf("HMAC header %v", h)
	}
	if !strings.HasPrefix(string(iss.PublicKeyPEM()), "-----BEGIN PUBLIC KEY-----") {
		t.Errorf("PEM %s", iss.PublicKeyPEM())
	}
	if _, err := jws.Verify([]byte(hm), jws.WithKey(jwa.HS256, iss.PublicKeyPEM())); err != nil {
		t.Errorf("jwx does not verify the HS256 forgery with the PEM as key: %v", err)
	}

	foreign := iss.MintForeign(claims)
	if h := decodeSegment(t, foreign, 0); h["kid"] != iss.KeyID() || h["alg"] != "RS256" {
		t.Errorf("foreign header %v", h)
	}
	if _, err := jws.Verify([]byte(foreign), jws.WithKeySet(set)); err == nil {
		t.Error("a token signed with a foreign key verifies with the issuer's key set")
	}

	// Header options.
	tok := iss.Mint(claims, fakeoidc.HeaderKid(""), fakeoidc.Header("typ", "at+jwt"), fakeoidc.HeaderAlg("PS256"))
	h := decodeSegment(t, tok, 0)
	if _, ok := h["kid"]; ok || h["typ"] != "at+jwt" || h["alg"] != "PS256" {
		t.Errorf("header %v", h)
	}
	if _, err := jws.Verify([]byte(tok), jws.WithKey(jwa.PS256, iss.PublicKey())); err != nil {
		t.Errorf("PS256 with the RSA key: %v", err)
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func sorted(s ...string) []string {
	sort.Strings(s)
	return s
}

func TestGitHubClaims(t *testing.T) {
	t.Parallel()
	iss := fakeoidc.Start(t)
	now := time.Unix(1_700_000_000, 0)
	iss.SetClock(func() time.Time { return now })

	c := iss.GitHubClaims(fakeoidc.GitHubOptions{Audience: "registry.example.com"})
	want := sorted("jti", "sub", "aud", "ref", "sha", "repository", "repository_owner", "repository_owner_id",
		"run_id", "run_number", "run_attempt", "repository_visibility", "repository_id", "actor_id", "actor",
		"workflow", "head_ref", "base_ref", "event_name", "ref_protected", "ref_type", "workflow_ref",
		"workflow_sha", "job_workflow_ref", "job_workflow_sha", "runner_environment", "iss", "nbf", "exp", "iat")
	if got := keys(c); !slices.Equal(got, want) {
		t.Errorf("claims\n got %v\nwant %v", got, want)
	}
	for k, v := range c {
		switch k {
		case "iat", "nbf", "exp":
			if _, ok := v.(int64); !ok {
				t.Errorf("%s is %T, want a number", k, v)
			}
		default:
			if _, ok := v.(string); !ok {
				t.Errorf("%s is %T, want a string (GitHub sends every custom claim as a string)", k, v)
			}
		}
	}
	checks := map[string]any{
		"iss": iss.URL(), "aud": "registry.example.com", "sub": "repo:octo-org/octo-repo:ref:refs/heads/main",
		"repository": "octo-org/octo-repo", "repository_owner": "octo-org", "ref": "refs/heads/main",
		"ref_type": "branch", "ref_protected": "false", "event_name": "push", "head_ref": "", "base_ref": "",
		"workflow_ref":       "octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main",
		"job_workflow_ref":   "octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main",
		"runner_environment": "github-hosted", "repository_visibility": "private",
		"iat": now.Unix(), "nbf": now.Unix() - 300, "exp": now.Unix() + 300,
	}
	for k, v := range checks {
		if c[k] != v {
			t.Errorf("%s = %#v, want %#v", k, c[k], v)
		}
	}
	if c["workflow_sha"] != c["sha"] || len(c["sha"].(string)) != 40 {
		t.Errorf("sha %v, workflow_sha %v", c["sha"], c["workflow_sha"])
	}

	// The default audience is GitHub's: the owner's URL.
	if c := iss.GitHubClaims(fakeoidc.GitHubOptions{Owner: "acme"}); c["aud"] != "https://github.com/acme" {
		t.Errorf("default aud %v", c["aud"])
	}

	tests := []struct {
		name string
		o    fakeoidc.GitHubOptions
		want map[string]any
	}{
		{"environment", fakeoidc.GitHubOptions{Owner: "acme", Repo: "app", Environment: "prod"},
			map[string]any{"sub": "repo:acme/app:environment:prod", "environment": "prod"}},
		{"pull request", fakeoidc.GitHubOptions{Owner: "acme", Repo: "app", EventName: "pull_request"},
			map[string]any{"sub": "repo:acme/app:pull_request", "ref": "refs/pull/1/merge", "head_ref": "feature", "base_ref": "main"}},
		{"tag", fakeoidc.GitHubOptions{Owner: "acme", Repo: "app", Ref: "refs/tags/v1.0.0", RefProtected: true},
			map[string]any{"sub": "repo:acme/app:ref:refs/tags/v1.0.0", "ref_type": "tag", "ref_protected": "true"}},
		{"enterprise", fakeoidc.GitHubOptions{Enterprise: "acme-corp", EnterpriseID: "42"},
			map[string]any{"enterprise": "acme-corp", "enterprise_id": "42"}},
		{"reusable workflow", fakeoidc.GitHubOptions{Owner: "acme", Repo: "app", JobWorkflowRef: "acme/ci/.github/workflows/build.yml@refs/heads/main"},
			map[string]any{"job_workflow_ref": "acme/ci/.github/workflows/build.yml@refs/heads/main", "workflow_ref": "acme/app/.github/workflows/ci.yml@refs/heads/main"}},
	}
	for _, tt := range tests {
		c := iss.GitHubClaims(tt.o)
		for k, v := range tt.want {
			if c[k] != v {
				t.Errorf("%s: %s = %#v, want %#v", tt.name, k, c[k], v)
			}
		}
	}
}

func TestGitLabClaims(t *testing.T) {
	t.Parallel()
	iss := fakeoidc.Start(t)
	now := time.Unix(1_700_000_000, 0)
	iss.SetClock(func() time.Time { return now })

	c := iss.GitLabClaims(fakeoidc.GitLabOptions{Namespace: "group/sub", Project: "app", Audience: "registry.example.com"})
	want := sorted("namespace_id", "namespace_path", "project_id", "project_path", "user_id", "user_login",
		"user_email", "user_access_level", "pipeline_id", "pipeline_source", "job_id", "ref", "ref_type",
		"ref_path", "ref_protected", "runner_id", "runner_environment", "sha", "project_visibility",
		"ci_config_ref_uri", "ci_config_sha", "jti", "iss", "iat", "nbf", "exp", "sub", "aud")
	if got := keys(c); !slices.Equal(got, want) {
		t.Errorf("claims\n got %v\nwant %v", got, want)
	}
	host := strings.TrimPrefix(iss.URL(), "http://")
	checks := map[string]any{
		"sub": "project_path:group/sub/app:ref_type:branch:ref:main", "namespace_path": "group/sub",
		"project_path": "group/sub/app", "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main",
		"ref_protected": "false", "runner_id": int64(1), "pipeline_source": "push", "aud": "registry.example.com",
		"ci_config_ref_uri": host + "/group/sub/app//.gitlab-ci.yml@refs/heads/main",
		"iat":               now.Unix(), "nbf": now.Unix() - 5, "exp": now.Unix() + 3600, "iss": iss.URL(),
	}
	for k, v := range checks {
		if c[k] != v {
			t.Errorf("%s = %#v, want %#v", k, c[k], v)
		}
	}

	c = iss.GitLabClaims(fakeoidc.GitLabOptions{
		Ref: "v1.2.0", RefType: "tag", RefProtected: true, Environment: "production", EnvironmentProtected: true,
		DeploymentTier: "production", GroupsDirect: []string{"my-group"}, JobTimeout: 5 * time.Minute,
		UserIdentities: []map[string]any{{"provider": "github", "extern_uid": "2435223452345"}},
	})
	checks = map[string]any{
		"sub": "project_path:my-group/my-project:ref_type:tag:ref:v1.2.0", "ref_path": "refs/tags/v1.2.0",
		"ref_protected": "true", "environment": "production", "environment_protected": "true",
		"deployment_tier": "production", "exp": now.Unix() + 300, "aud": iss.URL(),
	}
	for k, v := range checks {
		if c[k] != v {
			t.Errorf("%s = %#v, want %#v", k, c[k], v)
		}
	}
	if g, ok := c["groups_direct"].([]any); !ok || len(g) != 1 || g[0] != "my-group" {
		t.Errorf("groups_direct %#v", c["groups_direct"])
	}
	if ids, ok := c["user_identities"].([]any); !ok || len(ids) != 1 {
		t.Errorf("user_identities %#v", c["user_identities"])
	}
}

func TestKubernetesClaims(t *testing.T) {
	t.Parallel()
	iss := fakeoidc.Start(t, fakeoidc.WithJWKSPath("/openid/v1/jwks"))
	now := time.Unix(1_700_000_000, 0)
	iss.SetClock(func() time.Time { return now })
	c := iss.KubernetesClaims(fakeoidc.KubernetesOptions{Namespace: "ci", ServiceAccount: "builder", PodName: "build-1",
		NodeName: "node-a", Audiences: []string{"registry.example.com"}})
	if got, want := keys(c), sorted("aud", "exp", "iat", "iss", "jti", "kubernetes.io", "nbf", "sub"); !slices.Equal(got, want) {
		t.Errorf("claims %v, want %v", got, want)
	}
	if c["sub"] != "system:serviceaccount:ci:builder" || c["iat"] != now.Unix() || c["nbf"] != now.Unix() || c["exp"] != now.Unix()+3600 {
		t.Errorf("claims %v", c)
	}
	if aud, ok := c["aud"].([]any); !ok || len(aud) != 1 || aud[0] != "registry.example.com" {
		t.Errorf("aud %#v, want an array", c["aud"])
	}
	k8s := c["kubernetes.io"].(map[string]any)
	sa := k8s["serviceaccount"].(map[string]any)
	pod := k8s["pod"].(map[string]any)
	node := k8s["node"].(map[string]any)
	if k8s["namespace"] != "ci" || sa["name"] != "builder" || sa["uid"] == "" || pod["name"] != "build-1" || node["name"] != "node-a" {
		t.Errorf("kubernetes.io %#v", k8s)
	}
	// Without a pod, neither pod nor node; the audience defaults to the issuer.
	c = iss.KubernetesClaims(fakeoidc.KubernetesOptions{NodeName: "node-a"})
	k8s = c["kubernetes.io"].(map[string]any)
	if _, ok := k8s["pod"]; ok || k8s["node"] != nil || c["sub"] != "system:serviceaccount:default:default" {
		t.Errorf("claims %#v", c)
	}
	if aud := c["aud"].([]any); aud[0] != iss.URL() {
		t.Errorf("default aud %v", aud)
	}

	// The key set is where WithJWKSPath says, and the discovery document too.
	if !strings.HasSuffix(iss.JWKSURL(), "/openid/v1/jwks") {
		t.Errorf("JWKS URL %s", iss.JWKSURL())
	}
	keySet(t, iss)
}

func TestFaults(t *testing.T) {
	t.Parallel()
	iss := fakeoidc.Start(t)
	client := iss.Client()

	iss.SetStatus(http.StatusServiceUnavailable)
	if code, _, _ := get(t, client, http.MethodGet, iss.JWKSURL()); code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", code)
	}
	iss.SetStatus(0)

	iss.SetDown(true)
	// No keep-alive: the transport retries a request whose reused
	// connection closed, which would count twice.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, u := range []string{iss.DiscoveryURL(), iss.JWKSURL()} {
		resp, err := fresh.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s answered %d while down", u, resp.StatusCode)
		}
	}
	iss.SetDown(false)
	if iss.Calls() != 3 || iss.JWKSCalls() != 2 || iss.DiscoveryCalls() != 1 {
		t.Errorf("calls %d (JWKS %d, discovery %d), want 3 (2, 1)", iss.Calls(), iss.JWKSCalls(), iss.DiscoveryCalls())
	}

	iss.SetDiscoveryField("issuer", "https://evil.example")
	iss.SetDiscoveryField("scopes_supported", nil)
	_, _, body := get(t, client, http.MethodGet, iss.DiscoveryURL())
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc["scopes_supported"]; doc["issuer"] != "https://evil.example" || ok {
		t.Errorf("discovery overrides not applied: %s", body)
	}

	// A delayed request ends when the issuer closes.
	iss.SetDelay(time.Hour)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := client.Get(iss.JWKSURL())
		if err == nil {
			resp.Body.Close()
		}
	}()
	for iss.JWKSCalls() < 3 {
		time.Sleep(time.Millisecond)
	}
	iss.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a delayed request outlived Close")
	}
}

func TestTLSAndIssuerPath(t *testing.T) {
	t.Parallel()
	iss := fakeoidc.Start(t, fakeoidc.WithTLS(), fakeoidc.WithIssuerPath("/_services/token"))
	if !strings.HasPrefix(iss.URL(), "https://127.0.0.1:") || !strings.HasSuffix(iss.URL(), "/_services/token") {
		t.Fatalf("issuer %s", iss.URL())
	}
	code, _, body := get(t, iss.Client(), http.MethodGet, iss.DiscoveryURL())
	if code != http.StatusOK {
		t.Fatalf("discovery: %d", code)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["issuer"] != iss.URL() || doc["jwks_uri"] != iss.URL()+"/.well-known/jwks" {
		t.Errorf("discovery %s", body)
	}
	keySet(t, iss)
	if c := iss.GitHubClaims(fakeoidc.GitHubOptions{}); c["iss"] != iss.URL() {
		t.Errorf("iss %v", c["iss"])
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	for _, opts := range [][]fakeoidc.Option{
		{fakeoidc.WithAlgorithm("HS256")},
		{fakeoidc.WithJWKSPath("jwks")},
		{fakeoidc.WithIssuerPath("x")},
	} {
		if iss, err := fakeoidc.New(opts...); err == nil {
			iss.Close()
			t.Errorf("New accepted bad options")
		}
	}
}

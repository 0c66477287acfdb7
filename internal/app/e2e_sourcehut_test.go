package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

// sourcehutLogin is what `docker login -u sourcehut -p "$OAUTH2_TOKEN"`
// stores and sends: any user name, the token as password.
func sourcehutLogin(token string) authn.Authenticator {
	return &authn.Basic{Username: "sourcehut", Password: token}
}

// tokenResult is the interesting part of a /auth answer.
type tokenResult struct {
	status     int
	message    string
	decisionID string
	subject    string // the token's sub claim
	access     []struct {
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
	}
}

// requestToken asks the token server directly, as a registry client's first
// step does.
func requestToken(t *testing.T, addr, user, password, scope string) tokenResult {
	t.Helper()
	res, err := fetchToken(t.Context(), addr, user, password, scope)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// fetchToken is requestToken for goroutines, which must not call t.Fatal.
func fetchToken(ctx context.Context, addr, user, password, scope string) (tokenResult, error) {
	q := url.Values{"service": {"registry.example.com"}, "scope": {scope}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/auth?"+q.Encode(), nil)
	if err != nil {
		return tokenResult{}, err
	}
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return tokenResult{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return tokenResult{}, err
	}
	res := tokenResult{status: resp.StatusCode, decisionID: resp.Header.Get("X-Decision-Id")}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Errors []struct{ Message string } `json:"errors"`
		}
		if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
			return res, fmt.Errorf("status %d with a body that is not a JSON error: %s", resp.StatusCode, body)
		}
		res.message = e.Errors[0].Message
		return res, nil
	}
	var ok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &ok); err != nil {
		return res, err
	}
	var claims struct {
		Subject string          `json:"sub"`
		Access  json.RawMessage `json:"access"`
	}
	if err := decodeClaims(ok.Token, &claims); err != nil {
		return res, err
	}
	res.subject = claims.Subject
	return res, json.Unmarshal(claims.Access, &res.access)
}

// decodeClaims decodes the claim set of a compact JWS into v, without
// checking the signature (the registry does that).
func decodeClaims(token string, v any) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fmt.Errorf("not a JWS: %q", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	return json.Unmarshal(payload, v)
}

// sourcehutAuthn is the authn.sourcehut section for the fake meta.sr.ht,
// letting users log in (carol, unless told otherwise: she has no htpasswd
// line in deploy, so she owns carol/*).
func sourcehutAuthn(meta *fakemeta.Server, maxCacheTTL string, users ...string) string {
	if len(users) == 0 {
		users = []string{"carol"}
	}
	return "  sourcehut:\n    meta_url: " + meta.URL() + "\n    timeout: 2s\n    max_cache_ttl: " + maxCacheTTL +
		"\n    users: [" + strings.Join(users, ", ") + "]\n"
}

// TestEndToEndSourcehut is the builds.sr.ht story against a real registry:
// the job's token pushes to its owner's namespace and nowhere else, with
// meta.sr.ht (the fake) asked once per token.
func TestEndToEndSourcehut(t *testing.T) {
	t.Parallel()
	meta := fakemeta.Start(t)
	d := deploy(t, deployOptions{keyType: "ec", authn: sourcehutAuthn(meta, "0")})
	hour := time.Now().Add(time.Hour)
	mint := func(user, grants string) string {
		return meta.Mint(fakemeta.TokenOptions{Username: user, Grants: grants, Expires: hour, ClientID: "builds.sr.ht"})
	}
	rw := mint("carol", "registry.example.com/REGISTRY:RW")
	ro := mint("carol", "registry.example.com/REGISTRY:RO")
	var tokens []string

	t.Run("RW token pushes and pulls in its owner's namespace", func(t *testing.T) {
		tokens = append(tokens, rw)
		if err := pushImage(t, d.registry, "carol/app:ci", sourcehutLogin(rw)); err != nil {
			t.Fatalf("push: %v", err)
		}
		if err := pullImage(t, d.registry, "carol/app:ci", sourcehutLogin(rw)); err != nil {
			t.Fatalf("pull: %v", err)
		}
	})
	t.Run("RW token is refused on another namespace", func(t *testing.T) {
		wantDenied(t, pushImage(t, d.registry, "bob/app:ci", sourcehutLogin(rw)))
	})
	t.Run("RO token pulls but cannot push", func(t *testing.T) {
		tokens = append(tokens, ro)
		if err := pullImage(t, d.registry, "carol/app:ci", sourcehutLogin(ro)); err != nil {
			t.Fatalf("pull: %v", err)
		}
		wantDenied(t, pushImage(t, d.registry, "carol/app:ro", sourcehutLogin(ro)))
	})
	t.Run("personal access token (all grants) pushes", func(t *testing.T) {
		pat := mint("carol", "")
		tokens = append(tokens, pat)
		if err := pushImage(t, d.registry, "carol/laptop:v1", sourcehutLogin(pat)); err != nil {
			t.Fatalf("push: %v", err)
		}
	})

	refused := []struct {
		name, token, message string
		upstreamCalls        int64
	}{
		{"token with only meta.sr.ht/PROFILE:RO", mint("carol", "meta.sr.ht/PROFILE:RO"), "lacks the grant", 0},
		{"token for another registry", mint("carol", "other.example.com/REGISTRY:RW"), "lacks the grant", 0},
		{"expired token", meta.Mint(fakemeta.TokenOptions{Username: "carol", Grants: "registry.example.com/REGISTRY:RW", Expires: time.Now().Add(-time.Minute)}), "expired", 0},
		{"token with one byte changed", flipByte(t, rw), "rejected", 1},
		{"token minted with another key", fakemeta.MintWithKey(make([]byte, 32), fakemeta.TokenOptions{Username: "carol", Grants: "registry.example.com/REGISTRY:RW", Expires: hour}), "rejected", 1},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			tokens = append(tokens, tc.token)
			before := meta.Calls()
			res := requestToken(t, d.addr, "sourcehut", tc.token, "repository:carol/app:pull")
			if res.status != http.StatusUnauthorized || !strings.Contains(res.message, tc.message) {
				t.Fatalf("got %d %q, want 401 mentioning %q", res.status, res.message, tc.message)
			}
			if got := meta.Calls() - before; got != tc.upstreamCalls {
				t.Errorf("%d calls to meta.sr.ht, want %d", got, tc.upstreamCalls)
			}
			wantDenied(t, pullImage(t, d.registry, "carol/app:ci", sourcehutLogin(tc.token)))
		})
	}

	t.Run("a cached token costs no upstream call, even while meta.sr.ht is down", func(t *testing.T) {
		meta.ResetCalls()
		for i := range 1000 {
			if i == 500 {
				meta.SetDown(true)
			}
			res := requestToken(t, d.addr, "sourcehut", rw, "repository:carol/app:pull,push")
			if res.status != http.StatusOK || len(res.access) != 1 || !slices.Equal(res.access[0].Actions, []string{"pull", "push"}) {
				t.Fatalf("request %d: %+v", i, res)
			}
		}
		if n := meta.Calls(); n != 0 {
			t.Fatalf("%d calls to meta.sr.ht, want 0", n)
		}
		if err := pushImage(t, d.registry, "carol/app:while-down", sourcehutLogin(rw)); err != nil {
			t.Fatalf("push while meta.sr.ht is down: %v", err)
		}
	})
	t.Run("a new token while meta.sr.ht is down is refused and not cached", func(t *testing.T) {
		meta.SetDown(true)
		// Tokens are deterministic: a distinct expiry makes a distinct token.
		fresh := meta.Mint(fakemeta.TokenOptions{Username: "carol", Grants: "registry.example.com/REGISTRY:RW", Expires: hour.Add(time.Minute)})
		tokens = append(tokens, fresh)
		res := requestToken(t, d.addr, "sourcehut", fresh, "repository:carol/app:push")
		if res.status != http.StatusServiceUnavailable || !strings.Contains(res.message, "could not be reached") {
			t.Fatalf("got %d %q, want 503 saying the upstream could not be reached", res.status, res.message)
		}
		meta.SetDown(false)
		before := meta.Calls()
		res = requestToken(t, d.addr, "sourcehut", fresh, "repository:carol/app:push")
		if res.status != http.StatusOK {
			t.Fatalf("after meta.sr.ht came back: %d %q", res.status, res.message)
		}
		if meta.Calls()-before != 1 {
			t.Fatalf("the failure was cached: %d upstream calls after recovery, want 1", meta.Calls()-before)
		}
	})
	meta.SetDown(false)

	t.Run("no token in the logs", func(t *testing.T) {
		logs := d.logs.String()
		for i, tok := range tokens {
			if strings.Contains(logs, tok) {
				t.Errorf("token %d appears in the server log", i)
			}
		}
	})
}

// TestEndToEndSourcehutRevocation shows max_cache_ttl bounding how long a
// revoked token keeps working.
func TestEndToEndSourcehutRevocation(t *testing.T) {
	t.Parallel()
	meta := fakemeta.Start(t)
	d := deploy(t, deployOptions{keyType: "ec", authn: sourcehutAuthn(meta, "1s")})
	tok := meta.Mint(fakemeta.TokenOptions{Username: "carol", Grants: "registry.example.com/REGISTRY:RW", Expires: time.Now().Add(time.Hour)})
	if res := requestToken(t, d.addr, "sourcehut", tok, "repository:carol/app:push"); res.status != http.StatusOK {
		t.Fatalf("first login: %d %q", res.status, res.message)
	}
	// `docker login` with the token: the refresh token it stores works.
	rt := offlineLogin(t, d.addr, "sourcehut", tok, "docker")
	if res := refreshGrant(t, d.addr, rt, "docker", "repository:carol/app:push"); res.status != http.StatusOK {
		t.Fatalf("refresh grant before the revocation: %d %q", res.status, res.message)
	}
	meta.Revoke(tok)
	// Still cached: revocation is not seen yet.
	if res := requestToken(t, d.addr, "sourcehut", tok, "repository:carol/app:push"); res.status != http.StatusOK {
		t.Fatalf("right after revocation (cached): %d %q", res.status, res.message)
	}
	time.Sleep(1100 * time.Millisecond) // let the entry age past max_cache_ttl
	res := requestToken(t, d.addr, "sourcehut", tok, "repository:carol/app:push")
	if res.status != http.StatusUnauthorized {
		t.Fatalf("after max_cache_ttl: %d %q, want 401", res.status, res.message)
	}
	wantDenied(t, pushImage(t, d.registry, "carol/app:revoked", sourcehutLogin(tok)))
	// The refresh token made from it ends with it: it carries the token
	// sealed, and its redemption has it checked again.
	if res := refreshGrant(t, d.addr, rt, "docker", "repository:carol/app:push"); res.status != http.StatusUnauthorized || !strings.Contains(res.message, "revoked") {
		t.Errorf("refresh grant after the revocation: %d %q, want 401", res.status, res.message)
	}
	if strings.Contains(rt, tok) {
		t.Error("the Sourcehut token is readable in the refresh token")
	}
}

func flipByte(t *testing.T, token string) string {
	t.Helper()
	raw, err := base64.RawStdEncoding.DecodeString(token)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-40] ^= 0x01 // inside the payload's user name, so it still decodes
	return base64.RawStdEncoding.EncodeToString(raw)
}

// TestDockerLoginSourcehut runs the docker CLI's client-side login (no daemon
// needed) with a Sourcehut token, as a builds.sr.ht job does.
func TestDockerLoginSourcehut(t *testing.T) {
	t.Parallel()
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker CLI on this machine: the docker login check needs one")
	}
	meta := fakemeta.Start(t)
	d := deploy(t, deployOptions{keyType: "ec", authn: sourcehutAuthn(meta, "0")})
	good := meta.Mint(fakemeta.TokenOptions{Username: "carol", Grants: "registry.example.com/REGISTRY:RW", Expires: time.Now().Add(time.Hour)})
	bad := fakemeta.MintWithKey(make([]byte, 32), fakemeta.TokenOptions{Username: "carol", Grants: "registry.example.com/REGISTRY:RW", Expires: time.Now().Add(time.Hour)})
	// docker treats localhost registries as insecure (plain HTTP allowed).
	_, port, _ := strings.Cut(d.registry, ":")
	target := "localhost:" + port
	login := func(token string) (string, error) {
		cfgDir := t.TempDir()
		cmd := exec.CommandContext(t.Context(), docker, "login", target, "-u", "sourcehut", "--password-stdin")
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfgDir)
		cmd.Stdin = strings.NewReader(token)
		out, err := cmd.CombinedOutput()
		if err == nil {
			if _, statErr := os.Stat(filepath.Join(cfgDir, "config.json")); statErr != nil {
				t.Errorf("login succeeded but stored no credentials: %v", statErr)
			}
		}
		return string(out), err
	}
	if out, err := login(good); err != nil {
		t.Fatalf("docker login with a good token: %v\n%s", err, out)
	}
	out, err := login(bad)
	if err == nil {
		t.Fatalf("docker login with a bad token succeeded:\n%s", out)
	}
	if strings.Contains(out, bad) || strings.Contains(d.logs.String(), bad) || strings.Contains(d.logs.String(), good) {
		t.Error("a token was echoed by docker or logged by the server")
	}
}

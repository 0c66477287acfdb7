package app

import (
	"encoding/base64"
	"encoding/json"
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

// ggcrClientID is the client_id go-containerregistry (crane) sends with
// every OAuth2 request; the logins whose refresh tokens crane uses send it
// too, as crane itself would (the client_id is recorded, not enforced).
const ggcrClientID = "go-containerregistry"

// refreshResult is the interesting part of a /auth answer to a login or a
// refresh grant.
type refreshResult struct {
	status       int
	message      string
	refreshToken string
	access       []struct {
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
	}
}

// readRefreshResult reads a token response (or error) from the server.
func readRefreshResult(t *testing.T, resp *http.Response) refreshResult {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	res := refreshResult{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Errors []struct{ Message string } `json:"errors"`
			Error  string                     `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
			t.Fatalf("status %d with a body that is not a JSON error: %s", resp.StatusCode, body)
		}
		res.message = e.Error + ": " + e.Errors[0].Message
		return res
	}
	var ok struct {
		Token        string `json:"token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &ok); err != nil {
		t.Fatal(err)
	}
	res.refreshToken = ok.RefreshToken
	var claims struct {
		Access json.RawMessage `json:"access"`
	}
	if err := decodeClaims(ok.Token, &claims); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(claims.Access, &res.access); err != nil {
		t.Fatal(err)
	}
	return res
}

// offlineLogin is `docker login`: a GET with Basic credentials asking for
// offline access (offline_token=true); it returns the refresh token.
func offlineLogin(t *testing.T, addr, user, password, clientID string) string {
	t.Helper()
	q := url.Values{"service": {"registry.example.com"}, "account": {user}, "client_id": {clientID}, "offline_token": {"true"}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/auth?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res := readRefreshResult(t, resp)
	if res.status != http.StatusOK || res.refreshToken == "" {
		t.Fatalf("offline login of %s: %d %q, refresh token %q", user, res.status, res.message, res.refreshToken)
	}
	return res.refreshToken
}

// refreshGrant trades a refresh token for an access token, as docker and
// crane do once logged in (POST grant_type=refresh_token).
func refreshGrant(t *testing.T, addr, refreshToken, clientID, scope string) refreshResult {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "service": {"registry.example.com"},
		"client_id": {clientID}, "scope": {scope}}
	resp, err := http.PostForm("http://"+addr+"/auth", form)
	if err != nil {
		t.Fatal(err)
	}
	return readRefreshResult(t, resp)
}

// actionsOn returns the actions a refresh grant's access token carries on
// repo.
func (r refreshResult) actionsOn(repo string) []string {
	for _, a := range r.access {
		if a.Type == "repository" && a.Name == repo {
			return a.Actions
		}
	}
	return nil
}

// identityToken is what crane (or docker) holds after a login that returned a
// refresh token: nothing but that token. go-containerregistry then only ever
// POSTs grant_type=refresh_token.
func identityToken(rt string) authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{IdentityToken: rt})
}

// setLine replaces user's line of an htpasswd file (removes it if line is
// ""), leaving every other line as it was.
func setLine(t *testing.T, path, user, line string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for l := range strings.Lines(string(data)) {
		if strings.HasPrefix(l, user+":") {
			l = line
		}
		out.WriteString(l)
	}
	writeFile(t, path, out.String())
}

// TestEndToEndRefresh: a client logs in once with its password asking for a
// refresh token, then pushes and pulls with the refresh token alone against
// a real registry. A policy change applies to it at once, and a new
// htpasswd line for the user ends it.
func TestEndToEndRefresh(t *testing.T) {
	t.Parallel()
	d := deploy(t, deployOptions{keyType: "ec"})
	rt := offlineLogin(t, d.addr, "alice", passwords["alice"], ggcrClientID)

	// The refresh grant by hand: an access token for what alice may do,
	// and the same refresh token back.
	res := refreshGrant(t, d.addr, rt, ggcrClientID, "repository:alice/app:pull,push repository:bob/app:pull,push")
	if res.status != http.StatusOK {
		t.Fatalf("refresh grant: %d %q", res.status, res.message)
	}
	if res.refreshToken != rt {
		t.Error("the refresh grant returned another refresh token")
	}
	if got := res.actionsOn("alice/app"); !slices.Equal(got, []string{"pull", "push"}) {
		t.Errorf("alice/app: %v, want pull,push", got)
	}
	if got := res.actionsOn("bob/app"); got != nil {
		t.Errorf("bob/app: %v, want nothing", got)
	}

	// The client holds the refresh token only: every token it gets from
	// here on comes from the refresh grant, none from the password.
	passwordLogins := strings.Count(d.logs.String(), "auth_method=password ")
	refreshes := strings.Count(d.logs.String(), "auth_method=refresh/password ")
	if err := pushImage(t, d.registry, "alice/app:v1", identityToken(rt)); err != nil {
		t.Fatalf("push with the refresh token: %v", err)
	}
	if err := pullImage(t, d.registry, "alice/app:v1", identityToken(rt)); err != nil {
		t.Fatalf("pull with the refresh token: %v", err)
	}
	log := d.logs.String()
	if n := strings.Count(log, "auth_method=password "); n != passwordLogins {
		t.Errorf("%d password logins during the push, want none", n-passwordLogins)
	}
	if n := strings.Count(log, "auth_method=refresh/password "); n <= refreshes {
		t.Error("the push did not use the refresh grant")
	}
	wantDenied(t, pushImage(t, d.registry, "bob/app:v1", identityToken(rt)))
	// The registry takes the refresh token for no access token.
	if status := manifestStatus(t, d.registry, "alice/app", "v1", rt); status != http.StatusUnauthorized {
		t.Errorf("the registry answered %d to the refresh token as a bearer token, want 401", status)
	}

	// A policy change applies to the refresh token at once: the next grant
	// is decided by the new policy, no new login needed.
	bundleDir := filepath.Join(t.TempDir(), "pull-only")
	if err := os.MkdirAll(bundleDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(bundleDir, ".manifest"), `{"revision": "pull-only", "roots": ["registry"]}`)
	writeFile(t, filepath.Join(bundleDir, "authz.rego"), policyFor(`["pull"]`))
	original, err := os.ReadFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	const dataSection = "policy:\n  data:\n    public: [\"library/*\"]\n"
	if !strings.Contains(string(original), dataSection) {
		t.Fatalf("the deployment's config has no %q:\n%s", dataSection, original)
	}
	writeFile(t, d.config, strings.Replace(string(original), dataSection, "policy:\n  bundles: ["+bundleDir+"]\n", 1))
	waitFor(t, "the pull-only policy", func() bool {
		res := refreshGrant(t, d.addr, rt, ggcrClientID, "repository:alice/app:pull,push")
		return res.status == http.StatusOK && slices.Equal(res.actionsOn("alice/app"), []string{"pull"})
	})
	wantDenied(t, pushImage(t, d.registry, "alice/app:v2", identityToken(rt)))
	if err := pullImage(t, d.registry, "alice/app:v1", identityToken(rt)); err != nil {
		t.Errorf("pull under the pull-only policy: %v", err)
	}
	// And back.
	writeFile(t, d.config, string(original))
	waitFor(t, "the default policy again", func() bool {
		return slices.Equal(refreshGrant(t, d.addr, rt, ggcrClientID, "repository:alice/app:pull,push").actionsOn("alice/app"), []string{"pull", "push"})
	})
	if err := pushImage(t, d.registry, "alice/app:v2", identityToken(rt)); err != nil {
		t.Fatalf("push after the policy came back: %v", err)
	}

	// A new password for alice (a new htpasswd line; bob's stays as it was)
	// ends her refresh tokens as soon as the file is reloaded.
	bobRT := offlineLogin(t, d.addr, "bob", passwords["bob"], ggcrClientID)
	const newPassword = "alice-e2e-new-secret-9"
	setLine(t, d.htpasswd, "alice", htpasswdLine(t, "alice", newPassword))
	waitFor(t, "the refresh token to be refused after the htpasswd change", func() bool {
		return refreshGrant(t, d.addr, rt, ggcrClientID, "repository:alice/app:pull").status == http.StatusUnauthorized
	})
	res = refreshGrant(t, d.addr, rt, ggcrClientID, "repository:alice/app:pull")
	if !strings.HasPrefix(res.message, "invalid_grant: ") || !strings.Contains(res.message, "password changed") {
		t.Errorf("refused refresh: %q, want invalid_grant saying the password changed", res.message)
	}
	wantDenied(t, pushImage(t, d.registry, "alice/app:v3", identityToken(rt)))
	// Another user's line did not change: bob's refresh token still works.
	if res := refreshGrant(t, d.addr, bobRT, ggcrClientID, "repository:bob/app:pull,push"); res.status != http.StatusOK {
		t.Errorf("bob's refresh token after alice's change: %d %q", res.status, res.message)
	}
	// Logging in again with the new password gives a refresh token that works.
	rt2 := offlineLogin(t, d.addr, "alice", newPassword, ggcrClientID)
	if err := pushImage(t, d.registry, "alice/app:v3", identityToken(rt2)); err != nil {
		t.Fatalf("push with the new refresh token: %v", err)
	}

	// Removing alice ends that one too.
	setLine(t, d.htpasswd, "alice", "")
	waitFor(t, "the refresh token to be refused after alice's removal", func() bool {
		return refreshGrant(t, d.addr, rt2, ggcrClientID, "repository:alice/app:pull").status == http.StatusUnauthorized
	})

	// The refresh tokens were never logged.
	log = d.logs.String()
	for _, tok := range []string{rt, rt2, bobRT} {
		for part := range strings.SplitSeq(tok, ".") {
			if strings.Contains(log, part) {
				t.Fatal("a part of a refresh token appears in the server log")
			}
		}
	}
	for user, pw := range map[string]string{"alice": passwords["alice"], "alice (new)": newPassword} {
		if strings.Contains(log, pw) {
			t.Errorf("the password of %s appears in the server log", user)
		}
	}
}

// TestEndToEndRefreshSourcehut: a refresh token made from a Sourcehut token
// keeps that token's limits: a read-only token's is held to pull, and none
// outlives the Sourcehut token.
func TestEndToEndRefreshSourcehut(t *testing.T) {
	t.Parallel()
	meta := fakemeta.Start(t)
	d := deploy(t, deployOptions{keyType: "ec", authn: sourcehutAuthn(meta, "0")})
	hour := time.Now().Add(time.Hour)
	rw := meta.Mint(fakemeta.TokenOptions{Username: "carol", Grants: "registry.example.com/REGISTRY:RW", Expires: hour, ClientID: "builds.sr.ht"})
	ro := meta.Mint(fakemeta.TokenOptions{Username: "carol", Grants: "registry.example.com/REGISTRY:RO", Expires: hour, ClientID: "builds.sr.ht"})

	rwRT := offlineLogin(t, d.addr, "sourcehut", rw, ggcrClientID)
	roRT := offlineLogin(t, d.addr, "sourcehut", ro, ggcrClientID)
	if err := pushImage(t, d.registry, "carol/app:v1", identityToken(rwRT)); err != nil {
		t.Fatalf("push with a read-write token's refresh token: %v", err)
	}
	// The read-only cap holds through the refresh token.
	res := refreshGrant(t, d.addr, roRT, ggcrClientID, "repository:carol/app:pull,push")
	if res.status != http.StatusOK || !slices.Equal(res.actionsOn("carol/app"), []string{"pull"}) {
		t.Fatalf("read-only refresh grant: %d %q %v, want pull only", res.status, res.message, res.access)
	}
	wantDenied(t, pushImage(t, d.registry, "carol/app:v2", identityToken(roRT)))
	if err := pullImage(t, d.registry, "carol/app:v1", identityToken(roRT)); err != nil {
		t.Errorf("pull with a read-only token's refresh token: %v", err)
	}
	if !strings.Contains(d.logs.String(), "auth_method=refresh/sourcehut ") {
		t.Error("the log does not name the refreshed Sourcehut logins")
	}

	// A build token lives until the job's deadline; so does its refresh
	// token.
	short := meta.Mint(fakemeta.TokenOptions{Username: "carol", Grants: "registry.example.com/REGISTRY:RW",
		Expires: time.Now().Add(3 * time.Second), ClientID: "builds.sr.ht"})
	shortRT := offlineLogin(t, d.addr, "sourcehut", short, ggcrClientID)
	if res := refreshGrant(t, d.addr, shortRT, ggcrClientID, "repository:carol/app:pull"); res.status != http.StatusOK {
		t.Fatalf("refresh before the Sourcehut token expired: %d %q", res.status, res.message)
	}
	waitFor(t, "the refresh token to die with its Sourcehut token", func() bool {
		return refreshGrant(t, d.addr, shortRT, ggcrClientID, "repository:carol/app:pull").status == http.StatusUnauthorized
	})

	log := d.logs.String()
	for what, tok := range map[string]string{"rw": rw, "ro": ro, "short": short, "rw refresh": rwRT, "ro refresh": roRT, "short refresh": shortRT} {
		if strings.Contains(log, tok[len(tok)-32:]) {
			t.Errorf("the %s token appears in the server log", what)
		}
	}
}

// TestDockerLoginRefresh runs the docker CLI's client-side login (no daemon
// needed) with a password: it asks for offline access, stores the refresh
// token as its identity token instead of the password, and that token is
// good for the refresh grant docker sends on push.
func TestDockerLoginRefresh(t *testing.T) {
	t.Parallel()
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker CLI on this machine: the docker login check needs one")
	}
	d := deploy(t, deployOptions{keyType: "ec"})
	_, port, _ := strings.Cut(d.registry, ":")
	target := "localhost:" + port // docker treats localhost registries as insecure
	cfgDir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), docker, "login", target, "-u", "alice", "--password-stdin")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfgDir)
	cmd.Stdin = strings.NewReader(passwords["alice"])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker login: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(cfgDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	entry := cfg.Auths[target]
	if entry.IdentityToken == "" {
		t.Fatalf("docker stored no identity token for %s: %s", target, raw)
	}
	if strings.Contains(string(raw), passwords["alice"]) || strings.Contains(string(raw), base64.StdEncoding.EncodeToString([]byte("alice:"+passwords["alice"]))) {
		t.Error("docker stored the password beside the identity token")
	}
	// What docker sends on push: the refresh grant with client_id docker.
	res := refreshGrant(t, d.addr, entry.IdentityToken, "docker", "repository:alice/app:pull,push")
	if res.status != http.StatusOK || res.refreshToken != entry.IdentityToken || !slices.Equal(res.actionsOn("alice/app"), []string{"pull", "push"}) {
		t.Fatalf("docker's refresh grant: %d %q %v", res.status, res.message, res.access)
	}
	if strings.Contains(d.logs.String(), entry.IdentityToken[len(entry.IdentityToken)-32:]) {
		t.Error("the identity token appears in the server log")
	}
}

// TestRefreshBlindPolicyWarned: a policy that tells logins apart by
// identity.method alone would let refresh tokens (method "refresh") escape
// its rules; serve says so when refresh tokens are on, and only then.
func TestRefreshBlindPolicyWarned(t *testing.T) {
	t.Parallel()
	const warning = "never reads input.identity.refreshed_from"
	bundleDir := filepath.Join(t.TempDir(), "blind")
	if err := os.MkdirAll(bundleDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(bundleDir, ".manifest"), `{"revision": "blind", "roots": ["registry"]}`)
	writeFile(t, filepath.Join(bundleDir, "authz.rego"), `package registry.authz

allow contains "push" if input.identity.method == "password"
`)
	_, logs, _ := policyServer(t, "policy:\n  bundles: ["+bundleDir+"]\n")
	if !strings.Contains(logs.String(), warning) {
		t.Errorf("no warning about the policy:\n%s", logs)
	}
	_, logs, _ = policyServer(t, "token:\n  refresh:\n    enabled: false\npolicy:\n  bundles: ["+bundleDir+"]\n")
	if strings.Contains(logs.String(), warning) {
		t.Error("a warning about refresh tokens with refresh tokens off")
	}
	_, logs, _ = policyServer(t, "")
	if strings.Contains(logs.String(), warning) {
		t.Error("the default policy is warned about")
	}
}

package app

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// policyFor is a small policy granting alice the given actions on alice/*.
func policyFor(actions string) string {
	return fmt.Sprintf(`package registry.authz

allow contains action if {
	input.identity.subject == "alice"
	startswith(input.scope.name, "alice/")
	some action in %s
}
`, actions)
}

// waitFor polls cond until it holds; reloads and bundle polling are
// asynchronous. The deadline only bounds a failing test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func grantedOn(t *testing.T, addr, scope string) []string {
	t.Helper()
	res := requestToken(t, addr, "alice", passwords["alice"], scope)
	if res.status != http.StatusOK {
		t.Fatalf("token request: %d %q", res.status, res.message)
	}
	if len(res.access) == 0 {
		return nil
	}
	return res.access[0].Actions
}

// policyServer starts a token server with the given policy section and
// alice in htpasswd.
func policyServer(t *testing.T, policyYAML string) (addr string, logs *syncBuffer, htpasswd string) {
	t.Helper()
	cfg, htpasswd := policyConfig(t, policyYAML)
	srv, logs := startServer(t, cfg)
	return srv.Addr(), logs, htpasswd
}

// policyConfig writes the config of policyServer and its htpasswd file.
func policyConfig(t *testing.T, policyYAML string) (cfg, htpasswd string) {
	t.Helper()
	dir := t.TempDir()
	htpasswd = filepath.Join(dir, "htpasswd")
	writeFile(t, htpasswd, htpasswdLine(t, "alice", passwords["alice"]))
	cfg = filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, "listen: 127.0.0.1:0\nbrute_force:\n  threshold: 0\nlog:\n  level: debug\nauthn:\n  htpasswd: "+htpasswd+"\n  sourcehut:\n    enabled: false\n"+policyYAML)
	return cfg, htpasswd
}

// TestHotReload changes a local bundle and the htpasswd file under a running
// server: good changes take effect, a broken policy leaves the last good one
// in force, and no request in flight fails.
func TestHotReload(t *testing.T) {
	bundleDir := filepath.Join(t.TempDir(), "bundle")
	if err := os.MkdirAll(bundleDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(bundleDir, ".manifest"), `{"revision": "r1", "roots": ["registry"]}`)
	writeFile(t, filepath.Join(bundleDir, "authz.rego"), policyFor(`["pull", "push"]`))
	// Through Run, as the binary runs: the file watch and SIGHUP are
	// serve's.
	cfg, htpasswd := policyConfig(t, "policy:\n  bundles: ["+bundleDir+"]\n")
	addr, logs := serveThroughRun(t, cfg)

	// Requests run all along; none may fail while the policy is swapped.
	var stop atomic.Bool
	var failures atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			res, err := fetchToken(t.Context(), addr, "alice", passwords["alice"], "repository:alice/app:pull")
			if err != nil || res.status != http.StatusOK {
				failures.Add(1)
			}
		}
	}()

	if got := grantedOn(t, addr, "repository:alice/app:pull,push"); !slices.Equal(got, []string{"pull", "push"}) {
		t.Fatalf("r1: %v", got)
	}
	writeFile(t, filepath.Join(bundleDir, "authz.rego"), policyFor(`["pull"]`))
	writeFile(t, filepath.Join(bundleDir, ".manifest"), `{"revision": "r2", "roots": ["registry"]}`)
	waitFor(t, "r2 to take effect", func() bool {
		return slices.Equal(grantedOn(t, addr, "repository:alice/app:pull,push"), []string{"pull"})
	})
	// Requests never stop here, so the log is written by its timer
	// (log.flush_interval), not at once.
	waitFor(t, "a request line naming revision r2", func() bool { return strings.Contains(logs.String(), "revision=r2") })

	// A policy that does not compile is refused; r2 stays.
	writeFile(t, filepath.Join(bundleDir, "authz.rego"), "package registry.authz\n\nallow contains if {\n")
	waitFor(t, "the broken policy to be refused", func() bool { return strings.Contains(logs.String(), "reload failed") })
	if got := grantedOn(t, addr, "repository:alice/app:pull,push"); !slices.Equal(got, []string{"pull"}) {
		t.Fatalf("after a broken reload: %v, want r2's [pull]", got)
	}

	// A new password for alice takes effect; the old one stops working.
	// The background loop uses the old password: stop it first, and
	// require that no request failed while the policy was reloaded.
	stop.Store(true)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d requests failed while the policy was reloaded", n)
	}
	// A reload is all or nothing: with the broken policy in place, a new
	// htpasswd would not be taken either. Fix the policy, then change it.
	writeFile(t, filepath.Join(bundleDir, "authz.rego"), policyFor(`["pull"]`))
	passwords := map[string]string{"alice": "alice-new-password"}
	writeFile(t, htpasswd, htpasswdLine(t, "alice", passwords["alice"]))
	waitFor(t, "the new htpasswd", func() bool {
		return requestToken(t, addr, "alice", passwords["alice"], "repository:alice/app:pull").status == http.StatusOK
	})
	if res := requestToken(t, addr, "alice", "alice-e2e-secret-1", "repository:alice/app:pull"); res.status != http.StatusUnauthorized {
		t.Errorf("old password after reload: %d", res.status)
	}

	// SIGHUP reloads too (the fixed policy below is picked up either way;
	// the log says which trigger ran).
	writeFile(t, filepath.Join(bundleDir, "authz.rego"), policyFor(`["pull", "push", "delete"]`))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a SIGHUP reload", func() bool { return strings.Contains(logs.String(), "trigger=SIGHUP") })
	if strings.Contains(logs.String(), "alice-new-password") || strings.Contains(logs.String(), "alice-e2e-secret-1") {
		t.Error("a password appears in the log")
	}
}

// TestHotReloadNoFailedRequests swaps the policy many times while requests
// run, and requires every one of them to succeed.
func TestHotReloadNoFailedRequests(t *testing.T) {
	t.Parallel()
	bundleDir := filepath.Join(t.TempDir(), "bundle")
	if err := os.MkdirAll(bundleDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(bundleDir, ".manifest"), `{"revision": "r0", "roots": ["registry"]}`)
	writeFile(t, filepath.Join(bundleDir, "authz.rego"), policyFor(`["pull"]`))
	addr, logs, _ := policyServer(t, "policy:\n  bundles: ["+bundleDir+"]\n")
	var stop atomic.Bool
	var requests, failures atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				requests.Add(1)
				res, err := fetchToken(t.Context(), addr, "alice", passwords["alice"], "repository:alice/app:pull")
				if err != nil || res.status != http.StatusOK || len(res.access) != 1 {
					failures.Add(1)
				}
			}
		}()
	}
	for i := 1; i <= 5; i++ {
		writeFile(t, filepath.Join(bundleDir, ".manifest"), fmt.Sprintf(`{"revision": "r%d", "roots": ["registry"]}`, i))
		want := fmt.Sprintf("revision=r%d", i)
		waitFor(t, want, func() bool { return strings.Contains(logs.String(), `msg="policy reloaded" `+want) })
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() != 0 || requests.Load() == 0 {
		t.Fatalf("%d of %d requests failed during reloads", failures.Load(), requests.Load())
	}
}

// bundleServer serves one signed OPA bundle, which the test can replace.
type bundleServer struct {
	mu   sync.Mutex
	body []byte
	srv  *httptest.Server
	// decisions received on /logs, as OPA's decision-log plugin sends them.
	decisions []map[string]any
}

func (b *bundleServer) logged() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.decisions)
}

const bundleSigningSecret = "bundle-signing-secret-for-tests"

func (b *bundleServer) set(t *testing.T, revision, rego string, signWith string) {
	t.Helper()
	bd := bundle.Bundle{
		Manifest: bundle.Manifest{Revision: revision, Roots: &[]string{"registry"}},
		Data:     map[string]any{},
		Modules:  []bundle.ModuleFile{{URL: "/authz.rego", Path: "/authz.rego", Raw: []byte(rego)}},
	}
	if err := bd.GenerateSignature(bundle.NewSigningConfig(signWith, "HS256", ""), "bundle-key", false); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(bd); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.body = buf.Bytes()
	b.mu.Unlock()
}

func startBundleServer(t *testing.T) *bundleServer {
	b := &bundleServer{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/logs" && r.Method == http.MethodPost {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var events []map[string]any
			if err := json.NewDecoder(zr).Decode(&events); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			b.mu.Lock()
			b.decisions = append(b.decisions, events...)
			b.mu.Unlock()
			return
		}
		if r.URL.Path != "/bundles/registry.tar.gz" {
			http.NotFound(w, r)
			return
		}
		b.mu.Lock()
		body := b.body
		b.mu.Unlock()
		if body == nil {
			// No bundle yet: the control plane is down.
			http.Error(w, "bundle server unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(body)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// TestRemoteBundle serves a signed bundle over HTTP, as an OPA control plane
// would, changes it, and then serves broken ones.
func TestRemoteBundle(t *testing.T) {
	t.Parallel()
	bs := startBundleServer(t)
	bs.set(t, "v1", policyFor(`["pull", "push"]`), bundleSigningSecret)
	addr, logs, _ := policyServer(t, remotePolicyYAML(bs.srv.URL, "", `    decision_logs:
      service: control-plane
      reporting:
        min_delay_seconds: 1
        max_delay_seconds: 1
`)+"metrics:\n  listen: 127.0.0.1:0\n")
	first := requestToken(t, addr, "alice", passwords["alice"], "repository:alice/app:pull,push")
	if first.status != http.StatusOK || len(first.access) != 1 || !slices.Equal(first.access[0].Actions, []string{"pull", "push"}) {
		t.Fatalf("v1: %+v", first)
	}
	// The decision reaches the decision-log service under the ID the
	// client was given, with the bundle revision and no credentials.
	waitFor(t, "the decision log upload", func() bool {
		for _, ev := range bs.logged() {
			if ev["decision_id"] == first.decisionID {
				return true
			}
		}
		return false
	})
	for _, ev := range bs.logged() {
		if ev["decision_id"] != first.decisionID {
			continue
		}
		raw, _ := json.Marshal(ev)
		if strings.Contains(string(raw), passwords["alice"]) {
			t.Error("the uploaded decision holds the password")
		}
		if !strings.Contains(string(raw), `"revision":"v1"`) || !strings.Contains(string(raw), `"subject":"alice"`) {
			t.Errorf("uploaded decision lacks the revision or the subject: %s", raw)
		}
	}
	if !strings.Contains(logs.String(), "revision=registry@v1") {
		t.Errorf("no decision log line names the bundle revision:\n%s", logs)
	}

	bs.set(t, "v2", policyFor(`["pull"]`), bundleSigningSecret)
	waitFor(t, "v2 within the polling interval", func() bool {
		return slices.Equal(grantedOn(t, addr, "repository:alice/app:pull,push"), []string{"pull"})
	})

	broken := []struct{ name, revision, rego, key string }{
		{"a bundle that does not compile", "v3", "package registry.authz\n\nallow contains if {\n", bundleSigningSecret},
		{"a bundle signed with another key", "v4", policyFor(`["pull", "push", "delete"]`), "not-the-signing-secret"},
	}
	for _, b := range broken {
		t.Run(b.name, func(t *testing.T) {
			before := strings.Count(logs.String(), "component=opa")
			bs.set(t, b.revision, b.rego, b.key)
			// Wait for OPA to have tried (and refused) it, then check v2 holds.
			waitFor(t, "OPA to refuse "+b.revision, func() bool {
				return strings.Count(logs.String(), "component=opa") > before+1
			})
			if got := grantedOn(t, addr, "repository:alice/app:pull,push"); !slices.Equal(got, []string{"pull"}) {
				t.Fatalf("after %s: %v, want v2's [pull]", b.name, got)
			}
			if strings.Contains(logs.String(), "revision=registry@"+b.revision) {
				t.Fatalf("revision %s was activated", b.revision)
			}
		})
	}

	// The metrics tell the same story: v2 in force, activated at least
	// twice (this bundle server sends no ETag, so OPA downloads and
	// activates the same revision again at each poll), the two refused
	// bundles counted as failures.
	m := metricsListeningRE.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatal("no metrics listening line in the log")
	}
	families := scrape(t, "http://"+m[1]+"/metrics")
	registry := map[string]string{"bundle": "registry"}
	if v, ok := sample(families, "srht_registry_policy_bundle_revision_info", map[string]string{"bundle": "registry", "revision": "v2"}); !ok || v != 1 {
		t.Errorf("srht_registry_policy_bundle_revision_info for v2: %v %v", v, ok)
	}
	if v, _ := sample(families, "srht_registry_policy_activations_total", nil); v < 2 {
		t.Errorf("srht_registry_policy_activations_total = %v, want at least 2 (v1 and v2)", v)
	}
	if v, _ := sample(families, "srht_registry_policy_bundle_failures_total", registry); v < 2 {
		t.Errorf("srht_registry_policy_bundle_failures_total = %v, want at least the 2 refused bundles", v)
	}
	for _, name := range []string{"srht_registry_policy_bundle_last_successful_activation_timestamp_seconds", "srht_registry_policy_bundle_last_successful_download_timestamp_seconds"} {
		if v, _ := sample(families, name, registry); math.Abs(float64(time.Now().Unix())-v) > 120 {
			t.Errorf("%s = %v, not within two minutes of now", name, v)
		}
	}
}

// remotePolicyYAML is a policy section taking bundles from the bundle
// server at url, with more keys under policy: and under policy.opa:.
func remotePolicyYAML(url, policyExtra, opaExtra string) string {
	return fmt.Sprintf(`policy:
%s  opa:
    services:
      control-plane:
        url: %s
    keys:
      bundle-key:
        algorithm: HS256
        key: %s
    bundles:
      registry:
        service: control-plane
        resource: bundles/registry.tar.gz
        signing:
          keyid: bundle-key
        polling:
          min_delay_seconds: 1
          max_delay_seconds: 1
%s`, policyExtra, url, bundleSigningSecret, opaExtra)
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestBundleServerDownAtStart: with no bundle the server listens but is not
// ready and grants nothing (503), until the bundle server comes back.
func TestBundleServerDownAtStart(t *testing.T) {
	t.Parallel()
	bs := startBundleServer(t) // serves 503 until set
	addr, logs, _ := policyServer(t, remotePolicyYAML(bs.srv.URL, "  startup_wait: 1s\n", ""))
	if got := getStatus(t, "http://"+addr+"/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("readyz without a bundle: %d", got)
	}
	if got := getStatus(t, "http://"+addr+"/healthz"); got != http.StatusOK {
		t.Fatalf("healthz: %d", got)
	}
	res := requestToken(t, addr, "alice", passwords["alice"], "repository:alice/app:pull")
	if res.status != http.StatusServiceUnavailable || !strings.Contains(res.message, "policy") {
		t.Fatalf("token without a policy: %+v", res)
	}
	if !strings.Contains(logs.String(), "not ready: no policy bundle yet") {
		t.Error("the log does not say why the server is not ready")
	}
	bs.set(t, "v1", policyFor(`["pull"]`), bundleSigningSecret)
	waitFor(t, "readiness once the bundle server is back", func() bool {
		return getStatus(t, "http://"+addr+"/readyz") == http.StatusOK
	})
	if got := grantedOn(t, addr, "repository:alice/app:pull"); !slices.Equal(got, []string{"pull"}) {
		t.Fatalf("after the bundle arrived: %v", got)
	}
}

// TestBundleServerDownFallback: with fallback_to_embedded the embedded
// default policy serves until the bundle arrives, which then replaces it.
func TestBundleServerDownFallback(t *testing.T) {
	t.Parallel()
	bs := startBundleServer(t)
	addr, _, _ := policyServer(t, remotePolicyYAML(bs.srv.URL, "  startup_wait: 1s\n  fallback_to_embedded: true\n", ""))
	if got := getStatus(t, "http://"+addr+"/readyz"); got != http.StatusOK {
		t.Fatalf("readyz with the fallback: %d", got)
	}
	// The embedded policy: alice owns alice/*.
	if got := grantedOn(t, addr, "repository:alice/app:pull,push,delete"); !slices.Equal(got, []string{"pull", "push", "delete"}) {
		t.Fatalf("fallback policy: %v", got)
	}
	bs.set(t, "v1", policyFor(`["pull"]`), bundleSigningSecret)
	waitFor(t, "the bundle to replace the fallback", func() bool {
		return slices.Equal(grantedOn(t, addr, "repository:alice/app:pull,push,delete"), []string{"pull"})
	})
}

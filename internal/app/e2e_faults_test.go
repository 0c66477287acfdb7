package app

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

// faultServer starts a server with alice in htpasswd, Sourcehut tokens
// checked against meta, and the given extra YAML.
func faultServer(t *testing.T, meta *fakemeta.Server, extra string) (string, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	writeFile(t, htpasswd, htpasswdLine(t, "alice", passwords["alice"]))
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, `listen: 127.0.0.1:0
brute_force:
  threshold: 0
authn:
  htpasswd: `+htpasswd+`
  sourcehut:
    meta_url: `+meta.URL()+`
    timeout: 300ms
    users: ["*"]
`+extra)
	srv, logs := startServer(t, cfg)
	return srv.Addr(), logs
}

// TestUpstreamFaults breaks meta.sr.ht in every way the fake can: each new
// token gets a clear 503 (never a token with grants), the failure is logged
// once with its cause, nothing is cached, and password logins keep working.
func TestUpstreamFaults(t *testing.T) {
	t.Parallel()
	meta := fakemeta.Start(t)
	addr, logs := faultServer(t, meta, "")
	faults := []struct {
		name  string
		set   func()
		cause string // in the log line of the failed request
	}{
		{"slow", func() { meta.SetDelay(2 * time.Second) }, "deadline exceeded"},
		{"down", func() { meta.SetDown(true) }, "EOF"},
		{"HTTP 500", func() { meta.SetStatus(http.StatusInternalServerError) }, "HTTP 500"},
		{"garbage", func() { meta.SetGarbage(true) }, "not JSON"},
	}
	for i, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			f.set()
			defer func() {
				meta.SetDelay(0)
				meta.SetDown(false)
				meta.SetStatus(0)
				meta.SetGarbage(false)
			}()
			// Distinct expiries make distinct tokens.
			tok := meta.Mint(fakemeta.TokenOptions{Username: "alice", Grants: "registry.example.com/REGISTRY:RW", Expires: time.Now().Add(time.Hour + time.Duration(i)*time.Minute)})
			before := strings.Count(logs.String(), "\n")
			res := requestToken(t, addr, "sourcehut", tok, "repository:alice/app:pull,push")
			if res.status != http.StatusServiceUnavailable || !strings.Contains(res.message, "could not be reached") {
				t.Fatalf("got %d %q, want 503 saying meta.sr.ht could not be reached", res.status, res.message)
			}
			if len(res.access) != 0 {
				t.Fatal("a failed check came with grants")
			}
			// The other logins keep working meanwhile.
			if got := grantedOn(t, addr, "repository:alice/app:pull"); !slices.Equal(got, []string{"pull"}) {
				t.Fatalf("a password login during the fault: %v", got)
			}
			// One error line for the failed request, naming the cause.
			lines := strings.Split(logs.String(), "\n")[before:]
			var errorLines []string
			for _, l := range lines {
				if strings.Contains(l, "level=ERROR") {
					errorLines = append(errorLines, l)
				}
			}
			if len(errorLines) != 1 || !strings.Contains(errorLines[0], f.cause) || !strings.Contains(errorLines[0], "status=503") {
				t.Fatalf("want one error line with %q, got %q", f.cause, errorLines)
			}
			if strings.Contains(logs.String(), tok) {
				t.Fatal("the token was logged")
			}
		})
	}
	// Nothing was cached: once meta.sr.ht is back, a token refused during
	// an outage works.
	tok := meta.Mint(fakemeta.TokenOptions{Username: "carol", Grants: "registry.example.com/REGISTRY:RW", Expires: time.Now().Add(time.Hour)})
	meta.SetDown(true)
	if res := requestToken(t, addr, "sourcehut", tok, "repository:carol/app:push"); res.status != http.StatusServiceUnavailable {
		t.Fatalf("down: %d", res.status)
	}
	meta.SetDown(false)
	if res := requestToken(t, addr, "sourcehut", tok, "repository:carol/app:push"); res.status != http.StatusOK || len(res.access) != 1 {
		t.Fatalf("after recovery: %+v", res)
	}
}

// TestPolicyFaults: a policy that errors or runs past the evaluation
// deadline grants nothing and says so (503) for the scopes it fails on,
// while every other request is served; recursion cannot even load.
func TestPolicyFaults(t *testing.T) {
	t.Parallel()
	bundle := filepath.Join(t.TempDir(), "faulty")
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(bundle, ".manifest"), `{"revision": "faulty-1", "roots": ["registry"]}`)
	writeFile(t, filepath.Join(bundle, "authz.rego"), `package registry.authz

# Fine everywhere but in two namespaces.
allow contains "pull" if startswith(input.scope.name, "ok/")

# A runtime error: to_number of a word.
allow contains "pull" if {
	startswith(input.scope.name, "error/")
	to_number("not a number") > 0
}

# Far too slow: counts to a billion.
allow contains "pull" if {
	startswith(input.scope.name, "slow/")
	count([n | some n in numbers.range(1, 1000000000)]) > 0
}
`)
	addr, logs, _ := policyServer(t, "policy:\n  timeout: 50ms\n  bundles: ["+bundle+"]\n")
	for _, tc := range []struct {
		scope  string
		status int
	}{
		{"repository:ok/app:pull", http.StatusOK},
		{"repository:error/app:pull", http.StatusServiceUnavailable},
		{"repository:slow/app:pull", http.StatusServiceUnavailable},
		{"repository:ok/other:pull", http.StatusOK},
	} {
		res := requestToken(t, addr, "alice", passwords["alice"], tc.scope)
		if res.status != tc.status {
			t.Fatalf("%s: got %d %q, want %d", tc.scope, res.status, res.message, tc.status)
		}
		if tc.status != http.StatusOK && (!strings.Contains(res.message, "policy could not be evaluated") || len(res.access) != 0) {
			t.Fatalf("%s: %+v", tc.scope, res)
		}
	}
	for _, cause := range []string{"eval_cancel_error", "to_number"} {
		if !strings.Contains(logs.String(), cause) {
			t.Errorf("the log does not name the cause %q", cause)
		}
	}

	// Rego refuses recursion at compile time: such a policy never loads.
	recursive := filepath.Join(t.TempDir(), "recursive")
	if err := os.MkdirAll(recursive, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(recursive, ".manifest"), `{"revision": "r", "roots": ["registry"]}`)
	writeFile(t, filepath.Join(recursive, "authz.rego"), "package registry.authz\n\nallow contains x if {\n\tsome x in allow\n}\n")
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, cfg, "policy:\n  bundles: ["+recursive+"]\n")
	code, _, stderr := run(t, "", "check-config", "--config", cfg)
	if code == 0 || !strings.Contains(stderr, "recursion") {
		t.Fatalf("a recursive policy loaded: exit %d %s", code, stderr)
	}
}

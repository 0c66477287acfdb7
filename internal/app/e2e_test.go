package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sirupsen/logrus"

	"git.sr.ht/~zozs/srht-registry/internal/authn/authntest"
	"git.sr.ht/~zozs/srht-registry/internal/testcheck"

	// Registered by import, as the registry binary does.
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// syncBuffer is a log sink that tests can read while the server writes.
type syncBuffer = testcheck.LogBuffer

// startServer starts the server of the config file at path (on the
// address it names: tests use port 0) as serve would, and returns it with
// its captured log; the test's cleanup closes it.
func startServer(t *testing.T, configPath string) (*Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	srv, err := New(t.Context(), Options{ConfigPath: configPath, Log: logs})
	if err != nil {
		t.Fatalf("start: %v; log:\n%s", err, logs)
	}
	t.Cleanup(func() {
		if err := srv.Close(context.Background()); err != nil {
			t.Errorf("close: %v; log:\n%s", err, logs)
		}
	})
	return srv, logs
}

// listeningRE finds the listening line in text or JSON logs.
var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)|"msg":"listening","addr":"([^"]+)"`)

// serveThroughRun runs `srht-registry serve --config path` through Run, as the
// binary does (signals included), and returns the address its log names
// and the log. The test's cleanup ends it as SIGTERM would.
func serveThroughRun(t *testing.T, configPath string) (addr string, logs *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	exited := make(chan struct{})
	var code int
	go func() {
		defer close(exited)
		code = Run(ctx, []string{"serve", "--config", configPath}, strings.NewReader(""), io.Discard, logs)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
		if code != 0 {
			t.Errorf("serve exited with %d; log:\n%s", code, logs)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := listeningRE.FindStringSubmatch(logs.String()); m != nil {
			return m[1] + m[2], logs
		}
		select {
		case <-exited:
			t.Fatalf("serve exited before listening; log:\n%s", logs)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("server did not start; log:\n%s", logs)
	return "", nil
}

// startRegistry runs a real distribution v3 registry in-process with token
// auth pointing at realm, trusting the given key material.
func startRegistry(t *testing.T, realm string, auth map[string]any) string {
	t.Helper()
	// The registry logs every 404 of a push probe at error level; keep it
	// for -v runs, where it helps to read why a case failed.
	if !testing.Verbose() {
		logrus.SetOutput(io.Discard)
	}
	params := configuration.Parameters{"realm": realm, "service": "registry.example.com", "issuer": "srht-registry"}
	for k, v := range auth {
		params[k] = v
	}
	cfg := &configuration.Configuration{
		Version: "0.1",
		Storage: configuration.Storage{"inmemory": configuration.Parameters{}, "delete": configuration.Parameters{"enabled": true}},
		Auth:    configuration.Auth{"token": params},
	}
	cfg.HTTP.Secret = "e2e-test-upload-state-secret"
	cfg.Catalog.MaxEntries = 1000 // what parsing a config file defaults to
	cfg.Log.AccessLog.Disabled = true
	app := handlers.NewApp(context.Background(), cfg)
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// htpasswdLine is the line of an htpasswd file for user and password.
var htpasswdLine = authntest.HtpasswdLine

var passwords = map[string]string{
	"alice": "alice-e2e-secret-1",
	"bob":   "bob-e2e-secret-2",
	"root":  "root-e2e-secret-3",
}

func basic(user string) authn.Authenticator {
	return &authn.Basic{Username: user, Password: passwords[user]}
}

// deployment is a token server started as a user would start it, with keys
// from `srht-registry keys`, and a real registry trusting those keys.
type deployment struct {
	addr     string // the token server's host:port
	logs     *syncBuffer
	registry string // the registry's host:port
	htpasswd string // the htpasswd file the server watches
	config   string // the config file the server watches
}

type deployOptions struct {
	keyType string
	x5c     bool   // tokens carry x5c; the registry has only rootcertbundle
	authn   string // extra YAML under authn:, indented by two spaces
	data    string // extra YAML under policy.data:, indented by four spaces
	// threshold is brute_force.threshold; 0 (off) unless set: these tests
	// fail logins on purpose, and the throttle has its own.
	threshold int
}

func deploy(t *testing.T, o deployOptions) deployment {
	t.Helper()
	dir := t.TempDir()
	keysDir := filepath.Join(dir, "keys")
	var keysOut strings.Builder
	if code := Run(context.Background(), []string{"keys", "--out", keysDir, "--type", o.keyType}, nil, &keysOut, io.Discard); code != 0 {
		t.Fatalf("keys exited %d", code)
	}
	if !strings.Contains(keysOut.String(), "jwks: "+keysDir+"/jwks.json") {
		t.Fatalf("keys did not print the registry config:\n%s", keysOut.String())
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	writeFile(t, htpasswd, htpasswdLine(t, "alice", passwords["alice"])+htpasswdLine(t, "bob", passwords["bob"])+htpasswdLine(t, "root", passwords["root"]))
	certLine := ""
	if o.x5c {
		certLine = "  certificate: " + filepath.Join(keysDir, "cert.pem")
	}
	configPath := filepath.Join(dir, "config.yaml")
	writeFile(t, configPath, fmt.Sprintf(`listen: 127.0.0.1:0
service: registry.example.com
issuer: srht-registry
token:
  key: %s
%s
authn:
  htpasswd: %s
%s
groups:
  admins: ["htpasswd:root"]
policy:
  data:
    public: ["library/*"]
%s
log:
  level: debug # so the no-secret-in-logs checks see every line
brute_force:
  threshold: %d
`, filepath.Join(keysDir, "key.pem"), certLine, htpasswd, o.authn, o.data, o.threshold))
	srv, logs := startServer(t, configPath)
	addr := srv.Addr()
	_, port, _ := strings.Cut(addr, ":")
	realm := "http://localhost:" + port + "/auth"
	trust := map[string]any{"jwks": filepath.Join(keysDir, "jwks.json")}
	if o.x5c {
		trust = map[string]any{"rootcertbundle": filepath.Join(keysDir, "cert.pem")}
	}
	return deployment{addr: addr, logs: logs, registry: startRegistry(t, realm, trust), htpasswd: htpasswd, config: configPath}
}

// TestEndToEnd runs a real registry against the token server for each way a
// registry can trust our keys, and each key type, with the
// go-containerregistry client doing what crane does.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts deployOptions
	}{
		{name: "ec-jwks-kid", opts: deployOptions{keyType: "ec"}},
		{name: "ec-x5c", opts: deployOptions{keyType: "ec", x5c: true}},
		{name: "rsa-jwks-kid", opts: deployOptions{keyType: "rsa"}},
		{name: "ed25519-jwks-kid", opts: deployOptions{keyType: "ed25519"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := deploy(t, tc.opts)
			runScenario(t, d.registry)
			for user, pw := range passwords {
				if strings.Contains(d.logs.String(), pw) {
					t.Errorf("the password of %s appears in the server log", user)
				}
			}
		})
	}
}

func reference(t *testing.T, reg, repo string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(reg+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pushImage pushes a new random image, as `crane push` would.
func pushImage(t *testing.T, reg, repo string, auth authn.Authenticator) error {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	return remote.Write(reference(t, reg, repo), img, remote.WithAuth(auth), remote.WithContext(t.Context()))
}

// pullImage pulls an image and every layer of it: a pull is not done at the
// manifest.
func pullImage(t *testing.T, reg, repo string, auth authn.Authenticator) error {
	t.Helper()
	return pullEverything(t.Context(), reference(t, reg, repo), remote.WithAuth(auth), remote.WithContext(t.Context()))
}

func runScenario(t *testing.T, reg string) {
	ctx := context.Background()
	push := func(repo string, auth authn.Authenticator) error { return pushImage(t, reg, repo, auth) }
	pull := func(repo string, auth authn.Authenticator) error { return pullImage(t, reg, repo, auth) }

	t.Run("admin seeds a public repository", func(t *testing.T) {
		if err := push("library/base:latest", basic("root")); err != nil {
			t.Fatalf("admin push: %v", err)
		}
	})
	t.Run("anonymous pulls a public repository", func(t *testing.T) {
		if err := pull("library/base:latest", authn.Anonymous); err != nil {
			t.Fatalf("anonymous pull: %v", err)
		}
	})
	t.Run("anonymous cannot push to a public repository", func(t *testing.T) {
		wantDenied(t, push("library/base:evil", authn.Anonymous))
	})
	t.Run("alice pushes and pulls in her namespace", func(t *testing.T) {
		if err := push("alice/app:v1", basic("alice")); err != nil {
			t.Fatalf("alice push: %v", err)
		}
		if err := pull("alice/app:v1", basic("alice")); err != nil {
			t.Fatalf("alice pull: %v", err)
		}
	})
	t.Run("alice cannot push to bob/app", func(t *testing.T) {
		wantDenied(t, push("bob/app:v1", basic("alice")))
	})
	t.Run("bob cannot pull alice/app", func(t *testing.T) {
		wantDenied(t, pull("alice/app:v1", basic("bob")))
	})
	t.Run("anonymous cannot pull a private repository", func(t *testing.T) {
		wantDenied(t, pull("alice/app:v1", authn.Anonymous))
	})
	t.Run("wrong password is refused by the token server", func(t *testing.T) {
		err := pull("alice/app:v1", &authn.Basic{Username: "alice", Password: "not-the-password"})
		wantDenied(t, err)
		if err != nil && !strings.Contains(err.Error(), "authentication failed") {
			t.Errorf("want the token server's message in the client error, got %v", err)
		}
	})
	t.Run("catalog only for an admin", func(t *testing.T) {
		registry, err := name.NewRegistry(reg, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		repos, err := remote.CatalogPage(registry, "", 100, remote.WithAuth(basic("root")), remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("admin catalog: %v", err)
		}
		for _, want := range []string{"alice/app", "library/base"} {
			if !slices.Contains(repos, want) {
				t.Errorf("catalog %v lacks %s", repos, want)
			}
		}
		_, err = remote.CatalogPage(registry, "", 100, remote.WithAuth(basic("alice")), remote.WithContext(ctx))
		wantDenied(t, err)
	})
}

// wantDenied checks that err is the registry (or token server) refusing
// access, not some other failure that would make the test pass by accident.
func wantDenied(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("want access denied, got success")
	}
	var terr *transport.Error
	if !errors.As(err, &terr) {
		t.Fatalf("want a registry error, got %T: %v", err, err)
	}
	if terr.StatusCode != http.StatusUnauthorized && terr.StatusCode != http.StatusForbidden {
		t.Fatalf("want 401/403, got %d: %v", terr.StatusCode, err)
	}
}

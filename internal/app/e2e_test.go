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
	"sync"
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
	"golang.org/x/crypto/bcrypt"

	// Registered by import, as the registry binary does.
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// syncBuffer is a log sink that tests can read while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startServer runs `srht-registry serve --config path` through Run, as the
// binary would, and returns its address and its captured log.
func startServer(t *testing.T, configPath string) (addr string, logs *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--config", configPath}, strings.NewReader(""), io.Discard, logs)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited with %d; log:\n%s", code, logs)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := listeningRE.FindStringSubmatch(logs.String()); m != nil {
			return m[1], logs
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d before listening; log:\n%s", code, logs)
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

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func htpasswdLine(t *testing.T, user, password string) string {
	t.Helper()
	// Low cost keeps the test fast; cost does not change the code path.
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + string(hash) + "\n"
}

var passwords = map[string]string{
	"alice": "alice-e2e-secret-1",
	"bob":   "bob-e2e-secret-2",
	"root":  "root-e2e-secret-3",
}

func basic(user string) authn.Authenticator {
	return &authn.Basic{Username: user, Password: passwords[user]}
}

// TestEndToEnd runs a real registry against the token server for each way a
// registry can trust our keys, and each key type, with the
// go-containerregistry client doing what crane does.
func TestEndToEnd(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	cases := []struct {
		name    string
		keyType string
		x5c     bool // tokens carry x5c; the registry has only rootcertbundle
	}{
		{name: "ec-jwks-kid", keyType: "ec"},
		{name: "ec-x5c", keyType: "ec", x5c: true},
		{name: "rsa-jwks-kid", keyType: "rsa"},
		{name: "ed25519-jwks-kid", keyType: "ed25519"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			keysDir := filepath.Join(dir, "keys")
			var keysOut strings.Builder
			if code := Run(context.Background(), []string{"keys", "--out", keysDir, "--type", tc.keyType}, nil, &keysOut, io.Discard); code != 0 {
				t.Fatalf("keys exited %d", code)
			}
			if !strings.Contains(keysOut.String(), "jwks: "+keysDir+"/jwks.json") {
				t.Fatalf("keys did not print the registry config:\n%s", keysOut.String())
			}
			htpasswd := filepath.Join(dir, "htpasswd")
			writeFile(t, htpasswd, htpasswdLine(t, "alice", passwords["alice"])+htpasswdLine(t, "bob", passwords["bob"])+htpasswdLine(t, "root", passwords["root"]))
			certLine := ""
			if tc.x5c {
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
groups:
  admins: [root]
policy:
  data:
    public: ["library/*"]
`, filepath.Join(keysDir, "key.pem"), certLine, htpasswd))
			addr, logs := startServer(t, configPath)
			_, port, _ := strings.Cut(addr, ":")
			realm := "http://localhost:" + port + "/auth"

			trust := map[string]any{"jwks": filepath.Join(keysDir, "jwks.json")}
			if tc.x5c {
				trust = map[string]any{"rootcertbundle": filepath.Join(keysDir, "cert.pem")}
			}
			reg := startRegistry(t, realm, trust)
			runScenario(t, reg)

			for user, pw := range passwords {
				if strings.Contains(logs.String(), pw) {
					t.Errorf("the password of %s appears in the server log", user)
				}
			}
		})
	}
}

func runScenario(t *testing.T, reg string) {
	ctx := context.Background()
	ref := func(s string) name.Reference {
		t.Helper()
		r, err := name.ParseReference(reg+"/"+s, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	push := func(repo string, auth authn.Authenticator) error {
		img, err := random.Image(512, 2)
		if err != nil {
			t.Fatal(err)
		}
		return remote.Write(ref(repo), img, remote.WithAuth(auth), remote.WithContext(ctx))
	}
	pull := func(repo string, auth authn.Authenticator) error {
		img, err := remote.Image(ref(repo), remote.WithAuth(auth), remote.WithContext(ctx))
		if err != nil {
			return err
		}
		// Fetch every layer: a pull is not done at the manifest.
		layers, err := img.Layers()
		if err != nil {
			return err
		}
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}

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

package app

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/token"
)

// keyDir is what one `srht-registry keys` run wrote.
type keyDir struct {
	dir    string
	kid    string
	stdout string
}

func (k keyDir) key() string  { return filepath.Join(k.dir, "key.pem") }
func (k keyDir) cert() string { return filepath.Join(k.dir, "cert.pem") }
func (k keyDir) jwks() string { return filepath.Join(k.dir, "jwks.json") }

// makeKeys runs `srht-registry keys` as an operator would.
func makeKeys(t *testing.T, dir, typ string, previous ...string) keyDir {
	t.Helper()
	args := []string{"keys", "--out", dir, "--type", typ, "--realm", "http://localhost:5001/auth"}
	for _, p := range previous {
		args = append(args, "--previous", p)
	}
	code, stdout, stderr := run(t, "", args...)
	if code != 0 {
		t.Fatalf("keys %q: exit %d: %s", args, code, stderr)
	}
	return keyDir{dir: dir, kid: kidOfFile(t, filepath.Join(dir, "key.pem")), stdout: stdout}
}

func kidOfFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The server's default kid format, as serve and keys compute it.
	p, err := token.ParsePublicKey(data, token.WithKeyIDFormat(token.KeyIDAuto))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return p.ID()
}

// replaceFile writes a file as a careful operator (or a secret manager)
// does: a new file renamed over the old, so no reader sees half of it.
func replaceFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, dst, src string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, dst, data, mode)
}

// keyConfig is a token server config: htpasswd users, the default policy
// (alice owns alice/*), and the given token section.
func keyConfig(htpasswd, tokenSection string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
service: registry.example.com
issuer: srht-registry
token:
%s
authn:
  htpasswd: %s
brute_force:
  threshold: 0
`, tokenSection, htpasswd)
}

func tokenSection(key string, published ...string) string {
	s := "  key: " + key + "\n"
	if len(published) > 0 {
		s += "  published_keys:\n"
		for _, p := range published {
			s += "    - " + p + "\n"
		}
	}
	return s
}

// mustReload reloads srv, as SIGHUP would, and fails the test if that
// fails.
func mustReload(t *testing.T, srv *Server) {
	t.Helper()
	if err := srv.Reload(t.Context()); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

// rawToken asks the token server for a token, as a client's first step does,
// and returns the JWS.
func rawToken(ctx context.Context, addr, user, password, scope string) (string, error) {
	q := url.Values{"service": {"registry.example.com"}, "scope": {scope}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/auth?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token request: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	return body.Token, nil
}

func mustToken(t *testing.T, addr, scope string) string {
	t.Helper()
	raw, err := rawToken(t.Context(), addr, "alice", passwords["alice"], scope)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// kidOf is the kid in a JWS header, or "" if there is none.
func kidOf(raw string) string {
	header, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		return ""
	}
	var h struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &h)
	return h.Kid
}

// servedKids are the kids the token server publishes.
func servedKids(t *testing.T, addr string) []string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// manifestStatus fetches a manifest from the registry with a bearer token
// and nothing else: no client library refreshes a refused token behind
// the test's back.
func manifestStatus(t *testing.T, registry, repo, ref, bearer string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+registry+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// bearerRecorder sits under go-containerregistry's auth transports and
// sees every registry request with its final token: it counts the kids
// used, and every refusal of a bearer token, even one the client then
// recovers from by fetching another.
type bearerRecorder struct {
	base    http.RoundTripper
	mu      sync.Mutex
	used    map[string]int
	refused []string
}

func (b *bearerRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	resp, err := b.base.RoundTrip(r)
	if ok {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.used[kidOf(bearer)]++
		if err == nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			b.refused = append(b.refused, fmt.Sprintf("%s %s: %d with kid %s", r.Method, r.URL.Path, resp.StatusCode, kidOf(bearer)))
		}
	}
	return resp, err
}

// pullLoop pulls an image over and over on a few goroutines until stopped,
// each pull with a fresh token from the token server.
type pullLoop struct {
	rec     *bearerRecorder
	stop    atomic.Bool
	pulls   atomic.Int64
	mu      sync.Mutex
	failed  []error
	wg      sync.WaitGroup
	workers int
}

func startPullLoop(t *testing.T, ref name.Reference, workers int) *pullLoop {
	l := &pullLoop{rec: &bearerRecorder{base: http.DefaultTransport.(*http.Transport).Clone(), used: map[string]int{}}, workers: workers}
	ctx := t.Context()
	for range workers {
		l.wg.Go(func() {
			for !l.stop.Load() {
				err := pullEverything(ctx, ref, remote.WithAuth(basic("alice")), remote.WithTransport(l.rec), remote.WithContext(ctx))
				if err != nil {
					l.mu.Lock()
					l.failed = append(l.failed, err)
					l.mu.Unlock()
				}
				l.pulls.Add(1)
			}
		})
	}
	t.Cleanup(l.finish)
	return l
}

func (l *pullLoop) finish() {
	l.stop.Store(true)
	l.wg.Wait()
}

// waitPulls waits until n more pulls have finished.
func (l *pullLoop) waitPulls(t *testing.T, n int64) {
	t.Helper()
	target := l.pulls.Load() + n
	waitFor(t, fmt.Sprintf("%d more pulls", n), func() bool { return l.pulls.Load() >= target })
}

// pullEverything is pullImage for goroutines: the manifest and every layer.
func pullEverything(ctx context.Context, ref name.Reference, opts ...remote.Option) error {
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return err
	}
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
	return ctx.Err()
}

// TestKeyRotation rotates the signing key of a running token server in
// front of a real registry, the way `srht-registry keys --previous` tells
// an operator to: the registry trusts the old and the new key (its jwks
// file is the one `keys --previous` wrote), the token server switches to
// the new key on a reload while pulls run in a loop, and
//   - no pull fails, and no bearer token is refused, across the switch;
//   - new tokens carry the new kid and work;
//   - a token the old key signed before the switch still works;
//   - a token of the old key that has expired does not;
//   - retiring the old key takes it out of the published JWKS.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	// printedSection is the token section of the srht-registry config
	// that `keys --previous` prints for step 2 of its recipe.
	printedSection := func(next keyDir) string {
		return next.stdout[strings.Index(next.stdout, "\ntoken:\n")+len("\ntoken:\n") : strings.Index(next.stdout, "#\n# 3.")]
	}
	cases := []struct {
		name string
		// x5c: tokens carry the certificate, and the registry trusts only
		// the certificate bundle, as distribution 2.8 must.
		x5c bool
		// setup writes the key files the config names before the server
		// starts (signing with old), and returns the token section.
		setup func(t *testing.T, dir string, old, next keyDir) string
		// rotate makes the server sign with next and publish old.
		rotate func(t *testing.T, srv *Server, dir, configPath, htpasswd string, old, next keyDir)
		// wantBefore is what the token server publishes before the switch.
		wantBefore func(old, next keyDir) []string
	}{
		{
			name: "config names the new key, reload",
			setup: func(t *testing.T, dir string, old, next keyDir) string {
				return tokenSection(old.key())
			},
			rotate: func(t *testing.T, srv *Server, dir, configPath, htpasswd string, old, next keyDir) {
				// Step 2 of the printed recipe, verbatim: the new key
				// signs, the previous one stays published.
				replaceFile(t, configPath, []byte(keyConfig(htpasswd, printedSection(next))), 0o600)
				mustReload(t, srv)
			},
			wantBefore: func(old, next keyDir) []string { return []string{old.kid} },
		},
		{
			name: "key files replaced in place, file watch",
			setup: func(t *testing.T, dir string, old, next keyDir) string {
				// The next key is published (its certificate: no secret)
				// before it signs.
				copyFile(t, filepath.Join(dir, "signing.pem"), old.key(), 0o600)
				copyFile(t, filepath.Join(dir, "other.pem"), next.cert(), 0o644)
				return tokenSection(filepath.Join(dir, "signing.pem"), filepath.Join(dir, "other.pem"))
			},
			rotate: func(t *testing.T, srv *Server, dir, configPath, htpasswd string, old, next keyDir) {
				// Publish the old key first, then sign with the new one:
				// every state in between is a good one.
				copyFile(t, filepath.Join(dir, "other.pem"), old.key(), 0o600)
				copyFile(t, filepath.Join(dir, "signing.pem"), next.key(), 0o600)
			},
			wantBefore: func(old, next keyDir) []string { return []string{old.kid, next.kid} },
		},
		{
			name: "x5c with a certificate bundle, reload",
			x5c:  true,
			setup: func(t *testing.T, dir string, old, next keyDir) string {
				return tokenSection(old.key()) + "  certificate: " + old.cert() + "\n"
			},
			rotate: func(t *testing.T, srv *Server, dir, configPath, htpasswd string, old, next keyDir) {
				replaceFile(t, configPath, []byte(keyConfig(htpasswd, tokenSection(next.key(), old.key(), old.cert())+"  certificate: "+next.cert()+"\n")), 0o600)
				mustReload(t, srv)
			},
			wantBefore: func(old, next keyDir) []string { return []string{old.kid} },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			old := makeKeys(t, filepath.Join(dir, "old"), "ec")
			previous := []string{old.key()}
			if tc.x5c {
				previous = append(previous, old.cert())
			}
			next := makeKeys(t, filepath.Join(dir, "next"), "ed25519", previous...)
			for _, want := range []string{"published_keys:", "    - " + old.key(), "jwks: " + next.jwks(), "key: " + next.key()} {
				if !strings.Contains(next.stdout, want) {
					t.Fatalf("keys --previous does not print %q:\n%s", want, next.stdout)
				}
			}

			htpasswd := filepath.Join(dir, "htpasswd")
			writeFile(t, htpasswd, htpasswdLine(t, "alice", passwords["alice"]))
			configPath := filepath.Join(dir, "config.yaml")
			writeFile(t, configPath, keyConfig(htpasswd, tc.setup(t, dir, old, next)))
			srv, logs := startServer(t, configPath)
			addr := srv.Addr()
			if got, want := servedKids(t, addr), tc.wantBefore(old, next); !slices.Equal(got, want) {
				t.Fatalf("JWKS before the rotation lists %q, want %q", got, want)
			}

			// Step 1 of the recipe: the registry trusts both keys.
			_, port, _ := strings.Cut(addr, ":")
			trust := map[string]any{"jwks": next.jwks()}
			if tc.x5c {
				trust = map[string]any{"rootcertbundle": filepath.Join(next.dir, "bundle.pem")}
			}
			reg := startRegistry(t, "http://localhost:"+port+"/auth", trust)
			if err := pushImage(t, reg, "alice/app:v1", basic("alice")); err != nil {
				t.Fatalf("push: %v", err)
			}
			const scope = "repository:alice/app:pull"
			oldToken := mustToken(t, addr, scope)
			if kid := kidOf(oldToken); kid != old.kid {
				t.Fatalf("token before the rotation has kid %q, want the old key's %q", kid, old.kid)
			}

			loop := startPullLoop(t, reference(t, reg, "alice/app:v1"), 3)
			loop.waitPulls(t, 5)

			// Step 2: the switch, while the pulls run.
			tc.rotate(t, srv, dir, configPath, htpasswd, old, next)
			waitFor(t, "new tokens signed by the new key", func() bool { return kidOf(mustToken(t, addr, scope)) == next.kid })
			loop.waitPulls(t, 5)
			loop.finish()

			loop.mu.Lock()
			if n := len(loop.failed); n > 0 {
				t.Errorf("%d of %d pulls failed during the rotation, the first: %v", n, loop.pulls.Load(), loop.failed[0])
			}
			loop.mu.Unlock()
			rec := loop.rec
			rec.mu.Lock()
			if n := len(rec.refused); n > 0 {
				t.Errorf("the registry refused %d tokens during the rotation, the first: %s", n, rec.refused[0])
			}
			if rec.used[old.kid] == 0 || rec.used[next.kid] == 0 {
				t.Errorf("pulls used tokens of kids %v, want both the old key's %s and the new key's %s", rec.used, old.kid, next.kid)
			}
			rec.mu.Unlock()
			t.Logf("%d pulls across the rotation; registry requests per kid: %v", loop.pulls.Load(), rec.used)

			if got := servedKids(t, addr); !slices.Equal(got, []string{next.kid, old.kid}) {
				t.Errorf("JWKS after the rotation lists %q, want the new key then the old one", got)
			}
			if !strings.Contains(logs.String(), "msg=\"keys reloaded\" kid="+next.kid) || !strings.Contains(logs.String(), "previous_kid="+old.kid) {
				t.Errorf("the log does not tell of the rotation:\n%s", logs)
			}

			// Both keys' tokens work at the registry; an expired token
			// of the old key does not.
			newToken := mustToken(t, addr, scope)
			if kid := kidOf(newToken); kid != next.kid {
				t.Fatalf("token after the rotation has kid %q, want %q", kid, next.kid)
			}
			if code := manifestStatus(t, reg, "alice/app", "v1", newToken); code != http.StatusOK {
				t.Errorf("new key's token: registry answered %d, want 200", code)
			}
			if code := manifestStatus(t, reg, "alice/app", "v1", oldToken); code != http.StatusOK {
				t.Errorf("old key's token from before the rotation: registry answered %d, want 200 until it expires", code)
			}
			if code := manifestStatus(t, reg, "alice/app", "v1", expiredToken(t, old, tc.x5c)); code != http.StatusUnauthorized {
				t.Errorf("old key's expired token: registry answered %d, want 401", code)
			}

			// Step 3: retire the old key.
			retired := tokenSection(next.key())
			if tc.x5c {
				retired += "  certificate: " + next.cert() + "\n"
			}
			replaceFile(t, configPath, []byte(keyConfig(htpasswd, retired)), 0o600)
			mustReload(t, srv)
			waitFor(t, "the old key to be retired", func() bool { return slices.Equal(servedKids(t, addr), []string{next.kid}) })
			if err := pullImage(t, reg, "alice/app:v1", basic("alice")); err != nil {
				t.Errorf("pull after retiring the old key: %v", err)
			}
			wantLacks(t, "log", logs.String(), "PRIVATE KEY", "reload failed")
		})
	}
}

// expiredToken is a token k's key signed for alice/app, which expired ten
// minutes ago: past any leeway.
func expiredToken(t *testing.T, k keyDir, x5c bool) string {
	t.Helper()
	var certPEM []byte
	if x5c {
		certPEM = mustRead(t, k.cert())
	}
	key, err := token.ParseKey(mustRead(t, k.key()), certPEM)
	if err != nil {
		t.Fatal(err)
	}
	m := &token.Minter{Issuer: "srht-registry", TTL: 5 * time.Minute, Key: key, Now: func() time.Time { return time.Now().Add(-15 * time.Minute) }}
	tok, err := m.Mint("alice", "registry.example.com", []access.Scope{
		{Resource: access.Resource{Type: "repository", Name: "alice/app"}, Actions: []string{"pull"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Signed
}

// TestKeyFilePermissions: a file holding a private key that group or
// others may read or write is refused, with the command that fixes it;
// public keys and certificates may be world-readable.
func TestKeyFilePermissions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k := makeKeys(t, filepath.Join(dir, "k"), "ec")
	other := makeKeys(t, filepath.Join(dir, "other"), "ec")
	pubPath := filepath.Join(dir, "other-public.pem")
	writePublicPEM(t, pubPath, other.key())

	tests := []struct {
		name string
		// mode is set on file before check-config runs.
		file    string
		mode    os.FileMode
		section string
		wantErr string // "" = accepted
	}{
		{"signing key 0600", k.key(), 0o600, tokenSection(k.key()), ""},
		{"signing key 0400", k.key(), 0o400, tokenSection(k.key()), ""},
		{"signing key world-readable", k.key(), 0o644, tokenSection(k.key()), "token.key " + k.key()},
		{"signing key group-readable", k.key(), 0o640, tokenSection(k.key()), "token.key " + k.key()},
		{"signing key group-writable", k.key(), 0o620, tokenSection(k.key()), "token.key " + k.key()},
		{"signing key others-writable", k.key(), 0o602, tokenSection(k.key()), "token.key " + k.key()},
		{"published private key world-readable", other.key(), 0o644, tokenSection(k.key(), other.key()), "token.published_keys[0] " + other.key()},
		{"published private key 0600", other.key(), 0o600, tokenSection(k.key(), other.key()), ""},
		{"published certificate world-readable", other.cert(), 0o644, tokenSection(k.key(), other.cert()), ""},
		{"published public key world-readable", pubPath, 0o644, tokenSection(k.key(), pubPath), ""},
		{"certificate world-readable", k.cert(), 0o644, tokenSection(k.key()) + "  certificate: " + k.cert() + "\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, f := range []string{k.key(), other.key()} {
				if err := os.Chmod(f, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(tt.file, tt.mode); err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(t.TempDir(), "config.yaml")
			writeFile(t, cfg, "listen: 127.0.0.1:0\ntoken:\n"+tt.section)
			code, stdout, stderr := run(t, "", "check-config", "--config", cfg)
			if tt.wantErr == "" {
				if code != 0 {
					t.Fatalf("check-config refused it: exit %d: %s", code, stderr)
				}
				return
			}
			if code != 2 {
				t.Fatalf("check-config: exit %d, want 2\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			wantContains(t, "stderr", stderr, tt.wantErr, fmt.Sprintf("mode %04o", uint32(tt.mode)), "chmod 600 "+tt.file)
			wantLacks(t, "stderr", stderr, "PRIVATE KEY")

			// serve refuses it the same way, before it listens, with the
			// exit code of an invalid config (the systemd unit does not
			// restart on it).
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			var serveErr strings.Builder
			if code := Run(ctx, []string{"serve", "--config", cfg}, strings.NewReader(""), io.Discard, &serveErr); code != 2 || !strings.Contains(serveErr.String(), "chmod 600 "+tt.file) {
				t.Errorf("serve: exit %d, want 2 with the chmod hint: %s", code, serveErr.String())
			}
		})
	}

	// keys --previous reads a previous key as serve would.
	if err := os.Chmod(k.key(), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "", "keys", "--out", filepath.Join(dir, "new"), "--previous", k.key())
	if code == 0 || !strings.Contains(stderr, "chmod 600 "+k.key()) {
		t.Errorf("keys --previous with a world-readable key: exit %d: %s", code, stderr)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// writePublicPEM writes the PKIX public key of the private key in keyFile.
func writePublicPEM(t *testing.T, path, keyFile string) {
	t.Helper()
	block, _ := pem.Decode(mustRead(t, keyFile))
	if block == nil {
		t.Fatalf("%s: not PEM", keyFile)
	}
	private, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(private.(crypto.Signer).Public())
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
}

// TestKeyReloadKeepsLastGood breaks the key files of a running server in
// each way a reload can find them broken: the reload fails and says why,
// the server keeps signing with and publishing the keys it had, and a
// repaired file is then picked up.
func TestKeyReloadKeepsLastGood(t *testing.T) {
	t.Parallel()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384PEM, err := token.EncodePrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	type env struct {
		dir, configPath, htpasswd, live string
		a, b                            keyDir
	}
	tests := []struct {
		name  string
		brk   func(t *testing.T, e env)
		want  []string // in the "reload failed" log line
		fixed func(t *testing.T, e env)
	}{
		{
			name: "signing key garbage",
			brk: func(t *testing.T, e env) {
				replaceFile(t, e.live, []byte("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"), 0o600)
			},
			want: []string{"token.key", "not a PEM-encoded"},
		},
		{
			name: "signing key half written",
			brk: func(t *testing.T, e env) {
				data := mustRead(t, e.b.key())
				replaceFile(t, e.live, data[:len(data)/2], 0o600)
			},
			want: []string{"token.key", "no PEM private key"},
		},
		{
			name: "signing key made world-readable",
			brk: func(t *testing.T, e env) {
				copyFile(t, e.live, e.b.key(), 0o644)
			},
			want: []string{"token.key " + "LIVE", "chmod 600 " + "LIVE"},
		},
		{
			name: "signing key on an unsupported curve",
			brk: func(t *testing.T, e env) {
				replaceFile(t, e.live, p384PEM, 0o600)
			},
			want: []string{"token.key", "P-384"},
		},
		{
			name: "signing key removed",
			brk: func(t *testing.T, e env) {
				if err := os.Remove(e.live); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"token.key", "no such file"},
		},
		{
			name: "published key missing",
			brk: func(t *testing.T, e env) {
				replaceFile(t, e.configPath, []byte(keyConfig(e.htpasswd, tokenSection(e.live, filepath.Join(e.dir, "absent.pem")))), 0o600)
			},
			want: []string{"token.published_keys[0]", "absent.pem"},
		},
		{
			name: "certificate of another key",
			brk: func(t *testing.T, e env) {
				replaceFile(t, e.configPath, []byte(keyConfig(e.htpasswd, tokenSection(e.live)+"  certificate: "+e.b.cert()+"\n")), 0o600)
			},
			want: []string{"token.key", "does not match"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			e := env{dir: dir, live: filepath.Join(dir, "live.pem"), configPath: filepath.Join(dir, "config.yaml"), htpasswd: filepath.Join(dir, "htpasswd")}
			e.a = makeKeys(t, filepath.Join(dir, "a"), "ec")
			e.b = makeKeys(t, filepath.Join(dir, "b"), "ec")
			copyFile(t, e.live, e.a.key(), 0o600)
			writeFile(t, e.htpasswd, htpasswdLine(t, "alice", passwords["alice"]))
			writeFile(t, e.configPath, keyConfig(e.htpasswd, tokenSection(e.live)))
			srv, logs := startServer(t, e.configPath)
			addr := srv.Addr()
			const scope = "repository:alice/app:pull"

			tt.brk(t, e)
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = strings.ReplaceAll(w, "LIVE", e.live)
			}
			err := srv.Reload(t.Context())
			if err == nil || slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(err.Error(), w) }) {
				t.Errorf("reload with the broken key files: %v, want an error saying %q", err, want)
			}
			waitFor(t, "the reload to fail", func() bool {
				for _, line := range strings.Split(logs.String(), "\n") {
					if strings.Contains(line, "reload failed") && !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(line, w) }) {
						return true
					}
				}
				return false
			})
			if kid := kidOf(mustToken(t, addr, scope)); kid != e.a.kid {
				t.Errorf("after the failed reload tokens carry kid %q, want the last good key's %q", kid, e.a.kid)
			}
			if got := servedKids(t, addr); !slices.Equal(got, []string{e.a.kid}) {
				t.Errorf("after the failed reload the JWKS lists %q, want the last good key %q", got, e.a.kid)
			}

			// Repaired: the new key is picked up, with the old one
			// published. (Each write may be reloaded on its own; the
			// last reload sees both.)
			replaceFile(t, e.configPath, []byte(keyConfig(e.htpasswd, tokenSection(e.live, e.a.key()))), 0o600)
			copyFile(t, e.live, e.b.key(), 0o600)
			mustReload(t, srv)
			waitFor(t, "the repaired key to sign, the old one published", func() bool {
				return kidOf(mustToken(t, addr, scope)) == e.b.kid && slices.Equal(servedKids(t, addr), []string{e.b.kid, e.a.kid})
			})
			wantLacks(t, "log", logs.String(), "PRIVATE KEY", "c2VjcmV0")
		})
	}
}

// TestKeysPrevious: `keys --previous` writes a jwks.json of the new key and
// the previous ones (and a certificate bundle when it is given
// certificates), prints a config that loads, and never loses a previous key.
func TestKeysPrevious(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := makeKeys(t, filepath.Join(dir, "old"), "rsa")
	older := makeKeys(t, filepath.Join(dir, "older"), "ed25519")
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")

	tests := []struct {
		name       string
		previous   []string
		wantKids   []string // after the new key's
		wantBundle bool
	}{
		{"one previous key", []string{old.key()}, []string{old.kid}, false},
		{"a key and its certificate", []string{old.key(), old.cert()}, []string{old.kid}, true},
		{"two generations", []string{old.key(), older.cert()}, []string{old.kid, older.kid}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "new")
			k := makeKeys(t, out, "ec", tt.previous...)
			var set struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(mustRead(t, k.jwks()), &set); err != nil {
				t.Fatal(err)
			}
			var kids []string
			for _, key := range set.Keys {
				kids = append(kids, key["kid"].(string))
				if _, ok := key["d"]; ok {
					t.Errorf("jwks.json holds the private part of %s", key["kid"])
				}
			}
			if want := append([]string{k.kid}, tt.wantKids...); !slices.Equal(kids, want) {
				t.Errorf("jwks.json lists %q, want %q", kids, want)
			}
			bundle := filepath.Join(out, "bundle.pem")
			_, err := os.Stat(bundle)
			if hasBundle := err == nil; hasBundle != tt.wantBundle {
				t.Errorf("bundle.pem written: %v, want %v", hasBundle, tt.wantBundle)
			}
			rootBundle := "rootcertbundle: " + k.cert()
			if tt.wantBundle {
				rootBundle = "rootcertbundle: " + bundle
				data := mustRead(t, bundle)
				if n := strings.Count(string(data), "BEGIN CERTIFICATE"); n != 2 {
					t.Errorf("bundle.pem holds %d certificates, want the new one and the previous one", n)
				}
			}
			wantContains(t, "keys output", k.stdout, "Rotation", "published_keys:", "key: "+k.key(), "jwks: "+k.jwks(), rootBundle,
				"curl -fsS http://localhost:5001/.well-known/jwks.json > "+k.jwks())
			for _, p := range tt.previous {
				wantContains(t, "keys output", k.stdout, "    - "+p+"\n")
			}
			wantLacks(t, "keys output", k.stdout, "PRIVATE KEY")

			// The printed srht-registry config loads.
			section := k.stdout[strings.Index(k.stdout, "\ntoken:\n")+len("\ntoken:\n") : strings.Index(k.stdout, "#\n# 3.")]
			cfg := filepath.Join(out, "config.yaml")
			writeFile(t, cfg, "token:\n"+section)
			if code, _, stderr := run(t, "", "check-config", "--config", cfg); code != 0 {
				t.Fatalf("check-config of the printed config: %s", stderr)
			}
		})
	}

	refusals := []struct {
		name string
		args []string
		want []string
	}{
		{"a previous key the run would overwrite", []string{"--out", old.dir, "--force", "--previous", old.key()}, []string{"--previous " + old.key(), "another --out"}},
		{"a previous file that is no key", []string{"--out", filepath.Join(dir, "x"), "--previous", garbage}, []string{"--previous " + garbage, "key"}},
		{"a previous file that does not exist", []string{"--out", filepath.Join(dir, "y"), "--previous", filepath.Join(dir, "absent.pem")}, []string{"absent.pem"}},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, "", append([]string{"keys"}, tt.args...)...)
			if code == 0 {
				t.Fatal("keys accepted it")
			}
			wantContains(t, "stderr", stderr, tt.want...)
		})
	}
	if got := kidOfFile(t, old.key()); got != old.kid {
		t.Errorf("the previous key was overwritten: kid %s, want %s", got, old.kid)
	}
}

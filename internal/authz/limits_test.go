package authz_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/authz"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// spaces reads as n spaces.
type spaces struct{ n int64 }

func (s *spaces) Read(p []byte) (int, error) {
	if s.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), s.n)
	for i := range p[:k] {
		p[i] = ' '
	}
	s.n -= k
	return int(k), nil
}

// bomb is a gzip bomb shaped as an OPA bundle: a manifest, a policy and
// files data.json files of each bytes (spaces, then {}: valid JSON), which
// gzip makes about a thousand times smaller. Each file is within OPA's
// per-file limit (64 MiB here); all of them are not.
func bomb(t *testing.T, files int, each int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(gz)
	add := func(name string, size int64, r io.Reader) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, r); err != nil {
			t.Fatal(err)
		}
	}
	manifest := `{"revision": "bomb"}`
	add("/.manifest", int64(len(manifest)), strings.NewReader(manifest))
	rego := "package registry.authz\n\nallow contains \"pull\"\n"
	add("/authz.rego", int64(len(rego)), strings.NewReader(rego))
	for i := range files {
		add(fmt.Sprintf("/pad%d/data.json", i), each+2, io.MultiReader(&spaces{each}, strings.NewReader("{}")))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bundleBytes packs one policy module as a bundle.
func bundleBytes(t *testing.T, revision, rego string) []byte {
	t.Helper()
	b := bundle.Bundle{
		Manifest: bundle.Manifest{Revision: revision, Roots: &[]string{"registry"}},
		Data:     map[string]any{},
		Modules:  []bundle.ModuleFile{{URL: "/authz.rego", Path: "/authz.rego", Raw: []byte(rego)}},
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// swappableServer serves whatever body was set last, as a bundle server,
// and records the decision logs it is sent.
type swappableServer struct {
	mu        sync.Mutex
	body      []byte
	decisions []map[string]any
	srv       *httptest.Server
}

func newSwappableServer(t *testing.T) *swappableServer {
	s := &swappableServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/logs" {
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
			s.mu.Lock()
			s.decisions = append(s.decisions, events...)
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *swappableServer) set(body []byte) {
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

func (s *swappableServer) logged() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.decisions...)
}

// remoteConfig is an OPA configuration polling the server every second.
func remoteConfig(url, extra string) []byte {
	return []byte(`{"services": {"cp": {"url": "` + url + `"}},
		"bundles": {"registry": {"service": "cp", "resource": "/bundle.tar.gz", "polling": {"min_delay_seconds": 1, "max_delay_seconds": 1}}}` + extra + `}`)
}

func waitForLog(t *testing.T, logs *syncBuffer, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(logs.String(), what) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log in time:\n%s", what, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRemoteBundleBomb: a 120 MiB bundle, 40 MiB a file (within OPA's
// per-file limit) but a few hundred KiB over the wire, is refused while it
// downloads, before it is held whole: not at start, and not later in
// place of a good bundle, which stays in force; a good bundle after it
// activates.
func TestRemoteBundleBomb(t *testing.T) {
	t.Parallel()
	bomb := bomb(t, 3, 40<<20)
	t.Logf("bomb: %d bytes, 120 MiB uncompressed", len(bomb))
	bs := newSwappableServer(t)
	ctx := context.Background()

	t.Run("at start", func(t *testing.T) {
		bs := newSwappableServer(t)
		bs.set(bomb)
		logs := &syncBuffer{}
		_, err := authz.StartRemote(ctx, authz.RemoteOptions{Config: remoteConfig(bs.srv.URL, ""), Wait: 3 * time.Second,
			Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if err == nil || !strings.Contains(err.Error(), "no bundle activated") {
			t.Fatalf("StartRemote with a bomb = %v, want no bundle activated", err)
		}
		if !strings.Contains(logs.String(), "bundle larger than its size limit") || !strings.Contains(logs.String(), "more than 67108864 bytes uncompressed") {
			t.Errorf("the log does not say the bundle is over the size limit:\n%s", logs)
		}
	})

	bs.set(bundleBytes(t, "v1", "package registry.authz\n\nallow contains \"pull\"\n"))
	logs := &syncBuffer{}
	r, err := authz.StartRemote(ctx, authz.RemoteOptions{Config: remoteConfig(bs.srv.URL, ""), Wait: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx)
	if got := r.Authorizer().Engine().Revision(); got != "registry@v1" {
		t.Fatalf("revision %q, want registry@v1", got)
	}
	if !strings.Contains(logs.String(), "bundle_size_limit_bytes=67108864") {
		t.Errorf("the start does not log the size limit:\n%s", logs)
	}
	bs.set(bomb)
	waitForLog(t, logs, "bundle larger than its size limit")
	if got := r.Authorizer().Engine().Revision(); got != "registry@v1" {
		t.Errorf("revision %q after the bomb, want registry@v1 still", got)
	}
	bs.set(bundleBytes(t, "v2", "package registry.authz\n\nallow contains \"push\"\n"))
	waitForLog(t, logs, "revision=registry@v2")
}

// TestRemoteBundleSizeLimitRaised: a bundle's size_limit_bytes above the
// default raises the total limit: a bundle of 66 MiB uncompressed loads.
func TestRemoteBundleSizeLimitRaised(t *testing.T) {
	t.Parallel()
	bs := newSwappableServer(t)
	bs.set(bomb(t, 2, 33<<20))
	ctx := context.Background()
	config := []byte(`{"services": {"cp": {"url": "` + bs.srv.URL + `"}},
		"bundles": {"registry": {"service": "cp", "resource": "/bundle.tar.gz", "size_limit_bytes": 134217728}}}`)
	r, err := authz.StartRemote(ctx, authz.RemoteOptions{Config: config, Wait: 2 * time.Minute, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("a 66 MiB bundle under size_limit_bytes 128 MiB: %v", err)
	}
	r.Stop(ctx)
}

// TestRemoteKeepsCredentials: the service's own credentials still apply
// behind the size limit (a bearer token, here).
func TestRemoteKeepsCredentials(t *testing.T) {
	t.Parallel()
	body := bundleBytes(t, "v1", "package registry.authz\n\nallow contains \"pull\"\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "unauthorised", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	ctx := context.Background()
	config := []byte(`{"services": [{"name": "cp", "url": "` + srv.URL + `", "credentials": {"bearer": {"token": "s3cret"}}}],
		"bundles": {"registry": {"service": "cp", "resource": "/bundle.tar.gz"}}}`)
	r, err := authz.StartRemote(ctx, authz.RemoteOptions{Config: config, Wait: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("a bundle behind a bearer token: %v", err)
	}
	r.Stop(ctx)
}

// TestLocalTarballBomb: a local .tar.gz bundle over the limit in total,
// or with one file over it, is refused, naming the limit and what to do; a
// bundle directory is not limited.
func TestLocalTarballBomb(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, body []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"many.tar.gz", bomb(t, 3, 40<<20)},
		{"one.tar.gz", bomb(t, 1, 80<<20)},
	} {
		p := write(tc.name, tc.body)
		_, err := authz.LoadBundle(p)
		if !errors.Is(err, authz.ErrBundleTooLarge) || !strings.Contains(err.Error(), "bundle "+p) ||
			!strings.Contains(err.Error(), "a bundle directory has none: unpack it into one") {
			t.Errorf("%s: %v, want ErrBundleTooLarge naming the bundle and how to load it", tc.name, err)
		}
		if _, err := authz.ReadBundleDataSchema(p); !errors.Is(err, authz.ErrBundleTooLarge) {
			t.Errorf("%s: ReadBundleDataSchema: %v, want ErrBundleTooLarge", tc.name, err)
		}
		_, err = authz.Compile(context.Background(), authz.LocalPolicy(nil, []string{p}, "", 0))
		if !errors.Is(err, authz.ErrBundleTooLarge) {
			t.Errorf("%s: Compile: %v, want ErrBundleTooLarge", tc.name, err)
		}
	}
	small := write("small.tar.gz", bomb(t, 1, 1<<20))
	if _, err := authz.Compile(context.Background(), authz.LocalPolicy(nil, []string{small}, "", 0)); err != nil {
		t.Errorf("a 1 MiB tarball: %v", err)
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestRemoteInstanceID: each start of the plugins has its own random OPA
// instance ID, and the uploaded decision logs carry it (labels.id).
func TestRemoteInstanceID(t *testing.T) {
	t.Parallel()
	bs := newSwappableServer(t)
	bs.set(bundleBytes(t, "v1", "package registry.authz\n\nallow contains \"pull\"\n"))
	ctx := context.Background()
	config := remoteConfig(bs.srv.URL, `, "decision_logs": {"service": "cp", "resource": "/logs", "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 1}}`)
	var ids []string
	for range 2 {
		logs := &syncBuffer{}
		r, err := authz.StartRemote(ctx, authz.RemoteOptions{Config: config, Wait: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Stop(ctx)
		id := r.InstanceID()
		if !uuidRE.MatchString(id) {
			t.Errorf("instance ID %q is not a random UUID", id)
		}
		if !strings.Contains(logs.String(), "instance_id="+id) {
			t.Errorf("the start does not log the instance ID %s:\n%s", id, logs)
		}
		sc, err := access.ParseScope("repository:alice/app:pull")
		if err != nil {
			t.Fatal(err)
		}
		req := identity.Request{Service: "registry.example.com", DecisionID: "decision-" + id, Time: time.Now()}
		if _, err := r.Authorizer().Authorize(ctx, identity.Identity{Method: identity.MethodAnonymous}, req, []access.Scope{sc}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if ids[0] == ids[1] {
		t.Errorf("two starts share the instance ID %s", ids[0])
	}
	for _, id := range ids {
		deadline := time.Now().Add(15 * time.Second)
		for {
			found := ""
			for _, ev := range bs.logged() {
				if ev["decision_id"] == "decision-"+id {
					labels, _ := ev["labels"].(map[string]any)
					found, _ = labels["id"].(string)
				}
			}
			if found != "" {
				if found != id {
					t.Errorf("the decision of instance %s was uploaded with labels.id %s", id, found)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no decision of instance %s uploaded in time", id)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// configMapVolume lays out files as the kubelet mounts a ConfigMap: each
// a symlink into ..data, a symlink to a timestamped directory holding
// them. update replaces the files as the kubelet does: a new directory,
// and ..data renamed over the old link.
func configMapVolume(t *testing.T, files map[string]string) (dir string, update func(files map[string]string)) {
	t.Helper()
	dir = t.TempDir()
	n := 0
	update = func(files map[string]string) {
		n++
		ts := fmt.Sprintf("..2026_12_05_11_00_0%d.%d", n, 100+n)
		if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, ts, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(dir, name)
			if _, err := os.Lstat(link); err != nil {
				if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	update(files)
	return dir, update
}

// TestKubernetesConfigMapBundle: a bundle directory mounted from a
// ConfigMap (the ..data symlink layout) loads as the bundle its files
// make, and an update of the ConfigMap is read at the next load.
func TestKubernetesConfigMapBundle(t *testing.T) {
	t.Parallel()
	files := func(revision, action string) map[string]string {
		return map[string]string{
			".manifest":  `{"revision": "` + revision + `", "roots": ["registry"]}`,
			"authz.rego": "package registry.authz\n\nallow contains data.registry.action\n",
			"data.json":  `{"registry": {"action": "` + action + `"}}`,
		}
	}
	dir, update := configMapVolume(t, files("cm-1", "pull"))
	check := func(revision, action string) {
		t.Helper()
		e, err := authz.Compile(context.Background(), authz.LocalPolicy(nil, []string{dir}, "", 0))
		if err != nil {
			t.Fatalf("a ConfigMap bundle: %v", err)
		}
		if e.Revision() != revision {
			t.Errorf("revision %q, want %s", e.Revision(), revision)
		}
		sc, _ := access.ParseScope("repository:alice/app:pull,push")
		d, err := e.Decide(context.Background(), identity.Anonymous, identity.Request{Time: time.Now()}, sc)
		if err != nil || len(d.Granted) != 1 || d.Granted[0] != action {
			t.Errorf("granted %v (%v), want [%s]", d.Granted, err, action)
		}
	}
	check("cm-1", "pull")
	update(files("cm-2", "push"))
	check("cm-2", "push")
}

// TestDecisionLogMask: the input fields policy.decision_log_mask names are
// left out of uploaded decision logs (the client address also from
// requested_by); the others are uploaded.
func TestDecisionLogMask(t *testing.T) {
	t.Parallel()
	bs := newSwappableServer(t)
	bs.set(bundleBytes(t, "v1", "package registry.authz\n\nallow contains \"pull\"\n"))
	ctx := context.Background()
	config := remoteConfig(bs.srv.URL, `, "decision_logs": {"service": "cp", "resource": "/logs", "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 1}}`)
	r, err := authz.StartRemote(ctx, authz.RemoteOptions{Config: config, Wait: 10 * time.Second, Logger: slog.New(slog.DiscardHandler),
		DecisionLogMask: []string{"/request/client_ip", "/identity/oidc/claims"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx)
	sc, err := access.ParseScope("repository:octo-org/app:pull")
	if err != nil {
		t.Fatal(err)
	}
	id := identity.Identity{Method: identity.MethodOIDC, Provider: "github", Subject: "repo:octo-org/app:ref:refs/heads/main",
		OIDC: &identity.OIDC{Issuer: "https://token.actions.githubusercontent.com", Claims: map[string]any{"actor": "octocat"}}}
	req := identity.Request{Service: "registry.example.com", ClientIP: "192.0.2.9", UserAgent: "docker/28", DecisionID: "masked-1", Time: time.Now()}
	if _, err := r.Authorizer().Authorize(ctx, id, req, []access.Scope{sc}); err != nil {
		t.Fatal(err)
	}
	if id.OIDC.Claims["actor"] != "octocat" {
		t.Fatal("masking changed the identity's own claims")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, ev := range bs.logged() {
			if ev["decision_id"] != "masked-1" {
				continue
			}
			raw, _ := json.Marshal(ev)
			for _, gone := range []string{"192.0.2.9", "octocat"} {
				if strings.Contains(string(raw), gone) {
					t.Errorf("the upload carries the masked %q: %s", gone, raw)
				}
			}
			for _, kept := range []string{"registry.example.com", "docker/28", "token.actions.githubusercontent.com"} {
				if !strings.Contains(string(raw), kept) {
					t.Errorf("the upload lacks the unmasked %q: %s", kept, raw)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no decision uploaded in time")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

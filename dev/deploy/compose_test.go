package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	ggcrauthn "github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v3"

	"git.sr.ht/~zozs/srht-registry/internal/app"

	// Registered by import, as in the registry binary.
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

const composeFile = examples + "compose/compose.yaml"

// loadCompose loads compose.yaml with compose-go, the loader of
// `docker compose` itself: the file is validated against the compose
// specification's schema (an unknown or misspelt key fails), then
// interpolated and normalised, and relative paths are made absolute.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs}},
		Environment: types.Mapping{},
	})
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return s
}

// volumeAt is the mount of s whose target holds path inside the container,
// and path's place inside the mounted source.
func volumeAt(t *testing.T, s types.ServiceConfig, path string) (types.ServiceVolumeConfig, string) {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Target == path {
			return v, ""
		}
		if dir := strings.TrimSuffix(v.Target, "/") + "/"; strings.HasPrefix(path, dir) {
			return v, strings.TrimPrefix(path, dir)
		}
	}
	t.Fatalf("service %s mounts nothing at %s", s.Name, path)
	return types.ServiceVolumeConfig{}, ""
}

// flag returns the value of --name in args.
func flag(t *testing.T, args []string, name string) string {
	t.Helper()
	i := slices.Index(args, name)
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("%q has no %s", args, name)
	}
	return args[i+1]
}

// composeWiring is what the compose file wires together, read from it.
type composeWiring struct {
	tokenConfigHost string   // the host file mounted as the token server's config
	keysArgs        []string // the keys service's command
	healthArgs      []string // the token server's healthcheck command, without CMD and the binary
	keysDir         string   // where keys writes inside its container
	registryConfig  []byte   // the registry's config.yml
	registry        *configuration.Configuration
}

// readWiring checks the compose file's wiring and returns it.
func readWiring(t *testing.T) composeWiring {
	t.Helper()
	p := loadCompose(t)
	srv := service(t, p, "srht-registry")
	keys := service(t, p, "keys")
	reg := service(t, p, "registry")
	var w composeWiring

	// The token server runs with the mounted srht-registry.yaml.
	if len(srv.Command) != 3 || srv.Command[0] != "serve" || srv.Command[1] != "--config" {
		t.Fatalf("srht-registry command %q, want serve --config FILE", srv.Command)
	}
	cv, _ := volumeAt(t, srv, srv.Command[2])
	if cv.Type != types.VolumeTypeBind || !cv.ReadOnly {
		t.Fatalf("the token server's config %s is not a read-only bind mount", srv.Command[2])
	}
	w.tokenConfigHost = cv.Source
	if want, _ := filepath.Abs(composeConfig); cv.Source != want {
		t.Fatalf("the token server's config is %s, want %s (the file the other tests check)", cv.Source, want)
	}
	cfg := parseConfig(t, composeConfig, readFile(t, cv.Source))

	// keys writes the key where the server reads it, into a named volume
	// they share, after keys-init made it writable for the image's user.
	w.keysArgs = keys.Command
	if len(keys.Command) == 0 || keys.Command[0] != "keys" {
		t.Fatalf("keys service command %q, want keys ...", keys.Command)
	}
	w.keysDir = flag(t, keys.Command, "--out")
	kv, _ := volumeAt(t, keys, w.keysDir)
	sv, keyFile := volumeAt(t, srv, cfg.Token.Key)
	if kv.Type != types.VolumeTypeVolume || sv.Source != kv.Source || keyFile != "key.pem" {
		t.Errorf("token.key %s is not key.pem in the volume keys writes (%s)", cfg.Token.Key, kv.Source)
	}
	if !sv.ReadOnly {
		t.Error("the token server's keys volume is writable; it only reads it")
	}
	if kc, _ := volumeAt(t, keys, flag(t, keys.Command, "--config")); kc.Source != cv.Source {
		t.Errorf("keys reads config %s, the server %s: the printed service and issuer may differ", kc.Source, cv.Source)
	}
	ki := service(t, p, "keys-init")
	if iv, _ := volumeAt(t, ki, ki.Command[len(ki.Command)-1]); iv.Source != kv.Source ||
		!slices.Equal(ki.Command[:2], []string{"chown", strconv.Itoa(imageUser) + ":" + strconv.Itoa(imageUser)}) {
		t.Errorf("keys-init runs %q; it must chown the keys volume to the image's user", ki.Command)
	}
	dependsOn := func(s types.ServiceConfig, dep string, required bool) {
		t.Helper()
		d, ok := s.DependsOn[dep]
		if !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s does not wait for %s to complete", s.Name, dep)
		}
		if d.Required != required {
			t.Errorf("%s depends on %s with required: %v, want %v", s.Name, dep, d.Required, required)
		}
	}
	dependsOn(keys, "keys-init", true)
	// keys keeps an existing key and exits 0 (TestComposeRuns runs it
	// twice), so the services using its files can require it.
	dependsOn(srv, "keys", true)
	dependsOn(reg, "keys", true)
	if !slices.Contains(keys.Command, "--keep-existing") {
		t.Errorf("keys runs %q: without --keep-existing it fails at the second `up`", keys.Command)
	}
	if d := reg.DependsOn["srht-registry"]; d.Condition != types.ServiceConditionHealthy {
		t.Errorf("the registry waits for the token server to be %q, want %q", d.Condition, types.ServiceConditionHealthy)
	}
	if srv.StopGracePeriod == nil || time.Duration(*srv.StopGracePeriod) <= cfg.Limits.ShutdownTimeout.D() {
		t.Errorf("stop_grace_period %v must exceed limits.shutdown_timeout %v", srv.StopGracePeriod, cfg.Limits.ShutdownTimeout)
	}
	if !srv.ReadOnly || !slices.Contains(srv.CapDrop, "ALL") {
		t.Error("the token server should run with a read-only root and no capabilities")
	}

	// Published ports: the token endpoint, the metrics and the registry,
	// on loopback only (plain HTTP).
	published := func(s types.ServiceConfig, target int) int {
		t.Helper()
		for _, pc := range s.Ports {
			if int(pc.Target) == target {
				if pc.HostIP != "127.0.0.1" {
					t.Errorf("%s publishes %d on %q, want loopback only", s.Name, target, pc.HostIP)
				}
				n, err := strconv.Atoi(pc.Published)
				if err != nil {
					t.Fatalf("%s: published port %q", s.Name, pc.Published)
				}
				return n
			}
		}
		t.Errorf("%s does not publish container port %d", s.Name, target)
		return 0
	}
	tokenPort := published(srv, port(t, cfg.Listen))
	published(srv, port(t, cfg.Metrics.Listen))

	// The registry's config.yml, parsed by distribution itself.
	rv, _ := volumeAt(t, reg, "/etc/distribution/config.yml")
	if rv.Type != types.VolumeTypeBind {
		t.Fatalf("the registry's config is not a bind mount")
	}
	w.registryConfig = readFile(t, rv.Source)
	rc, err := configuration.Parse(bytes.NewReader(w.registryConfig))
	if err != nil {
		t.Fatalf("%s: %v", rv.Source, err)
	}
	w.registry = rc
	published(reg, port(t, rc.HTTP.Addr))
	tok := rc.Auth["token"]
	if rc.Auth.Type() != "token" || tok == nil {
		t.Fatalf("registry auth is %q, want token", rc.Auth.Type())
	}
	if s, _ := tok["service"].(string); !cfg.ServesService(s) {
		t.Errorf("registry auth.token.service %q is not one of the token server's services %v", s, cfg.Service)
	}
	if s, _ := tok["issuer"].(string); s != cfg.Issuer {
		t.Errorf("registry auth.token.issuer %q, token server issuer %q", s, cfg.Issuer)
	}
	jwks, _ := tok["jwks"].(string)
	if jv, f := volumeAt(t, reg, jwks); jv.Source != kv.Source || f != "jwks.json" {
		t.Errorf("registry auth.token.jwks %s is not the jwks.json keys writes", jwks)
	}
	// The realm is for clients on the host: localhost (a name: crane and
	// oras refuse a loopback IP literal) and the token server's published
	// port.
	realm, _ := tok["realm"].(string)
	u, err := url.Parse(realm)
	if err != nil || u.Hostname() != "localhost" || u.Port() != strconv.Itoa(tokenPort) || u.Path != "/auth" {
		t.Errorf("realm %q does not reach the token server published on localhost:%d/auth", realm, tokenPort)
	}
	if flag(t, keys.Command, "--realm") != realm {
		t.Errorf("keys --realm %q differs from the registry's realm %q", flag(t, keys.Command, "--realm"), realm)
	}

	// The healthcheck probes the debug listener of registry.yml.
	hc := reg.HealthCheck
	if hc == nil || len(hc.Test) == 0 {
		t.Fatal("the registry has no healthcheck")
	}
	hu, err := url.Parse(hc.Test[len(hc.Test)-1])
	if err != nil || hu.Path != "/debug/health" || hu.Port() != strconv.Itoa(port(t, rc.HTTP.Debug.Addr)) {
		t.Errorf("healthcheck %q does not probe /debug/health on http.debug.addr %s", hc.Test, rc.HTTP.Debug.Addr)
	}
	// Our image has no shell: its healthcheck is the binary's own probe,
	// given the config the server runs with (TestComposeRuns runs it).
	shc := srv.HealthCheck
	if shc == nil || len(shc.Test) < 3 || shc.Test[0] != "CMD" || shc.Test[1] != "/usr/local/bin/srht-registry" || shc.Test[2] != "healthcheck" ||
		flag(t, shc.Test, "--config") != flag(t, srv.Command, "--config") {
		t.Fatalf("srht-registry's healthcheck %v must be [CMD /usr/local/bin/srht-registry healthcheck --config <the served config>]", shc)
	}
	w.healthArgs = shc.Test[2:]
	return w
}

func TestComposeFile(t *testing.T) { readWiring(t) }

// syncBuffer collects a server's log while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
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

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)|"msg":"listening","addr":"([^"]+)"`)

// metricsRE finds the metrics listener's address and path in the log.
var metricsRE = regexp.MustCompile(`msg="metrics listening" addr=(\S+) path=(\S+)|"msg":"metrics listening","addr":"([^"]+)","path":"([^"]+)"`)

// TestComposeRuns runs the compose example's processes natively, wired as
// the file wires them: the keys command as the keys service runs it, the
// token server with the compose config, and a real distribution registry
// with the compose registry.yml (filesystem storage), each with only its
// paths and listen addresses moved to this machine. Then a client logs in,
// pushes and pulls, as `docker login localhost:5000` users would.
func TestComposeRuns(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	w := readWiring(t)
	f := makeFiles(t)
	ctx := context.Background()

	// keys, exactly as the service runs it, into a fresh directory.
	keysDir := filepath.Join(f.dir, "compose-keys")
	args := slices.Clone(w.keysArgs)
	args[slices.Index(args, "--out")+1] = keysDir
	args[slices.Index(args, "--config")+1] = w.tokenConfigHost
	var out bytes.Buffer
	if code := app.Run(ctx, args, nil, &out, &out); code != 0 {
		t.Fatalf("keys service command exited %d:\n%s", code, out.String())
	}
	// A second `docker compose up` runs it again: it must keep the key and
	// succeed.
	firstKey := readFile(t, filepath.Join(keysDir, "key.pem"))
	out.Reset()
	if code := app.Run(ctx, args, nil, &out, &out); code != 0 || !strings.Contains(out.String(), "kept them") {
		t.Fatalf("keys run twice exited %d (%s); compose.yaml relies on it keeping the key", code, out.String())
	}
	if !bytes.Equal(readFile(t, filepath.Join(keysDir, "key.pem")), firstKey) {
		t.Fatal("the second keys run replaced the key")
	}

	// The token server with the compose config.
	tokenConfig := readFile(t, w.tokenConfigHost)
	tokenConfig = editConfig(t, tokenConfig, func(key string, n *yaml.Node) {
		switch key {
		case "token.key":
			n.Value = filepath.Join(keysDir, "key.pem")
		case "authn.htpasswd":
			n.Value = f.htpasswd
		case "listen", "metrics.listen":
			n.Value = "127.0.0.1:0"
		}
	})
	cfgPath := filepath.Join(f.dir, "srht-registry.yaml")
	writeFile(t, cfgPath, tokenConfig, 0o644)
	logs := &syncBuffer{}
	srvCtx, stop := context.WithCancel(ctx)
	exited := make(chan int, 1)
	go func() {
		exited <- app.Run(srvCtx, []string{"serve", "--config", cfgPath}, strings.NewReader(""), io.Discard, logs)
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stop()
			<-exited
		}
	})
	var tokenAddr string
	for deadline := time.Now().Add(20 * time.Second); tokenAddr == ""; {
		if m := listeningRE.FindStringSubmatch(logs.String()); m != nil {
			tokenAddr = m[1] + m[2]
			break
		}
		select {
		case code := <-exited:
			t.Fatalf("the token server exited %d before listening:\n%s", code, logs)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the token server did not start:\n%s", logs)
		}
	}
	// The metrics listener of metrics.listen, on its own port.
	m := metricsRE.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no metrics listener logged:\n%s", logs)
	}
	resp, err := http.Get("http://" + m[1] + m[3] + m[2] + m[4])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("srht_registry_build_info")) {
		t.Errorf("GET metrics: %s\n%.300s", resp.Status, body)
	}
	// The healthcheck command, given the config with the port the server
	// really listens on.
	probeConfig := filepath.Join(f.dir, "probe.yaml")
	writeFile(t, probeConfig, editConfig(t, tokenConfig, func(key string, n *yaml.Node) {
		if key == "listen" {
			n.Value = tokenAddr
		}
	}), 0o644)
	probe := slices.Clone(w.healthArgs)
	probe[slices.Index(probe, "--config")+1] = probeConfig
	out.Reset()
	if code := app.Run(ctx, probe, nil, &out, &out); code != 0 {
		t.Errorf("the healthcheck %q exited %d: %s", w.healthArgs, code, out.String())
	}
	for _, probe := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + tokenAddr + probe)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", probe, resp.Status)
		}
	}

	// The registry with the compose registry.yml: the realm's host stays
	// (localhost), its port becomes the token server's.
	rc, err := configuration.Parse(bytes.NewReader(w.registryConfig))
	if err != nil {
		t.Fatal(err)
	}
	tok := rc.Auth["token"]
	realm, _ := url.Parse(tok["realm"].(string))
	realm.Host = "localhost:" + strconv.Itoa(port(t, tokenAddr))
	tok["realm"] = realm.String()
	tok["jwks"] = filepath.Join(keysDir, filepath.Base(tok["jwks"].(string)))
	fs := rc.Storage["filesystem"]
	fs["rootdirectory"] = filepath.Join(f.dir, "registry-data")
	rc.Log.AccessLog.Disabled = true
	if !testing.Verbose() {
		logrus.SetOutput(io.Discard) // the registry logs a push's probes at error level
	}
	reg := httptest.NewServer(handlers.NewApp(ctx, rc))
	t.Cleanup(reg.Close)
	// The registry's debug listener serves http.DefaultServeMux, where
	// its health package registers /debug/health: what the compose
	// healthcheck fetches.
	debug := httptest.NewServer(http.DefaultServeMux)
	t.Cleanup(debug.Close)
	if resp, err := http.Get(debug.URL + "/debug/health"); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusOK {
		t.Errorf("registry /debug/health: %s", resp.Status)
	}
	regHost := strings.TrimPrefix(reg.URL, "http://")

	// docker login + push + pull as a password user, in their namespace.
	ref, err := name.ParseReference(regHost+"/"+testUser+"/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	user := remote.WithAuth(&ggcrauthn.Basic{Username: testUser, Password: testPassword})
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, user, remote.WithContext(ctx)); err != nil {
		t.Fatalf("push through the compose wiring: %v\ntoken server log:\n%s", err, logs)
	}
	got, err := remote.Image(ref, user, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rd, err := l.Compressed()
		if err != nil {
			t.Fatalf("pull layer: %v", err)
		}
		if _, err := io.Copy(io.Discard, rd); err != nil {
			t.Fatalf("pull layer: %v", err)
		}
		rd.Close()
	}
	wantDigest, _ := img.Digest()
	if gotDigest, _ := got.Digest(); gotDigest != wantDigest {
		t.Fatalf("pulled %s, pushed %s", gotDigest, wantDigest)
	}
	// Nothing is public in the example: anonymous pulls are refused.
	_, err = remote.Image(ref, remote.WithAuth(ggcrauthn.Anonymous), remote.WithContext(ctx))
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous pull of a private repository: want 401, got %v", err)
	}

	// docker compose stop: SIGTERM, then a clean exit.
	stop()
	stopped = true
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("the token server exited %d on shutdown:\n%s", code, logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the token server did not stop within limits.shutdown_timeout")
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
	"git.sr.ht/~zozs/srht-registry/internal/fakeoidc"
)

const (
	service = "registry.example.com"
	issuer  = "srht-registry"
	// startTimeout bounds the wait for a server or registry to answer.
	startTimeout = 30 * time.Second
	stopGrace    = 5 * time.Second
	// shUser is the Sourcehut user of the Sourcehut cells: listed in
	// authn.sourcehut.users (the default lets nobody in), and not in
	// htpasswd, so sourcehut:carol owns carol/*.
	shUser = "carol"
	// oidcProvider is the authn.oidc entry of the fake issuer (GitHub
	// Actions' claims); the OIDC cells' jobs run for repositories of
	// oidcOwner, which the claim rule of the token server's config lets
	// push to their own repository, and try oidcForeignOwner's.
	oidcProvider     = "github"
	oidcOwner        = "octo-org"
	oidcForeignOwner = "evil-org"
)

// tokenServer is a running srht-registry.
type tokenServer struct {
	name  string
	addr  string // 127.0.0.1:PORT, its listen address
	realm string // http://localhost:PORT/auth
	proc  *child
}

// matrix is everything the cells share.
type matrix struct {
	opts      options
	tmp       string
	repoDir   string
	keys      string // the directory `srht-registry keys` wrote
	oldKeys   string // an earlier key pair, for the stale-JWKS setup
	keysOut   string // what `keys` printed
	htpasswd  string
	passwords map[string]string // alice (admin), bob
	shToken   string            // a Sourcehut token of carol, registry RW
	meta      *fakemeta.Server
	metaURL   string
	metaStop  func()
	oidc      *fakeoidc.Issuer // the fake OIDC issuer (GitHub Actions' claims)
	oidcURL   string           // its issuer URL, http://127.0.0.1:PORT
	ldap      ldapDir          // the directory of authn.ldap (ldap.go)
	tokKID    *tokenServer     // no certificate: tokens carry kid (jwks mode)
	tokX5C    *tokenServer     // token.certificate set: tokens carry x5c
	tarball   string           // the test image as a docker-save tarball
	layout    string           // the test image as an OCI layout, tag v1
	versions  versions
	logDir    string
	dockerd   *dockerDaemon // the private dockerd of the docker (daemon) cells
}

type versions struct {
	server, crane, oras, regctl, skopeo, docker, v3, v2 string
	// dockerd is the daemon's version, dockerCLI the one of the CLI the
	// daemon cells run (docker is the one on PATH: docker manifest's).
	dockerd, dockerCLI string
}

// freePort returns a loopback port nobody listens on right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return port, ln.Close()
}

// prepare checks the tools, makes keys, an htpasswd, a Sourcehut token, the
// test image, and starts the fake meta.sr.ht and both token servers.
func prepare(ctx context.Context, o options, tmp string) (*matrix, error) {
	m := &matrix{opts: o, tmp: tmp, passwords: map[string]string{}, logDir: filepath.Join(tmp, "logs")}
	if err := os.MkdirAll(m.logDir, 0o755); err != nil {
		return nil, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	m.repoDir = wd
	if err := m.checkTools(ctx); err != nil {
		return nil, err
	}

	m.keys = filepath.Join(tmp, "keys")
	m.oldKeys = filepath.Join(tmp, "keys-old")
	for _, dir := range []string{m.oldKeys, m.keys} {
		out, err := exec.CommandContext(ctx, o.server, "keys", "--out", dir).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("srht-registry keys --out %s: %w\n%s", dir, err, out)
		}
		m.keysOut = string(out)
		for _, f := range []string{"key.pem", "cert.pem", "jwks.json"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				return nil, fmt.Errorf("srht-registry keys did not write %s: %w", f, err)
			}
		}
	}

	var lines bytes.Buffer
	for _, u := range []string{"alice", "bob"} {
		pw := rand.Text()
		m.passwords[u] = pw
		cmd := exec.CommandContext(ctx, o.server, "hash-password", u)
		cmd.Stdin = strings.NewReader(pw + "\n")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("srht-registry hash-password %s: %w\n%s", u, err, stderr.Bytes())
		}
		lines.Write(out)
	}
	m.htpasswd = filepath.Join(tmp, "htpasswd")
	if err := os.WriteFile(m.htpasswd, lines.Bytes(), 0o600); err != nil {
		return nil, err
	}

	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	m.meta = fakemeta.New(seed)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fake meta.sr.ht: %w", err)
	}
	srv := &http.Server{Handler: m.meta.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	m.metaURL = "http://" + ln.Addr().String()
	m.metaStop = func() { _ = srv.Close() }
	m.shToken = m.meta.Mint(fakemeta.TokenOptions{
		Username: shUser, ClientID: "builds.sr.ht", Grants: service + "/REGISTRY:RW",
		Expires: time.Now().Add(2 * time.Hour),
	})

	// Plain http on loopback: the server accepts it for a loopback issuer.
	if m.oidc, err = fakeoidc.New(); err != nil {
		return nil, fmt.Errorf("fake OIDC issuer: %w", err)
	}
	m.oidcURL = m.oidc.URL()
	if err := m.startLDAP(); err != nil {
		return nil, err
	}

	if err := m.makeImage(); err != nil {
		return nil, fmt.Errorf("test image: %w", err)
	}
	if m.tokKID, err = m.startTokenServer(ctx, "srht-registry-kid", false, ""); err != nil {
		return nil, err
	}
	if m.tokX5C, err = m.startTokenServer(ctx, "srht-registry-x5c", true, ""); err != nil {
		return nil, err
	}
	if err := m.prepareDocker(ctx); err != nil {
		return m, err
	}
	return m, nil
}

func (m *matrix) close() {
	for _, t := range []*tokenServer{m.tokKID, m.tokX5C} {
		if t != nil {
			t.proc.Stop(stopGrace)
		}
	}
	if m.metaStop != nil {
		m.metaStop()
	}
	if m.oidc != nil {
		m.oidc.Close()
	}
	m.dockerd.stop()
	m.stopLDAP()
}

// idToken mints a GitHub Actions ID token of a job of owner/repo on main,
// for the registry's service: what `-u oidc -p "$ID_TOKEN"` sends. GitHub's
// tokens live 5 minutes, so each cell mints its own.
func (m *matrix) idToken(owner, repo string) string {
	return m.oidc.Mint(m.oidc.GitHubClaims(fakeoidc.GitHubOptions{Owner: owner, Repo: repo, Audience: service}))
}

// checkTools finds every tool and reads its version; a missing tool is an
// error, never a skip.
func (m *matrix) checkTools(ctx context.Context) error {
	o := m.opts
	goVersion := func(path string) (string, error) {
		bi, err := buildinfo.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%s: %w (install it with .ci/matrix)", path, err)
		}
		return bi.Main.Version, nil
	}
	var err error
	for _, t := range []struct {
		dst  *string
		path string
	}{
		{&m.versions.crane, filepath.Join(o.tools, "crane")},
		{&m.versions.oras, filepath.Join(o.tools, "oras")},
		{&m.versions.regctl, filepath.Join(o.tools, "regctl")},
		{&m.versions.v3, o.registryV3},
	} {
		if *t.dst, err = goVersion(t.path); err != nil {
			return err
		}
	}
	cmdVersion := func(name string, args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, oneLine(string(out)))
		}
		return flat(string(out)), nil
	}
	if m.versions.v2, err = cmdVersion(o.registryV2, "--version"); err != nil {
		return err
	}
	// "…/docker-registry github.com/docker/distribution 2.8.2+ds1" → "2.8.2+ds1"
	if f := strings.Fields(m.versions.v2); len(f) > 0 {
		m.versions.v2 = f[len(f)-1]
	}
	if m.versions.skopeo, err = cmdVersion("skopeo", "--version"); err != nil {
		return err
	}
	m.versions.skopeo = strings.TrimPrefix(m.versions.skopeo, "skopeo version ")
	if m.versions.docker, err = cmdVersion("docker", "--version"); err != nil {
		return err
	}
	// "Docker version 28.2.2, build e6534b4" → "28.2.2"
	m.versions.docker, _, _ = strings.Cut(strings.TrimPrefix(m.versions.docker, "Docker version "), ",")
	if _, err := os.Stat(o.server); err != nil {
		return fmt.Errorf("srht-registry binary: %w", err)
	}
	m.versions.server = "unknown"
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.versions.server = strings.TrimSpace(string(out))
		if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			m.versions.server += "+changes"
		}
	}
	return nil
}

// makeImage writes a small random OCI image (two layers) as a docker-save
// tarball (crane push) and as an OCI layout tagged v1 (oras, regctl,
// skopeo).
func (m *matrix) makeImage() error {
	// A platform, or `docker manifest create` refuses the image.
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		return err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	var layers []v1.Layer
	for range 2 {
		l, err := random.Layer(2048, types.OCILayer)
		if err != nil {
			return err
		}
		layers = append(layers, l)
	}
	img, err = mutate.AppendLayers(img, layers...)
	if err != nil {
		return err
	}
	m.tarball = filepath.Join(m.tmp, "image.tar")
	tag, err := name.NewTag("localhost/matrix/image:v1")
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(m.tarball, tag, img); err != nil {
		return err
	}
	m.layout = filepath.Join(m.tmp, "layout")
	p, err := layout.Write(m.layout, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"}))
}

func (m *matrix) tokenServerConfig(listen string, withCert bool) string {
	cert := ""
	if withCert {
		cert = fmt.Sprintf("  certificate: %q   # tokens carry x5c\n", filepath.Join(m.keys, "cert.pem"))
	}
	return fmt.Sprintf(`# written by dev/cmd/matrix
listen: %q
service: %s
issuer: %s
token:
  key: %q
%sauthn:
  anonymous: true
  htpasswd: %q
  sourcehut:
    enabled: true
    meta_url: %q
    users: [%s]   # the default lets nobody in
  oidc:
    - name: %s
      issuer: %q   # the fake issuer: plain http, allowed on loopback
      audience: %s
%sgroups:
  admins: ["htpasswd:alice"]   # a principal: sourcehut:alice would be someone else
policy:
  data:
    public: ["library/*"]
    oidc:   # OIDC identities get only what a claim rule grants
      - provider: %s
        claims: {repository_owner: %s, ref: ["refs/heads/main", "refs/tags/v*"]}
        repositories: ["{repository}", "{repository}/*"]
        actions: [pull, push]
%sbrute_force:
  threshold: 1000   # the login cells fail on purpose, all from 127.0.0.1
log:
  level: info
`, listen, service, issuer, filepath.Join(m.keys, "key.pem"), cert, m.htpasswd, m.metaURL, shUser,
		oidcProvider, m.oidcURL, service, m.ldapAuthn(), oidcProvider, oidcOwner, m.ldapData())
}

// withTokenTTL sets token.ttl in a config tokenServerConfig wrote.
func withTokenTTL(cfg, ttl string) string {
	return strings.Replace(cfg, "\ntoken:\n", "\ntoken:\n  ttl: "+ttl+"\n", 1)
}

// startTokenServer starts srht-registry with tokenServerConfig, and
// token.ttl set to ttl unless it is "".
func (m *matrix) startTokenServer(ctx context.Context, name string, withCert bool, ttl string) (*tokenServer, error) {
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		cfg := filepath.Join(m.tmp, name+".yaml")
		text := m.tokenServerConfig(addr, withCert)
		if ttl != "" {
			text = withTokenTTL(text, ttl)
		}
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			return nil, err
		}
		proc, err := startChild(name, filepath.Join(m.logDir, name+".log"), nil, m.opts.server, "serve", "--config", cfg)
		if err != nil {
			return nil, err
		}
		err = waitHTTP(ctx, proc, "http://"+addr+"/readyz", http.StatusOK)
		if err == nil {
			return &tokenServer{name: name, addr: addr, realm: fmt.Sprintf("http://localhost:%d/auth", port), proc: proc}, nil
		}
		proc.Stop(stopGrace)
		lastErr = fmt.Errorf("%s did not become ready: %w\n--- log ---\n%s", name, err, proc.log.Since(0))
		if !strings.Contains(proc.log.Since(0), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

// waitHTTP polls url until it answers want, the process ends or
// startTimeout passes.
func waitHTTP(ctx context.Context, proc *child, url string, want int) error {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	last := "no answer"
	for {
		if proc.Exited() {
			return fmt.Errorf("exited (%w)", proc.Err())
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %d from %s after %v (last: %s)", want, url, startTimeout, last)
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, truncate(flat(string(body)), 200))
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// registrySpec is one registry version under test.
type registrySpec struct {
	id    string // the column: v3.1.2, v2.8.2
	title string
	bin   string
	env   []string
	trust string // "jwks" (kid) or "x5c" (rootcertbundle)
}

// regConfig is what a registry config is made of; the broken setups change
// one field.
type regConfig struct {
	realm, service, issuer string
	jwks, rootCertBundle   string
}

// runningRegistry is a started registry.
type runningRegistry struct {
	spec *registrySpec
	host string // localhost:PORT, what clients are given
	proc *child
	tok  *tokenServer
}

// goodConfig is the registry config for spec made from the files `keys`
// wrote: jwks for v3 (tokens carry kid), rootcertbundle for 2.8 (tokens
// carry x5c).
func (m *matrix) goodConfig(spec *registrySpec) (regConfig, *tokenServer) {
	if spec.trust == "jwks" {
		return regConfig{realm: m.tokKID.realm, service: service, issuer: issuer, jwks: filepath.Join(m.keys, "jwks.json")}, m.tokKID
	}
	return regConfig{realm: m.tokX5C.realm, service: service, issuer: issuer, rootCertBundle: filepath.Join(m.keys, "cert.pem")}, m.tokX5C
}

func registryYAML(addr, storage string, c regConfig) string {
	var trust string
	if c.jwks != "" {
		trust += fmt.Sprintf("    jwks: %q\n", c.jwks)
	}
	if c.rootCertBundle != "" {
		trust += fmt.Sprintf("    rootcertbundle: %q\n", c.rootCertBundle)
	}
	return fmt.Sprintf(`# written by dev/cmd/matrix
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: %s
auth:
  token:
    realm: %q
    service: %q
    issuer: %q
%s`, storage, addr, rand.Text(), c.realm, c.service, c.issuer, trust)
}

var registryCount int

// startRegistry starts spec's registry with c and fresh storage.
func (m *matrix) startRegistry(ctx context.Context, spec *registrySpec, c regConfig, tok *tokenServer, label string) (*runningRegistry, error) {
	var lastErr error
	for range 3 {
		registryCount++
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("registry-%s-%s-%d", spec.id, label, registryCount)
		dir := filepath.Join(m.tmp, name)
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
			return nil, err
		}
		cfg := filepath.Join(dir, "config.yml")
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if err := os.WriteFile(cfg, []byte(registryYAML(addr, filepath.Join(dir, "data"), c)), 0o644); err != nil {
			return nil, err
		}
		proc, err := startChild(name, filepath.Join(m.logDir, name+".log"), spec.env, spec.bin, "serve", cfg)
		if err != nil {
			return nil, err
		}
		err = waitHTTP(ctx, proc, "http://"+addr+"/v2/", http.StatusUnauthorized)
		if err == nil {
			return &runningRegistry{spec: spec, host: fmt.Sprintf("localhost:%d", port), proc: proc, tok: tok}, nil
		}
		proc.Stop(stopGrace)
		lastErr = fmt.Errorf("%s did not start: %w\n--- log ---\n%s", name, err, truncate(proc.log.Since(0), 4000))
		if !strings.Contains(proc.log.Since(0), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

// ggcr helpers: the harness seeds and checks registries in-process with
// go-containerregistry (crane's library) as alice or bob.

func (m *matrix) auth(user string) authn.Authenticator {
	if user == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: user, Password: m.passwords[user]}
}

func (m *matrix) seed(ctx context.Context, host, repoTag, user string) error {
	ref, err := name.ParseReference(host+"/"+repoTag, name.Insecure)
	if err != nil {
		return err
	}
	p, err := layout.FromPath(m.layout)
	if err != nil {
		return err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.opts.cmdTimeout)
	defer cancel()
	if err := remote.Write(ref, img, remote.WithAuth(m.auth(user)), remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("seed %s as %s: %w", ref, user, err)
	}
	return nil
}

// exists reports whether repoTag has a manifest, asked as the admin.
func (m *matrix) exists(ctx context.Context, host, repoTag string) (bool, error) {
	ref, err := name.ParseReference(host+"/"+repoTag, name.Insecure)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.opts.cmdTimeout)
	defer cancel()
	_, err = remote.Head(ref, remote.WithAuth(m.auth("alice")), remote.WithContext(ctx))
	if err == nil {
		return true, nil
	}
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return false, nil
	}
	return false, err
}

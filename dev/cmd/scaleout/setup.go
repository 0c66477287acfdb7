package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/buildinfo"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

// freePorts returns n loopback ports nobody listens on right now, all
// different (the listeners are held until all are picked).
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// setup makes the key, the users, the bundle, and starts the fake
// meta.sr.ht, the bundle server, haproxy, the replicas and the registry.
func (s *scaleout) setup(ctx context.Context) error {
	o := s.opts
	if err := os.MkdirAll(s.logDir, 0o755); err != nil {
		return err
	}
	if err := s.readVersions(ctx); err != nil {
		return err
	}
	// lb, stats, registry, redis, then per replica: token port, metrics port.
	ports, err := freePorts(4 + 2*nReplicas)
	if err != nil {
		return fmt.Errorf("ports: %w", err)
	}
	s.lbAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	s.lbHost = fmt.Sprintf("localhost:%d", ports[0])
	s.statsAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	regAddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	s.regHost = fmt.Sprintf("localhost:%d", ports[2])
	realm := "http://" + s.lbHost + "/auth" // localhost: crane and oras refuse a realm on a loopback IP

	// One signing key for every replica.
	s.keys = filepath.Join(s.tmp, "keys")
	if out, err := exec.CommandContext(ctx, o.server, "keys", "--out", s.keys, "--realm", realm).CombinedOutput(); err != nil {
		return fmt.Errorf("srht-registry keys: %w\n%s", err, out)
	}

	// One htpasswd file for every replica, one user per password client.
	var lines bytes.Buffer
	for _, u := range []string{"go1", "go2", "crane", "oras", "regctl", probeUser} {
		pw := randomSecret()
		s.passwords[u] = pw
		cmd := exec.CommandContext(ctx, o.server, "hash-password", u)
		cmd.Stdin = strings.NewReader(pw + "\n")
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("srht-registry hash-password %s: %w\n%s", u, err, errOut.Bytes())
		}
		lines.Write(out)
	}
	s.htpasswd = filepath.Join(s.tmp, "htpasswd")
	if err := os.WriteFile(s.htpasswd, lines.Bytes(), 0o600); err != nil {
		return err
	}

	// The fake meta.sr.ht (the only fake part) and a Sourcehut token.
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		return err
	}
	s.meta = fakemeta.New(seed)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("fake meta.sr.ht: %w", err)
	}
	metaSrv := &http.Server{Handler: s.meta.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = metaSrv.Serve(ln) }()
	s.metaStop = func() { _ = metaSrv.Close() }
	s.shToken = s.meta.Mint(fakemeta.TokenOptions{
		Username: shUser, ClientID: "builds.sr.ht", Grants: service + "/REGISTRY:RW",
		Expires: time.Now().Add(2 * time.Hour),
	})

	// The bundle server, serving revision v1.
	if s.bundles, err = startBundleServer(randomSecret()); err != nil {
		return err
	}
	if err := s.bundles.set("v1", policyData(false)); err != nil {
		return err
	}

	settings := replicaSettings{
		keyFile: filepath.Join(s.keys, "key.pem"), htpasswd: s.htpasswd, metaURL: "http://" + ln.Addr().String(), sourcehutUser: shUser,
		bundleURL: s.bundles.url, bundleSecret: s.bundles.secret, trustedProxy: proxySource,
		minDelay: o.minDelay, maxDelay: o.maxDelay,
		bfThreshold: bfThreshold, bfStore: fmt.Sprintf("redis://127.0.0.1:%d/0", ports[3]),
	}
	// Redis first: the replicas share their brute-force counts there.
	if err := s.startRedis(ctx, ports[3]); err != nil {
		return err
	}
	lbc := lbConfig{Listen: s.lbAddr, Stats: s.statsAddr, Source: proxySource, CheckInter: checkInter}
	for i := range nReplicas {
		r := &replica{
			name:        fmt.Sprintf("r%d", i+1),
			addr:        fmt.Sprintf("127.0.0.1:%d", ports[4+2*i]),
			metricsAddr: fmt.Sprintf("127.0.0.1:%d", ports[5+2*i]),
		}
		r.config = filepath.Join(s.tmp, r.name+".yaml")
		if err := os.WriteFile(r.config, []byte(replicaConfig(settings, r.name, r.addr, r.metricsAddr)), 0o600); err != nil {
			return err
		}
		s.replicas = append(s.replicas, r)
		lbc.Servers = append(lbc.Servers, lbServer{Name: r.name, Addr: r.addr})
	}
	for _, r := range s.replicas {
		if err := r.start(ctx, o.server, s.logDir); err != nil {
			return err
		}
	}
	// haproxy once the replicas are ready: its servers start up, so the
	// "went down" counts are the run's own.
	lbCfg := filepath.Join(s.tmp, "haproxy.cfg")
	if err := os.WriteFile(lbCfg, []byte(renderHAProxy(lbc)), 0o644); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, o.haproxy, "-c", "-f", lbCfg).CombinedOutput(); err != nil {
		return fmt.Errorf("haproxy -c: %w\n%s", err, out)
	}
	s.lbLines = &timedLines{}
	if s.lb, err = startChild("haproxy", filepath.Join(s.logDir, "haproxy.log"), s.lbLines, nil, o.haproxy, "-f", lbCfg, "-db"); err != nil {
		return err
	}
	if err := waitHTTP(ctx, s.lb, "http://"+s.statsAddr+"/stats;csv", http.StatusOK); err != nil {
		return fmt.Errorf("haproxy did not start: %w\n%s", err, truncate(s.lb.log.String(), 4000))
	}

	if err := s.waitLB(ctx, func(st lbStats) bool {
		for _, r := range s.replicas {
			if st.servers[r.name].status != "UP" {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("haproxy did not mark every replica up: %w", err)
	}

	// The registry, its realm at the balancer.
	regDir := filepath.Join(s.tmp, "registry")
	if err := os.MkdirAll(filepath.Join(regDir, "data"), 0o755); err != nil {
		return err
	}
	regCfg := filepath.Join(regDir, "config.yml")
	if err := os.WriteFile(regCfg, []byte(registryYAML(regAddr, filepath.Join(regDir, "data"), realm, filepath.Join(s.keys, "jwks.json"))), 0o644); err != nil {
		return err
	}
	if s.registry, err = startChild("registry", filepath.Join(s.logDir, "registry.log"), nil, []string{"OTEL_TRACES_EXPORTER=none"}, o.registry, "serve", regCfg); err != nil {
		return err
	}
	if err := waitHTTP(ctx, s.registry, "http://"+regAddr+"/v2/", http.StatusUnauthorized); err != nil {
		return fmt.Errorf("registry did not start: %w\n%s", err, truncate(s.registry.log.String(), 4000))
	}

	s.image, err = makeTestImage(s.tmp)
	return err
}

func (s *scaleout) readVersions(ctx context.Context) error {
	for _, p := range []struct {
		dst  *string
		path string
	}{{&s.versions.server, s.opts.server}, {&s.versions.registry, s.opts.registry}} {
		bi, err := buildinfo.ReadFile(p.path)
		if err != nil {
			return fmt.Errorf("%s: %w", p.path, err)
		}
		*p.dst = bi.Main.Version
		for _, st := range bi.Settings {
			if st.Key == "vcs.revision" && len(st.Value) >= 7 {
				*p.dst = st.Value[:7]
			}
		}
	}
	// Built without VCS stamping (GOFLAGS=-buildvcs=false): the checkout's
	// commit, as cmd/matrix names it.
	if s.versions.server == "(devel)" {
		if out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output(); err == nil {
			s.versions.server = strings.TrimSpace(string(out))
			if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
				s.versions.server += "+changes"
			}
		}
	}
	for _, t := range []string{"crane", "oras", "regctl"} {
		if _, err := os.Stat(filepath.Join(s.opts.tools, t)); err != nil {
			return fmt.Errorf("%s: %w (install it with . .ci/tools)", t, err)
		}
	}
	out, err := exec.CommandContext(ctx, s.opts.haproxy, "-v").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s -v: %w (apt-get install haproxy)", s.opts.haproxy, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	if out, err := exec.CommandContext(ctx, s.opts.redis, "--version").CombinedOutput(); err != nil {
		return fmt.Errorf("%s --version: %w (apt-get install redis-server)", s.opts.redis, err)
	} else if _, v, ok := strings.Cut(string(out), " v="); ok {
		// "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=…"
		s.versions.redis = "redis " + strings.Fields(v)[0]
	} else {
		s.versions.redis = strings.TrimSpace(string(out))
	}
	// "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/"
	if f := strings.Fields(first); len(f) >= 3 {
		s.versions.haproxy = "haproxy " + f[2]
	} else {
		s.versions.haproxy = strings.TrimSpace(first)
	}
	return nil
}

func registryYAML(addr, storage, realm, jwks string) string {
	return fmt.Sprintf(`# written by dev/cmd/scaleout
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
    jwks: %q
`, storage, addr, randomSecret(), realm, service, issuer, jwks)
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"git.sr.ht/~zozs/srht-registry/dev/internal/childproc"
	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

const (
	nReplicas = 3
	// proxySource is the address haproxy connects to the replicas from;
	// the replicas trust only it (see lbConfig.Source).
	proxySource = "127.0.0.3"
	// checkInter is haproxy's health-check interval.
	checkInter = 500 * time.Millisecond
	// shUser is the Sourcehut user (a token from the fake meta.sr.ht): the
	// one authn.sourcehut.users lists, and no htpasswd user, so
	// sourcehut:dave owns dave/*.
	shUser = "dave"
	// probeUser asks for the decision that the policy change flips.
	probeUser  = "probe"
	probeScope = "repository:shared/app:pull"
)

// policyData is data.registry before and after the change: the change
// grants the probe user (the principal htpasswd:probe: a bundle's data is
// not resolved like the config's, and a bare name matches nobody) pull on
// shared/*, which it was refused before. Nothing the clients do depends on
// it.
func policyData(changed bool) map[string]any {
	ns := map[string]any{}
	if changed {
		ns["shared"] = map[string]any{"pull": []any{"htpasswd:" + probeUser}}
	}
	return map[string]any{"registry": map[string]any{"public": []any{}, "namespaces": ns}}
}

type scaleout struct {
	opts      options
	tmp       string
	logDir    string
	stderr    io.Writer
	keys      string
	htpasswd  string
	passwords map[string]string
	shToken   string
	meta      *fakemeta.Server
	metaStop  func()
	bundles   *bundleServer
	lb        *child
	lbLines   *timedLines
	lbAddr    string // 127.0.0.1:PORT
	lbHost    string // localhost:PORT, in the realm
	statsAddr string
	replicas  []*replica
	registry  *child
	regHost   string // localhost:PORT, what clients are given
	image     testImage
	versions  struct{ server, registry, haproxy string }

	t0     time.Time // the load's start
	evMu   sync.Mutex
	events []event
}

func (s *scaleout) event(format string, args ...any) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	at := time.Duration(0)
	if !s.t0.IsZero() {
		at = time.Since(s.t0)
	}
	s.events = append(s.events, event{at: at, what: fmt.Sprintf(format, args...)})
	s.logf("+%.2fs %s", at.Seconds(), fmt.Sprintf(format, args...))
}

func (s *scaleout) close() {
	for _, r := range s.replicas {
		if c := r.current(); c != nil {
			c.Stop(5 * time.Second)
		}
	}
	if s.registry != nil {
		s.registry.Stop(5 * time.Second)
	}
	if s.lb != nil {
		s.lb.Stop(5 * time.Second)
	}
	if s.metaStop != nil {
		s.metaStop()
	}
	if s.bundles != nil {
		s.bundles.close()
	}
}

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
	// lb, stats, registry, then per replica: token port, metrics port.
	ports, err := freePorts(3 + 2*nReplicas)
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
	}
	lbc := lbConfig{Listen: s.lbAddr, Stats: s.statsAddr, Source: proxySource, CheckInter: checkInter}
	for i := range nReplicas {
		r := &replica{
			name:        fmt.Sprintf("r%d", i+1),
			addr:        fmt.Sprintf("127.0.0.1:%d", ports[3+2*i]),
			metricsAddr: fmt.Sprintf("127.0.0.1:%d", ports[4+2*i]),
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

// lbStatsNow reads haproxy's stats page.
func (s *scaleout) lbStatsNow() (lbStats, error) {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + s.statsAddr + "/stats;csv")
	if err != nil {
		return lbStats{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return lbStats{}, err
	}
	return parseStatsCSV(string(body), "replicas")
}

// waitLB polls haproxy's stats until cond holds.
func (s *scaleout) waitLB(ctx context.Context, cond func(lbStats) bool) error {
	deadline := time.Now().Add(startTimeout)
	var last lbStats
	for {
		st, err := s.lbStatsNow()
		if err == nil {
			if cond(st) {
				return nil
			}
			last = st
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			var states []string
			for _, n := range last.order {
				states = append(states, n+"="+last.servers[n].status)
			}
			return fmt.Errorf("after %v: %s (last error: %v)", startTimeout, strings.Join(states, " "), err) //nolint:errorlint // err may be nil: no request was made yet
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runAll runs the load with the stops, then the policy change, and
// gathers the results.
func (s *scaleout) runAll(ctx context.Context) *results {
	o := s.opts
	res := &results{
		duration: o.duration, propagationOK: time.Duration(o.maxDelay)*time.Second + o.slack,
		proxySource: proxySource, goUsers: []string{"htpasswd:go1", "htpasswd:go2", "sourcehut:" + shUser}, oldDecision: map[string]bool{},
		balancer: balancerCheck{byServer: map[string]int{}},
	}
	defer func() { res.events = sortedEvents(s.events) }()

	s.t0 = time.Now()
	rec := newRecorder(s.t0)
	clients, err := s.clients()
	if err != nil {
		res.setupErr = err.Error()
		return res
	}
	for _, c := range clients {
		rec.add(c.name(), c.user())
	}
	s.event("load starts: %d clients for %s", len(clients), o.duration)
	until := s.t0.Add(o.duration)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			if err := timed(ctx, o.opTimeout, rec, c.name(), "login", c.setup); err != nil {
				return
			}
			drive(ctx, c, s.regHost, until, o.opTimeout, rec)
		})
	}
	wg.Go(func() { s.disrupt(ctx, res) })
	wg.Wait()
	s.event("load ends")
	res.clients = rec.snapshot()
	if ctx.Err() != nil {
		res.setupErr = fmt.Sprintf("cut short: %v", ctx.Err())
		return res
	}

	// Bring the SIGTERMed replica back, so the policy change is checked on
	// all three.
	for _, r := range s.replicas {
		if r.running() {
			continue
		}
		if err := r.start(ctx, o.server, s.logDir); err != nil {
			res.setupErr = err.Error()
			return res
		}
		s.event("%s restarted and ready", r.name)
	}
	if err := s.waitLB(ctx, func(st lbStats) bool {
		for _, r := range s.replicas {
			if st.servers[r.name].status != "UP" {
				return false
			}
		}
		return true
	}); err != nil {
		res.setupErr = fmt.Sprintf("haproxy did not mark every replica up again: %v", err)
	}
	s.event("haproxy: every replica up")

	s.checkPropagation(ctx, res)
	s.gather(res)
	return res
}

// clients builds the load's clients: go-containerregistry in-process
// (two password users, one Sourcehut token), crane, oras and regctl.
func (s *scaleout) clients() ([]loadClient, error) {
	cs := []loadClient{
		newGGCRClient("go1", "go1", &authn.Basic{Username: "go1", Password: s.passwords["go1"]}),
		newGGCRClient("go2", "go2", &authn.Basic{Username: "go2", Password: s.passwords["go2"]}),
		// The user name is ignored for a Sourcehut token; the token's
		// owner logs in, as the principal sourcehut:dave (owner of dave/*).
		newGGCRClient("go-srht", shUser, &authn.Basic{Username: "sourcehut", Password: s.shToken}),
	}
	for _, kind := range []string{"crane", "oras", "regctl"} {
		c, err := newCLIClient(kind, kind, s.passwords[kind], s.opts.tools, s.regHost, s.tmp, s.image, s.opts.opTimeout)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// disrupt stops r1 with SIGTERM at 30 % of the load and, 3 s later, kills
// r2 with SIGKILL and restarts it 1 s after that.
func (s *scaleout) disrupt(ctx context.Context, res *results) {
	o := s.opts
	sleepUntil := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Until(s.t0.Add(d))):
			return true
		}
	}
	termAt := o.duration * 3 / 10
	if !sleepUntil(termAt) {
		return
	}
	r1, r2 := s.replicas[0], s.replicas[1]
	p1 := r1.current()
	// A request in flight at the signal: its body is still arriving when
	// SIGTERM comes, and graceful shutdown must let it finish.
	inflight, headersSent, finish := s.slowTokenRequest(ctx, "http://"+r1.addr)
	select {
	case <-headersSent:
	case <-time.After(5 * time.Second):
	}
	time.Sleep(500 * time.Millisecond) // the replica has accepted and is reading the body
	t := time.Now()
	childproc.Signal(p1.Cmd.Process, syscall.SIGTERM)
	res.sigterm = sigtermResult{replica: r1.name, signaled: true, at: t.Sub(s.t0)}
	s.event("%s: SIGTERM, with a token request in flight (its body not yet sent)", r1.name)
	// The rest of the body goes once the replica is shutting down, so the
	// request is answered during the shutdown, not before it.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p1.log.String(), `"msg":"shutting down"`) {
			break
		}
	}
	time.Sleep(200 * time.Millisecond)
	finish()
	select {
	case err := <-inflight:
		res.sigterm.inflightErr = errText(err)
		s.event("%s: the in-flight request finished: %s", r1.name, orOK(err))
	case <-time.After(shutdownTimeout):
		res.sigterm.inflightErr = "no answer"
	}
	// Wait for it in the background; the SIGKILL comes on schedule.
	var termDone sync.WaitGroup
	termDone.Go(func() {
		exited := p1.WaitExit(shutdownTimeout + 5*time.Second)
		res.sigterm.took = time.Since(t)
		res.sigterm.exited = exited
		if exited {
			if err := p1.Err(); err != nil {
				res.sigterm.exitErr = err.Error()
			}
			s.event("%s: exited (%s) %s after SIGTERM", r1.name, exitText(p1.Err()), res.sigterm.took.Round(time.Millisecond))
		}
	})
	defer termDone.Wait()
	r1.stopped = "SIGTERM"

	if !sleepUntil(termAt + 3*time.Second) {
		return
	}
	p2 := r2.current()
	childproc.Signal(p2.Cmd.Process, syscall.SIGKILL)
	s.event("%s: SIGKILL", r2.name)
	p2.WaitExit(5 * time.Second)
	if !sleepUntil(termAt + 4*time.Second) {
		return
	}
	s.event("%s: restarting", r2.name)
	if err := r2.start(ctx, o.server, s.logDir); err != nil {
		s.event("%s: restart failed: %v", r2.name, oneLine(err.Error()))
		return
	}
	s.event("%s: ready again", r2.name)
	if err := s.waitLB(ctx, func(st lbStats) bool { return st.servers[r2.name].status == "UP" }); err == nil {
		s.event("haproxy: %s up again", r2.name)
	}
}

// slowTokenRequest starts a password-grant POST to base whose body is
// held back until finish is called; headersSent is closed once the
// request's headers and the first bytes of its body are written, and done
// gets nil once it was answered 200 with a token.
func (s *scaleout) slowTokenRequest(ctx context.Context, base string) (done <-chan error, headersSent <-chan struct{}, finish func()) {
	form := url.Values{
		"grant_type": {"password"}, "username": {probeUser}, "password": {s.passwords[probeUser]},
		"service": {service}, "scope": {"repository:" + probeUser + "/app:pull"},
	}.Encode()
	pr, pw := io.Pipe()
	result := make(chan error, 1)
	sent := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(ctx, shutdownTimeout+5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/auth", pr)
		if err != nil {
			result <- err
			close(sent)
			return
		}
		req.ContentLength = int64(len(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		resp, err := client.Do(req)
		if err != nil {
			result <- err
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var tr struct {
			AccessToken string `json:"access_token"`
		}
		switch {
		case resp.StatusCode != http.StatusOK:
			result <- fmt.Errorf("status %d: %s", resp.StatusCode, oneLine(string(body)))
		case json.Unmarshal(body, &tr) != nil || tr.AccessToken == "":
			result <- fmt.Errorf("no access_token in %s", oneLine(string(body)))
		default:
			result <- nil
		}
	}()
	// The transport has written the headers and is streaming the body
	// once it has read these first bytes from the pipe.
	go func() {
		_, _ = io.WriteString(pw, form[:10])
		close(sent)
	}()
	return result, sent, func() {
		_, _ = io.WriteString(pw, form[10:])
		_ = pw.Close()
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func orOK(err error) string {
	if err == nil {
		return "200 with a token"
	}
	return err.Error()
}

func exitText(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// decision asks addr (a replica, or the balancer) what the probe user gets
// on probeScope; granted reports whether the token grants pull. servedBy
// is haproxy's X-Served-By header ("" when asked directly).
func (s *scaleout) decision(ctx context.Context, client *http.Client, base string) (granted bool, servedBy string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/auth?service="+service+"&scope="+probeScope, nil)
	if err != nil {
		return false, "", err
	}
	req.SetBasicAuth(probeUser, s.passwords[probeUser])
	resp, err := client.Do(req)
	if err != nil {
		return false, "", err
	}
	defer resp.Body.Close()
	servedBy = resp.Header.Get("X-Served-By")
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return false, servedBy, fmt.Errorf("status %d: %s", resp.StatusCode, oneLine(string(body)))
	}
	granted, err = grantsPull(body)
	return granted, servedBy, err
}

// grantsPull reads the token in a token response and reports whether its
// access claim grants pull on the probe's repository. The signature is not
// checked: the registry does that; here only the decision matters.
func grantsPull(body []byte) (bool, error) {
	var tr struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return false, fmt.Errorf("token response: %w", err)
	}
	parts := strings.Split(tr.Token, ".")
	if len(parts) != 3 {
		return false, fmt.Errorf("token is not a JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false, fmt.Errorf("token payload: %w", err)
	}
	var claims struct {
		Access []struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		} `json:"access"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return false, fmt.Errorf("token claims: %w", err)
	}
	for _, a := range claims.Access {
		if a.Type == "repository" && a.Name == "shared/app" && slices.Contains(a.Actions, "pull") {
			return true, nil
		}
	}
	return false, nil
}

// checkPropagation changes the bundle and measures, per replica, how long
// until it answers with the new decision; then asks through the balancer.
func (s *scaleout) checkPropagation(ctx context.Context, res *results) {
	direct := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	for _, r := range s.replicas {
		granted, _, err := s.decision(ctx, direct, "http://"+r.addr)
		res.oldDecision[r.name] = err == nil && !granted
	}
	if err := s.bundles.set("v2", policyData(true)); err != nil {
		res.setupErr = err.Error()
		return
	}
	changed := time.Now()
	s.event("bundle server: revision v2 (grants htpasswd:%s pull on shared/*)", probeUser)

	// Measured past the bound too, so a late replica shows how late.
	giveUp := res.propagationOK + 10*time.Second
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, r := range s.replicas {
		wg.Go(func() {
			p := propagation{replica: r.name, fetched: -1, effective: -1}
			for time.Since(changed) < giveUp && ctx.Err() == nil {
				granted, _, err := s.decision(ctx, direct, "http://"+r.addr)
				if err != nil {
					p.err = err.Error()
				} else if granted {
					p.effective = time.Since(changed)
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if f := s.bundles.firstFetch(r.name, "v2"); !f.IsZero() {
				p.fetched = f.Sub(changed)
			}
			mu.Lock()
			res.propagation = append(res.propagation, p)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(res.propagation, func(a, b propagation) int { return strings.Compare(a.replica, b.replica) })
	s.event("policy change checked on %d replicas", len(res.propagation))

	// Through the balancer: round robin spreads these over every replica.
	via := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	for range 3 * len(s.replicas) {
		res.balancer.asked++
		granted, by, err := s.decision(ctx, via, "http://"+s.lbHost)
		switch {
		case err != nil:
			res.balancer.errs = append(res.balancer.errs, err.Error())
		case granted:
			res.balancer.granted++
			res.balancer.byServer[by]++
		default:
			res.balancer.errs = append(res.balancer.errs, by+": old decision")
		}
	}
}

// gather reads haproxy's stats and log, the replicas' logs and metrics,
// and the fakes' counters.
func (s *scaleout) gather(res *results) {
	if st, err := s.lbStatsNow(); err == nil {
		res.lbStats = st
	} else {
		res.setupErr = fmt.Sprintf("haproxy stats: %v", err)
	}
	for _, l := range s.lbLines.lines() {
		if r, ok := parseLBLine(l.text); ok && r.frontend == "token" {
			r.at = l.at.Sub(s.t0) // logged when the answer went out
			res.lb = append(res.lb, r)
		}
	}
	metricsClient := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	for _, r := range s.replicas {
		rep := replicaReport{name: r.name}
		for i, p := range r.procs {
			pr := procReport{n: i + 1, tally: parseReplicaLog(p.readLog())}
			switch {
			case !p.Exited():
				pr.endedBy = "running"
				pr.metrics = scrapeMetrics(metricsClient, "http://"+r.metricsAddr+"/metrics")
			case i == 0 && r.stopped == "SIGTERM":
				pr.endedBy = "stopped by SIGTERM (" + exitText(p.Err()) + ")"
				res.sigterm.drained = pr.tally.afterSIGTRM
			default:
				pr.endedBy = "killed (" + exitText(p.Err()) + ")"
			}
			rep.procs = append(rep.procs, pr)
			res.replicaStarts++
		}
		res.replicas = append(res.replicas, rep)
	}
	res.registry = parseRegistryLog(s.registry.readLog())
	res.metaCalls = s.meta.Calls()
	res.bundleReqs, res.bundle304, res.bundleGets = s.bundles.counts()
	// haproxy's own notices (servers going down and up), for the timeline.
	for _, l := range s.lbLines.lines() {
		// Each notice comes twice: on stderr as "[WARNING] (pid) : …" and
		// in the log; the log's copy is kept.
		if !strings.HasPrefix(l.text, "[") && strings.Contains(l.text, "replicas/") &&
			(strings.Contains(l.text, " is DOWN") || strings.Contains(l.text, " is UP")) {
			what, _, _ := strings.Cut(l.text, ". ")
			s.evMu.Lock()
			s.events = append(s.events, event{at: l.at.Sub(s.t0), what: "haproxy: " + strings.TrimSpace(what)})
			s.evMu.Unlock()
		}
	}
}

// scrapeMetrics returns the srht_registry_tokens_issued_total and
// srht_registry_policy_bundle_revision_info lines of a replica's metrics
// endpoint, or nothing if it does not answer (metrics are optional here).
func scrapeMetrics(client *http.Client, url string) []string {
	resp, err := client.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil
	}
	var out []string
	for l := range strings.Lines(string(body)) {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "srht_registry_tokens_issued_total") || strings.HasPrefix(l, "srht_registry_policy_bundle_revision_info") {
			out = append(out, l)
		}
	}
	return out
}

// timedLines keeps each line written to it with the time it arrived
// (haproxy's raw log lines carry no time of their own).
type timedLines struct {
	mu      sync.Mutex
	partial []byte
	all     []timedLine
}

type timedLine struct {
	at   time.Time
	text string
}

func (t *timedLines) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.all = append(t.all, timedLine{at: now, text: string(t.partial[:i])})
		t.partial = t.partial[i+1:]
	}
	return len(p), nil
}

func (t *timedLines) lines() []timedLine {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.all)
}

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"

	"git.sr.ht/~zozs/srht-registry/internal/config"
)

func testLBConfig() lbConfig {
	return lbConfig{
		Listen: "127.0.0.1:18080", Stats: "127.0.0.1:18083", Source: "127.0.0.3", CheckInter: 500 * time.Millisecond,
		Servers: []lbServer{{"r1", "127.0.0.1:18091"}, {"r2", "127.0.0.1:18092"}, {"r3", "127.0.0.1:18093"}},
	}
}

func TestRenderHAProxy(t *testing.T) {
	cfg := renderHAProxy(testLBConfig())
	// What docs/operations.md documents as the retry relied upon, and what the
	// replicas' trusted_proxies and the log parser depend on.
	for _, want := range []string{
		"bind 127.0.0.1:18080\n",
		"balance roundrobin",
		"option httpchk GET /readyz\n",
		"http-check expect status 200\n",
		"retries 3\n",
		"retry-on conn-failure empty-response response-timeout 503\n",
		"timeout server 10s",
		"option redispatch 1\n",
		"option forwardfor",
		"default-server check inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2 source 127.0.0.3\n",
		"    server r1 127.0.0.1:18091\n    server r2 127.0.0.1:18092\n    server r3 127.0.0.1:18093\n",
		`log-format "lb %ci %ft %b/%s %ST %rc %tsc %Tc %Tr %Ta %HM %HPO"`,
		"http-response set-header X-Served-By %s\n",
		"bind 127.0.0.1:18083\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, "%%") {
		t.Errorf("an escaped %% survived rendering:\n%s", cfg)
	}

	// haproxy itself must accept it (CI installs haproxy only for
	// .ci/scaleout, after go test: without it this part cannot run).
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy not installed: config not checked by haproxy -c")
	}
	f := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(f, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", f).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
}

func TestParseLBLine(t *testing.T) {
	// Lines as haproxy 2.6 wrote them with renderHAProxy's log-format.
	tests := []struct {
		line   string
		ok     bool
		want   lbRequest
		failed bool
	}{
		{"lb 127.0.0.2 token replicas/r3 200 0 ---- 0 12 13 GET /auth", true,
			lbRequest{client: "127.0.0.2", frontend: "token", server: "r3", status: 200, termination: "----", method: "GET", path: "/auth"}, false},
		{"lb 127.0.0.1 token replicas/r2 200 +1 ---- 0 0 0 GET /auth", true,
			lbRequest{client: "127.0.0.1", frontend: "token", server: "r2", status: 200, retries: 1, redispatched: true, termination: "----", method: "GET", path: "/auth"}, false},
		{"lb 127.0.0.1 token replicas/<NOSRV> 503 0 SC-- -1 -1 0 GET /", true,
			lbRequest{client: "127.0.0.1", frontend: "token", status: 503, termination: "SC--", method: "GET", path: "/"}, true},
		{"lb 127.0.0.1 stats stats/<STATS> 200 0 LR-- 0 0 0 GET /stats;csv", true,
			lbRequest{client: "127.0.0.1", frontend: "stats", server: "<STATS>", status: 200, termination: "LR--", method: "GET", path: "/stats;csv"}, true},
		{"[WARNING]  (25559) : Server replicas/r1 is DOWN, reason: Layer4 connection problem", false, lbRequest{}, false},
		{"backend replicas has no server available!", false, lbRequest{}, false},
		{"lb 127.0.0.1 token replicas/r1 abc 0 ---- 0 0 0 GET /auth", false, lbRequest{}, false},
	}
	for _, tt := range tests {
		got, ok := parseLBLine(tt.line)
		if ok != tt.ok {
			t.Errorf("%q: ok = %v", tt.line, ok)
			continue
		}
		if !ok {
			continue
		}
		if got != tt.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tt.line, got, tt.want)
		}
		if got.failed() != tt.failed {
			t.Errorf("%q: failed() = %v", tt.line, got.failed())
		}
	}
}

func TestParseStatsCSV(t *testing.T) {
	// Captured from haproxy 2.6.12 (Debian): r1 up after going down once,
	// r2 never up, four 503s while no server was up.
	raw, err := os.ReadFile("testdata/haproxy-stats.csv")
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseStatsCSV(string(raw), "replicas")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.order, []string{"r1", "r2"}) {
		t.Fatalf("servers %v", st.order)
	}
	if got := st.servers["r1"]; got.status != "UP" || got.sessions != 2 || got.downs != 1 || got.retries != 0 {
		t.Errorf("r1 %+v", got)
	}
	if got := st.servers["r2"]; got.status != "DOWN" || got.sessions != 0 {
		t.Errorf("r2 %+v", got)
	}
	if st.backend.http5xx != 4 || st.backend.sessions != 6 {
		t.Errorf("backend %+v", st.backend)
	}
	if _, err := parseStatsCSV(string(raw), "nope"); err == nil {
		t.Error("a missing backend is not an error")
	}
	if _, err := parseStatsCSV("# pxname,svname\nreplicas,BACKEND\n", "replicas"); err == nil {
		t.Error("missing columns are not an error")
	}
}

func TestParseReplicaLog(t *testing.T) {
	// The shape of the server's JSON request log lines (log.format: json).
	log := strings.Join([]string{
		`{"time":"2026-11-30T14:59:54Z","level":"INFO","msg":"listening","addr":"127.0.0.1:43861"}`,
		`{"time":"2026-11-30T14:59:55Z","level":"INFO","msg":"request","method":"GET","path":"/readyz","status":200,"client_ip":"127.0.0.3"}`,
		`{"time":"2026-11-30T14:59:56Z","level":"INFO","msg":"request","method":"GET","path":"/auth","status":200,"client_ip":"127.0.0.2","auth_method":"password","provider":"htpasswd","subject":"go1"}`,
		`{"time":"2026-11-30T14:59:56Z","level":"INFO","msg":"request","method":"GET","path":"/auth","status":200,"client_ip":"127.0.0.1","auth_method":"password","provider":"htpasswd","subject":"crane"}`,
		`{"time":"2026-11-30T14:59:57Z","level":"INFO","msg":"request","method":"GET","path":"/auth","status":401,"client_ip":"127.0.0.1","error":"wrong password"}`,
		`not json: some OPA or runtime output`,
		`{"time":"2026-11-30T15:00:01Z","level":"INFO","msg":"shutting down"}`,
		`{"time":"2026-11-30T15:00:02Z","level":"INFO","msg":"request","method":"POST","path":"/auth","status":200,"client_ip":"127.0.0.1","auth_method":"password","provider":"htpasswd","subject":"probe"}`,
		`{"time":"2026-11-30T15:00:02Z","level":"ERROR","msg":"request","method":"GET","path":"/auth","status":503,"client_ip":"127.0.0.2","error":"policy decision failed: scope repository:go2/app-0:push,pull: eval_cancel_error: context deadline exceeded"}`,
		`{"broken json`,
	}, "\n") + "\n"
	got := parseReplicaLog(strings.NewReader(log))
	if got.tokens != 3 || got.authErrors[401] != 1 || got.authErrors[503] != 1 || got.readyz != 1 {
		t.Errorf("counts %+v", got)
	}
	if !got.shutdown || got.afterSIGTRM != 2 {
		t.Errorf("shutdown %v, after SIGTERM %d", got.shutdown, got.afterSIGTRM)
	}
	if got.byClientIP["127.0.0.2"] != 2 || got.byClientIP["127.0.0.1"] != 3 || got.byClientIP["127.0.0.3"] != 0 {
		t.Errorf("client addresses %v", got.byClientIP)
	}
	if got.byPrincipal["htpasswd:go1"]["127.0.0.2"] != 1 || got.byPrincipal["go1"] != nil || got.badLines != 1 {
		t.Errorf("principals %v, bad lines %d", got.byPrincipal, got.badLines)
	}
	if want := []string{"request /auth 503: policy decision failed: scope repository:go2/app-0:push,pull: eval_cancel_error: context deadline exceeded"}; !slices.Equal(got.errorLines, want) {
		t.Errorf("error lines %q", got.errorLines)
	}
}

// TestReplicaConfigLoads: the rendered replica configuration is one the
// server's own config package loads and validates.
func TestReplicaConfigLoads(t *testing.T) {
	s := replicaSettings{
		keyFile: "/keys/key.pem", htpasswd: "/etc/htpasswd", metaURL: "http://127.0.0.1:9", sourcehutUser: shUser,
		bundleURL: "http://127.0.0.1:8", bundleSecret: "s3cret", trustedProxy: "127.0.0.3", minDelay: 1, maxDelay: 2,
		bfThreshold: bfThreshold, bfStore: "redis://127.0.0.1:6390/0",
	}
	f := filepath.Join(t.TempDir(), "r1.yaml")
	if err := os.WriteFile(f, []byte(replicaConfig(s, "r1", "127.0.0.1:5001", "127.0.0.1:9464")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:5001" || cfg.Metrics.Listen != "127.0.0.1:9464" || cfg.Limits.ShutdownTimeout.D() != shutdownTimeout ||
		!slices.Equal(cfg.TrustedProxies, []string{"127.0.0.3"}) || cfg.Log.Format != "json" || cfg.Token.Key != "/keys/key.pem" {
		t.Errorf("loaded %+v", cfg)
	}
	if cfg.BruteForce.Threshold != bfThreshold || cfg.BruteForce.Store != "redis://127.0.0.1:6390/0" {
		t.Errorf("brute_force %+v", cfg.BruteForce)
	}
	// The Sourcehut client logs in only if authn.sourcehut.users lets it.
	if !slices.Equal(cfg.Authn.Sourcehut.Users, []string{shUser}) || !slices.Contains(cfg.Providers(), "sourcehut") {
		t.Errorf("authn.sourcehut.users %q (providers %q): the Sourcehut client %s may not log in", cfg.Authn.Sourcehut.Users, cfg.Providers(), shUser)
	}
	if w := cfg.Warnings(); len(w) > 0 {
		t.Errorf("config warnings: %q", w)
	}
	opa, err := json.Marshal(cfg.Policy.OPA)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"min_delay_seconds":1`, `"max_delay_seconds":2`, `"X-Replica":"r1"`, `"resource":"bundles/registry.tar.gz"`, `"keyid":"bundle-key"`} {
		if !strings.Contains(string(opa), want) {
			t.Errorf("policy.opa lacks %s: %s", want, opa)
		}
	}
}

// probeDecision evaluates the bundle's policy for the probe user on
// probeScope, as the server's input document would put it.
func probeDecision(t *testing.T, raw []byte, secret string) []string {
	t.Helper()
	vc := bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{"bundle-key": {Key: secret, Algorithm: "HS256"}}, "bundle-key", "", nil)
	b, err := bundle.NewReader(bytes.NewReader(raw)).WithBundleVerificationConfig(vc).Read()
	if err != nil {
		t.Fatal(err)
	}
	input := map[string]any{
		"version": 2,
		"identity": map[string]any{
			"method": "password", "provider": "htpasswd", "subject": probeUser, "namespace": probeUser,
		},
		"request": map[string]any{"service": service},
		"scope":   map[string]any{"type": "repository", "name": "shared/app", "actions": []any{"pull"}},
	}
	rs, err := rego.New(rego.ParsedBundle("registry", &b), rego.Query("data.registry.authz.allow"), rego.Input(input)).Eval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if len(rs) == 1 {
		for _, v := range rs[0].Expressions[0].Value.([]any) {
			out = append(out, v.(string))
		}
	}
	return out
}

func TestBundleFlipsTheProbeDecision(t *testing.T) {
	const secret = "test-secret"
	v1, err := buildBundle("v1", policyData(false), secret)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := buildBundle("v2", policyData(true), secret)
	if err != nil {
		t.Fatal(err)
	}
	if got := probeDecision(t, v1, secret); len(got) != 0 {
		t.Errorf("v1 grants the probe %v", got)
	}
	if got := probeDecision(t, v2, secret); !slices.Equal(got, []string{"pull"}) {
		t.Errorf("v2 grants the probe %v, want [pull]", got)
	}
	// Signed: another key does not verify it.
	vc := bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{"bundle-key": {Key: "other", Algorithm: "HS256"}}, "bundle-key", "", nil)
	if _, err := bundle.NewReader(bytes.NewReader(v2)).WithBundleVerificationConfig(vc).Read(); err == nil {
		t.Error("a bundle verified with the wrong key")
	}
}

func TestBundleServerETag(t *testing.T) {
	b := &bundleServer{fetches: map[string][]bundleFetch{}, secret: "s"}
	srv := httptest.NewServer(http.HandlerFunc(b.serve))
	defer srv.Close()
	get := func(replica, etag string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+bundlePath, nil)
		req.Header.Set(replicaHeader, replica)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := get("r1", ""); err != nil || resp.StatusCode != http.StatusServiceUnavailable { //nolint:bodyclose // get closes it
		t.Fatalf("before set: %v %v", resp, err)
	}
	if err := b.set("v1", policyData(false)); err != nil {
		t.Fatal(err)
	}
	resp, err := get("r1", "") //nolint:bodyclose // get closes it
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == "" {
		t.Fatalf("first fetch: %v %v", resp, err)
	}
	etag := resp.Header.Get("ETag")
	if resp, err := get("r1", etag); err != nil || resp.StatusCode != http.StatusNotModified { //nolint:bodyclose // get closes it
		t.Fatalf("unchanged: %v %v", resp, err)
	}
	if err := b.set("v2", policyData(true)); err != nil {
		t.Fatal(err)
	}
	if resp, err := get("r2", etag); err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == etag { //nolint:bodyclose // get closes it
		t.Fatalf("after a change: %v %v", resp, err)
	}
	if b.firstFetch("r1", "v1").IsZero() || !b.firstFetch("r1", "v2").IsZero() || b.firstFetch("r2", "v2").IsZero() {
		t.Error("fetches not recorded per replica and revision")
	}
	reqs, notMod, downloads := b.counts()
	if reqs != 4 || notMod != 1 || downloads["r1"] != 1 || downloads["r2"] != 1 {
		t.Errorf("counts %d %d %v", reqs, notMod, downloads)
	}
}

func token(t *testing.T, claims string) []byte {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	body, _ := json.Marshal(map[string]string{"token": enc([]byte(`{"alg":"ES256"}`)) + "." + enc([]byte(claims)) + ".sig"})
	return body
}

func TestGrantsPull(t *testing.T) {
	for _, tt := range []struct {
		claims string
		want   bool
	}{
		{`{"access":[{"type":"repository","name":"shared/app","actions":["pull"]}]}`, true},
		{`{"access":[{"type":"repository","name":"shared/app","actions":[]}]}`, false},
		{`{"access":[]}`, false},
		{`{"access":[{"type":"repository","name":"other/app","actions":["pull"]}]}`, false},
	} {
		got, err := grantsPull(token(t, tt.claims))
		if err != nil || got != tt.want {
			t.Errorf("%s: %v %v", tt.claims, got, err)
		}
	}
	if _, err := grantsPull([]byte(`{"token":"not-a-jws"}`)); err == nil {
		t.Error("a malformed token is not an error")
	}
}

func TestRecorder(t *testing.T) {
	t0 := time.Now()
	r := newRecorder(t0)
	r.add("go1", "go1")
	r.add("crane", "crane")
	r.record("go1", "push", t0, t0.Add(time.Second), nil)
	r.record("go1", "pull", t0.Add(time.Second), t0.Add(3*time.Second), errors.New("GET …: unexpected\n EOF"))
	r.record("crane", "login", t0, t0, nil)
	got := r.snapshot()
	if len(got) != 2 || got[0].name != "go1" || got[1].name != "crane" {
		t.Fatalf("order %+v", got)
	}
	ops, fails := got[0].total()
	if ops != 2 || fails != 1 || got[0].failures["pull"] != 1 || got[0].slowest != 2*time.Second {
		t.Errorf("go1 %+v", got[0])
	}
	if e := got[0].errors[0]; e.kind != "pull" || e.at != time.Second || e.err != "GET …: unexpected EOF" {
		t.Errorf("error %+v", e)
	}
}

// goodResults is a run in which everything went right.
func goodResults() *results {
	stats := map[string]int{"login": 1, "push": 10, "pull": 10}
	tally := func(tokens int, ips map[string]int) logTally {
		return logTally{tokens: tokens, byClientIP: ips, authErrors: map[int]int{},
			byPrincipal: map[string]map[string]int{"htpasswd:go1": {"127.0.0.2": 3}, "htpasswd:crane": {"127.0.0.1": 2}}}
	}
	return &results{
		duration: 20 * time.Second,
		clients: []clientStats{
			{name: "go1", user: "go1", ops: stats, failures: map[string]int{}},
			{name: "crane", user: "crane", ops: stats, failures: map[string]int{}},
		},
		lb: []lbRequest{
			{frontend: "token", server: "r1", status: 200, termination: "----", path: "/auth"},
			// The SIGKILL's retry, well after r1's drain.
			{frontend: "token", server: "r2", status: 200, retries: 1, redispatched: true, termination: "----", path: "/auth", at: 9 * time.Second},
		},
		lbStats: lbStats{servers: map[string]lbServerStats{}},
		replicas: []replicaReport{
			{name: "r1", procs: []procReport{{n: 1, tally: tally(5, map[string]int{"127.0.0.1": 2, "127.0.0.2": 3})}, {n: 2, tally: tally(2, nil)}}},
			{name: "r2", procs: []procReport{{n: 1, tally: tally(5, nil)}, {n: 2, tally: tally(3, nil)}}},
			{name: "r3", procs: []procReport{{n: 1, tally: tally(9, nil)}}},
		},
		sigterm:       sigtermResult{replica: "r1", signaled: true, exited: true, drained: 1, at: 6 * time.Second},
		oldDecision:   map[string]bool{"r1": true, "r2": true, "r3": true},
		propagation:   []propagation{{replica: "r1", effective: time.Second}, {replica: "r2", effective: 2 * time.Second}, {replica: "r3", effective: 500 * time.Millisecond}},
		propagationOK: 7 * time.Second,
		balancer:      balancerCheck{asked: 9, granted: 9, byServer: map[string]int{"r1": 3, "r2": 3, "r3": 3}},
		metaCalls:     4, replicaStarts: 5,
		registry: registryTally{authorized: 40, challenges: 20, errors: map[int]int{404: 7}},
		goUsers:  []string{"htpasswd:go1"}, proxySource: "127.0.0.3",
		sharedLimit: sharedLimitCheck{checked: true, threshold: 5,
			failures: []attempt{{"r1", 401, ""}, {"r2", 401, ""}, {"r3", 401, ""}, {"r1", 401, ""}, {"r2", 401, ""}},
			after:    []attempt{{"r1", 429, ""}, {"r2", 429, ""}, {"r3", 429, ""}}},
	}
}

func TestEvaluate(t *testing.T) {
	if p := goodResults().evaluate(); len(p) != 0 {
		t.Fatalf("a good run has problems: %q", p)
	}
	tests := []struct {
		name  string
		spoil func(r *results)
		want  string
	}{
		{"a failed pull", func(r *results) {
			r.clients[1].failures = map[string]int{"pull": 1}
			r.clients[1].errors = []opError{{kind: "pull", at: 3 * time.Second, err: "UNAUTHORIZED"}}
		}, "client crane: 1 of 21 operations failed (first: pull at +3s: UNAUTHORIZED)"},
		{"a client that never pushed", func(r *results) { r.clients[0].ops = map[string]int{"login": 1} }, "client go1: no push or no pull ran"},
		{"a 503 from the balancer", func(r *results) {
			r.lb = append(r.lb, lbRequest{frontend: "token", status: 503, termination: "SC--", method: "GET", path: "/auth"})
		}, `balancer: GET /auth answered 503 (termination SC--, server "", 0 retries)`},
		{"a session cut short after a 200", func(r *results) {
			r.lb = append(r.lb, lbRequest{frontend: "token", server: "r2", status: 200, termination: "SD--", method: "GET", path: "/auth"})
		}, "balancer: GET /auth answered 200 (termination SD--"},
		{"backend 5xx in the stats", func(r *results) { r.lbStats.backend.http5xx = 2 }, "balancer stats: 2 5xx answers"},
		{"the proxy seen as the client", func(r *results) { r.replicas[2].procs[0].tally.byClientIP = map[string]int{"127.0.0.3": 4} },
			"r3#1: 4 token requests logged with the proxy's address 127.0.0.3 as the client"},
		{"an in-process client seen from the wrong address", func(r *results) {
			r.replicas[1].procs[0].tally.byPrincipal = map[string]map[string]int{"htpasswd:go1": {"127.0.0.1": 1}}
		}, "r2#1: 1 token requests of htpasswd:go1 logged from 127.0.0.1, not 127.0.0.2"},
		{"a replica round robin never reached", func(r *results) { r.replicas[2].procs[0].tally.tokens = 0 }, "r3: served no token before it was stopped"},
		{"not back after the restart", func(r *results) { r.replicas[1].procs[1].tally.tokens = 0 }, "r2: served no token after its restart"},
		{"SIGTERM exit status", func(r *results) { r.sigterm.exitErr = "exit status 1" }, "r1: after SIGTERM exited with exit status 1, not 0"},
		{"SIGTERM ignored", func(r *results) { r.sigterm.exited = false; r.sigterm.took = 15 * time.Second }, "r1: still running 15s after SIGTERM"},
		{"no SIGTERM", func(r *results) { r.sigterm = sigtermResult{} }, "no replica was stopped with SIGTERM"},
		{"request in flight dropped", func(r *results) { r.sigterm.inflightErr = "EOF" }, "r1: the token request in flight at SIGTERM failed: EOF"},
		{"nothing drained", func(r *results) { r.sigterm.drained = 0 }, `r1: its log shows no token request finished after "shutting down"`},
		{"a retry while draining", func(r *results) { r.lb[len(r.lb)-1].at = 7 * time.Second }, "balancer: a request at +7.00s was retried although r1 was draining (shutdown_delay 2s)"},
		{"late propagation", func(r *results) { r.propagation[1].effective = 8 * time.Second }, "r2: gave the new decision after 8s, more than 7s"},
		{"no propagation", func(r *results) { r.propagation[2].effective = -1; r.propagation[2].err = "status 503" }, "r3: never gave the new decision (status 503)"},
		{"granted before the change", func(r *results) { r.oldDecision["r1"] = false }, "r1: granted the probe before the policy change"},
		{"an old decision through the balancer", func(r *results) {
			r.balancer.granted = 8
			r.balancer.errs = []string{"r2: old decision"}
		}, "balancer: 8 of 9 decisions through haproxy were the new one (r2: old decision)"},
		{"a replica the balancer check missed", func(r *results) { r.balancer.byServer = map[string]int{"r1": 5, "r2": 4} }, "balancer: r3 never answered"},
		{"shared token cache", func(r *results) { r.metaCalls = 6 }, "meta.sr.ht was called 6 times for one token by 5 replica processes"},
		{"cut short", func(r *results) { r.setupErr = "cut short: context deadline exceeded" }, "run: cut short"},
		{"a token the registry refused", func(r *results) { r.registry.refused = []string{"error authorizing context: invalid token"} }, "registry: error authorizing context: invalid token"},
		{"brute-force limit not shared", func(r *results) { r.sharedLimit.after[2].status = 401 },
			"shared brute-force limit: after 5 failures over the replicas, r3 answered 401, not 429"},
		{"blocked before the threshold", func(r *results) { r.sharedLimit.failures[3].status = 429 },
			"shared brute-force limit: wrong password 4 of 5 (r1) answered 429, not 401"},
		{"a replica unreachable for the limit check", func(r *results) { r.sharedLimit.after[0] = attempt{replica: "r1", err: "connection refused"} },
			"r1 answered connection refused, not 429"},
		{"limit not checked", func(r *results) { r.sharedLimit = sharedLimitCheck{} }, "the shared brute-force limit was not checked"},
		{"a 5xx from the registry", func(r *results) { r.registry.errors[500] = 1 }, "registry: 1 responses with status 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := goodResults()
			tt.spoil(r)
			problems := r.evaluate()
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Errorf("problems %q lack %q", problems, tt.want)
			}
			var out strings.Builder
			r.print(&out, problems)
			if !strings.Contains(out.String(), "scale-out: FAILED") || strings.Contains(out.String(), "scale-out: OK") {
				t.Errorf("printed:\n%s", out.String())
			}
		})
	}
}

func TestParseRegistryLog(t *testing.T) {
	// Lines as distribution v3.1.2 logs them (go.version and other fields
	// shortened); the refusals are the troubleshooting table's.
	log := `time="2026-11-30T15:05:01Z" level=warning msg="error authorizing context: authorization token required" go.version=go1.26 http.request.method=HEAD
time="2026-11-30T15:05:01Z" level=info msg="authorized request" go.version=go1.26 http.request.method=HEAD
time="2026-11-30T15:05:01Z" level=error msg="response completed with error" err.code="blob unknown" http.request.method=HEAD http.response.status=404
time="2026-11-30T15:05:01Z" level=info msg="response completed" http.request.method=PUT http.response.status=201
time="2026-11-30T15:05:02Z" level=info msg="failed to verify token: token signed by untrusted key with ID: \"KID\"" go.version=go1.26
time="2026-11-30T15:05:02Z" level=warning msg="error authorizing context: insufficient scope" go.version=go1.26
time="2026-11-30T15:05:02Z" level=error msg="response completed with error" err.code="unauthorized" http.response.status=401
`
	got := parseRegistryLog(strings.NewReader(log))
	if got.authorized != 1 || got.challenges != 1 || got.errors[404] != 1 || got.errors[401] != 1 || len(got.refused) != 2 {
		t.Errorf("%+v", got)
	}
	r := goodResults()
	r.registry = got
	problems := strings.Join(r.evaluate(), "\n")
	for _, want := range []string{`registry: failed to verify token: token signed by untrusted key with ID: \"KID\"`, "registry: error authorizing context: insufficient scope", "registry: 1 responses with status 401"} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}
	if strings.Contains(problems, "status 404") {
		t.Errorf("a 404 to a HEAD is a problem:\n%s", problems)
	}
}

func TestRetryWindows(t *testing.T) {
	s := time.Second
	got := retryWindows([]time.Duration{9*s + 600*time.Millisecond, 6300 * time.Millisecond, 7 * s, 9 * s, 15 * s, 15*s + 10*time.Millisecond}, 1500*time.Millisecond)
	if want := "+6.3–7.0s: 2, +9.0–9.6s: 2, +15.0s: 2"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPrintOK(t *testing.T) {
	r := goodResults()
	var out strings.Builder
	r.print(&out, r.evaluate())
	for _, want := range []string{"scale-out: OK", "total: 42 operations, 0 failed", "2 requests (2 token requests), 1 retried, 1 redispatched, 0 failed", "r1#2  tokens served     2",
		"shared brute-force limit (brute_force.store: Redis, threshold 5): 5 failures over 3 replicas (2+2+1, from 127.0.0.4, straight to the replicas) → all 3 answer 429"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

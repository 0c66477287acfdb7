package app

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

// metricsPolicy grants a subject everything asked in its own namespace and
// everyone pull on public/*, and fails to evaluate on broken/app (to_number
// of a name is an error under strict built-in errors).
const metricsPolicy = `package registry.authz

allow contains action if {
	input.identity.method != "anonymous"
	startswith(input.scope.name, concat("", [input.identity.subject, "/"]))
	some action in input.scope.actions
}

allow contains "pull" if startswith(input.scope.name, "public/")

allow contains "pull" if {
	input.scope.name == "broken/app"
	to_number(input.scope.name) > 0
}
`

var metricsListeningRE = regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)

// metricsRun is the scripted client of TestMetrics: every request it sends
// says which status it must get, and is tallied by endpoint, method and
// status for the comparison with srht_registry_http_requests_total.
type metricsRun struct {
	t     *testing.T
	addr  string
	mu    sync.Mutex
	tally map[[3]string]float64 // endpoint, method, code
}

// do sends one request from the client address xff (the server trusts
// 127.0.0.1 as a proxy, so each scripted client can have its own address
// for the brute-force limits) and checks its status.
func (m *metricsRun) do(method, path, xff, user, password string, form url.Values, want int) map[string]any {
	m.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(m.t.Context(), method, "http://"+m.addr+path, body)
	if err != nil {
		m.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if user != "" || password != "" {
		req.SetBasicAuth(user, password)
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		m.t.Fatalf("%s %s (user %q, from %s): status %d, want %d: %s", method, path, user, xff, resp.StatusCode, want, raw)
	}
	endpoint := map[string]string{"/auth": "auth", "/.well-known/jwks.json": "jwks", "/healthz": "healthz", "/readyz": "readyz"}[req.URL.Path]
	if endpoint == "" {
		endpoint = "other"
	}
	label := method
	if !slices.Contains([]string{"GET", "POST", "HEAD"}, method) {
		label = "other"
	}
	m.mu.Lock()
	m.tally[[3]string{endpoint, label, fmt.Sprint(want)}]++
	m.mu.Unlock()
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

// token asks /auth for scope with Basic credentials (none if user and
// password are empty).
func (m *metricsRun) token(xff, user, password, scope string, want int) map[string]any {
	m.t.Helper()
	q := url.Values{"service": {"registry.example.com"}}
	if scope != "" {
		q.Set("scope", scope)
	}
	return m.do(http.MethodGet, "/auth?"+q.Encode(), xff, user, password, nil, want)
}

// TestMetrics drives a token server through a scripted run that touches
// every metric family (logins of each method, the password and Sourcehut
// caches, meta.sr.ht answering, refusing and failing, decisions of each
// outcome, both brute-force limits, load shedding, refresh tokens, a good
// and a failed reload) and then requires each family to hold exactly what
// the run did.
func TestMetrics(t *testing.T) {
	t.Parallel()
	meta := fakemeta.Start(t)
	dir := t.TempDir()
	bundleDir := filepath.Join(dir, "bundle")
	if err := os.MkdirAll(bundleDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(bundleDir, ".manifest"), `{"revision": "r1", "roots": ["registry"]}`)
	writeFile(t, filepath.Join(bundleDir, "authz.rego"), metricsPolicy)
	htpasswd := filepath.Join(dir, "htpasswd")
	writeFile(t, htpasswd, htpasswdLine(t, "alice", passwords["alice"])+htpasswdLine(t, "bob", passwords["bob"]))
	cfgPath := filepath.Join(dir, "config.yaml")
	writeFile(t, cfgPath, `listen: 127.0.0.1:0
trusted_proxies: [127.0.0.1]
brute_force:
  threshold: 2
  window: 1h
limits:
  max_concurrent: 2
metrics:
  listen: 127.0.0.1:0
policy:
  bundles: [`+bundleDir+`]
authn:
  htpasswd: `+htpasswd+`
`+sourcehutAuthn(meta, "0", "carol", "dave", "erin", "frank", "grace"))
	srv, logs := startServer(t, cfgPath)
	addr := srv.Addr()
	mm := metricsListeningRE.FindStringSubmatch(logs.String())
	if mm == nil {
		t.Fatalf("no metrics listening line in the log:\n%s", logs)
	}
	metricsURL := "http://" + mm[1] + "/metrics"
	run := &metricsRun{t: t, addr: addr, tally: map[[3]string]float64{}}
	hour := time.Now().Add(time.Hour)
	mint := func(user string) string {
		return meta.Mint(fakemeta.TokenOptions{Username: user, Grants: "registry.example.com/REGISTRY:RW", Expires: hour, ClientID: "builds.sr.ht"})
	}

	// Anonymous: one scope granted in full, one in part, one not at all.
	run.token("10.0.0.1", "", "", "repository:public/app:pull", 200)
	run.token("10.0.0.1", "", "", "repository:public/app:pull,push", 200)
	run.token("10.0.0.1", "", "", "repository:alice/app:pull", 200)

	// Password: one bcrypt check, then the verification cache; the fourth
	// login asks for a refresh token, which is then redeemed.
	for range 3 {
		run.token("10.0.0.2", "alice", passwords["alice"], "repository:alice/app:pull,push", 200)
	}
	offline := run.do(http.MethodGet, "/auth?service=registry.example.com&offline_token=true&client_id=metrics-test&scope=repository:alice/app:pull",
		"10.0.0.2", "alice", passwords["alice"], nil, 200)
	refresh, _ := offline["refresh_token"].(string)
	if refresh == "" {
		t.Fatalf("no refresh token for an offline login: %v", offline)
	}
	run.do(http.MethodPost, "/auth", "10.0.0.2", "", "", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "service": {"registry.example.com"},
		"client_id": {"metrics-test"}, "scope": {"repository:alice/app:pull"},
	}, 200)

	// Sourcehut: a miss asks meta.sr.ht, the same token again is a hit; a
	// revoked token is refused by meta.sr.ht, then from the negative cache;
	// meta.sr.ht failing is an upstream error and is not cached.
	carol := mint("carol")
	run.token("10.0.0.3", "carol", carol, "repository:carol/app:push", 200)
	run.token("10.0.0.3", "carol", carol, "repository:carol/app:push", 200)
	revoked := mint("dave")
	meta.Revoke(revoked)
	run.token("10.0.0.4", "dave", revoked, "repository:dave/app:pull", 401)
	run.token("10.0.0.5", "dave", revoked, "repository:dave/app:pull", 401)
	meta.SetStatus(http.StatusInternalServerError)
	run.token("10.0.0.6", "erin", mint("erin"), "repository:erin/app:pull", 503)
	meta.SetStatus(0)

	// The policy fails on broken/app: the request gets 503 and nothing.
	run.token("10.0.0.2", "alice", passwords["alice"], "repository:broken/app:pull", 503)

	// Brute force: two wrong passwords for bob from two addresses, then the
	// user limit refuses a third; two unknown users from one address, then
	// the address limit refuses a third.
	run.token("10.0.1.1", "bob", "wrong-1", "", 401)
	run.token("10.0.1.2", "bob", "wrong-2", "", 401)
	run.token("10.0.1.3", "bob", "wrong-3", "", 429)
	run.token("10.0.2.1", "nobody-1", "guess", "", 401)
	run.token("10.0.2.1", "nobody-2", "guess", "", 401)
	run.token("10.0.2.1", "nobody-3", "guess", "", 429)

	// Load shedding: with meta.sr.ht slow, two new tokens hold both
	// request slots; a third request is refused at once. (The slot of the
	// request before is given back just after its response is sent.)
	waitFor(t, "no request in flight", func() bool {
		n, _ := sample(scrape(t, metricsURL), "srht_registry_http_requests_in_flight", nil)
		return n == 0
	})
	meta.SetDelay(1200 * time.Millisecond)
	before := meta.Calls()
	var wg sync.WaitGroup
	for _, user := range []string{"frank", "grace"} {
		token := mint(user)
		wg.Add(1)
		go func() {
			defer wg.Done()
			run.token("10.0.3.1", user, token, "repository:"+user+"/app:pull", 200)
		}()
	}
	waitFor(t, "two slow meta.sr.ht calls in flight", func() bool { return meta.Calls() == before+2 })
	run.token("10.0.3.2", "", "", "repository:public/app:pull", 503)
	wg.Wait()
	meta.SetDelay(0)

	// The other endpoints, a path nobody serves, a method /auth refuses.
	run.do(http.MethodGet, "/.well-known/jwks.json", "", "", "", nil, 200)
	run.do(http.MethodGet, "/healthz", "", "", "", nil, 200)
	run.do(http.MethodGet, "/readyz", "", "", "", nil, 200)
	run.do(http.MethodGet, "/v2/", "", "", "", nil, 404)
	run.do(http.MethodDelete, "/auth", "", "", "", nil, 405)

	// A good reload (revision r2), then a failed one (r2 stays).
	writeFile(t, filepath.Join(bundleDir, ".manifest"), `{"revision": "r2", "roots": ["registry"]}`)
	waitFor(t, "revision r2", func() bool { return strings.Contains(logs.String(), `msg="policy reloaded" revision=r2`) })
	writeFile(t, filepath.Join(bundleDir, "authz.rego"), "package registry.authz\n\nallow contains if {\n")
	waitFor(t, "the broken policy to be refused", func() bool { return strings.Contains(logs.String(), "reload failed") })

	families := scrape(t, metricsURL)
	check := func(name string, labels map[string]string, want float64) {
		t.Helper()
		got, ok := sample(families, name, labels)
		if !ok {
			t.Errorf("%s%v: no such sample", name, labels)
			return
		}
		if got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}

	// Requests: exactly the tally of the script, and nothing else.
	var requests float64
	for k, n := range run.tally {
		check("srht_registry_http_requests_total", map[string]string{"endpoint": k[0], "method": k[1], "code": k[2]}, n)
		requests += n
	}
	if got := sum(families, "srht_registry_http_requests_total"); got != requests {
		t.Errorf("srht_registry_http_requests_total sums to %v, want the script's %v requests", got, requests)
	}
	var auth float64
	for k, n := range run.tally {
		if k[0] == "auth" {
			auth += n
		}
	}
	checkHistogram(t, families, "srht_registry_http_request_duration_seconds", map[string]string{"endpoint": "auth"}, auth, 0, 0)

	// Tokens: anonymous 3, password 3 + the offline login, one refresh,
	// Sourcehut carol twice plus frank and grace.
	check("srht_registry_tokens_issued_total", map[string]string{"method": "anonymous"}, 3)
	check("srht_registry_tokens_issued_total", map[string]string{"method": "password"}, 4)
	check("srht_registry_tokens_issued_total", map[string]string{"method": "refresh"}, 1)
	check("srht_registry_tokens_issued_total", map[string]string{"method": "sourcehut"}, 4)
	check("srht_registry_refresh_tokens_issued_total", map[string]string{"method": "password"}, 1)
	check("srht_registry_refresh_tokens_issued_total", map[string]string{"method": "sourcehut"}, 0)

	// Decisions, one per scope of each authenticated request.
	check("srht_registry_policy_decisions_total", map[string]string{"outcome": "granted_all"}, 1+3+1+1+2+2)
	check("srht_registry_policy_decisions_total", map[string]string{"outcome": "granted_partial"}, 1)
	check("srht_registry_policy_decisions_total", map[string]string{"outcome": "granted_none"}, 1)
	check("srht_registry_policy_decisions_total", map[string]string{"outcome": "error"}, 1)
	decisions := sum(families, "srht_registry_policy_decisions_total")
	memoised, _ := sample(families, "srht_registry_policy_decision_duration_seconds", map[string]string{"memoised": "true"})
	evaluated, _ := sample(families, "srht_registry_policy_decision_duration_seconds", map[string]string{"memoised": "false"})
	if memoised+evaluated != decisions || memoised < 2 {
		t.Errorf("decision durations: %v memoised + %v evaluated, want %v decisions with alice's repeated logins memoised", memoised, evaluated, decisions)
	}

	// The password checks: bcrypt ran once for alice, the cache answered
	// her other four logins and the one whose policy failed; bob's wrong
	// passwords and the unknown users ran bcrypt each, the refused ones
	// did not.
	check("srht_registry_password_verifications_total", map[string]string{"result": "match"}, 1)
	check("srht_registry_password_verifications_total", map[string]string{"result": "mismatch"}, 2)
	check("srht_registry_password_verifications_total", map[string]string{"result": "unknown_user"}, 2)
	check("srht_registry_password_cache_hits_total", nil, 4)
	check("srht_registry_password_cache_entries", nil, 1)

	// Sourcehut: carol, dave, erin, frank and grace missed; carol and dave
	// hit once each; meta.sr.ht accepted three (two of them slowly),
	// refused one and failed once.
	check("srht_registry_sourcehut_cache_misses_total", nil, 5)
	check("srht_registry_sourcehut_cache_hits_total", map[string]string{"cache": "valid"}, 1)
	check("srht_registry_sourcehut_cache_hits_total", map[string]string{"cache": "rejected"}, 1)
	check("srht_registry_sourcehut_cache_entries", map[string]string{"cache": "valid"}, 3)
	check("srht_registry_sourcehut_cache_entries", map[string]string{"cache": "rejected"}, 1)
	// The two slow calls took at least the 1.2 s delay: above the 1 s
	// bucket, and the fast one below it.
	checkHistogram(t, families, "srht_registry_sourcehut_meta_request_duration_seconds", map[string]string{"result": "ok"}, 3, 1, 2)
	checkHistogram(t, families, "srht_registry_sourcehut_meta_request_duration_seconds", map[string]string{"result": "rejected"}, 1, 0, 0)
	checkHistogram(t, families, "srht_registry_sourcehut_meta_request_duration_seconds", map[string]string{"result": "error"}, 1, 0, 0)

	// The brute-force limits and load shedding.
	check("srht_registry_rate_limit_rejections_total", map[string]string{"limit": "user"}, 1)
	check("srht_registry_rate_limit_rejections_total", map[string]string{"limit": "client_ip"}, 1)
	// Addresses with failures: bob's two, the unknown users' one, and
	// dave's two (a refused token counts per address).
	check("srht_registry_rate_limit_tracked", map[string]string{"limit": "client_ip"}, 5)
	check("srht_registry_rate_limit_tracked", map[string]string{"limit": "user"}, 3)
	check("srht_registry_http_overload_rejections_total", nil, 1)
	check("srht_registry_http_requests_in_flight", nil, 0)

	// The policy: r2 in force, activated twice (start and the good reload).
	check("srht_registry_policy_bundle_revision_info", map[string]string{"bundle": bundleDir, "revision": "r2"}, 1)
	if n := len(families["srht_registry_policy_bundle_revision_info"].GetMetric()); n != 1 {
		t.Errorf("srht_registry_policy_bundle_revision_info has %d series, want only r2's", n)
	}
	check("srht_registry_policy_activations_total", nil, 2)
	if at, _ := sample(families, "srht_registry_policy_last_activation_timestamp_seconds", nil); math.Abs(float64(time.Now().Unix())-at) > 60 {
		t.Errorf("srht_registry_policy_last_activation_timestamp_seconds = %v, not within a minute of now", at)
	}

	// Reloads: one good, one failed, and the failure is the last word.
	check("srht_registry_reloads_total", map[string]string{"result": "success"}, 1)
	check("srht_registry_reloads_total", map[string]string{"result": "failure"}, 1)
	check("srht_registry_config_last_reload_successful", nil, 0)

	// The build and the runtime.
	if len(families["srht_registry_build_info"].GetMetric()) != 1 || families["go_goroutines"] == nil || families["process_resident_memory_bytes"] == nil {
		t.Error("build info, Go runtime or process metrics missing")
	}

	// No family has a label whose values come from clients: user names and
	// repositories never appear.
	for name, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "bundle" { // the operator's bundle path
					continue
				}
				for _, secret := range []string{"alice", "bob", "carol", "nobody", "public/app", passwords["alice"]} {
					if strings.Contains(l.GetValue(), secret) {
						t.Errorf("%s has label %s=%q", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	}
}

// scrape reads a /metrics page as Prometheus does.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	return families
}

// sample finds the series of family name whose labels include labels, and
// returns its value (a histogram's count).
func sample(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, m := range families[name].GetMetric() {
		if hasLabels(m, labels) {
			return value(m), true
		}
	}
	return 0, false
}

func sum(families map[string]*dto.MetricFamily, name string) float64 {
	var total float64
	for _, m := range families[name].GetMetric() {
		total += value(m)
	}
	return total
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return math.NaN()
}

func hasLabels(m *dto.Metric, labels map[string]string) bool {
	for k, v := range labels {
		if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
			return false
		}
	}
	return true
}

// checkHistogram requires count observations with a positive sum and, when
// le > 0, that exactly above of them exceeded the bucket bound le.
func checkHistogram(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string, count float64, le float64, above float64) {
	t.Helper()
	for _, m := range families[name].GetMetric() {
		if !hasLabels(m, labels) || m.Histogram == nil {
			continue
		}
		h := m.Histogram
		if got := float64(h.GetSampleCount()); got != count {
			t.Errorf("%s%v: %v observations, want %v", name, labels, got, count)
		}
		if count > 0 && h.GetSampleSum() <= 0 {
			t.Errorf("%s%v: sum %v, want > 0", name, labels, h.GetSampleSum())
		}
		if le > 0 {
			for _, b := range h.GetBucket() {
				if b.GetUpperBound() == le {
					if got := count - float64(b.GetCumulativeCount()); got != above {
						t.Errorf("%s%v: %v observations above %vs, want %v", name, labels, got, le, above)
					}
				}
			}
		}
		return
	}
	t.Errorf("%s%v: no such histogram", name, labels)
}

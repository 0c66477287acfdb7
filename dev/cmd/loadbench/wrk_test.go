package main

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// wrkPercentile is wrk's latency:percentile(p) of sorted values (wrk's
// stats_percentile: the value of rank round(p/100·count + 0.5)).
func wrkPercentile(sorted []int64, p float64) int64 {
	rank := int(math.Round(p/100*float64(len(sorted)) + 0.5))
	if rank > len(sorted) {
		return 0 // wrk finds nothing past the last value
	}
	return sorted[rank-1]
}

// fakeReport is the report wrk's done() prints for requests answered
// with the latencies vals (µs), over durationUS.
func fakeReport(vals []int64, durationUS int64) *wrkReport {
	sorted := slices.Sorted(slices.Values(vals))
	r := &wrkReport{Requests: uint64(len(sorted)), DurationUS: durationUS}
	ps, _ := latencyGrid()
	r.Quantiles = make([]int64, len(ps))
	if len(sorted) == 0 {
		return r
	}
	var sum int64
	for _, v := range sorted {
		sum += v
	}
	l := &r.Latency
	l.Min, l.Max, l.Mean = float64(sorted[0]), float64(sorted[len(sorted)-1]), float64(sum)/float64(len(sorted))
	l.P50, l.P75, l.P90 = float64(wrkPercentile(sorted, 50)), float64(wrkPercentile(sorted, 75)), float64(wrkPercentile(sorted, 90))
	l.P99, l.P999 = float64(wrkPercentile(sorted, 99)), float64(wrkPercentile(sorted, 99.9))
	for i, p := range ps[:len(ps)-1] {
		r.Quantiles[i] = wrkPercentile(sorted, p)
	}
	r.Quantiles[len(ps)-1] = sorted[len(sorted)-1]
	return r
}

// reportLine is the LOADBENCH line of r, as the script prints it.
func reportLine(t *testing.T, r *wrkReport) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return wrkMarker + string(b) + "\n"
}

// spread is n latencies from lo to hi µs, evenly spaced.
func spread(n int, lo, hi int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = lo + (hi-lo)*int64(i)/int64(max(n-1, 1))
	}
	return out
}

// wrkStdout is what wrk 4.1 prints with the script's done() line.
func wrkStdout(t *testing.T) (string, *wrkReport) {
	r := fakeReport(spread(103456, 120, 41200), 10002345)
	r.Bytes, r.Unauthorized = 83886080, 1000
	r.Errors.Read, r.Errors.Status, r.Errors.Timeout = 2, 1034, 1
	return `Running 10s test @ http://127.0.0.1:40123/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms    2.02ms  41.20ms   80.00%
    Req/Sec     5.20k   400.00     6.00k    70.00%
  103456 requests in 10.00s, 80.00MB read
  Non-2xx or 3xx responses: 1034
Requests/sec:  10343.21
Transfer/sec:      8.00MB
` + reportLine(t, r), r
}

func TestParseWrkOutput(t *testing.T) {
	out, want := wrkStdout(t)
	r, err := parseWrkOutput([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 103456 || r.DurationUS != 10002345 || r.Unauthorized != 1000 ||
		r.Errors.Status != 1034 || r.Errors.Read != 2 || r.Errors.Timeout != 1 ||
		r.Latency != want.Latency || !slices.Equal(r.Quantiles, want.Quantiles) {
		t.Errorf("parsed %+v", r)
	}
	// What the Lua done() prints, literally (a run without requests: wrk's
	// minimum is then its initial UINT64_MAX, every quantile 0).
	zeros := strings.TrimSuffix(strings.Repeat("0,", len(want.Quantiles)), ",")
	empty := `LOADBENCH {"requests":0,"duration_us":1000000,"bytes":0,"unauthorized":0,` +
		`"errors":{"connect":32,"read":0,"write":0,"status":0,"timeout":0},` +
		`"latency_us":{"min":18446744073709551615,"mean":0.0,"max":0,"p50":0,"p75":0,"p90":0,"p99":0,"p999":0},` +
		`"quantiles_us":[` + zeros + "]}\n"
	if r, err := parseWrkOutput([]byte(empty)); err != nil || r.Requests != 0 || r.Errors.Connect != 32 {
		t.Errorf("a run without requests: %+v, %v", r, err)
	}

	// Malformed reports, each from the good one with one thing wrong.
	good := func() *wrkReport { c := *want; c.Quantiles = slices.Clone(want.Quantiles); return &c }
	n := len(want.Quantiles)
	for name, out := range map[string]string{
		"no report":            "Running 10s test @ http://x/\nRequests/sec: 1\n",
		"not JSON":             "LOADBENCH {requests: 1}\n",
		"unknown field":        `LOADBENCH {"requests":1,"duration_us":1,"surprise":1}` + "\n",
		"no duration":          `LOADBENCH {"requests":1,"duration_us":0}` + "\n",
		"marker mid-row":       `x LOADBENCH {"requests":1,"duration_us":1}` + "\n",
		"no quantiles":         `LOADBENCH {"requests":1,"duration_us":1,"latency_us":{"max":5}}` + "\n",
		"quantiles not a list": strings.Replace(reportLine(t, want), `"quantiles_us":[`, `"quantiles_us":{"a":[`, 1),
		"quantiles cut short":  strings.Replace(reportLine(t, want), `]}`, ``, 1),
		"one quantile short": func() string {
			r := good()
			r.Quantiles = r.Quantiles[1:]
			return reportLine(t, r)
		}(),
		"one quantile more": func() string {
			r := good()
			r.Quantiles = append(r.Quantiles, r.Quantiles[n-1])
			return reportLine(t, r)
		}(),
		"a quantile lower than the one before": func() string {
			r := good()
			r.Quantiles[500] = r.Quantiles[501] + 1
			return reportLine(t, r)
		}(),
		"a negative quantile": func() string {
			r := good()
			r.Quantiles[0] = -1
			return reportLine(t, r)
		}(),
		"the last quantile is not the maximum": func() string {
			r := good()
			r.Latency.Max++
			return reportLine(t, r)
		}(),
		"a fractional quantile": strings.Replace(reportLine(t, want), `"quantiles_us":[`, `"quantiles_us":[0.5,`, 1),
	} {
		if _, err := parseWrkOutput([]byte(out)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// TestLatencyMixOneRun: one run merged alone gives back its own quantile
// at every percentile of the grid, and its exact minimum, mean and maximum.
func TestLatencyMixOneRun(t *testing.T) {
	for name, vals := range map[string][]int64{
		"spread":     spread(4321, 800, 95000),
		"one value":  {1234},
		"two values": {10, 2000},
		"a tail":     append(spread(9900, 1000, 2000), spread(100, 50000, 90000)...),
	} {
		rep := fakeReport(vals, 1e6)
		var m latencyMix
		m.add(rep.Requests, rep.quantiles(), time.Duration(rep.Latency.Min)*time.Microsecond, time.Duration(rep.Latency.Mean*1e3))
		ps, _ := latencyGrid()
		for i, p := range ps {
			if got, want := m.Quantile(p/100), time.Duration(rep.Quantiles[i])*time.Microsecond; got != want {
				t.Errorf("%s: p%g = %v, want the run's %v", name, p, got, want)
			}
		}
		s := m.Summary()
		if s.P99 != int64(rep.Latency.P99*1e3) || s.P50 != int64(rep.Latency.P50*1e3) || s.P999 != int64(rep.Latency.P999*1e3) {
			t.Errorf("%s: summary %+v, wrk's own %+v", name, s, rep.Latency)
		}
		if s.Min != int64(rep.Latency.Min*1e3) || s.Max != int64(rep.Latency.Max*1e3) || s.Mean != int64(rep.Latency.Mean*1e3) || s.Count != rep.Requests {
			t.Errorf("%s: min, mean, max, count %+v, want %+v", name, s, rep.Latency)
		}
	}
	var empty latencyMix
	empty.add(0, make([]time.Duration, 1090), 0, 0)
	if empty.Quantile(0.99) != 0 || empty.Summary() != (LatencySummary{}) {
		t.Errorf("a mix without requests: %+v", empty.Summary())
	}
	if ps, shares := latencyGrid(); len(ps) != 1090 || ps[989] != 99 || ps[len(ps)-2] != 99.99 || ps[len(ps)-1] != 100 {
		t.Errorf("grid %v", ps)
	} else {
		var sum uint64
		for _, s := range shares {
			sum += s
		}
		if sum != gridUnits {
			t.Errorf("the grid's shares add up to %d, want %d", sum, gridUnits)
		}
	}
}

func TestFillWrk(t *testing.T) {
	out, _ := wrkStdout(t)
	rep, err := parseWrkOutput([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	var r result
	r.fillWrk(&wrkResult{wrkReport: rep, CPU: 2 * time.Second}, 10*time.Second)
	// 1034 non-2xx answers, 1000 of them the 401s the case expects.
	if r.Requests != 103456 || r.Tokens != 102422 || r.Expected401s != 1000 || r.Errors != 34+2+1 {
		t.Errorf("requests %d, tokens %d, 401s %d, errors %d", r.Requests, r.Tokens, r.Expected401s, r.Errors)
	}
	if r.ErrorKinds["status other than 200"] != 34 || r.ErrorKinds["read"] != 2 || r.ErrorKinds["timeout"] != 1 || len(r.ErrorKinds) != 3 {
		t.Errorf("error kinds %v", r.ErrorKinds)
	}
	if got := r.TokensPerSec; got < 10239.7 || got > 10239.9 {
		t.Errorf("tokens/s %v, want 102422 / 10.002345 s", got)
	}
	if r.Latency.P99 != int64(rep.Latency.P99*1e3) || r.Latency.P50 != int64(rep.Latency.P50*1e3) {
		t.Errorf("latency %+v", r.Latency)
	}
	if r.CPUPerTokenNS != int64(10*time.Second)/102422 || r.ServerCPUNS != int64(10*time.Second) {
		t.Errorf("server CPU %d, per token %d", r.ServerCPUNS, r.CPUPerTokenNS)
	}
	if r.GeneratorCPUPerReqNS != int64(2*time.Second)/103456 {
		t.Errorf("wrk CPU per request %d", r.GeneratorCPUPerReqNS)
	}
	var unknown result
	unknown.fillWrk(&wrkResult{wrkReport: rep}, -1)
	if unknown.ServerCPUNS != 0 || unknown.CPUPerTokenNS != 0 {
		t.Errorf("unknown server CPU reported: %+v", unknown)
	}
}

func TestLuaScript(t *testing.T) {
	one := &plan{reqs: []request{{url: authPath("repository:alice/app:pull,push"), auth: `Basic "q"\`}}}
	src, err := luaScript(one)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`{path = "/auth?scope=repository%3Aalice%2Fapp%3Apull%2Cpush&service=registry.example.com", auth = "Basic \"q\"\\"},`,
		"wrk.path = reqs[1].path",
		`function done(summary, latency, requests)`,
		`io.write(string.format('LOADBENCH {"requests":%d`,
		"local grid = {\n  0.1,0.2,0.3,",
		",98.9,99,99.01,99.02,",
		",99.98,99.99\n}\n",
		`for i, p in ipairs(grid) do q[i] = string.format("%.0f", latency:percentile(p)) end`,
		`q[#q + 1] = string.format("%.0f", latency.max)`,
	} {
		if !strings.Contains(src, want) {
			t.Errorf("one request: script lacks %q:\n%s", want, src)
		}
	}
	// One request: wrk's prepared request, no Lua per request.
	if strings.Contains(src, "function request()") || strings.Contains(src, "function response(") {
		t.Errorf("one request: a per-request function:\n%s", src)
	}

	cold, err := luaScript(&plan{cold: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cold, "function request()") || !strings.Contains(cold, `coldPrefix .. tag .. "-" .. id .. "-" .. n .. ":pull"`) {
		t.Errorf("cold:\n%s", cold)
	}

	mixed, err := luaScript(&plan{count401: true, reqs: []request{{url: "/auth?a"}, {url: "/auth?b", want401: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(mixed, "return formatted[(n % #formatted) + 1]") || !strings.Contains(mixed, "if status == 401 then unauthorized = unauthorized + 1 end") {
		t.Errorf("mixed:\n%s", mixed)
	}

	if _, err := luaScript(&plan{}); err == nil {
		t.Error("a plan without requests made a script")
	}
	if _, err := luaScript(&plan{reqs: []request{{url: "http://127.0.0.1:1/auth"}}}); err == nil {
		t.Error("an absolute URL in a plan made a script")
	}
	if got := luaString("a\nb\x7f\"é"); got != `"a\010b\127\"\195\169"` {
		t.Errorf("luaString = %s", got)
	}
}

// TestColdNames: the names the cold case asks for are new on every request
// and under the benchmark policy's public library/* (one path segment).
func TestColdNames(t *testing.T) {
	seen := map[string]bool{}
	for _, tag := range []string{"w1", "m1"} {
		for thread := 1; thread <= 2; thread++ {
			for n := 1; n <= 3; n++ {
				name := coldName(tag, thread, n)
				if ok, _ := path.Match("library/*", name); !ok || seen[name] {
					t.Errorf("%s: public %v, seen before %v", name, ok, seen[name])
				}
				seen[name] = true
			}
		}
	}
	// What the Lua request() builds is what coldName names.
	u, err := url.Parse(coldPrefix + "m1-2-3:pull")
	if err != nil {
		t.Fatal(err)
	}
	if q := u.Query(); q.Get("service") != service || q.Get("scope") != "repository:"+coldName("m1", 2, 3)+":pull" {
		t.Errorf("cold request %s: %v", u, q)
	}
	p := &plan{cold: true}
	a, b := p.goRequest("127.0.0.1:1", 0), p.goRequest("127.0.0.1:1", 1)
	if a.url == b.url || !strings.HasPrefix(a.url, "http://127.0.0.1:1/auth?") || a.auth != "" {
		t.Errorf("check requests %q, %q", a.url, b.url)
	}
}

func TestWrkArgs(t *testing.T) {
	w := wrkRun{wrk: "wrk", script: "/tmp/x.lua", addr: "127.0.0.1:5", threads: 2, conns: 32, duration: 10 * time.Second, tag: "m1"}
	want := []string{"-t", "2", "-c", "32", "-d", "10s", "--timeout", "30s", "-s", "/tmp/x.lua", "http://127.0.0.1:5/", "--", "m1"}
	if got := w.args(); !slices.Equal(got, want) {
		t.Errorf("args %q, want %q", got, want)
	}
	w.duration = 1500 * time.Millisecond
	if got := w.args()[5]; got != "2s" {
		t.Errorf("1.5s: -d %s, want 2s (wrk takes whole seconds)", got)
	}
}

func TestOptionsCheck(t *testing.T) {
	good := options{conns: 32, threads: 2, runs: 3, duration: 10 * time.Second, warmup: 2 * time.Second, reuseSample: 500, shTokens: 100000, starts: 5}
	if err := good.check(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	for name, mod := range map[string]func(*options){
		"no runs":             func(o *options) { o.runs = 0 },
		"more threads":        func(o *options) { o.threads = 64 },
		"sub-second duration": func(o *options) { o.duration = 1500 * time.Millisecond },
		"zero duration":       func(o *options) { o.duration = 0 },
		"negative warm-up":    func(o *options) { o.warmup = -time.Second },
		"fractional warm-up":  func(o *options) { o.warmup = 500 * time.Millisecond },
		"negative sample":     func(o *options) { o.reuseSample = -1 },
		"huge memory case":    func(o *options) { o.shTokens = 20_000_000 },
	} {
		o := good
		mod(&o)
		if err := o.check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	noWarmup := good
	noWarmup.warmup = 0
	if err := noWarmup.check(); err != nil {
		t.Errorf("-warmup 0: %v", err)
	}
}

// TestBaselineScopes: the baseline grants what is asked, so it signs as
// many access entries as the server.
func TestBaselineScopes(t *testing.T) {
	got := baselineScopes([]string{"repository:alice/app:pull,push", "repository:registry:5000/x:pull", "nonsense"})
	want := []baselineAccess{
		{Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}},
		{Type: "repository", Name: "registry:5000/x", Actions: []string{"pull"}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i].Type != want[i].Type || got[i].Name != want[i].Name || !slices.Equal(got[i].Actions, want[i].Actions) {
			t.Errorf("%d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestWrkScriptRuns runs the scripts with wrk against a handler that
// answers 401 to wrong passwords: the Lua is valid, done()'s line parses,
// the cold names are new on every request and the 401s are counted. It
// skips where wrk is not installed, but under CI (CI set; .ci/run installs
// wrk), where it fails.
func TestWrkScriptRuns(t *testing.T) {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("wrk is not installed, and CI is set: %v", err)
		}
		t.Skip("wrk is not installed")
	}
	var mu sync.Mutex
	scopes := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		for _, s := range r.URL.Query()["scope"] {
			scopes[s]++
		}
		mu.Unlock()
		if _, pw, _ := r.BasicAuth(); pw == "wrong" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	for name, p := range map[string]*plan{
		"cold": {cold: true},
		"one":  {reqs: []request{{url: authPath("repository:library/base:pull"), auth: basicAuth("alice", "pw")}}},
		"mixed": {count401: true, reqs: []request{
			{url: authPath("repository:alice/app:pull")},
			{url: authPath("repository:alice/app:pull"), auth: basicAuth("alice", "wrong"), want401: true},
		}},
	} {
		mu.Lock()
		clear(scopes)
		mu.Unlock()
		script, err := writeScript(dir, name, p)
		if err != nil {
			t.Fatal(err)
		}
		res, err := wrkRun{wrk: bin, script: script, addr: addr, threads: 2, conns: 4, duration: time.Second, tag: "m7"}.run(t.Context())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// The run's grid of quantiles (parseWrkOutput checked it is one)
		// gives back wrk's own percentiles.
		var m latencyMix
		m.add(res.Requests, res.quantiles(), time.Duration(res.Latency.Min*1e3), time.Duration(res.Latency.Mean*1e3))
		if l, own := m.Summary(), res.Latency; l.P50 != int64(own.P50*1e3) || l.P99 != int64(own.P99*1e3) || l.P999 != int64(own.P999*1e3) || l.Max != int64(own.Max*1e3) {
			t.Errorf("%s: from the grid %+v, wrk's own %+v", name, l, own)
		}
		mu.Lock()
		n := len(scopes)
		repeated := 0
		for s, k := range scopes {
			if k > 1 {
				repeated++
			}
			if name == "cold" && !strings.HasPrefix(s, "repository:library/cold-m7-") {
				t.Errorf("cold: scope %q", s)
			}
		}
		mu.Unlock()
		switch {
		case res.Requests == 0 || res.CPU <= 0:
			t.Errorf("%s: %d requests, wrk CPU %v", name, res.Requests, res.CPU)
		case name == "cold" && (repeated > 0 || uint64(n) < res.Requests):
			t.Errorf("cold: %d distinct scopes, %d asked more than once, for %d requests", n, repeated, res.Requests)
		case name == "mixed" && (res.Unauthorized == 0 || res.Unauthorized != res.Errors.Status):
			t.Errorf("mixed: %d 401s counted, %d non-2xx", res.Unauthorized, res.Errors.Status)
		case name == "one" && (n != 1 || res.Errors.Status != 0):
			t.Errorf("one: scopes %v, %d non-2xx", scopes, res.Errors.Status)
		}
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
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

// exactQuantile is quantile q of the values, as Histogram.Quantile
// defines it (the ceil(q·n)-th smallest).
func exactQuantile(vals []int64, q float64) int64 {
	sorted := slices.Sorted(slices.Values(vals))
	return sorted[int(math.Ceil(q*float64(len(sorted))))-1]
}

// meanOf is the mean of every value of the lists.
func meanOf(lists ...[]int64) float64 {
	var sum, n float64
	for _, l := range lists {
		for _, v := range l {
			sum += float64(v)
			n++
		}
	}
	return sum / n
}

// TestFillSlices: a side's figures from its slices.
func TestFillSlices(t *testing.T) {
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	slice := func(vals []int64, durationUS int64, status uint64, wrkCPU, serverCPU time.Duration) sliceRun {
		r := fakeReport(vals, durationUS)
		r.Errors.Status = status
		return sliceRun{wrkResult: &wrkResult{wrkReport: r, CPU: wrkCPU}, serverCPU: serverCPU}
	}
	// Steady: 3000 requests from 1 to 10 ms. Tail: 1000 requests, fast
	// but for 2 % at 40 ms. The p99 of the 4000 together is in the
	// steady slice's top (the tail's 20 slow ones are half of the top
	// 1 %), far below the average of the two p99s (about 25 ms) and below
	// their request-weighted average (about 17 ms).
	steady := spread(3000, 1000, 10000)
	tail := append(spread(980, 500, 3000), spread(20, 40000, 40000)...)
	// Two like slices: their merged p99 is theirs.
	same := spread(2000, 2000, 6000)

	type want struct {
		requests, tokens, errors uint64
		windowNS                 int64
		tokensPerSec             float64
		serverCPU, cpuPerToken   int64
		wrkCPUPerReq             int64
		min, max, p50, p99       int64   // µs
		mean                     float64 // µs
	}
	for _, tc := range []struct {
		name   string
		slices []sliceRun
		want   want
	}{{
		name:   "one slice",
		slices: []sliceRun{slice(steady, 2_000_000, 0, time.Second, 3*time.Second)},
		want: want{requests: 3000, tokens: 3000, windowNS: 2e9, tokensPerSec: 1500, serverCPU: 3e9, cpuPerToken: 1e6,
			wrkCPUPerReq: int64(time.Second) / 3000, min: 1000, max: 10000, mean: meanOf(steady),
			p50: exactQuantile(steady, 0.5), p99: exactQuantile(steady, 0.99)},
	}, {
		name: "steady and tail",
		slices: []sliceRun{
			slice(steady, 2_000_000, 0, time.Second, 3*time.Second),
			slice(tail, 2_000_000, 10, time.Second, time.Second),
		},
		want: want{requests: 4000, tokens: 3990, errors: 10, windowNS: 4e9, tokensPerSec: 3990.0 / 4, serverCPU: 4e9,
			cpuPerToken: int64(4e9) / 3990, wrkCPUPerReq: int64(2*time.Second) / 4000, min: 500, max: 40000,
			mean: meanOf(steady, tail),
			p50:  exactQuantile(append(slices.Clone(steady), tail...), 0.5), p99: exactQuantile(append(slices.Clone(steady), tail...), 0.99)},
	}, {
		name: "two like slices, a CPU reading missed",
		slices: []sliceRun{
			slice(same, 1_000_000, 0, time.Second, time.Second),
			slice(same, 1_000_000, 0, time.Second, -1),
		},
		want: want{requests: 4000, tokens: 4000, windowNS: 2e9, tokensPerSec: 2000, wrkCPUPerReq: int64(2*time.Second) / 4000,
			min: 2000, max: 6000, mean: meanOf(same, same), p50: exactQuantile(same, 0.5), p99: exactQuantile(same, 0.99)},
	}} {
		var r result
		r.fillSlices(tc.slices)
		w := tc.want
		if r.Requests != w.requests || r.Tokens != w.tokens || r.Errors != w.errors || r.WindowNS != w.windowNS || r.Slices != len(tc.slices) {
			t.Errorf("%s: requests %d, tokens %d, errors %d, window %d, slices %d; want %+v", tc.name, r.Requests, r.Tokens, r.Errors, r.WindowNS, r.Slices, w)
		}
		if math.Abs(r.TokensPerSec-w.tokensPerSec) > 1e-6 || len(r.SliceTokensPerSec) != len(tc.slices) {
			t.Errorf("%s: tokens/s %v (slices %v), want %v", tc.name, r.TokensPerSec, r.SliceTokensPerSec, w.tokensPerSec)
		}
		if r.ServerCPUNS != w.serverCPU || r.CPUPerTokenNS != w.cpuPerToken || r.GeneratorCPUPerReqNS != w.wrkCPUPerReq {
			t.Errorf("%s: server CPU %d, per token %d, wrk CPU per request %d; want %+v", tc.name, r.ServerCPUNS, r.CPUPerTokenNS, r.GeneratorCPUPerReqNS, w)
		}
		l := r.Latency
		if l.Count != w.requests || l.Min != int64(us(w.min)) || l.Max != int64(us(w.max)) || math.Abs(float64(l.Mean)-w.mean*1e3) > 1 {
			t.Errorf("%s: latency min %v, mean %v, max %v, count %d; want %+v", tc.name, us(l.Min/1e3), us(l.Mean/1e3), us(l.Max/1e3), l.Count, w)
		}
		// Each grid point stands for its share by its highest value: the
		// merged quantile is at or just above the exact one (a grid step
		// of a slice, at most 0.5 % here).
		for _, q := range []struct {
			name      string
			got, want int64
		}{{"p50", l.P50, w.p50}, {"p99", l.P99, w.p99}} {
			exact := int64(us(q.want))
			if q.got < exact || float64(q.got-exact) > 0.005*float64(exact) {
				t.Errorf("%s: merged %s %v, want %v (+0.5 %%)", tc.name, q.name, time.Duration(q.got), time.Duration(exact))
			}
		}
		if tc.name == "steady and tail" {
			var avg int64
			for _, s := range tc.slices {
				avg += int64(s.Latency.P99*1e3) / int64(len(tc.slices))
			}
			if float64(l.P99) > 0.8*float64(avg) {
				t.Errorf("merged p99 %v is not well below the slices' average p99 %v: the test does not tell merging from averaging",
					time.Duration(l.P99), time.Duration(avg))
			}
		}
	}
	var none result
	none.fillSlices(nil)
	if none.TokensPerSec != 0 || none.ServerCPUNS != 0 || none.Latency.Count != 0 {
		t.Errorf("no slices: %+v", none)
	}
}

// TestFillSlicesErrors: wrk's error counts add up over the slices, the
// 401s of a case that expects them told from other non-2xx answers.
func TestFillSlicesErrors(t *testing.T) {
	_, rep := wrkStdout(t)
	var r result
	r.fillSlices([]sliceRun{{wrkResult: &wrkResult{wrkReport: rep, CPU: 2 * time.Second}, serverCPU: 10 * time.Second}})
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
		t.Errorf("latency %+v, wrk's %+v", r.Latency, rep.Latency)
	}
	if r.CPUPerTokenNS != int64(10*time.Second)/102422 || r.ServerCPUNS != int64(10*time.Second) {
		t.Errorf("server CPU %d, per token %d", r.ServerCPUNS, r.CPUPerTokenNS)
	}
	if r.GeneratorCPUPerReqNS != int64(2*time.Second)/103456 {
		t.Errorf("wrk CPU per request %d", r.GeneratorCPUPerReqNS)
	}
	// The same run twice: every count doubles, the rates do not move.
	one := r
	run := sliceRun{wrkResult: &wrkResult{wrkReport: rep, CPU: 2 * time.Second}, serverCPU: 10 * time.Second}
	r.fillSlices([]sliceRun{run, run})
	if r.Requests != 2*one.Requests || r.Expected401s != 2000 || r.Errors != 2*one.Errors || r.ErrorKinds["read"] != 4 ||
		r.TokensPerSec != one.TokensPerSec || r.CPUPerTokenNS != one.CPUPerTokenNS || *r.Latency != (LatencySummary{
		Count: 2 * one.Latency.Count, Min: one.Latency.Min, Mean: one.Latency.Mean, Max: one.Latency.Max,
		P50: one.Latency.P50, P75: one.Latency.P75, P90: one.Latency.P90, P99: one.Latency.P99, P999: one.Latency.P999}) {
		t.Errorf("twice: %+v, once: %+v", r, one)
	}
	var unknown result
	unknown.fillSlices([]sliceRun{{wrkResult: &wrkResult{wrkReport: rep}, serverCPU: -1}})
	if unknown.ServerCPUNS != 0 || unknown.CPUPerTokenNS != 0 {
		t.Errorf("unknown server CPU reported: %+v", unknown)
	}
}

func TestSliceOrder(t *testing.T) {
	for _, tc := range []struct {
		sides, n int
		want     string // the side of each slice: 0 goes first
	}{
		{2, 1, "01"},
		{2, 2, "0110"},
		{2, 3, "011001"},
		{2, 5, "0110011001"},
		{2, 6, "011001100110"},
		{1, 1, "0"},
		{1, 4, "0000"},
	} {
		var got strings.Builder
		count := make([]int, tc.sides)
		for _, s := range sliceOrder(tc.sides, tc.n) {
			fmt.Fprint(&got, s)
			count[s]++
		}
		if got.String() != tc.want {
			t.Errorf("%d sides, %d slices: %s, want %s", tc.sides, tc.n, got.String(), tc.want)
		}
		for s, c := range count {
			if c != tc.n {
				t.Errorf("%d sides, %d slices: side %d has %d", tc.sides, tc.n, s, c)
			}
		}
	}
}

func TestSliceDurations(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		d    time.Duration
		n    int
		want []time.Duration
	}{
		{10 * s, 5, []time.Duration{2 * s, 2 * s, 2 * s, 2 * s, 2 * s}},
		{10 * s, 1, []time.Duration{10 * s}},
		{7 * s, 5, []time.Duration{2 * s, 2 * s, s, s, s}},
		{10 * s, 3, []time.Duration{4 * s, 3 * s, 3 * s}},
		{3 * s, 3, []time.Duration{s, s, s}},
		{s, 1, []time.Duration{s}},
	} {
		got := sliceDurations(tc.d, tc.n)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v in %d: %v, want %v", tc.d, tc.n, got, tc.want)
		}
	}
	// Every wrk run of a case gets its own tag: the cold case's names are
	// new in each.
	tags := map[string]bool{warmupTag(1): true, warmupTag(2): true}
	for run := 1; run <= 2; run++ {
		for k := 1; k <= 12; k++ {
			if tag := sliceTag(run, k); tags[tag] || strings.Contains(tag, "-") {
				t.Errorf("tag %q twice, or with a dash", tag)
			} else {
				tags[tag] = true
			}
		}
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
	if strings.Contains(src+cold, "function delay()") {
		t.Error("a script without -think paces its requests")
	}
	paced, err := luaScript(&plan{cold: true, think: 4 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(paced, "\nfunction delay() return 4 end\n") {
		t.Errorf("-think 4ms:\n%s", paced)
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
	good := options{conns: 32, threads: 2, runs: 3, duration: 10 * time.Second, slices: 5, warmup: 2 * time.Second, reuseSample: 500, shTokens: 100000, starts: 5}
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
		"no slices":           func(o *options) { o.slices = 0 },
		"sub-second slices":   func(o *options) { o.slices = 11 },
		"4s in 5 slices":      func(o *options) { o.duration, o.slices = 4*time.Second, 5 },
		"negative think":      func(o *options) { o.think = -time.Millisecond },
		"sub-ms think":        func(o *options) { o.think = 1500 * time.Microsecond },
	} {
		o := good
		mod(&o)
		if err := o.check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, mod := range map[string]func(*options){
		"-warmup 0":            func(o *options) { o.warmup = 0 },
		"1s slices":            func(o *options) { o.slices = 10 },
		"one slice":            func(o *options) { o.slices = 1 },
		"uneven slices":        func(o *options) { o.duration, o.slices = 7*time.Second, 5 },
		"1s, the CI smoke run": func(o *options) { o.duration, o.slices = time.Second, defaultSlicesFor(time.Second) },
		"-think 4ms":           func(o *options) { o.think = 4 * time.Millisecond },
	} {
		o := good
		mod(&o)
		if err := o.check(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Without -slices: 5, or one per second of a shorter -d.
	for d, want := range map[time.Duration]int{time.Second: 1, 3 * time.Second: 3, 5 * time.Second: 5, 10 * time.Second: 5, time.Minute: 5} {
		if got := defaultSlicesFor(d); got != want {
			t.Errorf("-d %v: %d slices by default, want %d", d, got, want)
		}
	}
	// Asked for, too many slices are refused before anything runs.
	var stderr strings.Builder
	if code := run([]string{"-d", "3s", "-slices", "5"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "-slices 5 would make slices shorter than 1s") {
		t.Errorf("-d 3s -slices 5: exit %d, %q", code, stderr.String())
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
		// Two slices of a side, as loadCase runs them: each with its own
		// tag, each report with its grid of quantiles (parseWrkOutput
		// checked it is one).
		var runs []sliceRun
		for k := 1; k <= 2; k++ {
			res, err := wrkRun{wrk: bin, script: script, addr: addr, threads: 2, conns: 4, duration: time.Second, tag: sliceTag(7, k)}.run(t.Context())
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			runs = append(runs, sliceRun{wrkResult: res, serverCPU: -1})
			// One slice alone: its merged quantiles are wrk's own.
			var one result
			one.fillSlices(runs[k-1:])
			if l, own := one.Latency, res.Latency; l.P50 != int64(own.P50*1e3) || l.P99 != int64(own.P99*1e3) || l.P999 != int64(own.P999*1e3) ||
				l.Max != int64(own.Max*1e3) || l.Min != int64(own.Min*1e3) || res.Quantiles[len(res.Quantiles)-1] != int64(own.Max) {
				t.Errorf("%s: slice %d: from the grid %+v, wrk's own %+v", name, k, l, own)
			}
		}
		var both result
		both.fillSlices(runs)
		res := runs[0].wrkResult
		if both.Requests != runs[0].Requests+runs[1].Requests || both.Latency.Max != int64(max(runs[0].Latency.Max, runs[1].Latency.Max)*1e3) ||
			both.Latency.P99 < int64(min(runs[0].Latency.P99, runs[1].Latency.P99)*1e3) || both.Latency.P99 > both.Latency.Max {
			t.Errorf("%s: both slices %+v (latency %+v), from %+v and %+v", name, both, both.Latency, runs[0].Latency, runs[1].Latency)
		}
		mu.Lock()
		n := len(scopes)
		repeated := 0
		for s, k := range scopes {
			if k > 1 {
				repeated++
			}
			if name == "cold" && !strings.HasPrefix(s, "repository:library/cold-m7s1-") && !strings.HasPrefix(s, "repository:library/cold-m7s2-") {
				t.Errorf("cold: scope %q", s)
			}
		}
		mu.Unlock()
		switch {
		case res.Requests == 0 || res.CPU <= 0:
			t.Errorf("%s: %d requests, wrk CPU %v", name, res.Requests, res.CPU)
		case name == "cold" && (repeated > 0 || uint64(n) < both.Requests):
			t.Errorf("cold: %d distinct scopes, %d asked more than once, for %d requests in two slices", n, repeated, both.Requests)
		case name == "mixed" && (res.Unauthorized == 0 || res.Unauthorized != res.Errors.Status):
			t.Errorf("mixed: %d 401s counted, %d non-2xx", res.Unauthorized, res.Errors.Status)
		case name == "one" && (n != 1 || res.Errors.Status != 0):
			t.Errorf("one: scopes %v, %d non-2xx", scopes, res.Errors.Status)
		}
	}
}

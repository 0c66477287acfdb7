package main

import (
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBucketsCoverEveryValue(t *testing.T) {
	prevHi := int64(-1)
	for i := 0; i < histBuckets; i++ {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, want %d (buckets must be contiguous)", i, lo, prevHi+1)
		}
		if hi < lo {
			t.Fatalf("bucket %d: hi %d < lo %d", i, hi, lo)
		}
		if lo >= 2*subCount && float64(hi-lo+1)/float64(lo) > 1.0/subCount {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/%d of its value", i, lo, hi, subCount)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d, %d]: bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		prevHi = hi
		if hi < 0 { // wrapped past the largest int64
			break
		}
	}
	if got := bucketOf(1<<63 - 1); got != histBuckets-1 {
		t.Errorf("bucketOf(max int64) = %d, want the last bucket %d", got, histBuckets-1)
	}
	if got := bucketOf(-5); got != 0 {
		t.Errorf("bucketOf(-5) = %d, want 0", got)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 {
		t.Fatal("an empty histogram must report 0")
	}
	// 1 ms … 10 ms in 10 µs steps, shuffled: 1000 values.
	var vals []time.Duration
	for i := 1; i <= 1000; i++ {
		vals = append(vals, time.Duration(i)*10*time.Microsecond)
	}
	rand.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
	for _, v := range vals {
		h.Record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := h.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/subCount {
			t.Errorf("Quantile(%v) = %v, want %v within +%.1f%%", q, got, exact, 100.0/subCount)
		}
	}
	if h.Min() != 10*time.Microsecond || h.Max() != 10*time.Millisecond {
		t.Errorf("min, max = %v, %v", h.Min(), h.Max())
	}
	if h.Mean() != 5005*time.Microsecond {
		t.Errorf("mean = %v, want 5.005ms", h.Mean())
	}
	if h.Quantile(1) != h.Max() || h.Quantile(0) != h.Min() {
		t.Errorf("Quantile(1), Quantile(0) = %v, %v; want max and min", h.Quantile(1), h.Quantile(0))
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for i := range 5000 {
		d := time.Duration(i*i) * time.Nanosecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{})
	if m.Summary() != all.Summary() {
		t.Errorf("merged %+v, want %+v", m.Summary(), all.Summary())
	}
}

// fakeJWT builds an unsigned compact token with the given claims.
func fakeJWT(t *testing.T, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256"}`)) + "." + enc(payload) + ".c2ln"
}

func TestReuseChecker(t *testing.T) {
	now := time.Unix(1_800_000_000, 500_000_000)
	later := now.Add(10 * time.Millisecond)
	tok := func(jti string, iat int64, extra string) string {
		return fakeJWT(t, map[string]any{"jti": jti, "iat": iat, "x": extra})
	}
	c := NewReuseChecker(100)
	steps := []struct {
		name, token, want string
	}{
		{"fresh", tok("a", now.Unix(), ""), ""},
		{"another fresh", tok("b", now.Unix(), ""), ""},
		{"iat a second before (truncated)", tok("c", now.Unix()-1, ""), ""},
		{"the same token again", tok("a", now.Unix(), ""), problemDupToken},
		{"a new token reusing a jti", tok("b", now.Unix(), "other"), problemDupJTI},
		{"no jti", tok("", now.Unix(), ""), problemNoJTI},
		{"an old iat (a cached token)", tok("d", now.Unix()-60, ""), problemStaleIAT},
		{"an iat in the future", tok("e", now.Unix()+60, ""), problemStaleIAT},
		{"not a JWS payload", "eyJ9.!!!.c2ln", problemClaims},
	}
	for _, s := range steps {
		if got := c.Check(s.token, now, later); got != s.want {
			t.Errorf("%s: Check = %q, want %q", s.name, got, s.want)
		}
	}
	for _, k := range []string{problemDupToken, problemDupJTI, problemNoJTI, problemStaleIAT, kindWrongAccepted} {
		if !isFailure(k) {
			t.Errorf("%q is not a failure", k)
		}
	}
	if isFailure("status 503") {
		t.Error("a 503 is an error, not a broken rule")
	}
}

func TestReuseCheckerLimit(t *testing.T) {
	now := time.Now()
	c := NewReuseChecker(2)
	same := fakeJWT(t, map[string]any{"jti": "x", "iat": now.Unix()})
	if got := c.Check(same, now, now); got != "" {
		t.Fatalf("first: %q", got)
	}
	if got := c.Check(same, now, now); got != problemDupToken {
		t.Fatalf("second (within the sample): %q, want %q", got, problemDupToken)
	}
	if got := c.Check(same, now, now); got != "" {
		t.Fatalf("past the sample: %q, want unchecked", got)
	}
	if c.Checked() != 2 {
		t.Errorf("Checked = %d, want 2", c.Checked())
	}
}

func TestParseTokenBody(t *testing.T) {
	good := `{"token":"a.b.c","access_token":"a.b.c","expires_in":300,"issued_at":"2026-11-30T12:00:00Z"}`
	if tok, err := parseTokenBody([]byte(good)); err != nil || tok != "a.b.c" {
		t.Errorf("good body: %q, %v", tok, err)
	}
	for _, bad := range []string{
		`not json`,
		`{"access_token":"a.b.c","expires_in":300}`,
		`{"token":"a.b.c","access_token":"a.b.d","expires_in":300}`,
		`{"token":"a.b.c","access_token":"a.b.c"}`,
		`{"token":"abc","access_token":"abc","expires_in":300}`,
	} {
		if _, err := parseTokenBody([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestParseProc(t *testing.T) {
	status := "Name:\tsrht-registry\nVmPeak:\t 1300000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   30720 kB\nThreads:\t8\n"
	m, err := parseStatus(status)
	if err != nil || m.HWM != 40<<20 || m.RSS != 30<<20 {
		t.Errorf("parseStatus = %+v, %v", m, err)
	}
	if _, err := parseStatus("Name:\tx\n"); err == nil {
		t.Error("a status without VmHWM parsed")
	}
	// The command may hold spaces and parentheses.
	stat := "4242 (srht (reg) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 123 456 789"
	cpu, err := parseStatCPU(stat)
	if err != nil || cpu != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s", cpu, err)
	}
}

func TestFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                       "-",
		850 * time.Nanosecond:   "850ns",
		31200 * time.Nanosecond: "31.2µs",
		4456447:                 "4.46ms",
		131071999:               "131ms",
		2013265919:              "2.01s",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%d) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1,000", 13913: "13,913", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
	if got := fmtMiB(40 << 20); got != "40.0 MiB" {
		t.Errorf("fmtMiB = %q", got)
	}
	if got := fmtRatio(0.8512); got != "0.85×" {
		t.Errorf("fmtRatio = %q", got)
	}
}

func TestTable(t *testing.T) {
	met, missed := true, false
	defs := map[string]caseDef{}
	for _, c := range allCases {
		defs[c.id] = c
	}
	base := func(tps float64, p99 time.Duration) *result {
		return &result{Name: "baseline", Kind: kindLoad, TokensPerSec: tps, Tokens: 1, CPUPerTokenNS: 90000,
			Latency: &LatencySummary{P50: int64(3 * time.Millisecond), P99: int64(p99)}}
	}
	results := []*result{
		{ID: "anon-es256", Name: "anonymous, 1 scope", Kind: kindLoad, KeyType: "ec", TokensPerSec: 9000,
			Latency: &LatencySummary{P50: int64(4 * time.Millisecond), P99: int64(12 * time.Millisecond)}, Tokens: 1, Errors: 3,
			CPUPerTokenNS: 120000, GeneratorCPUPerReqNS: 25000, PeakRSS: 16 << 20, Baseline: base(10000, 10*time.Millisecond)},
		{ID: "anon-ed25519", Name: "anonymous, 1 scope, Ed25519", Kind: kindLoad, KeyType: "ed25519", TokensPerSec: 9000,
			Latency: &LatencySummary{P99: 1}},
		{ID: "password", Name: "password | pipes", Kind: kindLoad, KeyType: "ec", TokensPerSec: 5000,
			Latency: &LatencySummary{P99: int64(20 * time.Millisecond)}, Baseline: base(10000, 20*time.Millisecond)},
		{ID: "anon-cold", Name: "cold", Kind: kindLoad, KeyType: "ec", TokensPerSec: 9000,
			Latency: &LatencySummary{P99: int64(13 * time.Millisecond)}, Baseline: base(10000, 10*time.Millisecond)},
		{ID: "startup", Name: "start-up to first token", Kind: kindStartup, StartupNS: int64(300 * time.Millisecond)},
		{ID: "sourcehut", Name: "sourcehut, cached", Kind: kindLoad, Error: "server did not start\nlong log"},
	}
	compare(results, defs)
	if r := results[0]; r.Ratio != 0.9 || r.P99Ratio != 1.2 || r.TargetMet == nil || *r.TargetMet != met {
		t.Errorf("anon-es256: ratio %v, p99 ratio %v, met %v", r.Ratio, r.P99Ratio, r.TargetMet)
	}
	if r := results[1]; r.Ratio != 0 || r.TargetMet != nil {
		t.Errorf("without its baseline: ratio %v, met %v", r.Ratio, r.TargetMet)
	}
	if r := results[2]; r.TargetMet == nil || *r.TargetMet != missed {
		t.Errorf("password at 0.5×: met %v", r.TargetMet)
	}
	if r := results[3]; r.TargetMet == nil || *r.TargetMet != missed {
		t.Errorf("cold at 0.9× but p99 1.3×: met %v", r.TargetMet)
	}
	if r := results[4]; r.TargetMet == nil || !*r.TargetMet {
		t.Errorf("start-up of 300ms: met %v", r.TargetMet)
	}
	var rows [][]string
	for _, r := range results {
		rows = append(rows, row(r))
	}
	table := formatTable(tableHeader, rows)
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(lines) != 2+len(results) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), 2+len(results), table)
	}
	width := len([]rune(lines[0]))
	for _, l := range lines {
		if len([]rune(l)) != width || !strings.HasPrefix(l, "|") || !strings.HasSuffix(l, "|") {
			t.Errorf("misaligned line %q (want %d runes)\n%s", l, width, table)
		}
	}
	for _, want := range []string{
		"| 10,000 ", "| 9,000 ", "| 0.90× ", "| 1.20× ", "| 4.00ms ", "| 12.0ms ", "| 10.0ms ",
		"| 120µs ", "| 90.0µs ", "| 25.0µs / - ", "| ≥ 0.85×, p99 ≤ 1.2×: met ",
		"| ≥ 0.85×: n/a ", "| ≥ 0.80×, p99 ≤ 1.2×: MISSED ", `password \| pipes`, "| ≤ 1s: met ",
		"| FAILED ", "| server did not start ", "| 16.0 MiB ",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "long log") {
		t.Errorf("a case's error must show its first line only:\n%s", table)
	}

	rep := &report{Run: 2, Results: results}
	for _, r := range results {
		if r.TargetMet != nil && !*r.TargetMet {
			rep.Missed = append(rep.Missed, r.Name)
		}
	}
	if v := verdict(rep); !strings.Contains(v, "run 2: 2 of 4 targets met; MISSED: password | pipes; cold") {
		t.Errorf("verdict %q", v)
	}
	var md strings.Builder
	printMarkdown(&md, []*report{rep, rep})
	for _, want := range []string{
		"| case | target | run 2 | run 2 |\n|---|---|---|---|\n",
		"| anonymous, 1 scope | ≥ 0.85×, p99 ≤ 1.2× | 0.90×, p99 1.20× (CPU 0.75×) | 0.90×, p99 1.20× (CPU 0.75×) |",
		"| password \\| pipes | ≥ 0.80×, p99 ≤ 1.2× | **0.50×**, p99 1.00× |",
		// The figure that missed, alone in bold.
		"| ≥ 0.65×, p99 ≤ 1.2× | 0.90×, **p99 1.30×** |",
		"| password \\| pipes | 5,000 / 10,000 | **0.50×** |",
		"#### Run 2",
		"| anonymous, 1 scope | 9,000 / 10,000 | 0.90× | 12.0ms / 10.0ms | 1.20× | 120µs / 90.0µs |",
		"| start-up to first token | median 300ms |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}

	// -render prints a -json file's runs again, ratios and targets
	// computed anew.
	results[0].CPURatio, results[0].TargetMet, rep.Missed = 0, nil, nil
	data, err := json.Marshal(struct {
		Runs []*report `json:"runs"`
	}{[]*report{rep}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "runs.json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var again strings.Builder
	if err := render(file, true, &again); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0.90×, p99 1.20× (CPU 0.75×)", "run 2: 2 of 4 targets met; MISSED: password | pipes; cold"} {
		if !strings.Contains(again.String(), want) {
			t.Errorf("rendered again, lacks %q:\n%s", want, again.String())
		}
	}
}

func TestSelectCases(t *testing.T) {
	def, err := selectCases("")
	if err != nil || len(def) == 0 || len(def) >= len(allCases) {
		t.Fatalf("default: %d of %d, %v", len(def), len(allCases), err)
	}
	for _, c := range def {
		if c.optIn {
			t.Errorf("default runs opt-in case %s", c.id)
		}
	}
	all, err := selectCases("all")
	if err != nil || len(all) != len(allCases) {
		t.Fatalf("all: %d, %v", len(all), err)
	}
	some, err := selectCases("startup, anon-es256")
	if err != nil || len(some) != 2 || some[0].id != "anon-es256" || some[1].id != "startup" {
		t.Errorf("subset in table order: %v, %v", some, err)
	}
	if _, err := selectCases("anon-es256,nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown case: %v", err)
	}
}

// TestIssue16Targets: the four cases of issue 16 carry its targets, and
// each is compared with a baseline.
func TestIssue16Targets(t *testing.T) {
	want := map[string]float64{"anon-es256": 0.85, "password": 0.80, "password-3scopes": 0.65, "anon-cold": 0.65}
	for _, c := range allCases {
		if min, ok := want[c.id]; ok {
			if c.target.minRatio != min || c.target.maxP99Ratio != 1.2 || c.noBaseline || c.optIn || c.kind != kindLoad {
				t.Errorf("%s: %+v", c.id, c)
			}
			delete(want, c.id)
		}
	}
	if len(want) > 0 {
		t.Errorf("missing cases %v", want)
	}
}

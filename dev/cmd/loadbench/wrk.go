package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The load generator is wrk (Debian's package): it costs the shared cores
// far less per request than a Go client in the same process tree, so the
// ratios show the server's own cost.

// ensureWrk returns the path of wrk, installing Debian's package with
// apt-get when it is missing.
func ensureWrk(ctx context.Context, log io.Writer) (string, error) {
	if p, err := exec.LookPath("wrk"); err == nil {
		return p, nil
	}
	apt, err := exec.LookPath("apt-get")
	if err != nil {
		return "", errors.New("wrk is not installed and there is no apt-get to install it: install wrk (Debian's package) and run again")
	}
	fmt.Fprintln(log, "wrk not found: apt-get install -y wrk")
	install := func() ([]byte, error) {
		cmd := exec.CommandContext(ctx, apt, "-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends", "wrk")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	if _, err := install(); err != nil {
		// The package lists may be missing or stale: update, try again.
		upd, uerr := exec.CommandContext(ctx, apt, "-o", "DPkg::Lock::Timeout=300", "update").CombinedOutput()
		if uerr != nil {
			return "", fmt.Errorf("wrk is missing and apt-get update failed (%w); install wrk and run again:\n%s", uerr, truncate(string(upd), 2000))
		}
		if out, err := install(); err != nil {
			return "", fmt.Errorf("wrk is missing and apt-get install -y wrk failed (%w); install it and run again:\n%s", err, truncate(string(out), 2000))
		}
	}
	p, err := exec.LookPath("wrk")
	if err != nil {
		return "", fmt.Errorf("apt-get installed wrk but it is not on PATH: %w", err)
	}
	return p, nil
}

// plan is what a case sends: its requests in turn (one, most often), or a
// new repository name on every request when cold.
type plan struct {
	reqs []request
	// cold: every request is anonymous and asks to pull a repository
	// named coldName(tag, thread, n), new to the server.
	cold bool
	// count401: the plan holds wrong passwords; wrk counts the 401s.
	count401 bool
	// think is how long each connection waits after an answer before
	// its next request (0: none).
	think time.Duration
}

// coldName is the repository of the n-th request of wrk thread thread in
// the run tagged tag; the benchmark policy's public ["library/*"] makes
// it pullable by anyone, so each is a granted, unmemoised decision.
func coldName(tag string, thread, n int) string {
	return fmt.Sprintf("library/cold-%s-%d-%d", tag, thread, n)
}

// coldPrefix is the start of a cold request's path; the Lua request()
// appends the rest of coldName and ":pull".
var coldPrefix = "/auth?service=" + url.QueryEscape(service) + "&scope=repository:library/cold-"

// goRequest is the i-th request of the plan for loadbench's own client
// (the checks before the load).
func (p *plan) goRequest(addr string, i int) request {
	if p.cold {
		return request{url: authURL(addr, "repository:"+coldName("check", 0, i)+":pull")}
	}
	r := p.reqs[i%len(p.reqs)]
	r.url = "http://" + addr + r.url
	return r
}

// luaString quotes s for Lua source.
func luaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// wrkReport is what the script's done() prints, after wrkMarker, as one
// JSON line. Times are microseconds.
type wrkReport struct {
	Requests     uint64 `json:"requests"`
	DurationUS   int64  `json:"duration_us"`
	Bytes        uint64 `json:"bytes"`
	Unauthorized uint64 `json:"unauthorized"`
	Errors       struct {
		Connect uint64 `json:"connect"`
		Read    uint64 `json:"read"`
		Write   uint64 `json:"write"`
		Status  uint64 `json:"status"` // answers other than 2xx/3xx
		Timeout uint64 `json:"timeout"`
	} `json:"errors"`
	Latency struct {
		Min  float64 `json:"min"`
		Mean float64 `json:"mean"`
		Max  float64 `json:"max"`
		P50  float64 `json:"p50"`
		P75  float64 `json:"p75"`
		P90  float64 `json:"p90"`
		P99  float64 `json:"p99"`
		P999 float64 `json:"p999"`
	} `json:"latency_us"`
	// Quantiles are the latency at each of latencyGrid's percentiles, in
	// its order, the maximum last: what a side's slices are merged from.
	Quantiles []int64 `json:"quantiles_us"`
}

// quantiles returns the report's grid of quantiles as durations.
func (r *wrkReport) quantiles() []time.Duration {
	q := make([]time.Duration, len(r.Quantiles))
	for i, v := range r.Quantiles {
		q[i] = time.Duration(v) * time.Microsecond
	}
	return q
}

const wrkMarker = "LOADBENCH "

// luaScript is the wrk script of a plan. Its done() prints a wrkReport.
// The run's tag comes as the script's first argument (wrk ... -- TAG), so
// the warm-up and each measured slice of a cold case ask for different
// names (warmupTag, sliceTag).
func luaScript(p *plan) (string, error) {
	var b strings.Builder
	b.WriteString("-- written by loadbench\nlocal reqs = {\n")
	for _, r := range p.reqs {
		u, err := url.Parse(r.url)
		if err != nil || u.Host != "" {
			return "", fmt.Errorf("request %q: want a path and query", r.url)
		}
		auth := "nil"
		if r.auth != "" {
			auth = luaString(r.auth)
		}
		fmt.Fprintf(&b, "  {path = %s, auth = %s},\n", luaString(r.url), auth)
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "local cold = %t\n", p.cold)
	fmt.Fprintf(&b, "local coldPrefix = %s\n", luaString(coldPrefix))
	b.WriteString(luaGrid())
	b.WriteString(luaBody)
	switch {
	case p.cold:
		b.WriteString(`
function request()
  n = n + 1
  return wrk.format("GET", coldPrefix .. tag .. "-" .. id .. "-" .. n .. ":pull")
end
`)
	case len(p.reqs) == 1:
		// No request(): wrk sends one prepared request, its cheapest way.
		b.WriteString(`
wrk.path = reqs[1].path
if reqs[1].auth then wrk.headers["Authorization"] = reqs[1].auth end
`)
	case len(p.reqs) > 1:
		b.WriteString(`
function request()
  n = n + 1
  return formatted[(n % #formatted) + 1]
end
`)
	default:
		return "", errors.New("a plan without requests")
	}
	if p.think > 0 {
		fmt.Fprintf(&b, "\nfunction delay() return %d end\n", p.think.Milliseconds())
	}
	if p.count401 {
		b.WriteString(`
function response(status, headers, body)
  if status == 401 then unauthorized = unauthorized + 1 end
end
`)
	}
	return b.String(), nil
}

const luaBody = `local threads = {}
local nextid = 0

function setup(thread)
  nextid = nextid + 1
  thread:set("id", nextid)
  table.insert(threads, thread)
end

function init(args)
  tag = args[1] or "run"
  n = 0
  unauthorized = 0
  formatted = {}
  for i, r in ipairs(reqs) do
    local h = {}
    if r.auth then h["Authorization"] = r.auth end
    formatted[i] = wrk.format("GET", r.path, h)
  end
end

-- Each latency:percentile(p) walks wrk's histogram from the minimum to
-- the value: about a thousand of them cost well under a second. (Walking
-- latency(i) over every distinct value would be quadratic.) wrk's
-- percentile(100) finds nothing: the maximum is latency.max.
function done(summary, latency, requests)
  local u = 0
  for _, t in ipairs(threads) do u = u + (t:get("unauthorized") or 0) end
  local e = summary.errors
  local q = {}
  for i, p in ipairs(grid) do q[i] = string.format("%.0f", latency:percentile(p)) end
  q[#q + 1] = string.format("%.0f", latency.max)
  io.write(string.format('LOADBENCH {"requests":%d,"duration_us":%d,"bytes":%d,"unauthorized":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%.0f,"mean":%.1f,"max":%.0f,"p50":%.0f,"p75":%.0f,"p90":%.0f,"p99":%.0f,"p999":%.0f},' ..
    '"quantiles_us":[%s]}\n',
    summary.requests, summary.duration, summary.bytes, u,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(75),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    table.concat(q, ",")))
end
`

// luaGrid is the script's table of latencyGrid's percentiles, but the
// last (100: done() prints latency.max for it).
func luaGrid() string {
	ps, _ := latencyGrid()
	var b strings.Builder
	b.WriteString("local grid = {")
	for i, p := range ps[:len(ps)-1] {
		if i > 0 {
			b.WriteByte(',')
		}
		if i%20 == 0 {
			b.WriteString("\n  ")
		}
		b.WriteString(strconv.FormatFloat(p, 'g', -1, 64))
	}
	b.WriteString("\n}\n")
	return b.String()
}

// parseWrkOutput finds the script's report in wrk's standard output.
func parseWrkOutput(out []byte) (*wrkReport, error) {
	for line := range strings.Lines(string(out)) {
		rest, ok := strings.CutPrefix(line, wrkMarker)
		if !ok {
			continue
		}
		var r wrkReport
		dec := json.NewDecoder(strings.NewReader(rest))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("wrk report %q: %w", truncate(strings.TrimSpace(rest), 200), err)
		}
		if r.DurationUS <= 0 {
			return nil, fmt.Errorf("wrk report without a duration: %q", truncate(strings.TrimSpace(rest), 200))
		}
		if err := r.checkQuantiles(); err != nil {
			return nil, fmt.Errorf("wrk report %q: %w", truncate(strings.TrimSpace(rest), 200), err)
		}
		return &r, nil
	}
	return nil, fmt.Errorf("no %q line in wrk's output:\n%s", strings.TrimSpace(wrkMarker), truncate(string(out), 2000))
}

// checkQuantiles checks the report's grid of quantiles: one per
// percentile of latencyGrid, none negative, none lower than the one
// before, the last the maximum (all 0 in a run without requests).
func (r *wrkReport) checkQuantiles() error {
	ps, _ := latencyGrid()
	q := r.Quantiles
	if len(q) != len(ps) {
		return fmt.Errorf("%d latency quantiles, want %d", len(q), len(ps))
	}
	if r.Requests == 0 {
		return nil
	}
	for i, v := range q {
		switch {
		case v < 0:
			return fmt.Errorf("latency quantile p%g is negative (%d µs)", ps[i], v)
		case i > 0 && v < q[i-1]:
			return fmt.Errorf("latency quantile p%g (%d µs) is lower than p%g (%d µs)", ps[i], v, ps[i-1], q[i-1])
		}
	}
	if float64(q[len(q)-1]) != r.Latency.Max {
		return fmt.Errorf("the last latency quantile (%d µs) is not the maximum (%.0f µs)", q[len(q)-1], r.Latency.Max)
	}
	return nil
}

// wrkRun is one wrk run against a process.
type wrkRun struct {
	wrk      string // the binary
	script   string // the Lua file
	addr     string
	threads  int
	conns    int
	duration time.Duration
	tag      string
}

// wrkArgs is wrk's command line; wrk takes whole seconds.
func (w wrkRun) args() []string {
	secs := max(1, int((w.duration+time.Second-1)/time.Second))
	return []string{
		"-t", strconv.Itoa(w.threads), "-c", strconv.Itoa(w.conns),
		"-d", strconv.Itoa(secs) + "s", "--timeout", "30s",
		"-s", w.script, "http://" + w.addr + "/", "--", w.tag,
	}
}

// wrkResult is a wrk run's report with the CPU wrk itself used.
type wrkResult struct {
	*wrkReport
	CPU time.Duration // wrk's user + system time
}

// run runs wrk to the end and returns its report.
func (w wrkRun) run(ctx context.Context) (*wrkResult, error) {
	cmd := exec.CommandContext(ctx, w.wrk, w.args()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("wrk %s: %w\n%s%s", strings.Join(w.args(), " "), err, stderr.Bytes(), truncate(stdout.String(), 2000))
	}
	rep, err := parseWrkOutput(stdout.Bytes())
	if err != nil {
		return nil, err
	}
	st := cmd.ProcessState
	return &wrkResult{wrkReport: rep, CPU: st.UserTime() + st.SystemTime()}, nil
}

// writeScript writes the plan's script into dir.
func writeScript(dir, name string, p *plan) (string, error) {
	src, err := luaScript(p)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name+".lua")
	return path, os.WriteFile(path, []byte(src), 0o600)
}

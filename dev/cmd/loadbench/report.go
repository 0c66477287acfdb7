package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// result is one case's figures; it is also what -json writes.
type result struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	KeyType   string `json:"key_type"`
	Target    string `json:"target,omitempty"`
	TargetMet *bool  `json:"target_met,omitempty"`
	// RatioMissed and P99Missed say which of a load case's figures
	// missed its target.
	RatioMissed bool `json:"ratio_missed,omitempty"`
	P99Missed   bool `json:"p99_missed,omitempty"`
	// Error is set when the case could not run (to the end).
	Error string `json:"error,omitempty"`
	// Failures are broken rules (a reused token, a wrong password
	// accepted, a server that died): they fail the run.
	Failures []string `json:"failures,omitempty"`

	TokensPerSec float64           `json:"tokens_per_sec,omitempty"`
	Requests     uint64            `json:"requests,omitempty"` // answers wrk counted in the window
	Tokens       uint64            `json:"tokens"`
	Expected401s uint64            `json:"expected_401s"`
	Errors       uint64            `json:"errors"`
	ErrorKinds   map[string]uint64 `json:"error_kinds,omitempty"`
	ErrorExample string            `json:"error_example,omitempty"`
	Latency      *LatencySummary   `json:"latency,omitempty"`
	Latency401   *LatencySummary   `json:"latency_401,omitempty"`
	Ratio        float64           `json:"ratio_to_baseline,omitempty"`
	P99Ratio     float64           `json:"p99_ratio_to_baseline,omitempty"`
	// CPURatio is the baseline's CPU per token ÷ the server's: the
	// throughput ratio the server would reach if both were CPU-bound on
	// the same cores, less disturbed by neighbours than tokens/s.
	CPURatio      float64 `json:"cpu_ratio_to_baseline,omitempty"`
	WindowNS      int64   `json:"window_ns,omitempty"` // the measured slices' summed durations
	ServerCPUNS   int64   `json:"server_cpu_ns,omitempty"`
	CPUPerTokenNS int64   `json:"server_cpu_per_token_ns,omitempty"`
	ReuseChecked  int     `json:"reuse_checked,omitempty"`
	CheckErrors   uint64  `json:"check_errors,omitempty"`
	// Slices is the number of measured wrk runs (-slices), and
	// SliceTokensPerSec each one's tokens/s, in the order they ran.
	Slices            int       `json:"slices,omitempty"`
	SliceTokensPerSec []float64 `json:"slice_tokens_per_sec,omitempty"`
	// The load generator's (wrk's) own CPU over the measured slices.
	GeneratorCPUNS       int64 `json:"wrk_cpu_ns,omitempty"`
	GeneratorCPUPerReqNS int64 `json:"wrk_cpu_per_request_ns,omitempty"`
	// Baseline is the bare signer under the same load, in the same run.
	Baseline *result `json:"baseline,omitempty"`

	PeakRSS uint64 `json:"peak_rss_bytes,omitempty"` // VmHWM after the case
	RSS     uint64 `json:"rss_bytes,omitempty"`      // VmRSS after the case

	StartupNS  int64   `json:"startup_ns,omitempty"`  // exec to first token of this case's process
	StartupsNS []int64 `json:"startups_ns,omitempty"` // every start of the startup case
	MetaCalls  *int64  `json:"meta_calls,omitempty"`

	Logins           uint64  `json:"logins,omitempty"`
	LoginsPerSec     float64 `json:"logins_per_sec,omitempty"`
	RecheckMetaCalls *int64  `json:"recheck_meta_calls,omitempty"`

	ServerLogLines int      `json:"server_log_lines,omitempty"`
	ServerLog      string   `json:"server_log,omitempty"`
	Notes          []string `json:"notes,omitempty"`
}

func (r *result) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

func (r *result) latencyP99() int64 {
	if r == nil || r.Latency == nil {
		return 0
	}
	return r.Latency.P99
}

// fill copies the figures of loadbench's own client (the memory case).
func (r *result) fill(st *loadStats) {
	r.Tokens, r.Expected401s, r.Errors = st.Tokens, st.Unauth, st.Errors
	r.ErrorKinds, r.ErrorExample = st.ErrorKinds, st.ErrorExample
	r.ReuseChecked = st.Checked
	if st.OK.Count() > 0 {
		s := st.OK.Summary()
		r.Latency = &s
	}
	if st.Refused.Count() > 0 {
		s := st.Refused.Summary()
		r.Latency401 = &s
	}
	if st.ServerCPU >= 0 {
		r.ServerCPUNS = int64(st.ServerCPU)
		if st.Tokens > 0 {
			r.CPUPerTokenNS = int64(st.ServerCPU) / int64(st.Tokens)
		}
	}
	for kind, n := range st.ErrorKinds {
		if isFailure(kind) {
			r.fail("%s: %d times", kind, n)
		}
	}
	sort.Strings(r.Failures)
}

// compare sets the ratios to the baselines and whether targets are met.
func compare(results []*result, defs map[string]caseDef) {
	for _, r := range results {
		b := r.Baseline
		if r.Kind == kindLoad && b != nil && b.Error == "" && b.TokensPerSec > 0 && b.latencyP99() > 0 && r.Latency != nil {
			r.Ratio = r.TokensPerSec / b.TokensPerSec
			r.P99Ratio = float64(r.Latency.P99) / float64(b.Latency.P99)
			if r.CPUPerTokenNS > 0 && b.CPUPerTokenNS > 0 {
				r.CPURatio = float64(b.CPUPerTokenNS) / float64(r.CPUPerTokenNS)
			}
		}
		t := defs[r.ID].target
		r.Target = t.String()
		if r.Target == "" || r.Error != "" {
			continue
		}
		var met bool
		switch r.Kind {
		case kindLoad:
			if r.Ratio == 0 {
				continue // no baseline in this run
			}
			r.RatioMissed = r.Ratio < t.minRatio
			r.P99Missed = t.maxP99Ratio > 0 && r.P99Ratio > t.maxP99Ratio
			met = !r.RatioMissed && !r.P99Missed
		case kindMemory:
			if r.PeakRSS == 0 {
				continue
			}
			met = r.PeakRSS <= t.maxRSS
		case kindStartup:
			if r.StartupNS == 0 {
				continue
			}
			met = time.Duration(r.StartupNS) <= t.maxStartup
		default:
			continue
		}
		r.TargetMet = &met
	}
}

// machine describes where the run happened.
type machine struct {
	NumCPU    int    `json:"nproc"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel,omitempty"`
	LoadAvg   string `json:"loadavg_at_start,omitempty"`
	GoVersion string `json:"go_version"`
	Checkout  string `json:"checkout,omitempty"`
}

func describeMachine(ctx context.Context, repo string) machine {
	m := machine{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if repo != "" {
		if out, err := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--short", "HEAD").Output(); err == nil {
			m.Checkout = strings.TrimSpace(string(out))
			if st, err := exec.CommandContext(ctx, "git", "-C", repo, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
				m.Checkout += " + uncommitted changes"
			}
		}
	}
	return m
}

// report is one run; -json writes every run's.
type report struct {
	Run      int       `json:"run"`
	Date     string    `json:"date"`
	Machine  machine   `json:"machine"`
	Flags    string    `json:"flags"`
	Results  []*result `json:"results"`
	Failures []string  `json:"failures,omitempty"`
	// Missed names the cases whose target was missed.
	Missed []string `json:"missed,omitempty"`
	// The load generator's (wrk's) own CPU per request over the load
	// cases, and its share of the machine: it shares the cores.
	GeneratorCPUPerRequestNS int64   `json:"wrk_cpu_per_request_ns,omitempty"`
	GeneratorCPUShare        float64 `json:"wrk_cpu_share,omitempty"`
}

// generatorCost sets wrk's CPU figures from the load cases.
func (rep *report) generatorCost(ncpu int) {
	var cpu, window int64
	var reqs uint64
	for _, r := range rep.Results {
		for _, s := range []*result{r, r.Baseline} {
			if s != nil && s.Kind == kindLoad && s.Error == "" && s.GeneratorCPUNS > 0 {
				cpu += s.GeneratorCPUNS
				window += s.WindowNS
				reqs += s.Requests
			}
		}
	}
	if reqs > 0 && window > 0 {
		rep.GeneratorCPUPerRequestNS = cpu / int64(reqs)
		rep.GeneratorCPUShare = float64(cpu) / float64(window) / float64(ncpu)
	}
}

// Formatting.

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d)
	case d < time.Millisecond:
		return sig3(float64(d)/1e3) + "µs"
	case d < time.Second:
		return sig3(float64(d)/1e6) + "ms"
	default:
		return sig3(float64(d)/1e9) + "s"
	}
}

// sig3 prints v (≥ 1) with three significant digits.
func sig3(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func fmtMiB(b uint64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func fmtRatio(r float64) string {
	if r == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", r)
}

// thousands prints n with thin separators: 12,345.
func thousands(n uint64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

var tableHeader = []string{"case", "tokens/s", "baseline", "ratio", "p50", "p99", "base p99", "p99 ratio",
	"CPU/token", "base CPU/token", "CPU ratio", "wrk CPU/req", "errors", "401s", "peak RSS", "target", "notes"}

// Columns of the table.
const (
	colCase = iota
	colTPS
	colBaseTPS
	colRatio
	colP50
	colP99
	colBaseP99
	colP99Ratio
	colCPU
	colBaseCPU
	colCPURatio
	colWrkCPU
	colErrors
	col401s
	colRSS
	colTarget
	colNotes
)

// targetCell is the target and whether it was met.
func targetCell(r *result) string {
	if r.Target == "" {
		return "-"
	}
	switch {
	case r.TargetMet == nil:
		return r.Target + ": n/a"
	case *r.TargetMet:
		return r.Target + ": met"
	default:
		return r.Target + ": MISSED"
	}
}

// row is a result's line of the table.
func row(r *result) []string {
	cells := make([]string, len(tableHeader))
	for i := range cells {
		cells[i] = "-"
	}
	cells[colCase] = r.Name
	if r.Error != "" {
		cells[colTPS] = "FAILED"
		cells[colNotes] = firstLine(r.Error)
		return cells
	}
	notes := slices.Clone(r.Notes)
	switch r.Kind {
	case kindLoad:
		cells[colTPS] = thousands(uint64(r.TokensPerSec + 0.5))
		cells[colRatio], cells[colP99Ratio], cells[colCPURatio] = fmtRatio(r.Ratio), fmtRatio(r.P99Ratio), fmtRatio(r.CPURatio)
		if r.Latency != nil {
			cells[colP50], cells[colP99] = fmtDur(time.Duration(r.Latency.P50)), fmtDur(time.Duration(r.Latency.P99))
		}
		cells[colCPU] = fmtDur(time.Duration(r.CPUPerTokenNS))
		cells[colWrkCPU] = fmtDur(time.Duration(r.GeneratorCPUPerReqNS))
		cells[colErrors] = thousands(r.Errors)
		cells[col401s] = thousands(r.Expected401s)
		if b := r.Baseline; b != nil {
			if b.Error != "" {
				cells[colBaseTPS] = "FAILED"
				notes = append(notes, "baseline: "+firstLine(b.Error))
			} else {
				cells[colBaseTPS] = thousands(uint64(b.TokensPerSec + 0.5))
				cells[colBaseP99] = fmtDur(time.Duration(b.latencyP99()))
				cells[colBaseCPU] = fmtDur(time.Duration(b.CPUPerTokenNS))
				cells[colWrkCPU] += " / " + fmtDur(time.Duration(b.GeneratorCPUPerReqNS))
				if b.Errors > 0 {
					cells[colErrors] += fmt.Sprintf(" (baseline %s)", thousands(b.Errors))
				}
			}
			for _, f := range b.Failures {
				notes = append(notes, "baseline FAILED: "+f)
			}
		}
	case kindMemory:
		cells[colErrors] = thousands(r.Errors)
	}
	cells[colRSS] = fmtMiB(r.PeakRSS)
	cells[colTarget] = targetCell(r)
	if len(r.Failures) > 0 {
		notes = append([]string{"FAILED: " + strings.Join(r.Failures, "; ")}, notes...)
	}
	if len(notes) > 0 {
		cells[colNotes] = strings.Join(notes, "; ")
	}
	return cells
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// formatTable renders a Markdown table with padded columns; "|" in cells
// is escaped.
func formatTable(header []string, rows [][]string) string {
	width := make([]int, len(header))
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	all := append([][]string{header}, rows...)
	for _, r := range all {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(esc(c)))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i, c := range cells {
			c = esc(c)
			b.WriteString(" ")
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)))
			b.WriteString(" |")
		}
		b.WriteString("\n")
	}
	line(header)
	b.WriteString("|")
	for i := range header {
		b.WriteString(strings.Repeat("-", width[i]+2))
		b.WriteString("|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

// printReport writes the whole report: header, table, notes.
func printReport(w io.Writer, rep *report) {
	m := rep.Machine
	fmt.Fprintf(w, "srht-registry load benchmark, %s\n", rep.Date)
	fmt.Fprintf(w, "machine: %d CPUs, %s", m.NumCPU, m.CPUModel)
	if m.Kernel != "" {
		fmt.Fprintf(w, ", %s", m.Kernel)
	}
	if m.LoadAvg != "" {
		fmt.Fprintf(w, ", load average %s at start", m.LoadAvg)
	}
	fmt.Fprintf(w, "\ngo: %s\n", m.GoVersion)
	if m.Checkout != "" {
		fmt.Fprintf(w, "checkout: %s\n", m.Checkout)
	}
	fmt.Fprintf(w, "flags: %s\n\n", rep.Flags)
	var rows [][]string
	for _, r := range rep.Results {
		rows = append(rows, row(r))
	}
	fmt.Fprint(w, formatTable(tableHeader, rows))
	fmt.Fprint(w, tableNotes)
	if rep.GeneratorCPUPerRequestNS > 0 {
		fmt.Fprintf(w, "- wrk runs on the same cores: it used %s of CPU per request, %.0f %% of the machine during the\n  measured slices.\n",
			fmtDur(time.Duration(rep.GeneratorCPUPerRequestNS)), 100*rep.GeneratorCPUShare)
	}
	var extra []string
	for _, r := range rep.Results {
		if len(r.ErrorKinds) > 0 {
			var kinds []string
			for k, n := range r.ErrorKinds {
				kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
			}
			sort.Strings(kinds)
			s := fmt.Sprintf("%s: errors: %s", r.Name, strings.Join(kinds, ", "))
			if r.ErrorExample != "" {
				s += fmt.Sprintf(" (e.g. %q)", truncate(r.ErrorExample, 160))
			}
			extra = append(extra, s)
		}
		if r.ServerLogLines > 0 {
			extra = append(extra, fmt.Sprintf("%s: the server logged %d lines at warn or above, first: %s", r.Name, r.ServerLogLines, truncate(firstLine(r.ServerLog), 200)))
		}
	}
	if len(extra) > 0 {
		fmt.Fprintln(w)
		for _, s := range extra {
			fmt.Fprintln(w, "- "+s)
		}
	}
	if len(rep.Failures) > 0 {
		fmt.Fprintln(w, "\nFAILED:")
		for _, f := range rep.Failures {
			fmt.Fprintln(w, "- "+f)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, verdict(rep))
}

const tableNotes = `
- tokens/s: 200s counted by wrk in the measured slices (after the warm-up) ÷ their summed length;
  baseline: the bare signer (net/http + jwx, the same claim set: the scopes asked for, granted) under
  the same load, in its own process, up beside the server's for the whole case. Each side's -d is
  measured in -slices wrk runs, the two taking turns in ABBA order (A B B A …; A alternates from case
  to case), so that drift on the machine hits both alike.
- ratio: tokens/s ÷ the baseline's; p99 ratio: p99 ÷ the baseline's p99 (wrk's latency, all answers;
  p50 and p99 of each side's slices merged into one distribution, from a grid of quantiles per slice).
- CPU/token: user+system CPU of the serving process over its own slices (/proc/PID/stat) ÷ tokens;
  base CPU/token the same for the baseline; CPU ratio: base CPU/token ÷ CPU/token. wrk CPU/req: wrk's
  own CPU ÷ requests (server / baseline slices).
- errors: answers other than a 200 (or the expected 401) and socket errors; 401s: wrong passwords
  refused, as expected. Before the load, loadbench's own client checked the tokens of each process's
  first -reuse-sample answers (no token or jti twice, a fresh iat).
- peak RSS: VmHWM of the server process that served the case (restarted for every case).
`

// verdict is a run's one-line summary of its targets.
func verdict(rep *report) string {
	var n int
	for _, r := range rep.Results {
		if r.TargetMet != nil {
			n++
		}
	}
	prefix := fmt.Sprintf("run %d: ", rep.Run)
	switch {
	case len(rep.Failures) > 0:
		return prefix + fmt.Sprintf("FAILED (%d problems); %d of %d targets met", len(rep.Failures), n-len(rep.Missed), n)
	case len(rep.Missed) > 0:
		return prefix + fmt.Sprintf("%d of %d targets met; MISSED: %s", n-len(rep.Missed), n, strings.Join(rep.Missed, "; "))
	default:
		return prefix + fmt.Sprintf("every target met (%d)", n)
	}
}

// printVerdicts prints each run's verdict.
func printVerdicts(w io.Writer, reps []*report) {
	for _, rep := range reps {
		fmt.Fprintln(w, verdict(rep))
	}
}

package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// printMarkdown writes the runs as docs/performance.md shows them: a
// summary of the ratios over the runs, then each run's own table.
func printMarkdown(w io.Writer, reps []*report) {
	if len(reps) == 0 {
		return
	}
	m := reps[0].Machine
	fmt.Fprintf(w, "%d run(s) in a row from %s: %d CPUs (%s), %s", len(reps), reps[0].Date, m.NumCPU, m.CPUModel, m.GoVersion)
	if m.Checkout != "" {
		fmt.Fprintf(w, ", checkout `%s`", m.Checkout)
	}
	if m.LoadAvg != "" {
		fmt.Fprintf(w, ", load average %s at the start", m.LoadAvg)
	}
	fmt.Fprintf(w, "; `%s`.\n\n", reps[0].Flags)

	header := []string{"case", "target"}
	for _, rep := range reps {
		header = append(header, fmt.Sprintf("run %d", rep.Run))
	}
	var rows [][]string
	for i, r := range reps[0].Results {
		cells := []string{r.Name, orDash(r.Target)}
		for _, rep := range reps {
			if i < len(rep.Results) {
				cells = append(cells, summaryCell(rep.Results[i]))
			} else {
				cells = append(cells, "-")
			}
		}
		rows = append(rows, cells)
	}
	fmt.Fprint(w, markdownTable(header, rows))
	fmt.Fprintln(w)
	for _, rep := range reps {
		fmt.Fprintf(w, "- %s", verdict(rep))
		if rep.GeneratorCPUPerRequestNS > 0 {
			fmt.Fprintf(w, "; wrk used %s of CPU per request (%.0f %% of the machine)",
				fmtDur(time.Duration(rep.GeneratorCPUPerRequestNS)), 100*rep.GeneratorCPUShare)
		}
		fmt.Fprintln(w)
	}
	for _, rep := range reps {
		fmt.Fprintf(w, "\n#### Run %d (%s)\n\n", rep.Run, rep.Date)
		fmt.Fprint(w, markdownTable(runHeader, runRows(rep)))
		if len(rep.Failures) > 0 {
			fmt.Fprintln(w)
			for _, f := range rep.Failures {
				fmt.Fprintln(w, "- FAILED: "+f)
			}
		}
	}
}

var runHeader = []string{"case", "tokens/s: ours / baseline", "ratio", "p99: ours / baseline", "p99 ratio",
	"CPU per token: server / baseline", "wrk CPU per request", "errors", "target"}

// runRows is one run's table for the page.
func runRows(rep *report) [][]string {
	var rows [][]string
	for _, r := range rep.Results {
		cells := []string{r.Name, "-", "-", "-", "-", "-", "-", "-", targetCell(r)}
		switch {
		case r.Error != "":
			cells[1] = "FAILED: " + firstLine(r.Error)
		case r.Kind == kindLoad:
			b := r.Baseline
			if b == nil || b.Error != "" {
				b = &result{}
			}
			cells[1] = thousands(uint64(r.TokensPerSec+0.5)) + " / " + orDash(thousandsOrEmpty(b.TokensPerSec))
			cells[2] = bold(fmtRatio(r.Ratio), r.RatioMissed)
			cells[3] = fmtDur(time.Duration(r.latencyP99())) + " / " + fmtDur(time.Duration(b.latencyP99()))
			cells[4] = bold(fmtRatio(r.P99Ratio), r.P99Missed)
			cells[5] = fmtDur(time.Duration(r.CPUPerTokenNS)) + " / " + fmtDur(time.Duration(b.CPUPerTokenNS))
			cells[6] = fmtDur(time.Duration(r.GeneratorCPUPerReqNS)) + " / " + fmtDur(time.Duration(b.GeneratorCPUPerReqNS))
			cells[7] = thousands(r.Errors + b.Errors)
			if r.Expected401s > 0 {
				cells[7] += fmt.Sprintf(" (and %s expected 401s)", thousands(r.Expected401s))
			}
		case r.Kind == kindMemory:
			cells[1] = "peak RSS " + fmtMiB(r.PeakRSS)
		case r.Kind == kindStartup:
			cells[1] = "median " + fmtDur(time.Duration(r.StartupNS))
		}
		rows = append(rows, cells)
	}
	return rows
}

// summaryCell is a case's figure in the summary over runs.
func summaryCell(r *result) string {
	switch {
	case r.Error != "":
		return "FAILED"
	case r.Kind == kindLoad && r.Ratio > 0:
		s := bold(fmtRatio(r.Ratio), r.RatioMissed) + ", " + bold("p99 "+fmtRatio(r.P99Ratio), r.P99Missed)
		if r.CPURatio > 0 {
			s += " (CPU " + fmtRatio(r.CPURatio) + ")"
		}
		return s
	case r.Kind == kindLoad:
		return thousands(uint64(r.TokensPerSec+0.5)) + "/s"
	case r.Kind == kindMemory:
		return emphasise(fmtMiB(r.PeakRSS), r)
	case r.Kind == kindStartup:
		return emphasise(fmtDur(time.Duration(r.StartupNS)), r)
	}
	return "-"
}

// emphasise puts a missed target's figure in bold.
func emphasise(s string, r *result) string {
	return bold(s, r.TargetMet != nil && !*r.TargetMet)
}

// bold puts s in bold when missed: a load case's throughput ratio and p99
// ratio each on its own, so that the figure that missed stands out.
func bold(s string, missed bool) string {
	if missed {
		return "**" + s + "**"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func thousandsOrEmpty(v float64) string {
	if v <= 0 {
		return ""
	}
	return thousands(uint64(v + 0.5))
}

// markdownTable is a compact Markdown table ("|" in cells escaped).
func markdownTable(header []string, rows [][]string) string {
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			b.WriteString(" " + strings.ReplaceAll(c, "|", `\|`) + " |")
		}
		b.WriteString("\n")
	}
	line(header)
	b.WriteString(strings.Repeat("|---", len(header)) + "|\n")
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"git.sr.ht/~zozs/srht-registry/dev/internal/checkout"
	"git.sr.ht/~zozs/srht-registry/dev/internal/childproc"
	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "baseline" {
		os.Exit(runBaseline(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	conns       int
	threads     int
	runs        int
	markdown    bool
	duration    time.Duration
	slices      int
	warmup      time.Duration
	think       time.Duration
	cases       string
	jsonPath    string
	reuseSample int
	shTokens    int
	starts      int
	memTimeout  time.Duration
	bin         string
	repo        string
	render      string
}

func (o options) String() string {
	cases := o.cases
	if cases == "" {
		cases = "default"
	}
	s := fmt.Sprintf("-c %d -t %d -d %s -slices %d -warmup %s -runs %d -cases %s -reuse-sample %d -sourcehut-tokens %d -starts %d",
		o.conns, o.threads, o.duration, o.slices, o.warmup, o.runs, cases, o.reuseSample, o.shTokens, o.starts)
	if o.think > 0 {
		s += " -think " + o.think.String()
	}
	if o.bin != "" {
		s += " -bin " + o.bin
	}
	return s
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run -C dev ./cmd/loadbench [flags]\n\ncases: %s\n\nflags:\n", caseIDs())
		fs.PrintDefaults()
	}
	fs.IntVar(&o.conns, "c", 32, "concurrent connections (wrk -c)")
	fs.IntVar(&o.threads, "t", 2, "wrk threads (wrk -t)")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "measured `duration` of each load case, server and baseline each (whole seconds)")
	fs.IntVar(&o.slices, "slices", defaultSlices, "split each side's -d into this many wrk runs of whole seconds, server and baseline taking turns (ABBA); by default one per second when -d is shorter than 5s")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up of each process before its first measured slice, not counted (whole seconds)")
	fs.DurationVar(&o.think, "think", 0, "each connection waits this long after an answer before its next request (wrk's delay(), whole milliseconds): a load paced below both sides' capacity, to compare latency at the same rate rather than at saturation; 0 sends as fast as they answer")
	fs.IntVar(&o.runs, "runs", 1, "run every case this many `times` in a row, a table per run")
	fs.BoolVar(&o.markdown, "markdown", false, "print the tables as the Markdown of docs/performance.md")
	fs.StringVar(&o.cases, "cases", "", "comma-separated case `ids` to run (default all but sourcehut-100k; all for every case)")
	fs.StringVar(&o.jsonPath, "json", "", "also write the raw figures as JSON to `FILE`")
	fs.IntVar(&o.reuseSample, "reuse-sample", 500, "requests per case and process sent and checked by loadbench's own client before the load")
	fs.IntVar(&o.shTokens, "sourcehut-tokens", 100000, "distinct Sourcehut tokens of the sourcehut-100k case")
	fs.IntVar(&o.starts, "starts", 5, "server starts measured by the startup case")
	fs.DurationVar(&o.memTimeout, "mem-timeout", 10*time.Minute, "bound on the logins of the sourcehut-100k case")
	fs.StringVar(&o.bin, "bin", "", "use this srht-registry `binary` instead of building the checkout")
	fs.StringVar(&o.render, "render", "", "measure nothing: print the runs of a -json `FILE` again (with -markdown as Markdown)")
	fs.StringVar(&o.repo, "repo", "", "the srht-registry checkout (default: found with go list -m from the working directory)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadbench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	slicesSet := false
	fs.Visit(func(f *flag.Flag) { slicesSet = slicesSet || f.Name == "slices" })
	if !slicesSet {
		o.slices = defaultSlicesFor(o.duration)
	}
	if err := o.check(); err != nil {
		fmt.Fprintln(stderr, "loadbench:", err)
		return 2
	}
	if o.render != "" {
		if err := render(o.render, o.markdown, stdout); err != nil {
			fmt.Fprintln(stderr, "loadbench:", err)
			return 1
		}
		return 0
	}
	defs, err := selectCases(o.cases)
	if err != nil {
		fmt.Fprintln(stderr, "loadbench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = bench(ctx, o, defs, stdout, stderr)
	childproc.KillAll()
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "loadbench: interrupted")
		return 130
	case errors.Is(err, errMissed):
		fmt.Fprintln(stderr, "loadbench:", err)
		return 3
	case err != nil:
		fmt.Fprintln(stderr, "loadbench:", err)
		return 1
	}
	return 0
}

// check validates the flags.
func (o options) check() error {
	whole := func(d time.Duration) bool { return d%time.Second == 0 }
	switch {
	case o.conns < 1 || o.threads < 1 || o.runs < 1 || o.starts < 1:
		return errors.New("-c, -t, -runs and -starts must be positive")
	case o.threads > o.conns:
		return errors.New("-t must not exceed -c (wrk gives each thread at least one connection)")
	case o.duration < time.Second || !whole(o.duration) || o.warmup < 0 || !whole(o.warmup):
		return errors.New("-d must be at least 1s and -warmup not negative, both in whole seconds (wrk's unit)")
	case o.slices < 1:
		return errors.New("-slices must be positive")
	case o.duration < time.Duration(o.slices)*time.Second:
		return fmt.Errorf("-d %s in -slices %d would make slices shorter than 1s (wrk runs whole seconds): use at most -slices %d, or a longer -d",
			o.duration, o.slices, o.duration/time.Second)
	case o.think < 0 || o.think%time.Millisecond != 0:
		return errors.New("-think must not be negative, in whole milliseconds (wrk's unit)")
	case o.reuseSample < 0:
		return errors.New("-reuse-sample must not be negative")
	case o.shTokens < 1 || o.shTokens > 10_000_000:
		return errors.New("-sourcehut-tokens must be between 1 and 10,000,000")
	}
	return nil
}

// defaultSlices is -slices when not given: 5 wrk runs per side and case,
// or one per second of a -d shorter than that (defaultSlicesFor).
const defaultSlices = 5

func defaultSlicesFor(d time.Duration) int {
	return max(1, min(defaultSlices, int(d/time.Second)))
}

// errFailed is returned when a case failed; the report says why.
var errFailed = errors.New("some cases failed (see the report)")

// errMissed is returned when every case ran but a target was missed.
var errMissed = errors.New("some targets were missed (see the report)")

func bench(ctx context.Context, o options, defs []caseDef, stdout, stderr io.Writer) error {
	repo := o.repo
	if repo == "" && o.bin == "" {
		var err error
		if repo, err = checkout.Root(ctx); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return err
	}
	// Deferred in this order, children die before their files go.
	defer os.RemoveAll(tmp)
	defer childproc.KillAll()

	wrk := ""
	if slices.ContainsFunc(defs, func(c caseDef) bool { return c.kind == kindLoad }) {
		if wrk, err = ensureWrk(ctx, stderr); err != nil {
			return err
		}
	}
	e, err := prepare(ctx, tmp, repo, o.bin, stderr)
	if err != nil {
		return err
	}
	defer e.close()
	e.wrk = wrk
	b := &bencher{opts: o, env: e, log: stderr}
	var reps []*report
	for run := 1; run <= o.runs && ctx.Err() == nil; run++ {
		b.run = run
		rep := &report{
			Run:     run,
			Date:    time.Now().UTC().Format(time.RFC3339),
			Machine: describeMachine(ctx, repo),
			Flags:   o.String(),
		}
		b.runCases(ctx, defs, rep)
		if ctx.Err() != nil {
			break
		}
		reps = append(reps, rep)
		if !o.markdown {
			if run > 1 {
				fmt.Fprintln(stdout)
			}
			printReport(stdout, rep)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if o.markdown {
		printMarkdown(stdout, reps)
	} else if len(reps) > 1 {
		fmt.Fprintln(stdout)
		printVerdicts(stdout, reps)
	}
	if o.jsonPath != "" {
		data, err := json.MarshalIndent(struct {
			Runs []*report `json:"runs"`
		}{reps}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonPath, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	for _, rep := range reps {
		if len(rep.Failures) > 0 {
			return errFailed
		}
	}
	for _, rep := range reps {
		if len(rep.Missed) > 0 {
			return errMissed
		}
	}
	return nil
}

// runCases runs every case once into rep.
func (b *bencher) runCases(ctx context.Context, defs []caseDef, rep *report) {
	byID := map[string]caseDef{}
	loads := 0
	for i, c := range defs {
		byID[c.id] = c
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(b.log, "run %d/%d [%d/%d] %s\n", b.run, b.opts.runs, i+1, len(defs), c.id)
		var r *result
		switch c.kind {
		case kindLoad:
			// Who goes first alternates, from case to case and run to run.
			r = b.loadCase(ctx, c, (loads+b.run)%2 == 0)
			loads++
		case kindMemory:
			r = b.runMemoryCase(ctx, c)
		case kindStartup:
			r = b.runStartupCase(ctx, c)
		}
		rep.Results = append(rep.Results, r)
		for _, s := range []*result{r, r.Baseline} {
			switch {
			case s == nil:
			case s.Error != "":
				fmt.Fprintf(b.log, "    %s FAILED: %s\n", s.Name, s.Error)
			case s.Kind == kindLoad:
				fmt.Fprintf(b.log, "    %s: %.0f tokens/s, p99 %s, %d errors, %d 401s, CPU/token %s, wrk CPU/request %s\n",
					s.Name, s.TokensPerSec, fmtDur(time.Duration(s.latencyP99())), s.Errors, s.Expected401s,
					fmtDur(time.Duration(s.CPUPerTokenNS)), fmtDur(time.Duration(s.GeneratorCPUPerReqNS)))
			}
		}
		if r.ServerLogLines > 0 {
			fmt.Fprintf(b.log, "    server log (%d lines):\n%s", r.ServerLogLines, indent(r.ServerLog, "      "))
		}
	}
	if ctx.Err() != nil {
		return
	}
	compare(rep.Results, byID)
	rep.generatorCost(rep.Machine.NumCPU)
	for _, r := range rep.Results {
		for _, s := range []*result{r, r.Baseline} {
			if s == nil {
				continue
			}
			name := r.Name
			if s != r {
				name += " (baseline)"
			}
			if s.Error != "" {
				rep.Failures = append(rep.Failures, name+": "+firstLine(s.Error))
			}
			for _, f := range s.Failures {
				rep.Failures = append(rep.Failures, name+": "+f)
			}
		}
		if r.TargetMet != nil && !*r.TargetMet {
			rep.Missed = append(rep.Missed, r.Name)
		}
	}
}

// render prints the runs a -json FILE holds, their ratios and targets
// computed again (a newer loadbench may add figures).
func render(path string, markdown bool, w io.Writer) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var runs struct {
		Runs []*report `json:"runs"`
	}
	if err := json.Unmarshal(data, &runs); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(runs.Runs) == 0 {
		return fmt.Errorf("%s: no runs", path)
	}
	defs := map[string]caseDef{}
	for _, c := range allCases {
		defs[c.id] = c
	}
	for _, rep := range runs.Runs {
		compare(rep.Results, defs)
		rep.Missed = nil
		for _, r := range rep.Results {
			if r.TargetMet != nil && !*r.TargetMet {
				rep.Missed = append(rep.Missed, r.Name)
			}
		}
	}
	if markdown {
		printMarkdown(w, runs.Runs)
		return nil
	}
	for i, rep := range runs.Runs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		printReport(w, rep)
	}
	if len(runs.Runs) > 1 {
		fmt.Fprintln(w)
		printVerdicts(w, runs.Runs)
	}
	return nil
}

func indent(s, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString(prefix)
		b.WriteString(line)
	}
	if !strings.HasSuffix(s, "\n") {
		b.WriteString("\n")
	}
	return b.String()
}

type bencher struct {
	opts options
	env  *env
	log  io.Writer
	run  int // 1, 2, ... of -runs
}

func newResult(c caseDef) *result {
	return &result{ID: c.id, Name: c.name, Kind: c.kind, KeyType: c.keyType}
}

// collectLog records what a server logged (at warn or above, so anything
// is worth a look).
func collectLog(r *result, p *child) {
	if n := p.output.Lines(); n > 0 {
		r.ServerLogLines = n
		r.ServerLog = truncate(p.output.String(), 4<<10)
	}
}

// checkAlive fails r if the process died during the case.
func checkAlive(r *result, p *child) {
	if p.Exited() {
		r.fail("the %s process exited during the case (%v)", p.Name, p.Err())
	}
}

func (b *bencher) runMemoryCase(ctx context.Context, c caseDef) *result {
	n := b.opts.shTokens
	r := newResult(c)
	r.Name = fmt.Sprintf("%s %s", thousands(uint64(n)), c.name)
	srv, err := b.env.startServer(ctx, c.keyType, serverOptions{shUsers: everyAccount, cacheSize: n})
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer srv.proc.Stop(stopGrace)
	r.StartupNS = int64(srv.startup)
	pid := srv.proc.Pid()

	// Distinct users, so every token is its own cache entry and identity;
	// each logs in once for its own namespace.
	fmt.Fprintf(b.log, "    minting %d tokens\n", n)
	expires := time.Now().Add(6 * time.Hour)
	reqs := make([]request, n)
	for i := range reqs {
		user := fmt.Sprintf("u%06d", i)
		tok := b.env.meta.Mint(fakemeta.TokenOptions{Username: user, ClientID: "builds.sr.ht", Grants: service + "/REGISTRY:RW", Expires: expires})
		reqs[i] = request{url: authURL(srv.addr, "repository:"+user+"/app:pull"), auth: basicAuth("sourcehut", tok)}
	}
	fmt.Fprintf(b.log, "    logging each in once (%d connections, at most %v)\n", b.opts.conns, b.opts.memTimeout)
	client := newClient(b.opts.conns)
	defer client.CloseIdleConnections()
	lctx, cancel := context.WithTimeout(ctx, b.opts.memTimeout)
	defer cancel()
	b.env.meta.ResetCalls()
	cpu0, cpuErr := processCPU(pid)
	t0 := time.Now()
	st := runEach(lctx, client, b.opts.conns, n, func(i int) request { return reqs[i] }, NewReuseChecker(n))
	elapsed := time.Since(t0)
	if cpu1, err := processCPU(pid); err == nil && cpuErr == nil {
		st.ServerCPU = cpu1 - cpu0
	}
	calls := b.env.meta.Calls()
	mem, memErr := readStatus(pid)
	if ctx.Err() != nil {
		r.Error = ctx.Err().Error()
		return r
	}
	r.fill(st)
	r.TokensPerSec, r.WindowNS = 0, 0 // this row reports memory
	r.Logins = st.Tokens
	r.LoginsPerSec = float64(st.Tokens) / elapsed.Seconds()
	r.MetaCalls = &calls
	if memErr == nil {
		r.PeakRSS, r.RSS = mem.HWM, mem.RSS
	}
	if lctx.Err() != nil {
		r.fail("logins stopped after %v", b.opts.memTimeout)
	}

	// Logging in again with cached tokens must not ask meta.sr.ht.
	k := min(1000, n)
	b.env.meta.ResetCalls()
	st2 := runEach(lctx, client, b.opts.conns, k, func(i int) request { return reqs[i*n/k] }, nil)
	recheck := b.env.meta.Calls()
	r.RecheckMetaCalls = &recheck
	checkAlive(r, srv.proc)
	collectLog(r, srv.proc)

	r.Notes = append(r.Notes,
		fmt.Sprintf("VmRSS %s after %s logins (%s in %s, %.0f/s; %s meta.sr.ht calls)",
			fmtMiB(r.RSS), thousands(st.Tokens), thousands(uint64(n)), elapsed.Round(100*time.Millisecond), r.LoginsPerSec, thousands(uint64(calls))),
		fmt.Sprintf("again, %d of them: %d tokens, %d meta.sr.ht calls", k, st2.Tokens, recheck))
	if st.Tokens < uint64(n) {
		r.Notes = append(r.Notes, fmt.Sprintf("only %s of %s logins got a token", thousands(st.Tokens), thousands(uint64(n))))
	}
	return r
}

func (b *bencher) runStartupCase(ctx context.Context, c caseDef) *result {
	r := newResult(c)
	var hwm []uint64
	for i := 0; i < b.opts.starts; i++ {
		srv, err := b.env.startServer(ctx, c.keyType, serverOptions{shUsers: []string{shUser}})
		if err != nil {
			r.Error = err.Error()
			return r
		}
		r.StartupsNS = append(r.StartupsNS, int64(srv.startup))
		if mem, err := readStatus(srv.proc.Pid()); err == nil {
			hwm = append(hwm, mem.HWM)
		}
		srv.proc.Stop(stopGrace)
	}
	sorted := slices.Clone(r.StartupsNS)
	slices.Sort(sorted)
	r.StartupNS = sorted[len(sorted)/2]
	if len(hwm) > 0 {
		slices.Sort(hwm)
		r.PeakRSS = hwm[len(hwm)/2]
	}
	r.Notes = append(r.Notes, fmt.Sprintf("median %s of %d starts (min %s, max %s), exec to first anonymous token; RSS at that point",
		fmtDur(time.Duration(r.StartupNS)), len(sorted), fmtDur(time.Duration(sorted[0])), fmtDur(time.Duration(sorted[len(sorted)-1]))))
	return r
}

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
	"runtime/pprof"
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
	duration    time.Duration
	warmup      time.Duration
	cases       string
	jsonPath    string
	reuseSample int
	shTokens    int
	starts      int
	memTimeout  time.Duration
	bin         string
	repo        string
	cpuprofile  string
}

func (o options) String() string {
	cases := o.cases
	if cases == "" {
		cases = "all"
	}
	s := fmt.Sprintf("-c %d -d %s -warmup %s -cases %s -reuse-sample %d -sourcehut-tokens %d -starts %d",
		o.conns, o.duration, o.warmup, cases, o.reuseSample, o.shTokens, o.starts)
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
	fs.IntVar(&o.conns, "c", 32, "concurrent connections (workers)")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "measured `duration` of each load case")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up before each load case, not counted")
	fs.StringVar(&o.cases, "cases", "", "comma-separated case `ids` to run (default all)")
	fs.StringVar(&o.jsonPath, "json", "", "also write the raw figures as JSON to `FILE`")
	fs.IntVar(&o.reuseSample, "reuse-sample", 100000, "tokens per case checked for reuse and freshness (the first N)")
	fs.IntVar(&o.shTokens, "sourcehut-tokens", 100000, "distinct Sourcehut tokens of the sourcehut-100k case")
	fs.IntVar(&o.starts, "starts", 5, "server starts measured by the startup case")
	fs.DurationVar(&o.memTimeout, "mem-timeout", 10*time.Minute, "bound on the logins of the sourcehut-100k case")
	fs.StringVar(&o.bin, "bin", "", "use this srht-registry `binary` instead of building the checkout")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the load generator itself to `FILE`")
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
	if o.conns < 1 || o.duration <= 0 || o.warmup < 0 || o.reuseSample < 0 || o.shTokens < 1 || o.shTokens > 10_000_000 || o.starts < 1 {
		fmt.Fprintln(stderr, "loadbench: -c, -d, -sourcehut-tokens (≤ 10,000,000) and -starts must be positive; -warmup and -reuse-sample not negative")
		return 2
	}
	defs, err := selectCases(o.cases)
	if err != nil {
		fmt.Fprintln(stderr, "loadbench:", err)
		return 2
	}

	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "loadbench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "loadbench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = bench(ctx, o, defs, stdout, stderr)
	childproc.KillAll()
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "loadbench: interrupted")
		return 130
	case err != nil:
		fmt.Fprintln(stderr, "loadbench:", err)
		return 1
	}
	return 0
}

// errFailed is returned when a case failed; the report says why.
var errFailed = errors.New("some cases failed (see the report)")

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

	rep := &report{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Machine: describeMachine(ctx, repo),
		Flags:   o.String(),
	}
	e, err := prepare(ctx, tmp, repo, o.bin, stderr)
	if err != nil {
		return err
	}
	defer e.close()
	b := &bencher{opts: o, env: e, log: stderr}
	byID := map[string]caseDef{}
	for i, c := range defs {
		byID[c.id] = c
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(stderr, "[%d/%d] %s\n", i+1, len(defs), c.id)
		var r *result
		switch c.kind {
		case kindBaseline, kindLoad:
			r = b.runLoadCase(ctx, c)
		case kindMemory:
			r = b.runMemoryCase(ctx, c)
		case kindStartup:
			r = b.runStartupCase(ctx, c)
		}
		rep.Results = append(rep.Results, r)
		switch {
		case r.Error != "":
			fmt.Fprintf(stderr, "    FAILED: %s\n", r.Error)
		case r.Kind == kindBaseline || r.Kind == kindLoad:
			fmt.Fprintf(stderr, "    %.0f tokens/s, %d errors, %d 401s\n", r.TokensPerSec, r.Errors, r.Expected401s)
		}
		if r.ServerLogLines > 0 {
			fmt.Fprintf(stderr, "    server log (%d lines):\n%s", r.ServerLogLines, indent(r.ServerLog, "      "))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	compare(rep.Results, byID)
	rep.clientCost(rep.Machine.NumCPU)
	for _, r := range rep.Results {
		if r.Error != "" {
			rep.Failures = append(rep.Failures, r.Name+": "+firstLine(r.Error))
		}
		for _, f := range r.Failures {
			rep.Failures = append(rep.Failures, r.Name+": "+f)
		}
	}
	printReport(stdout, rep)
	if o.jsonPath != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonPath, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	if len(rep.Failures) > 0 {
		return errFailed
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

func (b *bencher) runLoadCase(ctx context.Context, c caseDef) *result {
	r := newResult(c)
	var srv *running
	var err error
	if c.kind == kindBaseline {
		srv, err = b.env.startBaseline(ctx, c.keyType)
	} else {
		srv, err = b.env.startServer(ctx, c.keyType, []string{shUser}, 0)
	}
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer srv.proc.Stop(stopGrace)
	r.StartupNS = int64(srv.startup)
	b.env.meta.ResetCalls()
	gen, err := c.load(ctx, b.env, srv.addr)
	if err != nil {
		r.Error = err.Error()
		if c.kind == kindLoad {
			collectLog(r, srv.proc)
		}
		return r
	}
	client := newClient(b.opts.conns)
	defer client.CloseIdleConnections()
	pid := srv.proc.Pid()
	st, err := runLoad(ctx, client, loadSpec{
		conns:     b.opts.conns,
		warmup:    b.opts.warmup,
		duration:  b.opts.duration,
		gen:       gen,
		checker:   NewReuseChecker(b.opts.reuseSample),
		serverCPU: func() (time.Duration, error) { return processCPU(pid) },
	})
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.fill(st)
	if mem, err := readStatus(pid); err == nil {
		r.PeakRSS, r.RSS = mem.HWM, mem.RSS
	}
	checkAlive(r, srv.proc)
	if c.kind == kindLoad {
		calls := b.env.meta.Calls()
		r.MetaCalls = &calls
		if c.id == "sourcehut" {
			r.Notes = append(r.Notes, fmt.Sprintf("meta.sr.ht calls: %d (1 warm-up login)", calls))
		}
		collectLog(r, srv.proc)
	}
	if r.Latency401 != nil {
		r.Notes = append(r.Notes, fmt.Sprintf("401 p50 %s, p99 %s", fmtDur(time.Duration(r.Latency401.P50)), fmtDur(time.Duration(r.Latency401.P99))))
	}
	return r
}

func (b *bencher) runMemoryCase(ctx context.Context, c caseDef) *result {
	n := b.opts.shTokens
	r := newResult(c)
	r.Name = fmt.Sprintf("%s %s", thousands(uint64(n)), c.name)
	srv, err := b.env.startServer(ctx, c.keyType, everyAccount, n)
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
		srv, err := b.env.startServer(ctx, c.keyType, []string{shUser}, 0)
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

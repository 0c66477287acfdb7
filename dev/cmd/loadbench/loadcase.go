package main

import (
	"context"
	"fmt"
	"time"
)

// A load case runs twice, against the server and against the baseline,
// one after the other (which goes first alternates from case to case and
// run to run, so drift on the machine hits both), each in its own fresh
// process:
//
//  1. start it and wait for its first anonymous token;
//  2. check: loadbench's own client sends the case's first -reuse-sample
//     requests and checks every answer (a token in each 200, none and no
//     jti twice, a fresh iat; a 401 only for a wrong password);
//  3. warm up with wrk for -warmup (not counted);
//  4. measure with wrk for -d, reading the process's CPU time from
//     /proc/PID/stat just before wrk starts and just after it exits.
//
// wrk does not look into the bodies: the answers it counts are checked by
// status only (200, or 401 for a wrong password), the check step looked
// at the tokens.

// loadCase measures one load case: the returned result is the server's,
// with the baseline's beside it unless the case has none.
func (b *bencher) loadCase(ctx context.Context, c caseDef, baselineFirst bool) *result {
	r := newResult(c)
	if c.noBaseline {
		b.loadSide(ctx, c, false, r)
		return r
	}
	base := newResult(c)
	base.Name = "baseline"
	sides := []struct {
		baseline bool
		r        *result
	}{{false, r}, {true, base}}
	if baselineFirst {
		sides[0], sides[1] = sides[1], sides[0]
	}
	for _, s := range sides {
		if ctx.Err() != nil {
			break
		}
		b.loadSide(ctx, c, s.baseline, s.r)
	}
	r.Baseline = base
	return r
}

// loadSide runs the case against the server or the baseline and fills r.
func (b *bencher) loadSide(ctx context.Context, c caseDef, baseline bool, r *result) {
	var srv *running
	var err error
	if baseline {
		srv, err = b.env.startBaseline(ctx, c.keyType)
	} else {
		srv, err = b.env.startServer(ctx, c.keyType, serverOptions{shUsers: []string{shUser}, bruteForceOff: c.bruteForceOff})
	}
	if err != nil {
		r.Error = err.Error()
		return
	}
	defer srv.proc.Stop(stopGrace)
	defer func() {
		checkAlive(r, srv.proc)
		if !baseline {
			collectLog(r, srv.proc)
		}
	}()
	r.StartupNS = int64(srv.startup)
	b.env.meta.ResetCalls()
	p, err := c.load(ctx, b.env, srv.addr)
	if err != nil {
		r.Error = err.Error()
		return
	}
	side := "server"
	if baseline {
		side = "baseline"
	}
	script, err := writeScript(b.env.tmp, c.id+"-"+side, p)
	if err != nil {
		r.Error = err.Error()
		return
	}

	// 2. The check.
	if n := b.opts.reuseSample; n > 0 {
		client := newClient(b.opts.conns)
		st := runEach(ctx, client, min(b.opts.conns, 8), n, func(i int) request { return p.goRequest(srv.addr, i) }, NewReuseChecker(n))
		client.CloseIdleConnections()
		r.ReuseChecked = st.Checked
		r.CheckErrors = st.Errors
		for kind, k := range st.ErrorKinds {
			if isFailure(kind) {
				r.fail("%s: %d times (check before the load)", kind, k)
			} else {
				r.fail("%s: %d of %d requests (check before the load, e.g. %q)", kind, k, n, truncate(st.ErrorExample, 160))
			}
		}
		if ctx.Err() != nil {
			r.Error = ctx.Err().Error()
			return
		}
	}

	w := wrkRun{wrk: b.env.wrk, script: script, addr: srv.addr, threads: b.opts.threads, conns: b.opts.conns}
	// 3. The warm-up.
	if b.opts.warmup > 0 {
		w.duration, w.tag = b.opts.warmup, fmt.Sprintf("w%d", b.run)
		if _, err := w.run(ctx); err != nil {
			r.Error = "warm-up: " + err.Error()
			return
		}
	}
	// 4. The measured run.
	pid := srv.proc.Pid()
	w.duration, w.tag = b.opts.duration, fmt.Sprintf("m%d", b.run)
	cpu0, cpuErr0 := processCPU(pid)
	wr, err := w.run(ctx)
	cpu1, cpuErr1 := processCPU(pid)
	if err != nil {
		r.Error = err.Error()
		return
	}
	cpu := time.Duration(-1)
	if cpuErr0 == nil && cpuErr1 == nil {
		cpu = cpu1 - cpu0
	}
	r.fillWrk(wr, cpu)
	if mem, err := readStatus(pid); err == nil {
		r.PeakRSS, r.RSS = mem.HWM, mem.RSS
	}
	if !baseline {
		calls := b.env.meta.Calls()
		r.MetaCalls = &calls
		if c.id == "sourcehut" {
			r.Notes = append(r.Notes, fmt.Sprintf("meta.sr.ht calls: %d (1 warm-up login)", calls))
		}
	}
}

// fillWrk copies a measured wrk run's figures; serverCPU is the serving
// process's CPU time over the run, -1 if unknown.
func (r *result) fillWrk(w *wrkResult, serverCPU time.Duration) {
	e := w.Errors
	r.Requests = w.Requests
	r.Expected401s = min(w.Unauthorized, e.Status)
	r.Tokens = w.Requests - e.Status
	r.Errors = e.Status - r.Expected401s + e.Connect + e.Read + e.Write + e.Timeout
	r.ErrorKinds = nil
	for kind, n := range map[string]uint64{
		"status other than 200": e.Status - r.Expected401s,
		"connect":               e.Connect, "read": e.Read, "write": e.Write, "timeout": e.Timeout,
	} {
		if n > 0 {
			if r.ErrorKinds == nil {
				r.ErrorKinds = map[string]uint64{}
			}
			r.ErrorKinds[kind] = n
		}
	}
	window := time.Duration(w.DurationUS) * time.Microsecond
	r.WindowNS = int64(window)
	r.TokensPerSec = float64(r.Tokens) / window.Seconds()
	us := func(v float64) int64 { return int64(v * 1e3) }
	l := w.Latency
	r.Latency = &LatencySummary{
		Count: w.Requests, Min: us(l.Min), Mean: us(l.Mean), Max: us(l.Max),
		P50: us(l.P50), P75: us(l.P75), P90: us(l.P90), P99: us(l.P99), P999: us(l.P999),
	}
	r.GeneratorCPUNS = int64(w.CPU)
	if w.Requests > 0 {
		r.GeneratorCPUPerReqNS = int64(w.CPU) / int64(w.Requests)
	}
	if serverCPU >= 0 {
		r.ServerCPUNS = int64(serverCPU)
		if r.Tokens > 0 {
			r.CPUPerTokenNS = int64(serverCPU) / int64(r.Tokens)
		}
	}
}

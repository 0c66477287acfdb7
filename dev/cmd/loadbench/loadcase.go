package main

import (
	"context"
	"fmt"
	"time"
)

// A load case runs against the server and against the baseline, two
// fresh processes that run side by side for the whole case (each idle
// while the other is measured):
//
//  1. start each and wait for its first anonymous token;
//  2. check: loadbench's own client sends the case's first -reuse-sample
//     requests to each and checks every answer (a token in each 200, none
//     and no jti twice, a fresh iat; a 401 only for a wrong password);
//  3. warm each up with wrk for -warmup (not counted);
//  4. measure in -slices slices per side, each a wrk run of its share of
//     -d, taking turns in ABBA order (A B B A A B …; which side is A
//     alternates from case to case and run to run), so that drift on a
//     shared machine hits both sides alike; the process's CPU time is
//     read from /proc/PID/stat just before each of its slices and just
//     after.
//
// A side's figures are those of its slices together: tokens over the
// summed wrk durations, CPU summed over its own slices, and latency
// quantiles from the merged distribution of its slices (latencyMix),
// not an average of each slice's.
//
// wrk does not look into the bodies: the answers it counts are checked by
// status only (200, or 401 for a wrong password), the check step looked
// at the tokens.

// sliceOrder is the order in which a case's sides are measured, n slices
// each: the index of the side (0, the one that goes first, or 1) of every
// slice. Two sides take turns in ABBA order (0 1 1 0 0 1 …), so neither is
// always measured right after the other; one side runs its slices back to
// back.
func sliceOrder(sides, n int) []int {
	order := make([]int, 0, sides*n)
	for k := range sides * n {
		if sides == 1 {
			order = append(order, 0)
			continue
		}
		order = append(order, (k+1)/2%2)
	}
	return order
}

// sliceDurations splits d (whole seconds) into n slices of whole seconds
// (wrk's unit), the first d mod n one second longer than the rest; the
// caller checked that d is at least n seconds.
func sliceDurations(d time.Duration, n int) []time.Duration {
	secs := int(d / time.Second)
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(secs/n) * time.Second
		if i < secs%n {
			out[i] += time.Second
		}
	}
	return out
}

// warmupTag and sliceTag are the tags of a side's wrk runs in run run
// (the script's argument): every run of a case gets its own, so the cold
// case asks for names never asked before in each.
func warmupTag(run int) string   { return fmt.Sprintf("w%d", run) }
func sliceTag(run, k int) string { return fmt.Sprintf("m%ds%d", run, k) }

// side is one process of a load case and what was measured of it.
type side struct {
	baseline bool
	r        *result
	srv      *running
	w        wrkRun // the case's script against this process
	runs     []sliceRun
}

func (s *side) name() string {
	if s.baseline {
		return "baseline"
	}
	return "server"
}

// loadCase measures one load case: the returned result is the server's,
// with the baseline's beside it unless the case has none.
func (b *bencher) loadCase(ctx context.Context, c caseDef, baselineFirst bool) *result {
	r := newResult(c)
	sides := []*side{{r: r}}
	if !c.noBaseline {
		base := newResult(c)
		base.Name = "baseline"
		r.Baseline = base
		bs := &side{baseline: true, r: base}
		if baselineFirst {
			sides = []*side{bs, sides[0]}
		} else {
			sides = append(sides, bs)
		}
	}
	defer func() {
		for _, s := range sides {
			if s.srv != nil {
				s.srv.proc.Stop(stopGrace)
			}
		}
	}()
	// 1.–3., the side measured first first.
	for _, s := range sides {
		if ctx.Err() != nil {
			break
		}
		b.prepareSide(ctx, c, s)
	}
	// 4. A side that failed is left out; the other goes on.
	durations := sliceDurations(b.opts.duration, b.opts.slices)
	for _, k := range sliceOrder(len(sides), b.opts.slices) {
		s := sides[k]
		if ctx.Err() != nil {
			break
		}
		if s.r.Error != "" {
			continue
		}
		b.measureSlice(ctx, s, durations[len(s.runs)], len(durations))
	}
	for _, s := range sides {
		b.finishSide(ctx, c, s)
	}
	return r
}

// prepareSide starts the side's process, checks its first answers and
// warms it up; a failure is s.r.Error.
func (b *bencher) prepareSide(ctx context.Context, c caseDef, s *side) {
	r := s.r
	var srv *running
	var err error
	if s.baseline {
		srv, err = b.env.startBaseline(ctx, c.keyType)
	} else {
		srv, err = b.env.startServer(ctx, c.keyType, serverOptions{shUsers: []string{shUser}, bruteForceOff: c.bruteForceOff})
	}
	if err != nil {
		r.Error = err.Error()
		return
	}
	s.srv = srv
	r.StartupNS = int64(srv.startup)
	if !s.baseline {
		// The server's calls are counted from its plan's warm-up login
		// (the sourcehut case); the baseline asks nothing of meta.sr.ht.
		b.env.meta.ResetCalls()
	}
	p, err := c.load(ctx, b.env, srv.addr)
	if err != nil {
		r.Error = err.Error()
		return
	}
	p.think = b.opts.think
	script, err := writeScript(b.env.tmp, c.id+"-"+s.name(), p)
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

	s.w = wrkRun{wrk: b.env.wrk, script: script, addr: srv.addr, threads: b.opts.threads, conns: b.opts.conns}
	// 3. The warm-up.
	if b.opts.warmup > 0 {
		w := s.w
		w.duration, w.tag = b.opts.warmup, warmupTag(b.run)
		if _, err := w.run(ctx); err != nil {
			r.Error = "warm-up: " + err.Error()
			return
		}
	}
}

// measureSlice runs the side's next measured slice, of duration d, with
// its process's CPU time read before and after; of is the side's number
// of slices.
func (b *bencher) measureSlice(ctx context.Context, s *side, d time.Duration, of int) {
	k := len(s.runs) + 1
	pid := s.srv.proc.Pid()
	w := s.w
	w.duration, w.tag = d, sliceTag(b.run, k)
	cpu0, cpuErr0 := processCPU(pid)
	wr, err := w.run(ctx)
	cpu1, cpuErr1 := processCPU(pid)
	if err != nil {
		s.r.Error = fmt.Sprintf("slice %d of %d: %v", k, of, err)
		return
	}
	cpu := time.Duration(-1)
	if cpuErr0 == nil && cpuErr1 == nil {
		cpu = cpu1 - cpu0
	}
	s.runs = append(s.runs, sliceRun{wrkResult: wr, serverCPU: cpu})
	tokens := wr.Requests - min(wr.Requests, wr.Errors.Status)
	fmt.Fprintf(b.log, "      slice %d/%d %s: %.0f tokens/s, p99 %s\n", k, of, s.name(),
		float64(tokens)/(time.Duration(wr.DurationUS)*time.Microsecond).Seconds(),
		fmtDur(time.Duration(wr.Latency.P99*1e3)))
}

// finishSide fills the side's result from its slices, once every slice
// of the case ran, with its process still up.
func (b *bencher) finishSide(ctx context.Context, c caseDef, s *side) {
	if s.srv == nil {
		return
	}
	r := s.r
	checkAlive(r, s.srv.proc)
	if !s.baseline {
		collectLog(r, s.srv.proc)
	}
	if r.Error == "" && ctx.Err() != nil {
		r.Error = ctx.Err().Error()
	}
	if r.Error != "" {
		return
	}
	r.fillSlices(s.runs)
	if mem, err := readStatus(s.srv.proc.Pid()); err == nil {
		r.PeakRSS, r.RSS = mem.HWM, mem.RSS
	}
	if !s.baseline {
		calls := b.env.meta.Calls()
		r.MetaCalls = &calls
		if c.id == "sourcehut" {
			r.Notes = append(r.Notes, fmt.Sprintf("meta.sr.ht calls: %d (1 warm-up login)", calls))
		}
	}
}

// sliceRun is one measured wrk run of a side, with the serving process's
// CPU time over it (-1 if unknown).
type sliceRun struct {
	*wrkResult
	serverCPU time.Duration
}

// fillSlices sets a side's figures from its measured slices: counts, CPU
// and wrk's run time summed over them, tokens/s their tokens over their
// summed duration, CPU per token their summed CPU over their tokens (the
// server's CPU unknown if unknown in any slice), latency from their merged
// distribution.
func (r *result) fillSlices(runs []sliceRun) {
	var status, connect, read, write, timeout uint64
	var window, wrkCPU time.Duration
	var serverCPU time.Duration
	var mix latencyMix
	r.Requests, r.Expected401s = 0, 0
	r.SliceTokensPerSec = nil
	for _, s := range runs {
		e := s.Errors
		r.Requests += s.Requests
		r.Expected401s += min(s.Unauthorized, e.Status)
		status += e.Status
		connect, read, write, timeout = connect+e.Connect, read+e.Read, write+e.Write, timeout+e.Timeout
		d := time.Duration(s.DurationUS) * time.Microsecond
		window += d
		wrkCPU += s.CPU
		if serverCPU >= 0 && s.serverCPU >= 0 {
			serverCPU += s.serverCPU
		} else {
			serverCPU = -1
		}
		us := func(v float64) time.Duration { return time.Duration(v * 1e3) }
		mix.add(s.Requests, s.quantiles(), us(s.Latency.Min), us(s.Latency.Mean))
		r.SliceTokensPerSec = append(r.SliceTokensPerSec, float64(s.Requests-min(s.Requests, e.Status))/d.Seconds())
	}
	r.Slices = len(runs)
	r.Tokens = r.Requests - min(r.Requests, status)
	r.Errors = status - r.Expected401s + connect + read + write + timeout
	r.ErrorKinds = nil
	for kind, n := range map[string]uint64{
		"status other than 200": status - r.Expected401s,
		"connect":               connect, "read": read, "write": write, "timeout": timeout,
	} {
		if n > 0 {
			if r.ErrorKinds == nil {
				r.ErrorKinds = map[string]uint64{}
			}
			r.ErrorKinds[kind] = n
		}
	}
	r.WindowNS = int64(window)
	r.TokensPerSec = 0
	if window > 0 {
		r.TokensPerSec = float64(r.Tokens) / window.Seconds()
	}
	l := mix.Summary()
	l.Count = r.Requests
	r.Latency = &l
	r.GeneratorCPUNS, r.GeneratorCPUPerReqNS = int64(wrkCPU), 0
	if r.Requests > 0 {
		r.GeneratorCPUPerReqNS = int64(wrkCPU) / int64(r.Requests)
	}
	r.ServerCPUNS, r.CPUPerTokenNS = 0, 0
	if serverCPU >= 0 && len(runs) > 0 {
		r.ServerCPUNS = int64(serverCPU)
		if r.Tokens > 0 {
			r.CPUPerTokenNS = int64(serverCPU) / int64(r.Tokens)
		}
	}
}

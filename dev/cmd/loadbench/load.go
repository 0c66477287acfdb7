package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// request is one request a case sends.
type request struct {
	url     string
	auth    string // the Authorization header, "" for none
	want401 bool   // the case expects this one refused (a wrong password)
}

// generator returns the seq-th request of a worker.
type generator func(worker int, seq uint64) request

// Error kinds that are not a status code.
const (
	kindWrongAccepted = "wrong password accepted (200)"
	kindBadBody       = "200 without a valid token"
)

// loadSpec is one load run.
type loadSpec struct {
	conns    int
	warmup   time.Duration
	duration time.Duration
	gen      generator
	checker  *ReuseChecker
	// serverCPU, if set, returns the server process's CPU time so far;
	// it is sampled at the start and end of the measured window.
	serverCPU func() (time.Duration, error)
}

// loadStats is what a load run measured in its window (warm-up excluded).
type loadStats struct {
	Tokens       uint64
	Unauth       uint64 // expected 401s
	Errors       uint64
	WarmupErrors uint64
	ErrorKinds   map[string]uint64
	ErrorExample string
	OK           Histogram // latency of the 200s
	Refused      Histogram // latency of the expected 401s
	Window       time.Duration
	ServerCPU    time.Duration // -1 if unknown
	ClientCPU    time.Duration // -1 if unknown
	Checked      int
}

func (s *loadStats) addError(kind, example string) {
	s.Errors++
	if s.ErrorKinds == nil {
		s.ErrorKinds = map[string]uint64{}
	}
	s.ErrorKinds[kind]++
	if s.ErrorExample == "" && example != "" {
		s.ErrorExample = example
	}
}

func (s *loadStats) merge(o *loadStats) {
	s.Tokens += o.Tokens
	s.Unauth += o.Unauth
	s.Errors += o.Errors
	s.WarmupErrors += o.WarmupErrors
	for k, v := range o.ErrorKinds {
		if s.ErrorKinds == nil {
			s.ErrorKinds = map[string]uint64{}
		}
		s.ErrorKinds[k] += v
	}
	if s.ErrorExample == "" {
		s.ErrorExample = o.ErrorExample
	}
	s.OK.Merge(&o.OK)
	s.Refused.Merge(&o.Refused)
}

// newClient returns a keep-alive client for conns concurrent requests to
// one loopback host, ignoring proxy settings.
func newClient(conns int) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          2 * conns,
		MaxIdleConnsPerHost:   2 * conns,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: 60 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 90 * time.Second}
}

// errorKind names a transport error without addresses, so kinds add up.
func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed (EOF)"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		return "transport error"
	}
}

// runLoad runs spec.conns workers for spec.warmup + spec.duration and
// returns what was measured in the window after the warm-up. Requests are
// counted when they complete inside the window.
func runLoad(ctx context.Context, client *http.Client, spec loadSpec) (*loadStats, error) {
	begin := time.Now()
	start := begin.Add(spec.warmup)
	end := start.Add(spec.duration)
	ctx, cancel := context.WithDeadline(ctx, end.Add(time.Second))
	defer cancel()

	// CPU samples at the window's edges.
	type cpuSample struct{ server, client time.Duration }
	sample := func() cpuSample {
		s := cpuSample{server: -1, client: -1}
		if spec.serverCPU != nil {
			if d, err := spec.serverCPU(); err == nil {
				s.server = d
			}
		}
		if d, err := processCPU(os.Getpid()); err == nil {
			s.client = d
		}
		return s
	}
	var samples [2]cpuSample
	var sampWG sync.WaitGroup
	sampWG.Go(func() {
		for i, at := range []time.Time{start, end} {
			t := time.NewTimer(time.Until(at))
			select {
			case <-t.C:
				samples[i] = sample()
			case <-ctx.Done():
				t.Stop()
				samples[i] = cpuSample{-1, -1}
			}
		}
	})

	workers := make([]*loadStats, spec.conns)
	var wg sync.WaitGroup
	for w := range spec.conns {
		st := &loadStats{}
		workers[w] = st
		wg.Go(func() { worker(ctx, client, spec, w, start, end, st) })
	}
	wg.Wait()
	sampWG.Wait()

	total := &loadStats{Window: spec.duration}
	for _, st := range workers {
		total.merge(st)
	}
	total.ServerCPU, total.ClientCPU = -1, -1
	if samples[0].server >= 0 && samples[1].server >= 0 {
		total.ServerCPU = samples[1].server - samples[0].server
	}
	if samples[0].client >= 0 && samples[1].client >= 0 {
		total.ClientCPU = samples[1].client - samples[0].client
	}
	if spec.checker != nil {
		total.Checked = spec.checker.Checked()
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return total, err
	}
	return total, nil
}

func worker(ctx context.Context, client *http.Client, spec loadSpec, w int, start, end time.Time, st *loadStats) {
	var buf bytes.Buffer
	for seq := uint64(0); ; seq++ {
		if ctx.Err() != nil {
			return
		}
		r := spec.gen(w, seq)
		if !time.Now().Before(end) {
			return
		}
		o := do(ctx, client, r, spec.checker, &buf)
		if ctx.Err() != nil {
			return // interrupted or past the end: not an answer
		}
		st.add(o, !o.t1.Before(start) && o.t1.Before(end))
		if o.transport {
			// Do not spin on a dead server.
			time.Sleep(time.Millisecond)
		}
	}
}

// outcome is how one request went.
type outcome struct {
	t0, t1    time.Time
	kind      string // "" for a token or an expected 401
	example   string
	refused   bool // an expected 401
	transport bool // no HTTP answer at all
}

// do sends one request and classifies the answer. buf is the caller's,
// reused across requests.
func do(ctx context.Context, client *http.Client, r request, checker *ReuseChecker, buf *bytes.Buffer) outcome {
	o := outcome{t0: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		o.t1, o.kind, o.example = time.Now(), "bad request", err.Error()
		return o
	}
	if r.auth != "" {
		req.Header["Authorization"] = []string{r.auth}
	}
	resp, err := client.Do(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
		buf.Reset()
		_, err = buf.ReadFrom(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
	o.t1 = time.Now()
	switch {
	case err != nil:
		o.kind, o.example, o.transport = errorKind(err), err.Error(), true
	case r.want401 && status == http.StatusUnauthorized:
		o.refused = true
	case r.want401 && status == http.StatusOK:
		o.kind = kindWrongAccepted
	case status != http.StatusOK:
		o.kind, o.example = fmt.Sprintf("status %d", status), truncate(buf.String(), 200)
	default:
		tok, perr := parseTokenBody(buf.Bytes())
		switch {
		case perr != nil:
			o.kind, o.example = kindBadBody, perr.Error()
		case checker != nil:
			o.kind = checker.Check(tok, o.t0, o.t1)
		}
	}
	return o
}

// add counts an outcome; counted says whether it is in the measured
// window (failures count wherever they happen).
func (s *loadStats) add(o outcome, counted bool) {
	switch {
	case o.kind == "" && !counted:
	case o.refused:
		s.Unauth++
		s.Refused.Record(o.t1.Sub(o.t0))
	case o.kind == "":
		s.Tokens++
		s.OK.Record(o.t1.Sub(o.t0))
	case counted || isFailure(o.kind):
		s.addError(o.kind, o.example)
	default:
		s.WarmupErrors++
	}
}

// runEach sends n requests, each once, from conns workers, and counts
// every outcome; it stops early when ctx ends.
func runEach(ctx context.Context, client *http.Client, conns, n int, gen func(i int) request, checker *ReuseChecker) *loadStats {
	var next atomic.Int64
	workers := make([]*loadStats, conns)
	var wg sync.WaitGroup
	for w := range conns {
		st := &loadStats{}
		workers[w] = st
		wg.Go(func() {
			var buf bytes.Buffer
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				o := do(ctx, client, gen(i), checker, &buf)
				if ctx.Err() != nil {
					return
				}
				st.add(o, true)
			}
		})
	}
	wg.Wait()
	total := &loadStats{ServerCPU: -1, ClientCPU: -1}
	for _, st := range workers {
		total.merge(st)
	}
	if checker != nil {
		total.Checked = checker.Checked()
	}
	return total
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

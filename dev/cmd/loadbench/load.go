package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

// Error kinds that are not a status code.
const (
	kindWrongAccepted = "wrong password accepted (200)"
	kindBadBody       = "200 without a valid token"
)

// loadStats is what loadbench's own client saw (the checks before the
// load and the memory case; the load itself is wrk's).
type loadStats struct {
	Tokens       uint64
	Unauth       uint64 // expected 401s
	Errors       uint64
	ErrorKinds   map[string]uint64
	ErrorExample string
	OK           Histogram     // latency of the 200s
	Refused      Histogram     // latency of the expected 401s
	ServerCPU    time.Duration // -1 if unknown
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

// add counts an outcome.
func (s *loadStats) add(o outcome) {
	switch {
	case o.refused:
		s.Unauth++
		s.Refused.Record(o.t1.Sub(o.t0))
	case o.kind == "":
		s.Tokens++
		s.OK.Record(o.t1.Sub(o.t0))
	default:
		s.addError(o.kind, o.example)
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
				st.add(o)
			}
		})
	}
	wg.Wait()
	total := &loadStats{ServerCPU: -1}
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

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"git.sr.ht/~zozs/srht-registry/dev/internal/childproc"
)

// disrupt stops r1 with SIGTERM at 30 % of the load and, 3 s later, kills
// r2 with SIGKILL and restarts it 1 s after that.
func (s *scaleout) disrupt(ctx context.Context, res *results) {
	o := s.opts
	sleepUntil := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Until(s.t0.Add(d))):
			return true
		}
	}
	termAt := o.duration * 3 / 10
	if !sleepUntil(termAt) {
		return
	}
	r1, r2 := s.replicas[0], s.replicas[1]
	p1 := r1.current()
	// A request in flight at the signal: its body is still arriving when
	// SIGTERM comes, and graceful shutdown must let it finish.
	inflight, headersSent, finish := s.slowTokenRequest(ctx, "http://"+r1.addr)
	select {
	case <-headersSent:
	case <-time.After(5 * time.Second):
	}
	time.Sleep(500 * time.Millisecond) // the replica has accepted and is reading the body
	t := time.Now()
	childproc.Signal(p1.Cmd.Process, syscall.SIGTERM)
	res.sigterm = sigtermResult{replica: r1.name, signaled: true, at: t.Sub(s.t0)}
	s.event("%s: SIGTERM, with a token request in flight (its body not yet sent)", r1.name)
	// The rest of the body goes once the replica is shutting down, so the
	// request is answered during the shutdown, not before it.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p1.log.String(), `"msg":"shutting down"`) {
			break
		}
	}
	time.Sleep(200 * time.Millisecond)
	finish()
	select {
	case err := <-inflight:
		res.sigterm.inflightErr = errText(err)
		s.event("%s: the in-flight request finished: %s", r1.name, orOK(err))
	case <-time.After(shutdownTimeout):
		res.sigterm.inflightErr = "no answer"
	}
	// Wait for it in the background; the SIGKILL comes on schedule.
	var termDone sync.WaitGroup
	termDone.Go(func() {
		exited := p1.WaitExit(shutdownTimeout + 5*time.Second)
		res.sigterm.took = time.Since(t)
		res.sigterm.exited = exited
		if exited {
			if err := p1.Err(); err != nil {
				res.sigterm.exitErr = err.Error()
			}
			s.event("%s: exited (%s) %s after SIGTERM", r1.name, exitText(p1.Err()), res.sigterm.took.Round(time.Millisecond))
		}
	})
	defer termDone.Wait()
	r1.stopped = "SIGTERM"

	if !sleepUntil(termAt + 3*time.Second) {
		return
	}
	p2 := r2.current()
	childproc.Signal(p2.Cmd.Process, syscall.SIGKILL)
	s.event("%s: SIGKILL", r2.name)
	p2.WaitExit(5 * time.Second)
	if !sleepUntil(termAt + 4*time.Second) {
		return
	}
	s.event("%s: restarting", r2.name)
	if err := r2.start(ctx, o.server, s.logDir); err != nil {
		s.event("%s: restart failed: %v", r2.name, oneLine(err.Error()))
		return
	}
	s.event("%s: ready again", r2.name)
	if err := s.waitLB(ctx, func(st lbStats) bool { return st.servers[r2.name].status == "UP" }); err == nil {
		s.event("haproxy: %s up again", r2.name)
	}
}

// slowTokenRequest starts a password-grant POST to base whose body is
// held back until finish is called; headersSent is closed once the
// request's headers and the first bytes of its body are written, and done
// gets nil once it was answered 200 with a token.
func (s *scaleout) slowTokenRequest(ctx context.Context, base string) (done <-chan error, headersSent <-chan struct{}, finish func()) {
	form := url.Values{
		"grant_type": {"password"}, "username": {probeUser}, "password": {s.passwords[probeUser]},
		"service": {service}, "scope": {"repository:" + probeUser + "/app:pull"},
	}.Encode()
	pr, pw := io.Pipe()
	result := make(chan error, 1)
	sent := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(ctx, shutdownTimeout+5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/auth", pr)
		if err != nil {
			result <- err
			close(sent)
			return
		}
		req.ContentLength = int64(len(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		resp, err := client.Do(req)
		if err != nil {
			result <- err
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var tr struct {
			AccessToken string `json:"access_token"`
		}
		switch {
		case resp.StatusCode != http.StatusOK:
			result <- fmt.Errorf("status %d: %s", resp.StatusCode, oneLine(string(body)))
		case json.Unmarshal(body, &tr) != nil || tr.AccessToken == "":
			result <- fmt.Errorf("no access_token in %s", oneLine(string(body)))
		default:
			result <- nil
		}
	}()
	// The transport has written the headers and is streaming the body
	// once it has read these first bytes from the pipe.
	go func() {
		_, _ = io.WriteString(pw, form[:10])
		close(sent)
	}()
	return result, sent, func() {
		_, _ = io.WriteString(pw, form[10:])
		_ = pw.Close()
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func orOK(err error) string {
	if err == nil {
		return "200 with a token"
	}
	return err.Error()
}

func exitText(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

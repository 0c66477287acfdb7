package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
	"git.sr.ht/~zozs/srht-registry/internal/testcheck"
)

// TestGracefulShutdown cancels serve's context (what SIGTERM does in main)
// while a request is in flight: the request is answered, new connections
// are refused, and serve returns 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	meta := fakemeta.Start(t)
	meta.SetDelay(700 * time.Millisecond) // keeps a Sourcehut login in flight
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, cfg, "listen: 127.0.0.1:0\nauthn:\n  sourcehut:\n    meta_url: "+meta.URL()+"\n    timeout: 5s\n    users: [alice]\nlimits:\n  shutdown_timeout: 5s\n")
	addr, logs, cancel, exited := serveToStop(t, cfg)

	tok := meta.Mint(fakemeta.TokenOptions{Username: "alice", Grants: "registry.example.com/REGISTRY:RW", Expires: time.Now().Add(time.Hour)})
	answered := make(chan tokenResult, 1)
	go func() {
		res, err := fetchToken(context.Background(), addr, "sourcehut", tok, "repository:alice/app:push")
		if err != nil {
			res.message = err.Error()
		}
		answered <- res
	}()
	waitFor(t, "the login to reach meta.sr.ht", func() bool { return meta.Calls() > 0 })
	cancel() // SIGTERM

	res := <-answered
	if res.status != http.StatusOK || len(res.access) != 1 {
		t.Fatalf("the request in flight was not finished: %+v", res)
	}
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("serve exited %d; log:\n%s", code, logs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after shutdown")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("new connections are still accepted after shutdown")
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Error("no shutdown line in the log")
	}
}

// TestShutdownDelay: with limits.shutdown_delay, SIGTERM first turns
// /readyz to 503 while tokens are still issued, so a balancer's health check
// takes the replica out before its listener closes; then it shuts down.
func TestShutdownDelay(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, cfg, "listen: 127.0.0.1:0\nlimits:\n  shutdown_delay: 1500ms\n")
	addr, logs, cancel, exited := serveToStop(t, cfg)
	if got := getStatus(t, "http://"+addr+"/readyz"); got != http.StatusOK {
		t.Fatalf("/readyz before SIGTERM: %d", got)
	}
	signalled := time.Now()
	cancel() // SIGTERM
	waitFor(t, "/readyz to say 503", func() bool { return getStatus(t, "http://"+addr+"/readyz") == http.StatusServiceUnavailable })
	if got := getStatus(t, "http://"+addr+"/auth?service=registry.example.com&scope=repository:library/alpine:pull"); got != http.StatusOK {
		t.Errorf("a token request while draining: %d, want 200", got)
	}
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("serve exited %d; log:\n%s", code, logs)
		}
		if took := time.Since(signalled); took < 1500*time.Millisecond {
			t.Errorf("serve returned %v after SIGTERM, before the 1.5 s shutdown delay", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return after the shutdown delay")
	}
	if !strings.Contains(logs.String(), "draining") {
		t.Error("no draining line in the log")
	}
}

// serveToStop runs serve until the test calls cancel (what SIGTERM does in
// main); exited receives serve's exit code.
func serveToStop(t *testing.T, cfg string) (addr string, logs *syncBuffer, cancel context.CancelFunc, exited <-chan int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logs = &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--config", cfg}, strings.NewReader(""), io.Discard, logs)
	}()
	waitFor(t, "the server to listen", func() bool {
		if m := listeningRE.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1] + m[2] // text or JSON
			return true
		}
		return false
	})
	return addr, logs, cancel, done
}

// TestShutdownLosesNoLogLine: the log is buffered (log.flush_interval,
// here 10 s so that no timer writes it during the test), and a SIGTERM
// loses none of it. A POST whose body is still coming keeps a request in
// flight, so the server never goes idle (which would write the buffer);
// the lines of n token requests answered meanwhile are still unwritten at
// SIGTERM, and every one of them is in the log once serve has returned.
func TestShutdownLosesNoLogLine(t *testing.T) {
	t.Parallel()
	const n = 25
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			cfg := filepath.Join(t.TempDir(), "config.yaml")
			writeFile(t, cfg, "listen: 127.0.0.1:0\nlog:\n  format: "+format+"\n  flush_interval: 10s\n"+
				"limits:\n  read_header_timeout: 30s\n  shutdown_timeout: 30s\n")
			addr, logs, cancel, exited := serveToStop(t, cfg)

			// The request held in flight: its headers, half its body.
			held, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			body := "grant_type=password&service=registry.example.com&client_id=test&username=nobody&password=x"
			if _, err := fmt.Fprintf(held, "POST /auth HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
				addr, len(body), body[:10]); err != nil {
				t.Fatal(err)
			}

			tokenRequest := func() string {
				resp, err := http.Get("http://" + addr + "/auth?service=registry.example.com&scope=repository:library/alpine:pull")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("token request: %d", resp.StatusCode)
				}
				return resp.Header.Get("X-Request-Id")
			}
			// The server reads the held request's headers in its own time.
			// Until it does, a token request leaves it idle, and the
			// buffer is written before that request's answer goes out; once
			// a request's line stays unwritten, the held one is in flight.
			var ids []string
			waitFor(t, "the held request to be in flight", func() bool {
				id := tokenRequest()
				if strings.Contains(logs.String(), id) {
					return false
				}
				ids = append(ids, id)
				return true
			})
			requestMsg := map[string]string{"text": "msg=request ", "json": `"msg":"request"`}[format]
			written := strings.Count(logs.String(), requestMsg) // the probes' that went out before
			for len(ids) < n {
				ids = append(ids, tokenRequest())
			}
			before := logs.String()
			for _, id := range ids {
				if strings.Contains(before, id) {
					t.Fatalf("request %s was logged before SIGTERM: the buffer was written (idle, or its timer); this test shows nothing", id)
				}
			}

			cancel() // SIGTERM
			// The held request gets the rest of its body and is answered.
			if _, err := io.WriteString(held, body[10:]); err != nil {
				t.Fatal(err)
			}
			if resp, err := http.ReadResponse(bufio.NewReader(held), nil); err != nil {
				t.Fatalf("the request in flight at SIGTERM: %v", err)
			} else {
				resp.Body.Close()
			}
			select {
			case code := <-exited:
				if code != 0 {
					t.Fatalf("serve exited %d; log:\n%s", code, logs)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("serve did not return after SIGTERM")
			}
			after := logs.String()
			if got := strings.Count(after, requestMsg) - written; got != n+1 {
				t.Errorf("%d request lines after SIGTERM, want %d (%d buffered and the one in flight)", got, n+1, n)
			}
			for _, id := range ids {
				if !strings.Contains(after, id) {
					t.Errorf("request %s, logged before SIGTERM, is not in the log", id)
				}
			}
			testcheck.Contains(t, "log", after, "shutting down")
		})
	}
}

// TestFailedStartLosesNoLogLine: when serve fails to start after logging
// (here: its address is taken), what it logged is written before it exits.
func TestFailedStartLosesNoLogLine(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, cfg, "listen: "+taken.Addr().String()+"\nlog:\n  flush_interval: 10s\n")
	var logs syncBuffer
	if code := Run(t.Context(), []string{"serve", "--config", cfg}, strings.NewReader(""), io.Discard, &logs); code == 0 {
		t.Fatal("serve started on a taken address")
	}
	// Info lines, which wait in the buffer, from before the failure.
	testcheck.Contains(t, "log", logs.String(), `msg="policy loaded"`, `msg="signing key loaded"`, "address already in use")
}

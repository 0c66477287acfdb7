package app

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSlowBodiesDoNotStarve: with limits.max_concurrent 16, 64 clients
// from as many addresses (behind a trusted proxy) and 64 more from the
// legitimate users' own address each send POST headers and a few body
// bytes, then stall. The body is read before any slot is taken, so none
// of them holds one: a password login (GET with Basic, as docker sends it)
// from the stallers' address and a POST password grant from another both
// get tokens while they stall. The stallers are then cut off with 408 at
// the body deadline (read_header_timeout, 2 s here), well before
// read_timeout (30 s); of those
// from one address, past its share of bodies being read, the rest are
// refused at once with 503.
func TestSlowBodiesDoNotStarve(t *testing.T) {
	t.Parallel()
	const (
		maxConcurrent = 16
		stallers      = 64
	)
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	writeFile(t, htpasswd, htpasswdLine(t, "alice", passwords["alice"]))
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, fmt.Sprintf(`listen: 127.0.0.1:0
trusted_proxies: [127.0.0.1/32]
limits:
  max_concurrent: %d
  read_header_timeout: 2s # also the body's deadline
  read_timeout: 30s
authn:
  htpasswd: %s
`, maxConcurrent, htpasswd))
	srv, logs := startServer(t, cfg)
	addr := srv.Addr()

	// A staller: POST headers, then (once the server asks for the body
	// with 100 Continue, that is, once it is reading it) a few bytes.
	type staller struct {
		conn net.Conn
		br   *bufio.Reader
		// first is the status of the first answer: 100 (reading the
		// body) or the refusal.
		first int
	}
	open := func(forwardedFor string) (*staller, error) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return nil, err
		}
		xff := ""
		if forwardedFor != "" {
			xff = "X-Forwarded-For: " + forwardedFor + "\r\n"
		}
		_, err = fmt.Fprintf(c, "POST /auth HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
			"Content-Length: 300\r\nExpect: 100-continue\r\n%s\r\n", addr, xff)
		if err != nil {
			c.Close()
			return nil, err
		}
		s := &staller{conn: c, br: bufio.NewReader(c)}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(s.br, nil)
		if err != nil {
			c.Close()
			return nil, err
		}
		resp.Body.Close()
		s.first = resp.StatusCode
		if s.first == http.StatusContinue {
			_, err = io.WriteString(c, "grant_type=password&user")
		}
		return s, err
	}
	var (
		mu   sync.Mutex
		all  []*staller
		errs []error
		wg   sync.WaitGroup
	)
	t.Cleanup(func() {
		for _, s := range all {
			s.conn.Close()
		}
	})
	for i := range stallers {
		for _, xff := range []string{fmt.Sprintf("198.51.100.%d", i+1), ""} {
			wg.Go(func() {
				s, err := open(xff)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				all = append(all, s)
			})
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d stallers could not connect, first: %v", len(errs), errs[0])
	}
	started := time.Now()
	counts := map[int]int{}
	for _, s := range all {
		counts[s.first]++
	}
	// 64 from their own addresses, and the share of bodies one address
	// may have read at once (an eighth of max_concurrent, at least 4),
	// are being read; the rest are refused at once.
	const share = 4
	if counts[http.StatusContinue] != stallers+share || counts[http.StatusServiceUnavailable] != stallers-share {
		t.Fatalf("first answers to the stallers: %v, want %d × 100 Continue and %d × 503", counts, stallers+share, stallers-share)
	}

	// The legitimate logins, while the stallers stall.
	q := url.Values{"service": {"registry.example.com"}, "scope": {"repository:alice/app:pull"}}
	res, err := fetchToken(t.Context(), addr, "alice", passwords["alice"], "repository:alice/app:pull")
	if err != nil || res.status != http.StatusOK {
		t.Errorf("alice's login (GET) from the stallers' address: %d %q %v", res.status, res.message, err)
	}
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {passwords["alice"]},
		"service": q["service"], "scope": q["scope"]}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/auth", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", "192.0.2.7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"access_token"`) {
		t.Errorf("alice's login (POST) from another address: %d %s", resp.StatusCode, body)
	}
	legitimate := time.Since(started)
	if legitimate > 1500*time.Millisecond { // well before the body deadline
		t.Errorf("the legitimate logins took %v while the stallers stalled", legitimate)
	}

	// The stallers were still stalled (nothing answered them before the
	// deadline), and are then cut off with 408.
	var cut sync.WaitGroup
	timeouts := make(chan int, len(all))
	for _, s := range all {
		if s.first != http.StatusContinue {
			continue
		}
		cut.Go(func() {
			_ = s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(s.br, nil)
			if err != nil {
				timeouts <- 0
				return
			}
			resp.Body.Close()
			timeouts <- resp.StatusCode
		})
	}
	cut.Wait()
	close(timeouts)
	took := time.Since(started)
	for status := range timeouts {
		if status != http.StatusRequestTimeout {
			t.Errorf("a staller got %d, want 408", status)
			break
		}
	}
	if took > 5*time.Second {
		t.Errorf("the stallers were cut off after %v, want about the 2 s body deadline", took)
	}
	t.Logf("legitimate logins answered in %v; %d stallers cut off with 408 after %v; %d refused at once",
		legitimate, counts[http.StatusContinue], took, counts[http.StatusServiceUnavailable])
	if t.Failed() {
		t.Logf("log:\n%s", logs)
	}
}

package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/server"
)

// Slow clients (admission.go): a body is read before any slot is taken and
// under BodyTimeout, a declared Content-Length over the limit is refused
// before any 100 Continue, and one client address holds a bounded share.

// slowServer serves fakes over real HTTP/1.1 on loopback (deadlines and
// 100 Continue need a real connection), with opts changed by modify.
func slowServer(t *testing.T, modify func(*server.Options)) (*fakes, string) {
	t.Helper()
	f := newFakes()
	opts := server.Options{
		Services: []string{service}, Realm: realm, MaxScopes: 4, MaxBodyBytes: maxBody,
		Authenticator: f.authn, Authorizer: f.authz, Minter: f.minter, JWKS: []byte(`{"keys":[]}`),
		Logger: discardLogger(), Now: time.Now,
	}
	if modify != nil {
		modify(&opts)
	}
	ts := httptest.NewServer(server.New(opts))
	t.Cleanup(ts.Close)
	return f, ts.Listener.Addr().String()
}

// rawConn is a client connection written by hand.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

// openPOST sends the headers of a POST /auth declaring a body of
// contentLength bytes, with extra header lines, and then body.
func openPOST(t *testing.T, addr string, contentLength int, extra, body string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_, err = fmt.Fprintf(c, "POST /auth HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n%s\r\n%s",
		addr, contentLength, extra, body)
	if err != nil {
		t.Fatal(err)
	}
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

// next reads the next response (a 100 Continue is one), within wait.
func (c *rawConn) next(t *testing.T, wait time.Duration) *http.Response {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	return resp
}

// status reads the next response and gives its status.
func (c *rawConn) status(t *testing.T, wait time.Duration) int {
	t.Helper()
	resp := c.next(t, wait)
	resp.Body.Close()
	return resp.StatusCode
}

// errorCode is the code of a JSON error response.
func errorCode(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("%d: not a JSON error body (%v)", resp.StatusCode, err)
	}
	return e.Errors[0].Code
}

// stall opens a POST /auth that waits for 100 Continue, gets it (so the
// server is reading its body), sends a few bytes and stops.
func stall(t *testing.T, addr string) *rawConn {
	t.Helper()
	c := openPOST(t, addr, 200, "Expect: 100-continue\r\n", "")
	if code := c.status(t, 5*time.Second); code != http.StatusContinue {
		t.Fatalf("a body about to be sent: %d, want 100 Continue", code)
	}
	if _, err := io.WriteString(c, "grant_type=pass"); err != nil {
		t.Fatal(err)
	}
	return c
}

const goodForm = "grant_type=password&username=alice&password=x&scope=repository%3Aalice%2Fapp%3Apull"

// TestSlowBodyHoldsNoSlot: with MaxConcurrent 2, two requests whose bodies
// are being read (they got 100 Continue) hold no slot: a third request is
// answered, GET or POST; then the slow ones finish and are answered too.
func TestSlowBodyHoldsNoSlot(t *testing.T) {
	t.Parallel()
	_, addr := slowServer(t, func(o *server.Options) { o.MaxConcurrent = 2; o.BodyTimeout = 10 * time.Second })
	slow := []*rawConn{stall(t, addr), stall(t, addr)}

	resp, err := http.Get("http://" + addr + "/auth?scope=repository:alice/app:pull")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a GET while two bodies are slow: %d, want 200", resp.StatusCode)
	}
	resp, err = http.Post("http://"+addr+"/auth", "application/x-www-form-urlencoded", strings.NewReader(goodForm))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a POST while two bodies are slow: %d, want 200", resp.StatusCode)
	}

	// The slow ones were still in flight; their bodies end and they are
	// answered (an unsupported grant here: a complete, read form).
	for _, c := range slow {
		if _, err := io.WriteString(c, strings.Repeat("x", 200-len("grant_type=pass"))); err != nil {
			t.Fatal(err)
		}
		if code := c.status(t, 5*time.Second); code != http.StatusBadRequest {
			t.Errorf("a slow body once complete: %d, want 400", code)
		}
	}
}

// TestSlowBodyTimesOut: a body that stops coming gets 408, a JSON error,
// after BodyTimeout (not read_timeout), and the connection is closed.
func TestSlowBodyTimesOut(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	_, addr := slowServer(t, func(o *server.Options) { o.MaxConcurrent = 2; o.BodyTimeout = timeout })
	start := time.Now()
	c := openPOST(t, addr, 200, "", "grant_type=pass")
	resp := c.next(t, 5*time.Second)
	took := time.Since(start)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("a stalled body: %d, want 408", resp.StatusCode)
	}
	if took < timeout || took > 2*time.Second {
		t.Errorf("408 after %v, want about %v", took, timeout)
	}
	if !resp.Close {
		t.Error("no Connection: close")
	}
	if code := errorCode(t, resp); code != "REQUEST_TIMEOUT" {
		t.Errorf("code %q", code)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.br.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the connection stays open after a 408 (read %d bytes, %v)", n, err)
	}
	t.Logf("408 after %v", took)
}

// TestDeclaredBodyTooLarge: a Content-Length over MaxBodyBytes is refused
// with 413 before anything is read: no 100 Continue first, no wait for the
// body, and the connection is closed after.
func TestDeclaredBodyTooLarge(t *testing.T) {
	t.Parallel()
	_, addr := slowServer(t, nil)
	for _, expect := range []string{"Expect: 100-continue\r\n", ""} {
		c := openPOST(t, addr, 5<<20, expect, "")
		start := time.Now()
		resp := c.next(t, 2*time.Second) // the body never comes: a wait for it would time out
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("%q: first answer %d, want 413 (and no 100 Continue)", expect, resp.StatusCode)
		}
		if !resp.Close {
			t.Errorf("%q: no Connection: close", expect)
		}
		if code := errorCode(t, resp); code != "REQUEST_TOO_LARGE" {
			t.Errorf("%q: code %q", expect, code)
		}
		t.Logf("%q: 413 after %v", expect, time.Since(start))
	}
	// At the limit, the body is read.
	c := openPOST(t, addr, maxBody, "Expect: 100-continue\r\n", "")
	if code := c.status(t, 2*time.Second); code != http.StatusContinue {
		t.Errorf("a body at the limit: %d, want 100 Continue", code)
	}
}

// blockingAuthn holds the requests of the client addresses in hold until
// released; the others go through.
type blockingAuthn struct {
	hold    map[string]bool
	entered chan string
	release chan struct{}
	next    server.Authenticator
}

func (b *blockingAuthn) Authenticate(ctx context.Context, cred identity.Credentials) (identity.Identity, error) {
	if b.hold[cred.ClientIP] {
		b.entered <- cred.ClientIP
		<-b.release
	}
	return b.next.Authenticate(ctx, cred)
}

// grantNothing is an Authorizer safe for concurrent requests.
type grantNothing struct{}

func (grantNothing) Authorize(context.Context, identity.Identity, identity.Request, []access.Scope) ([]access.Decision, error) {
	return nil, nil
}

func fromAddr(h http.Handler, remote string) *httptest.ResponseRecorder {
	hr := httptest.NewRequest(http.MethodGet, "/auth?scope=repository:alice/app:pull", nil)
	hr.RemoteAddr = remote
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, hr)
	return rec
}

// TestPerClientLimit: N requests in flight from one client address (an
// IPv6 one counts by its /64) and the next from it is shed with 503 and
// Retry-After, while another client's is answered; the share is back once
// they end.
func TestPerClientLimit(t *testing.T) {
	t.Parallel()
	const n = 3
	f := newFakes()
	block := &blockingAuthn{
		hold:    map[string]bool{"192.0.2.1": true, "2001:db8:1:2::1": true, "2001:db8:1:2::2": true},
		entered: make(chan string, 2*n), release: make(chan struct{}), next: f.authn,
	}
	h := server.New(server.Options{
		Services: []string{service}, Realm: realm, MaxScopes: 4, MaxBodyBytes: maxBody,
		MaxConcurrent: 64, MaxConcurrentPerClient: n,
		Authenticator: block, Authorizer: grantNothing{}, Minter: f.minter, JWKS: []byte(`{}`),
		Logger: discardLogger(), Now: time.Now,
	})
	var wg sync.WaitGroup
	codes := make(chan int, 2*n)
	hold := func(remote string) {
		wg.Go(func() { codes <- fromAddr(h, remote).Code })
		<-block.entered
	}
	for range n {
		hold("192.0.2.1:1000")
	}
	// One address of a /64 and then another hold its share.
	hold("[2001:db8:1:2::1]:1000")
	for range n - 1 {
		hold("[2001:db8:1:2::2]:1000")
	}

	for _, remote := range []string{"192.0.2.1:2000", "[2001:db8:1:2::3]:2000"} {
		rec := fromAddr(h, remote)
		checkError(t, rec, http.StatusServiceUnavailable)
		if rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After on a shed request", remote)
		}
	}
	if rec := fromAddr(h, "192.0.2.2:1000"); rec.Code != http.StatusOK {
		t.Errorf("another client while one holds its share: %d %s", rec.Code, rec.Body)
	}
	if rec := fromAddr(h, "[2001:db8:1:3::1]:1000"); rec.Code != http.StatusOK {
		t.Errorf("another /64 while one holds its share: %d %s", rec.Code, rec.Body)
	}

	close(block.release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("a request held in flight got %d", c)
		}
	}
	block.hold = nil
	if rec := fromAddr(h, "192.0.2.1:3000"); rec.Code != http.StatusOK {
		t.Errorf("the client once its requests ended: %d %s", rec.Code, rec.Body)
	}
}

// TestPerClientBodies: one address reading N slow bodies gets 503 at once
// for the next (before any 100 Continue), while its GETs are still
// answered: the bodies being read count apart from the requests working.
func TestPerClientBodies(t *testing.T) {
	t.Parallel()
	const n = 2
	_, addr := slowServer(t, func(o *server.Options) {
		o.MaxConcurrent = 2
		o.MaxConcurrentPerClient = n
		o.BodyTimeout = 10 * time.Second
	})
	for range n {
		stall(t, addr)
	}
	c := openPOST(t, addr, 200, "Expect: 100-continue\r\n", "")
	resp := c.next(t, 2*time.Second)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a body past the client's share: %d (Retry-After %q), want 503 with Retry-After at once",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if !resp.Close {
		t.Error("no Connection: close")
	}
	resp.Body.Close()
	for range 2 * n {
		resp, err := http.Get("http://" + addr + "/auth?scope=repository:alice/app:pull")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("a GET from the same address: %d, want 200", resp.StatusCode)
		}
	}
}

package sourcehut_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

func startFake(t *testing.T) (*fakemeta.Server, *clock) {
	t.Helper()
	fake := fakemeta.Start(t)
	clk := newClock()
	fake.SetClock(clk.Now)
	return fake, clk
}

func metaClient(url string, timeout time.Duration) *sourcehut.MetaClient {
	return &sourcehut.MetaClient{URL: url, HTTP: http.DefaultClient, Timeout: timeout}
}

var meField = regexp.MustCompile(`\bme\b`)

func TestValidateValid(t *testing.T) {
	fake, _ := startFake(t)
	tests := []struct {
		name   string
		grants string
	}{
		// Only the registry grant: a query that reads `me` would fail.
		{"registry grant only", service + "/REGISTRY:RW"},
		{"registry RO only", service + "/REGISTRY:RO"},
		{"all grants", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, url := range []string{fake.URL(), fake.URL() + "/"} {
				fake.ResetCalls()
				tok := fake.Mint(fakemeta.TokenOptions{Username: "zozs", Grants: tt.grants})
				if err := metaClient(url, 5*time.Second).Validate(context.Background(), tok); err != nil {
					t.Fatalf("Validate (URL %q): %v", url, err)
				}
				if n := fake.Calls(); n != 1 {
					t.Errorf("Calls = %d, want 1", n)
				}
				q := fake.LastQuery()
				if !strings.Contains(q, "version") || meField.MatchString(q) {
					t.Errorf("query %q: want one on version that does not read me", q)
				}
			}
		})
	}
}

func TestValidateRejected(t *testing.T) {
	fake, clk := startFake(t)
	other := fakemeta.New(bytes.Repeat([]byte{9}, 32))
	revoked := fake.Mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW"})
	fake.Revoke(revoked)
	tests := []struct {
		name string
		tok  string
	}{
		{"bad MAC (another instance's key)", fakemeta.MintWithKey(other.BearerKey(), fakemeta.TokenOptions{
			Username: "zozs", Grants: service + "/REGISTRY:RW", Expires: clk.Now().Add(time.Hour)})},
		{"expired", fake.Mint(fakemeta.TokenOptions{Username: "zozs", Expires: clk.Now().Add(-time.Second)})},
		{"revoked", revoked},
		{"version 1", fake.Mint(fakemeta.TokenOptions{Username: "zozs", Version: 1})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.ResetCalls()
			err := metaClient(fake.URL(), 5*time.Second).Validate(context.Background(), tt.tok)
			if !errors.Is(err, sourcehut.ErrRejected) || errors.Is(err, sourcehut.ErrUnreachable) {
				t.Fatalf("Validate = %v, want ErrRejected only", err)
			}
			if n := fake.Calls(); n != 1 {
				t.Errorf("Calls = %d, want 1", n)
			}
			checkNoSecret(t, err, tt.tok)
		})
	}
}

func TestValidateUnreachable(t *testing.T) {
	fake, _ := startFake(t)
	tok := fake.Mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW"})

	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	// An address nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + l.Addr().String()
	l.Close()

	tests := []struct {
		name    string
		setup   func()
		url     string
		timeout time.Duration
		calls   int64 // calls the fake counts
	}{
		{"500", func() { fake.SetStatus(500) }, fake.URL(), 5 * time.Second, 1},
		{"502", func() { fake.SetStatus(502) }, fake.URL(), 5 * time.Second, 1},
		{"503", func() { fake.SetStatus(503) }, fake.URL(), 5 * time.Second, 1},
		{"down", func() { fake.SetDown(true) }, fake.URL(), 5 * time.Second, 1},
		{"slower than Timeout", func() { fake.SetDelay(2 * time.Second) }, fake.URL(), 50 * time.Millisecond, 1},
		{"garbage", func() { fake.SetGarbage(true) }, fake.URL(), 5 * time.Second, 1},
		{"wrong path on the fake", func() {}, fake.URL() + "/api", 5 * time.Second, 0},
		{"404 server", func() {}, notFound.URL, 5 * time.Second, 0},
		{"connection refused", func() {}, closedURL, 5 * time.Second, 0},
		{"unparsable URL", func() {}, "http://[::1", 5 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.ResetCalls()
			tt.setup()
			t.Cleanup(func() {
				fake.SetStatus(0)
				fake.SetDown(false)
				fake.SetDelay(0)
				fake.SetGarbage(false)
			})
			err := metaClient(tt.url, tt.timeout).Validate(context.Background(), tok)
			if !errors.Is(err, sourcehut.ErrUnreachable) || errors.Is(err, sourcehut.ErrRejected) {
				t.Fatalf("Validate = %v, want ErrUnreachable only", err)
			}
			if n := fake.Calls(); n != tt.calls {
				t.Errorf("Calls = %d, want %d", n, tt.calls)
			}
			checkNoSecret(t, err, tok)
		})
	}
}

// TestValidateAnswers covers answers the fake does not give, from a server
// that also checks the request.
func TestValidateAnswers(t *testing.T) {
	tok := encodeRaw(payload(0, t0.Unix(), "", "", "zozs"))
	tests := []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"data", 200, `{"data":{"version":{"major":0,"minor":79,"patch":0}}}`, nil},
		{"401", 401, `{"errors":[{"message":"Authentication error: Authorization header is required"}]}`, sourcehut.ErrRejected},
		{"403 without body", 403, ``, sourcehut.ErrRejected},
		{"200 with errors", 200, `{"errors":[{"message":"Access denied for invalid auth method","path":["version"]}],"data":null}`, sourcehut.ErrRejected},
		{"200 with long error message", 200, `{"errors":[{"message":"` + strings.Repeat("x", 1000) + `"}]}`, sourcehut.ErrRejected},
		{"200 data null", 200, `{"data":null}`, sourcehut.ErrUnreachable},
		{"200 empty object", 200, `{}`, sourcehut.ErrUnreachable},
		{"200 empty body", 200, ``, sourcehut.ErrUnreachable},
		{"400", 400, `{"errors":[{"message":"Authentication error: Invalid OAuth bearer token"}]}`, sourcehut.ErrUnreachable},
		{"422", 422, `{"errors":[{"message":"Cannot query field"}],"data":null}`, sourcehut.ErrUnreachable},
		{"301", 301, ``, sourcehut.ErrUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reqErr error
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				switch {
				case r.Method != http.MethodPost || r.URL.Path != "/query":
					reqErr = errors.New("request is " + r.Method + " " + r.URL.Path)
				case r.Header.Get("Authorization") != "Bearer "+tok:
					reqErr = errors.New("wrong Authorization header")
				case r.Header.Get("Content-Type") != "application/json":
					reqErr = errors.New("Content-Type is " + r.Header.Get("Content-Type"))
				case !strings.Contains(string(body), `"query"`) || meField.Match(body):
					reqErr = errors.New("body is " + string(body))
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body) // a response writer's error has nowhere to go
			}))
			defer srv.Close()
			err := metaClient(srv.URL, 5*time.Second).Validate(context.Background(), tok)
			srv.Close()
			if reqErr != nil {
				t.Errorf("request: %v", reqErr)
			}
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Validate = %v, want %v", err, tt.want)
			}
			if err != nil && len(err.Error()) > 400 {
				t.Errorf("error message is %d bytes long", len(err.Error()))
			}
			checkNoSecret(t, err, tok)
		})
	}
}

func TestValidateCallerContext(t *testing.T) {
	fake, _ := startFake(t)
	tok := fake.Mint(fakemeta.TokenOptions{Username: "zozs"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := metaClient(fake.URL(), 5*time.Second).Validate(ctx, tok)
	if !errors.Is(err, sourcehut.ErrUnreachable) {
		t.Fatalf("Validate with a cancelled context = %v, want ErrUnreachable", err)
	}
	checkNoSecret(t, err, tok)
}

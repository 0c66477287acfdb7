package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

const (
	service = "registry.example.com"
	// startTimeout bounds the wait for a server's first token.
	startTimeout = 30 * time.Second
	// stopGrace is how long a server gets to shut down on SIGTERM.
	stopGrace = 3 * time.Second
)

// users are the htpasswd users; their passwords are random per run.
var users = []string{"alice", "bob", "carol"}

// shUser is the Sourcehut user of the sourcehut case: the one name
// authn.sourcehut.users lists (the default lets nobody in), and not an
// htpasswd user, so sourcehut:dave owns dave/* as a real one would (a
// Sourcehut account named like a local account owns no namespace).
const shUser = "dave"

// everyAccount is authn.sourcehut.users for the sourcehut-100k case, whose
// distinct users (u000000, u000001, ...) are too many to list: every
// account of the instance may log in, as on a site open to all of sr.ht.
var everyAccount = []string{"*"}

// env is what every case shares: the server binary, keys, htpasswd, and
// the fake meta.sr.ht.
type env struct {
	tmp       string
	bin       string // the server binary
	self      string // loadbench's own executable, for the baseline
	wrk       string // the load generator
	keys      map[string]string
	htpasswd  string
	passwords map[string]string
	meta      *fakemeta.Server
	metaURL   string
	metaStop  func()
	configs   int
	log       io.Writer
}

// prepare builds the server (unless bin is given), and writes keys and an
// htpasswd into tmp; it starts the fake meta.sr.ht.
func prepare(ctx context.Context, tmp, repo, bin string, log io.Writer) (*env, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("own executable: %w", err)
	}
	e := &env{tmp: tmp, self: self, keys: map[string]string{}, passwords: map[string]string{}, log: log}
	if bin != "" {
		e.bin = bin
	} else {
		e.bin = filepath.Join(tmp, "srht-registry")
		fmt.Fprintf(log, "building %s/cmd/srht-registry\n", repo)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", e.bin, "./cmd/srht-registry")
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/srht-registry in %s: %w\n%s", repo, err, out)
		}
	}
	for _, kt := range []string{"ec", "ed25519"} {
		dir := filepath.Join(tmp, "keys-"+kt)
		cmd := exec.CommandContext(ctx, e.bin, "keys", "--out", dir, "--type", kt)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("srht-registry keys --type %s: %w\n%s", kt, err, out)
		}
		e.keys[kt] = filepath.Join(dir, "key.pem")
	}
	var lines bytes.Buffer
	for _, u := range users {
		pw := rand.Text()
		e.passwords[u] = pw
		cmd := exec.CommandContext(ctx, e.bin, "hash-password", "--cost", "10", u)
		cmd.Stdin = strings.NewReader(pw + "\n")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("srht-registry hash-password: %w\n%s", err, stderr.Bytes())
		}
		if !bytes.HasPrefix(out, []byte(u+":$2a$10$")) && !bytes.HasPrefix(out, []byte(u+":$2y$10$")) {
			return nil, fmt.Errorf("hash-password --cost 10 wrote %q, not a cost 10 bcrypt line", truncate(string(out), 40))
		}
		lines.Write(out)
	}
	e.htpasswd = filepath.Join(tmp, "htpasswd")
	if err := os.WriteFile(e.htpasswd, lines.Bytes(), 0o600); err != nil {
		return nil, err
	}

	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	e.meta = fakemeta.New(seed)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fake meta.sr.ht: %w", err)
	}
	srv := &http.Server{Handler: e.meta.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	e.metaURL = "http://" + ln.Addr().String()
	e.metaStop = func() { _ = srv.Close() }
	return e, nil
}

func (e *env) close() {
	if e.metaStop != nil {
		e.metaStop()
	}
}

// freePort returns a loopback address nobody listens on right now. The
// server's log level is warn, so its "listening" line (info) is not
// printed; startServer retries when the port was taken meanwhile.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// serverOptions is what differs between the cases' servers.
type serverOptions struct {
	// shUsers may log in with Sourcehut tokens (names, or "*" for every
	// account).
	shUsers []string
	// cacheSize is authn.sourcehut.cache_size; 0 keeps the default.
	cacheSize int
	// bruteForceOff sets brute_force.threshold: 0, so a case that sends
	// wrong passwords on purpose measures them and not the 429s.
	bruteForceOff bool
}

// serverConfig is the benchmark config: warn logs, the embedded policy
// with public library/*, every authentication method on, Sourcehut login
// open to o.shUsers.
func serverConfig(listen, key, htpasswd, metaURL string, o serverOptions) string {
	cache := ""
	if o.cacheSize > 0 {
		cache = fmt.Sprintf("    cache_size: %d\n", o.cacheSize)
	}
	if o.bruteForceOff {
		cache += "brute_force:\n  threshold: 0\n"
	}
	quoted := make([]string, len(o.shUsers))
	for i, u := range o.shUsers {
		quoted[i] = strconv.Quote(u)
	}
	return fmt.Sprintf(`# written by loadbench
listen: %q
service: %s
issuer: srht-registry
token:
  key: %q
authn:
  anonymous: true
  htpasswd: %q
  sourcehut:
    enabled: true
    meta_url: %q
    users: [%s]
%spolicy:
  data:
    public: ["library/*"]
log:
  level: warn
`, listen, service, key, htpasswd, metaURL, strings.Join(quoted, ", "), cache)
}

// running is a started server (or baseline) that has served a token.
type running struct {
	proc    *child
	addr    string
	startup time.Duration // from exec to the first 200 on /auth
}

// startServer starts srht-registry with the key of keyType and the config
// serverConfig writes for o.
func (e *env) startServer(ctx context.Context, keyType string, o serverOptions) (*running, error) {
	return e.start(ctx, "srht-registry", func(addr string) (string, []string, error) {
		e.configs++
		path := filepath.Join(e.tmp, fmt.Sprintf("config-%d.yaml", e.configs))
		if err := os.WriteFile(path, []byte(serverConfig(addr, e.keys[keyType], e.htpasswd, e.metaURL, o)), 0o600); err != nil {
			return "", nil, err
		}
		return e.bin, []string{"serve", "--config", path}, nil
	})
}

// startBaseline starts loadbench's own bare signer with the key of keyType.
func (e *env) startBaseline(ctx context.Context, keyType string) (*running, error) {
	return e.start(ctx, "baseline", func(addr string) (string, []string, error) {
		return e.self, []string{"baseline", "--key", e.keys[keyType], "--listen", addr}, nil
	})
}

func (e *env) start(ctx context.Context, name string, command func(addr string) (string, []string, error)) (*running, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		path, args, err := command(addr)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		proc, err := startChild(name, path, args...)
		if err != nil {
			return nil, err
		}
		d, err := waitFirstToken(ctx, proc, addr, t0)
		if err == nil {
			return &running{proc: proc, addr: addr, startup: d}, nil
		}
		proc.Stop(stopGrace)
		out := proc.output.String()
		lastErr = fmt.Errorf("%s did not serve a token: %w\n--- %s output ---\n%s--- end of output ---", name, err, name, out)
		if ctx.Err() != nil || !strings.Contains(out, "address already in use") {
			return nil, lastErr
		}
	}
	return nil, lastErr
}

// anonURL is the anonymous request of the start-up check and the
// anonymous cases.
func anonURL(addr string) string {
	return authURL(addr, "repository:library/base:pull")
}

func authURL(addr string, scopes ...string) string {
	return "http://" + addr + authPath(scopes...)
}

// authPath is the path and query of a token request for scopes.
func authPath(scopes ...string) string {
	q := url.Values{"service": {service}}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	return "/auth?" + q.Encode()
}

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// waitFirstToken polls addr with anonymous token requests until one is
// answered 200 with a token, and returns the time since t0.
func waitFirstToken(ctx context.Context, proc *child, addr string, t0 time.Time) (time.Duration, error) {
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		Timeout:   2 * time.Second,
	}
	defer client.CloseIdleConnections()
	u := anonURL(addr)
	last := "no answer"
	for {
		if proc.Exited() {
			return 0, fmt.Errorf("exited (%w) before serving", proc.Err())
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if time.Since(t0) > startTimeout {
			return 0, fmt.Errorf("no token after %v (last: %s)", startTimeout, last)
		}
		resp, err := client.Get(u)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && rerr == nil {
				d := time.Since(t0)
				if _, perr := parseTokenBody(body); perr != nil {
					return 0, fmt.Errorf("first answer: %w", perr)
				}
				return d, nil
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, truncate(string(body), 200))
		} else {
			last = err.Error()
		}
		time.Sleep(time.Millisecond)
	}
}

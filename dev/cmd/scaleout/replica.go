package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	service = "registry.example.com"
	issuer  = "srht-registry"
	// shutdownTimeout is the replicas' limits.shutdown_timeout: how long a
	// SIGTERMed replica lets requests in flight finish.
	shutdownTimeout = 10 * time.Second
	// shutdownDelay is the replicas' limits.shutdown_delay: after SIGTERM a
	// replica answers /readyz with 503 for this long while it still serves,
	// so haproxy's check (inter 500ms, fall 2) takes it out before its
	// listener closes and no connection is refused.
	shutdownDelay = 2 * time.Second
	// startTimeout bounds the wait for a process to answer.
	startTimeout = 45 * time.Second
)

// replicaSettings is what every replica's configuration shares.
type replicaSettings struct {
	keyFile, htpasswd, metaURL string
	sourcehutUser              string // the one Sourcehut user that may log in
	bundleURL, bundleSecret    string
	trustedProxy               string
	minDelay, maxDelay         int    // bundle polling, seconds
	bfThreshold                int    // brute_force.threshold
	bfStore                    string // brute_force.store: the shared Redis
}

// replicaConfig is one replica's configuration: everything but the listen
// addresses and the X-Replica header is the same for all of them.
func replicaConfig(s replicaSettings, name, listen, metricsListen string) string {
	return fmt.Sprintf(`# written by dev/cmd/scaleout: replica %[1]s
listen: %[2]q
service: %[3]s
issuer: %[4]s
token:
  key: %[5]q                 # the same signing key on every replica
authn:
  htpasswd: %[6]q            # the same users on every replica
  sourcehut:
    enabled: true
    meta_url: %[7]q
    users: [%[18]q]          # the default lets nobody in
trusted_proxies: [%[8]q]     # haproxy connects from here; its X-Forwarded-For is believed
metrics:
  listen: %[9]q
brute_force:
  threshold: %[19]d            # failed logins per address and per user name, for the whole fleet
  store: %[20]q                # the counts and blocks shared through Redis
limits:
  shutdown_timeout: %[10]s
  shutdown_delay: %[17]s
log:
  level: info
  format: json
policy:
  startup_wait: 30s
  opa:
    services:
      control-plane:
        url: %[11]q
        headers:
          %[12]s: %[1]s            # lets the bundle server tell replicas apart
    keys:
      bundle-key:
        algorithm: HS256
        key: %[13]q
    bundles:
      registry:
        service: control-plane
        resource: %[14]s
        signing:
          keyid: bundle-key
        polling:
          min_delay_seconds: %[15]d
          max_delay_seconds: %[16]d
`, name, listen, service, issuer, s.keyFile, s.htpasswd, s.metaURL, s.trustedProxy, metricsListen,
		shutdownTimeout, s.bundleURL, replicaHeader, s.bundleSecret, strings.TrimPrefix(bundlePath, "/"),
		s.minDelay, s.maxDelay, shutdownDelay, s.sourcehutUser, s.bfThreshold, s.bfStore)
}

// replica is one srht-registry replica: a fixed port (haproxy's config
// names it) and every process that ran on it.
type replica struct {
	name        string
	addr        string // 127.0.0.1:PORT
	metricsAddr string
	config      string
	procs       []*child
	stopped     string // "SIGTERM at +…", for the report
}

func (r *replica) current() *child {
	if len(r.procs) == 0 {
		return nil
	}
	return r.procs[len(r.procs)-1]
}

func (r *replica) running() bool {
	c := r.current()
	return c != nil && !c.Exited()
}

// start starts a new process of the replica and waits until it is ready.
func (r *replica) start(ctx context.Context, server, logDir string) error {
	n := len(r.procs) + 1
	proc, err := startChild(fmt.Sprintf("%s#%d", r.name, n), filepath.Join(logDir, fmt.Sprintf("%s-%d.log", r.name, n)), nil, nil,
		server, "serve", "--config", r.config)
	if err != nil {
		return err
	}
	r.procs = append(r.procs, proc)
	if err := waitHTTP(ctx, proc, "http://"+r.addr+"/readyz", http.StatusOK); err != nil {
		return fmt.Errorf("%s did not become ready: %w\n--- log ---\n%s", r.name, err, truncate(proc.log.String(), 4000))
	}
	return nil
}

// waitHTTP polls url until it answers want, the process ends or
// startTimeout passes.
func waitHTTP(ctx context.Context, proc *child, url string, want int) error {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	last := "no answer"
	for {
		if proc != nil && proc.Exited() {
			return fmt.Errorf("exited (%w)", proc.Err())
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %d from %s after %v (last: %s)", want, url, startTimeout, last)
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, truncate(strings.TrimSpace(string(body)), 200))
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logTally is what one replica process's JSON log says it did.
type logTally struct {
	tokens     int            // GET/POST /auth answered 200: tokens served
	authErrors map[int]int    // /auth answered otherwise, by status
	byClientIP map[string]int // /auth requests by the client address the replica worked out
	// byPrincipal counts /auth requests by principal ("htpasswd:go1",
	// "sourcehut:dave"; the bare subject when the line names no provider)
	// and client address.
	byPrincipal map[string]map[string]int
	readyz      int // health checks (haproxy's and ours)
	afterSIGTRM int // requests that finished after "shutting down": drained
	shutdown    bool
	errorLines  []string // level ERROR lines, for the report
	badLines    int
}

// parseReplicaLog reads a replica's JSON log (log.format: json): one
// msg=request line per request.
func parseReplicaLog(r io.Reader) logTally {
	t := logTally{authErrors: map[int]int{}, byClientIP: map[string]int{}, byPrincipal: map[string]map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue // OPA or Go runtime output that is not ours
		}
		var l struct {
			Level    string `json:"level"`
			Msg      string `json:"msg"`
			Path     string `json:"path"`
			Status   int    `json:"status"`
			ClientIP string `json:"client_ip"`
			Provider string `json:"provider"`
			Subject  string `json:"subject"`
			Error    string `json:"error"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			t.badLines++
			continue
		}
		if l.Level == "ERROR" {
			t.errorLines = append(t.errorLines, fmt.Sprintf("%s %s %d: %s", l.Msg, l.Path, l.Status, truncate(l.Error, 300)))
		}
		switch {
		case l.Msg == "shutting down":
			t.shutdown = true
		case l.Msg == "request" && l.Path == "/readyz":
			t.readyz++
		case l.Msg == "request" && l.Path == "/auth":
			if t.shutdown {
				t.afterSIGTRM++
			}
			if l.Status == http.StatusOK {
				t.tokens++
			} else {
				t.authErrors[l.Status]++
			}
			t.byClientIP[l.ClientIP]++
			who := l.Subject
			if l.Provider != "" {
				who = l.Provider + ":" + l.Subject
			}
			if t.byPrincipal[who] == nil {
				t.byPrincipal[who] = map[string]int{}
			}
			t.byPrincipal[who][l.ClientIP]++
		}
	}
	return t
}

// readLog is a replica process's log: from memory, or from its file when
// memory did not hold all of it.
func (c *child) readLog() io.Reader {
	if c.log.Dropped() > 0 {
		if f, err := os.ReadFile(c.logFile); err == nil {
			return strings.NewReader(string(f))
		}
	}
	return strings.NewReader(c.log.String())
}

package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// lbConfig is what the haproxy configuration is made of.
type lbConfig struct {
	Listen string // 127.0.0.1:PORT, the realm's port (clients use localhost:PORT)
	Stats  string // 127.0.0.1:PORT of the stats page (/stats;csv)
	// Source is the loopback address haproxy connects to the replicas from.
	// It is the only address in the replicas' trusted_proxies, so that the
	// clients (127.0.0.1, 127.0.0.2) are never trusted and X-Forwarded-For
	// handling is really exercised.
	Source  string
	Servers []lbServer
	// CheckInter is the health-check interval of an up server; a down
	// server is checked as often, a failing one twice as often.
	CheckInter time.Duration
}

type lbServer struct{ Name, Addr string }

// lbRetries is how often haproxy retries one request (each retry on
// another replica), and lbRetryOn when (see renderHAProxy).
const (
	lbRetries = 3
	lbRetryOn = "conn-failure empty-response response-timeout 503"
)

// ms renders a duration the way haproxy reads it.
func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

// renderHAProxy writes the haproxy (2.6) configuration the scale-out test
// runs, which docs/operations.md's "Running several replicas" section quotes.
//
// The retry the test relies on ("the documented retry") is haproxy's, not
// the clients': `retry-on conn-failure empty-response response-timeout 503`
// with `retries 3` and `option redispatch 1`. A token request is sent
// again, each time to another replica, up to three times, when it could not
// be sent (connection refused: the replica stopped listening on SIGTERM, or
// is dead and not yet marked down), got no answer at all (the replica died
// with the request in flight, or closed a keep-alive connection as haproxy
// reused it), got none within `timeout server`, or got a 503. The
// replica's 503s are its own transient states: load shed past
// limits.max_concurrent (with Retry-After: 1), not ready, or a policy
// evaluation that ran past policy.timeout (100 ms) on a CPU-starved replica
// (the scale-out test saw that on a loaded 2-core machine: a first,
// unmemoised evaluation). The cost: while meta.sr.ht is down, a Sourcehut
// token not yet cached is checked against it by up to four replicas before
// the client gets the 503.
//
// Replaying is safe because a token request changes nothing on the server
// (GET and the OAuth2 POST alike mint a fresh token; only a failed login's
// brute-force count could be counted twice). Other statuses are answers,
// not failures: a 401 or 400 is final.
//
// `timeout server` (10 s) is above authn.sourcehut.timeout (5 s), so a slow
// meta.sr.ht ends in the replica's own answer, not in a haproxy timeout.
func renderHAProxy(c lbConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# written by dev/cmd/scaleout: haproxy 2.6 in front of %d srht-registry replicas
global
    # Logs go to stdout (run with -db), one line per request in the format below.
    log stdout format raw local0
    maxconn 4096

defaults
    mode http
    log global
    # lb <client> <frontend> <backend>/<server> <status> <retries> <termination> <Tc> <Tr> <Ta> <method> <path>
    # retries is prefixed with "+" when the request was redispatched to another server.
    log-format "lb %%ci %%ft %%b/%%s %%ST %%rc %%tsc %%Tc %%Tr %%Ta %%HM %%HPO"
    option dontlognull
    timeout connect 1s          # loopback: a live replica accepts at once
    timeout client 30s
    timeout server 10s          # above authn.sourcehut.timeout (5s): the replica answers first
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
    timeout check 1s

frontend token
    bind %s
    option forwardfor           # X-Forwarded-For: the client's address (the replicas trust only %s)
    default_backend replicas

backend replicas
    balance roundrobin          # "balance source" would pin a client to one replica (see the brute-force note)
    option httpchk GET /readyz
    http-check expect status 200
    # The documented retry: a request that could not be sent, got no answer,
    # timed out or got a 503 is retried up to %d times, each time on another
    # replica (a token request changes nothing, so replaying it is safe).
    retries %d
    retry-on %s
    option redispatch 1
    # Which replica answered (the test asks every replica through the balancer).
    http-response set-header X-Served-By %%s
    default-server check inter %s fastinter %s downinter %s fall 2 rise 2 source %s
`, len(c.Servers), c.Listen, c.Source, lbRetries, lbRetries, lbRetryOn, ms(c.CheckInter), ms(c.CheckInter/2), ms(c.CheckInter), c.Source)
	for _, s := range c.Servers {
		fmt.Fprintf(&b, "    server %s %s\n", s.Name, s.Addr)
	}
	fmt.Fprintf(&b, `
listen stats
    bind %s
    stats enable
    stats uri /stats
`, c.Stats)
	return b.String()
}

// lbRequest is one request line of haproxy's log (the log-format above).
type lbRequest struct {
	client       string
	frontend     string // "token" for token requests; "stats" for the stats page
	server       string // "" when no server was reached (<NOSRV>)
	status       int    // -1 when haproxy got no status
	retries      int
	redispatched bool
	termination  string // ---- when all went well (see haproxy's "termination state")
	method, path string
	at           time.Duration // when it was logged, since the load started (set by the caller)
}

// parseLBLine reads one log line; ok is false for anything else haproxy
// writes to stdout (start-up notices, server state changes).
func parseLBLine(line string) (r lbRequest, ok bool) {
	f := strings.Fields(line)
	if len(f) != 12 || f[0] != "lb" {
		return r, false
	}
	r.client, r.frontend = f[1], f[2]
	_, srv, found := strings.Cut(f[3], "/")
	if !found {
		return r, false
	}
	if srv != "<NOSRV>" {
		r.server = srv
	}
	var err error
	if r.status, err = strconv.Atoi(f[4]); err != nil {
		return r, false
	}
	rc := f[5]
	if strings.HasPrefix(rc, "+") {
		r.redispatched = true
		rc = rc[1:]
	}
	if r.retries, err = strconv.Atoi(rc); err != nil {
		return r, false
	}
	r.termination = f[6]
	r.method, r.path = f[10], f[11]
	return r, true
}

// failed reports whether the balancer's answer to the client was not the
// token server's own success: a status other than 200, or a session that
// ended abnormally (the first termination character is not '-').
func (r lbRequest) failed() bool {
	return r.status != 200 || (r.termination != "" && r.termination[0] != '-')
}

// lbStats is what the stats page says about the backend and its servers.
type lbStats struct {
	servers map[string]lbServerStats // by server name
	backend lbServerStats            // the backend's totals
	order   []string                 // server names in the page's order
}

type lbServerStats struct {
	status       string // UP, DOWN, "UP 1/2", MAINT, …
	sessions     int64  // stot: connection attempts sent to it (a retried request counts on each server tried)
	retries      int64  // wretr: connection retries
	redispatches int64  // wredis
	http5xx      int64  // hrsp_5xx
	downs        int64  // chkdown: UP→DOWN transitions
}

// parseStatsCSV reads haproxy's "/stats;csv" for one backend. Columns are
// found by the names in the header line, which haproxy prefixes with "# ".
func parseStatsCSV(text, backend string) (lbStats, error) {
	st := lbStats{servers: map[string]lbServerStats{}}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(text, "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return st, fmt.Errorf("stats csv: %w", err)
	}
	if len(rows) == 0 {
		return st, errors.New("stats csv: empty")
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, want := range []string{"pxname", "svname", "status", "stot", "wretr", "wredis", "hrsp_5xx", "chkdown"} {
		if _, ok := col[want]; !ok {
			return st, fmt.Errorf("stats csv: no column %q", want)
		}
	}
	num := func(row []string, name string) int64 {
		i := col[name]
		if i >= len(row) || row[i] == "" {
			return 0
		}
		n, _ := strconv.ParseInt(row[i], 10, 64)
		return n
	}
	found := false
	for _, row := range rows[1:] {
		if len(row) <= col["svname"] || row[col["pxname"]] != backend {
			continue
		}
		s := lbServerStats{
			status: row[col["status"]], sessions: num(row, "stot"), retries: num(row, "wretr"),
			redispatches: num(row, "wredis"), http5xx: num(row, "hrsp_5xx"), downs: num(row, "chkdown"),
		}
		switch name := row[col["svname"]]; name {
		case "BACKEND":
			st.backend = s
			found = true
		case "FRONTEND":
		default:
			st.servers[name] = s
			st.order = append(st.order, name)
		}
	}
	if !found {
		return st, fmt.Errorf("stats csv: no backend %q", backend)
	}
	return st, nil
}

// lbStatsNow reads haproxy's stats page.
func (s *scaleout) lbStatsNow() (lbStats, error) {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + s.statsAddr + "/stats;csv")
	if err != nil {
		return lbStats{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return lbStats{}, err
	}
	return parseStatsCSV(string(body), "replicas")
}

// waitLB polls haproxy's stats until cond holds.
func (s *scaleout) waitLB(ctx context.Context, cond func(lbStats) bool) error {
	deadline := time.Now().Add(startTimeout)
	var last lbStats
	for {
		st, err := s.lbStatsNow()
		if err == nil {
			if cond(st) {
				return nil
			}
			last = st
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			var states []string
			for _, n := range last.order {
				states = append(states, n+"="+last.servers[n].status)
			}
			return fmt.Errorf("after %v: %s (last error: %v)", startTimeout, strings.Join(states, " "), err) //nolint:errorlint // err may be nil: no request was made yet
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// timedLines keeps each line written to it with the time it arrived
// (haproxy's raw log lines carry no time of their own).
type timedLines struct {
	mu      sync.Mutex
	partial []byte
	all     []timedLine
}

type timedLine struct {
	at   time.Time
	text string
}

func (t *timedLines) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.all = append(t.all, timedLine{at: now, text: string(t.partial[:i])})
		t.partial = t.partial[i+1:]
	}
	return len(p), nil
}

func (t *timedLines) lines() []timedLine {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.all)
}

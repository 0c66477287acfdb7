package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// opError is one failed client operation.
type opError struct {
	kind string
	at   time.Duration // since the load started
	err  string
}

// clientStats counts one client's operations.
type clientStats struct {
	name     string
	user     string
	ops      map[string]int // by kind: login, push, pull
	failures map[string]int
	errors   []opError
	slowest  time.Duration
}

func (c *clientStats) total() (ops, failures int) {
	for _, n := range c.ops {
		ops += n
	}
	for _, n := range c.failures {
		failures += n
	}
	return ops, failures
}

// recorder collects every client operation; safe for concurrent use.
type recorder struct {
	mu      sync.Mutex
	t0      time.Time
	clients map[string]*clientStats
	order   []string
}

func newRecorder(t0 time.Time) *recorder {
	return &recorder{t0: t0, clients: map[string]*clientStats{}}
}

// add registers a client so it is reported even if it never ran.
func (r *recorder) add(name, user string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.clients[name]; !ok {
		r.clients[name] = &clientStats{name: name, user: user, ops: map[string]int{}, failures: map[string]int{}}
		r.order = append(r.order, name)
	}
}

func (r *recorder) record(client, kind string, start, end time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.clients[client]
	if !ok {
		c = &clientStats{name: client, ops: map[string]int{}, failures: map[string]int{}}
		r.clients[client] = c
		r.order = append(r.order, client)
	}
	c.ops[kind]++
	if d := end.Sub(start); d > c.slowest {
		c.slowest = d
	}
	if err != nil {
		c.failures[kind]++
		c.errors = append(c.errors, opError{kind: kind, at: start.Sub(r.t0), err: oneLine(err.Error())})
	}
}

// snapshot returns the clients in the order they were added.
func (r *recorder) snapshot() []clientStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]clientStats, 0, len(r.order))
	for _, n := range r.order {
		out = append(out, *r.clients[n])
	}
	return out
}

func oneLine(s string) string {
	return truncate(strings.Join(strings.Fields(s), " "), 400)
}

// event is one line of the run's timeline.
type event struct {
	at   time.Duration
	what string
}

// procReport is one process of a replica.
type procReport struct {
	n       int // 1 = first start, 2 = after a restart
	endedBy string
	tally   logTally
	metrics []string // srht_registry_* lines, when /metrics answered
}

type replicaReport struct {
	name  string
	procs []procReport
}

// propagation is how long the policy change took to reach one replica.
type propagation struct {
	replica   string
	fetched   time.Duration // when the bundle server sent it the new revision (-1: never)
	effective time.Duration // when it first answered with the new decision (-1: never)
	err       string
}

// results is everything the run measured; evaluate judges it.
type results struct {
	duration      time.Duration
	clients       []clientStats
	lb            []lbRequest
	lbStats       lbStats
	replicas      []replicaReport
	events        []event
	sigterm       sigtermResult
	oldDecision   map[string]bool // replica → it refused the probe before the change
	propagation   []propagation
	propagationOK time.Duration // the bound: max_delay + slack
	balancer      balancerCheck
	metaCalls     int64
	replicaStarts int
	goUsers       []string // principals of the in-process clients (connect from goClientAddr)
	proxySource   string   // haproxy's source address to the replicas
	registry      registryTally
	bundleReqs    int
	bundle304     int
	bundleGets    map[string]int
	sharedLimit   sharedLimitCheck
	setupErr      string // the run could not be set up or was cut short
}

type sigtermResult struct {
	replica  string
	at       time.Duration // the signal, since the load started
	exited   bool
	exitErr  string // "" = exit status 0
	took     time.Duration
	drained  int // requests that finished after "shutting down"
	signaled bool
	// inflightErr is what became of a token request whose body was still
	// arriving at SIGTERM ("" = answered 200 with a token).
	inflightErr string
}

type balancerCheck struct {
	asked    int
	granted  int
	byServer map[string]int
	errs     []string
}

// lbSummary condenses the balancer's request log.
type lbSummary struct {
	total, auth, retried, redispatched int
	failed                             []lbRequest
	byServer                           map[string]int
	retriedAt                          []time.Duration
}

func summarizeLB(reqs []lbRequest) lbSummary {
	s := lbSummary{byServer: map[string]int{}}
	for _, r := range reqs {
		s.total++
		if r.path == "/auth" {
			s.auth++
		}
		if r.retries > 0 {
			s.retried++
			s.retriedAt = append(s.retriedAt, r.at)
		}
		if r.redispatched {
			s.redispatched++
		}
		if r.failed() {
			s.failed = append(s.failed, r)
		}
		s.byServer[r.server]++
	}
	return s
}

// evaluate lists every way the run failed; none means scale-out: OK.
func (r *results) evaluate() []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if r.setupErr != "" {
		add("run: %s", r.setupErr)
	}

	// 1. No client operation failed (the in-process clients do not retry).
	totalOps := 0
	for _, c := range r.clients {
		ops, fails := c.total()
		totalOps += ops
		if fails > 0 {
			add("client %s: %d of %d operations failed (first: %s at +%s: %s)", c.name, fails, ops,
				c.errors[0].kind, c.errors[0].at.Round(time.Millisecond), c.errors[0].err)
		}
		if c.ops["push"] == 0 || c.ops["pull"] == 0 {
			add("client %s: no push or no pull ran (%v)", c.name, c.ops)
		}
	}
	if totalOps == 0 {
		add("no client operation ran")
	}

	// 2. No token request failed at the balancer, retries included: so the
	// CLIs' own retries had nothing to retry on the token endpoint.
	lb := summarizeLB(r.lb)
	if lb.auth == 0 {
		add("the balancer logged no token request")
	}
	for i, f := range lb.failed {
		if i == 5 {
			add("… and %d more failed requests at the balancer", len(lb.failed)-5)
			break
		}
		add("balancer: %s %s answered %d (termination %s, server %q, %d retries)", f.method, f.path, f.status, f.termination, f.server, f.retries)
	}
	// The SIGTERMed replica drains (limits.shutdown_delay) before it closes:
	// haproxy must not have needed to retry anything in that window, where
	// without the delay refused connections were retried.
	if st := r.sigterm; st.signaled {
		for _, at := range lb.retriedAt {
			if at >= st.at && at < st.at+shutdownDelay {
				add("balancer: a request at +%.2fs was retried although %s was draining (shutdown_delay %v)", at.Seconds(), st.replica, shutdownDelay)
				break
			}
		}
	}
	if r.lbStats.backend.http5xx > 0 {
		add("balancer stats: %d 5xx answers from the backend", r.lbStats.backend.http5xx)
	}

	// 3. The replicas: each served tokens, the graceful stop was graceful,
	// and the client address came from X-Forwarded-For.
	for _, rep := range r.replicas {
		for _, p := range rep.procs {
			t := p.tally
			if p.n == 1 && t.tokens == 0 {
				add("%s: served no token before it was stopped (round robin did not reach it)", rep.name)
			}
			for ip, n := range t.byClientIP {
				if ip == r.proxySource {
					add("%s#%d: %d token requests logged with the proxy's address %s as the client: X-Forwarded-For was not used", rep.name, p.n, n, ip)
				}
			}
			for _, u := range r.goUsers {
				for ip, n := range t.byPrincipal[u] {
					if ip != goClientAddr {
						add("%s#%d: %d token requests of %s logged from %s, not %s (the address the in-process client connects from)", rep.name, p.n, n, u, ip, goClientAddr)
					}
				}
			}
		}
	}
	if len(r.replicas) > 1 {
		// The restarted replica served again: the balancer took it back.
		for _, rep := range r.replicas {
			if len(rep.procs) > 1 && rep.procs[1].tally.tokens == 0 {
				add("%s: served no token after its restart", rep.name)
			}
		}
	}
	st := r.sigterm
	switch {
	case !st.signaled:
		add("no replica was stopped with SIGTERM")
	case !st.exited:
		add("%s: still running %s after SIGTERM", st.replica, st.took.Round(time.Millisecond))
	case st.exitErr != "":
		add("%s: after SIGTERM exited with %s, not 0", st.replica, st.exitErr)
	}
	if st.signaled {
		if st.inflightErr != "" {
			add("%s: the token request in flight at SIGTERM failed: %s", st.replica, st.inflightErr)
		}
		if st.drained == 0 {
			add("%s: its log shows no token request finished after \"shutting down\"", st.replica)
		}
	}

	// 4. The policy change reached every replica within the polling
	// interval (plus slack), and the balancer gives the new decision.
	if len(r.propagation) == 0 {
		add("no replica was checked for the policy change")
	}
	for _, p := range r.propagation {
		switch {
		case !r.oldDecision[p.replica]:
			add("%s: granted the probe before the policy change (the check would prove nothing)", p.replica)
		case p.effective < 0:
			add("%s: never gave the new decision (%s)", p.replica, p.err)
		case p.effective > r.propagationOK:
			add("%s: gave the new decision after %s, more than %s", p.replica, p.effective.Round(time.Millisecond), r.propagationOK)
		}
	}
	b := r.balancer
	if b.asked == 0 || b.granted != b.asked {
		add("balancer: %d of %d decisions through haproxy were the new one (%s)", b.granted, b.asked, strings.Join(b.errs, "; "))
	}
	for _, p := range r.propagation {
		if b.byServer[p.replica] == 0 {
			add("balancer: %s never answered the post-change check through haproxy", p.replica)
		}
	}

	// 5. The registry accepted every token it was given (any replica's):
	// nothing a CLI's retry could have hidden.
	if r.registry.authorized == 0 {
		add("the registry logged no authorized request")
	}
	for i, m := range r.registry.refused {
		if i == 3 {
			add("… and %d more authorization errors in the registry's log", len(r.registry.refused)-3)
			break
		}
		add("registry: %s", m)
	}
	for status, n := range r.registry.errors {
		if status != 404 {
			add("registry: %d responses with status %d", n, status)
		}
	}

	// 6. Each replica keeps its own Sourcehut token cache: one meta.sr.ht
	// call per replica process at most.
	if r.metaCalls > int64(r.replicaStarts) {
		add("meta.sr.ht was called %d times for one token by %d replica processes", r.metaCalls, r.replicaStarts)
	}

	// 7. The brute-force limit holds for the fleet (brute_force.store):
	// threshold failures spread over the replicas block on every one.
	r.sharedLimit.evaluate(add)
	return problems
}

// print writes the result block.
func (r *results) print(w io.Writer, problems []string) {
	fmt.Fprintf(w, "\n== scale-out results (load %s)\n", r.duration.Round(time.Second))
	fmt.Fprintln(w, "timeline:")
	for _, e := range r.events {
		fmt.Fprintf(w, "  +%6.2fs  %s\n", e.at.Seconds(), e.what)
	}

	fmt.Fprintln(w, "clients (no client-side retries in the go-containerregistry clients; the CLIs' own retries cannot be turned off):")
	fmt.Fprintf(w, "  %-8s %-8s %6s %6s %6s %6s %9s %9s\n", "client", "user", "login", "push", "pull", "ops", "failures", "slowest")
	var ops, fails int
	for _, c := range r.clients {
		o, f := c.total()
		ops += o
		fails += f
		fmt.Fprintf(w, "  %-8s %-8s %6d %6d %6d %6d %9d %9s\n", c.name, c.user, c.ops["login"], c.ops["push"], c.ops["pull"], o, f, c.slowest.Round(time.Millisecond))
		for i, e := range c.errors {
			if i == 3 {
				fmt.Fprintf(w, "      … %d more\n", len(c.errors)-3)
				break
			}
			fmt.Fprintf(w, "      %s at +%s: %s\n", e.kind, e.at.Round(time.Millisecond), e.err)
		}
	}
	fmt.Fprintf(w, "  total: %d operations, %d failed\n", ops, fails)

	lb := summarizeLB(r.lb)
	fmt.Fprintf(w, "balancer (haproxy): %d requests (%d token requests), %d retried, %d redispatched, %d failed\n",
		lb.total, lb.auth, lb.retried, lb.redispatched, len(lb.failed))
	fmt.Fprintf(w, "  the retry relied upon: haproxy's retry-on %s, retries %d, option redispatch 1\n", lbRetryOn, lbRetries)
	if len(lb.retriedAt) > 0 {
		fmt.Fprintf(w, "  retried requests by time: %s\n", retryWindows(lb.retriedAt, 1500*time.Millisecond))
	}
	for _, f := range lb.failed {
		fmt.Fprintf(w, "  failed: %s %s → %d %s (server %q, retries %d)\n", f.method, f.path, f.status, f.termination, f.server, f.retries)
	}
	fmt.Fprintf(w, "  stats: connection retries %d, redispatches %d, backend 5xx %d\n",
		r.lbStats.backend.retries, r.lbStats.backend.redispatches, r.lbStats.backend.http5xx)
	for _, name := range r.lbStats.order {
		s := r.lbStats.servers[name]
		fmt.Fprintf(w, "  %-3s %-10s attempts %5d  answered (log) %5d  connection retries %3d  redispatched away %3d  went down %d×\n",
			name, s.status, s.sessions, lb.byServer[name], s.retries, s.redispatches, s.downs)
	}

	fmt.Fprintln(w, "replicas (from their request logs):")
	for _, rep := range r.replicas {
		for _, p := range rep.procs {
			t := p.tally
			fmt.Fprintf(w, "  %s#%d  tokens served %5d  other /auth answers %v  health checks %4d  client addresses %v  — %s\n",
				rep.name, p.n, t.tokens, t.authErrors, t.readyz, t.byClientIP, p.endedBy)
			for _, m := range p.metrics {
				fmt.Fprintf(w, "      %s\n", m)
			}
			for i, e := range t.errorLines {
				if i == 3 {
					fmt.Fprintf(w, "      … %d more error lines\n", len(t.errorLines)-3)
					break
				}
				fmt.Fprintf(w, "      logged: %s\n", e)
			}
		}
	}
	st := r.sigterm
	if st.signaled {
		status := "exit 0"
		if st.exitErr != "" {
			status = st.exitErr
		}
		if !st.exited {
			status = "did not exit"
		}
		inflight := "answered 200 with a token"
		if st.inflightErr != "" {
			inflight = "FAILED: " + st.inflightErr
		}
		fmt.Fprintf(w, "graceful stop: %s SIGTERM → %s after %s; the request in flight at the signal: %s; %d token requests finished after \"shutting down\"\n",
			st.replica, status, st.took.Round(time.Millisecond), inflight, st.drained)
	}
	fmt.Fprintf(w, "registry: %d requests authorized by a token, %d challenges (a first request without one), %d refused; error responses by status %v (404: HEAD of a blob or manifest not there yet)\n",
		r.registry.authorized, r.registry.challenges, len(r.registry.refused), r.registry.errors)
	fmt.Fprintf(w, "meta.sr.ht (fake): %d token checks for one Sourcehut token across %d replica processes\n", r.metaCalls, r.replicaStarts)
	fmt.Fprintf(w, "bundle server: %d requests, %d full downloads %v, %d answered 304 Not Modified\n", r.bundleReqs, sumValues(r.bundleGets), r.bundleGets, r.bundle304)

	r.sharedLimit.print(w)
	fmt.Fprintf(w, "policy change (bound: %s):\n", r.propagationOK)
	for _, p := range r.propagation {
		eff, fet := "never", "never"
		if p.effective >= 0 {
			eff = fmt.Sprintf("%.2fs", p.effective.Seconds())
		}
		if p.fetched >= 0 {
			fet = fmt.Sprintf("%.2fs", p.fetched.Seconds())
		}
		fmt.Fprintf(w, "  %s  old decision before: %-5v  fetched after %-7s  new decision after %s\n", p.replica, r.oldDecision[p.replica], fet, eff)
	}
	b := r.balancer
	fmt.Fprintf(w, "  through the balancer: %d of %d answers had the new decision, by replica %v\n", b.granted, b.asked, b.byServer)

	if len(problems) == 0 {
		fmt.Fprintln(w, "scale-out: OK")
		return
	}
	fmt.Fprintf(w, "scale-out: FAILED (%d problems)\n", len(problems))
	for _, p := range problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
}

// retryWindows groups retry times that lie within gap of each other:
// "+6.3–7.0s: 9, +9.0–9.6s: 8".
func retryWindows(at []time.Duration, gap time.Duration) string {
	at = slices.Clone(at)
	slices.Sort(at)
	var parts []string
	for i := 0; i < len(at); {
		j := i + 1
		for j < len(at) && at[j]-at[j-1] <= gap {
			j++
		}
		from, to := fmt.Sprintf("%.1f", at[i].Seconds()), fmt.Sprintf("%.1f", at[j-1].Seconds())
		if from == to {
			parts = append(parts, fmt.Sprintf("+%ss: %d", from, j-i))
		} else {
			parts = append(parts, fmt.Sprintf("+%s–%ss: %d", from, to, j-i))
		}
		i = j
	}
	return strings.Join(parts, ", ")
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// sortedEvents returns events in time order.
func sortedEvents(es []event) []event {
	out := slices.Clone(es)
	slices.SortStableFunc(out, func(a, b event) int { return cmp.Compare(a.at, b.at) })
	return out
}

package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

const (
	nReplicas = 3
	// proxySource is the address haproxy connects to the replicas from;
	// the replicas trust only it (see lbConfig.Source).
	proxySource = "127.0.0.3"
	// checkInter is haproxy's health-check interval.
	checkInter = 500 * time.Millisecond
	// shUser is the Sourcehut user (a token from the fake meta.sr.ht): the
	// one authn.sourcehut.users lists, and no htpasswd user, so
	// sourcehut:dave owns dave/*.
	shUser = "dave"
	// probeUser asks for the decision that the policy change flips.
	probeUser  = "probe"
	probeScope = "repository:shared/app:pull"
)

// scaleout is one run: the processes it started, where they listen, the
// secrets they share, and the run's timeline of events.
type scaleout struct {
	opts      options
	tmp       string
	logDir    string
	stderr    io.Writer
	keys      string
	htpasswd  string
	passwords map[string]string
	shToken   string
	meta      *fakemeta.Server
	metaStop  func()
	bundles   *bundleServer
	lb        *child
	lbLines   *timedLines
	lbAddr    string // 127.0.0.1:PORT
	lbHost    string // localhost:PORT, in the realm
	statsAddr string
	replicas  []*replica
	registry  *child
	redis     *child // the replicas' brute_force.store
	regHost   string // localhost:PORT, what clients are given
	image     testImage
	versions  struct{ server, registry, haproxy, redis string }

	t0     time.Time // the load's start
	evMu   sync.Mutex
	events []event
}

func (s *scaleout) event(format string, args ...any) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	at := time.Duration(0)
	if !s.t0.IsZero() {
		at = time.Since(s.t0)
	}
	s.events = append(s.events, event{at: at, what: fmt.Sprintf(format, args...)})
	s.logf("+%.2fs %s", at.Seconds(), fmt.Sprintf(format, args...))
}

func (s *scaleout) close() {
	for _, r := range s.replicas {
		if c := r.current(); c != nil {
			c.Stop(5 * time.Second)
		}
	}
	if s.registry != nil {
		s.registry.Stop(5 * time.Second)
	}
	if s.lb != nil {
		s.lb.Stop(5 * time.Second)
	}
	if s.redis != nil {
		s.redis.Stop(5 * time.Second)
	}
	if s.metaStop != nil {
		s.metaStop()
	}
	if s.bundles != nil {
		s.bundles.close()
	}
}

// runAll runs the load with the stops, then the policy change, and
// gathers the results.
func (s *scaleout) runAll(ctx context.Context) *results {
	o := s.opts
	res := &results{
		duration: o.duration, propagationOK: time.Duration(o.maxDelay)*time.Second + o.slack,
		proxySource: proxySource, goUsers: []string{"htpasswd:go1", "htpasswd:go2", "sourcehut:" + shUser}, oldDecision: map[string]bool{},
		balancer: balancerCheck{byServer: map[string]int{}},
	}
	defer func() { res.events = sortedEvents(s.events) }()

	s.t0 = time.Now()
	rec := newRecorder(s.t0)
	clients, err := s.clients()
	if err != nil {
		res.setupErr = err.Error()
		return res
	}
	for _, c := range clients {
		rec.add(c.name(), c.user())
	}
	s.event("load starts: %d clients for %s", len(clients), o.duration)
	until := s.t0.Add(o.duration)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			if err := timed(ctx, o.opTimeout, rec, c.name(), "login", c.setup); err != nil {
				return
			}
			drive(ctx, c, s.regHost, until, o.opTimeout, rec)
		})
	}
	wg.Go(func() { s.disrupt(ctx, res) })
	wg.Wait()
	s.event("load ends")
	res.clients = rec.snapshot()
	if ctx.Err() != nil {
		res.setupErr = fmt.Sprintf("cut short: %v", ctx.Err())
		return res
	}

	// Bring the SIGTERMed replica back, so the policy change is checked on
	// all three.
	for _, r := range s.replicas {
		if r.running() {
			continue
		}
		if err := r.start(ctx, o.server, s.logDir); err != nil {
			res.setupErr = err.Error()
			return res
		}
		s.event("%s restarted and ready", r.name)
	}
	if err := s.waitLB(ctx, func(st lbStats) bool {
		for _, r := range s.replicas {
			if st.servers[r.name].status != "UP" {
				return false
			}
		}
		return true
	}); err != nil {
		res.setupErr = fmt.Sprintf("haproxy did not mark every replica up again: %v", err)
	}
	s.event("haproxy: every replica up")

	s.checkPropagation(ctx, res)
	// Last: its blocks (of attackAddr and attackUser only) outlive the run.
	s.checkSharedLimit(ctx, res)
	s.gather(res)
	return res
}

// clients builds the load's clients: go-containerregistry in-process
// (two password users, one Sourcehut token), crane, oras and regctl.
func (s *scaleout) clients() ([]loadClient, error) {
	cs := []loadClient{
		newGGCRClient("go1", "go1", &authn.Basic{Username: "go1", Password: s.passwords["go1"]}),
		newGGCRClient("go2", "go2", &authn.Basic{Username: "go2", Password: s.passwords["go2"]}),
		// The user name is ignored for a Sourcehut token; the token's
		// owner logs in, as the principal sourcehut:dave (owner of dave/*).
		newGGCRClient("go-srht", shUser, &authn.Basic{Username: "sourcehut", Password: s.shToken}),
	}
	for _, kind := range []string{"crane", "oras", "regctl"} {
		c, err := newCLIClient(kind, kind, s.passwords[kind], s.opts.tools, s.regHost, s.tmp, s.image, s.opts.opTimeout)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

package authz

import (
	"sync"
	"sync/atomic"
	"time"

	bundleplugin "github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/prometheus/client_golang/prometheus"

	"git.sr.ht/~zozs/srht-registry/internal/access"
)

// Decision outcomes, per requested scope.
const (
	OutcomeGrantedAll     = "granted_all"
	OutcomeGrantedPartial = "granted_partial"
	OutcomeGrantedNone    = "granted_none"
	OutcomeError          = "error"
)

// decisionBuckets span a memoised answer (about a microsecond) to an
// evaluation near the default 100 ms timeout.
var decisionBuckets = []float64{.000005, .00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25}

// authzMetrics are the Authorizer's: decisions by outcome and how long they
// took, and which policy is active since when.
type authzMetrics struct {
	decisions                          *prometheus.CounterVec
	grantedAll, partial, none, errored prometheus.Counter
	duration                           *prometheus.HistogramVec
	memoised, evaluated                prometheus.Observer
	residuals                          *prometheus.CounterVec
	residualMade, residualEvaluator    prometheus.Counter
	activations, activationFailures    prometheus.Counter
	activatedAt                        atomic.Int64 // unix nanoseconds; 0 = never
	revisionInfo, lastActivation       prometheus.Collector
}

func newAuthzMetrics(a *Authorizer) *authzMetrics {
	m := &authzMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "srht_registry_policy_decisions_total",
			Help: "Policy decisions, one per requested scope, by outcome: granted_all, granted_partial, granted_none (denied or undefined) or error (evaluation failed, timed out or no policy was active; nothing is granted).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "srht_registry_policy_decision_duration_seconds",
			Help:    "Time to decide one scope; memoised=true when the decision memo answered without evaluating the policy.",
			Buckets: decisionBuckets,
		}, []string{"memoised"}),
		residuals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "srht_registry_policy_residuals_total",
			Help: "Callers whose residual was made after many decisions the memo did not have: made (their further scopes are decided against it) or evaluator (the policy left something the server does not decide itself, or the partial evaluation failed: OPA's evaluator decides them, as before).",
		}, []string{"result"}),
		activations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "srht_registry_policy_activations_total",
			Help: "Policies put in force: the first, then each reload or bundle activation.",
		}),
		activationFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "srht_registry_policy_activation_failures_total",
			Help: "Bundles that OPA activated but whose query could not be prepared, or that define no allow rule; the previous policy stayed in force.",
		}),
	}
	m.grantedAll = m.decisions.WithLabelValues(OutcomeGrantedAll)
	m.partial = m.decisions.WithLabelValues(OutcomeGrantedPartial)
	m.none = m.decisions.WithLabelValues(OutcomeGrantedNone)
	m.errored = m.decisions.WithLabelValues(OutcomeError)
	m.residualMade = m.residuals.WithLabelValues("made")
	m.residualEvaluator = m.residuals.WithLabelValues("evaluator")
	m.memoised = m.duration.WithLabelValues("true")
	m.evaluated = m.duration.WithLabelValues("false")
	m.lastActivation = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "srht_registry_policy_last_activation_timestamp_seconds",
		Help: "When the policy in force was activated (Unix time); 0 while none is.",
	}, func() float64 {
		if ns := m.activatedAt.Load(); ns != 0 {
			return float64(ns) / 1e9
		}
		return 0
	})
	m.revisionInfo = &revisionCollector{a: a, desc: prometheus.NewDesc(
		"srht_registry_policy_bundle_revision_info",
		"The bundles of the policy in force, with their manifest revisions (the embedded policy is bundle \"embedded\"); always 1.",
		[]string{"bundle", "revision"}, nil)}
	return m
}

// Collectors returns the Authorizer's metrics, for a Prometheus registry.
func (a *Authorizer) Collectors() []prometheus.Collector {
	m := a.metrics
	return []prometheus.Collector{m.decisions, m.duration, m.residuals, m.activations, m.activationFailures, m.lastActivation, m.revisionInfo}
}

// residual counts a caller's residual, made or not.
func (m *authzMetrics) residual(made bool) {
	if made {
		m.residualMade.Inc()
	} else {
		m.residualEvaluator.Inc()
	}
}

func (m *authzMetrics) activated() {
	m.activatedAt.Store(time.Now().UnixNano())
	m.activations.Inc()
}

func (m *authzMetrics) decided(d access.Decision) {
	switch {
	case len(d.Granted) == 0:
		m.none.Inc()
	case len(d.Granted) == len(d.Requested.Actions):
		m.grantedAll.Inc()
	default:
		m.partial.Inc()
	}
	if d.Memoised {
		m.memoised.Observe(d.Duration.Seconds())
	} else {
		m.evaluated.Observe(d.Duration.Seconds())
	}
}

// failed counts scopes that got no decision; took is the failed
// evaluation's time, if there was one.
func (m *authzMetrics) failed(scopes int, took time.Duration) {
	m.errored.Add(float64(scopes))
	if took > 0 {
		m.evaluated.Observe(took.Seconds())
	}
}

// revisionCollector reports the engine in force when scraped, so the
// series always match the policy that decides, with no reset to race.
type revisionCollector struct {
	a    *Authorizer
	desc *prometheus.Desc
}

func (c *revisionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *revisionCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.a.Engine()
	if e == nil {
		return
	}
	for _, b := range e.bundles {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, b.Name, b.Revision)
	}
}

// bundleStatusCollector keeps the last status OPA's bundle plugin reported
// for each configured bundle (names come from the operator's configuration,
// so the label is bounded).
type bundleStatusCollector struct {
	mu       sync.Mutex
	statuses map[string]bundleStatus

	lastDownload, lastActivation, failures *prometheus.Desc
}

type bundleStatus struct {
	lastDownload, lastActivation time.Time
	failures                     float64
}

func newBundleStatusCollector() *bundleStatusCollector {
	return &bundleStatusCollector{
		statuses: map[string]bundleStatus{},
		lastDownload: prometheus.NewDesc("srht_registry_policy_bundle_last_successful_download_timestamp_seconds",
			"When the bundle server last sent the bundle (Unix time; a 304 Not Modified does not count).", []string{"bundle"}, nil),
		lastActivation: prometheus.NewDesc("srht_registry_policy_bundle_last_successful_activation_timestamp_seconds",
			"When OPA last activated a revision of the bundle (Unix time).", []string{"bundle"}, nil),
		failures: prometheus.NewDesc("srht_registry_policy_bundle_failures_total",
			"Bundle downloads that failed, or whose bundle did not verify or activate; the last good revision stayed in force.", []string{"bundle"}, nil),
	}
}

// update is the bundle plugin's listener: called once per download attempt.
func (c *bundleStatusCollector) update(s bundleplugin.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.statuses[s.Name]
	st.lastDownload, st.lastActivation = s.LastSuccessfulDownload, s.LastSuccessfulActivation
	if s.Code != "" {
		st.failures++
	}
	c.statuses[s.Name] = st
}

func (c *bundleStatusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lastDownload
	ch <- c.lastActivation
	ch <- c.failures
}

func (c *bundleStatusCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	unix := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	}
	for name, st := range c.statuses {
		ch <- prometheus.MustNewConstMetric(c.lastDownload, prometheus.GaugeValue, unix(st.lastDownload), name)
		ch <- prometheus.MustNewConstMetric(c.lastActivation, prometheus.GaugeValue, unix(st.lastActivation), name)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, st.failures, name)
	}
}

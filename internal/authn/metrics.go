package authn

import (
	"github.com/prometheus/client_golang/prometheus"
)

// passwordMetrics count the bcrypt checks actually run (concurrent checks
// of the same credentials share one) and the checks the verification cache
// answered instead.
type passwordMetrics struct {
	verifications                *prometheus.CounterVec
	match, mismatch, unknownUser prometheus.Counter
	cacheHits                    prometheus.Counter
	cacheEntries                 prometheus.Collector
}

func newPasswordMetrics(h *Htpasswd) *passwordMetrics {
	m := &passwordMetrics{
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "srht_registry_password_verifications_total",
			Help: "bcrypt comparisons run, by result: match, mismatch, or unknown_user (compared against a dummy hash so that it costs the same).",
		}, []string{"result"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "srht_registry_password_cache_hits_total",
			Help: "Password logins accepted from the verification cache without a bcrypt comparison.",
		}),
		cacheEntries: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "srht_registry_password_cache_entries",
			Help: "Successful password checks the verification cache holds.",
		}, func() float64 { return float64(h.CachedLen()) }),
	}
	m.match = m.verifications.WithLabelValues("match")
	m.mismatch = m.verifications.WithLabelValues("mismatch")
	m.unknownUser = m.verifications.WithLabelValues("unknown_user")
	return m
}

func (m *passwordMetrics) verified(known bool, err error) {
	switch {
	case !known:
		m.unknownUser.Inc()
	case err != nil:
		m.mismatch.Inc()
	default:
		m.match.Inc()
	}
}

// Collectors returns the password metrics, for a Prometheus registry.
func (h *Htpasswd) Collectors() []prometheus.Collector {
	return []prometheus.Collector{h.metrics.verifications, h.metrics.cacheHits, h.metrics.cacheEntries}
}

// The limits of the brute-force throttle, as metric labels.
const (
	limitClientIP = "client_ip"
	limitUser     = "user"
)

// throttleMetrics count the logins refused by the brute-force limits, and
// how many addresses and user names the limits are tracking.
type throttleMetrics struct {
	rejections       *prometheus.CounterVec
	byIP, byUser     prometheus.Counter
	dropped          prometheus.Counter
	storeErrors      prometheus.Counter
	trackedCollector prometheus.Collector
}

func newThrottleMetrics(t *Throttle) *throttleMetrics {
	m := &throttleMetrics{
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "srht_registry_rate_limit_rejections_total",
			Help: "Logins refused with 429 before any credential check, by the limit that refused them: client_ip or user (failed password logins per user name).",
		}, []string{"limit"}),
	}
	m.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "srht_registry_rate_limit_blocks_dropped_total",
		Help: "Offenders not blocked because brute_force.tracked blocks were already active (none is evicted before it ends).",
	})
	m.storeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "srht_registry_rate_limit_store_errors_total",
		Help: "Calls to the shared brute-force store (brute_force.store) that failed; this replica limits logins on its own meanwhile.",
	})
	m.byIP = m.rejections.WithLabelValues(limitClientIP)
	m.byUser = m.rejections.WithLabelValues(limitUser)
	m.trackedCollector = trackedCollector{t: t, desc: prometheus.NewDesc("srht_registry_rate_limit_tracked",
		"Client addresses and user names with failed logins the throttle remembers (bounded by brute_force.tracked each).",
		[]string{"limit"}, nil)}
	return m
}

func (m *throttleMetrics) rejected(limit string) {
	if limit == limitUser {
		m.byUser.Inc()
		return
	}
	m.byIP.Inc()
}

type trackedCollector struct {
	t    *Throttle
	desc *prometheus.Desc
}

func (c trackedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c trackedCollector) Collect(ch chan<- prometheus.Metric) {
	addresses, users := c.t.trackedLen()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(addresses), limitClientIP)
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(users), limitUser)
}

// Collectors returns the throttle's metrics, for a Prometheus registry.
func (t *Throttle) Collectors() []prometheus.Collector {
	cs := []prometheus.Collector{t.metrics.rejections, t.metrics.dropped, t.metrics.trackedCollector}
	if t.shared != nil {
		cs = append(cs, t.metrics.storeErrors)
	}
	return cs
}

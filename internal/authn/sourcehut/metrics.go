package sourcehut

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metaBuckets span a nearby meta.sr.ht (tens of milliseconds) to the
// default 5 s timeout.
var metaBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// metrics are the token cache's hits and misses and the meta.sr.ht calls
// the misses cost.
type metrics struct {
	hits                   *prometheus.CounterVec
	validHits, rejectedHit prometheus.Counter
	misses                 prometheus.Counter
	meta                   *prometheus.HistogramVec
	metaOK, metaRejected   prometheus.Observer
	metaError              prometheus.Observer
	entries                prometheus.Collector
}

func newMetrics(a *Authenticator) *metrics {
	m := &metrics{
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "srht_registry_sourcehut_cache_hits_total",
			Help: "Sourcehut tokens answered from the cache without asking meta.sr.ht, by cache: valid (accepted) or rejected (refused within negative_cache_ttl).",
		}, []string{"cache"}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "srht_registry_sourcehut_cache_misses_total",
			Help: "Sourcehut tokens not in the cache (concurrent misses of one token share one meta.sr.ht call).",
		}),
		meta: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "srht_registry_sourcehut_meta_request_duration_seconds",
			Help:    "meta.sr.ht token validations, by result: ok, rejected (meta.sr.ht refused the token) or error (unreachable, timed out, or an answer we do not understand; nothing is cached).",
			Buckets: metaBuckets,
		}, []string{"result"}),
	}
	m.validHits = m.hits.WithLabelValues("valid")
	m.rejectedHit = m.hits.WithLabelValues("rejected")
	m.metaOK = m.meta.WithLabelValues("ok")
	m.metaRejected = m.meta.WithLabelValues("rejected")
	m.metaError = m.meta.WithLabelValues("error")
	m.entries = entriesCollector{a: a, desc: prometheus.NewDesc("srht_registry_sourcehut_cache_entries",
		"Sourcehut tokens the cache holds, by cache: valid or rejected (each bounded by authn.sourcehut.cache_size).",
		[]string{"cache"}, nil)}
	return m
}

// hit counts an answer from the cache: nil is a valid token.
func (m *metrics) hit(err error) {
	if err == nil {
		m.validHits.Inc()
		return
	}
	m.rejectedHit.Inc()
}

func (m *metrics) called(took time.Duration, err error) {
	switch {
	case err == nil:
		m.metaOK.Observe(took.Seconds())
	case errors.Is(err, ErrRejected):
		m.metaRejected.Observe(took.Seconds())
	default:
		m.metaError.Observe(took.Seconds())
	}
}

type entriesCollector struct {
	a    *Authenticator
	desc *prometheus.Desc
}

func (c entriesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c entriesCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(c.a.valid.Len()), "valid")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(c.a.rejected.Len()), "rejected")
}

// Collectors returns the authenticator's metrics, for a Prometheus registry.
func (a *Authenticator) Collectors() []prometheus.Collector {
	return []prometheus.Collector{a.metrics.hits, a.metrics.misses, a.metrics.meta, a.metrics.entries}
}

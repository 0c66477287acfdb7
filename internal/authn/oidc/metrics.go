package oidc

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// metrics count an issuer's verifications and key fetches. Each
// Authenticator has its own, told apart by the constant label provider,
// so that several register side by side.
type metrics struct {
	verifications             *prometheus.CounterVec
	ok, rejected, unavailable prometheus.Counter
	fetches                   *prometheus.CounterVec
	fetchOK, fetchError       prometheus.Counter
	rateLimited               prometheus.Counter
	keys, keysFetched         prometheus.Collector
}

func newMetrics(a *Authenticator) *metrics {
	labels := prometheus.Labels{"provider": a.name}
	m := &metrics{
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "srht_registry_oidc_verifications_total",
			Help:        "OIDC ID tokens checked, by result: ok, rejected (the token is not good) or unavailable (its issuer's keys could not be fetched).",
			ConstLabels: labels,
		}, []string{"result"}),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "srht_registry_oidc_key_fetches_total",
			Help:        "Fetches of an OIDC issuer's keys (discovery and key set; at start, for an unknown kid, or in the background), by result: ok or error.",
			ConstLabels: labels,
		}, []string{"result"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "srht_registry_oidc_key_fetches_rate_limited_total",
			Help:        "Key fetches for a token with an unknown kid not made because one was made less than the refetch interval before.",
			ConstLabels: labels,
		}),
		keys: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "srht_registry_oidc_keys",
			Help:        "Signing keys of the OIDC issuer held (0 until its key set was first fetched).",
			ConstLabels: labels,
		}, func() float64 { return float64(a.keys.Load().len()) }),
		keysFetched: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "srht_registry_oidc_keys_fetched_timestamp_seconds",
			Help:        "When the OIDC issuer's keys held were fetched, as a Unix time (0 before the first fetch): an old one means refreshes fail.",
			ConstLabels: labels,
		}, func() float64 {
			if s := a.keys.Load(); s != nil {
				return float64(s.fetched.UnixNano()) / 1e9
			}
			return 0
		}),
	}
	m.ok = m.verifications.WithLabelValues("ok")
	m.rejected = m.verifications.WithLabelValues("rejected")
	m.unavailable = m.verifications.WithLabelValues("unavailable")
	m.fetchOK = m.fetches.WithLabelValues("ok")
	m.fetchError = m.fetches.WithLabelValues("error")
	return m
}

func (m *metrics) verified(err error) {
	switch {
	case err == nil:
		m.ok.Inc()
	case errors.Is(err, identity.ErrUnavailable):
		m.unavailable.Inc()
	default:
		m.rejected.Inc()
	}
}

// Collectors returns the authenticator's metrics, for a Prometheus
// registry; those of several authenticators register side by side.
func (a *Authenticator) Collectors() []prometheus.Collector {
	return []prometheus.Collector{a.metrics.verifications, a.metrics.fetches, a.metrics.rateLimited, a.metrics.keys, a.metrics.keysFetched}
}

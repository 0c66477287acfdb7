package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"git.sr.ht/~zozs/srht-registry/internal/config"
	"git.sr.ht/~zozs/srht-registry/internal/server"
)

// reloadMetrics count reloads (SIGHUP or a changed file) and whether the
// last one worked, as Prometheus counts its own config reloads.
type reloadMetrics struct {
	reloads            *prometheus.CounterVec
	succeeded, failed  prometheus.Counter
	lastSuccessful     prometheus.Gauge
	lastSuccessSeconds prometheus.Gauge
}

func newReloadMetrics(now time.Time) *reloadMetrics {
	m := &reloadMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "srht_registry_reloads_total",
			Help: "Reloads of the config file, keys, htpasswd file, local policy and TLS pair (SIGHUP or a changed file), by result: success or failure (what failed kept its last good state).",
		}, []string{"result"}),
		lastSuccessful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "srht_registry_config_last_reload_successful",
			Help: "1 if the last reload worked (or none has been tried), 0 if it failed.",
		}),
		lastSuccessSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "srht_registry_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration last loaded completely (Unix time): at start, then at each successful reload.",
		}),
	}
	m.succeeded = m.reloads.WithLabelValues("success")
	m.failed = m.reloads.WithLabelValues("failure")
	m.lastSuccessful.Set(1)
	m.lastSuccessSeconds.Set(float64(now.UnixNano()) / 1e9)
	return m
}

func (m *reloadMetrics) observe(err error, now time.Time) {
	if err != nil {
		m.failed.Inc()
		m.lastSuccessful.Set(0)
		return
	}
	m.succeeded.Inc()
	m.lastSuccessful.Set(1)
	m.lastSuccessSeconds.Set(float64(now.UnixNano()) / 1e9)
}

func (m *reloadMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.reloads, m.lastSuccessful, m.lastSuccessSeconds}
}

// newRegistry is the process's metrics: the components', the reloads', the
// Go runtime's and the process's, and what was built.
func newRegistry(components []prometheus.Collector, reloads *reloadMetrics) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	all := append([]prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(),
	}, components...)
	all = append(all, reloads.collectors()...)
	for _, c := range all {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return reg, nil
}

// buildInfo is the usual constant 1 with the build's versions as labels.
func buildInfo() prometheus.Collector {
	version, commit, goVersion, opaVersion := buildVersions()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "srht_registry_build_info",
		Help:        "The running build: version, VCS commit, Go and OPA versions; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit, "go_version": goVersion, "opa_version": opaVersion},
	})
	g.Set(1)
	return g
}

// buildVersions reads the module version, commit, Go version and OPA
// version from the build information of the binary.
func buildVersions() (version, commit, goVersion, opaVersion string) {
	version, commit, opaVersion = "(devel)", "unknown", "unknown"
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	goVersion = info.GoVersion
	if info.Main.Version != "" {
		version = info.Main.Version
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			commit = s.Value
		}
	}
	for _, d := range info.Deps {
		if d.Path == "github.com/open-policy-agent/opa" {
			opaVersion = d.Version
		}
	}
	return
}

// metricsServer serves /metrics on its own listener; nil when
// metrics.listen is empty.
type metricsServer struct {
	srv  *http.Server
	ln   net.Listener
	errc chan error
}

func startMetrics(c config.Metrics, reg *prometheus.Registry, log *slog.Logger) (*metricsServer, error) {
	if c.Listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("metrics listen: %w", err)
	}
	m := &metricsServer{
		ln: ln,
		srv: &http.Server{
			Handler:           server.MetricsHandler(reg, c.Path, log),
			ReadHeaderTimeout: 5 * time.Second,
			WriteTimeout:      30 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		errc: make(chan error, 1),
	}
	go func() { m.errc <- m.srv.Serve(ln) }()
	log.Info("metrics listening", "addr", ln.Addr().String(), "path", c.Path)
	return m, nil
}

// stop closes the metrics listener: a scrape in flight is cut short, which
// a scraper retries on its next interval.
func (m *metricsServer) stop() error {
	if m == nil {
		return nil
	}
	if err := m.srv.Close(); err != nil {
		return err
	}
	if err := <-m.errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

package server

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// requestBuckets span a memoised anonymous token (well under a millisecond)
// to a login waiting on a slow meta.sr.ht.
var requestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// metrics are the HTTP side's: requests by endpoint, method and status,
// their latency, tokens issued by identity method, and load shed.
type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	tokens        *prometheus.CounterVec
	refreshTokens *prometheus.CounterVec
	overload      prometheus.Counter
	inFlight      prometheus.Gauge

	// What a request counts, looked up once rather than by its label
	// values on every request (hashing them, and formatting the status):
	// the latency histogram of each endpoint, the token counters of each
	// method, and the request counter of each endpoint, method and status
	// met so far (a bounded set: the handler's statuses).
	durationBy      [len(endpoints)]prometheus.Observer
	tokensBy        map[identity.Method]prometheus.Counter
	refreshTokensBy map[identity.Method]prometheus.Counter
	requestsBy      sync.Map // requestKey → prometheus.Counter
}

// requestKey names a request counter: endpoint and method by their index
// in endpoints and methods.
type requestKey struct {
	endpoint, method uint8
	status           uint16
}

// endpoints and methods are the values of the endpoint and method labels.
var (
	endpoints = [...]string{"auth", "jwks", "healthz", "readyz", "other"}
	methods   = [...]string{http.MethodGet, http.MethodPost, http.MethodHead, "other"}
)

func newMetrics() *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "srht_registry_http_requests_total",
			Help: "HTTP requests by endpoint (auth, jwks, healthz, readyz, other), method (GET, POST, HEAD, other) and status code.",
		}, []string{"endpoint", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "srht_registry_http_request_duration_seconds",
			Help:    "Time from reading a request to its response, by endpoint.",
			Buckets: requestBuckets,
		}, []string{"endpoint"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "srht_registry_tokens_issued_total",
			Help: "Registry tokens issued, by how the client authenticated: anonymous, password, sourcehut or refresh (a refresh token).",
		}, []string{"method"}),
		refreshTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "srht_registry_refresh_tokens_issued_total",
			Help: "Refresh tokens issued to logins that asked for offline access, by login method: password or sourcehut.",
		}, []string{"method"}),
		overload: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "srht_registry_http_overload_rejections_total",
			Help: "Requests answered 503 at once because limits.max_concurrent requests were already in flight, or their client address already had its share in flight (or its share of bodies being read).",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "srht_registry_http_requests_in_flight",
			Help: "Requests being served now (health checks excepted when limits.max_concurrent is set), of limits.max_concurrent at most.",
		}),
	}
	// Every method exists from the start, so a rate() over a method that
	// has not happened yet is 0, not absent.
	m.tokensBy = map[identity.Method]prometheus.Counter{}
	for _, method := range []identity.Method{identity.MethodAnonymous, identity.MethodPassword, identity.MethodSourcehut, identity.MethodOIDC, identity.MethodRefresh} {
		m.tokensBy[method] = m.tokens.WithLabelValues(string(method))
	}
	m.refreshTokensBy = map[identity.Method]prometheus.Counter{}
	for _, method := range []identity.Method{identity.MethodPassword, identity.MethodSourcehut, identity.MethodOIDC} {
		m.refreshTokensBy[method] = m.refreshTokens.WithLabelValues(string(method))
	}
	for i, ep := range endpoints {
		m.durationBy[i] = m.duration.WithLabelValues(ep)
	}
	return m
}

// Collectors returns the handler's metrics, for a Prometheus registry.
func (s *Server) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.requests, s.metrics.duration, s.metrics.tokens, s.metrics.refreshTokens, s.metrics.overload, s.metrics.inFlight}
}

// endpoint names a request's path for a label, by its index in
// endpoints: any other path is "other", so a scanner trying paths cannot
// grow the label set.
func endpoint(path string) uint8 {
	switch path {
	case "/auth":
		return 0
	case "/.well-known/jwks.json":
		return 1
	case "/healthz":
		return 2
	case "/readyz":
		return 3
	}
	return 4
}

// methodLabel is a request's method for a label, by its index in methods.
func methodLabel(method string) uint8 {
	switch method {
	case http.MethodGet:
		return 0
	case http.MethodPost:
		return 1
	case http.MethodHead:
		return 2
	}
	return 3
}

func (m *metrics) served(r *http.Request, status int, took time.Duration) {
	key := requestKey{endpoint: endpoint(r.URL.Path), method: methodLabel(r.Method), status: uint16(min(max(status, 0), 999))}
	c, ok := m.requestsBy.Load(key)
	if !ok {
		c, _ = m.requestsBy.LoadOrStore(key, m.requests.WithLabelValues(endpoints[key.endpoint], methods[key.method], strconv.Itoa(int(key.status))))
	}
	c.(prometheus.Counter).Inc()
	m.durationBy[key.endpoint].Observe(took.Seconds())
}

func (m *metrics) issued(method identity.Method, refreshToken bool) {
	counter(m.tokensBy, m.tokens, method).Inc()
	if refreshToken {
		counter(m.refreshTokensBy, m.refreshTokens, method).Inc()
	}
}

// counter is method's counter: looked up once, in newMetrics, for the
// methods there are.
func counter(by map[identity.Method]prometheus.Counter, vec *prometheus.CounterVec, method identity.Method) prometheus.Counter {
	if c, ok := by[method]; ok {
		return c
	}
	return vec.WithLabelValues(string(method))
}

// MetricsHandler serves the registry's metrics at path, in the Prometheus
// text or OpenMetrics format as the scraper asks, and 404 elsewhere. It is
// meant for its own listener (metrics.listen), never the token endpoint's.
func MetricsHandler(reg *prometheus.Registry, path string, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+path, promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelError),
		EnableOpenMetrics: true,
		// A failing collector must not hide every other metric.
		ErrorHandling: promhttp.ContinueOnError,
	})))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, "", &requestError{status: http.StatusNotFound, code: "NOT_FOUND", msg: "not found; metrics are at " + path})
	})
	return mux
}

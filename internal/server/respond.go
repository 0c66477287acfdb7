package server

import (
	"log/slog"
	"maps"
	"net/http"
	"time"
)

// outcome is what a request came to. Endpoints compute it without touching
// the ResponseWriter; respond turns it into the response and the request's
// log line.
type outcome struct {
	// status and body answer a request that succeeded: body is sent as
	// JSON, or as it is when it is a rawBody.
	status int
	body   any
	// err, when set, answers instead, with the status, code and message
	// classify gives it.
	err error
	// header holds the headers particular to this answer: an Allow, the
	// Retry-After of an overload, the key set's Cache-Control.
	header http.Header
	// serve, when set, answers the request itself: the mux, for what it
	// answers on its own (a redirect to the clean path, a request for *).
	serve http.Handler

	// decisionID, sent as X-Decision-Id, ties a token response (or the
	// failure of a request that got as far as the policy) to its decision
	// log lines; "" when no scope was asked for.
	decisionID string
	// attrs go on the request's log line: who the client turned out to
	// be, what it asked for and got, why it failed.
	attrs []any
}

// requestAttrs is the number of attribute arguments respond puts first on
// a request's line (method, path, status, duration, client_ip): an
// outcome's attrs may start with that many nils, to be filled in place.
const requestAttrs = 10

// rawBody is a body sent as it is, under the headers its endpoint set.
type rawBody []byte

// failed is the outcome of a token request that failed with err: what it
// had come to so far, and the error, whose cause goes to the log line.
func (o outcome) failed(err error) outcome {
	o.err = err
	o.attrs = append(o.attrs, "error", err.Error())
	return o
}

// respond is the one place that writes a response: the outcome's status,
// headers and body; then it counts the request and writes its one log line.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, log *slog.Logger, clientIP string, start time.Time, out outcome) {
	maps.Copy(w.Header(), out.header)
	if out.decisionID != "" {
		w.Header().Set("X-Decision-Id", out.decisionID)
	}
	var status int
	switch {
	case out.serve != nil:
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		out.serve.ServeHTTP(rec, r)
		status = rec.status
	case out.err != nil:
		// WWW-Authenticate, Retry-After and the JSON error body.
		status = writeError(w, s.opts.Realm, out.err)
	default:
		status = out.status
		if raw, ok := out.body.(rawBody); ok {
			w.WriteHeader(status)
			_, _ = w.Write(raw)
		} else {
			writeJSON(w, status, out.body)
		}
	}

	took := s.opts.Now().Sub(start)
	s.metrics.served(r, status, took)
	attrs := out.attrs
	if len(attrs) < requestAttrs || attrs[0] != nil {
		// An outcome that left no room in front of its attributes.
		attrs = append(make([]any, requestAttrs, requestAttrs+len(attrs)), attrs...)
	}
	copy(attrs, []any{
		"method", r.Method, "path", r.URL.Path, "status", status,
		"duration", took, "client_ip", clientIP,
	})
	// One line per request, with the cause of any failure: at error level
	// when we (or what we depend on) failed, so an outage is seen once per
	// request, not twice.
	level := slog.LevelInfo
	switch {
	case r.URL.Path == "/healthz" || r.URL.Path == "/readyz":
		// A balancer probes every replica every second or so: a passing
		// probe is noise; a failing one (not ready, draining) is news,
		// but expected, not an error.
		if status == http.StatusOK {
			level = slog.LevelDebug
		}
	case status >= 500 && r.Context().Err() != nil:
		// The client went away while we worked (typically during the
		// policy evaluation, which its leaving cancels): nobody reads
		// this answer, and nothing of ours failed.
		level = slog.LevelInfo
		attrs = append(attrs, "client_gone", true)
	case status >= 500:
		level = slog.LevelError
	case status == http.StatusTooManyRequests:
		level = slog.LevelWarn
	}
	log.Log(r.Context(), level, "request", attrs...)
}

// statusRecorder notes the status of a response a handler writes itself.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

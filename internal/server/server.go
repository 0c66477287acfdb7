package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// Authenticator turns credentials into an identity.
type Authenticator interface {
	Authenticate(ctx context.Context, cred identity.Credentials) (identity.Identity, error)
}

// Authorizer decides the requested scopes for an identity.
type Authorizer interface {
	Authorize(ctx context.Context, id identity.Identity, req identity.Request, scopes []access.Scope) ([]access.Decision, error)
}

// Minter signs a token carrying the granted access.
type Minter interface {
	Mint(subject, audience string, granted []access.Scope) (access.Token, error)
}

// Refresher issues refresh tokens for identities that logged in with a
// password or a Sourcehut token. Redeeming one is the Authenticator's job
// (credentials of kind identity.CredentialRefresh).
type Refresher interface {
	// Issue is given the credential of the login (the Sourcehut token),
	// which a refresh token may carry sealed to have it checked again.
	Issue(id identity.Identity, service, clientID string, login identity.Secret) (identity.Secret, error)
}

// JWKSSource gives the public key set published at the moment.
type JWKSSource interface {
	JWKS() []byte
}

// Options configure the handler. Every field is required unless noted.
type Options struct {
	// Services are the registry service names we issue tokens for; the
	// first is used when a request names none.
	Services []string
	// Realm is the Basic-auth realm in WWW-Authenticate challenges.
	Realm string
	// MaxScopes bounds the distinct resources of one request.
	MaxScopes int
	// MaxBodyBytes bounds a POST body.
	MaxBodyBytes int64
	// MaxQueryBytes bounds the query string; 0 means no bound.
	MaxQueryBytes int
	// MaxConcurrent bounds requests in flight (health checks excepted);
	// past it clients get 503 at once. 0 means no bound. A request holds
	// its slot from after its body is read (admission.go) to its answer.
	MaxConcurrent int
	// MaxConcurrentPerClient, optional, bounds the requests in flight
	// from one client address (an IPv6 one by its /64), and apart from
	// them its POST bodies being read; past it the client gets 503 at
	// once. 0 derives it from MaxConcurrent (perClientLimit: an eighth,
	// at least 4; none when MaxConcurrent is 0); negative means no bound.
	MaxConcurrentPerClient int
	// BodyTimeout, optional, bounds the time a POST body takes to arrive
	// once the server starts reading it; past it the client gets 408.
	// 0 means DefaultBodyTimeout.
	BodyTimeout time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For, X-Real-IP or
	// Forwarded names the client (forwarded.go); for anyone else the
	// socket address does.
	TrustedProxies []netip.Prefix
	// Ready reports whether the server can issue tokens (policy and keys
	// loaded); nil means always ready.
	Ready func() error

	Authenticator Authenticator
	Authorizer    Authorizer
	Minter        Minter
	// Refresh, optional, turns refresh tokens on: a login asking for
	// offline access (GET offline_token=true, POST access_type=offline)
	// gets one, and the POST refresh_token grant is accepted (the
	// Authenticator redeems it). Nil: none is issued and the grant is
	// answered with unsupported_grant_type.
	Refresh Refresher
	// RefreshOn, optional, says whether refresh tokens are on at the
	// moment: a reload can turn them off. Nil means on whenever Refresh is
	// set.
	RefreshOn func() bool
	// JWKS is a fixed public key set served at /.well-known/jwks.json,
	// used when Keys is nil.
	JWKS []byte
	// Keys, optional, is the live public key set served instead of JWKS;
	// it changes when keys are reloaded.
	Keys JWKSSource

	Logger *slog.Logger
	// DecisionLines, optional, says whether each policy decision also
	// gets a log line of its own (msg=decision) beside the request's line,
	// which has them all; nil means never. A reload can change it.
	DecisionLines func() bool
	// Idle, optional, is called when the last request in flight has been
	// answered and logged: a buffered log is flushed then, so that its
	// lines are written at once when the server is not busy, and in
	// batches when it is.
	Idle func()
	Now  func() time.Time
}

// Server is the HTTP handler of the token server.
type Server struct {
	opts Options
	// mux routes a request to its endpoint.
	mux      *http.ServeMux
	inFlight chan struct{} // a slot per request in flight; nil = unbounded
	// working and reading count, per client, the requests holding a slot
	// and the POST bodies being read; nil = unbounded.
	working, reading *clientCounts
	metrics          *metrics
	// forwardedWarn spaces the warnings about forwarding headers that
	// name no client address.
	forwardedWarn warnLimit
	// active counts the requests in ServeHTTP, for Options.Idle.
	active atomic.Int64
}

var _ http.Handler = (*Server)(nil)

// New returns the handler.
func New(opts Options) *Server {
	s := &Server{opts: opts, mux: http.NewServeMux(), metrics: newMetrics()}
	if opts.MaxConcurrent > 0 {
		s.inFlight = make(chan struct{}, opts.MaxConcurrent)
	}
	s.working = newClientCounts(perClientLimit(opts))
	s.reading = newClientCounts(perClientLimit(opts))
	s.mux.Handle("GET /auth", endpointFunc(s.handleToken))
	s.mux.Handle("POST /auth", endpointFunc(s.handleToken))
	s.mux.Handle("GET /.well-known/jwks.json", endpointFunc(s.handleJWKS))
	s.mux.Handle("GET /healthz", endpointFunc(s.handleHealth))
	s.mux.Handle("GET /readyz", endpointFunc(s.handleReady))
	s.mux.Handle("/", endpointFunc(s.handleNotFound))
	return s
}

// endpointFunc answers one kind of request with an outcome, which respond
// writes. log carries the request ID; clientIP is the client's address,
// worked out once, trusted proxies considered.
type endpointFunc func(r *http.Request, log *slog.Logger, clientIP string) outcome

// ServeHTTP lets the mux hold endpoints. Server.ServeHTTP only asks the mux
// which endpoint a request is for and never has it serve one, so this
// answers nothing but an internal error.
func (e endpointFunc) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	writeError(w, "", errors.New("an endpoint served outside Server.ServeHTTP"))
}

// ServeHTTP gives every request an ID, a logger carrying it, its endpoint's
// outcome and, through respond, its response and one access log line. What
// the headers alone refuse is refused first; the form of a POST /auth is
// read next, outside the slots; then the request takes its client's slot
// and the server's (admission.go) for the rest, health checks excepted.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.done()
	start := s.opts.Now()
	id := newRequestID()
	log := s.opts.Logger.With("request_id", id)
	w.Header().Set("X-Request-Id", id)
	// The client address is worked out once (headers of trusted proxies
	// included) for the throttle, the policy and the log line.
	client := s.clientIP(r, log)
	respond := func(r *http.Request, out outcome) { s.respond(w, r, log, client, start, out) }
	if s.opts.MaxQueryBytes > 0 && len(r.URL.RawQuery) > s.opts.MaxQueryBytes {
		respond(r, outcome{err: &requestError{status: http.StatusRequestURITooLong, code: "INVALID_REQUEST", oauth: "invalid_request",
			msg: fmt.Sprintf("query string longer than %d bytes", s.opts.MaxQueryBytes)}})
		return
	}
	if r.ContentLength > s.opts.MaxBodyBytes {
		// Refused before the body is read, so before any 100 Continue;
		// the connection is closed after, for the body may be coming.
		respond(r, outcome{err: &http.MaxBytesError{Limit: s.opts.MaxBodyBytes}, header: closeAfter(r)})
		return
	}
	key := holderKey(client)
	if s.takesForm(r) {
		var out outcome
		var ok bool
		if r, out, ok = s.readForm(w, r, key); !ok {
			respond(r, out)
			return
		}
	}
	if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
		release, out, ok := s.admit(key)
		if !ok {
			s.metrics.overload.Inc()
			respond(r, out)
			return
		}
		defer release()
	}
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	respond(r, s.answer(r, log, client))
}

// done ends a request in ServeHTTP; the last one out calls Options.Idle.
func (s *Server) done() {
	if s.active.Add(-1) == 0 && s.opts.Idle != nil {
		s.opts.Idle()
	}
}

// answer is the outcome of the request's endpoint, which the mux finds.
// What the mux answers on its own (a redirect to the clean path, a request
// for *, which it refuses before routing) it serves itself.
func (s *Server) answer(r *http.Request, log *slog.Logger, clientIP string) outcome {
	if r.RequestURI != "*" {
		h, _ := s.mux.Handler(r)
		if e, ok := h.(endpointFunc); ok {
			return e(r, log, clientIP)
		}
	}
	return outcome{serve: s.mux}
}

func newRequestID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// clientIP is the socket peer, unless the peer is a trusted proxy: then
// the client its forwarding headers name (forwardedClient: X-Forwarded-For,
// else X-Real-IP, else Forwarded; each proxy appends the address it got the
// request from, so the client is the rightmost address that is not itself a
// trusted proxy, and anything left of it could be forged). A trusted peer
// that sends none of them is the client. Where the client should be, an
// entry that is no address (unknown, obfuscated, garbage) gives a
// "forwarded:" key of its own, logged through log: never the proxy's
// address, which would make one client's failed logins everyone's.
func (s *Server) clientIP(r *http.Request, log *slog.Logger) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.trusted(host) {
		return host
	}
	client, bad, ok := forwardedClient(r.Header, s.trustedAddr)
	if !ok {
		return host
	}
	if bad != nil {
		s.warnUnusableForwarded(log, r.Header, host, client, bad)
	}
	return client
}

func (s *Server) trusted(ip string) bool {
	addr, err := netip.ParseAddr(ip)
	return err == nil && s.trustedAddr(addr)
}

func (s *Server) trustedAddr(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	for _, p := range s.opts.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func (s *Server) handleHealth(*http.Request, *slog.Logger, string) outcome {
	return outcome{status: http.StatusOK, body: map[string]string{"status": "ok"}}
}

// handleReady answers 200 when tokens can be issued, 503 and why if not.
func (s *Server) handleReady(*http.Request, *slog.Logger, string) outcome {
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			return outcome{status: http.StatusServiceUnavailable, body: map[string]string{"status": "not ready", "reason": err.Error()}}
		}
	}
	return outcome{status: http.StatusOK, body: map[string]string{"status": "ready"}}
}

func (s *Server) handleJWKS(*http.Request, *slog.Logger, string) outcome {
	body := s.opts.JWKS
	if s.opts.Keys != nil {
		body = s.opts.Keys.JWKS()
	}
	return outcome{status: http.StatusOK, body: rawBody(body),
		header: http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"max-age=300"}}}
}

func (s *Server) handleNotFound(r *http.Request, _ *slog.Logger, _ string) outcome {
	if r.URL.Path == "/auth" {
		return outcome{header: http.Header{"Allow": {"GET, POST"}},
			err: &requestError{status: http.StatusMethodNotAllowed, code: "UNSUPPORTED", oauth: "invalid_request", msg: "use GET or POST"}}
	}
	return outcome{err: &requestError{status: http.StatusNotFound, code: "NOT_FOUND", msg: "not found; the token endpoint is /auth"}}
}

// refresher is the Refresher while refresh tokens are on; nil when off.
func (s *Server) refresher() Refresher {
	if s.opts.Refresh == nil || (s.opts.RefreshOn != nil && !s.opts.RefreshOn()) {
		return nil
	}
	return s.opts.Refresh
}

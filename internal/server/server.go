package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
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
	Mint(subject, audience string, granted []access.Scope) (token string, issuedAt time.Time, expiresIn time.Duration, err error)
}

// Refresher issues refresh tokens for identities that logged in with a
// password or a Sourcehut token. Redeeming one is the Authenticator's job
// (credentials of kind identity.CredentialRefresh).
type Refresher interface {
	Issue(id identity.Identity, service, clientID string) (identity.Secret, error)
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
	// past it clients get 503 at once. 0 means no bound.
	MaxConcurrent int
	// TrustedProxies are the peers whose X-Forwarded-For and X-Real-IP
	// name the client; for anyone else the socket address does.
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
	// JWKS is a fixed public key set served at /.well-known/jwks.json,
	// used when Keys is nil.
	JWKS []byte
	// Keys, optional, is the live public key set served instead of JWKS;
	// it changes when keys are reloaded.
	Keys JWKSSource

	Logger *slog.Logger
	Now    func() time.Time
}

// Server is the HTTP handler of the token server.
type Server struct {
	opts     Options
	mux      *http.ServeMux
	inFlight chan struct{} // a slot per request in flight; nil = unbounded
	metrics  *metrics
}

var _ http.Handler = (*Server)(nil)

// New returns the handler.
func New(opts Options) *Server {
	s := &Server{opts: opts, mux: http.NewServeMux(), metrics: newMetrics()}
	if opts.MaxConcurrent > 0 {
		s.inFlight = make(chan struct{}, opts.MaxConcurrent)
	}
	s.mux.HandleFunc("GET /auth", s.handleToken)
	s.mux.HandleFunc("POST /auth", s.handleToken)
	s.mux.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux.HandleFunc("/", s.handleNotFound)
	return s
}

type ctxKey struct{}

// ServeHTTP gives every request an ID, a logger carrying it, and one access
// log line.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.opts.Now()
	id := newRequestID()
	log := s.opts.Logger.With("request_id", id)
	w.Header().Set("X-Request-Id", id)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	// The client address is worked out once (headers of trusted proxies
	// included) for the throttle, the policy and the log line.
	client := s.clientIP(r)
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, &requestLog{log: log, clientIP: client}))
	switch {
	case s.opts.MaxQueryBytes > 0 && len(r.URL.RawQuery) > s.opts.MaxQueryBytes:
		writeError(rec, s.opts.Realm, &requestError{status: http.StatusRequestURITooLong, code: "INVALID_REQUEST", oauth: "invalid_request",
			msg: fmt.Sprintf("query string longer than %d bytes", s.opts.MaxQueryBytes)})
	case s.inFlight != nil && r.URL.Path != "/healthz" && r.URL.Path != "/readyz":
		select {
		case s.inFlight <- struct{}{}:
			s.metrics.inFlight.Inc()
			s.mux.ServeHTTP(rec, r)
			s.metrics.inFlight.Dec()
			<-s.inFlight
		default:
			// Shed load at once rather than queue: a client retries, a
			// queue only grows.
			s.metrics.overload.Inc()
			rec.Header().Set("Retry-After", "1")
			writeError(rec, s.opts.Realm, &requestError{status: http.StatusServiceUnavailable, code: "UNAVAILABLE", oauth: "temporarily_unavailable",
				msg: "too many requests in flight; retry shortly"})
		}
	default:
		s.metrics.inFlight.Inc()
		s.mux.ServeHTTP(rec, r)
		s.metrics.inFlight.Dec()
	}
	rl := r.Context().Value(ctxKey{}).(*requestLog)
	took := s.opts.Now().Sub(start)
	s.metrics.served(r, rec.status, took)
	attrs := append([]any{
		"method", r.Method, "path", r.URL.Path, "status", rec.status,
		"duration", took, "client_ip", client,
	}, rl.attrs...)
	// One line per request, with the cause of any failure: at error level
	// when we (or what we depend on) failed, so an outage is seen once per
	// request, not twice.
	level := slog.LevelInfo
	switch {
	case r.URL.Path == "/healthz" || r.URL.Path == "/readyz":
		// A balancer probes every replica every second or so: a passing
		// probe is noise; a failing one (not ready, draining) is news,
		// but expected, not an error.
		if rec.status == http.StatusOK {
			level = slog.LevelDebug
		}
	case rec.status >= 500:
		level = slog.LevelError
	case rec.status == http.StatusTooManyRequests:
		level = slog.LevelWarn
	}
	log.Log(r.Context(), level, "request", attrs...)
}

// requestLog collects what the handler learned for the access log line.
type requestLog struct {
	log      *slog.Logger
	clientIP string
	attrs    []any
	// method is how the client authenticated, once it has.
	method identity.Method
}

func logOf(r *http.Request) *requestLog { return r.Context().Value(ctxKey{}).(*requestLog) }

func newRequestID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// clientIP is the socket peer, unless the peer is a trusted proxy: then the
// address it names. In X-Forwarded-For each proxy appends the address it
// got the request from, so the client is the rightmost address that is not
// itself a trusted proxy; anything left of it could be forged.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.trusted(host) {
		return host
	}
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		hops := strings.Split(strings.Join(xff, ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop := strings.TrimSpace(hops[i])
			if _, err := netip.ParseAddr(hop); err != nil {
				break // garbage: trust nothing further left
			}
			if !s.trusted(hop) {
				return hop
			}
			host = hop
		}
		return host
	}
	if real := strings.TrimSpace(r.Header.Get("X-Real-IP")); real != "" {
		if _, err := netip.ParseAddr(real); err == nil {
			return real
		}
	}
	return host
}

func (s *Server) trusted(ip string) bool {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range s.opts.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReady answers 200 when tokens can be issued, 503 and why if not.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	body := s.opts.JWKS
	if s.opts.Keys != nil {
		body = s.opts.Keys.JWKS()
	}
	_, _ = w.Write(body)
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/auth" {
		w.Header().Set("Allow", "GET, POST")
		writeError(w, s.opts.Realm, &requestError{status: http.StatusMethodNotAllowed, code: "UNSUPPORTED", oauth: "invalid_request", msg: "use GET or POST"})
		return
	}
	writeError(w, s.opts.Realm, &requestError{status: http.StatusNotFound, code: "NOT_FOUND", msg: "not found; the token endpoint is /auth"})
}

// tokenResponse is both the Docker token response and the OAuth2 one.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
	Scope       string `json:"scope,omitempty"`
	// RefreshToken is a new refresh token (a login that asked for offline
	// access) or the one presented (the refresh_token grant).
	RefreshToken string `json:"refresh_token,omitempty"`
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	rl := logOf(r)
	resp, err := s.issue(w, r, rl)
	if err != nil {
		writeError(w, s.opts.Realm, err)
		rl.attrs = append(rl.attrs, "error", err.Error())
		return
	}
	// The refresh grant hands back the token it was given: not a new one.
	s.metrics.issued(rl.method, resp.RefreshToken != "" && rl.method != identity.MethodRefresh)
	writeJSON(w, http.StatusOK, resp)
}

// tokenRequest is what a GET query or a POST form asked for.
type tokenRequest struct {
	service  string
	scopes   []string
	account  string
	clientID string
	cred     identity.Credentials
	post     bool
	// offline: the client asked for a refresh token (offline_token=true,
	// access_type=offline).
	offline bool
}

func (s *Server) issue(w http.ResponseWriter, r *http.Request, rl *requestLog) (*tokenResponse, error) {
	tr, err := s.parseRequest(r)
	if err != nil {
		return nil, err
	}
	service, err := s.pickService(tr.service)
	if err != nil {
		return nil, err
	}
	scopes, err := access.ParseScopes(tr.scopes, s.opts.MaxScopes)
	if err != nil {
		return nil, err
	}
	tr.cred.Service = service
	tr.cred.ClientIP = rl.clientIP
	tr.cred.ClientID = tr.clientID
	id, err := s.opts.Authenticator.Authenticate(r.Context(), tr.cred)
	if err != nil {
		return nil, err
	}
	// A refreshed identity logs as method "refresh/password" or
	// "refresh/sourcehut": how it got here and how it logged in first.
	method := string(id.Method)
	if id.RefreshedFrom != "" {
		method += "/" + string(id.RefreshedFrom)
	}
	rl.attrs = append(rl.attrs, "auth_method", method, "provider", id.Provider, "subject", id.Subject)
	rl.method = id.Method
	req := identity.Request{
		Service:   service,
		ClientIP:  tr.cred.ClientIP,
		ClientID:  tr.clientID,
		UserAgent: r.UserAgent(),
		Time:      s.opts.Now(),
	}
	// One decision ID per request, returned to the client, ties a failed
	// pull to its decision log lines.
	decisionID := newRequestID()
	req.DecisionID = decisionID
	if len(scopes) > 0 {
		w.Header().Set("X-Decision-Id", decisionID)
	}
	decisions, err := s.opts.Authorizer.Authorize(r.Context(), id, req, scopes)
	if err != nil {
		return nil, err
	}
	granted := make([]access.Scope, 0, len(decisions))
	var requestedLog, grantedLog []string
	for _, d := range decisions {
		requestedLog = append(requestedLog, d.Requested.String())
		g := access.Scope{Resource: d.Requested.Resource, Actions: d.Granted}
		rl.log.Info("decision",
			"decision_id", decisionID,
			"revision", d.Revision,
			"auth_method", method,
			"provider", id.Provider,
			"subject", id.Subject,
			"scope", d.Requested.Resource.String(),
			"requested", d.Requested.Actions,
			"granted", d.Granted,
			"deny", d.Reasons,
			"duration", d.Duration,
		)
		if len(d.Granted) == 0 {
			continue
		}
		granted = append(granted, g)
		grantedLog = append(grantedLog, g.String())
	}
	rl.attrs = append(rl.attrs, "requested", requestedLog, "granted", grantedLog)
	refresh, err := s.refreshToken(tr, id, service)
	if err != nil {
		return nil, err
	}
	if refresh != "" {
		// That it was issued or presented, never the token.
		rl.attrs = append(rl.attrs, "refresh_token", map[bool]string{true: "presented", false: "issued"}[id.Method == identity.MethodRefresh])
	}
	// The token names the principal (htpasswd:alice), so the registry's
	// logs and notifications tell the providers' accounts apart too.
	signed, issuedAt, expiresIn, err := s.opts.Minter.Mint(id.Principal(), service, granted)
	if err != nil {
		return nil, err
	}
	resp := &tokenResponse{
		Token:        signed,
		AccessToken:  signed,
		ExpiresIn:    int(expiresIn / time.Second),
		IssuedAt:     issuedAt.UTC().Format(time.RFC3339),
		RefreshToken: refresh.Reveal(),
	}
	if tr.post {
		resp.Scope = strings.Join(grantedLog, " ")
	}
	return resp, nil
}

// refreshToken is the refresh token of the response, if any: the one
// presented, for the refresh_token grant (which returns the same token, as
// docker expects), or a new one for a password or Sourcehut login that asked
// for offline access. Anonymous gets none.
func (s *Server) refreshToken(tr tokenRequest, id identity.Identity, service string) (identity.Secret, error) {
	switch {
	case s.opts.Refresh == nil:
		return "", nil
	case tr.cred.Kind == identity.CredentialRefresh && id.Method == identity.MethodRefresh:
		return tr.cred.Secret, nil
	case tr.offline && (id.Method == identity.MethodPassword || id.Method == identity.MethodSourcehut):
		return s.opts.Refresh.Issue(id, service, tr.clientID)
	default:
		return "", nil
	}
}

func (s *Server) parseRequest(r *http.Request) (tokenRequest, error) {
	var tr tokenRequest
	var params url.Values
	var err error
	switch r.Method {
	case http.MethodGet, http.MethodHead: // the mux routes HEAD to GET handlers
		params, err = url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return tr, badRequest("malformed query string")
		}
		tr.cred, err = parseAuthorization(r.Header.Values("Authorization"))
		if err != nil {
			return tr, err
		}
		tr.account = params.Get("account")
		tr.offline = isTrue(params.Get("offline_token"))
		if tr.account != "" && tr.cred.Kind == identity.CredentialBasic && tr.account != tr.cred.Username {
			return tr, badRequest("account %q does not match the user name of the credentials", tr.account)
		}
	case http.MethodPost:
		tr.post = true
		params, err = s.parseForm(r)
		if err != nil {
			return tr, err
		}
		tr.offline = params.Get("access_type") == "offline"
		switch gt := params.Get("grant_type"); gt {
		case "password":
			tr.cred = identity.Credentials{
				Kind:     identity.CredentialBasic,
				Username: params.Get("username"),
				Secret:   identity.Secret(params.Get("password")),
			}
		case "refresh_token":
			if s.opts.Refresh == nil {
				return tr, &requestError{status: http.StatusBadRequest, code: "UNSUPPORTED", oauth: "unsupported_grant_type",
					msg: "refresh tokens are turned off on this token server; log in with a password (grant_type=password)"}
			}
			switch len(params["refresh_token"]) {
			case 0:
				return tr, badRequest("missing refresh_token")
			case 1:
			default:
				return tr, badRequest("parameter refresh_token given more than once")
			}
			tr.cred = identity.Credentials{Kind: identity.CredentialRefresh, Secret: identity.Secret(params.Get("refresh_token"))}
		case "":
			return tr, badRequest("missing grant_type")
		default:
			return tr, &requestError{status: http.StatusBadRequest, code: "UNSUPPORTED", oauth: "unsupported_grant_type",
				msg: "unsupported grant_type; use password"}
		}
	}
	for _, key := range []string{"service", "account", "client_id"} {
		if len(params[key]) > 1 {
			return tr, badRequest("parameter %s given more than once", key)
		}
	}
	tr.service = params.Get("service")
	tr.clientID = params.Get("client_id")
	tr.scopes = params["scope"]
	return tr, nil
}

func (s *Server) parseForm(r *http.Request) (url.Values, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, &requestError{status: http.StatusUnsupportedMediaType, code: "UNSUPPORTED", oauth: "invalid_request",
				msg: "POST body must be application/x-www-form-urlencoded"}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			return nil, err
		}
		// The client went away or sent a broken body: its fault, not ours.
		return nil, badRequest("could not read the request body")
	}
	params, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("malformed form body")
	}
	return params, nil
}

// isTrue reads a boolean query parameter as docker sends it ("true").
func isTrue(v string) bool { return strings.EqualFold(v, "true") || v == "1" }

// parseAuthorization reads the credentials of a GET request. Several
// Authorization headers are refused rather than guessing which one counts.
func parseAuthorization(values []string) (identity.Credentials, error) {
	switch len(values) {
	case 0:
		return identity.Credentials{Kind: identity.CredentialNone}, nil
	case 1:
	default:
		return identity.Credentials{}, badRequest("more than one Authorization header")
	}
	scheme, rest, _ := strings.Cut(values[0], " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return identity.Credentials{}, badRequest("malformed Basic Authorization header: not base64")
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return identity.Credentials{}, badRequest("malformed Basic Authorization header: no ':' between user name and password")
		}
		return identity.Credentials{Kind: identity.CredentialBasic, Username: user, Secret: identity.Secret(pass)}, nil
	case "bearer":
		if rest == "" {
			return identity.Credentials{}, badRequest("malformed Bearer Authorization header: empty token")
		}
		return identity.Credentials{Kind: identity.CredentialBearer, Secret: identity.Secret(rest)}, nil
	default:
		return identity.Credentials{}, badRequest("unsupported Authorization scheme; use Basic or Bearer")
	}
}

func (s *Server) pickService(service string) (string, error) {
	if service == "" {
		if len(s.opts.Services) == 1 {
			return s.opts.Services[0], nil
		}
		return "", badRequest("missing service; this token server serves %s", strings.Join(s.opts.Services, ", "))
	}
	if !slices.Contains(s.opts.Services, service) {
		return "", badRequest("unknown service %q; this token server serves %s", service, strings.Join(s.opts.Services, ", "))
	}
	return service, nil
}

package fakeoidc

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// DefaultJWKSPath is where the key set is served, below the issuer URL:
// GitHub Actions' path. GitLab serves it at /oauth/discovery/keys and
// Kubernetes at /openid/v1/jwks ([WithJWKSPath]).
const DefaultJWKSPath = "/.well-known/jwks"

// DiscoveryPath is where the discovery document is served, below the
// issuer URL (OpenID Connect Discovery 1.0, section 4).
const DiscoveryPath = "/.well-known/openid-configuration"

// Issuer is a fake OIDC issuer. It is safe for concurrent use; its settings
// may change while requests are in flight (each request reads them once, on
// arrival).
type Issuer struct {
	srv      *httptest.Server
	issuer   string // the iss of its tokens and of its discovery document
	jwksPath string // below issuer
	alg      jwa.SignatureAlgorithm
	closing  chan struct{}
	once     sync.Once

	calls, discoveryCalls, jwksCalls atomic.Int64

	mu        sync.Mutex
	keys      []*signingKey // published; the last one signs
	now       func() time.Time
	down      bool
	status    int
	delay     time.Duration
	overrides map[string]any // discovery document fields replaced (nil value: removed)
}

// signingKey is one key pair of the issuer.
type signingKey struct {
	kid  string
	alg  jwa.SignatureAlgorithm
	priv crypto.Signer
	pub  jwk.Key // the published JWK: kty, kid, alg, use and the public part
}

// Option configures an Issuer.
type Option func(*config)

type config struct {
	alg        jwa.SignatureAlgorithm
	jwksPath   string
	issuerPath string
	tls        bool
	addr       string
}

// WithAlgorithm makes the issuer sign with alg: RS256 (the default, as
// GitHub, GitLab and Kubernetes do), RS384, RS512, PS256, PS384, PS512,
// ES256, ES384, ES512 or EdDSA (Ed25519). RSA keys are 2048 bits.
func WithAlgorithm(alg string) Option {
	return func(c *config) { c.alg = jwa.SignatureAlgorithm(alg) }
}

// WithJWKSPath serves the key set at path below the issuer URL instead of
// [DefaultJWKSPath]; the discovery document's jwks_uri follows.
func WithJWKSPath(path string) Option {
	return func(c *config) { c.jwksPath = path }
}

// WithIssuerPath puts the issuer below the server's root, as GitHub
// Enterprise Server does (https://HOST/_services/token): the issuer URL
// is the server URL followed by path, and the discovery document and the
// key set are served below it.
func WithIssuerPath(path string) Option {
	return func(c *config) { c.issuerPath = strings.TrimSuffix(path, "/") }
}

// WithTLS serves https with httptest's self-signed certificate; a client
// that trusts it is [Issuer.Client].
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// WithAddr listens on addr (such as 127.0.0.1:8443, for a development
// harness that needs a fixed issuer URL) instead of a free loopback port.
func WithAddr(addr string) Option {
	return func(c *config) { c.addr = addr }
}

// New starts a fake issuer on a loopback port and returns it; Close stops
// it. Tests use [Start], which closes it when the test ends.
func New(opts ...Option) (*Issuer, error) {
	cfg := config{alg: jwa.RS256, jwksPath: DefaultJWKSPath}
	for _, o := range opts {
		o(&cfg)
	}
	if !strings.HasPrefix(cfg.jwksPath, "/") {
		return nil, fmt.Errorf("fakeoidc: JWKS path %q must start with /", cfg.jwksPath)
	}
	if cfg.issuerPath != "" && !strings.HasPrefix(cfg.issuerPath, "/") {
		return nil, fmt.Errorf("fakeoidc: issuer path %q must start with /", cfg.issuerPath)
	}
	key, err := newSigningKey(cfg.alg)
	if err != nil {
		return nil, err
	}
	s := &Issuer{
		jwksPath:  cfg.jwksPath,
		alg:       cfg.alg,
		closing:   make(chan struct{}),
		keys:      []*signingKey{key},
		now:       time.Now,
		overrides: map[string]any{},
	}
	ts := httptest.NewUnstartedServer(s.handler(cfg.issuerPath))
	if cfg.addr != "" {
		l, err := net.Listen("tcp", cfg.addr)
		if err != nil {
			return nil, fmt.Errorf("fakeoidc: %w", err)
		}
		ts.Listener.Close()
		ts.Listener = l
	}
	if cfg.tls {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	s.srv = ts
	s.issuer = ts.URL + cfg.issuerPath
	return s, nil
}

// Start returns a fake issuer serving on 127.0.0.1, closed when the test
// ends.
func Start(t testing.TB, opts ...Option) *Issuer {
	t.Helper()
	s, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Close stops the server; requests held by [Issuer.SetDelay] end at once.
func (s *Issuer) Close() {
	s.once.Do(func() { close(s.closing) })
	s.srv.Close()
}

// URL is the issuer: the iss of its tokens, and the issuer of its
// discovery document. It has no trailing slash.
func (s *Issuer) URL() string { return s.issuer }

// DiscoveryURL is where the discovery document is served.
func (s *Issuer) DiscoveryURL() string { return s.issuer + DiscoveryPath }

// JWKSURL is where the key set is served: the discovery document's
// jwks_uri (unless overridden with [Issuer.SetDiscoveryField]).
func (s *Issuer) JWKSURL() string { return s.issuer + s.jwksPath }

// Client is an HTTP client that trusts the server (its TLS certificate
// with [WithTLS]).
func (s *Issuer) Client() *http.Client { return s.srv.Client() }

// Algorithm is the JWS algorithm the issuer signs with.
func (s *Issuer) Algorithm() string { return string(s.alg) }

// KeyID is the kid of the current signing key.
func (s *Issuer) KeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current().kid
}

// KeyIDs are the kids of the published keys, the current one last.
func (s *Issuer) KeyIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	kids := make([]string, len(s.keys))
	for i, k := range s.keys {
		kids[i] = k.kid
	}
	return kids
}

// PublicKey is the current signing key's public key (*rsa.PublicKey,
// *ecdsa.PublicKey or ed25519.PublicKey).
func (s *Issuer) PublicKey() crypto.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current().priv.Public()
}

// PublicKeyDER is the current public key as PKIX DER.
func (s *Issuer) PublicKeyDER() []byte {
	der, err := x509.MarshalPKIXPublicKey(s.PublicKey())
	if err != nil {
		panic(fmt.Sprintf("fakeoidc: %v", err))
	}
	return der
}

// PublicKeyPEM is the current public key as a PEM "PUBLIC KEY" block:
// what a key-confusion attacker feeds to HMAC.
func (s *Issuer) PublicKeyPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: s.PublicKeyDER()})
}

// JWKS is the key set document the server serves now.
func (s *Issuer) JWKS() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jwks()
}

// RotateKey makes a new signing key (same algorithm, new kid) and
// returns its kid. With keepOld the previous keys stay published, as an
// issuer does while tokens signed with them may still be in use; without,
// only the new key is.
func (s *Issuer) RotateKey(keepOld bool) string {
	key, err := newSigningKey(s.alg)
	if err != nil {
		panic(fmt.Sprintf("fakeoidc: %v", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if keepOld {
		s.keys = append(s.keys, key)
	} else {
		s.keys = []*signingKey{key}
	}
	return key.kid
}

// SetClock sets the clock the claim helpers read; nil restores time.Now.
func (s *Issuer) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

func (s *Issuer) clock() time.Time {
	s.mu.Lock()
	now := s.now
	s.mu.Unlock()
	return now()
}

// SetDown makes the discovery and key set requests end with the
// connection closed and no response: the client sees a connection error,
// as from an issuer that is down. It is done by hijacking the connection
// (or, where it cannot be hijacked, by panicking with
// http.ErrAbortHandler).
func (s *Issuer) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetStatus makes the discovery and key set requests answer code (such
// as 503) with a text/html body, as a proxy in front of a broken issuer
// does; 0 turns it off.
func (s *Issuer) SetStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

// SetDelay makes each discovery and key set request wait d before it is
// answered (the wait ends early, without an answer, if the client goes
// away or the issuer is closed).
func (s *Issuer) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetDiscoveryField replaces a field of the discovery document (a nil
// value removes it): an "issuer" that is not the issuer's URL, a
// "jwks_uri" elsewhere, for tests of what a client must refuse.
func (s *Issuer) SetDiscoveryField(name string, value any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.overrides[name] = value
}

// Calls is the number of discovery and key set requests received,
// whatever their outcome, faults included. Requests for other paths
// (answered 404) are not counted.
func (s *Issuer) Calls() int64 { return s.calls.Load() }

// DiscoveryCalls is the number of discovery document requests received.
func (s *Issuer) DiscoveryCalls() int64 { return s.discoveryCalls.Load() }

// JWKSCalls is the number of key set requests received.
func (s *Issuer) JWKSCalls() int64 { return s.jwksCalls.Load() }

// ResetCalls sets the counts back to 0.
func (s *Issuer) ResetCalls() {
	s.calls.Store(0)
	s.discoveryCalls.Store(0)
	s.jwksCalls.Store(0)
}

// current is the signing key; s.mu must be held.
func (s *Issuer) current() *signingKey { return s.keys[len(s.keys)-1] }

// claimsSupported are the claims_supported of GitHub Actions' discovery
// document.
var claimsSupported = []string{
	"sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "sha", "repository", "repository_id",
	"repository_owner", "repository_owner_id", "enterprise", "enterprise_id", "run_id", "run_number",
	"run_attempt", "actor", "actor_id", "workflow", "workflow_ref", "workflow_sha", "head_ref",
	"base_ref", "event_name", "ref_type", "ref_protected", "environment", "environment_node_id",
	"job_workflow_ref", "job_workflow_sha", "repository_visibility", "runner_environment", "issuer_scope",
}

// discovery is the discovery document; s.mu must be held.
func (s *Issuer) discovery() []byte {
	var algs []string
	for _, k := range s.keys {
		if !slices.Contains(algs, string(k.alg)) {
			algs = append(algs, string(k.alg))
		}
	}
	doc := map[string]any{
		"issuer":                                s.issuer,
		"jwks_uri":                              s.issuer + s.jwksPath,
		"subject_types_supported":               []string{"public", "pairwise"},
		"response_types_supported":              []string{"id_token"},
		"claims_supported":                      claimsSupported,
		"id_token_signing_alg_values_supported": algs,
		"scopes_supported":                      []string{"openid"},
	}
	for name, v := range s.overrides {
		if v == nil {
			delete(doc, name)
			continue
		}
		doc[name] = v
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("fakeoidc: discovery document: %v", err))
	}
	return b
}

// jwks is the key set document; s.mu must be held.
func (s *Issuer) jwks() []byte {
	set := jwk.NewSet()
	for _, k := range s.keys {
		if err := set.AddKey(k.pub); err != nil {
			panic(fmt.Sprintf("fakeoidc: key set: %v", err))
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(fmt.Sprintf("fakeoidc: key set: %v", err))
	}
	return b
}

type settings struct {
	down   bool
	status int
	delay  time.Duration
	body   []byte
}

// handler serves the discovery document and the key set below
// issuerPath. Each request is counted, then faults apply in this order:
// down, delay, status; then a method other than GET or HEAD is answered
// 405, and the document 200 with Content-Type application/json.
func (s *Issuer) handler(issuerPath string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var doc func() []byte
		switch r.URL.Path {
		case issuerPath + DiscoveryPath:
			s.discoveryCalls.Add(1)
			doc = s.discovery
		case issuerPath + s.jwksPath:
			s.jwksCalls.Add(1)
			doc = s.jwks
		default:
			http.NotFound(w, r)
			return
		}
		s.calls.Add(1)

		s.mu.Lock()
		set := settings{down: s.down, status: s.status, delay: s.delay, body: doc()}
		s.mu.Unlock()

		if set.down {
			dropConnection(w)
			return
		}
		if set.delay > 0 {
			t := time.NewTimer(set.delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			case <-s.closing:
				t.Stop()
				return
			}
		}
		if set.status != 0 {
			text := fmt.Sprintf("%d %s", set.status, http.StatusText(set.status))
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(set.status)
			fmt.Fprintf(w, "<html><head><title>%s</title></head><body><h1>%s</h1></body></html>\n", text, text)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set.body)
	})
}

// dropConnection ends the request with no response.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// newSigningKey generates a key pair for alg. Its kid is the key's RFC
// 7638 thumbprint (SHA-256, base64url), as GitLab's and Kubernetes' kids
// are thumbprint-like.
func newSigningKey(alg jwa.SignatureAlgorithm) (*signingKey, error) {
	priv, err := generate(alg)
	if err != nil {
		return nil, err
	}
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("fakeoidc: %w", err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("fakeoidc: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	for name, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: alg, jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(name, v); err != nil {
			return nil, fmt.Errorf("fakeoidc: %w", err)
		}
	}
	return &signingKey{kid: kid, alg: alg, priv: priv, pub: pub}, nil
}

// generate makes a private key for alg.
func generate(alg jwa.SignatureAlgorithm) (crypto.Signer, error) {
	switch alg {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
		return rsa.GenerateKey(rand.Reader, 2048)
	case jwa.ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwa.ES384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jwa.ES512:
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jwa.EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	default:
		return nil, fmt.Errorf("fakeoidc: unsupported algorithm %q", alg)
	}
}

package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
	"git.sr.ht/~zozs/srht-registry/policy"
)

// Defaults and bounds. Defaults that belong to another package are taken
// from it, so that each is written once:
// sourcehut.DefaultCacheSize and sourcehut.DefaultNegativeTTL
// (authn.sourcehut), authn.DefaultPasswordCacheTTL and
// authn.DefaultPasswordCacheSize (authn.password_cache),
// policy.DefaultQuery and policy.DefaultTimeout (policy).
const (
	defaultListen         = "127.0.0.1:5001"
	defaultService        = "registry.example.com"
	defaultIssuer         = "srht-registry"
	defaultTTL            = 5 * time.Minute
	defaultRefreshTTL     = 30 * 24 * time.Hour
	defaultOIDCSessionTTL = time.Hour
	maxRefreshTTL         = 365 * 24 * time.Hour
	defaultLogLevel       = "info"
	defaultLogFormat      = "text"
	defaultLogDecisions   = "request"
	defaultFlushInterval  = 100 * time.Millisecond
	maxFlushInterval      = 10 * time.Second
	defaultMaxScopes      = 64
	defaultMaxBodyBytes   = 16384

	defaultMetaURL     = "https://meta.sr.ht"
	defaultMetaTimeout = 5 * time.Second
	maxCacheSize       = 10_000_000

	minTTL          = 60 * time.Second // the spec wants expires_in >= 60
	maxTTL          = 24 * time.Hour
	minMaxScopes    = 1
	maxMaxScopes    = 1024
	minMaxBodyBytes = 1024
	maxMaxBodyBytes = 1 << 20
)

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
	// logDecisions: the decisions folded into the request's line, or also
	// a line per decision (scope).
	logDecisions = []string{"request", "scope"}
)

// Config is the whole configuration file. Every key is optional; see Default.
type Config struct {
	Listen  string      `yaml:"listen"`  // host:port; default "127.0.0.1:5001"
	Service ServiceList `yaml:"service"` // default ["registry.example.com"]
	Issuer  string      `yaml:"issuer"`  // default "srht-registry"
	Token   Token       `yaml:"token"`
	Authn   Authn       `yaml:"authn"`
	// Groups maps a group name to its members, each a principal
	// "<provider>:<name>" (a bare name is resolved by Parse when exactly
	// one enabled provider could mean it).
	Groups map[string][]string `yaml:"groups"`
	Policy Policy              `yaml:"policy"`
	Log    Log                 `yaml:"log"`
	Limits Limits              `yaml:"limits"`
	// TLS serves HTTPS; without it plain HTTP is served only on loopback
	// or with insecure_http.
	TLS          TLS  `yaml:"tls"`
	InsecureHTTP bool `yaml:"insecure_http"` // allow plain HTTP on a non-loopback address (behind a TLS proxy)
	// TrustedProxies are the CIDRs whose X-Forwarded-For / X-Real-IP are
	// believed; from anyone else the socket address is the client IP.
	TrustedProxies []string   `yaml:"trusted_proxies"`
	BruteForce     BruteForce `yaml:"brute_force"`
	Metrics        Metrics    `yaml:"metrics"`
}

// Metrics configures the Prometheus endpoint. It has its own listener so
// that the token endpoint's port never exposes it and a scraper's address
// needs no route to the public one.
type Metrics struct {
	Listen string `yaml:"listen"` // host:port; "" (default) = no metrics endpoint
	Path   string `yaml:"path"`   // default /metrics
}

// TLS configures HTTPS. Both files are reloaded when they change.
type TLS struct {
	Certificate string `yaml:"certificate"` // PEM certificate chain
	Key         string `yaml:"key"`         // PEM private key
}

// BruteForce configures the failed-login limiter.
type BruteForce struct {
	// Threshold is the number of failed logins per client IP, and per user
	// name, within Window after which further attempts get 429 without a
	// password check; 0 turns the limiter off.
	Threshold int      `yaml:"threshold"` // default 10
	Window    Duration `yaml:"window"`    // default 5m
	// Tracked bounds the IPs and user names remembered (each).
	Tracked int `yaml:"tracked"` // default 100000
	// Store, when set, is a Redis or Valkey URL (redis://[:password@]host:port/db,
	// or rediss:// for TLS) where the replicas share their counts and blocks,
	// so that Threshold holds for the whole fleet; "" keeps them in each
	// replica's memory. Restart-only. It may hold a password: never logged.
	Store string `yaml:"store"`
}

// ServiceList is the set of registry service names this server issues tokens
// for. In YAML it is either one string or a sequence of strings.
type ServiceList []string

// UnmarshalYAML accepts a scalar string or a sequence of strings.
func (s *ServiceList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		var v string
		if err := n.Decode(&v); err != nil {
			return err
		}
		*s = ServiceList{v}
		return nil
	case yaml.SequenceNode:
		v := make([]string, 0, len(n.Content))
		var errs []string
		for i, e := range n.Content {
			if e := resolveAlias(e); e.Kind != yaml.ScalarNode {
				errs = append(errs, fmt.Sprintf("line %d: service[%d]: must be a string, not %s", e.Line, i, describe(e)))
				continue
			}
			var el string
			if err := e.Decode(&el); err != nil {
				return err
			}
			v = append(v, el)
		}
		if len(errs) > 0 {
			return &yaml.TypeError{Errors: errs}
		}
		*s = v
		return nil
	}
	return &yaml.TypeError{Errors: []string{
		fmt.Sprintf("line %d: service: must be a string or a list of strings, not %s", n.Line, describe(n)),
	}}
}

// Token configures the signing key and the tokens minted with it.
type Token struct {
	Key         string   `yaml:"key"`         // path to a PEM private key; "" = ephemeral key generated at start
	Certificate string   `yaml:"certificate"` // optional path to a PEM certificate (chain), sent as x5c
	TTL         Duration `yaml:"ttl"`         // default 5m; 1m..24h
	// KidFormat is how the tokens' kid is made: auto (libtrust for EC and
	// RSA keys, accepted by registry 2.8 and 3.x alike with the files
	// `keys` writes), jwks (the RFC 7638 thumbprint in jwks.json),
	// thumbprint (distribution 3.x's rootcertbundle thumbprint) or libtrust.
	KidFormat string `yaml:"kid_format"` // default auto
	// PublishedKeys are more public or private key files whose public
	// halves are published beside the signing key's (JWKS and `keys`),
	// so tokens of a previous or next key keep validating while keys rotate.
	PublishedKeys []string `yaml:"published_keys"`
	// Refresh configures refresh tokens.
	Refresh Refresh `yaml:"refresh"`
}

// Refresh configures refresh tokens: a password or Sourcehut login that asks
// for offline access (`docker login`) gets one, and trades it for access
// tokens later instead of sending the password again.
type Refresh struct {
	Enabled *bool    `yaml:"enabled"` // nil = absent = enabled; see IsEnabled
	TTL     Duration `yaml:"ttl"`     // default 720h (30 days); token.ttl..8760h
}

// IsEnabled reports whether refresh tokens are issued and accepted: true
// unless the file says `token.refresh.enabled: false`.
func (r Refresh) IsEnabled() bool { return r.Enabled == nil || *r.Enabled }

// Authn configures the authentication methods.
type Authn struct {
	Anonymous *bool     `yaml:"anonymous"` // nil = absent = enabled; see AnonymousEnabled
	Htpasswd  string    `yaml:"htpasswd"`  // path to an htpasswd file of bcrypt lines; "" = no password users
	Sourcehut Sourcehut `yaml:"sourcehut"`
	// OIDC are the trusted issuers of OIDC ID tokens (CI jobs, Kubernetes
	// service accounts), one provider each.
	OIDC []OIDC `yaml:"oidc"`
	// LDAP are the directories whose users log in with their directory
	// password, one provider each (see LDAP).
	LDAP []LDAP `yaml:"ldap"`
	// PasswordCache remembers successful bcrypt checks for a while.
	PasswordCache PasswordCache `yaml:"password_cache"`
}

// OIDC is one trusted issuer of OIDC ID tokens: a CI (GitHub Actions,
// GitLab CI, Forgejo, Buildkite, CircleCI) or a Kubernetes cluster. Its
// tokens log in as the provider Name, and get what policy.data.oidc rules
// (or a policy of your own) grant on their claims: nothing by default.
type OIDC struct {
	Name   string `yaml:"name"`   // the provider name (identity.provider); unique; required
	Issuer string `yaml:"issuer"` // must equal the tokens' iss; https, or http on loopback; required
	// Audience must be in the tokens' aud. Default: any of the services
	// this server serves (ask the CI for a token with that audience).
	Audience     string   `yaml:"audience"`
	SubjectClaim string   `yaml:"subject_claim"` // the claim that becomes identity.subject; default sub
	JWKSURL      string   `yaml:"jwks_url"`      // the key set, skipping discovery; default: from /.well-known/openid-configuration
	Algorithms   []string `yaml:"algorithms"`    // accepted JWS algorithms; default every asymmetric one (never none or HS*)
	MaxTokenAge  Duration `yaml:"max_token_age"` // a token issued longer ago is refused; 0 (default) = only exp counts
	// SessionTTL is how long the refresh token of a login with one of its
	// ID tokens lives (an ID token lives minutes; a push may take longer).
	SessionTTL Duration `yaml:"session_ttl"` // default 1h; 1m..24h
}

// Audiences are the aud values its tokens may carry to log in to this
// server.
func (o OIDC) Audiences(services []string) []string {
	if o.Audience != "" {
		return []string{o.Audience}
	}
	return slices.Clone(services)
}

// PasswordCache configures the password verification cache.
type PasswordCache struct {
	TTL  Duration `yaml:"ttl"`  // default 5m; 0 turns the cache off
	Size int      `yaml:"size"` // default 10000 entries
}

// Sourcehut configures Sourcehut OAuth2 token login.
type Sourcehut struct {
	Enabled          *bool    `yaml:"enabled"`            // nil = absent = enabled; see IsEnabled
	MetaURL          string   `yaml:"meta_url"`           // default https://meta.sr.ht
	Timeout          Duration `yaml:"timeout"`            // one meta.sr.ht call; default 5s
	CacheSize        int      `yaml:"cache_size"`         // validated tokens cached; default 10000
	MaxCacheTTL      Duration `yaml:"max_cache_ttl"`      // default 10m: the revocation delay; 0 = up to each token's expiry
	NegativeCacheTTL Duration `yaml:"negative_cache_ttl"` // rejected tokens remembered; default 30s
	// Users are the Sourcehut user names that may log in, or ["*"] for
	// every account of the meta.sr.ht instance. Default: nobody.
	Users []string `yaml:"users"`
}

// AllUsers reports whether every account of the instance may log in.
func (s Sourcehut) AllUsers() bool { return slices.Equal(s.Users, []string{AnyUser}) }

// AnyUser in authn.sourcehut.users lets every Sourcehut account log in.
const AnyUser = "*"

// CanLogIn reports whether Sourcehut login is on and lets someone in.
func (s Sourcehut) CanLogIn() bool { return len(s.LoginUsers()) > 0 }

// LoginUsers is who may log in with Sourcehut as the authenticator takes
// it: Users, or nobody when Sourcehut login is off.
func (s Sourcehut) LoginUsers() []string {
	if !s.IsEnabled() {
		return nil
	}
	return s.Users
}

// IsEnabled reports whether Sourcehut tokens are accepted: true unless the
// file says `authn.sourcehut.enabled: false`.
func (s Sourcehut) IsEnabled() bool { return s.Enabled == nil || *s.Enabled }

// AnonymousEnabled reports whether anonymous requests are authenticated as
// the anonymous identity. It is true unless the file says
// `authn.anonymous: false`.
func (a Authn) AnonymousEnabled() bool {
	return a.Anonymous == nil || *a.Anonymous
}

// Policy configures the OPA policy.
type Policy struct {
	Bundles []string       `yaml:"bundles"` // directories or .tar.gz OPA bundles; empty = the embedded default
	Data    map[string]any `yaml:"data"`    // merged under data.registry; JSON-compatible values only
	Query   string         `yaml:"query"`   // default "data.registry.authz"
	// Timeout bounds one policy evaluation.
	Timeout Duration `yaml:"timeout"` // default 100ms
	// StartupWait bounds how long serve waits for the first remote bundle.
	StartupWait Duration `yaml:"startup_wait"` // default 30s
	// FallbackToEmbedded serves the embedded default policy when no remote
	// bundle could be activated at start-up, instead of refusing to start.
	FallbackToEmbedded bool `yaml:"fallback_to_embedded"`
	// OPA is an OPA configuration document (services, bundles, keys,
	// decision_logs) for bundles from a bundle server, run by OPA's own
	// plugins. Exclusive with Bundles and Data.
	OPA map[string]any `yaml:"opa"`
	// Capabilities says what the policy may do beyond computing a
	// decision.
	Capabilities Capabilities `yaml:"capabilities"`
	// DecisionLogMask lists input fields (MaskablePaths) left out of the
	// decision logs policy.opa's decision_logs uploads; default none.
	DecisionLogMask []string `yaml:"decision_log_mask"`
}

// MaskablePaths are the input fields policy.decision_log_mask may leave
// out of uploaded decision logs (authz.MaskablePaths; a test holds the two
// equal).
var MaskablePaths = []string{
	"/request/client_ip", "/request/client_id", "/request/user_agent",
	"/identity/subject", "/identity/groups", "/identity/namespace",
	"/identity/sourcehut", "/identity/sourcehut/grants", "/identity/sourcehut/client_id",
	"/identity/oidc", "/identity/oidc/claims",
}

// Capabilities of the policy: every policy (embedded, local bundles,
// remote bundles) is compiled without the built-ins denied by default
// (DeniableBuiltins) but those listed here.
type Capabilities struct {
	// AllowBuiltins lists the built-ins denied by default that the
	// policy may call.
	AllowBuiltins []string `yaml:"allow_builtins"`
}

// DeniableBuiltins are the built-ins a policy may not call unless
// policy.capabilities.allow_builtins lists them: each token request
// evaluates the policy, so any client could make the server do what they
// do (authz.DeniedBuiltins, which a test holds this to).
var DeniableBuiltins = []string{"http.send", "net.lookup_ip_addr", "opa.runtime"}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug|info|warn|error; default info
	Format string `yaml:"format"` // text|json; default text
	// Decisions is where policy decisions are logged: folded into the
	// request's one line (request), or also one line per decision
	// (scope).
	Decisions string `yaml:"decisions"` // request|scope; default request
	// FlushInterval is the longest a line waits in the log's buffer
	// before it is written: what a crash can lose. 0 writes each line at
	// once.
	FlushInterval Duration `yaml:"flush_interval"` // default 100ms; 0..10s
}

// Limits bounds what one request may ask for.
type Limits struct {
	MaxScopes      int   `yaml:"max_scopes"`       // default 64; 1..1024
	MaxBodyBytes   int64 `yaml:"max_body_bytes"`   // default 16384; 1024..1<<20
	MaxQueryBytes  int   `yaml:"max_query_bytes"`  // default 8192; 256..1<<20
	MaxHeaderBytes int   `yaml:"max_header_bytes"` // default 16384; 4096..1<<20
	// MaxConcurrent bounds requests in flight; past it clients get 503.
	MaxConcurrent     int      `yaml:"max_concurrent"`      // default 512
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"` // default 5s
	ReadTimeout       Duration `yaml:"read_timeout"`        // default 10s
	WriteTimeout      Duration `yaml:"write_timeout"`       // default 30s
	IdleTimeout       Duration `yaml:"idle_timeout"`        // default 2m
	ShutdownTimeout   Duration `yaml:"shutdown_timeout"`    // default 10s: in-flight requests get this long on SIGTERM
	// ShutdownDelay keeps serving for this long after SIGTERM, with
	// /readyz answering 503, before the listener closes: a load balancer's
	// health check takes the replica out first, so no new connection is
	// refused. 0 (default) closes at once.
	ShutdownDelay Duration `yaml:"shutdown_delay"`
}

// Default returns the configuration used when no file is given: a working
// local token server for registry.example.com with an ephemeral key,
// anonymous access and the embedded policy. Each call returns fresh slices.
func Default() Config {
	return Config{
		Listen:  defaultListen,
		Service: ServiceList{defaultService},
		Issuer:  defaultIssuer,
		Token:   Token{KidFormat: "auto", TTL: Duration(defaultTTL), Refresh: Refresh{TTL: Duration(defaultRefreshTTL)}},
		Authn: Authn{
			Sourcehut: Sourcehut{
				MetaURL:          defaultMetaURL,
				Timeout:          Duration(defaultMetaTimeout),
				CacheSize:        sourcehut.DefaultCacheSize,
				MaxCacheTTL:      Duration(sourcehut.DefaultMaxCacheTTL),
				NegativeCacheTTL: Duration(sourcehut.DefaultNegativeTTL),
			},
			PasswordCache: PasswordCache{TTL: Duration(authn.DefaultPasswordCacheTTL), Size: authn.DefaultPasswordCacheSize},
		},
		Policy: Policy{Query: policy.DefaultQuery, Timeout: Duration(policy.DefaultTimeout), StartupWait: Duration(policy.DefaultStartupWait)},
		Log:    Log{Level: defaultLogLevel, Format: defaultLogFormat, Decisions: defaultLogDecisions, FlushInterval: Duration(defaultFlushInterval)},
		Limits: Limits{
			MaxScopes: defaultMaxScopes, MaxBodyBytes: defaultMaxBodyBytes,
			MaxQueryBytes: 8192, MaxHeaderBytes: 16384, MaxConcurrent: 512,
			ReadHeaderTimeout: Duration(5 * time.Second), ReadTimeout: Duration(10 * time.Second), WriteTimeout: Duration(30 * time.Second),
			IdleTimeout: Duration(2 * time.Minute), ShutdownTimeout: Duration(10 * time.Second),
		},
		BruteForce: BruteForce{Threshold: 10, Window: Duration(5 * time.Minute), Tracked: 100000},
		Metrics:    Metrics{Path: "/metrics"},
	}
}

// DefaultService returns the first configured service, used when a request
// names none. It is "" only for an invalid Config without services.
func (c Config) DefaultService() string {
	if len(c.Service) == 0 {
		return ""
	}
	return c.Service[0]
}

// ServesService reports whether s is one of the configured services (exact
// match).
func (c Config) ServesService(s string) bool {
	return slices.Contains(c.Service, s)
}

// Load reads and parses the configuration file at path. An empty path means
// no file: Load returns Default(). Errors name the file; a document that is
// not YAML gives yaml's error (with its line), a YAML document with
// mistakes a *ValidationError.
func Load(path string) (Config, error) {
	if path == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		// The *fs.PathError already names the file.
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes one YAML document on top of Default() and validates the
// result. An empty document yields Default(). A document that is not YAML,
// or a second document, is a plain error with its line. Every other mistake
// is reported in one *ValidationError: first, in document order, unknown
// keys (with the closest known key), values of the wrong type and keys
// written twice, each as "line N: key.path: ..."; then the problems of
// Validate, but for keys whose value could not be read (their default would
// be checked instead). On error the returned Config is the zero value.
func Parse(data []byte) (Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		// Empty document: defaults.
	case err != nil:
		return Config{}, err
	default:
		if err := onlyOneDocument(dec); err != nil {
			return Config{}, err
		}
	}
	cfg := Default()
	var found []problem
	if doc.Kind != 0 {
		c := checkDocument(&doc)
		found = c.problems
		// The real decoding: strict too, in case the check missed something.
		strict := yaml.NewDecoder(bytes.NewReader(data))
		strict.KnownFields(true)
		err := strict.Decode(&cfg)
		var te *yaml.TypeError
		switch {
		case err == nil, errors.As(err, &te) && len(found) > 0:
			// Every value yaml could decode is in cfg; the others keep
			// their defaults.
		case len(found) > 0:
			// yaml gave up part way (an alias inside its own anchor, say):
			// cfg is not worth validating.
			return Config{}, &ValidationError{Problems: c.texts()}
		case te != nil:
			return Config{}, &ValidationError{Problems: te.Errors}
		default:
			return Config{}, err
		}
		if cfg.Policy.Data != nil {
			cfg.Policy.Data = c.policyData
		}
	}
	var problems []string
	for _, p := range found {
		problems = append(problems, p.text)
	}
	cfg.oidcDefaults()
	cfg.ldapDefaults()
	if err := cfg.Validate(); err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			return Config{}, err
		}
		for _, v := range ve.Problems {
			if !aboutUnreadValue(v, found) {
				problems = append(problems, v)
			}
		}
	}
	if len(problems) > 0 {
		return Config{}, &ValidationError{Problems: problems}
	}
	cfg.Groups, cfg.Policy.Data, _ = resolvePrincipals(cfg)
	return cfg, nil
}

// oidcDefaults fills in each OIDC issuer's unset keys; defaults of list
// elements cannot be in Default.
func (c *Config) oidcDefaults() {
	for i := range c.Authn.OIDC {
		o := &c.Authn.OIDC[i]
		if o.SubjectClaim == "" {
			o.SubjectClaim = "sub"
		}
		if o.SessionTTL == 0 {
			o.SessionTTL = Duration(defaultOIDCSessionTTL)
		}
	}
}

// aboutUnreadValue reports whether the validation problem v (" key.path:
// ...") concerns a key whose value could not be decoded, or a key above or
// below it: Validate saw a default there (or a list without the element),
// not what the file says.
func aboutUnreadValue(v string, found []problem) bool {
	key, _, _ := strings.Cut(v, ": ")
	under := func(a, b string) bool { // a is b or inside it
		return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(a, b+"[")
	}
	for _, p := range found {
		if !p.wrongType || p.path == "" {
			continue
		}
		// The whole list whose element it was: Validate's indexes skip it.
		path := p.path
		if i := strings.LastIndexByte(path, '['); i > 0 && strings.HasSuffix(path, "]") {
			path = path[:i]
		}
		if under(key, path) || under(path, key) {
			return true
		}
	}
	return false
}

// onlyOneDocument fails when the stream holds a second, non-empty document,
// which would otherwise be silently ignored.
func onlyOneDocument(dec *yaml.Decoder) error {
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(n.Content) == 1 && n.Content[0].ShortTag() == "!!null" {
			continue // a trailing "---" or an empty document
		}
		return fmt.Errorf("yaml: line %d: a second YAML document starts here; the configuration must be a single document", n.Line)
	}
}

// ValidationError lists every problem found in a Config, each prefixed by the
// key path it concerns (for example "token.ttl: must be at least 1m0s, got
// 10s"), and by its line when Parse found it in the document ("line 4:
// authn.htpaswd: unknown key (did you mean "htpasswd"?)").
type ValidationError struct {
	Problems []string
}

// Error returns the problems, one per line.
func (e *ValidationError) Error() string {
	return strings.Join(e.Problems, "\n")
}

// checkHostPort accepts "host:port" and ":port" with a numeric port 0..65535.
func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

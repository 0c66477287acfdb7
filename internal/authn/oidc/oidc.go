package oidc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// Defaults of Options.
const (
	DefaultSubjectClaim = "sub"
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultLeeway = time.Minute
	// DefaultRefetchInterval is the least time between two key fetches
	// that tokens with an unknown kid trigger.
	DefaultRefetchInterval = 30 * time.Second
	// DefaultRefreshInterval is how often the keys are refreshed in the
	// background (longer if the key set's Cache-Control max-age says so).
	DefaultRefreshInterval = 15 * time.Minute
	// DefaultFetchTimeout bounds one discovery or key set request.
	DefaultFetchTimeout = 10 * time.Second
)

// failedRetryInterval is the least time between two key fetches after a
// failed one, when RefetchInterval is longer: an issuer that was down at
// start is asked again soon, but not hammered.
const failedRetryInterval = 5 * time.Second

// maxDocumentSize bounds a discovery document or a key set.
const maxDocumentSize = 1 << 20

// DefaultAlgorithms are the JWS algorithms accepted by default: every
// asymmetric one. HMAC (HS256, HS384, HS512) and none are never accepted:
// an issuer's HMAC key would be a secret shared with every verifier, and
// none signs nothing.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}

// Options configure an Authenticator for one issuer.
type Options struct {
	// Name is the provider name of the identities its tokens prove
	// (identity.Identity.Provider).
	Name string
	// Issuer must equal the tokens' iss exactly, and the discovery
	// document's issuer. https, or http on a loopback host.
	Issuer string
	// Audiences: a token's aud (a string or an array) must hold one of
	// them. At least one is required.
	Audiences []string
	// SubjectClaim names the claim that becomes identity.Subject; its value
	// must be a non-empty string. Default "sub".
	SubjectClaim string
	// JWKSURL is the issuer's key set; discovery is skipped when it is
	// set. https, or http on a loopback host.
	JWKSURL string
	// Algorithms are the JWS algorithms accepted; default
	// DefaultAlgorithms. none and HS256/HS384/HS512 are refused.
	Algorithms []string
	// MaxTokenAge refuses a token whose iat is longer ago (iat is then
	// required); 0 means only exp counts.
	MaxTokenAge time.Duration
	// Leeway is the clock skew allowed on exp, nbf, iat and MaxTokenAge;
	// 0 means DefaultLeeway, a negative value none.
	Leeway time.Duration
	// RefetchInterval is the least time between two key fetches that
	// tokens with an unknown kid trigger (after a failed fetch, at most
	// 5 s); 0 means DefaultRefetchInterval.
	RefetchInterval time.Duration
	// RefreshInterval is how often the keys are refreshed in the
	// background; 0 means DefaultRefreshInterval. At least 1 s.
	RefreshInterval time.Duration
	// FetchTimeout bounds one discovery or key set request when
	// HTTPClient has no Timeout; 0 means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// HTTPClient fetches the discovery document and the key set (its
	// transport, for a private CA or a proxy); nil means a default one.
	// Responses are limited to 1 MiB, and redirects must stay on https (or
	// loopback).
	HTTPClient *http.Client
	// Now is the clock of the token checks and of the refetch interval;
	// default time.Now.
	Now func() time.Time
	// Logger receives key fetch events; default none.
	Logger *slog.Logger
}

// Authenticator verifies the ID tokens of one issuer.
type Authenticator struct {
	name, issuer    string
	audiences       []string
	subjectClaim    string
	algs            map[string]bool
	maxAge, leeway  time.Duration
	refetchInterval time.Duration
	fetchTimeout    time.Duration
	now             func() time.Time
	log             *slog.Logger
	client          *http.Client
	metrics         *metrics

	ctx    context.Context // ends at Close: background work and fetches
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  chan struct{}

	cache           *jwk.Cache
	refreshInterval time.Duration
	keys            atomic.Pointer[keySnapshot] // nil until a key set was fetched
	fetching        chan struct{}               // one token-triggered fetch at a time

	mu          sync.Mutex
	jwksURL     string    // "" until discovered
	lastAttempt time.Time // of the last token-triggered fetch, or a failed startup fetch
	lastErr     error     // of the last fetch, background ones included
}

// New returns an Authenticator for one issuer. It checks the options but
// makes no network call: the keys are fetched in the background from now
// on (see Ready), so an issuer unreachable at start does not stop the
// server. ctx bounds that background work, as does Close.
func New(ctx context.Context, opts Options) (*Authenticator, error) {
	if err := identity.ValidProviderName(opts.Name); err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	if opts.Name == identity.ProviderHtpasswd || opts.Name == identity.ProviderSourcehut {
		// Their principals own namespaces and are admitted by other rules.
		return nil, fmt.Errorf("oidc: provider name %q is a built-in provider's", opts.Name)
	}
	if err := CheckURL(opts.Issuer); err != nil {
		return nil, fmt.Errorf("oidc %s: issuer: %w", opts.Name, err)
	}
	if opts.JWKSURL != "" {
		if err := CheckURL(opts.JWKSURL); err != nil {
			return nil, fmt.Errorf("oidc %s: JWKS URL: %w", opts.Name, err)
		}
	}
	if len(opts.Audiences) == 0 || slices.Contains(opts.Audiences, "") {
		return nil, fmt.Errorf("oidc %s: at least one audience is required, and none may be empty", opts.Name)
	}
	algs, err := algorithms(opts.Algorithms)
	if err != nil {
		return nil, fmt.Errorf("oidc %s: %w", opts.Name, err)
	}
	if opts.MaxTokenAge < 0 {
		return nil, fmt.Errorf("oidc %s: max token age must not be negative", opts.Name)
	}
	a := &Authenticator{
		name:            opts.Name,
		issuer:          opts.Issuer,
		audiences:       slices.Clone(opts.Audiences),
		subjectClaim:    orDefault(opts.SubjectClaim, DefaultSubjectClaim),
		algs:            algs,
		maxAge:          opts.MaxTokenAge,
		leeway:          opts.Leeway,
		refetchInterval: opts.RefetchInterval,
		refreshInterval: opts.RefreshInterval,
		fetchTimeout:    opts.FetchTimeout,
		now:             opts.Now,
		log:             opts.Logger,
		ready:           make(chan struct{}),
		fetching:        make(chan struct{}, 1),
	}
	switch {
	case a.leeway == 0:
		a.leeway = DefaultLeeway
	case a.leeway < 0:
		a.leeway = 0
	}
	if a.refetchInterval <= 0 {
		a.refetchInterval = DefaultRefetchInterval
	}
	if a.refreshInterval <= 0 {
		a.refreshInterval = DefaultRefreshInterval
	}
	a.refreshInterval = max(a.refreshInterval, time.Second)
	if a.fetchTimeout <= 0 {
		a.fetchTimeout = DefaultFetchTimeout
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("provider", a.name, "issuer", a.issuer)
	a.client = newClient(opts.HTTPClient, a.fetchTimeout)
	a.metrics = newMetrics(a)

	a.ctx, a.cancel = context.WithCancel(ctx)
	// The refresh window is how often the cache looks for due refreshes.
	window := min(a.refreshInterval, DefaultRefreshInterval)
	a.cache = jwk.NewCache(a.ctx, jwk.WithRefreshWindow(window), jwk.WithErrSink(errSink{a}))
	if opts.JWKSURL != "" {
		if err := a.register(opts.JWKSURL); err != nil {
			a.cancel()
			return nil, fmt.Errorf("oidc %s: %w", opts.Name, err)
		}
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(a.ready)
		if err := a.initialFetch(); err != nil {
			a.log.Warn("OIDC issuer keys could not be fetched at start; the next token of the issuer tries again", "error", err)
		}
	}()
	return a, nil
}

// Name is the provider name.
func (a *Authenticator) Name() string { return a.name }

// Issuer is the configured issuer.
func (a *Authenticator) Issuer() string { return a.issuer }

// Ready is closed when the first attempt to fetch the keys, made in the
// background from New on, has ended, whether or not it succeeded.
func (a *Authenticator) Ready() <-chan struct{} { return a.ready }

// Close stops the background refresh and waits for the startup fetch. An
// Authenticator closed refuses tokens whose keys it does not hold with
// identity.ErrUnavailable.
func (a *Authenticator) Close() {
	a.cancel()
	a.wg.Wait()
}

// Recognize reports, without network and with bounded work, whether token
// has the shape of a JWT whose iss is this issuer exactly.
func (a *Authenticator) Recognize(token string) bool {
	u, err := parseUnverified(token)
	return err == nil && u.iss == a.issuer
}

// Authenticate verifies an ID token and returns the identity it proves:
// method oidc, provider Name, subject the SubjectClaim, and every claim as
// sent in OIDC.Claims (numbers as json.Number). A token that is not good
// gives an error wrapping identity.ErrUnauthenticated; one whose keys could
// not be fetched, identity.ErrUnavailable.
func (a *Authenticator) Authenticate(ctx context.Context, token identity.Secret) (identity.Identity, error) {
	id, err := a.authenticate(ctx, token.Reveal())
	a.metrics.verified(err)
	return id, err
}

func (a *Authenticator) authenticate(ctx context.Context, raw string) (identity.Identity, error) {
	u, err := parseUnverified(raw)
	switch {
	case errors.Is(err, errTooLarge):
		return identity.Identity{}, a.reject("ID token is larger than %d bytes", MaxTokenSize)
	case err != nil:
		return identity.Identity{}, a.reject("not an ID token (a JWT in compact form with iss)")
	case u.iss != a.issuer:
		return identity.Identity{}, a.reject("ID token issuer is not %s", a.issuer)
	}
	if err := a.checkHeader(u); err != nil {
		return identity.Identity{}, err
	}
	// The claims are checked before the signature: they are the very bytes
	// the signature covers, and a token that cannot pass costs no key
	// fetch.
	if err := a.validate(u); err != nil {
		return identity.Identity{}, err
	}
	subject, ok := u.claims[a.subjectClaim].(string)
	if !ok || subject == "" {
		return identity.Identity{}, a.reject("ID token claim %q (the subject) is missing or not a non-empty string", a.subjectClaim)
	}
	if err := a.verify(ctx, raw, u); err != nil {
		return identity.Identity{}, err
	}
	return identity.Identity{
		Method:   identity.MethodOIDC,
		Provider: a.name,
		Subject:  subject,
		OIDC:     &identity.OIDC{Issuer: a.issuer, Claims: u.claims},
	}, nil
}

// knownAlgorithms are the JWS algorithm names (RFC 7518, RFC 8037), which
// an error may repeat; any other alg is not echoed.
var knownAlgorithms = []string{"none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "ES256K", "PS256", "PS384", "PS512", "EdDSA"}

// checkHeader refuses what the header alone shows is not acceptable.
func (a *Authenticator) checkHeader(u *unverified) error {
	alg := u.alg
	if !slices.Contains(knownAlgorithms, alg) {
		alg = "(unknown)"
	}
	switch {
	case strings.EqualFold(u.alg, "none"):
		return a.reject("ID token signed with alg none: refused")
	case strings.HasPrefix(strings.ToUpper(u.alg), "HS"):
		return a.reject("ID token signed with HMAC (%s): refused, only asymmetric algorithms are accepted", alg)
	case !a.algs[u.alg]:
		return a.reject("ID token alg %s is not accepted", alg)
	}
	// A critical extension (RFC 7515, 4.1.11) we do not implement must be
	// refused; b64 (RFC 7797) is one, and changes what is signed.
	if _, ok := u.header["crit"]; ok {
		return a.reject("ID token has critical header parameters, which are not supported")
	}
	if _, ok := u.header["b64"]; ok {
		return a.reject("ID token has an unencoded payload (b64), which is not supported")
	}
	return nil
}

// validate checks the registered claims: exact iss, one of the audiences,
// exp required, nbf and iat with leeway, and the maximum age.
func (a *Authenticator) validate(u *unverified) error {
	// A jwt.Token of the claims validated here, set from the claims
	// decoded once (not through jwt.Parse, which guesses the format, and
	// would take claims named payload and signatures for a JWS to unwrap).
	tok := jwt.New()
	for _, name := range []string{jwt.IssuerKey, jwt.AudienceKey, jwt.ExpirationKey, jwt.NotBeforeKey, jwt.IssuedAtKey} {
		if v, ok := u.claims[name]; ok {
			if err := tok.Set(name, v); err != nil {
				// exp not a number, aud neither a string nor an array of
				// strings, …
				return a.reject("ID token claim %s is not of its type", name)
			}
		}
	}
	if tok.Issuer() != a.issuer {
		return a.reject("ID token issuer is not %s", a.issuer)
	}
	if !slices.ContainsFunc(tok.Audience(), func(aud string) bool { return slices.Contains(a.audiences, aud) }) {
		return a.reject("ID token audience does not include %s", strings.Join(a.audiences, " or "))
	}
	if _, ok := u.claims[jwt.ExpirationKey]; !ok {
		return a.reject("ID token has no exp")
	}
	if tok.Expiration().Unix() <= 0 {
		// jwx takes exp 0 for no exp at all.
		return a.reject("ID token expired")
	}
	clock := jwt.WithClock(jwt.ClockFunc(a.now))
	skew := jwt.WithAcceptableSkew(a.leeway)
	err := jwt.Validate(tok, clock, skew)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired()):
		return a.reject("ID token expired")
	case errors.Is(err, jwt.ErrTokenNotYetValid()):
		return a.reject("ID token is not valid yet (nbf)")
	case errors.Is(err, jwt.ErrInvalidIssuedAt()):
		return a.reject("ID token was issued in the future (iat)")
	case err != nil:
		return a.reject("ID token claims are not valid")
	}
	if a.maxAge > 0 {
		if _, ok := u.claims[jwt.IssuedAtKey]; !ok {
			return a.reject("ID token has no iat, which the maximum token age needs")
		}
		if err := jwt.Validate(tok, clock, skew, jwt.WithResetValidators(true), jwt.WithMaxDelta(a.maxAge, "", jwt.IssuedAtKey)); err != nil {
			return a.reject("ID token was issued more than %v ago (maximum token age)", a.maxAge)
		}
	}
	return nil
}

// verify checks the signature with the issuer's key that the kid names,
// fetching the keys when it is not among those held.
func (a *Authenticator) verify(ctx context.Context, raw string, u *unverified) error {
	snap := a.keys.Load()
	if !u.hasKid && snap.len() > 1 {
		return a.reject("ID token has no kid, and the issuer publishes several keys")
	}
	candidates := snap.lookup(u)
	if len(candidates) == 0 {
		fresh, err := a.refetch(ctx, snap)
		if err != nil {
			return err
		}
		if !u.hasKid && fresh.len() > 1 {
			return a.reject("ID token has no kid, and the issuer publishes several keys")
		}
		if candidates = fresh.lookup(u); len(candidates) == 0 {
			return a.reject("ID token is signed with a key the issuer does not publish (unknown kid)")
		}
	}
	var usable []verifyKey
	for _, k := range candidates {
		if k.compatible(u.alg) {
			usable = append(usable, k)
		}
	}
	if len(usable) == 0 {
		return a.reject("ID token alg %s does not match the key its kid names", u.alg)
	}
	for _, k := range usable {
		payload, err := jws.Verify([]byte(raw), jws.WithKey(jwa.SignatureAlgorithm(u.alg), k.pub), jws.WithCompact())
		if err == nil {
			if !bytes.Equal(payload, u.payload) {
				return a.reject("ID token signature does not verify")
			}
			return nil
		}
	}
	return a.reject("ID token signature does not verify")
}

// reject is an error wrapping identity.ErrUnauthenticated. Its text must
// hold nothing of the token: no claim's value, no header's.
func (a *Authenticator) reject(format string, args ...any) error {
	return fmt.Errorf("%w: OIDC provider %s: %s", identity.ErrUnauthenticated, a.name, fmt.Sprintf(format, args...))
}

// unavailable is an error wrapping identity.ErrUnavailable and cause.
func (a *Authenticator) unavailable(cause error) error {
	return fmt.Errorf("%w: OIDC provider %s: the signing keys of %s could not be fetched: %w", identity.ErrUnavailable, a.name, a.issuer, cause)
}

// algorithms checks the configured algorithms; none means the defaults.
func algorithms(configured []string) (map[string]bool, error) {
	if len(configured) == 0 {
		configured = DefaultAlgorithms
	}
	algs := map[string]bool{}
	for _, alg := range configured {
		switch {
		case strings.EqualFold(alg, "none"):
			return nil, errors.New("algorithm none is refused: it signs nothing")
		case strings.HasPrefix(strings.ToUpper(alg), "HS"):
			return nil, fmt.Errorf("algorithm %s is refused: only asymmetric algorithms are accepted (%s)", alg, strings.Join(DefaultAlgorithms, ", "))
		case !slices.Contains(DefaultAlgorithms, alg):
			return nil, fmt.Errorf("algorithm %q is not supported: use %s", alg, strings.Join(DefaultAlgorithms, ", "))
		}
		algs[alg] = true
	}
	return algs, nil
}

// CheckURL accepts an https URL, or an http one on a loopback host (local
// development and tests), without user info, query or fragment: what an
// issuer, its discovery document's jwks_uri or a configured key set URL
// may be.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an https URL without query or fragment", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip, err := netip.ParseAddr(host); (err == nil && ip.Unmap().IsLoopback()) || strings.EqualFold(host, "localhost") {
			return nil
		}
		return fmt.Errorf("%q must be https (plain http only on a loopback host)", s)
	default:
		return fmt.Errorf("%q is not an https URL", s)
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

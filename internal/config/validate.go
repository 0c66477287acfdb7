package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"git.sr.ht/~zozs/srht-registry/internal/authn/oidc"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/suggest"
	"git.sr.ht/~zozs/srht-registry/policy"
)

// problems collects "key: message" lines, so every section reports all of
// its problems and Validate all of them at once.
type problems []string

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, key+": "+fmt.Sprintf(format, args...))
}

// Validate checks every value and returns a *ValidationError listing all
// problems, section by section, or nil. It does not look at the file system.
func (c Config) Validate() error {
	var p problems
	c.validateListeners(&p)
	c.validateService(&p)
	c.Token.validate(&p)
	c.Authn.validate(&p)
	p = append(p, checkPolicyData(c.Policy.Data)...)
	_, _, principalProblems := resolvePrincipals(c)
	p = append(p, principalProblems...)
	c.Policy.validate(&p)
	c.Log.validate(&p)
	c.Limits.validate(&p)
	c.BruteForce.validate(&p)
	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}

// validateListeners checks where the server listens and whom it believes.
func (c Config) validateListeners(p *problems) {
	if err := checkHostPort(c.Listen); err != nil {
		p.add("listen", "must be host:port, like %s: %v", defaultListen, err)
	}
	if c.Metrics.Listen != "" {
		if err := checkHostPort(c.Metrics.Listen); err != nil {
			p.add("metrics.listen", "must be host:port, like 127.0.0.1:9464: %v", err)
		} else if c.Metrics.Listen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
			p.add("metrics.listen", "must differ from listen (%s): metrics have their own port", c.Listen)
		}
	}
	if !strings.HasPrefix(c.Metrics.Path, "/") {
		p.add("metrics.path", "%q must start with /", c.Metrics.Path)
	}
	if (c.TLS.Certificate == "") != (c.TLS.Key == "") {
		p.add("tls", "needs both certificate and key")
	}
	for i, cidr := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(cidr); err != nil && net.ParseIP(cidr) == nil {
			p.add(fmt.Sprintf("trusted_proxies[%d]", i), "%q is neither a CIDR nor an IP address", cidr)
		}
	}
}

// validateService checks the names tokens are issued for and by.
func (c Config) validateService(p *problems) {
	if len(c.Service) == 0 {
		p.add("service", "at least one service is required")
	}
	seen := make(map[string]int, len(c.Service))
	for i, s := range c.Service {
		key := fmt.Sprintf("service[%d]", i)
		switch {
		case s == "":
			p.add(key, "must not be empty")
		case strings.ContainsFunc(s, func(r rune) bool { return r == '/' || unicode.IsSpace(r) || unicode.IsControl(r) }):
			p.add(key, "%q must not contain spaces or slashes", s)
		}
		if j, dup := seen[s]; dup {
			p.add(key, "%q is a duplicate of service[%d]", s, j)
		} else {
			seen[s] = i
		}
	}
	if strings.TrimSpace(c.Issuer) == "" {
		p.add("issuer", "must not be empty")
	}
}

func (t Token) validate(p *problems) {
	switch {
	case t.TTL.D() < minTTL:
		p.add("token.ttl", "must be at least %v, got %v", minTTL, t.TTL)
	case t.TTL.D() > maxTTL:
		p.add("token.ttl", "must be at most %v, got %v", maxTTL, t.TTL)
	}
	switch rt := t.Refresh.TTL; {
	case rt < t.TTL:
		p.add("token.refresh.ttl", "must be at least token.ttl (%v), got %v", t.TTL, rt)
	case rt.D() > maxRefreshTTL:
		p.add("token.refresh.ttl", "must be at most %v, got %v", maxRefreshTTL, rt)
	}
	if t.Certificate != "" && t.Key == "" {
		p.add("token.certificate", "needs token.key: a certificate cannot match an ephemeral key")
	}
	if !slices.Contains([]string{"auto", "jwks", "thumbprint", "libtrust"}, t.KidFormat) {
		p.add("token.kid_format", "must be auto, jwks, thumbprint or libtrust, got %q", t.KidFormat)
	}
	for i, k := range t.PublishedKeys {
		if strings.TrimSpace(k) == "" {
			p.add(fmt.Sprintf("token.published_keys[%d]", i), "must not be empty")
		}
	}
}

func (a Authn) validate(p *problems) {
	sh := a.Sourcehut
	if u, err := url.Parse(sh.MetaURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		p.add("authn.sourcehut.meta_url", "must be an http(s) base URL such as %s, got %q", defaultMetaURL, sh.MetaURL)
	}
	if sh.Timeout <= 0 || sh.Timeout.D() > time.Minute {
		p.add("authn.sourcehut.timeout", "must be above 0 and at most 1m, got %v", sh.Timeout)
	}
	if sh.CacheSize < 1 || sh.CacheSize > maxCacheSize {
		p.add("authn.sourcehut.cache_size", "must be between 1 and %d, got %d", maxCacheSize, sh.CacheSize)
	}
	if sh.MaxCacheTTL < 0 {
		p.add("authn.sourcehut.max_cache_ttl", "must not be negative (0 means up to each token's expiry), got %v", sh.MaxCacheTTL)
	}
	if sh.NegativeCacheTTL <= 0 || sh.NegativeCacheTTL.D() > time.Hour {
		p.add("authn.sourcehut.negative_cache_ttl", "must be above 0 and at most 1h, got %v", sh.NegativeCacheTTL)
	}
	if pc := a.PasswordCache; pc.TTL < 0 || pc.TTL.D() > 24*time.Hour {
		p.add("authn.password_cache.ttl", "must be between 0 (off) and 24h, got %v", pc.TTL)
	}
	if pc := a.PasswordCache; pc.Size < 1 || pc.Size > maxCacheSize {
		p.add("authn.password_cache.size", "must be between 1 and %d, got %d", maxCacheSize, pc.Size)
	}
	*p = append(*p, checkSourcehutUsers(sh.Users)...)
	validateOIDC(a.OIDC, p)
	validateLDAP(a.LDAP, a.OIDC, p)
}

// oidcAlgorithms are the JWS algorithms an ID token may be signed with:
// asymmetric ones only. HMAC would let anyone holding the "secret" (for an
// issuer, its public key) sign tokens, and none signs nothing.
var oidcAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func validateOIDC(issuers []OIDC, p *problems) {
	names := map[string]int{}
	byIssuer := map[string]int{}
	for i, o := range issuers {
		key := fmt.Sprintf("authn.oidc[%d]", i)
		switch err := identity.ValidProviderName(o.Name); {
		case o.Name == "":
			p.add(key+".name", "is required: it names the provider of the identities its tokens log in as (identity.provider)")
		case err != nil:
			p.add(key+".name", "%v", err)
		case slices.Contains(builtinProviders, o.Name):
			p.add(key+".name", "%q is the name of a built-in provider; choose another (github, gitlab, cluster…)", o.Name)
		default:
			if j, dup := names[o.Name]; dup {
				p.add(key+".name", "%q is also the name of authn.oidc[%d]: each issuer is its own provider", o.Name, j)
			}
			names[o.Name] = i
		}
		if o.Issuer == "" {
			p.add(key+".issuer", "is required: the exact iss of its tokens, such as https://token.actions.githubusercontent.com")
		} else if err := oidc.CheckURL(o.Issuer); err != nil {
			p.add(key+".issuer", "%v", err)
		} else if j, dup := byIssuer[o.Issuer]; dup {
			p.add(key+".issuer", "is also the issuer of authn.oidc[%d]: a token's iss must pick one provider", j)
		} else {
			byIssuer[o.Issuer] = i
		}
		if o.JWKSURL != "" {
			if err := oidc.CheckURL(o.JWKSURL); err != nil {
				p.add(key+".jwks_url", "%v", err)
			}
		}
		if o.SubjectClaim == "" {
			p.add(key+".subject_claim", "must name a claim, such as sub")
		}
		for j, alg := range o.Algorithms {
			if !slices.Contains(oidcAlgorithms, alg) {
				p.add(fmt.Sprintf("%s.algorithms[%d]", key, j), "%q is not accepted: use %s (asymmetric algorithms only: never none or HS256)", alg, strings.Join(oidcAlgorithms, ", "))
			}
		}
		if o.MaxTokenAge < 0 {
			p.add(key+".max_token_age", "must not be negative (0 means only exp counts), got %v", o.MaxTokenAge)
		}
		if o.SessionTTL.D() < time.Minute || o.SessionTTL.D() > 24*time.Hour {
			p.add(key+".session_ttl", "must be between 1m and 24h, got %v", o.SessionTTL)
		}
	}
}

func (pol Policy) validate(p *problems) {
	if len(pol.OPA) > 0 {
		if len(pol.Bundles) > 0 {
			p.add("policy.opa", "cannot be combined with policy.bundles: serve local bundles from the bundle server too, or drop policy.opa")
		}
		if _, ok := pol.OPA["bundles"]; !ok {
			p.add("policy.opa", "needs a bundles section (the OPA configuration of the bundles to download)")
		}
	}
	if pol.Data != nil && (len(pol.Bundles) > 0 || len(pol.OPA) > 0) {
		p.add("policy.data", "is for the embedded policy only: a bundle brings its own data.json")
	}
	for i, b := range pol.Bundles {
		if strings.TrimSpace(b) == "" {
			p.add(fmt.Sprintf("policy.bundles[%d]", i), "must not be empty")
		}
	}
	if !policy.ValidQuery(pol.Query) {
		p.add("policy.query", "must be a reference under data made of dotted identifiers, like %s, got %q", policy.DefaultQuery, pol.Query)
	}
	if pol.Timeout <= 0 || pol.Timeout.D() > time.Minute {
		p.add("policy.timeout", "must be above 0 and at most 1m, got %v", pol.Timeout)
	}
	if pol.StartupWait <= 0 || pol.StartupWait.D() > time.Hour {
		p.add("policy.startup_wait", "must be above 0 and at most 1h, got %v", pol.StartupWait)
	}
	for i, b := range pol.Capabilities.AllowBuiltins {
		oneOf(p, fmt.Sprintf("policy.capabilities.allow_builtins[%d]", i), b, DeniableBuiltins,
			"%q is not a built-in denied by default (those are %s; every other one is allowed)")
	}
	for i, m := range pol.DecisionLogMask {
		oneOf(p, fmt.Sprintf("policy.decision_log_mask[%d]", i), m, MaskablePaths,
			"%q is not an input field that can be masked (%s)")
	}
}

// oneOf adds a problem for a value not among allowed, the message made of
// format (the value, then the allowed ones) and the closest allowed one.
func oneOf(p *problems, key, value string, allowed []string, format string) {
	if slices.Contains(allowed, value) {
		return
	}
	msg := fmt.Sprintf(format, value, strings.Join(allowed, ", "))
	if s, ok := suggest.Closest(value, allowed); ok {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	p.add(key, "%s", msg)
}

func (l Log) validate(p *problems) {
	if !slices.Contains(logLevels, l.Level) {
		p.add("log.level", "must be one of %s, got %q", strings.Join(logLevels, ", "), l.Level)
	}
	if !slices.Contains(logFormats, l.Format) {
		p.add("log.format", "must be one of %s, got %q", strings.Join(logFormats, ", "), l.Format)
	}
	oneOf(p, "log.decisions", l.Decisions, logDecisions, "must be one of %[2]s, got %[1]q")
	if l.FlushInterval < 0 || l.FlushInterval.D() > maxFlushInterval {
		p.add("log.flush_interval", "must be between 0 (each line written at once) and %v, got %v", maxFlushInterval, l.FlushInterval)
	}
}

func (l Limits) validate(p *problems) {
	if l.MaxScopes < minMaxScopes || l.MaxScopes > maxMaxScopes {
		p.add("limits.max_scopes", "must be between %d and %d, got %d", minMaxScopes, maxMaxScopes, l.MaxScopes)
	}
	if l.MaxBodyBytes < minMaxBodyBytes || l.MaxBodyBytes > maxMaxBodyBytes {
		p.add("limits.max_body_bytes", "must be between %d and %d, got %d", minMaxBodyBytes, maxMaxBodyBytes, l.MaxBodyBytes)
	}
	if l.MaxQueryBytes < 256 || l.MaxQueryBytes > 1<<20 {
		p.add("limits.max_query_bytes", "must be between 256 and %d, got %d", 1<<20, l.MaxQueryBytes)
	}
	if l.MaxHeaderBytes < 4096 || l.MaxHeaderBytes > 1<<20 {
		p.add("limits.max_header_bytes", "must be between 4096 and %d, got %d", 1<<20, l.MaxHeaderBytes)
	}
	if l.MaxConcurrent < 1 || l.MaxConcurrent > 1_000_000 {
		p.add("limits.max_concurrent", "must be between 1 and 1000000, got %d", l.MaxConcurrent)
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"read_header_timeout", l.ReadHeaderTimeout}, {"read_timeout", l.ReadTimeout}, {"write_timeout", l.WriteTimeout},
		{"idle_timeout", l.IdleTimeout}, {"shutdown_timeout", l.ShutdownTimeout}} {
		if d.v <= 0 || d.v.D() > time.Hour {
			p.add("limits."+d.key, "must be above 0 and at most 1h, got %v", d.v)
		}
	}
	if l.ShutdownDelay < 0 || l.ShutdownDelay.D() > 10*time.Minute {
		p.add("limits.shutdown_delay", "must be between 0 and 10m, got %v", l.ShutdownDelay)
	}
}

func (bf BruteForce) validate(p *problems) {
	switch {
	case bf.Threshold < 0:
		p.add("brute_force.threshold", "must be 0 (off) or more, got %d", bf.Threshold)
	case bf.Threshold > 0:
		if bf.Window <= 0 {
			p.add("brute_force.window", "must be above 0 while brute_force.threshold is on, got %v", bf.Window)
		}
		if bf.Tracked < 1 {
			p.add("brute_force.tracked", "must be at least 1 while brute_force.threshold is on, got %d", bf.Tracked)
		}
	}
	if bf.Store != "" {
		// The URL may hold a password: no message repeats it.
		u, err := url.Parse(bf.Store)
		switch {
		case err != nil:
			p.add("brute_force.store", "must be a URL like redis://host:6379/0")
		case u.Scheme != "redis" && u.Scheme != "rediss":
			p.add("brute_force.store", "must be a redis:// or rediss:// URL, not %s://", u.Scheme)
		case u.Hostname() == "":
			p.add("brute_force.store", "must name a host, like redis://host:6379/0")
		case u.RawQuery != "" || u.Fragment != "":
			p.add("brute_force.store", "must have no query or fragment: timeouts are set by the server")
		case strings.Trim(u.Path, "/") != "":
			if db, err := strconv.Atoi(strings.Trim(u.Path, "/")); err != nil || db < 0 {
				p.add("brute_force.store", "the path must be a database number, like /0")
			}
		}
	}
}

package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/authn/ldap"
	"git.sr.ht/~zozs/srht-registry/internal/authn/oidc"
	"git.sr.ht/~zozs/srht-registry/internal/authn/refresh"
	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
	"git.sr.ht/~zozs/srht-registry/internal/authz"
	"git.sr.ht/~zozs/srht-registry/internal/config"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/server"
	"git.sr.ht/~zozs/srht-registry/internal/token"
)

// instance is a built token server: its handler, how to reload what can be
// reloaded, and how to stop what it started. build makes it stage by stage
// (keys, authentication, policy, handler); Server runs it.
type instance struct {
	handler http.Handler
	// reload re-reads the config file's policy, data and groups, the
	// local bundles, the key files and the htpasswd file; the TLS pair is
	// reloaded by Server.
	reload func(ctx context.Context) error
	// watch lists the files and directories whose changes trigger reload.
	watch []string
	stop  func(ctx context.Context)
	// collectors are the components' metrics.
	collectors []prometheus.Collector
	// warnings are the config's valid settings that look like mistakes,
	// for check-config to print (serve logs them).
	warnings []string
	// draining is set on SIGTERM with limits.shutdown_delay: not ready,
	// still serving.
	draining atomic.Bool
}

// prepared is what a stage loaded from a reloaded config, not yet in
// force: commit puts it in force. Reload prepares every stage first and
// commits only when all of them loaded, so on any error the last good
// set stays, whole.
type prepared struct {
	commit func()
}

// logControl is what a reload changes of the log (its level, whether each
// decision has its own line) and the flush of its buffer, which the
// handler calls when it goes idle.
type logControl struct {
	level         *slog.LevelVar
	decisionLines atomic.Bool
	flush         func()
}

// build loads everything the config names. lc is the log's settings a
// reload changes.
func build(ctx context.Context, cfg config.Config, configPath string, log *slog.Logger, lc *logControl) (*instance, error) {
	rt := &instance{stop: func(context.Context) {}}
	keys, err := loadKey(cfg.Token, log)
	if err != nil {
		return nil, invalid(err)
	}
	users, err := buildAuthn(ctx, cfg, keys, log)
	if err != nil {
		return nil, invalid(err)
	}
	rt.collectors = append(rt.collectors, users.collectors...)
	rt.warnings = configWarnings(cfg, users.htpasswd)
	for _, w := range rt.warnings {
		log.Warn("config: " + w)
	}
	pol, err := buildPolicy(ctx, cfg, log, false)
	if err != nil {
		return nil, err
	}
	rt.stop = func(ctx context.Context) {
		pol.stop(ctx)
		if users.idTokens != nil {
			users.idTokens.Close()
		}
		if users.shared != nil {
			_ = users.shared.Close()
		}
	}
	rt.collectors = append(rt.collectors, pol.collectors...)
	current := cfg
	rt.watch = watchedFiles(current, configPath)
	rt.reload = func(ctx context.Context) error {
		next := current
		if configPath != "" {
			var err error
			if next, err = loadConfig(configPath); err != nil {
				return err
			}
		}
		changed, err := configChanges(current, next)
		if err != nil {
			return err
		}
		if refused := reloadRefusals(current, changed); len(refused) > 0 {
			return fmt.Errorf("nothing reloaded: the config changes settings a running server cannot take on: %s; restart to apply them", strings.Join(refused, ", "))
		}
		var steps []prepared
		for _, stage := range []func(context.Context, config.Config) (prepared, error){
			pol.prepare, users.prepare,
			func(_ context.Context, next config.Config) (prepared, error) {
				set, err := keys.load(next.Token)
				return prepared{commit: func() { keys.swap(set) }}, err
			},
			func(_ context.Context, next config.Config) (prepared, error) {
				var l slog.Level
				if err := l.UnmarshalText([]byte(next.Log.Level)); err != nil {
					return prepared{}, fmt.Errorf("log.level: %w", err)
				}
				return prepared{commit: func() {
					lc.level.Set(l)
					lc.decisionLines.Store(next.Log.Decisions == "scope")
				}}, nil
			},
		} {
			p, err := stage(ctx, next)
			if err != nil {
				return err
			}
			steps = append(steps, p)
		}
		for _, p := range steps {
			p.commit()
		}
		if len(changed) > 0 {
			log.Info("config changes applied", "settings", changed)
		}
		current = next
		rt.watch = watchedFiles(current, configPath)
		for _, w := range configWarnings(next, users.htpasswd) {
			log.Warn("config: " + w)
		}
		return nil
	}
	lc.decisionLines.Store(cfg.Log.Decisions == "scope")
	handler, err := buildHandler(cfg, log, lc, keys, users, pol.az, rt.draining.Load)
	if err != nil {
		return nil, err
	}
	rt.handler = handler
	rt.collectors = append(rt.collectors, handler.Collectors()...)
	return rt, nil
}

// invalid marks an error in what the config names (a key, the htpasswd
// file, the TLS pair, the policy) as an invalid configuration: exit 2,
// which a service manager should not retry (the systemd unit's
// RestartPreventExitStatus). Failures that may pass (a bundle server not
// reachable yet, an address in use) stay exit 1.
func invalid(err error) error {
	if err == nil || errors.As(err, new(usageError)) {
		return err
	}
	return usageError{err}
}

// watchedFiles are the files and directories of cfg whose changes trigger a
// reload: the key files, the htpasswd file, the local bundles and the
// config file itself.
func watchedFiles(cfg config.Config, configPath string) []string {
	files := keyFiles(cfg.Token)
	if cfg.Authn.Htpasswd != "" {
		files = append(files, cfg.Authn.Htpasswd)
	}
	if len(cfg.Policy.OPA) == 0 {
		files = append(files, cfg.Policy.Bundles...)
	}
	if configPath != "" {
		files = append(files, configPath)
	}
	return files
}

// authnStage is authentication: the chain of login methods, the htpasswd
// file and Sourcehut tokens it checks, refresh tokens, and the brute-force
// throttle in front of it all. The long-lived parts (the htpasswd table
// with its cache, the Sourcehut token cache, the throttle's counts) stay
// across reloads; the chain, which says which of them are on, is made anew
// from each config and swapped in whole.
type authnStage struct {
	htpasswd *authn.Htpasswd          // nil without authn.htpasswd at start
	tokens   *sourcehut.Authenticator // nil with Sourcehut login off at start
	idTokens *oidc.Set                // nil without authn.oidc
	// directories are those of authn.ldap, in order; restart-only.
	directories []*ldap.Authenticator
	refresher   *refresh.Tokens // nil with refresh tokens off at start
	chain       atomic.Pointer[authn.Chain]
	refreshOn   atomic.Bool
	// front is what the handler calls: the chain of the moment, behind
	// the throttle.
	front server.Authenticator
	// shared holds the throttle's counts with brute_force.store, else nil.
	shared     *authn.RedisStore
	log        *slog.Logger
	collectors []prometheus.Collector
}

func buildAuthn(ctx context.Context, cfg config.Config, keys *signingKeys, log *slog.Logger) (*authnStage, error) {
	a := &authnStage{log: log}
	if cfg.Authn.Htpasswd != "" {
		htpasswd, err := authn.LoadHtpasswd(cfg.Authn.Htpasswd)
		if err != nil {
			return nil, err
		}
		if pc := cfg.Authn.PasswordCache; pc.TTL > 0 {
			htpasswd.EnableCache(pc.TTL.D(), pc.Size, time.Now)
		}
		a.htpasswd = htpasswd
		a.collectors = append(a.collectors, htpasswd.Collectors()...)
		log.Info("password users loaded", "file", cfg.Authn.Htpasswd, "users", htpasswd.Len())
	}
	if sh := cfg.Authn.Sourcehut; sh.IsEnabled() {
		tokens, err := sourcehut.New(sourcehut.Options{
			Meta: &sourcehut.MetaClient{
				URL:     sh.MetaURL,
				HTTP:    &http.Client{Transport: http.DefaultTransport},
				Timeout: sh.Timeout.D(),
			},
			CacheSize:   sh.CacheSize,
			MaxCacheTTL: sh.MaxCacheTTL.D(),
			NegativeTTL: sh.NegativeCacheTTL.D(),
			Users:       sh.LoginUsers(),
			Now:         time.Now,
		})
		if err != nil {
			return nil, err
		}
		a.tokens = tokens
		a.collectors = append(a.collectors, tokens.Collectors()...)
		log.Info("Sourcehut tokens accepted", "meta_url", sh.MetaURL, "cache_size", sh.CacheSize, "max_cache_ttl", sh.MaxCacheTTL.D())
		logSourcehutUsers(log, sh)
	}
	if len(cfg.Authn.OIDC) > 0 {
		set, err := buildOIDC(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		a.idTokens = set
		a.collectors = append(a.collectors, set.Collectors()...)
	}
	dirs, err := buildLDAP(cfg, log)
	if err != nil {
		return nil, err
	}
	a.directories = dirs
	// Refresh tokens are signed and checked with the key ring of the
	// moment, and bound to the htpasswd lines of the moment: a reload of
	// either applies to them at once.
	if cfg.Token.Refresh.IsEnabled() {
		a.refresher = &refresh.Tokens{Issuer: cfg.Issuer, TTL: cfg.Token.Refresh.TTL.D(), Keys: keys.ring, Now: time.Now}
		if a.htpasswd != nil {
			a.refresher.Passwords = a.htpasswd
		}
		if a.tokens != nil {
			// A Sourcehut login's refresh token is only as good as the
			// token it was made from: revoked on meta.sr.ht, it ends within
			// authn.sourcehut.max_cache_ttl.
			a.refresher.Recheck = func(ctx context.Context, service string, token identity.Secret) (string, error) {
				id, err := a.tokens.Authenticate(ctx, service, token)
				return id.Subject, err
			}
		}
		for _, o := range cfg.Authn.OIDC {
			if a.refresher.OIDC == nil {
				a.refresher.OIDC = map[string]refresh.OIDCSession{}
			}
			a.refresher.OIDC[o.Name] = refresh.OIDCSession{Issuer: o.Issuer, TTL: o.SessionTTL.D()}
		}
		if len(a.directories) > 0 {
			// A directory login's refresh token looks its user up again
			// (at most once per authn.ldap[].cache_ttl): a user removed,
			// or taken out of a group, loses it within that time.
			_, byName := directoryChecks(a.directories)
			a.refresher.Directories = map[string]refresh.Directory{}
			for name, d := range byName {
				a.refresher.Directories[name] = d
			}
		}
		log.Info("refresh tokens issued on offline logins", "ttl", cfg.Token.Refresh.TTL.D())
	}
	a.chain.Store(a.chainFor(cfg))
	a.refreshOn.Store(a.refresher != nil)
	a.front = authenticatorFunc(func(ctx context.Context, cred identity.Credentials) (identity.Identity, error) {
		return a.chain.Load().Authenticate(ctx, cred)
	})
	if bf := cfg.BruteForce; bf.Threshold > 0 {
		throttle := authn.NewThrottle(a.front, bf.Threshold, bf.Window.D(), bf.Tracked, time.Now)
		// Checked without an upstream call, and not guessable: an ID token
		// of a configured issuer (its signature is ours to check) and a
		// Sourcehut token meta.sr.ht already vouched for. A neighbour's
		// forged tokens must not keep them out.
		throttle.Exempt = func(cred identity.Credentials) bool {
			secret := cred.Secret.Reveal()
			return (a.idTokens != nil && a.idTokens.Recognize(secret)) || (a.tokens != nil && a.tokens.Verified(secret))
		}
		if bf.Store != "" {
			// Connected on first use: a Redis that is down at start does
			// not keep the server from starting (each replica limits on
			// its own until it is up).
			shared, err := authn.NewRedisStore(bf.Store, bf.Threshold, bf.Window.D())
			if err != nil {
				return nil, err
			}
			throttle.Share(shared, log)
			a.shared = shared
			log.Info("brute-force limits shared by the replicas", "store", shared.String())
		}
		a.collectors = append(a.collectors, throttle.Collectors()...)
		a.front = throttle
	}
	return a, nil
}

// buildOIDC makes the verifier of each trusted ID-token issuer. None is
// asked anything here: their keys are fetched in the background, so an
// issuer that is down does not keep the server from starting (its tokens
// get 503 until its keys arrive).
func buildOIDC(ctx context.Context, cfg config.Config, log *slog.Logger) (*oidc.Set, error) {
	var issuers []*oidc.Authenticator
	for _, o := range cfg.Authn.OIDC {
		a, err := oidc.New(context.WithoutCancel(ctx), oidc.Options{
			Name:         o.Name,
			Issuer:       o.Issuer,
			Audiences:    o.Audiences(cfg.Service),
			SubjectClaim: o.SubjectClaim,
			JWKSURL:      o.JWKSURL,
			Algorithms:   o.Algorithms,
			MaxTokenAge:  o.MaxTokenAge.D(),
			Now:          time.Now,
			Logger:       log.With("provider", o.Name),
		})
		if err != nil {
			for _, prev := range issuers {
				prev.Close()
			}
			return nil, fmt.Errorf("authn.oidc %s: %w", o.Name, err)
		}
		issuers = append(issuers, a)
		log.Info("OIDC ID tokens accepted", "provider", o.Name, "issuer", o.Issuer, "audiences", o.Audiences(cfg.Service),
			"subject_claim", o.SubjectClaim, "session_ttl", o.SessionTTL.D())
	}
	return oidc.NewSet(issuers...)
}

// authenticatorFunc is a function as a server.Authenticator.
type authenticatorFunc func(ctx context.Context, cred identity.Credentials) (identity.Identity, error)

func (f authenticatorFunc) Authenticate(ctx context.Context, cred identity.Credentials) (identity.Identity, error) {
	return f(ctx, cred)
}

// chainFor is the chain of login methods cfg turns on, over the long-lived
// parts made at start (a reload can turn a method off, not on: see
// reloadRefusals).
func (a *authnStage) chainFor(cfg config.Config) *authn.Chain {
	c := &authn.Chain{Anonymous: cfg.Authn.AnonymousEnabled(), Groups: cfg.Groups}
	if a.htpasswd != nil && cfg.Authn.Htpasswd != "" {
		c.Passwords = a.htpasswd
		c.Local = a.htpasswd
	}
	if a.tokens != nil {
		c.Tokens = a.tokens
	}
	if a.idTokens != nil {
		c.IDTokens = a.idTokens
	}
	c.Directories, _ = directoryChecks(a.directories)
	if a.refresher != nil && cfg.Token.Refresh.IsEnabled() {
		c.Refresh = a.refresher
	}
	return c
}

// prepare loads the reloaded htpasswd file; groups, the Sourcehut
// allow-list and which methods are on need nothing loaded.
func (a *authnStage) prepare(_ context.Context, next config.Config) (prepared, error) {
	var users *authn.Htpasswd
	if a.htpasswd != nil {
		if next.Authn.Htpasswd == "" {
			// Password login turned off: no user is left, so no password
			// refresh token redeems either.
			users, _ = authn.ParseHtpasswd(nil)
		} else {
			var err error
			if users, err = authn.LoadHtpasswd(next.Authn.Htpasswd); err != nil {
				return prepared{}, err
			}
		}
	}
	chain := a.chainFor(next)
	return prepared{commit: func() {
		if a.tokens != nil {
			// Turning Sourcehut login off on reload lets nobody in (and ends
			// Sourcehut refresh tokens); turning it on needs a restart.
			a.tokens.SetUsers(next.Authn.Sourcehut.LoginUsers())
		}
		if users != nil {
			a.htpasswd.Update(users)
			a.log.Info("password users reloaded", "file", next.Authn.Htpasswd, "users", users.Len())
		}
		a.chain.Store(chain)
		a.refreshOn.Store(a.refresher != nil && next.Token.Refresh.IsEnabled())
	}}, nil
}

// policyStage is authorisation: the embedded policy or local bundles
// compiled here, or the bundles an OPA service delivers (policy.opa).
type policyStage struct {
	az    *authz.Authorizer
	local bool // false with policy.opa: bundles arrive by themselves
	check func(*authz.Engine)
	log   *slog.Logger
	stop  func(context.Context)
	// collectors are the decision metrics, and the bundle metrics of
	// policy.opa.
	collectors []prometheus.Collector
}

// buildPolicy compiles the local policy, or starts the plugins of policy.opa
// and waits for the first bundle. For check-config (checkOnly), no bundle in
// time is an error rather than a server that is not ready yet.
func buildPolicy(ctx context.Context, cfg config.Config, log *slog.Logger, checkOnly bool) (*policyStage, error) {
	p := &policyStage{local: len(cfg.Policy.OPA) == 0, log: log, stop: func(context.Context) {}}
	p.check = func(e *authz.Engine) { policyWarnings(cfg, e, log.Warn) }
	if p.local {
		engine, err := compilePolicy(ctx, cfg.Policy)
		if err != nil {
			return nil, invalid(err)
		}
		p.az = authz.NewAuthorizer(engine)
		p.collectors = p.az.Collectors()
		log.Info("policy loaded", "revision", engine.Revision())
		p.check(engine)
		return p, nil
	}
	opaConfig, err := json.Marshal(cfg.Policy.OPA)
	if err != nil {
		return nil, usageError{fmt.Errorf("policy.opa: %w", err)}
	}
	ro := authz.RemoteOptions{Config: opaConfig, Query: cfg.Policy.Query, Timeout: cfg.Policy.Timeout.D(), Wait: cfg.Policy.StartupWait.D(), Logger: log,
		NotReadyAfterWait: !checkOnly, OnActivate: p.check, AllowBuiltins: cfg.Policy.Capabilities.AllowBuiltins,
		DecisionLogMask: cfg.Policy.DecisionLogMask}
	if cfg.Policy.FallbackToEmbedded {
		// The embedded policy answers at its own query, whatever
		// policy.query names for the bundles.
		if ro.Fallback, err = compilePolicy(ctx, config.Policy{Timeout: cfg.Policy.Timeout}); err != nil {
			return nil, invalid(err)
		}
	}
	remote, err := authz.StartRemote(ctx, ro)
	if err != nil {
		return nil, err
	}
	p.stop = remote.Stop
	p.az = remote.Authorizer()
	p.collectors = append(remote.Collectors(), p.az.Collectors()...)
	if e := p.az.Engine(); e != nil {
		log.Info("policy loaded", "revision", e.Revision()) // checked as it activated
	}
	return p, nil
}

// prepare compiles the reloaded local policy; with policy.opa the bundles
// reload by themselves.
func (p *policyStage) prepare(ctx context.Context, next config.Config) (prepared, error) {
	if p.local != (len(next.Policy.OPA) == 0) {
		return prepared{}, errors.New("switching between local policy and policy.opa needs a restart")
	}
	if !p.local {
		return prepared{commit: func() {}}, nil
	}
	engine, err := compilePolicy(ctx, next.Policy)
	if err != nil {
		return prepared{}, err
	}
	return prepared{commit: func() {
		p.az.Swap(engine)
		p.log.Info("policy reloaded", "revision", engine.Revision())
		p.check(engine)
	}}, nil
}

// policyWarnings warns of a policy that looks right and is not: one that
// cannot tell the providers' accounts apart, or one that a refresh token
// escapes.
func policyWarnings(cfg config.Config, e *authz.Engine, warn func(msg string, args ...any)) {
	if providers := cfg.Providers(); len(providers) > 1 && e.ProviderBlind() {
		warn("the policy reads input.identity.subject but never input.identity.provider or input.identity.namespace: "+
			"it cannot tell "+strings.Join(providers, ":alice from ")+":alice, so whatever it grants a name it grants every provider's account of that name "+
			"(see policy/README.md, input version 2)",
			"revision", e.Revision(), "providers", providers)
	}
	if len(cfg.Authn.OIDC) > 0 && e.OIDCBlind() {
		warn("the policy never reads input.identity.oidc, yet authn.oidc trusts ID tokens: every workflow the issuer vouches for "+
			"(every repository's jobs, for a public CI) is an authenticated identity to it; grant OIDC identities by their claims "+
			"(policy.data.oidc rules, see docs/oidc.md), or check identity.oidc in your policy",
			"revision", e.Revision())
	}
	if cfg.Token.Refresh.IsEnabled() && e.RefreshBlind() {
		warn("the policy tells identities apart by input.identity.method but never reads input.identity.refreshed_from: "+
			"an identity from a refresh token has method \"refresh\" and escapes rules meant for \"password\" or \"sourcehut\" "+
			"(such as a read-only cap); use refreshed_from (see policy/README.md), or set token.refresh.enabled: false",
			"revision", e.Revision())
	}
}

// buildHandler is the HTTP side: the token endpoint over the stages, the
// JWKS, and health checks that answer "not ready" while draining or before
// a remote policy arrived.
func buildHandler(cfg config.Config, log *slog.Logger, lc *logControl, keys *signingKeys, users *authnStage, az *authz.Authorizer, draining func() bool) (*server.Server, error) {
	trusted, err := parsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, usageError{err}
	}
	var refresher server.Refresher
	if users.refresher != nil {
		refresher = users.refresher
	}
	refreshOn := users.refreshOn.Load
	return server.New(server.Options{
		Services:      cfg.Service,
		Realm:         cfg.Issuer,
		MaxScopes:     cfg.Limits.MaxScopes,
		MaxBodyBytes:  cfg.Limits.MaxBodyBytes,
		MaxQueryBytes: cfg.Limits.MaxQueryBytes,
		MaxConcurrent: cfg.Limits.MaxConcurrent,
		// A POST body gets as long to arrive as the headers did.
		BodyTimeout:    cfg.Limits.ReadHeaderTimeout.D(),
		TrustedProxies: trusted,
		Ready: func() error {
			if draining() {
				return errors.New("shutting down")
			}
			if az.Engine() == nil {
				return errors.New("no policy bundle is active yet")
			}
			return nil
		},
		Authenticator: users.front,
		Authorizer:    az,
		Minter:        &token.Minter{Issuer: cfg.Issuer, TTL: cfg.Token.TTL.D(), Keys: keys.ring, Now: time.Now},
		Refresh:       refresher,
		RefreshOn:     refreshOn,
		Keys:          keys.ring,
		Logger:        log,
		DecisionLines: lc.decisionLines.Load,
		Idle:          lc.flush,
		Now:           time.Now,
	}), nil
}

// compilePolicy compiles the embedded policy (with the config's data) or
// the local bundles, type-checked against the input schema, with the
// built-ins policy.capabilities allows.
func compilePolicy(ctx context.Context, p config.Policy) (*authz.Engine, error) {
	o := authz.LocalPolicy(p.Data, p.Bundles, p.Query, p.Timeout.D())
	o.AllowBuiltins = p.Capabilities.AllowBuiltins
	return authz.Compile(ctx, o)
}

// parsePrefixes reads CIDRs and single addresses.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies: %q is neither a CIDR nor an address", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

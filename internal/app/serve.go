package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
	"git.sr.ht/~zozs/srht-registry/internal/authz"
	"git.sr.ht/~zozs/srht-registry/internal/config"
	"git.sr.ht/~zozs/srht-registry/internal/server"
	"git.sr.ht/~zozs/srht-registry/internal/token"
	"git.sr.ht/~zozs/srht-registry/policy"
)

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	configPath := fs.String("config", "", "config `FILE` (default: built-in defaults)")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return usageError{err}
	}
	// HTTPS, or plain HTTP only on loopback or with insecure_http (tls.go).
	certs, err := prepareTLS(cfg, log)
	if err != nil {
		return err
	}
	rt, err := build(ctx, cfg, *configPath, log, false)
	if err != nil {
		return err
	}
	defer rt.stop(context.WithoutCancel(ctx))
	if certs != nil {
		rt.watch = append(rt.watch, certs.watch()...)
		rt.reload = certs.reloadWith(rt.reload)
	}
	reloads := newReloadMetrics(time.Now())
	reg, err := newRegistry(rt.collectors, reloads)
	if err != nil {
		return err
	}
	metrics, err := startMetrics(cfg.Metrics, reg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := metrics.stop(); err != nil {
			log.Warn("stopping the metrics listener", "error", err)
		}
	}()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ln = certs.listener(ln)
	srv := &http.Server{
		Handler:           rt.handler,
		ReadHeaderTimeout: cfg.Limits.ReadHeaderTimeout.D(),
		ReadTimeout:       cfg.Limits.ReadTimeout.D(),
		WriteTimeout:      cfg.Limits.WriteTimeout.D(),
		IdleTimeout:       cfg.Limits.IdleTimeout.D(),
		MaxHeaderBytes:    cfg.Limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if rt.reload != nil {
		// Armed before "listening" is logged: a SIGHUP or a file change
		// from then on is never missed.
		startReloader(ctx, rt, log, reloads)
	}
	log.Info("listening", "addr", ln.Addr().String(), "scheme", certs.scheme(), "services", []string(cfg.Service), "issuer", cfg.Issuer)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	if d := cfg.Limits.ShutdownDelay.D(); d > 0 {
		// Still serving, but /readyz says 503 so that the balancer stops
		// sending new connections before the listener closes.
		rt.draining.Store(true)
		log.Info("draining: /readyz answers 503 while requests are still served", "shutdown_delay", d)
		time.Sleep(d)
	}
	log.Info("shutting down")
	// New connections are refused at once; requests in flight get
	// shutdown_timeout to finish.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Limits.ShutdownTimeout.D())
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

func loadConfig(path string) (config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		var verr *config.ValidationError
		if errors.As(err, &verr) {
			return cfg, usageError{fmt.Errorf("invalid config %s:\n  %s", path, strings.Join(verr.Problems, "\n  "))}
		}
		return cfg, usageError{err}
	}
	return cfg, nil
}

func newLogger(c config.Log, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// instance is a built server: its handler, how to reload what can be
// reloaded, and how to stop what it started.
type instance struct {
	handler http.Handler
	// reload re-reads the config file's policy, data and groups, the
	// local bundles, the key files and the htpasswd file (and, wrapped by
	// the TLS code, the TLS pair); nil when nothing is reloadable.
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

// build loads everything the config names; it is also what check-config
// runs, so a config that checks also serves.
func build(ctx context.Context, cfg config.Config, configPath string, log *slog.Logger, checkOnly bool) (*instance, error) {
	rt := &instance{stop: func(context.Context) {}}
	keys, err := loadKey(cfg.Token, log)
	if err != nil {
		return nil, err
	}
	rt.watch = append(rt.watch, keyFiles(cfg.Token)...)
	chain := &authn.Chain{Anonymous: cfg.Authn.AnonymousEnabled(), Groups: cfg.Groups}
	var htpasswd *authn.Htpasswd
	if cfg.Authn.Htpasswd != "" {
		htpasswd, err = authn.LoadHtpasswd(cfg.Authn.Htpasswd)
		if err != nil {
			return nil, err
		}
		if pc := cfg.Authn.PasswordCache; pc.TTL > 0 {
			htpasswd.EnableCache(pc.TTL.D(), pc.Size, time.Now)
		}
		chain.Passwords = htpasswd
		chain.Local = htpasswd
		rt.collectors = append(rt.collectors, htpasswd.Collectors()...)
		rt.watch = append(rt.watch, cfg.Authn.Htpasswd)
		log.Info("password users loaded", "file", cfg.Authn.Htpasswd, "users", htpasswd.Len())
	}
	var tokens *sourcehut.Authenticator
	if sh := cfg.Authn.Sourcehut; sh.IsEnabled() {
		tokens, err = sourcehut.New(sourcehut.Options{
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
		chain.Tokens = tokens
		rt.collectors = append(rt.collectors, tokens.Collectors()...)
		log.Info("Sourcehut tokens accepted", "meta_url", sh.MetaURL, "cache_size", sh.CacheSize, "max_cache_ttl", sh.MaxCacheTTL.D())
		logSourcehutUsers(log, sh)
	}
	rt.warnings = configWarnings(cfg, htpasswd)
	for _, w := range rt.warnings {
		log.Warn("config: " + w)
	}
	// Refresh tokens are signed and checked with the key ring of the
	// moment, and bound to the htpasswd lines of the moment: a reload of
	// either applies to them at once.
	var refresher *token.Refresher
	if cfg.Token.Refresh.IsEnabled() {
		refresher = &token.Refresher{Issuer: cfg.Issuer, TTL: cfg.Token.Refresh.TTL.D(), Keys: keys.ring, Now: time.Now}
		if htpasswd != nil {
			refresher.Passwords = htpasswd
		}
		chain.Refresh = refresher
		log.Info("refresh tokens issued on offline logins", "ttl", cfg.Token.Refresh.TTL.D())
	}
	checkPolicy := func(e *authz.Engine) {
		if providers := cfg.Providers(); len(providers) > 1 && e.ProviderBlind() {
			log.Warn("the policy reads input.identity.subject but never input.identity.provider or input.identity.namespace: "+
				"it cannot tell "+strings.Join(providers, ":alice from ")+":alice, so whatever it grants a name it grants every provider's account of that name "+
				"(see policy/README.md, input version 2)",
				"revision", e.Revision(), "providers", providers)
		}
		if refresher != nil && e.RefreshBlind() {
			log.Warn("the policy tells identities apart by input.identity.method but never reads input.identity.refreshed_from: "+
				"an identity from a refresh token has method \"refresh\" and escapes rules meant for \"password\" or \"sourcehut\" "+
				"(such as a read-only cap); use refreshed_from (see policy/README.md), or set token.refresh.enabled: false",
				"revision", e.Revision())
		}
	}

	var az *authz.Authorizer
	if len(cfg.Policy.OPA) > 0 {
		opaConfig, err := json.Marshal(cfg.Policy.OPA)
		if err != nil {
			return nil, usageError{fmt.Errorf("policy.opa: %w", err)}
		}
		ro := authz.RemoteOptions{Config: opaConfig, Query: cfg.Policy.Query, Timeout: cfg.Policy.Timeout.D(), Wait: cfg.Policy.StartupWait.D(), Logger: log,
			NotReadyAfterWait: !checkOnly, OnActivate: checkPolicy}
		if cfg.Policy.FallbackToEmbedded {
			if ro.Fallback, err = compilePolicy(ctx, config.Policy{Query: cfg.Policy.Query, Timeout: cfg.Policy.Timeout}); err != nil {
				return nil, err
			}
		}
		remote, err := authz.StartRemote(ctx, ro)
		if err != nil {
			return nil, err
		}
		rt.stop = remote.Stop
		az = remote.Authorizer()
		rt.collectors = append(rt.collectors, remote.Collectors()...)
	} else {
		engine, err := compilePolicy(ctx, cfg.Policy)
		if err != nil {
			return nil, err
		}
		az = authz.NewAuthorizer(engine)
		rt.watch = append(rt.watch, cfg.Policy.Bundles...)
	}
	if e := az.Engine(); e != nil {
		log.Info("policy loaded", "revision", e.Revision())
		if len(cfg.Policy.OPA) == 0 { // remote bundles are checked as they activate
			checkPolicy(e)
		}
	}

	// Reload builds the whole new set (policy, data, groups, users) first
	// and swaps it in only if all of it loaded: on any error the last good
	// set stays, whole.
	rt.reload = func(ctx context.Context) error {
		next := cfg
		if configPath != "" {
			if next, err = loadConfig(configPath); err != nil {
				return err
			}
		}
		if (len(cfg.Policy.OPA) > 0) != (len(next.Policy.OPA) > 0) {
			return errors.New("switching between local policy and policy.opa needs a restart")
		}
		var engine *authz.Engine
		if len(next.Policy.OPA) == 0 {
			if engine, err = compilePolicy(ctx, next.Policy); err != nil {
				return err
			}
		}
		var users *authn.Htpasswd
		if htpasswd != nil && next.Authn.Htpasswd != "" {
			if users, err = authn.LoadHtpasswd(next.Authn.Htpasswd); err != nil {
				return err
			}
		}
		nextKeys, err := keys.load(next.Token)
		if err != nil {
			return err
		}
		chain.SetGroups(next.Groups)
		if tokens != nil {
			// Turning Sourcehut login off on reload lets nobody in (and ends
			// Sourcehut refresh tokens); turning it on needs a restart.
			tokens.SetUsers(next.Authn.Sourcehut.LoginUsers())
		}
		if engine != nil {
			az.Swap(engine)
			log.Info("policy reloaded", "revision", engine.Revision())
			checkPolicy(engine)
		}
		if users != nil {
			htpasswd.Update(users)
			log.Info("password users reloaded", "file", next.Authn.Htpasswd, "users", users.Len())
		}
		keys.swap(nextKeys)
		for _, w := range configWarnings(next, htpasswd) {
			log.Warn("config: " + w)
		}
		return nil
	}
	if configPath != "" {
		rt.watch = append(rt.watch, configPath)
	}

	trusted, err := parsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, usageError{err}
	}
	rt.collectors = append(rt.collectors, az.Collectors()...)
	var authenticator server.Authenticator = chain
	if bf := cfg.BruteForce; bf.Threshold > 0 {
		throttle := authn.NewThrottle(chain, bf.Threshold, bf.Window.D(), bf.Tracked, time.Now)
		rt.collectors = append(rt.collectors, throttle.Collectors()...)
		authenticator = throttle
	}
	var refresh server.Refresher
	if refresher != nil {
		refresh = refresher
	}
	handler := server.New(server.Options{
		Services:       cfg.Service,
		Realm:          cfg.Issuer,
		MaxScopes:      cfg.Limits.MaxScopes,
		MaxBodyBytes:   cfg.Limits.MaxBodyBytes,
		MaxQueryBytes:  cfg.Limits.MaxQueryBytes,
		MaxConcurrent:  cfg.Limits.MaxConcurrent,
		TrustedProxies: trusted,
		Ready: func() error {
			if rt.draining.Load() {
				return errors.New("shutting down")
			}
			if az.Engine() == nil {
				return errors.New("no policy bundle is active yet")
			}
			return nil
		},
		Authenticator: authenticator,
		Authorizer:    az,
		Minter:        &token.Minter{Issuer: cfg.Issuer, TTL: cfg.Token.TTL.D(), Keys: keys.ring, Now: time.Now},
		Refresh:       refresh,
		Keys:          keys.ring,
		Logger:        log,
		Now:           time.Now,
	})
	rt.handler = handler
	rt.collectors = append(rt.collectors, handler.Collectors()...)
	return rt, nil
}

// compilePolicy compiles the embedded policy (with the config's data) or
// the local bundles, type-checked against the input schema.
func compilePolicy(ctx context.Context, p config.Policy) (*authz.Engine, error) {
	return authz.Compile(ctx, authz.Options{
		Modules: policy.FS(),
		Data:    p.Data,
		Bundles: p.Bundles,
		Schema:  policy.InputSchema(),
		Query:   p.Query,
		Timeout: p.Timeout.D(),
	})
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

// startReloader reloads on SIGHUP and when a watched file changes. The
// signal handler and the file watches are in place when it returns.
func startReloader(ctx context.Context, rt *instance, log *slog.Logger, metrics *reloadMetrics) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	changes, err := watchFiles(ctx, rt.watch, log)
	if err != nil {
		log.Warn("cannot watch files for changes; reload with SIGHUP", "error", err)
	}
	go reloadLoop(ctx, rt, log, hup, changes, metrics)
}

func reloadLoop(ctx context.Context, rt *instance, log *slog.Logger, hup chan os.Signal, changes <-chan string, metrics *reloadMetrics) {
	defer signal.Stop(hup)
	for {
		var why string
		select {
		case <-ctx.Done():
			return
		case <-hup:
			why = "SIGHUP"
		case path := <-changes:
			why = "changed: " + path
		}
		err := rt.reload(ctx)
		metrics.observe(err, time.Now())
		if err != nil {
			log.Error("reload failed; what failed keeps its last good state", "trigger", why, "error", err)
			continue
		}
		log.Info("reloaded", "trigger", why)
	}
}

func runCheckConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check-config", stderr)
	configPath := fs.String("config", "", "config `FILE`")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if _, err := prepareTLS(cfg, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	rt, err := build(ctx, cfg, *configPath, slog.New(slog.DiscardHandler), true)
	if err != nil {
		return err
	}
	rt.stop(ctx)
	for _, w := range rt.warnings {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	fmt.Fprintln(stdout, "config OK")
	return nil
}

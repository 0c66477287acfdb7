package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
	"git.sr.ht/~zozs/srht-registry/internal/authz"
	"git.sr.ht/~zozs/srht-registry/internal/config"
	"git.sr.ht/~zozs/srht-registry/internal/server"
	"git.sr.ht/~zozs/srht-registry/internal/token"
	"git.sr.ht/~zozs/srht-registry/policy"
)

// shutdownGrace is how long in-flight requests get to finish on shutdown.
const shutdownGrace = 10 * time.Second

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
	handler, err := build(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String(), "services", []string(cfg.Service), "issuer", cfg.Issuer)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
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

// build loads everything the config names and returns the handler; it is
// also what check-config runs, so a config that checks also serves.
func build(ctx context.Context, cfg config.Config, log *slog.Logger) (http.Handler, error) {
	key, err := loadKey(cfg.Token, log)
	if err != nil {
		return nil, err
	}
	chain := &authn.Chain{Anonymous: cfg.Authn.AnonymousEnabled(), Groups: cfg.Groups}
	if cfg.Authn.Htpasswd != "" {
		h, err := authn.LoadHtpasswd(cfg.Authn.Htpasswd)
		if err != nil {
			return nil, err
		}
		chain.Passwords = h
		log.Info("password users loaded", "file", cfg.Authn.Htpasswd, "users", h.Len())
	}
	if sh := cfg.Authn.Sourcehut; sh.IsEnabled() {
		tokens, err := sourcehut.New(sourcehut.Options{
			Meta: &sourcehut.MetaClient{
				URL:     sh.MetaURL,
				HTTP:    &http.Client{Transport: http.DefaultTransport},
				Timeout: sh.Timeout,
			},
			CacheSize:   sh.CacheSize,
			MaxCacheTTL: sh.MaxCacheTTL,
			NegativeTTL: sh.NegativeCacheTTL,
			Now:         time.Now,
		})
		if err != nil {
			return nil, err
		}
		chain.Tokens = tokens
		log.Info("Sourcehut tokens accepted", "meta_url", sh.MetaURL, "cache_size", sh.CacheSize, "max_cache_ttl", sh.MaxCacheTTL)
	}
	if len(cfg.Policy.Bundles) > 0 {
		// Bundle loading (with roots, revisions and remote bundle servers)
		// is tracked separately; refusing is safer than ignoring the key.
		return nil, usageError{errors.New("policy.bundles: bundles are not supported yet; remove the key to use the embedded policy")}
	}
	az, err := authz.New(ctx, authz.Options{Modules: policy.FS(), Data: cfg.Policy.Data, Query: cfg.Policy.Query})
	if err != nil {
		return nil, err
	}
	jwks, err := token.JWKS(key)
	if err != nil {
		return nil, err
	}
	return server.New(server.Options{
		Services:      cfg.Service,
		Realm:         cfg.Issuer,
		MaxScopes:     cfg.Limits.MaxScopes,
		MaxBodyBytes:  cfg.Limits.MaxBodyBytes,
		Authenticator: chain,
		Authorizer:    az,
		Minter:        &token.Minter{Issuer: cfg.Issuer, TTL: cfg.Token.TTL, Key: key, Now: time.Now},
		JWKS:          jwks,
		Logger:        log,
		Now:           time.Now,
	}), nil
}

func loadKey(c config.Token, log *slog.Logger) (*token.Key, error) {
	if c.Key == "" {
		signer, err := token.Generate(token.KeyEC)
		if err != nil {
			return nil, err
		}
		key, err := token.NewKey(signer, nil)
		if err != nil {
			return nil, err
		}
		log.Warn("no token.key configured: signing with an ephemeral P-256 key; tokens and the JWKS will not survive a restart (create a key with `srht-registry keys`)", "kid", key.ID())
		return key, nil
	}
	keyPEM, err := os.ReadFile(c.Key)
	if err != nil {
		return nil, fmt.Errorf("token.key: %w", err)
	}
	var certPEM []byte
	if c.Certificate != "" {
		if certPEM, err = os.ReadFile(c.Certificate); err != nil {
			return nil, fmt.Errorf("token.certificate: %w", err)
		}
	}
	key, err := token.ParseKey(keyPEM, certPEM)
	if err != nil {
		return nil, fmt.Errorf("token.key %s: %w", c.Key, err)
	}
	log.Info("signing key loaded", "kid", key.ID(), "alg", key.Algorithm().String(), "x5c", key.HasCertificate())
	return key, nil
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
	if _, err := build(ctx, cfg, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "config OK")
	return nil
}

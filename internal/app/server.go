package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/config"
	"git.sr.ht/~zozs/srht-registry/internal/logbuf"
)

// Server is a running token server. New builds it from a config and
// starts serving; Addr says where; Reload re-reads what can change while it
// runs; Close drains and stops it. serve maps signals to these calls, and
// tests drive them directly: several servers on port 0 in one process.
type Server struct {
	cfg config.Config
	log *slog.Logger
	// logOut batches the log's writes (logbuf); Close flushes it.
	logOut  *logbuf.Writer
	inst    *instance
	certs   *serveTLS
	reloads *reloadMetrics
	metrics *metricsServer
	http    *http.Server
	ln      net.Listener

	// served is closed when http.Serve returns; serveErr is what it
	// returned.
	served   chan struct{}
	serveErr error

	// watched are the files being watched; rearm asks the watch to take
	// on a new list; stopWatch ends the watch and watching waits for it.
	watched   []string
	rearm     chan struct{}
	stopWatch context.CancelFunc
	watching  sync.WaitGroup
	reloadMu  sync.Mutex // one reload at a time, whatever triggered it
	closeOnce sync.Once
	closeErr  error
}

// Options configure New.
type Options struct {
	// ConfigPath is the config file; "" runs on the embedded defaults.
	ConfigPath string
	// Log receives the server's log lines, in the format the config asks.
	Log io.Writer
}

// New loads the config, builds the server, listens on its address (with
// TLS when configured) and serves in the background. The files it reads
// are watched: a change reloads them. ctx bounds the start only (a remote
// policy bundle may be awaited); Close stops the server.
func New(ctx context.Context, o Options) (_ *Server, err error) {
	cfg, err := loadConfig(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	// The log's lines are batched (logbuf): written at most
	// log.flush_interval after they are logged, at once at error level and
	// when the handler goes idle, and all of them at Close or a failed
	// start.
	out := logbuf.New(o.Log, cfg.Log.FlushInterval.D(), 0)
	defer func() {
		if err != nil {
			_ = out.Close()
		}
	}()
	log, level, err := newLogger(cfg.Log, out)
	if err != nil {
		return nil, usageError{err}
	}
	log = slog.New(logbuf.FlushOnError(log.Handler(), out))
	// HTTPS, or plain HTTP only on loopback or with insecure_http (tls.go).
	certs, err := prepareTLS(cfg, log)
	if err != nil {
		return nil, invalid(err)
	}
	lc := &logControl{level: level, flush: func() { _ = out.Flush() }}
	inst, err := build(ctx, cfg, o.ConfigPath, log, lc)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, logOut: out, inst: inst, certs: certs, reloads: newReloadMetrics(time.Now()), served: make(chan struct{}), rearm: make(chan struct{}, 1)}
	if err := s.listen(); err != nil {
		inst.stop(context.WithoutCancel(ctx))
		if stopErr := s.metrics.stop(); stopErr != nil {
			log.Warn("stopping the metrics listener", "error", stopErr)
		}
		return nil, err
	}
	// Watching before "listening" is logged: a file changed from then on
	// is never missed.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	s.stopWatch = stopWatch
	changes, stop := s.armWatch(watchCtx)
	s.watching.Go(func() { s.watchLoop(watchCtx, changes, stop) })
	log.Info("listening", "addr", s.Addr(), "scheme", certs.scheme(), "services", []string(cfg.Service), "issuer", cfg.Issuer)
	// The line a supervisor, or whoever started the server, waits for.
	_ = out.Flush()
	go func() {
		s.serveErr = s.http.Serve(s.ln)
		close(s.served)
	}()
	return s, nil
}

// watchLoop reloads when a watched file changes, until ctx ends. When a
// reload changes which files the config names, it arms the watch anew.
func (s *Server) watchLoop(ctx context.Context, changes <-chan string, stop context.CancelFunc) {
	for {
		select {
		case <-ctx.Done():
			stop()
			return
		case <-s.rearm:
			stop()
			changes, stop = s.armWatch(ctx)
		case path := <-changes:
			_ = s.reload(ctx, "changed: "+path)
		}
	}
}

// armWatch watches the files of the config in force.
func (s *Server) armWatch(ctx context.Context) (<-chan string, context.CancelFunc) {
	s.reloadMu.Lock()
	files := s.watchList()
	s.watched = files
	s.reloadMu.Unlock()
	ctx, stop := context.WithCancel(ctx)
	changes, err := watchFiles(ctx, files, s.log)
	if err != nil {
		s.log.Warn("cannot watch files for changes; reload with SIGHUP", "error", err)
	}
	return changes, stop
}

// watchList is what a change of must reload: the config's files and the
// TLS pair.
func (s *Server) watchList() []string {
	return append(slices.Clone(s.inst.watch), s.certs.watch()...)
}

// listen starts the metrics listener and opens the token server's.
func (s *Server) listen() error {
	reg, err := newRegistry(s.inst.collectors, s.reloads)
	if err != nil {
		return err
	}
	if s.metrics, err = startMetrics(s.cfg.Metrics, reg, s.log); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.ln = s.certs.listener(ln)
	limits := s.cfg.Limits
	s.http = &http.Server{
		Handler:           s.inst.handler,
		ReadHeaderTimeout: limits.ReadHeaderTimeout.D(),
		ReadTimeout:       limits.ReadTimeout.D(),
		WriteTimeout:      limits.WriteTimeout.D(),
		IdleTimeout:       limits.IdleTimeout.D(),
		MaxHeaderBytes:    limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return nil
}

// Addr is the address the token server listens on, with the port the
// system chose when the config says port 0.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// MetricsAddr is the address of the metrics listener; "" without one.
func (s *Server) MetricsAddr() string {
	if s.metrics == nil {
		return ""
	}
	return s.metrics.ln.Addr().String()
}

// Reload re-reads the config file's policy, data, groups and Sourcehut
// users, the local bundles, the key files, the htpasswd file and the TLS
// pair, as SIGHUP does. On an error, what failed keeps its last good state.
func (s *Server) Reload(ctx context.Context) error { return s.reload(ctx, "Reload") }

// reload reloads and logs and counts the outcome, naming what triggered
// it.
func (s *Server) reload(ctx context.Context, trigger string) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	err := s.inst.reload(ctx)
	if s.certs != nil {
		err = errors.Join(err, s.certs.load())
	}
	s.reloads.observe(err, time.Now())
	if err != nil {
		s.log.Error("reload failed; what failed keeps its last good state", "trigger", trigger, "error", err)
		return err
	}
	s.log.Info("reloaded", "trigger", trigger)
	if !slices.Equal(s.watchList(), s.watched) {
		select {
		case s.rearm <- struct{}{}:
		default: // already asked
		}
	}
	return nil
}

// Close stops the server gracefully: with limits.shutdown_delay it first
// answers /readyz with 503 for that long while still serving, then refuses
// new connections and gives requests in flight limits.shutdown_timeout to
// finish (ctx can cut that short). Further calls return the first's result.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.close(ctx) })
	return s.closeErr
}

func (s *Server) close(ctx context.Context) error {
	if d := s.cfg.Limits.ShutdownDelay.D(); d > 0 {
		// Still serving, but /readyz says 503 so that the balancer stops
		// sending new connections before the listener closes.
		s.inst.draining.Store(true)
		s.log.Info("draining: /readyz answers 503 while requests are still served", "shutdown_delay", d)
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	s.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(ctx, s.cfg.Limits.ShutdownTimeout.D())
	defer cancel()
	err := s.http.Shutdown(shutdownCtx)
	if err != nil {
		err = fmt.Errorf("shutdown: %w", err)
	} else if <-s.served; !errors.Is(s.serveErr, http.ErrServerClosed) {
		err = fmt.Errorf("serve: %w", s.serveErr)
	}
	s.stopWatch()
	s.watching.Wait()
	s.inst.stop(context.WithoutCancel(ctx))
	if stopErr := s.metrics.stop(); stopErr != nil {
		s.log.Warn("stopping the metrics listener", "error", stopErr)
	}
	// Every line logged so far is written; a late one goes straight out.
	_ = s.logOut.Close()
	return err
}

package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"git.sr.ht/~zozs/srht-registry/internal/config"
)

// runServe is the serve command: a Server, with SIGHUP mapped to Reload
// and the end of ctx (SIGTERM, SIGINT) to Close.
func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	configPath := fs.String("config", "", "config `FILE` (default: built-in defaults)")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	// Armed before the server starts: a SIGHUP from then on reloads (one
	// sent while it starts, once it has started) and never kills the
	// process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	srv, err := New(ctx, Options{ConfigPath: *configPath, Log: stderr})
	if err != nil {
		return err
	}
	for {
		select {
		case <-hup:
			_ = srv.reload(ctx, "SIGHUP") // logged and counted; the server goes on
		case <-srv.served:
			return srv.Close(context.WithoutCancel(ctx))
		case <-ctx.Done():
			return srv.Close(context.WithoutCancel(ctx))
		}
	}
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

// newLogger is the server's logger, at the configured level; a reload sets
// the level through the returned LevelVar.
func newLogger(c config.Log, w io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, nil, fmt.Errorf("log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		opts.ReplaceAttr = durationInSeconds
		return slog.New(slog.NewJSONHandler(w, opts)), level, nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), level, nil
}

// durationInSeconds writes a duration in JSON logs as seconds, with the
// unit in the key ("duration_seconds": 0.0012): slog's default, a bare
// integer of nanoseconds, reads as seconds in most log pipelines.
func durationInSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.Float64(a.Key+"_seconds", a.Value.Duration().Seconds())
	}
	return a
}

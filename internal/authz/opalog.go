package authz

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/open-policy-agent/opa/v1/logging"
)

// opaLogger sends OPA's plugin logs to our slog logger, so bundle download
// failures show up with everything else.
type opaLogger struct {
	log    *slog.Logger
	fields []any
}

var _ logging.Logger = (*opaLogger)(nil)

func newOPALogger(l *slog.Logger) *opaLogger { return &opaLogger{log: l.With("component", "opa")} }

func (l *opaLogger) logf(level slog.Level, f string, a ...any) {
	l.log.Log(context.Background(), level, fmt.Sprintf(f, a...), l.fields...)
}

func (l *opaLogger) Debug(f string, a ...any) { l.logf(slog.LevelDebug, f, a...) }
func (l *opaLogger) Info(f string, a ...any)  { l.logf(slog.LevelInfo, f, a...) }
func (l *opaLogger) Error(f string, a ...any) { l.logf(slog.LevelError, f, a...) }
func (l *opaLogger) Warn(f string, a ...any)  { l.logf(slog.LevelWarn, f, a...) }

func (l *opaLogger) WithFields(fields map[string]any) logging.Logger {
	n := &opaLogger{log: l.log, fields: append([]any{}, l.fields...)}
	for k, v := range fields {
		n.fields = append(n.fields, k, v)
	}
	return n
}

func (l *opaLogger) GetLevel() logging.Level {
	switch {
	case l.log.Enabled(context.Background(), slog.LevelDebug):
		return logging.Debug
	case l.log.Enabled(context.Background(), slog.LevelInfo):
		return logging.Info
	case l.log.Enabled(context.Background(), slog.LevelWarn):
		return logging.Warn
	default:
		return logging.Error
	}
}

// SetLevel is a no-op: the level is the server's log.level.
func (l *opaLogger) SetLevel(logging.Level) {}

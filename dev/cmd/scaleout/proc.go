package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"git.sr.ht/~zozs/srht-registry/dev/internal/childproc"
)

// child is a long-running process (replica, haproxy, registry).
type child struct {
	*childproc.Child
	log     *childproc.Log
	logFile string
	started time.Time
}

// startChild starts path with args and env (added to a clean base
// environment), its output going to logFile, to memory and to tee (if not
// nil).
func startChild(name, logFile string, tee io.Writer, env []string, path string, args ...string) (*child, error) {
	c, log, err := childproc.StartLogged(name, logFile, tee, env, path, args...)
	if err != nil {
		return nil, err
	}
	return &child{Child: c, log: log, logFile: logFile, started: time.Now()}, nil
}

// runCmd runs one client command, bounded by ctx and timeout, in its own
// process group. On failure the error holds the output's most telling
// line.
func runCmd(ctx context.Context, timeout time.Duration, dir string, env []string, stdin string, name string, args ...string) (string, error) {
	text, err := childproc.Run(ctx, timeout, dir, env, stdin, name, args...)
	switch {
	case err == nil:
		return text, nil
	case errors.Is(err, childproc.ErrTimeout):
		return text, fmt.Errorf("%s: %w: %s", name, err, lastLine(text))
	}
	msg := lastLine(text)
	if msg == "" {
		msg = err.Error()
	}
	return text, fmt.Errorf("%s: %s", name, msg)
}

// lastLine is the last non-empty line of a command's output, where the
// CLIs print their error.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return truncate(l, 400)
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"git.sr.ht/~zozs/srht-registry/dev/internal/childproc"
)

// child is a long-running process (token server, registry), its output
// going to a log file and to memory.
type child struct {
	*childproc.Child
	log *childproc.Log
}

// startChild starts path with args and env (added to a clean base
// environment), its output going to logFile and to memory.
func startChild(name, logFile string, env []string, path string, args ...string) (*child, error) {
	c, log, err := childproc.StartLogged(name, logFile, nil, env, path, args...)
	if err != nil {
		return nil, err
	}
	return &child{Child: c, log: log}, nil
}

// runCmd runs one client command, bounded by ctx and timeout, in its own
// process group. It returns the combined output; on failure the error holds
// the output's most telling line.
func runCmd(ctx context.Context, timeout time.Duration, dir string, env []string, stdin string, name string, args ...string) (string, error) {
	text, err := childproc.Run(ctx, timeout, dir, env, stdin, name, args...)
	switch {
	case err == nil:
		return text, nil
	case errors.Is(err, childproc.ErrTimeout):
		return text, fmt.Errorf("%s: %w: %s", name, err, oneLine(text))
	}
	msg := oneLine(text)
	if msg == "" {
		msg = err.Error()
	}
	return text, errors.New(msg)
}

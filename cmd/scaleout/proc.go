package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/childproc"
)

// logBuffer keeps what a long-running child writes (bounded) and mirrors
// it to a file: the replicas' and haproxy's logs are parsed after the run.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	file    io.Writer
	tee     io.Writer // optional: gets a copy of everything
	dropped int
}

// maxChildLog bounds what is kept in memory per child; a 20 s run writes
// a few MiB per replica.
const maxChildLog = 64 << 20

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len()+len(p) <= maxChildLog {
		b.buf.Write(p)
	} else {
		b.dropped += len(p)
	}
	if b.file != nil {
		_, _ = b.file.Write(p)
	}
	if b.tee != nil {
		_, _ = b.tee.Write(p)
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Dropped is how many bytes did not fit in memory (they are in the file).
func (b *logBuffer) Dropped() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}

// child is a long-running process (replica, haproxy, registry).
type child struct {
	*childproc.Child
	log     *logBuffer
	logFile string
	started time.Time
}

// startChild starts path with args and env (added to a clean base
// environment), its output going to logFile, to memory and to tee (if not
// nil).
func startChild(name, logFile string, tee io.Writer, env []string, path string, args ...string) (*child, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, fmt.Errorf("log file of %s: %w", name, err)
	}
	log := &logBuffer{file: f, tee: tee}
	cmd := exec.Command(path, args...)
	cmd.Env = append(childproc.BaseEnv(), env...)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = childproc.SysProcAttr()
	c, err := childproc.Start(name, cmd, func() { f.Close() })
	if err != nil {
		f.Close()
		return nil, err
	}
	return &child{Child: c, log: log, logFile: logFile, started: time.Now()}, nil
}

// waitExit waits up to d for the process to end.
func (c *child) waitExit(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !c.Exited() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
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

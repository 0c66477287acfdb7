package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/childproc"
)

// logBuffer keeps everything a server writes (bounded) and mirrors it to a
// file, so a cell can read what the registry logged while it ran.
type logBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	file io.Writer
}

const maxServerLog = 32 << 20

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len()+len(p) <= maxServerLog {
		b.buf.Write(p)
	}
	if b.file != nil {
		_, _ = b.file.Write(p)
	}
	return len(p), nil
}

// Len is a mark: Since(mark) is what was logged after it.
func (b *logBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *logBuffer) Since(mark int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if mark > b.buf.Len() {
		return ""
	}
	return string(b.buf.Bytes()[mark:])
}

// child is a long-running process (token server, registry), its output
// going to a log file and to memory.
type child struct {
	*childproc.Child
	log *logBuffer
}

// startChild starts path with args and env (added to a clean base
// environment), its output going to logFile and to memory.
func startChild(name, logFile string, env []string, path string, args ...string) (*child, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	log := &logBuffer{file: f}
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

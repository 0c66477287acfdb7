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
	"syscall"
	"time"
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

// child is a long-running process (token server, registry). Every child is
// in the children set until it has ended, so killAll can end them all.
type child struct {
	name string
	cmd  *exec.Cmd
	log  *logBuffer
	done chan struct{}
	err  error
}

var children = struct {
	sync.Mutex
	set map[*child]struct{}
}{set: map[*child]struct{}{}}

// procAttr puts a process in its own process group (so a timeout kills
// what it started too) and has the kernel kill it if the matrix dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func killGroup(p *os.Process, sig syscall.Signal) {
	if p == nil {
		return
	}
	if err := syscall.Kill(-p.Pid, sig); err != nil {
		_ = p.Signal(sig)
	}
}

// startChild starts path with args and env (added to a clean base
// environment), its output going to logFile and to memory.
func startChild(name, logFile string, env []string, path string, args ...string) (*child, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	c := &child{name: name, log: &logBuffer{file: f}, done: make(chan struct{})}
	c.cmd = exec.Command(path, args...)
	c.cmd.Env = append(baseEnv(), env...)
	c.cmd.Stdout = c.log
	c.cmd.Stderr = c.log
	c.cmd.SysProcAttr = procAttr()
	children.Lock()
	defer children.Unlock()
	if err := c.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	children.set[c] = struct{}{}
	go func() {
		c.err = c.cmd.Wait()
		f.Close()
		children.Lock()
		delete(children.set, c)
		children.Unlock()
		close(c.done)
	}()
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's group and SIGKILL after grace.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	killGroup(c.cmd.Process, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		killGroup(c.cmd.Process, syscall.SIGKILL)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// killAll kills every child still running and waits (bounded) for them.
func killAll() {
	children.Lock()
	var all []*child
	for c := range children.set {
		all = append(all, c)
	}
	children.Unlock()
	for _, c := range all {
		killGroup(c.cmd.Process, syscall.SIGKILL)
	}
	for _, c := range all {
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// baseEnv is the environment every process starts from: PATH and nothing
// that could send traffic off the machine (no proxy variables).
func baseEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8", "NO_PROXY=*", "no_proxy=*"}
	for _, k := range []string{"GOPATH", "GOCACHE", "GOMODCACHE", "GOFLAGS", "GOTOOLCHAIN"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// errTimeout marks a command that ran past its bound.
var errTimeout = errors.New("timed out")

// runCmd runs one client command, bounded by ctx and timeout, in its own
// process group. It returns the combined output; on failure the error holds
// the output's most telling line.
func runCmd(ctx context.Context, timeout time.Duration, dir string, env []string, stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(baseEnv(), env...)
	cmd.SysProcAttr = procAttr()
	cmd.Cancel = func() error {
		killGroup(cmd.Process, syscall.SIGKILL)
		return nil
	}
	cmd.WaitDelay = 5 * time.Second
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	text := out.String()
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return text, fmt.Errorf("%s: %w after %v: %s", name, errTimeout, timeout, oneLine(text))
		}
		msg := oneLine(text)
		if msg == "" {
			msg = err.Error()
		}
		return text, errors.New(msg)
	}
	return text, nil
}

// Package childproc runs the child processes of the development harnesses
// (dev/cmd/loadbench, dev/cmd/matrix, dev/cmd/scaleout): each is tracked
// from start until it has been waited for, stopped with SIGTERM and then
// SIGKILL after a grace period, and KillAll ends every one still running,
// so no server outlives a run. Signals go to the child's process group when
// it leads one (Setpgid), so whatever it started ends with it.
package childproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Child is a started process.
type Child struct {
	Name string
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
}

var running = struct {
	sync.Mutex
	set map[*Child]struct{}
}{set: map[*Child]struct{}{}}

// Start starts cmd; onExit, if not nil, runs once the process has been
// waited for (to close its log file, say).
func Start(name string, cmd *exec.Cmd, onExit func()) (*Child, error) {
	c := &Child{Name: name, Cmd: cmd, done: make(chan struct{})}
	running.Lock()
	defer running.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	running.set[c] = struct{}{}
	go func() {
		c.err = cmd.Wait()
		if onExit != nil {
			onExit()
		}
		running.Lock()
		delete(running.set, c)
		running.Unlock()
		close(c.done)
	}()
	return c, nil
}

// Pid is the process ID.
func (c *Child) Pid() int { return c.Cmd.Process.Pid }

// Exited reports whether the process has ended.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Err is Wait's error, once Exited.
func (c *Child) Err() error {
	if !c.Exited() {
		return nil
	}
	return c.err
}

// Stop sends SIGTERM, then SIGKILL after grace, and waits (bounded).
func (c *Child) Stop(grace time.Duration) {
	if c.Exited() {
		return
	}
	Signal(c.Cmd.Process, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		Signal(c.Cmd.Process, syscall.SIGKILL)
		c.wait()
	}
}

func (c *Child) wait() {
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

// KillAll kills every child still running and waits (bounded) for them.
func KillAll() {
	running.Lock()
	var all []*Child
	for c := range running.set {
		all = append(all, c)
	}
	running.Unlock()
	for _, c := range all {
		Signal(c.Cmd.Process, syscall.SIGKILL)
	}
	for _, c := range all {
		c.wait()
	}
}

// Signal signals the process group p leads, or else p.
func Signal(p *os.Process, sig syscall.Signal) {
	if p == nil {
		return
	}
	if err := syscall.Kill(-p.Pid, sig); err != nil {
		_ = p.Signal(sig)
	}
}

// SysProcAttr puts a process in its own process group (so a stop or a
// timeout reaches what it started too) and has the kernel kill it if this
// program dies.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// BaseEnv is the environment every child starts from: PATH, the Go
// toolchain's caches, and nothing that could send traffic off the machine
// (no proxy variables).
func BaseEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8", "NO_PROXY=*", "no_proxy=*"}
	for _, k := range []string{"GOPATH", "GOCACHE", "GOMODCACHE", "GOFLAGS", "GOTOOLCHAIN"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// ErrTimeout marks a command that ran past its bound.
var ErrTimeout = errors.New("timed out")

// Run runs one command to its end, bounded by ctx and timeout, in its own
// process group (killed whole when the bound runs out), with env added to
// BaseEnv, and returns its combined output. The error wraps ErrTimeout when
// the bound ran out, else it is the command's.
func Run(ctx context.Context, timeout time.Duration, dir string, env []string, stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(BaseEnv(), env...)
	cmd.SysProcAttr = SysProcAttr()
	cmd.Cancel = func() error {
		Signal(cmd.Process, syscall.SIGKILL)
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
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("%w after %v", ErrTimeout, timeout)
	}
	return out.String(), err
}

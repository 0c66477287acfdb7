// Package childproc runs the child processes of the development tools
// (cmd/loadbench, cmd/matrix): each is tracked from start until it has been
// waited for, stopped with SIGTERM and then SIGKILL after a grace period,
// and KillAll ends every one still running, so no server outlives a run.
// Signals go to the child's process group when it leads one (Setpgid), so
// whatever it started ends with it.
package childproc

import (
	"fmt"
	"os"
	"os/exec"
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

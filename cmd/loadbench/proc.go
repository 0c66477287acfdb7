package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// logBuffer keeps the first max bytes written to it and counts the rest.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	max     int
	dropped int
	lines   int
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines += bytes.Count(p, []byte{'\n'})
	room := b.max - b.buf.Len()
	if room >= len(p) {
		b.buf.Write(p)
	} else {
		if room > 0 {
			b.buf.Write(p[:room])
		}
		b.dropped += len(p) - max(room, 0)
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if b.dropped > 0 {
		s += fmt.Sprintf("\n[… %d more bytes not kept]\n", b.dropped)
	}
	return s
}

func (b *logBuffer) Lines() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lines
}

// child is a process loadbench started; every child is in the children
// set until it has been waited for, so killAll can end them all.
type child struct {
	name   string
	cmd    *exec.Cmd
	output *logBuffer // stdout and stderr
	done   chan struct{}
	err    error // Wait's, once done is closed
}

var children = struct {
	sync.Mutex
	set map[*child]struct{}
}{set: map[*child]struct{}{}}

// startChild starts path with args, its output kept in memory.
func startChild(name, path string, args ...string) (*child, error) {
	c := &child{name: name, output: &logBuffer{max: 256 << 10}, done: make(chan struct{})}
	c.cmd = exec.Command(path, args...)
	c.cmd.Stdout = c.output
	c.cmd.Stderr = c.output
	c.cmd.Stdin = nil
	c.cmd.SysProcAttr = childAttr()
	children.Lock()
	defer children.Unlock()
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	children.set[c] = struct{}{}
	go func() {
		c.err = c.cmd.Wait()
		children.Lock()
		delete(children.set, c)
		children.Unlock()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the child has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop asks the child to end (SIGTERM), and kills it after grace.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// killAll kills every child still running and waits for them.
func killAll() {
	children.Lock()
	var all []*child
	for c := range children.set {
		all = append(all, c)
	}
	children.Unlock()
	for _, c := range all {
		_ = c.cmd.Process.Kill()
	}
	for _, c := range all {
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// memStatus is a process's memory figures from /proc/PID/status, in bytes.
type memStatus struct {
	HWM uint64 // VmHWM: peak resident set size
	RSS uint64 // VmRSS: resident set size now
}

// parseStatus reads VmHWM and VmRSS from the text of /proc/PID/status.
func parseStatus(text string) (memStatus, error) {
	var m memStatus
	var seen int
	for line := range strings.Lines(text) {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("%s: unexpected %q", key, strings.TrimSpace(val))
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("%s: %w", key, err)
		}
		if key == "VmHWM" {
			m.HWM = n << 10
		} else {
			m.RSS = n << 10
		}
		seen++
	}
	if seen != 2 {
		return m, errors.New("no VmHWM/VmRSS in status")
	}
	return m, nil
}

func readStatus(pid int) (memStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, err
	}
	return parseStatus(string(b))
}

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc on every
// architecture Go supports.
const clockTicks = 100

// parseStatCPU returns utime+stime from the text of /proc/PID/stat.
func parseStatCPU(text string) (time.Duration, error) {
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after the last ')'.
	i := strings.LastIndexByte(text, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(text[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	var ticks uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// processCPU is the CPU time (user + system) a process has used.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

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
	"time"

	"git.sr.ht/~zozs/srht-registry/dev/internal/childproc"
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

// child is a process loadbench started, with its output kept in memory.
type child struct {
	*childproc.Child
	output *logBuffer // stdout and stderr
}

// startChild starts path with args, its output kept in memory.
func startChild(name, path string, args ...string) (*child, error) {
	out := &logBuffer{max: 256 << 10}
	cmd := exec.Command(path, args...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = childAttr()
	c, err := childproc.Start(name, cmd, nil)
	if err != nil {
		return nil, err
	}
	return &child{Child: c, output: out}, nil
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

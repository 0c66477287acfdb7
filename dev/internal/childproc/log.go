package childproc

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// maxLog bounds what a Log keeps in memory; the file gets everything.
const maxLog = 64 << 20

// Log keeps what a long-running child writes (bounded) and mirrors it to a
// file and, optionally, to a tee, so a caller can read what a server logged
// while it ran and after.
type Log struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	file    io.Writer
	tee     io.Writer
	dropped int
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len()+len(p) <= maxLog {
		l.buf.Write(p)
	} else {
		l.dropped += len(p)
	}
	if l.file != nil {
		_, _ = l.file.Write(p)
	}
	if l.tee != nil {
		_, _ = l.tee.Write(p)
	}
	return len(p), nil
}

// String is everything kept so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Len is a mark: Since(mark) is what was logged after it.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Len()
}

// Since is what was logged after mark (a Len).
func (l *Log) Since(mark int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if mark > l.buf.Len() {
		return ""
	}
	return string(l.buf.Bytes()[mark:])
}

// Dropped is how many bytes did not fit in memory (they are in the file).
func (l *Log) Dropped() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

// StartLogged starts path with args in its own process group, with env
// added to BaseEnv, its output going to logFile, to the returned Log and to
// tee (if not nil).
func StartLogged(name, logFile string, tee io.Writer, env []string, path string, args ...string) (*Child, *Log, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, nil, fmt.Errorf("log file of %s: %w", name, err)
	}
	log := &Log{file: f, tee: tee}
	cmd := exec.Command(path, args...)
	cmd.Env = append(BaseEnv(), env...)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = SysProcAttr()
	c, err := Start(name, cmd, func() { f.Close() })
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return c, log, nil
}

// WaitExit waits up to d for the process to end, and reports whether it did.
func (c *Child) WaitExit(d time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(d):
		return false
	}
}

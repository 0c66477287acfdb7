package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// dockerdStopGrace bounds dockerd's own shutdown (it stops its containerd
// first) before it is killed.
const dockerdStopGrace = 20 * time.Second

// dockerDaemon is the matrix's private dockerd: its own socket, data root
// and exec root under the run's temporary directory, no iptables, no
// bridge, the vfs storage driver (no overlay mounts; it copies layers, so
// the images the cells build are one tiny layer). The docker cells reach it
// through DOCKER_HOST; nothing else on the machine uses it, and it uses
// nothing of a system docker's.
type dockerDaemon struct {
	dir, sock, dataRoot string
	proc                *child
	version             string // the daemon's, from `docker version`
	// err is why it is not running: every daemon cell fails with it.
	err error
}

// host is the DOCKER_HOST of the daemon.
func (d *dockerDaemon) host() string { return "unix://" + d.sock }

// startDockerd starts dockerd (the -dockerd binary) and waits until the
// CLI (cli) gets an answer from it. It never returns nil: a daemon that did
// not start carries its error and its log's tail, which the daemon cells
// report.
func (m *matrix) startDockerd(ctx context.Context, cli string) *dockerDaemon {
	d := &dockerDaemon{dir: filepath.Join(m.tmp, "dockerd")}
	d.sock = filepath.Join(d.dir, "docker.sock")
	d.dataRoot = filepath.Join(d.dir, "root")
	bin, err := exec.LookPath(m.opts.dockerd)
	if err != nil {
		d.err = fmt.Errorf("dockerd: %w (.ci/matrix installs Debian's docker.io)", err)
		return d
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		d.err = err
		return d
	}
	d.proc, err = startChild("dockerd", filepath.Join(m.logDir, "dockerd.log"), nil, bin,
		"--host", d.host(),
		"--data-root", d.dataRoot,
		"--exec-root", filepath.Join(d.dir, "exec"),
		"--pidfile", filepath.Join(d.dir, "docker.pid"),
		"--iptables=false", "--ip-forward=false", "--bridge=none",
		"--storage-driver=vfs")
	if err != nil {
		d.err = fmt.Errorf("starting %s: %w", bin, err)
		return d
	}
	deadline := time.Now().Add(startTimeout)
	last := ""
	for {
		if d.proc.Exited() {
			d.err = fmt.Errorf("dockerd exited (%w): %s", d.proc.Err(), logTail(d.proc.log.String(), 8))
			return d
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			d.stop()
			d.err = fmt.Errorf("dockerd did not answer within %v (last: %s): %s", startTimeout, last, logTail(d.proc.log.String(), 8))
			return d
		}
		out, err := runCmd(ctx, 10*time.Second, d.dir, []string{"DOCKER_HOST=" + d.host()}, "", cli, "version", "--format", "{{.Server.Version}}")
		if err == nil {
			d.version = strings.TrimSpace(out)
			return d
		}
		last = err.Error()
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends dockerd by its PID (SIGTERM, SIGKILL after a grace period) and
// takes down the mount it keeps on its data root if it was killed before
// it could.
func (d *dockerDaemon) stop() {
	if d == nil || d.proc == nil {
		return
	}
	d.proc.Stop(dockerdStopGrace)
	if mounted(d.dataRoot) {
		_ = syscall.Unmount(d.dataRoot, syscall.MNT_DETACH)
	}
}

// mounted reports whether path is a mount point (in /proc/mounts).
func mounted(path string) bool {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 1 && fields[1] == path {
			return true
		}
	}
	return false
}

// logTail is the last n non-empty lines of a log, as one line: what a
// daemon that failed said last.
func logTail(log string, n int) string {
	var lines []string
	for line := range strings.Lines(log) {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "(its log is empty)"
	}
	return truncate("dockerd's log: "+strings.Join(lines, " / "), 2000)
}

// check is nil while dockerd runs, else the error every daemon cell fails
// with.
func (d *dockerDaemon) check() error {
	switch {
	case d == nil:
		return errors.New("no dockerd was started")
	case d.err != nil:
		return fmt.Errorf("dockerd is not running: %w", d.err)
	case d.proc.Exited():
		return fmt.Errorf("dockerd exited during the run (%w): %s", d.proc.Err(), logTail(d.proc.log.String(), 8))
	}
	return nil
}

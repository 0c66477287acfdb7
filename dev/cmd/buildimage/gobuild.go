package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ldflags strip the symbol table and DWARF: the image is for running, and
// --version reads the build info, which stays.
const ldflags = "-s -w"

// builder runs go build for each platform.
type builder struct {
	source string    // the module root
	goCmd  string    // the go command
	log    io.Writer // progress and notes
	// vcs is whether to stamp VCS information; it is switched off after the
	// first platform if stamping fails, so every platform is built alike.
	vcs bool
}

// buildArgs are the go build arguments for out; a command-line -buildvcs
// overrides the one in GOFLAGS (this kind of machine sets -buildvcs=false
// there), so --version names the commit when the source is a checkout.
func (b *builder) buildArgs(out string) []string {
	return []string{"build", "-trimpath", "-buildvcs=" + strconv.FormatBool(b.vcs), "-ldflags=" + ldflags, "-o", out, "./cmd/srht-registry"}
}

// build compiles ./cmd/srht-registry for p into dir and returns the binary.
func (b *builder) build(ctx context.Context, p platform, dir string) ([]byte, error) {
	out := filepath.Join(dir, "srht-registry-"+p.os+"-"+p.arch)
	for {
		args := b.buildArgs(out)
		cmd := exec.CommandContext(ctx, b.goCmd, args...)
		cmd.Dir = b.source
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.os, "GOARCH="+p.arch)
		var output bytes.Buffer
		cmd.Stdout, cmd.Stderr = &output, &output
		start := time.Now()
		err := cmd.Run()
		if err != nil && b.vcs && isVCSError(output.String()) {
			// A checkout go cannot read (no git binary, an ownership
			// check): the image is still worth building, but say so.
			fmt.Fprintf(b.log, "note: VCS stamping failed, building with -buildvcs=false (--version will say commit unknown):\n%s\n", indent(output.String()))
			b.vcs = false
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("CGO_ENABLED=0 GOOS=%s GOARCH=%s %s %s: %w\n%s", p.os, p.arch, b.goCmd, strings.Join(args, " "), err, output.String())
		}
		data, err := os.ReadFile(out)
		if err != nil {
			return nil, fmt.Errorf("read the built binary: %w", err)
		}
		fmt.Fprintf(b.log, "built %s in %.1fs: %s (go build -trimpath -buildvcs=%t -ldflags='%s')\n",
			p, time.Since(start).Seconds(), formatSize(int64(len(data))), b.vcs, ldflags)
		return data, nil
	}
}

// isVCSError reports whether go build failed because it could not read
// version control information, which -buildvcs=false works around.
func isVCSError(output string) bool {
	return strings.Contains(output, "error obtaining VCS status") || strings.Contains(output, "-buildvcs=false")
}

// readSourceInfo reads the version, commit and commit time from a built
// binary's build information: what --version prints is what the labels say.
func readSourceInfo(bin []byte) (version, revision string, commitTime time.Time, modified bool, err error) {
	bi, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		return "", "", time.Time{}, false, fmt.Errorf("read build info: %w", err)
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.time":
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
				commitTime = t
			}
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return version, revision, commitTime, modified, nil
}

// createdTime picks the image's time: SOURCE_DATE_EPOCH when set (the
// reproducible-builds convention), else the commit time, else the Unix
// epoch. Never the wall clock: the same source must give the same digest.
func createdTime(sourceDateEpoch string, commitTime time.Time) (time.Time, string, error) {
	if sourceDateEpoch != "" {
		n, err := strconv.ParseInt(sourceDateEpoch, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, "", fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a non-negative number of seconds", sourceDateEpoch)
		}
		return time.Unix(n, 0).UTC(), "SOURCE_DATE_EPOCH", nil
	}
	if !commitTime.IsZero() {
		return commitTime.UTC(), "commit time", nil
	}
	return time.Unix(0, 0).UTC(), "no commit time known: the Unix epoch", nil
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

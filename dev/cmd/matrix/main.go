// Command matrix runs real registry clients (crane, oras, regctl, skopeo,
// the docker CLI) against real registries (distribution v3.1.x and Debian's
// distribution 2.8.2) wired to srht-registry built from this checkout, one
// cell per (registry, client, scenario), and prints
//
//	PASS|FAIL|N/A  registry  client  cell  [the client's error, one line]
//
// then deliberately broken setups (wrong issuer, wrong service, stale key
// set), each of which passes when its documented error appears:
//
//	BROKEN <setup> (<registry>): <client error> | registry: <log line>
//
// and a last line "N passed, M failed" (N/A not counted). It exits 1 if a
// cell failed, 2 if the run could not be set up. With -markdown FILE it also
// writes docs/compatibility.md's "Compatibility" and "Troubleshooting"
// tables.
//
// It lives in the dev module (dev/cmd/matrix); .ci/matrix builds and runs
// it. It expects the tools that .ci/matrix installs (-tools DIR, by default
// the checkout's .tools/) and the server binary (-server); it starts everything on loopback, each cell
// with its own client configuration directory, every command bounded by
// -cmd-timeout, every cell by -cell-timeout and the run by -timeout, and
// ends every process it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"git.sr.ht/~zozs/srht-registry/dev/internal/checkout"
	"git.sr.ht/~zozs/srht-registry/dev/internal/childproc"
)

type options struct {
	tools, server, registryV3, registryV2 string
	markdown                              string
	dockerd, dockerCLI                    string
	registries, clients, cells            []string
	cmdTimeout, cellTimeout, timeout      time.Duration
	keep, verbose, broken                 bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("matrix", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var regs, clients, cells string
	fs.StringVar(&o.tools, "tools", "", "`DIR` (default: .tools/ of the checkout) holding crane, oras, regctl, registry (v3) and debian-registry/ (2.8), as .ci/matrix installs them")
	fs.StringVar(&o.server, "server", "", "srht-registry `BINARY` (default DIR/srht-registry)")
	fs.StringVar(&o.registryV3, "registry-v3", "", "distribution v3 `BINARY` (default DIR/registry)")
	fs.StringVar(&o.registryV2, "registry-v2", "", "Debian's distribution 2.8 `BINARY` (default DIR/debian-registry/usr/bin/docker-registry)")
	fs.StringVar(&o.dockerd, "dockerd", "dockerd", "the `DOCKERD` of the docker (daemon) cells, started privately (Debian's docker.io)")
	fs.StringVar(&o.dockerCLI, "docker-cli", "/usr/bin/docker", "the docker `CLI` of the docker (daemon) cells (default: docker.io's, the daemon's release); docker manifest's is the docker on PATH")
	fs.StringVar(&o.markdown, "markdown", "", "write the compatibility and troubleshooting tables to `FILE`")
	fs.StringVar(&regs, "registries", "v3,v2", "registries to run: v3, v2")
	fs.StringVar(&clients, "clients", "crane,oras,regctl,skopeo,docker,docker-manifest", "clients to run (docker: the CLI with a private dockerd; docker-manifest: the CLI alone)")
	fs.StringVar(&cells, "cells", "", "cells to run (default all)")
	fs.BoolVar(&o.broken, "broken", true, "also run the deliberately broken setups")
	fs.DurationVar(&o.cmdTimeout, "cmd-timeout", 60*time.Second, "bound on one client command")
	fs.DurationVar(&o.cellTimeout, "cell-timeout", 3*time.Minute, "bound on one cell")
	fs.DurationVar(&o.timeout, "timeout", 25*time.Minute, "bound on the whole run")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs, client configs)")
	fs.BoolVar(&o.verbose, "v", false, "print every client command and its output on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "matrix: unexpected arguments %q\n", fs.Args())
		return 2
	}
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	if o.tools == "" {
		root, err := checkout.Root(context.Background())
		if err != nil {
			fmt.Fprintf(stderr, "matrix: --tools not given: %v\n", err)
			return 2
		}
		o.tools = filepath.Join(root, ".tools")
	}
	o.tools = abs(o.tools)
	if o.server == "" {
		o.server = filepath.Join(o.tools, "srht-registry")
	}
	if o.registryV3 == "" {
		o.registryV3 = filepath.Join(o.tools, "registry")
	}
	if o.registryV2 == "" {
		o.registryV2 = filepath.Join(o.tools, "debian-registry", "usr", "bin", "docker-registry")
	}
	o.server, o.registryV3, o.registryV2 = abs(o.server), abs(o.registryV3), abs(o.registryV2)
	o.registries, o.clients, o.cells = splitList(regs), splitList(clients), splitList(cells)
	for _, c := range o.clients {
		if !slices.ContainsFunc(allClients, func(x client) bool { return x.name() == c }) {
			fmt.Fprintf(stderr, "matrix: unknown client %q\n", c)
			return 2
		}
	}
	for _, c := range o.cells {
		if !slices.ContainsFunc(cellDefs, func(x cellDef) bool { return x.id == c }) {
			fmt.Fprintf(stderr, "matrix: unknown cell %q\n", c)
			return 2
		}
	}
	// Tools find each other (and skopeo, docker) on PATH.
	os.Setenv("PATH", o.tools+string(os.PathListSeparator)+os.Getenv("PATH"))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	defer childproc.KillAll()

	tmp, err := os.MkdirTemp("", "srht-matrix-")
	if err != nil {
		fmt.Fprintf(stderr, "matrix: %v\n", err)
		return 2
	}
	if o.keep {
		fmt.Fprintf(stderr, "matrix: keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	t0 := time.Now()
	m, err := prepare(ctx, o, tmp)
	if m != nil {
		defer m.close()
	}
	if err != nil {
		fmt.Fprintf(stderr, "matrix: setup: %v\n", err)
		return 2
	}
	v := m.versions
	fmt.Fprintf(stdout, "matrix: srht-registry %s; distribution %s and Debian %s; crane %s, oras %s, regctl %s, skopeo %s, docker CLI %s; %s\n",
		v.server, v.v3, v.v2, v.crane, v.oras, v.regctl, v.skopeo, v.docker, m.dockerSummary())

	specs := m.registrySpecs()
	var results []result
	var broken []brokenResult
	setupFailed := false
	for _, spec := range specs {
		rs, err := m.runRegistry(ctx, spec, stdout)
		results = append(results, rs...)
		if err != nil {
			fmt.Fprintf(stdout, "FAIL  %s  -  setup  %s\n", spec.id, flat(err.Error()))
			setupFailed = true
		}
	}
	if o.broken {
		for _, spec := range specs {
			for i := range brokenSetups {
				b := &brokenSetups[i]
				if b.trust != "" && b.trust != spec.trust {
					continue
				}
				r := m.runBroken(ctx, spec, b)
				broken = append(broken, r)
				fmt.Fprintf(stdout, "%-4s  %s  crane  broken:%s  %s\n", r.st, spec.id, b.id, r.msg)
				fmt.Fprintf(stdout, "BROKEN %s (%s): %s | registry: %s\n", b.id, spec.id, orNone(r.clientEr), orNone(r.regLog))
			}
		}
	}

	npass, nfail := 0, 0
	for _, r := range results {
		switch r.st {
		case statusPass:
			npass++
		case statusFail:
			nfail++
		}
	}
	for _, r := range broken {
		if r.st == statusPass {
			npass++
		} else {
			nfail++
		}
	}
	if setupFailed {
		nfail++
	}
	if o.markdown != "" {
		md := m.markdown(specs, results, broken, time.Now())
		if err := os.WriteFile(o.markdown, []byte(md), 0o644); err != nil {
			fmt.Fprintf(stderr, "matrix: %v\n", err)
			return 2
		}
	}
	fmt.Fprintf(stdout, "matrix: %d cells in %s\n", len(results)+len(broken), time.Since(t0).Round(time.Second))
	fmt.Fprintf(stdout, "%d passed, %d failed\n", npass, nfail)
	if nfail > 0 {
		return 1
	}
	return 0
}

func orNone(s string) string {
	if s == "" {
		return "(nothing)"
	}
	return s
}

func (m *matrix) registrySpecs() []*registrySpec {
	var specs []*registrySpec
	for _, id := range m.opts.registries {
		switch id {
		case "v3":
			specs = append(specs, &registrySpec{
				id: m.versions.v3, title: "distribution " + m.versions.v3, bin: m.opts.registryV3,
				env: []string{"OTEL_TRACES_EXPORTER=none"}, trust: "jwks",
			})
		case "v2":
			ver := m.versions.v2
			if i := strings.IndexByte(ver, '+'); i > 0 {
				ver = ver[:i]
			}
			specs = append(specs, &registrySpec{
				id: "v" + ver, title: "Debian docker-registry " + m.versions.v2, bin: m.opts.registryV2, trust: "x5c",
			})
		}
	}
	return specs
}

func (m *matrix) selectedClients() []client {
	var cs []client
	for _, c := range allClients {
		if slices.Contains(m.opts.clients, c.name()) {
			cs = append(cs, c)
		}
	}
	return cs
}

func (m *matrix) selectedCells() []cellDef {
	if len(m.opts.cells) == 0 {
		return cellDefs
	}
	var cs []cellDef
	for _, c := range cellDefs {
		if slices.Contains(m.opts.cells, c.id) {
			cs = append(cs, c)
		}
	}
	return cs
}

// runRegistry starts spec's registry, seeds it and runs every selected
// cell of every selected client against it.
func (m *matrix) runRegistry(ctx context.Context, spec *registrySpec, stdout io.Writer) ([]result, error) {
	cfg, tok := m.goodConfig(spec)
	reg, err := m.startRegistry(ctx, spec, cfg, tok, "matrix")
	if err != nil {
		return nil, err
	}
	defer reg.proc.Stop(stopGrace)
	// Seed: the public repository (pushed by the admin), and bob's sources
	// of the mount and delete cells.
	if err := m.seed(ctx, reg.host, "library/base:latest", "alice"); err != nil {
		return nil, err
	}
	clients := m.selectedClients()
	for _, c := range clients {
		for _, repo := range []string{"bob/mount-src-", "bob/del-"} {
			if err := m.seed(ctx, reg.host, repo+c.name()+":v1", "bob"); err != nil {
				return nil, err
			}
		}
	}
	var results []result
	for _, c := range clients {
		for _, cd := range m.selectedCells() {
			if ctx.Err() != nil {
				return results, fmt.Errorf("run stopped: %w", ctx.Err())
			}
			r := m.runCell(ctx, reg, c, cd)
			results = append(results, r)
			line := fmt.Sprintf("%-4s  %s  %s  %s", r.st, r.reg, r.client, r.cell)
			if r.msg != "" {
				line += "  " + r.msg
			}
			fmt.Fprintln(stdout, line)
			if m.opts.verbose {
				fmt.Fprintf(os.Stderr, "   (%s)\n", r.dur.Round(time.Millisecond))
			}
		}
	}
	return results, nil
}

func (m *matrix) runCell(ctx context.Context, reg *runningRegistry, c client, cd cellDef) (r result) {
	r = result{reg: reg.spec.id, client: c.name(), cell: cd.id}
	t0 := time.Now()
	defer func() { r.dur = time.Since(t0) }()
	ctx, cancel := context.WithTimeout(ctx, m.opts.cellTimeout)
	defer cancel()
	if m.opts.verbose {
		fmt.Fprintf(os.Stderr, "== %s %s %s\n", reg.spec.id, c.name(), cd.id)
	}
	s, err := m.newSession(reg, c.name(), cd.id)
	if err != nil {
		r.outcome = failed("%v", err)
		return r
	}
	if err := c.setup(ctx, s); err != nil {
		r.outcome = fromErr("setup", err)
		return r
	}
	r.outcome = cd.run(ctx, s, c)
	if ctx.Err() == context.DeadlineExceeded && r.st == statusFail {
		r.msg = fmt.Sprintf("cell timed out after %v: %s", m.opts.cellTimeout, r.msg)
	}
	return r
}

package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"git.sr.ht/~zozs/srht-registry/dev/internal/checkout"
	"git.sr.ht/~zozs/srht-registry/dev/internal/childproc"
)

type options struct {
	tools, server, registry, haproxy, redis string
	duration, timeout, opTimeout            time.Duration
	minDelay, maxDelay                      int
	slack                                   time.Duration
	keep, verbose                           bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scaleout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.tools, "tools", "", "`DIR` (default: .tools/ of the checkout) holding crane, oras, regctl and registry (distribution v3), as .ci/tools installs them")
	fs.StringVar(&o.server, "server", "", "srht-registry `BINARY` (default DIR/srht-registry)")
	fs.StringVar(&o.registry, "registry", "", "distribution v3 registry `BINARY` (default DIR/registry)")
	fs.StringVar(&o.haproxy, "haproxy", "haproxy", "haproxy `BINARY` (Debian's haproxy 2.6)")
	fs.StringVar(&o.redis, "redis-server", "redis-server", "redis-server `BINARY` (Debian's), the replicas' shared brute_force.store")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long the clients push and pull")
	fs.DurationVar(&o.opTimeout, "op-timeout", 60*time.Second, "bound on one client operation")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on the whole run")
	fs.IntVar(&o.minDelay, "min-delay", 1, "bundle polling min_delay_seconds")
	fs.IntVar(&o.maxDelay, "max-delay", 2, "bundle polling max_delay_seconds")
	fs.DurationVar(&o.slack, "slack", 5*time.Second, "how much later than max-delay a replica may take up a policy change (a noisy 2-core machine)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs)")
	fs.BoolVar(&o.verbose, "v", false, "print progress on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "scaleout: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if o.minDelay < 1 || o.maxDelay < o.minDelay {
		fmt.Fprintln(stderr, "scaleout: need 1 <= -min-delay <= -max-delay")
		return 2
	}
	if o.duration < 8*time.Second {
		fmt.Fprintln(stderr, "scaleout: -duration must be at least 8s (a SIGTERM, a SIGKILL and a restart happen during it)")
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
			fmt.Fprintf(stderr, "scaleout: --tools not given: %v\n", err)
			return 2
		}
		o.tools = filepath.Join(root, ".tools")
	}
	o.tools = abs(o.tools)
	if o.server == "" {
		o.server = filepath.Join(o.tools, "srht-registry")
	}
	if o.registry == "" {
		o.registry = filepath.Join(o.tools, "registry")
	}
	o.server, o.registry = abs(o.server), abs(o.registry)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	defer childproc.KillAll()

	tmp, err := os.MkdirTemp("", "srht-scaleout-")
	if err != nil {
		fmt.Fprintf(stderr, "scaleout: %v\n", err)
		return 2
	}
	if o.keep {
		fmt.Fprintf(stderr, "scaleout: keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	t0 := time.Now()
	s := &scaleout{opts: o, tmp: tmp, logDir: filepath.Join(tmp, "logs"), stderr: stderr, passwords: map[string]string{}}
	defer s.close()
	if err := s.setup(ctx); err != nil {
		fmt.Fprintf(stdout, "scale-out: setup failed: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "scale-out: srht-registry %s ×%d behind %s on %s; registry %s; bundle server %s (polling %d–%d s); brute_force.store %s; set up in %s\n",
		s.versions.server, len(s.replicas), s.versions.haproxy, s.lbAddr, s.versions.registry, s.bundles.url, o.minDelay, o.maxDelay, s.versions.redis,
		time.Since(t0).Round(100*time.Millisecond))
	res := s.runAll(ctx)
	problems := res.evaluate()
	res.print(stdout, problems)
	fmt.Fprintf(stdout, "scale-out: whole run %s\n", time.Since(t0).Round(100*time.Millisecond))
	if len(problems) > 0 {
		if !o.keep {
			fmt.Fprintf(stdout, "scale-out: logs were in %s (rerun with -keep to keep them)\n", s.logDir)
		}
		return 1
	}
	return 0
}

// logf prints progress with -v.
func (s *scaleout) logf(format string, args ...any) {
	if s.opts.verbose {
		fmt.Fprintf(s.stderr, "scaleout: "+format+"\n", args...)
	}
}

func randomSecret() string { return rand.Text() }

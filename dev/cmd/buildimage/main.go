package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"git.sr.ht/~zozs/srht-registry/dev/internal/checkout"
)

const usage = `usage: go run -C dev ./cmd/buildimage [flags]

Builds the srht-registry container image without a Docker daemon: a static
binary per platform on an empty base, run as uid 65532, with the embedded
defaults in /etc/srht-registry/config.yaml. With no output flag it only
builds and prints the digests.

flags:
`

type options struct {
	platforms     string
	source        string
	oci           string
	tag           string
	tarball       string
	push          string
	username      string
	passwordStdin bool
	insecure      bool
	caCerts       string
	metadata      string
	timeout       time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "buildimage:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("buildimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.platforms, "platform", "linux/amd64,linux/arm64", "comma-separated `OS/ARCH` list; more than one makes an OCI image index")
	fs.StringVar(&o.source, "source", "", "`DIR`: the srht-registry module root (go build runs there; default: found with go list -m from the working directory)")
	fs.StringVar(&o.oci, "oci", "", "write an OCI image layout to `DIR` (created; must be empty if it exists)")
	fs.StringVar(&o.tag, "tag", "", "`TAG` naming the image in --oci and --tarball (default: --push's tag, else latest)")
	fs.StringVar(&o.tarball, "tarball", "", "write a docker-archive (docker load, crane push) to `FILE`; one platform only")
	fs.StringVar(&o.push, "push", "", "push to `REF` (registry/repository:tag) through the registry's token auth")
	fs.StringVar(&o.username, "username", "", "user `NAME` for --push (with --password-stdin); default: the docker config's credentials, else anonymous")
	fs.BoolVar(&o.passwordStdin, "password-stdin", false, "read the --push password (or Sourcehut token) from stdin")
	fs.BoolVar(&o.insecure, "insecure", false, "plain HTTP to the --push registry even when it is not on localhost")
	fs.StringVar(&o.caCerts, "ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "PEM `FILE` copied into the image as its CA bundle (meta.sr.ht is HTTPS)")
	fs.StringVar(&o.metadata, "metadata", "", "write the digests and sizes as JSON to `FILE`")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after `DURATION`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	platforms, err := parsePlatforms(o.platforms)
	if err != nil {
		return err
	}
	if o.tarball != "" && len(platforms) != 1 {
		return fmt.Errorf("--tarball needs exactly one --platform (a docker-archive holds one image), got %d", len(platforms))
	}
	if o.passwordStdin && o.username == "" {
		return errors.New("--password-stdin needs --username")
	}
	var pushRef name.Reference
	if o.push != "" {
		var nameOpts []name.Option
		if o.insecure {
			nameOpts = append(nameOpts, name.Insecure)
		}
		if pushRef, err = name.ParseReference(o.push, nameOpts...); err != nil {
			return fmt.Errorf("--push %s: %w", o.push, err)
		}
		if _, ok := pushRef.(name.Tag); !ok {
			return fmt.Errorf("--push %s: give a tag, not a digest (the digest is computed)", o.push)
		}
	}
	tag := o.tag
	if tag == "" {
		tag = "latest"
		if t, ok := pushRef.(name.Tag); ok {
			tag = t.TagStr()
		}
	}
	var auth authn.Authenticator
	if o.username != "" {
		password := ""
		if o.passwordStdin {
			line, err := bufio.NewReader(stdin).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read the password from stdin: %w", err)
			}
			password = strings.TrimRight(line, "\r\n")
		}
		auth = &authn.Basic{Username: o.username, Password: password}
	}
	if o.oci != "" {
		// Checked before the build, which takes a while.
		if entries, err := os.ReadDir(o.oci); err == nil && len(entries) > 0 {
			return fmt.Errorf("--oci %s exists and is not empty", o.oci)
		}
	}

	if o.source == "" {
		if o.source, err = checkout.Root(ctx); err != nil {
			return err
		}
	}
	ca, err := readCACerts(o.caCerts)
	if err != nil {
		return err
	}
	goCmd := "go"
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		goCmd = filepath.Join(goroot, "bin", "go")
	}
	tmp, err := os.MkdirTemp("", "buildimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b := &builder{source: o.source, goCmd: goCmd, log: stdout, vcs: true}
	var bins []binary
	for _, p := range platforms {
		data, err := b.build(ctx, p, tmp)
		if err != nil {
			return err
		}
		bins = append(bins, binary{platform: p, data: data})
	}
	version, revision, commitTime, modified, err := readSourceInfo(bins[0].data)
	if err != nil {
		return err
	}
	created, createdFrom, err := createdTime(os.Getenv("SOURCE_DATE_EPOCH"), commitTime)
	if err != nil {
		return err
	}
	switch {
	case revision == "" && b.vcs: // else the fallback note said why
		fmt.Fprintln(stdout, "note: no VCS information in the binary (not a git checkout?): --version will say commit unknown")
	case modified:
		fmt.Fprintf(stdout, "note: the checkout has uncommitted changes: the image is of commit %s plus those changes (version %s)\n", revision, version)
	}
	src := sourceInfo{created: created, version: version, revision: revision}
	fmt.Fprintf(stdout, "source: version %s, commit %s, created %s (%s)\n",
		orUnknown(version), orUnknown(revision), created.Format(time.RFC3339), createdFrom)

	art, err := assemble(spec{source: src, caCerts: ca, config: containerConfig}, bins)
	if err != nil {
		return err
	}
	rep, err := makeReport(art, src)
	if err != nil {
		return err
	}
	rep.print(stdout)

	if o.oci != "" {
		if err := writeLayout(o.oci, tag, art); err != nil {
			return fmt.Errorf("--oci %s: %w", o.oci, err)
		}
		fmt.Fprintf(stdout, "wrote OCI layout %s (tag %s)\n", o.oci, tag)
	}
	if o.tarball != "" {
		ref := "srht-registry:" + tag
		if pushRef != nil {
			ref = pushRef.Context().Name() + ":" + tag
		}
		t, err := name.NewTag(ref)
		if err != nil {
			return fmt.Errorf("--tarball tag %s: %w", ref, err)
		}
		if err := tarball.WriteToFile(o.tarball, t, art.images[0].image); err != nil {
			return fmt.Errorf("--tarball %s: %w", o.tarball, err)
		}
		fmt.Fprintf(stdout, "wrote docker-archive %s (%s)\n", o.tarball, t)
	}
	if pushRef != nil {
		opts := []remote.Option{remote.WithContext(ctx), remote.WithUserAgent("srht-registry-buildimage")}
		who := "anonymous, or the docker config's credentials"
		if auth != nil {
			opts = append(opts, remote.WithAuth(auth))
			who = o.username
		} else {
			opts = append(opts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
		}
		start := time.Now()
		if art.index != nil {
			err = remote.WriteIndex(pushRef, art.index, opts...)
		} else {
			err = remote.Write(pushRef, art.images[0].image, opts...)
		}
		if err != nil {
			return fmt.Errorf("push %s as %s: %w", pushRef, who, err)
		}
		rep.Reference = pushRef.Context().Name() + "@" + rep.Digest
		fmt.Fprintf(stdout, "pushed %s as %s in %.1fs: %s\n", pushRef, who, time.Since(start).Seconds(), rep.Reference)
	}
	if o.metadata != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.metadata, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("--metadata: %w", err)
		}
	}
	return nil
}

// parsePlatforms parses "linux/amd64,linux/arm64". Only Linux: the image has
// no other userland, and only OS/ARCH: a variant would need GOARM and the
// like, which nobody has asked for.
func parsePlatforms(s string) ([]platform, error) {
	var out []platform
	seen := map[platform]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		osName, arch, ok := strings.Cut(f, "/")
		if !ok || osName != "linux" || arch == "" || strings.Contains(arch, "/") {
			return nil, fmt.Errorf("--platform %q: want linux/ARCH (like linux/amd64), comma-separated", f)
		}
		p := platform{os: osName, arch: arch}
		if seen[p] {
			return nil, fmt.Errorf("--platform: %s given twice", p)
		}
		seen[p] = true
		out = append(out, p)
	}
	return out, nil
}

// readCACerts reads the CA bundle the image's TLS clients (meta.sr.ht,
// remote policy bundles) trust, and checks that it holds certificates.
func readCACerts(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA certificates for the image (meta.sr.ht is HTTPS): %w; install them (apt-get install ca-certificates) or pass --ca-certificates FILE", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA certificates %s: no PEM certificate in it", path)
	}
	return data, nil
}

// writeLayout writes art as an OCI image layout whose index.json names it
// by tag (what oras, regctl and skopeo look up as DIR:TAG).
func writeLayout(dir, tag string, art *built) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	ann := layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})
	if art.index != nil {
		return p.AppendIndex(art.index, ann)
	}
	return p.AppendImage(art.images[0].image, ann)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

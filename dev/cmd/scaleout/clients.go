package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// goClientAddr is the loopback address the in-process clients connect
// from, so the replicas' logs show whether X-Forwarded-For carried it
// through haproxy (the CLIs connect from 127.0.0.1).
const goClientAddr = "127.0.0.2"

// loadClient pushes and pulls as one user, in that user's namespace.
type loadClient interface {
	name() string
	user() string
	// setup logs in (where the client has a login command).
	setup(ctx context.Context) error
	push(ctx context.Context, ref string) error
	pull(ctx context.Context, ref string) error
}

// ggcrClient is go-containerregistry in-process (crane's library) with
// every client-side retry turned off: a failure to get a token through the
// balancer is a failed operation, never hidden by a retry of the client.
type ggcrClient struct {
	label, username string
	auth            authn.Authenticator
	transport       http.RoundTripper
}

func newGGCRClient(label, user string, auth authn.Authenticator) *ggcrClient {
	local := &net.TCPAddr{IP: net.ParseIP(goClientAddr)}
	d := &net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
	tr := &http.Transport{
		Proxy: nil,
		// tcp4: "localhost" may also resolve to ::1, which a 127.0.0.2
		// source address cannot reach.
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp4", addr)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	return &ggcrClient{label: label, username: user, auth: auth, transport: tr}
}

func (c *ggcrClient) name() string                    { return c.label }
func (c *ggcrClient) user() string                    { return c.username }
func (c *ggcrClient) setup(ctx context.Context) error { return nil }

func (c *ggcrClient) options(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithAuth(c.auth),
		remote.WithTransport(c.transport),
		remote.WithContext(ctx),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
	}
}

func (c *ggcrClient) push(ctx context.Context, ref string) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		return err
	}
	return remote.Write(r, img, c.options(ctx)...)
}

func (c *ggcrClient) pull(ctx context.Context, ref string) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	img, err := remote.Image(r, c.options(ctx)...)
	if err != nil {
		return err
	}
	return readAll(img)
}

// readAll reads the config and every layer of a pulled image: a whole
// pull. go-containerregistry checks each blob's digest as it reads it (a
// mismatch is a read error).
func readAll(img v1.Image) error {
	if _, err := img.RawConfigFile(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("layers: %w", err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("layer: %w", err)
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("layer: %w", err)
		}
	}
	return nil
}

// cliClient runs a real client binary, one process per operation, in its
// own home and configuration directories. The CLIs retry some failures
// on their own and cannot be told not to; the balancer's log shows
// whether they had any failure to retry (see evaluate).
type cliClient struct {
	label, username, password string
	bin                       string
	registry                  string // localhost:PORT
	dir                       string
	env                       []string
	image                     testImage
	timeout                   time.Duration
	pulls                     int
	loginArgs                 func(c *cliClient) []string
	pushArgs, pullArgs        func(c *cliClient, ref, dst string) []string
	preLogin                  []string // regctl: mark the registry as plain HTTP
}

func (c *cliClient) name() string { return c.label }
func (c *cliClient) user() string { return c.username }

func (c *cliClient) run(ctx context.Context, stdin string, args ...string) error {
	_, err := runCmd(ctx, c.timeout, c.dir, c.env, stdin, c.bin, args...)
	return err
}

func (c *cliClient) setup(ctx context.Context) error {
	if c.preLogin != nil {
		if err := c.run(ctx, "", c.preLogin...); err != nil {
			return err
		}
	}
	return c.run(ctx, c.password, c.loginArgs(c)...)
}

func (c *cliClient) push(ctx context.Context, ref string) error {
	return c.run(ctx, "", c.pushArgs(c, ref, "")...)
}

func (c *cliClient) pull(ctx context.Context, ref string) error {
	c.pulls++
	dst := filepath.Join(c.dir, fmt.Sprintf("pulled-%d", c.pulls))
	defer os.RemoveAll(dst)
	defer os.Remove(dst + ".tar")
	return c.run(ctx, "", c.pullArgs(c, ref, dst)...)
}

// newCLIClient prepares the home of one CLI client (as cmd/matrix's
// sessions do: nothing shared with another client).
func newCLIClient(kind, user, password, tools, registry, tmp string, image testImage, timeout time.Duration) (*cliClient, error) {
	dir := filepath.Join(tmp, "clients", kind)
	for _, d := range []string{".docker", ".config", "run", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	c := &cliClient{
		label: kind, username: user, password: password, bin: filepath.Join(tools, kind),
		registry: registry, dir: dir, image: image, timeout: timeout,
		env: []string{
			"HOME=" + dir,
			"DOCKER_CONFIG=" + filepath.Join(dir, ".docker"),
			"REGCTL_CONFIG=" + filepath.Join(dir, ".regctl", "config.json"),
			"XDG_RUNTIME_DIR=" + filepath.Join(dir, "run"),
			"XDG_CONFIG_HOME=" + filepath.Join(dir, ".config"),
			"TMPDIR=" + filepath.Join(dir, "tmp"),
			"OTEL_TRACES_EXPORTER=none",
		},
	}
	switch kind {
	case "crane":
		// crane auth login only writes config.json; every push and pull
		// fetches its own token.
		c.loginArgs = func(c *cliClient) []string {
			return []string{"auth", "login", c.registry, "-u", c.username, "--password-stdin"}
		}
		c.pushArgs = func(c *cliClient, ref, _ string) []string {
			return []string{"push", "--insecure", c.image.tarball, ref}
		}
		c.pullArgs = func(c *cliClient, ref, dst string) []string {
			return []string{"pull", "--insecure", ref, dst + ".tar"}
		}
	case "oras":
		c.loginArgs = func(c *cliClient) []string {
			return []string{"login", "--plain-http", "-u", c.username, "--password-stdin", c.registry}
		}
		c.pushArgs = func(c *cliClient, ref, _ string) []string {
			return []string{"cp", "--from-oci-layout", c.image.layout + ":v1", "--to-plain-http", ref}
		}
		c.pullArgs = func(c *cliClient, ref, dst string) []string {
			return []string{"cp", "--from-plain-http", ref, "--to-oci-layout", dst + ":v1"}
		}
	case "regctl":
		c.preLogin = []string{"registry", "set", "--tls", "disabled", registry}
		c.loginArgs = func(c *cliClient) []string {
			return []string{"registry", "login", "-u", c.username, "--pass-stdin", c.registry}
		}
		c.pushArgs = func(c *cliClient, ref, _ string) []string {
			return []string{"image", "copy", "ocidir://" + c.image.layout + ":v1", ref}
		}
		c.pullArgs = func(c *cliClient, ref, dst string) []string {
			return []string{"image", "copy", ref, "ocidir://" + dst + ":v1"}
		}
	default:
		return nil, fmt.Errorf("unknown client %q", kind)
	}
	if _, err := os.Stat(c.bin); err != nil {
		return nil, fmt.Errorf("%s: %w (install it with . .ci/tools)", kind, err)
	}
	return c, nil
}

// testImage is a small random image (two layers) as a docker-save tarball
// (crane push) and as an OCI layout tagged v1 (oras, regctl).
type testImage struct{ tarball, layout string }

func makeTestImage(dir string) (testImage, error) {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		return testImage{}, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for range 2 {
		l, err := random.Layer(2048, types.OCILayer)
		if err != nil {
			return testImage{}, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return testImage{}, err
		}
	}
	t := testImage{tarball: filepath.Join(dir, "image.tar"), layout: filepath.Join(dir, "layout")}
	tag, err := name.NewTag("localhost/scaleout/image:v1")
	if err != nil {
		return t, err
	}
	if err := tarball.WriteToFile(t.tarball, tag, img); err != nil {
		return t, fmt.Errorf("image tarball: %w", err)
	}
	p, err := layout.Write(t.layout, empty.Index)
	if err != nil {
		return t, fmt.Errorf("image layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		return t, fmt.Errorf("image layout: %w", err)
	}
	return t, nil
}

// drive runs c in a loop until `until`: push a new tag in the user's
// namespace, then pull it back. Every operation is recorded. An operation
// started before `until` runs to its end (bounded by its own timeout), so
// the end of the load phase never counts as a failure.
func drive(ctx context.Context, c loadClient, registry string, until time.Time, opTimeout time.Duration, rec *recorder) {
	for i := 0; time.Now().Before(until) && ctx.Err() == nil; i++ {
		ref := fmt.Sprintf("%s/%s/app-%d:t%d", registry, c.user(), i%3, i)
		if err := timed(ctx, opTimeout, rec, c.name(), "push", func(ctx context.Context) error { return c.push(ctx, ref) }); err != nil {
			continue // its pull would fail for the push's reason
		}
		_ = timed(ctx, opTimeout, rec, c.name(), "pull", func(ctx context.Context) error { return c.pull(ctx, ref) })
	}
}

// timed runs one operation under its own timeout and records it.
func timed(ctx context.Context, d time.Duration, rec *recorder, client, kind string, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	err := op(ctx)
	rec.record(client, kind, start, time.Now(), err)
	return err
}

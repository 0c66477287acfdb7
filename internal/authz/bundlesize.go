package authz

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
)

// DefaultBundleSizeLimit bounds a bundle's size once uncompressed: every
// file of a local .tar.gz bundle together, and every response of a
// policy.opa service (a bundle download) unless its bundles' OPA
// size_limit_bytes is higher. OPA's own limit, size_limit_bytes (1 GiB by
// default), is per file, and a bundle is held in memory whole before its
// signature is checked: a 2.7 MB download could take gigabytes.
const DefaultBundleSizeLimit = 64 << 20

// ErrBundleTooLarge is wrapped by the error of a bundle larger than its
// size limit.
var ErrBundleTooLarge = errors.New("bundle larger than its size limit")

// sizeLimitedBody passes a body on unchanged while counting it: the bytes
// passed on, and when they are gzip (a bundle), the bytes they inflate to,
// which it inflates itself on the side. Past limit, either way, reading
// fails. The reader downstream (OPA's tarball loader) only ever gets bytes
// that were counted, but for those still in the inflater's look-ahead (4
// KiB compressed), so it never holds more than limit plus a few MiB.
type sizeLimitedBody struct {
	body   io.Reader
	closer io.Closer // nil: nothing to close
	limit  int64
	what   string // what is read, for the error
	hint   string // how to raise the limit, for the error
	// pending is what was read from body and not yet passed on.
	pending countingBuffer
	gz      *gzip.Reader // nil: passing the rest on as it is
	started bool
	// inflated counts the bytes inflated.
	inflated int64
	scratch  []byte
	err      error
}

// countingBuffer is a buffer that counts every byte ever written to it.
type countingBuffer struct {
	bytes.Buffer
	written int64
}

func (c *countingBuffer) Write(p []byte) (int, error) {
	c.written += int64(len(p))
	return c.Buffer.Write(p)
}

func newSizeLimitedBody(body io.Reader, limit int64, what, hint string) *sizeLimitedBody {
	b := &sizeLimitedBody{body: body, limit: limit, what: what, hint: hint}
	if c, ok := body.(io.Closer); ok {
		b.closer = c
	}
	return b
}

func (b *sizeLimitedBody) Read(p []byte) (int, error) {
	for b.pending.Len() == 0 {
		if b.err != nil {
			return 0, b.err
		}
		b.err = b.fill()
	}
	return b.pending.Read(p)
}

func (b *sizeLimitedBody) Close() error {
	if b.closer == nil {
		return nil
	}
	return b.closer.Close()
}

// fill moves more of the body into pending, or returns why it cannot
// (io.EOF at the end).
func (b *sizeLimitedBody) fill() error {
	if b.scratch == nil {
		b.scratch = make([]byte, 32<<10)
	}
	var err error
	switch {
	case !b.started:
		b.started = true
		// What the inflater reads is passed on: pending gets it
		// through the tee. Not gzip (or empty): what the header
		// check read is in pending, and the rest is passed on as it
		// is.
		if gz, gzErr := gzip.NewReader(io.TeeReader(b.body, &b.pending)); gzErr == nil {
			b.gz = gz
		}
	case b.gz != nil:
		var n int
		n, err = b.gz.Read(b.scratch)
		b.inflated += int64(n)
		if b.inflated > b.limit {
			return fmt.Errorf("%w: %s is more than %d bytes uncompressed%s", ErrBundleTooLarge, b.what, b.limit, b.hint)
		}
		if err != nil {
			// The end of the gzip stream, or corrupt data that the
			// reader downstream will refuse itself: the rest, if
			// any, is passed on as it is.
			b.gz, err = nil, nil
		}
	default:
		var n int
		n, err = b.body.Read(b.scratch)
		_, _ = b.pending.Write(b.scratch[:n])
	}
	if b.pending.written > b.limit {
		return fmt.Errorf("%w: %s is more than %d bytes%s", ErrBundleTooLarge, b.what, b.limit, b.hint)
	}
	return err
}

// localTarballHint says how to load a local bundle past the limit.
const localTarballHint = " (the limit of a local .tar.gz bundle; a bundle directory has none: unpack it into one)"

// readBundle reads a local bundle: a directory as OPA's loader does, a
// .tar.gz file with DefaultBundleSizeLimit on it, uncompressed, in total
// and per file (OPA's tarball reader makes room for each file by the size
// its header claims, before reading it).
func readBundle(p string) (*bundle.Bundle, error) {
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() {
		if dir, ok := kubernetesVolume(p); ok {
			p = dir
		}
		return loader.NewFileLoader().WithRegoVersion(ast.RegoV1).AsBundle(p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tl := limitedTarball(f, p)
	b, err := bundle.NewCustomReader(tl).
		WithRegoVersion(ast.RegoV1).
		WithSizeLimitBytes(DefaultBundleSizeLimit).
		WithLazyLoadingMode(false).
		WithBundleName(p).
		Read()
	if err != nil {
		// LoadBundle names the bundle.
		return nil, tarballSizeError(err)
	}
	return &b, nil
}

// limitedTarball is OPA's tarball loader on r, the local .tar.gz bundle at
// p, within DefaultBundleSizeLimit.
func limitedTarball(r io.Reader, p string) bundle.DirectoryLoader {
	body := newSizeLimitedBody(r, DefaultBundleSizeLimit, "the bundle", localTarballHint)
	return bundle.NewTarballLoaderWithBaseURL(body, p).WithSizeLimitBytes(DefaultBundleSizeLimit)
}

// tarballSizeError turns OPA's error for a file over the per-file limit,
// which names OPA's size_limit_bytes, into ours.
func tarballSizeError(err error) error {
	if err == nil || errors.Is(err, ErrBundleTooLarge) || !strings.Contains(err.Error(), "exceeds configured size_limit_bytes") {
		return err
	}
	return fmt.Errorf("%w: a file is more than %d bytes%s: %w", ErrBundleTooLarge, int64(DefaultBundleSizeLimit), localTarballHint, err)
}

// kubernetesVolume returns the directory holding the files of a Kubernetes
// ConfigMap or Secret volume mounted at dir, if it is one. There each file
// is a symlink into ..data, itself a symlink to a hidden timestamped
// directory (..2026_12_05_11_00_00.123) that holds them, and that the
// kubelet replaces at each update. OPA's loader would read that directory
// too, as data at /2026_12_05_11_00_00.123, and refuse it as outside the
// manifest's roots.
func kubernetesVolume(dir string) (string, bool) {
	link := filepath.Join(dir, "..data")
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return "", false
	}
	real, err := filepath.EvalSymlinks(link)
	if err != nil {
		return "", false
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return "", false
	}
	return real, true
}

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Where things live in the image.
const (
	binaryPath  = "/usr/local/bin/srht-registry"
	configPath  = "/etc/srht-registry/config.yaml"
	caPath      = "/etc/ssl/certs/ca-certificates.crt"
	nonrootID   = 65532 // distroless's nonroot uid and gid, which Kubernetes policies often expect
	nonrootUser = "65532:65532"
	sourceURL   = "https://git.sr.ht/~zozs/srht-registry"
)

// containerConfig is the config.yaml baked into the image: the embedded
// defaults with the changes a container needs (see the file's comments).
//
//go:embed config.yaml
var containerConfig []byte

var (
	entrypoint   = []string{binaryPath}
	defaultCmd   = []string{"serve", "--config", configPath}
	exposedPorts = []string{"5001/tcp", "9464/tcp"}
)

// platform is one os/arch the image is built for.
type platform struct{ os, arch string }

func (p platform) String() string { return p.os + "/" + p.arch }

// sourceInfo is what the image says about the source it was built from.
type sourceInfo struct {
	created  time.Time // image config, history, labels and every file's mtime
	version  string    // the Go module version of the build ("" if unknown)
	revision string    // the VCS commit ("" if unknown)
}

// binary is one srht-registry executable for one platform.
type binary struct {
	platform platform
	data     []byte
}

// spec is everything an image is made from besides the binaries.
type spec struct {
	source  sourceInfo
	caCerts []byte // PEM bundle for /etc/ssl/certs/ca-certificates.crt
	config  []byte // /etc/srht-registry/config.yaml
}

// platformImage is the image of one platform with its parts, for the report.
type platformImage struct {
	platform platform
	image    v1.Image
	layers   []layerInfo
}

type layerInfo struct {
	layer        v1.Layer
	uncompressed int64
	what         string
}

// built is the assembled artifact: a single image, or an index of one image
// per platform when there is more than one.
type built struct {
	images []platformImage
	index  v1.ImageIndex // nil for a single platform
}

// top is the digest clients ask for: the index's, or the single image's.
func (b *built) top() (v1.Hash, error) {
	if b.index != nil {
		return b.index.Digest()
	}
	return b.images[0].image.Digest()
}

// fileEntry is one entry of a layer's tar stream.
type fileEntry struct {
	name     string // absolute path in the image
	mode     int64
	uid, gid int
	dir      bool
	data     []byte
}

// tarGzip writes entries as a gzipped tar, deterministically: fixed mtimes,
// numeric owners only, no access or change times and a zero gzip header
// time, so the same entries always give the same bytes (and layer digest).
func tarGzip(entries []fileEntry, mtime time.Time) (compressed []byte, uncompressedSize int64, err error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, e := range entries {
		h := &tar.Header{
			Name:    strings.TrimPrefix(e.name, "/"),
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: mtime,
			Format:  tar.FormatUSTAR,
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, 0, fmt.Errorf("tar %s: %w", e.name, err)
		}
		if !e.dir {
			if _, err := tw.Write(e.data); err != nil {
				return nil, 0, fmt.Errorf("tar %s: %w", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, 0, fmt.Errorf("tar: %w", err)
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, 0, fmt.Errorf("gzip: %w", err)
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, 0, fmt.Errorf("gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, 0, fmt.Errorf("gzip: %w", err)
	}
	return gz.Bytes(), int64(raw.Len()), nil
}

// withParents adds a directory entry (root-owned, 0755) for every parent of
// the entries' paths that is not listed, ahead of its first use, so that
// runtimes and `crane export` see a normal tree.
func withParents(entries []fileEntry) []fileEntry {
	seen := map[string]bool{}
	for _, e := range entries {
		if e.dir {
			seen[e.name] = true
		}
	}
	var out []fileEntry
	for _, e := range entries {
		var parents []string
		for d := path.Dir(e.name); d != "/" && !seen[d]; d = path.Dir(d) {
			parents = append(parents, d)
			seen[d] = true
		}
		for i := len(parents) - 1; i >= 0; i-- {
			out = append(out, fileEntry{name: parents[i], mode: 0o755, dir: true})
		}
		out = append(out, e)
	}
	return out
}

// newLayer makes a gzipped OCI layer of entries.
func newLayer(entries []fileEntry, mtime time.Time, what string) (layerInfo, error) {
	gz, size, err := tarGzip(withParents(entries), mtime)
	if err != nil {
		return layerInfo{}, err
	}
	// The opener hands out the already compressed bytes, which go-containerregistry
	// recognises as gzip and uses as they are, so the digest is ours.
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return layerInfo{}, fmt.Errorf("layer %s: %w", what, err)
	}
	return layerInfo{layer: l, uncompressed: size, what: what}, nil
}

// baseEntries are the files every platform shares: the users, the CA
// certificates, the config and /tmp. The base layer is the same blob in every
// platform's image, so a multi-platform push uploads it once.
func baseEntries(s spec) []fileEntry {
	return []fileEntry{
		{name: "/etc/passwd", mode: 0o644, data: []byte(
			"root:x:0:0:root:/root:/usr/sbin/nologin\n" +
				fmt.Sprintf("nonroot:x:%d:%d:nonroot:/home/nonroot:/usr/sbin/nologin\n", nonrootID, nonrootID))},
		{name: "/etc/group", mode: 0o644, data: []byte("root:x:0:\n" + fmt.Sprintf("nonroot:x:%d:\n", nonrootID))},
		{name: caPath, mode: 0o644, data: s.caCerts},
		{name: path.Dir(configPath), mode: 0o755, dir: true},
		{name: configPath, mode: 0o644, data: s.config},
		{name: "/home/nonroot", mode: 0o700, uid: nonrootID, gid: nonrootID, dir: true},
		// Go's os.TempDir is /tmp; nothing writes there today, but a
		// library that does should not fail on a read-only layer-less /tmp.
		{name: "/tmp", mode: 0o1777, dir: true},
	}
}

// labels are the OCI annotations known for this build, used as image labels
// and as manifest and index annotations.
func labels(src sourceInfo) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "srht-registry",
		"org.opencontainers.image.description": "Token server for Docker/OCI registries: Sourcehut OAuth2, htpasswd and anonymous logins, Rego policy",
		"org.opencontainers.image.source":      sourceURL,
		"org.opencontainers.image.url":         sourceURL,
		"org.opencontainers.image.created":     src.created.UTC().Format(time.RFC3339),
	}
	if src.version != "" {
		l["org.opencontainers.image.version"] = src.version
	}
	if src.revision != "" {
		l["org.opencontainers.image.revision"] = src.revision
	}
	return l
}

// assemble builds the image of each binary and, for more than one, the
// index over them. It does no I/O: the same inputs give the same digests.
func assemble(s spec, bins []binary) (*built, error) {
	if len(bins) == 0 {
		return nil, fmt.Errorf("no binaries to build an image from")
	}
	created := v1.Time{Time: s.source.created.UTC()}
	base, err := newLayer(baseEntries(s), s.source.created, "/etc (passwd, group, CA certificates, srht-registry/config.yaml), /home/nonroot, /tmp")
	if err != nil {
		return nil, err
	}
	anns := labels(s.source)
	out := &built{}
	for _, b := range bins {
		bin, err := newLayer([]fileEntry{{name: binaryPath, mode: 0o755, data: b.data}}, s.source.created, binaryPath)
		if err != nil {
			return nil, err
		}
		ports := map[string]struct{}{}
		for _, p := range exposedPorts {
			ports[p] = struct{}{}
		}
		cf := &v1.ConfigFile{
			Architecture: b.platform.arch,
			OS:           b.platform.os,
			Created:      created,
			Config: v1.Config{
				User:         nonrootUser,
				Entrypoint:   entrypoint,
				Cmd:          defaultCmd,
				ExposedPorts: ports,
				WorkingDir:   "/",
				// No shell and nothing else to run, but tools that exec in
				// the container expect a PATH.
				Env:    []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
				Labels: anns,
			},
			RootFS: v1.RootFS{Type: "layers"},
		}
		img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return nil, fmt.Errorf("%s: config: %w", b.platform, err)
		}
		img, err = mutate.Append(img,
			mutate.Addendum{Layer: base.layer, History: v1.History{Created: created, CreatedBy: "cmd/buildimage: " + base.what}},
			mutate.Addendum{Layer: bin.layer, History: v1.History{Created: created, CreatedBy: "cmd/buildimage: go build ./cmd/srht-registry (" + b.platform.String() + ", CGO_ENABLED=0, -trimpath)"}},
		)
		if err != nil {
			return nil, fmt.Errorf("%s: layers: %w", b.platform, err)
		}
		img = mutate.Annotations(img, anns).(v1.Image)
		out.images = append(out.images, platformImage{platform: b.platform, image: img, layers: []layerInfo{base, bin}})
	}
	if len(out.images) == 1 {
		return out, nil
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for _, pi := range out.images {
		adds = append(adds, mutate.IndexAddendum{
			Add:        pi.image,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: pi.platform.os, Architecture: pi.platform.arch}},
		})
	}
	idx = mutate.AppendManifests(idx, adds...)
	out.index = mutate.Annotations(idx, anns).(v1.ImageIndex)
	return out, nil
}

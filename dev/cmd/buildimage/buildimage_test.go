package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"git.sr.ht/~zozs/srht-registry/internal/app"
	"git.sr.ht/~zozs/srht-registry/internal/config"
)

// The baked config is the embedded defaults with exactly the container's
// four changes, and the server itself accepts it.
func TestContainerConfig(t *testing.T) {
	cfg, err := config.Parse(containerConfig)
	if err != nil {
		t.Fatalf("config.Parse(config.yaml): %v", err)
	}
	if cfg.Listen != "0.0.0.0:5001" || !cfg.InsecureHTTP || cfg.Metrics.Listen != "0.0.0.0:9464" || cfg.Log.Format != "json" {
		t.Errorf("listen %q, insecure_http %t, metrics.listen %q, log.format %q; want 0.0.0.0:5001, true, 0.0.0.0:9464, json",
			cfg.Listen, cfg.InsecureHTTP, cfg.Metrics.Listen, cfg.Log.Format)
	}
	want := config.Default()
	want.Listen, want.InsecureHTTP, want.Metrics.Listen, want.Log.Format = cfg.Listen, cfg.InsecureHTTP, cfg.Metrics.Listen, cfg.Log.Format
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config.yaml changes more than listen, insecure_http, metrics.listen and log.format:\n got %+v\nwant %+v", cfg, want)
	}
	// The ports the image exposes are the ones the config listens on.
	for _, addr := range []string{cfg.Listen, cfg.Metrics.Listen} {
		_, port, _ := strings.Cut(addr, ":")
		if !slices.Contains(exposedPorts, port+"/tcp") {
			t.Errorf("%s is not among the exposed ports %v", addr, exposedPorts)
		}
	}

	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, containerConfig, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := app.Run(context.Background(), []string{"check-config", "--config", path}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("check-config exited %d: %s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "config OK") {
		t.Errorf("check-config printed %q, want config OK", stdout.String())
	}
}

var testSource = sourceInfo{
	created:  time.Date(2026, 11, 30, 14, 50, 23, 0, time.UTC),
	version:  "v0.0.0-20261130145023-9e2c92213c55",
	revision: "9e2c92213c551bce96978bed37e9f89304fc77bc",
}

const testCA = "-----BEGIN CERTIFICATE-----\nnot parsed by assemble\n-----END CERTIFICATE-----\n"

func testBuild(t *testing.T, src sourceInfo, platforms ...string) *built {
	t.Helper()
	var bins []binary
	for _, p := range platforms {
		ps, err := parsePlatforms(p)
		if err != nil {
			t.Fatal(err)
		}
		// Stand-ins for the binaries: assemble only copies bytes, and
		// .ci/image checks the real ones.
		bins = append(bins, binary{platform: ps[0], data: []byte("\x7fELF fake srht-registry for " + p)})
	}
	art, err := assemble(spec{source: src, caCerts: []byte(testCA), config: containerConfig}, bins)
	if err != nil {
		t.Fatalf("assemble: %v", err)
	}
	return art
}

// The same inputs give the same digests, byte for byte: nothing reads the
// clock, map order or the file system.
func TestAssembleReproducible(t *testing.T) {
	a, err := testBuild(t, testSource, "linux/amd64", "linux/arm64").top()
	if err != nil {
		t.Fatal(err)
	}
	b, err := testBuild(t, testSource, "linux/amd64", "linux/arm64").top()
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("two builds of the same inputs: %s and %s", a, b)
	}
	later := testSource
	later.created = later.created.Add(time.Second)
	c, err := testBuild(t, later, "linux/amd64", "linux/arm64").top()
	if err != nil {
		t.Fatal(err)
	}
	if c == a {
		t.Errorf("a different created time gave the same digest %s", a)
	}
}

type tarFile struct {
	hdr  *tar.Header
	data []byte
}

// flatten reads the image's file system as a runtime would see it.
func flatten(t *testing.T, img v1.Image) map[string]tarFile {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]tarFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files["/"+strings.TrimSuffix(h.Name, "/")] = tarFile{h, data}
	}
	return files
}

func TestImageContents(t *testing.T) {
	art := testBuild(t, testSource, "linux/arm64")
	if art.index != nil || len(art.images) != 1 {
		t.Fatalf("one platform: want a single image, got index %v and %d images", art.index != nil, len(art.images))
	}
	img := art.images[0].image
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s, want %s", mt, types.OCIManifestSchema1)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if cf.OS != "linux" || cf.Architecture != "arm64" {
		t.Errorf("platform %s/%s, want linux/arm64", cf.OS, cf.Architecture)
	}
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/srht-registry"}) ||
		!slices.Equal(c.Cmd, []string{"serve", "--config", "/etc/srht-registry/config.yaml"}) {
		t.Errorf("entrypoint %q cmd %q", c.Entrypoint, c.Cmd)
	}
	if _, ok := c.ExposedPorts["5001/tcp"]; !ok || len(c.ExposedPorts) != 2 {
		t.Errorf("exposed ports %v, want 5001/tcp and 9464/tcp", c.ExposedPorts)
	}
	if c.WorkingDir != "/" {
		t.Errorf("working dir %q", c.WorkingDir)
	}
	if !cf.Created.Equal(testSource.created) {
		t.Errorf("created %v, want %v", cf.Created.Time, testSource.created)
	}
	if c.Labels["org.opencontainers.image.revision"] != testSource.revision ||
		c.Labels["org.opencontainers.image.version"] != testSource.version ||
		c.Labels["org.opencontainers.image.source"] != sourceURL {
		t.Errorf("labels %v", c.Labels)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Annotations["org.opencontainers.image.revision"] != testSource.revision {
		t.Errorf("manifest annotations %v", m.Annotations)
	}

	files := flatten(t, img)
	for _, want := range []struct {
		path     string
		mode     int64
		uid      int
		dir      bool
		contains string
	}{
		{"/usr/local/bin/srht-registry", 0o755, 0, false, "fake srht-registry for linux/arm64"},
		{"/etc/srht-registry/config.yaml", 0o644, 0, false, string(containerConfig)},
		{"/etc/ssl/certs/ca-certificates.crt", 0o644, 0, false, testCA},
		{"/etc/passwd", 0o644, 0, false, "nonroot:x:65532:65532:"},
		{"/etc/group", 0o644, 0, false, "nonroot:x:65532:"},
		{"/home/nonroot", 0o700, 65532, true, ""},
		{"/tmp", 0o1777, 0, true, ""},
		{"/usr/local/bin", 0o755, 0, true, ""},
	} {
		f, ok := files[want.path]
		if !ok {
			t.Errorf("%s missing", want.path)
			continue
		}
		if f.hdr.Mode != want.mode || f.hdr.Uid != want.uid || (f.hdr.Typeflag == tar.TypeDir) != want.dir {
			t.Errorf("%s: mode %o uid %d type %c, want mode %o uid %d dir %t", want.path, f.hdr.Mode, f.hdr.Uid, f.hdr.Typeflag, want.mode, want.uid, want.dir)
		}
		if !strings.Contains(string(f.data), want.contains) {
			t.Errorf("%s does not contain %q", want.path, want.contains)
		}
	}
	for p, f := range files {
		if !f.hdr.ModTime.Equal(testSource.created) {
			t.Errorf("%s: mtime %v, want the created time %v", p, f.hdr.ModTime, testSource.created)
		}
		if strings.HasPrefix(p, "/bin") || strings.HasSuffix(p, "/sh") {
			t.Errorf("%s in the image: it should have no shell", p)
		}
	}
}

func TestIndex(t *testing.T) {
	art := testBuild(t, testSource, "linux/amd64", "linux/arm64")
	if art.index == nil {
		t.Fatal("two platforms: want an index")
	}
	im, err := art.index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("index %s with %d manifests", im.MediaType, len(im.Manifests))
	}
	for i, want := range []string{"linux/amd64", "linux/arm64"} {
		if got := im.Manifests[i].Platform.String(); got != want {
			t.Errorf("manifest %d platform %s, want %s", i, got, want)
		}
	}
	if im.Annotations["org.opencontainers.image.revision"] != testSource.revision {
		t.Errorf("index annotations %v", im.Annotations)
	}
	// The base layer is one blob for every platform, uploaded once.
	var bases []v1.Hash
	for _, pi := range art.images {
		d, err := pi.layers[0].layer.Digest()
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, d)
	}
	if bases[0] != bases[1] {
		t.Errorf("base layers differ between platforms: %v", bases)
	}

	// An OCI layout of it reads back with the same digest under its tag.
	dir := filepath.Join(t.TempDir(), "oci")
	if err := writeLayout(dir, "v1", art); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	outer, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	om, err := outer.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := art.index.Digest()
	if len(om.Manifests) != 1 || om.Manifests[0].Digest != want || om.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v1" {
		t.Errorf("layout index.json %+v, want %s tagged v1", om.Manifests, want)
	}
}

func TestParsePlatforms(t *testing.T) {
	got, err := parsePlatforms("linux/amd64, linux/arm64")
	if err != nil || !slices.Equal(got, []platform{{"linux", "amd64"}, {"linux", "arm64"}}) {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "amd64", "darwin/arm64", "linux/arm/v7", "linux/amd64,linux/amd64"} {
		if _, err := parsePlatforms(bad); err == nil {
			t.Errorf("parsePlatforms(%q): no error", bad)
		}
	}
}

func TestCreatedTime(t *testing.T) {
	commit := testSource.created
	for _, c := range []struct {
		epoch string
		want  time.Time
	}{
		{"", commit},
		{"1700000000", time.Unix(1700000000, 0)},
	} {
		got, _, err := createdTime(c.epoch, commit)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("createdTime(%q) = %v, %v; want %v", c.epoch, got, err, c.want)
		}
	}
	if got, _, _ := createdTime("", time.Time{}); !got.Equal(time.Unix(0, 0)) {
		t.Errorf("no commit time: %v, want the epoch", got)
	}
	if _, _, err := createdTime("yesterday", commit); err == nil {
		t.Error("SOURCE_DATE_EPOCH=yesterday: no error")
	}
}

// Mistakes in the flags are refused before anything is built.
func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--tarball", "x.tar"}, // two platforms by default
		{"--password-stdin"},
		{"--push", "localhost:5000/a/b@sha256:0123456789012345678901234567890123456789012345678901234567890123"},
		{"--platform", "windows/amd64"},
		{"extra"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, strings.NewReader(""), &out, &out); err == nil {
			t.Errorf("run %q: no error", args)
		}
	}
}

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"

	"git.sr.ht/~zozs/srht-registry/policy"
)

// bundlePath is where the bundle server serves the bundle (the resource
// in every replica's policy.opa).
const bundlePath = "/bundles/registry.tar.gz"

// replicaHeader names the replica a bundle download is for: each replica's
// policy.opa service sends it, so the bundle server can tell when each one
// fetched a revision. The bundle and its URL are the same for all.
const replicaHeader = "X-Replica"

// buildBundle makes a signed OPA bundle of the embedded default policy
// (policy/authz.rego, without its tests) and data, under the root
// "registry" (the policy's package and its data.registry).
func buildBundle(revision string, data map[string]any, secret string) ([]byte, error) {
	var modules []bundle.ModuleFile
	err := fs.WalkDir(policy.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".rego" {
			return err
		}
		raw, err := fs.ReadFile(policy.FS(), p)
		if err != nil {
			return err
		}
		modules = append(modules, bundle.ModuleFile{URL: "/" + p, Path: "/" + p, Raw: raw})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded policy: %w", err)
	}
	if len(modules) == 0 {
		return nil, fmt.Errorf("embedded policy: no .rego file")
	}
	b := bundle.Bundle{
		Manifest: bundle.Manifest{Revision: revision, Roots: &[]string{"registry"}},
		Data:     data,
		Modules:  modules,
	}
	if err := b.GenerateSignature(bundle.NewSigningConfig(secret, "HS256", ""), "bundle-key", false); err != nil {
		return nil, fmt.Errorf("sign bundle: %w", err)
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		return nil, fmt.Errorf("write bundle: %w", err)
	}
	return buf.Bytes(), nil
}

// bundleServer serves one bundle, with ETags (OPA sends If-None-Match and
// gets 304 while the bundle is unchanged), and records which revision each
// replica downloaded when.
type bundleServer struct {
	mu        sync.Mutex
	body      []byte
	etag      string
	revision  string
	setAt     time.Time
	fetches   map[string][]bundleFetch // by replica
	notMod    int
	url       string
	srv       *http.Server
	secret    string
	requested int
}

type bundleFetch struct {
	revision string
	at       time.Time
}

func startBundleServer(secret string) (*bundleServer, error) {
	b := &bundleServer{fetches: map[string][]bundleFetch{}, secret: secret}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bundle server: %w", err)
	}
	b.url = "http://" + ln.Addr().String()
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	return b, nil
}

func (b *bundleServer) close() { _ = b.srv.Close() }

// set builds and serves a new revision; it returns when the bundle server
// answers with it.
func (b *bundleServer) set(revision string, data map[string]any) error {
	body, err := buildBundle(revision, data, b.secret)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.body, b.etag, b.revision, b.setAt = body, `"`+hex.EncodeToString(sum[:16])+`"`, revision, time.Now()
	return nil
}

func (b *bundleServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != bundlePath || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requested++
	if b.body == nil {
		http.Error(w, "no bundle yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("ETag", b.etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, b.etag) {
		b.notMod++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	replica := r.Header.Get(replicaHeader)
	b.fetches[replica] = append(b.fetches[replica], bundleFetch{revision: b.revision, at: time.Now()})
	w.Header().Set("Content-Type", "application/gzip")
	_, _ = w.Write(b.body)
}

// firstFetch is when replica first downloaded revision (zero if never).
func (b *bundleServer) firstFetch(replica, revision string) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range b.fetches[replica] {
		if f.revision == revision {
			return f.at
		}
	}
	return time.Time{}
}

// counts is how many requests the bundle server answered: full downloads
// (per replica) and 304s.
func (b *bundleServer) counts() (requests, notModified int, downloads map[string]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	downloads = map[string]int{}
	for r, fs := range b.fetches {
		downloads[r] = len(fs)
	}
	return b.requested, b.notMod, downloads
}

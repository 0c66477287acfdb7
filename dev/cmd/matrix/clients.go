package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// errNA marks an operation a client does not have.
type errNA struct{ reason string }

func (e errNA) Error() string { return e.reason }

func na(reason string) error { return errNA{reason} }

// session is one cell's client: its own home and config directories
// (DOCKER_CONFIG, REGISTRY_AUTH_FILE, ~/.regctl), so no cell sees another's
// credentials.
type session struct {
	m      *matrix
	reg    *runningRegistry
	dir    string
	env    []string
	pulls  int
	layout string // this cell's copy of the test image's OCI layout
}

func (m *matrix) newSession(reg *runningRegistry, client, cell string) (*session, error) {
	dir := filepath.Join(m.tmp, "cells", reg.spec.id, client, cell)
	for _, d := range []string{".docker", ".config", "run", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	s := &session{m: m, reg: reg, dir: dir, env: []string{
		"HOME=" + dir,
		"DOCKER_CONFIG=" + filepath.Join(dir, ".docker"),
		"REGISTRY_AUTH_FILE=" + filepath.Join(dir, "auth.json"),
		"REGCTL_CONFIG=" + filepath.Join(dir, ".regctl", "config.json"),
		"XDG_RUNTIME_DIR=" + filepath.Join(dir, "run"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, ".config"),
		"TMPDIR=" + filepath.Join(dir, "tmp"),
		"OTEL_TRACES_EXPORTER=none",
		"DOCKER_CLI_HINTS=false",
		"DOCKER_HOST=" + m.noDaemonHost(), // the docker (daemon) client's setup sets its daemon
	}}
	s.layout = filepath.Join(dir, "layout")
	if err := os.CopyFS(s.layout, os.DirFS(m.layout)); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *session) run(ctx context.Context, stdin, name string, args ...string) (string, error) {
	if s.m.opts.verbose {
		fmt.Fprintf(os.Stderr, "    $ %s %s\n", name, strings.Join(args, " "))
	}
	out, err := runCmd(ctx, s.m.opts.cmdTimeout, s.dir, s.env, stdin, name, args...)
	if s.m.opts.verbose && out != "" {
		for line := range strings.Lines(out) {
			fmt.Fprintf(os.Stderr, "      %s", line)
		}
		if !strings.HasSuffix(out, "\n") {
			fmt.Fprintln(os.Stderr)
		}
	}
	return out, err
}

func (s *session) ref(repoTag string) string { return s.reg.host + "/" + repoTag }

func (s *session) pullDir() string {
	s.pulls++
	return filepath.Join(s.dir, fmt.Sprintf("pulled-%d", s.pulls))
}

func (s *session) tool(name string) string { return filepath.Join(s.m.opts.tools, name) }

// client is what the generic cells need from a client. Every method runs
// the client's own command line; an operation the client lacks returns
// errNA.
type client interface {
	name() string
	// setup runs before anything else in a cell (regctl: mark the
	// registry as plain HTTP).
	setup(ctx context.Context, s *session) error
	// login stores credentials with the client's login command.
	login(ctx context.Context, s *session, user, password string) error
	// loginChecks says whether login asks the registry (and so can refuse a
	// wrong password).
	loginChecks() bool
	push(ctx context.Context, s *session, repoTag string) error
	pull(ctx context.Context, s *session, repoTag string) error
	copy(ctx context.Context, s *session, src, dst string) error
	delete(ctx context.Context, s *session, repoTag string) error
	catalog(ctx context.Context, s *session) (string, error)
}

var allClients = []client{crane{}, oras{}, regctl{}, skopeo{}, dockerClient{}, dockerManifest{}}

// crane (go-containerregistry).
type crane struct{}

func (crane) name() string                                { return "crane" }
func (crane) setup(ctx context.Context, s *session) error { return nil }
func (crane) loginChecks() bool                           { return false }
func (c crane) login(ctx context.Context, s *session, user, password string) error {
	_, err := s.run(ctx, password, s.tool("crane"), "auth", "login", s.reg.host, "-u", user, "--password-stdin")
	return err
}
func (c crane) push(ctx context.Context, s *session, repoTag string) error {
	_, err := s.run(ctx, "", s.tool("crane"), "push", "--insecure", s.m.tarball, s.ref(repoTag))
	return err
}
func (c crane) pull(ctx context.Context, s *session, repoTag string) error {
	_, err := s.run(ctx, "", s.tool("crane"), "pull", "--insecure", s.ref(repoTag), s.pullDir()+".tar")
	return err
}
func (c crane) copy(ctx context.Context, s *session, src, dst string) error {
	_, err := s.run(ctx, "", s.tool("crane"), "copy", "--insecure", s.ref(src), s.ref(dst))
	return err
}

// delete deletes the manifest the tag points to (distribution 2.8 has no
// tag deletion; crane delete sends the reference as given).
func (c crane) delete(ctx context.Context, s *session, repoTag string) error {
	out, err := s.run(ctx, "", s.tool("crane"), "digest", "--insecure", s.ref(repoTag))
	if err != nil {
		return err
	}
	repo, _, _ := strings.Cut(repoTag, ":")
	_, err = s.run(ctx, "", s.tool("crane"), "delete", "--insecure", s.ref(repo)+"@"+strings.TrimSpace(out))
	return err
}
func (c crane) catalog(ctx context.Context, s *session) (string, error) {
	return s.run(ctx, "", s.tool("crane"), "catalog", "--insecure", s.reg.host)
}

// oras.
type oras struct{}

func (oras) name() string                                { return "oras" }
func (oras) setup(ctx context.Context, s *session) error { return nil }
func (oras) loginChecks() bool                           { return true }
func (oras) login(ctx context.Context, s *session, user, password string) error {
	_, err := s.run(ctx, password, s.tool("oras"), "login", "--plain-http", "-u", user, "--password-stdin", s.reg.host)
	return err
}
func (oras) push(ctx context.Context, s *session, repoTag string) error {
	_, err := s.run(ctx, "", s.tool("oras"), "cp", "--from-oci-layout", s.layout+":v1", "--to-plain-http", s.ref(repoTag))
	return err
}
func (oras) pull(ctx context.Context, s *session, repoTag string) error {
	_, err := s.run(ctx, "", s.tool("oras"), "cp", "--from-plain-http", s.ref(repoTag), "--to-oci-layout", s.pullDir()+":v1")
	return err
}
func (oras) copy(ctx context.Context, s *session, src, dst string) error {
	_, err := s.run(ctx, "", s.tool("oras"), "cp", "--from-plain-http", "--to-plain-http", s.ref(src), s.ref(dst))
	return err
}
func (oras) delete(ctx context.Context, s *session, repoTag string) error {
	_, err := s.run(ctx, "", s.tool("oras"), "manifest", "delete", "--plain-http", "--force", s.ref(repoTag))
	return err
}
func (oras) catalog(ctx context.Context, s *session) (string, error) {
	return s.run(ctx, "", s.tool("oras"), "repo", "ls", "--plain-http", s.reg.host)
}

// regctl (regclient).
type regctl struct{}

func (regctl) name() string      { return "regctl" }
func (regctl) loginChecks() bool { return true }
func (regctl) setup(ctx context.Context, s *session) error {
	_, err := s.run(ctx, "", s.tool("regctl"), "registry", "set", "--tls", "disabled", s.reg.host)
	return err
}
func (regctl) login(ctx context.Context, s *session, user, password string) error {
	_, err := s.run(ctx, password, s.tool("regctl"), "registry", "login", "-u", user, "--pass-stdin", s.reg.host)
	return err
}
func (regctl) push(ctx context.Context, s *session, repoTag string) error {
	_, err := s.run(ctx, "", s.tool("regctl"), "image", "copy", "ocidir://"+s.layout+":v1", s.ref(repoTag))
	return err
}
func (regctl) pull(ctx context.Context, s *session, repoTag string) error {
	_, err := s.run(ctx, "", s.tool("regctl"), "image", "copy", s.ref(repoTag), "ocidir://"+s.pullDir()+":v1")
	return err
}
func (regctl) copy(ctx context.Context, s *session, src, dst string) error {
	_, err := s.run(ctx, "", s.tool("regctl"), "image", "copy", s.ref(src), s.ref(dst))
	return err
}
func (regctl) delete(ctx context.Context, s *session, repoTag string) error {
	_, err := s.run(ctx, "", s.tool("regctl"), "tag", "delete", s.ref(repoTag))
	return err
}
func (regctl) catalog(ctx context.Context, s *session) (string, error) {
	return s.run(ctx, "", s.tool("regctl"), "repo", "ls", s.reg.host)
}

// skopeo (Debian's).
type skopeo struct{}

func (skopeo) name() string                                { return "skopeo" }
func (skopeo) setup(ctx context.Context, s *session) error { return nil }
func (skopeo) loginChecks() bool                           { return true }
func (skopeo) login(ctx context.Context, s *session, user, password string) error {
	_, err := s.run(ctx, password, "skopeo", "login", "--tls-verify=false", "-u", user, "--password-stdin", s.reg.host)
	return err
}
func (skopeo) push(ctx context.Context, s *session, repoTag string) error {
	_, err := s.run(ctx, "", "skopeo", "copy", "--insecure-policy", "--dest-tls-verify=false", "oci:"+s.layout+":v1", "docker://"+s.ref(repoTag))
	return err
}
func (skopeo) pull(ctx context.Context, s *session, repoTag string) error {
	_, err := s.run(ctx, "", "skopeo", "copy", "--insecure-policy", "--src-tls-verify=false", "docker://"+s.ref(repoTag), "oci:"+s.pullDir()+":v1")
	return err
}
func (skopeo) copy(ctx context.Context, s *session, src, dst string) error {
	_, err := s.run(ctx, "", "skopeo", "copy", "--insecure-policy", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://"+s.ref(src), "docker://"+s.ref(dst))
	return err
}
func (skopeo) delete(ctx context.Context, s *session, repoTag string) error {
	_, err := s.run(ctx, "", "skopeo", "delete", "--tls-verify=false", "docker://"+s.ref(repoTag))
	return err
}
func (skopeo) catalog(ctx context.Context, s *session) (string, error) {
	return "", na("skopeo has no catalog command")
}

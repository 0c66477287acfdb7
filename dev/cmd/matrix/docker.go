package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The two docker clients: the CLI with a real daemon (docker), and the CLI
// alone (docker-manifest), whose registry commands talk to the registry
// themselves.

// labeled is a client whose name in the tables is not its id.
type labeled interface{ label() string }

// clientLabel is how the tables name c.
func clientLabel(c client) string {
	if l, ok := c.(labeled); ok {
		return l.label()
	}
	return c.name()
}

// isDocker says whether c is one of the docker clients: their login asks
// for an offline token and stores an identity token.
func isDocker(c client) bool {
	switch c.(type) {
	case dockerClient, dockerManifest:
		return true
	}
	return false
}

// noDaemonHost is DOCKER_HOST for every session but the daemon cells': a
// socket nobody listens on, so `docker login` runs client-side (as it does
// when no daemon answers) even where a system dockerd runs.
func (m *matrix) noDaemonHost() string { return "unix://" + filepath.Join(m.tmp, "no-dockerd.sock") }

// prepareDocker starts the private dockerd when the docker client is to
// run, and reads the version of the CLI its cells use. A daemon that does
// not start is no setup error: its cells fail with its error.
func (m *matrix) prepareDocker(ctx context.Context) error {
	if !m.clientSelected("docker") {
		return nil
	}
	out, err := runCmd(ctx, m.opts.cmdTimeout, m.tmp, nil, "", m.opts.dockerCLI, "--version")
	if err != nil {
		return fmt.Errorf("%s --version (-docker-cli): %w", m.opts.dockerCLI, err)
	}
	// "Docker version 20.10.24+dfsg1, build 297e128" → "20.10.24+dfsg1"
	m.versions.dockerCLI, _, _ = strings.Cut(strings.TrimPrefix(strings.TrimSpace(out), "Docker version "), ",")
	m.dockerd = m.startDockerd(ctx, m.opts.dockerCLI)
	m.versions.dockerd = m.dockerd.version
	return nil
}

func (m *matrix) clientSelected(name string) bool {
	for _, c := range m.opts.clients {
		if c == name {
			return true
		}
	}
	return false
}

// dockerSummary says which daemon the docker cells run with, or why none.
func (m *matrix) dockerSummary() string {
	switch {
	case !m.clientSelected("docker"):
		return "no docker daemon cells"
	case m.dockerd.check() != nil:
		return "dockerd NOT RUNNING (" + m.dockerd.check().Error() + ")"
	}
	return fmt.Sprintf("dockerd %s (Debian's docker.io, vfs) with docker CLI %s", m.versions.dockerd, m.versions.dockerCLI)
}

// dockerMarkdown is the compatibility table's account of the docker
// (daemon) rows.
func (m *matrix) dockerMarkdown() string {
	if !m.clientSelected("docker") {
		return ""
	}
	if err := m.dockerd.check(); err != nil {
		return "**docker (daemon)**: dockerd did not run (" + err.Error() + "), so every row of it failed."
	}
	return fmt.Sprintf("**docker (daemon)**: docker CLI %s with a real dockerd %s (both from Debian's `docker.io`), started privately as root (its own socket, data and exec roots; `--storage-driver=vfs --bridge=none --iptables=false`), which treats `localhost:PORT` as a plain-HTTP registry: ", m.versions.dockerCLI, m.versions.dockerd) +
		"`docker login` through the daemon (it stores the identity token the token server returns), a push is `docker build` with the classic builder (`DOCKER_BUILDKIT=0`; buildx is not packaged) of `FROM scratch` + `COPY` of a small file, then `docker push`; a pull is `docker rmi` then `docker pull`; the blob-mount copy is `docker pull` + `docker tag` + `docker push`. " +
		fmt.Sprintf("Its identity-refresh row runs against a token server of its own with `token.ttl: %s` (the shortest allowed): after a first push it waits until every access token of it has expired, pushes and pulls again, and reads in the token server's log that the daemon asked with the identity token (`grant_type=refresh_token`, logged as `auth_method=refresh/password`).", daemonTokenTTLCfg)
}

// dockerClient is the docker CLI (-docker-cli) with the matrix's private
// dockerd: login, build (the classic builder: buildx is not packaged
// here), push, rmi and pull go through the daemon, as in a CI job.
type dockerClient struct{}

func (dockerClient) name() string      { return "docker" }
func (dockerClient) label() string     { return "docker (daemon)" }
func (dockerClient) loginChecks() bool { return true }

// setup points the session's CLI at the daemon, or fails with the
// daemon's error, and empties the daemon's image store: each cell pulls
// what it pulls, and mounts from where it pulled it, as a fresh CI job
// does (the daemon mounts a layer from any repository of that registry it
// remembers it from, and "pulls" a layer it has by not downloading it).
func (d dockerClient) setup(ctx context.Context, s *session) error {
	if err := s.m.dockerd.check(); err != nil {
		return err
	}
	s.env = append(s.env, "DOCKER_HOST="+s.m.dockerd.host(), "DOCKER_BUILDKIT=0")
	if _, err := d.docker(ctx, s, "", "image", "prune", "--all", "--force"); err != nil {
		return fmt.Errorf("docker image prune: %w", err)
	}
	return nil
}

func (dockerClient) docker(ctx context.Context, s *session, stdin string, args ...string) (string, error) {
	return s.run(ctx, stdin, s.m.opts.dockerCLI, args...)
}

func (d dockerClient) login(ctx context.Context, s *session, user, password string) error {
	out, err := d.docker(ctx, s, password, "login", "-u", user, "--password-stdin", s.reg.host)
	if err == nil && !strings.Contains(out, "Login Succeeded") {
		return errors.New("no \"Login Succeeded\": " + oneLine(out))
	}
	return err
}

// build builds a one-layer image tagged ref with the classic builder: FROM
// scratch and a small file of its own (so no two cells' layers are the
// same blob).
func (d dockerClient) build(ctx context.Context, s *session, ref string) error {
	dir, err := os.MkdirTemp(s.dir, "build-")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY hello.txt /\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(ref+" "+rand.Text()+"\n"), 0o644); err != nil {
		return err
	}
	out, err := d.docker(ctx, s, "", "build", "--tag", ref, dir)
	if err == nil && !strings.Contains(out, "Successfully tagged "+ref) {
		return errors.New("docker build did not tag the image: " + oneLine(out))
	}
	return err
}

// push builds an image and pushes it.
func (d dockerClient) push(ctx context.Context, s *session, repoTag string) error {
	if err := d.build(ctx, s, s.ref(repoTag)); err != nil {
		return fmt.Errorf("docker build: %w", err)
	}
	_, err := d.docker(ctx, s, "", "push", s.ref(repoTag))
	return err
}

// pull removes the image if the daemon has it (docker rmi), pulls it and
// checks the daemon has it again.
func (d dockerClient) pull(ctx context.Context, s *session, repoTag string) error {
	ref := s.ref(repoTag)
	if _, err := d.docker(ctx, s, "", "image", "inspect", "--format", "{{.Id}}", ref); err == nil {
		if _, err := d.docker(ctx, s, "", "rmi", ref); err != nil {
			return fmt.Errorf("docker rmi: %w", err)
		}
	}
	if _, err := d.docker(ctx, s, "", "pull", ref); err != nil {
		return err
	}
	if _, err := d.docker(ctx, s, "", "image", "inspect", "--format", "{{.Id}}", ref); err != nil {
		return fmt.Errorf("docker pull succeeded but the daemon has no %s: %w", ref, err)
	}
	return nil
}

// copy pulls src, tags it dst and pushes dst: the daemon mounts the layers
// it knows came from src.
func (d dockerClient) copy(ctx context.Context, s *session, src, dst string) error {
	if err := d.pull(ctx, s, src); err != nil {
		return err
	}
	if _, err := d.docker(ctx, s, "", "tag", s.ref(src), s.ref(dst)); err != nil {
		return err
	}
	_, err := d.docker(ctx, s, "", "push", s.ref(dst))
	return err
}

func (dockerClient) delete(ctx context.Context, s *session, repoTag string) error {
	return na("docker has no command to delete from a registry")
}

func (dockerClient) catalog(ctx context.Context, s *session) (string, error) {
	return "", na("docker has no catalog command")
}

// dockerManifest is the docker CLI (the one on PATH) without a daemon.
// `docker login` runs client-side when no daemon answers (DOCKER_HOST is
// a socket nobody listens on), and `docker manifest` talks to the registry
// itself with the credentials of config.json (identity token included):
// push is a manifest list of one image (the CLI mounts the image's blobs
// and pushes its manifest into the target repository, then the list), pull
// is `docker manifest inspect`. docker has no command to delete from or
// list a registry.
type dockerManifest struct{}

// dockerListSource is the image the manifest lists of docker's push point
// to: public, so every user may mount from it.
const dockerListSource = "library/base:latest"

func (dockerManifest) name() string                                { return "docker-manifest" }
func (dockerManifest) label() string                               { return "docker manifest (CLI alone)" }
func (dockerManifest) setup(ctx context.Context, s *session) error { return nil }
func (dockerManifest) loginChecks() bool                           { return true }
func (dockerManifest) login(ctx context.Context, s *session, user, password string) error {
	out, err := s.run(ctx, password, "docker", "login", "-u", user, "--password-stdin", s.reg.host)
	if err == nil && !strings.Contains(out, "Login Succeeded") {
		return errors.New("no \"Login Succeeded\": " + oneLine(out))
	}
	return err
}
func (d dockerManifest) push(ctx context.Context, s *session, repoTag string) error {
	return d.copy(ctx, s, dockerListSource, repoTag)
}
func (dockerManifest) pull(ctx context.Context, s *session, repoTag string) error {
	out, err := s.run(ctx, "", "docker", "manifest", "inspect", "--insecure", s.ref(repoTag))
	if err == nil && !strings.Contains(out, "schemaVersion") {
		return errors.New("docker manifest inspect printed no manifest: " + oneLine(out))
	}
	return err
}

// copy pushes a manifest list at dst holding src's manifest.
func (dockerManifest) copy(ctx context.Context, s *session, src, dst string) error {
	if _, err := s.run(ctx, "", "docker", "manifest", "create", "--insecure", s.ref(dst), s.ref(src)); err != nil {
		return err
	}
	_, err := s.run(ctx, "", "docker", "manifest", "push", "--insecure", "--purge", s.ref(dst))
	return err
}
func (dockerManifest) delete(ctx context.Context, s *session, repoTag string) error {
	return na("docker has no command to delete from a registry")
}
func (dockerManifest) catalog(ctx context.Context, s *session) (string, error) {
	return "", na("docker has no catalog command")
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/config"
)

// TestTokenTTLConfig: the token server of the daemon's refresh cell loads
// with token.ttl 1m, the shortest the server allows.
func TestTokenTTLConfig(t *testing.T) {
	m := &matrix{keys: "/keys", htpasswd: "/etc/htpasswd", metaURL: "http://127.0.0.1:9", oidcURL: "http://127.0.0.1:10"}
	for _, withCert := range []bool{false, true} {
		cfg, err := config.Parse([]byte(withTokenTTL(m.tokenServerConfig("127.0.0.1:5001", withCert), daemonTokenTTLCfg)))
		if err != nil {
			t.Fatalf("withCert %t: %v", withCert, err)
		}
		if got := time.Duration(cfg.Token.TTL); got != daemonTokenTTL {
			t.Errorf("withCert %t: token.ttl %v, want %v", withCert, got, daemonTokenTTL)
		}
	}
}

// TestRefreshGrants reads srht-registry's request lines as the daemon's
// refresh cell saw them: the password login (issued, not counted), then
// refresh grants of push and of pull.
func TestRefreshGrants(t *testing.T) {
	log := `time=2026-12-05T12:30:26.766Z level=INFO msg=request request_id=a method=GET path=/auth status=200 duration=89ms client_ip=127.0.0.1 auth_method=password provider=htpasswd subject=bob requested=[] granted=[] refresh_token=issued
time=2026-12-05T12:30:27.903Z level=INFO msg=decision decision_id=x auth_method=refresh/password scope=repository:bob/refresh-docker requested=[push pull] granted=[push pull]
time=2026-12-05T12:31:30.098Z level=INFO msg=request request_id=b method=POST path=/auth status=200 duration=1ms client_ip=127.0.0.1 auth_method=refresh/password provider=htpasswd subject=bob requested=[repository:bob/refresh-docker:push,pull] granted=[repository:bob/refresh-docker:push,pull] refresh_token=presented
time=2026-12-05T12:31:30.560Z level=INFO msg=request request_id=c method=POST path=/auth status=200 duration=1ms client_ip=127.0.0.1 auth_method=refresh/password provider=htpasswd subject=bob requested=[repository:bob/refresh-docker:pull] granted=[repository:bob/refresh-docker:pull] refresh_token=presented
time=2026-12-05T12:31:31.000Z level=INFO msg=request request_id=d method=POST path=/auth status=200 duration=1ms client_ip=127.0.0.1 auth_method=refresh/password provider=htpasswd subject=bob requested=[repository:bob/refresh-docker-x:pull] granted=[repository:bob/refresh-docker-x:pull] refresh_token=presented
`
	if n, push := refreshGrants(log, "bob/refresh-docker"); n != 2 || !push {
		t.Errorf("refreshGrants = %d, %t; want 2, true", n, push)
	}
	pullOnly := strings.Split(log, "\n")[3]
	if n, push := refreshGrants(pullOnly, "bob/refresh-docker"); n != 1 || push {
		t.Errorf("refreshGrants(pull only) = %d, %t; want 1, false", n, push)
	}
	refused := strings.Replace(strings.Split(log, "\n")[2], "status=200", "status=401", 1)
	if n, _ := refreshGrants(refused, "bob/refresh-docker"); n != 0 {
		t.Errorf("refreshGrants counted a refused request")
	}
}

func TestLogTail(t *testing.T) {
	got := logTail("a\n\nb\nc\nd\n", 2)
	if want := "dockerd's log: c / d"; got != want {
		t.Errorf("logTail = %q, want %q", got, want)
	}
	if got := logTail("", 3); got != "(its log is empty)" {
		t.Errorf("logTail(empty) = %q", got)
	}
}

// TestDockerdFailure: a dockerd that cannot start leaves an error the
// daemon cells fail with (never a skip), naming what went wrong.
func TestDockerdFailure(t *testing.T) {
	m := &matrix{opts: options{dockerd: "/nonexistent/dockerd"}, tmp: t.TempDir(), logDir: t.TempDir()}
	d := m.startDockerd(t.Context(), "docker")
	err := d.check()
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/dockerd") {
		t.Fatalf("check() = %v, want an error naming the missing dockerd", err)
	}
	s := &session{m: &matrix{dockerd: d}}
	if err := (dockerClient{}).setup(t.Context(), s); err == nil || !strings.Contains(err.Error(), "dockerd is not running") {
		t.Errorf("setup = %v, want the daemon's error", err)
	}
}

// TestDockerdExits: a dockerd that exits at once (as it does without
// root, or with a data root in use) fails the cells with its log's tail.
func TestDockerdExits(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "dockerd")
	script := "#!/bin/sh\necho 'failed to start daemon: pid file found, ensure docker is not running' >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	m := &matrix{opts: options{dockerd: fake}, tmp: t.TempDir(), logDir: t.TempDir()}
	err := m.startDockerd(t.Context(), "docker").check()
	if err == nil || !strings.Contains(err.Error(), "failed to start daemon: pid file found") {
		t.Fatalf("check() = %v, want dockerd's own error", err)
	}
}

package app

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"git.sr.ht/~zozs/srht-registry/internal/config"
)

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	writeFile(t, cfgPath, "listen: 127.0.0.1:0\n")
	srv, _ := startServer(t, cfgPath)
	addr := srv.Addr()

	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"not ready","reason":"no policy bundle is active yet"}`))
	}))
	defer notReady.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	// The server's own config, with its real port, as a container would
	// run it.
	running := filepath.Join(dir, "running.yaml")
	writeFile(t, running, "listen: "+addr+"\n")

	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"ready, by config", []string{"--config", running}, 0, "ready"},
		{"ready, by URL", []string{"--url", "http://" + addr + "/readyz"}, 0, "ready"},
		{"not ready, with the reason", []string{"--url", notReady.URL + "/readyz"}, 1, "no policy bundle is active yet"},
		{"nobody listening", []string{"--url", gone.URL + "/readyz"}, 1, "not healthy"},
		{"not a URL", []string{"--url", "127.0.0.1:5001"}, 2, "not an http(s) URL"},
		{"bad config", []string{"--config", filepath.Join(dir, "missing.yaml")}, 2, "missing.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", append([]string{"healthcheck"}, tt.args...)...)
			if code != tt.code || !strings.Contains(stdout+stderr, tt.contains) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d mentioning %q", code, stdout, stderr, tt.code, tt.contains)
			}
		})
	}
}

func TestReadyURL(t *testing.T) {
	t.Parallel()
	for listen, want := range map[string]string{
		"0.0.0.0:5001":   "http://127.0.0.1:5001/readyz",
		":5001":          "http://127.0.0.1:5001/readyz",
		"[::]:5001":      "http://[::1]:5001/readyz",
		"10.0.0.5:5001":  "http://10.0.0.5:5001/readyz",
		"localhost:5001": "http://localhost:5001/readyz",
	} {
		cfg := config.Default()
		cfg.Listen = listen
		if got := readyURL(cfg); got != want {
			t.Errorf("listen %s: %s, want %s", listen, got, want)
		}
	}
	cfg := config.Default()
	cfg.TLS.Certificate = "tls.crt"
	if got := readyURL(cfg); got != "https://127.0.0.1:5001/readyz" {
		t.Errorf("with TLS: %s", got)
	}
}

func TestKeysKeepExisting(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	keep := func() (int, string) {
		code, stdout, stderr := run(t, "", "keys", "--out", dir, "--keep-existing")
		return code, stdout + stderr
	}
	if code, out := keep(); code != 0 || !strings.Contains(out, "Key ID") {
		t.Fatalf("first run: exit %d: %s", code, out)
	}
	first, err := os.ReadFile(filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if code, out := keep(); code != 0 || !strings.Contains(out, "kept them") {
		t.Fatalf("second run: exit %d: %s", code, out)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "key.pem")); string(again) != string(first) {
		t.Fatal("--keep-existing replaced the key")
	}
	if err := os.Remove(filepath.Join(dir, "jwks.json")); err != nil {
		t.Fatal(err)
	}
	if code, out := keep(); code != 1 || !strings.Contains(out, "not jwks.json") {
		t.Errorf("a partial set: exit %d: %s; want 1 naming what is missing", code, out)
	}
	if code, _, stderr := run(t, "", "keys", "--out", dir, "--keep-existing", "--force"); code != 2 || !strings.Contains(stderr, "contradict") {
		t.Errorf("--keep-existing --force: exit %d: %s", code, stderr)
	}
}

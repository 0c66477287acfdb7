package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchKubernetesVolume updates a file the way the kubelet updates a
// ConfigMap or Secret volume: config.yaml is a symlink through ..data, and
// an update renames a new ..data symlink over the old one. The watched file
// itself gets no event; the swap must still trigger a reload.
func TestWatchKubernetesVolume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	version := func(name, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "config.yaml"), content)
	}
	version("..2026_11_30_10_00_00.1", "listen: 127.0.0.1:1\n")
	if err := os.Symlink("..2026_11_30_10_00_00.1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "config.yaml"), filepath.Join(dir, "config.yaml")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes, err := watchFiles(ctx, []string{filepath.Join(dir, "config.yaml")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}

	version("..2026_11_30_10_05_00.2", "listen: 127.0.0.1:2\n")
	if err := os.Symlink("..2026_11_30_10_05_00.2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	select {
	case path := <-changes:
		if filepath.Base(path) != "..data" {
			t.Errorf("change reported for %s, want the ..data swap", path)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the ..data swap triggered no reload")
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "config.yaml")); string(got) != "listen: 127.0.0.1:2\n" {
		t.Fatalf("the fixture is wrong: config.yaml reads %q after the swap", got)
	}
}

// Package checkout finds the srht-registry checkout the development
// harnesses work on: the directory of the server's module, wherever they are
// run from inside the checkout (its root, where the module is the main one,
// or dev/, where the replace directive points at it), so a harness builds
// ./cmd/srht-registry and finds .tools/ in the right place either way.
package checkout

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Module is the server's module path.
const Module = "git.sr.ht/~zozs/srht-registry"

// Root returns the directory of Module as the go command resolves it in the
// working directory.
func Root(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", Module)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w: %s (run from the srht-registry checkout, or pass its directory)", Module, err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("go list -m %s: no directory (run from the srht-registry checkout, or pass its directory)", Module)
	}
	return filepath.Abs(dir)
}

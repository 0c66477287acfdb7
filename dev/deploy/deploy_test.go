package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"git.sr.ht/~zozs/srht-registry/internal/app"
	"git.sr.ht/~zozs/srht-registry/internal/config"
)

// examples is the deploy/ directory of the checkout, where the examples live
// (the tests live in the dev module, apart from the server's).
const examples = "../../deploy/"

// The srht-registry configs of the examples, each as its deployment
// installs it. The Kubernetes one is inside configmap.yaml (see
// kubernetesConfig).
const (
	systemdConfig = examples + "systemd/config.yaml"
	composeConfig = examples + "compose/srht-registry.yaml"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask; the tests need it exact.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// parseConfig is config.Parse, failing the test with the file's name.
func parseConfig(t *testing.T, name string, data []byte) config.Config {
	t.Helper()
	cfg, err := config.Parse(data)
	if err != nil {
		t.Fatalf("%s does not parse as an srht-registry config:\n%v", name, err)
	}
	return cfg
}

// port is the numeric port of a host:port.
func port(t *testing.T, hostPort string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		t.Fatalf("%q: %v", hostPort, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%q: port is not a number", hostPort)
	}
	return n
}

// fileKeys are the config settings that name files, as dotted paths; the
// bool says whether the setting is a list.
var fileKeys = map[string]bool{
	"token.key":            false,
	"token.certificate":    false,
	"token.published_keys": true,
	"authn.htpasswd":       false,
	"tls.certificate":      false,
	"tls.key":              false,
	"policy.bundles":       true,
}

// namedFiles returns the file paths a config names, by setting.
func namedFiles(t *testing.T, data []byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	editConfig(t, data, func(key string, n *yaml.Node) {
		if _, ok := fileKeys[key]; !ok {
			return
		}
		switch n.Kind {
		case yaml.ScalarNode:
			out[key] = append(out[key], n.Value)
		case yaml.SequenceNode:
			for _, c := range n.Content {
				out[key] = append(out[key], c.Value)
			}
		}
	})
	return out
}

// editConfig calls edit with every setting of the config document (dotted
// path and value node), so that it can change values in place, and returns
// the edited document.
func editConfig(t *testing.T, data []byte, edit func(key string, n *yaml.Node)) []byte {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			edit(key, n.Content[i+1])
			walk(n.Content[i+1], key)
		}
	}
	if len(doc.Content) > 0 {
		walk(doc.Content[0], "")
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// setting replaces the value of the scalar setting key.
func setting(key, value string) func(string, *yaml.Node) {
	return func(k string, n *yaml.Node) {
		if k == key {
			n.Kind, n.Tag, n.Value, n.Style = yaml.ScalarNode, "!!str", value, 0
		}
	}
}

// testFiles are the files a deployment provides, made the way docs/operations.md
// says: keys by `srht-registry keys`, an htpasswd of bcrypt lines.
type testFiles struct {
	dir      string
	keysDir  string // key.pem (0600), cert.pem, jwks.json
	htpasswd string
}

const (
	testUser     = "alice"
	testPassword = "alice-deploy-test-password"
)

func makeFiles(t *testing.T) testFiles {
	t.Helper()
	dir := t.TempDir()
	f := testFiles{dir: dir, keysDir: filepath.Join(dir, "keys"), htpasswd: filepath.Join(dir, "htpasswd")}
	var stderr bytes.Buffer
	if code := app.Run(context.Background(), []string{"keys", "--out", f.keysDir}, nil, io.Discard, &stderr); code != 0 {
		t.Fatalf("srht-registry keys exited %d: %s", code, stderr.String())
	}
	// Cost does not change the code path; the minimum keeps the test fast.
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.htpasswd, []byte(testUser+":"+string(hash)+"\n"), 0o600)
	return f
}

// localise rewrites the files a config names to the test's own, so that
// the config can be loaded on this machine. A setting the test has no
// file for fails the test: a new file in an example needs a test file.
func localise(t *testing.T, name string, data []byte, f testFiles) []byte {
	t.Helper()
	replace := map[string]string{
		"token.key":         filepath.Join(f.keysDir, "key.pem"),
		"token.certificate": filepath.Join(f.keysDir, "cert.pem"),
		"authn.htpasswd":    f.htpasswd,
	}
	return editConfig(t, data, func(key string, n *yaml.Node) {
		if _, ok := fileKeys[key]; !ok {
			return
		}
		to, ok := replace[key]
		if !ok || n.Kind != yaml.ScalarNode {
			t.Fatalf("%s names files in %s; the test has none to put there: extend localise", name, key)
		}
		n.Value = to
	})
}

// checkConfig runs `srht-registry check-config` on the config with its
// files localised, and returns the exit code and what it printed.
func checkConfig(t *testing.T, name string, data []byte, f testFiles) (int, string) {
	t.Helper()
	path := filepath.Join(f.dir, strings.ReplaceAll(name, "/", "_"))
	writeFile(t, path, localise(t, name, data, f), 0o644)
	var out bytes.Buffer
	code := app.Run(context.Background(), []string{"check-config", "--config", path}, strings.NewReader(""), &out, &out)
	return code, out.String()
}

// TestConfigsCheck runs every srht-registry config of the examples through
// config.Parse and the real check-config, which also loads the key (with
// its permission check), the htpasswd file and the policy, and refuses
// plain HTTP on a non-loopback address without insecure_http.
func TestConfigsCheck(t *testing.T) {
	configs := map[string][]byte{
		systemdConfig: readFile(t, systemdConfig),
		composeConfig: readFile(t, composeConfig),
		"kubernetes/configmap.yaml (config.yaml)": kubernetesConfig(t),
	}
	for name, data := range configs {
		t.Run(name, func(t *testing.T) {
			cfg := parseConfig(t, name, data)
			if cfg.Token.Key == "" {
				t.Error("token.key is unset: an ephemeral key differs per replica and per restart, and no registry can be given its jwks.json ahead")
			}
			if cfg.Metrics.Listen == "" {
				t.Error("metrics.listen is unset: the examples expose metrics on their own port")
			}
			// authn.sourcehut.users defaults to nobody: the examples show
			// who may log in, and name group members as principals.
			if !cfg.Authn.Sourcehut.CanLogIn() {
				t.Error("authn.sourcehut.users is empty: Sourcehut login lets nobody in; the examples show who may")
			}
			if len(cfg.Groups["admins"]) == 0 {
				t.Error("groups.admins is empty: the examples show group members written as principals")
			}
			f := makeFiles(t)
			code, out := checkConfig(t, name, data, f)
			if code != 0 {
				t.Fatalf("check-config exited %d:\n%s", code, out)
			}
			// The warnings of principals that match nobody, with the
			// test's htpasswd file (its one user is testUser).
			if strings.Contains(out, "warning:") {
				t.Errorf("check-config warns:\n%s", out)
			}
		})
	}
}

// TestKeyModes checks what the deployments rely on about key file modes:
// the 0400 file LoadCredential= makes and the 0600 copy the Kubernetes
// init container makes are accepted; the 0440 file the kubelet leaves in a
// Secret volume when fsGroup is set (whatever defaultMode says) is refused,
// which is why the key is copied rather than read from the Secret.
func TestKeyModes(t *testing.T) {
	data := readFile(t, composeConfig)
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o440, false}, {0o640, false}, {0o644, false}} {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			f := makeFiles(t)
			if err := os.Chmod(filepath.Join(f.keysDir, "key.pem"), tc.mode); err != nil {
				t.Fatal(err)
			}
			code, out := checkConfig(t, composeConfig, data, f)
			switch {
			case tc.ok && code != 0:
				t.Fatalf("check-config refused a key of mode %04o (exit %d):\n%s", tc.mode, code, out)
			case !tc.ok && code == 0:
				t.Fatalf("check-config accepted a key of mode %04o", tc.mode)
			case !tc.ok && !strings.Contains(out, "group or others"):
				t.Fatalf("check-config refused the key for another reason:\n%s", out)
			}
		})
	}
}

package app

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v3"

	"git.sr.ht/~zozs/srht-registry/internal/config"

	// The example registry.yml stores on the file system.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// The README's local walk-through runs these two files; .ci/walkthrough runs
// the README's commands themselves with the real binaries.
const (
	examplesDir     = "../../examples/local"
	exampleServer   = "srht-registry.yaml"
	exampleRegistry = "registry.yml"
	readmePath      = "../../README.md"
)

func readExample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// replaceOnce replaces old, which must occur exactly once in s.
func replaceOnce(t *testing.T, s []byte, old, new string) []byte {
	t.Helper()
	if n := bytes.Count(s, []byte(old)); n != 1 {
		t.Fatalf("want %q exactly once in the example, found it %d times", old, n)
	}
	return bytes.Replace(s, []byte(old), []byte(new), 1)
}

// TestExampleLocal runs examples/local as the README's walk-through does: the
// server's config loader reads srht-registry.yaml, distribution's own parser
// reads registry.yml, `keys` and `hash-password` make the key and the user,
// and alice pushes and pulls in alice/* and is refused bob/*. What differs
// from the walk-through, and nothing else: the token server listens on port
// 0, the registry's realm names that port, and the registry is served on a
// test listener rather than on its http.addr.
func TestExampleLocal(t *testing.T) {
	serverFile, registryFile := readExample(t, exampleServer), readExample(t, exampleRegistry)

	// Both files as they are, with each program's own parser.
	cfg, err := config.Parse(serverFile)
	if err != nil {
		t.Fatalf("%s: %v", exampleServer, err)
	}
	rc, err := configuration.Parse(bytes.NewReader(registryFile))
	if err != nil {
		t.Fatalf("%s: %v", exampleRegistry, err)
	}
	tok := rc.Auth["token"]
	if tok == nil {
		t.Fatalf("%s has no auth.token", exampleRegistry)
	}
	// They must agree with each other: the registry asks for tokens for
	// the server's service, from its issuer, at its listen port.
	if got := tok["service"]; got != cfg.DefaultService() || len(cfg.Service) != 1 {
		t.Errorf("registry service %v, server service %v", got, cfg.Service)
	}
	if got := tok["issuer"]; got != cfg.Issuer {
		t.Errorf("registry issuer %v, server issuer %q", got, cfg.Issuer)
	}
	if want := "http://localhost:" + portOf(t, cfg.Listen) + "/auth"; tok["realm"] != want {
		t.Errorf("registry realm %v, want %s (the server's listen port, as localhost)", tok["realm"], want)
	}

	if t.Failed() {
		t.FailNow() // the registry would start against another server
	}

	// The walk-through's directory: every relative path of both files is
	// relative to it.
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, exampleServer, string(serverFile))
	writeFile(t, exampleRegistry, string(registryFile))

	// `srht-registry keys --out keys --config srht-registry.yaml`: the
	// registry config it prints is the one registry.yml holds.
	var keysOut, keysErr strings.Builder
	if code := Run(t.Context(), []string{"keys", "--out", "keys", "--config", exampleServer}, nil, &keysOut, &keysErr); code != 0 {
		t.Fatalf("keys exited %d: %s", code, keysErr.String())
	}
	if checkKeysOutput(t, keysOut.String(), cfg, tok); t.Failed() {
		t.FailNow() // the registry would not trust the token server's key
	}

	// `echo PASSWORD | srht-registry hash-password alice > htpasswd`
	const password = "alice-example-secret"
	var line, hashErr strings.Builder
	if code := Run(t.Context(), []string{"hash-password", "alice"}, strings.NewReader(password+"\n"), &line, &hashErr); code != 0 {
		t.Fatalf("hash-password exited %d: %s", code, hashErr.String())
	}
	writeFile(t, cfg.Authn.Htpasswd, line.String())

	// The token server, from the example config with only its port changed.
	writeFile(t, exampleServer, string(replaceOnce(t, serverFile, "listen: "+cfg.Listen, "listen: 127.0.0.1:0")))
	srv, logs := startServer(t, exampleServer)

	// The registry, from registry.yml with only the realm's port changed.
	realm := tok["realm"].(string)
	rc, err = configuration.Parse(bytes.NewReader(replaceOnce(t, registryFile,
		"realm: "+realm, "realm: "+strings.Replace(realm, ":"+portOf(t, cfg.Listen)+"/", ":"+portOf(t, srv.Addr())+"/", 1))))
	if err != nil {
		t.Fatal(err)
	}
	// The same directory, made absolute: the registry's upload purger
	// walks it later, whatever the working directory is by then.
	fsParams := rc.Storage["filesystem"]
	root, ok := fsParams["rootdirectory"].(string)
	if !ok || filepath.IsAbs(root) {
		t.Fatalf("want a relative storage.filesystem.rootdirectory in %s, got %v", exampleRegistry, fsParams["rootdirectory"])
	}
	fsParams["rootdirectory"] = filepath.Join(dir, root)
	if !testing.Verbose() {
		logrus.SetOutput(io.Discard) // the registry logs a push's probes at error level
	}
	reg := httptest.NewServer(handlers.NewApp(context.Background(), rc))
	t.Cleanup(reg.Close)
	registry := strings.TrimPrefix(reg.URL, "http://")

	alice := &authn.Basic{Username: "alice", Password: password}
	if err := pushImage(t, registry, "alice/hello:v1", alice); err != nil {
		t.Fatalf("alice pushes alice/hello: %v\nlog:\n%s", err, logs)
	}
	if err := pullImage(t, registry, "alice/hello:v1", alice); err != nil {
		t.Fatalf("alice pulls alice/hello: %v", err)
	}
	if entries, err := os.ReadDir(filepath.Join(dir, root)); err != nil || len(entries) == 0 {
		t.Errorf("nothing stored under the example's rootdirectory %s: %v", root, err)
	}
	t.Run("alice is refused bob/*", func(t *testing.T) {
		wantDenied(t, pushImage(t, registry, "bob/hello:v1", alice))
		if !regexp.MustCompile(`msg=request .*requested=\S*repository:bob/hello:pull,push.* granted=\[\]`).MatchString(logs.String()) {
			t.Errorf("no request granted nothing on bob/hello in the log:\n%s", logs)
		}
	})
	t.Run("anonymous is refused", func(t *testing.T) {
		wantDenied(t, pullImage(t, registry, "alice/hello:v1", authn.Anonymous))
	})
	t.Run("a wrong password is refused", func(t *testing.T) {
		wantDenied(t, pullImage(t, registry, "alice/hello:v1", &authn.Basic{Username: "alice", Password: "not-" + password}))
	})
}

// checkKeysOutput checks that the configs `keys` printed are those of the
// examples: token.key of the server's, auth.token of the registry's (keys
// prints absolute paths; the examples' are relative to the directory).
func checkKeysOutput(t *testing.T, out string, cfg config.Config, tok configuration.Parameters) {
	t.Helper()
	var printed struct {
		Token struct {
			Key string `yaml:"key"`
		} `yaml:"token"`
		Auth struct {
			Token map[string]any `yaml:"token"`
		} `yaml:"auth"`
	}
	if err := yaml.Unmarshal([]byte(out), &printed); err != nil {
		t.Fatalf("keys output is not YAML: %v\n%s", err, out)
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if printed.Token.Key != abs(cfg.Token.Key) {
		t.Errorf("keys printed token.key %q; %s has %q", printed.Token.Key, exampleServer, cfg.Token.Key)
	}
	want := map[string]any{}
	for k, v := range tok {
		if k == "jwks" || k == "rootcertbundle" {
			v = abs(v.(string))
		}
		want[k] = v
	}
	if !maps.Equal(printed.Auth.Token, want) {
		t.Errorf("keys printed the registry config\n%v\n%s holds (paths made absolute)\n%v",
			printed.Auth.Token, exampleRegistry, want)
	}
}

func portOf(t *testing.T, hostport string) string {
	t.Helper()
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 {
		t.Fatalf("%q has no port", hostport)
	}
	return hostport[i+1:]
}

// walkthroughRE finds the README's walk-through, between the comment lines
// .ci/walkthrough looks for.
var walkthroughRE = regexp.MustCompile("(?ms)^<!-- walkthrough[ :].*?-->\n(.*?)^<!-- /walkthrough -->$")

// heredocRE finds the files the walk-through writes: `cat > NAME <<'EOF'`.
var heredocRE = regexp.MustCompile("(?ms)^cat > (\\S+) <<'EOF'\n(.*?)^EOF$")

// TestExampleInREADME checks that the walk-through in README.md writes each
// file of examples/local exactly as it is there, and no other file.
func TestExampleInREADME(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	m := walkthroughRE.FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no <!-- walkthrough --> … <!-- /walkthrough --> region")
	}
	inlined := map[string]string{}
	for _, h := range heredocRE.FindAllSubmatch(m[1], -1) {
		if _, dup := inlined[string(h[1])]; dup {
			t.Errorf("the walk-through writes %s twice", h[1])
		}
		inlined[string(h[1])] = string(h[2])
	}
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	if !slices.Contains(files, exampleServer) || !slices.Contains(files, exampleRegistry) {
		t.Fatalf("examples/local holds %v", files)
	}
	for _, name := range files {
		got, ok := inlined[name]
		if !ok {
			t.Errorf("the README's walk-through does not write %s (cat > %s <<'EOF')", name, name)
			continue
		}
		if want := string(readExample(t, name)); got != want {
			t.Errorf("the README's copy of examples/local/%s differs from the file:\n--- README\n%s--- file\n%s", name, got, want)
		}
	}
	for name := range inlined {
		if !slices.Contains(files, name) {
			t.Errorf("the README's walk-through writes %s, which is not in examples/local", name)
		}
	}
}

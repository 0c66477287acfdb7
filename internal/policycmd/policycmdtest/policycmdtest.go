package policycmdtest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"git.sr.ht/~zozs/srht-registry/internal/authn/authntest"
)

// fixtures holds the policy test fixtures (see its README.md), from the
// directory go test runs a package's tests in, for the packages two levels
// below the module root that use it.
const fixtures = "../../testdata/policytest"

// Fixture is the path of a policy test fixture, Fixture("plain"), or of a
// file among them, Fixture("schemas", "input.json").
func Fixture(elem ...string) string {
	return filepath.Join(append([]string{fixtures}, elem...)...)
}

// WriteFile writes src to dir/name, making dir first: a file of a policy
// directory, or of a config, that a test makes.
func WriteFile(t testing.TB, dir, name, src string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// EvalConfig writes an htpasswd file into dir and returns a config's YAML
// that uses it: the config the tests of policy eval evaluate. Its users:
// htpasswd:alice, htpasswd:bob and htpasswd:root (passwords a, b and r),
// and the Sourcehut users alice, carol and root. Its groups: admins
// (htpasswd:root) and ci (htpasswd:bob, sourcehut:carol). Its policy data:
// library/* is public, and team/* is pulled by the group ci and pushed by
// htpasswd:alice.
func EvalConfig(t testing.TB, dir string) string {
	t.Helper()
	WriteFile(t, dir, "htpasswd", authntest.HtpasswdLine(t, "alice", "a")+authntest.HtpasswdLine(t, "bob", "b")+
		authntest.HtpasswdLine(t, "root", "r"))
	return `authn:
  htpasswd: ` + filepath.Join(dir, "htpasswd") + `
  sourcehut:
    users: [alice, carol, root]
groups:
  admins: ["htpasswd:root"]
  ci: ["htpasswd:bob", "sourcehut:carol"]
policy:
  data:
    public: ["library/*"]
    namespaces:
      team: {pull: ["group:ci"], push: ["htpasswd:alice"]}
`
}

var testLine = regexp.MustCompile(`(?m)^data\.[\w.]+\.((?:test|todo_test)_\w+): (PASS|FAIL|ERROR|SKIPPED)`)

// TestLines returns the result lines of policy test's verbose output
// ("data.pkg.test_x: PASS (1ms)"): each test's outcome by its name.
func TestLines(stdout string) map[string]string {
	lines := map[string]string{}
	for _, m := range testLine.FindAllStringSubmatch(stdout, -1) {
		lines[m[1]] = m[2]
	}
	return lines
}

// HasRow reports whether a line of out has exactly the given fields: a
// row of policy eval's table.
func HasRow(out string, fields []string) bool {
	for line := range strings.Lines(out) {
		if slices.Equal(strings.Fields(line), fields) {
			return true
		}
	}
	return false
}

package app

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// fixtures holds the policy test fixtures; see its README.md.
const fixtures = "../../testdata/policytest"

func fixture(name string) string { return filepath.Join(fixtures, name) }

// runPolicyCLI runs srht-registry with args, as a user would.
func runPolicyCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	code = Run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func wantCode(t *testing.T, code, want int, stdout, stderr string) {
	t.Helper()
	if code != want {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
	}
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func wantLacks(t *testing.T, what, got string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(got, w) {
			t.Errorf("%s has %q:\n%s", what, w, got)
		}
	}
}

var passLine = regexp.MustCompile(`(?m)^PASS: (\d+)/(\d+)$`)

// passCount returns the n and total of the "PASS: n/total" summary line.
func passCount(t *testing.T, stdout string) (n, total int) {
	t.Helper()
	m := passLine.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no PASS: line in\n%s", stdout)
	}
	n, _ = strconv.Atoi(m[1])
	total, _ = strconv.Atoi(m[2])
	return n, total
}

// testLines returns the verbose result lines ("data.pkg.test_x: PASS (1ms)")
// keyed by test name, with their outcome.
func testLines(stdout string) map[string]string {
	lines := map[string]string{}
	re := regexp.MustCompile(`(?m)^data\.[\w.]+\.((?:test|todo_test)_\w+): (PASS|FAIL|ERROR|SKIPPED)`)
	for _, m := range re.FindAllStringSubmatch(stdout, -1) {
		lines[m[1]] = m[2]
	}
	return lines
}

func writeRego(t *testing.T, dir, name, src string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyTestEmbedded(t *testing.T) {
	code, stdout, stderr := runPolicyCLI(t, "policy", "test")
	wantCode(t, code, 0, stdout, stderr)
	n, total := passCount(t, stdout)
	if n != total || n == 0 {
		t.Errorf("PASS: %d/%d, want all of at least one", n, total)
	}
	wantLacks(t, "stdout", stdout, "FAIL", "ERROR", "SKIPPED")
	if stderr != "" {
		t.Errorf("stderr: %s", stderr)
	}
}

func TestPolicyTestVerbose(t *testing.T) {
	code, stdout, stderr := runPolicyCLI(t, "policy", "test", "-v")
	wantCode(t, code, 0, stdout, stderr)
	tests := testLines(stdout)
	n, _ := passCount(t, stdout)
	if len(tests) != n {
		t.Errorf("-v listed %d tests, summary says %d passed\n%s", len(tests), n, stdout)
	}
	for name, outcome := range tests {
		if outcome != "PASS" {
			t.Errorf("%s: %s", name, outcome)
		}
	}
	// Files are named as in the source tree, as `opa test policy/ -v` does.
	wantContains(t, "stdout", stdout, "policy/authz_test.rego:", "data.registry.authz_test.test_")

	// Flags may also follow the directory, as with opa test.
	code, stdout, stderr = runPolicyCLI(t, "policy", "test", fixture("plain"), "--verbose")
	wantCode(t, code, 0, stdout, stderr)
	if got := testLines(stdout); len(got) != 2 {
		t.Errorf("listed %v, want the two tests of plain/", got)
	}
}

func TestPolicyTestCoverage(t *testing.T) {
	code, stdout, stderr := runPolicyCLI(t, "policy", "test", "--coverage")
	wantCode(t, code, 0, stdout, stderr)
	var report struct {
		Files    map[string]json.RawMessage `json:"files"`
		Coverage *float64                   `json:"coverage"`
	}
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("coverage report is not JSON: %v\n%s", err, stdout)
	}
	if report.Coverage == nil || *report.Coverage <= 0 || *report.Coverage > 100 {
		t.Fatalf("coverage = %v, want a percentage\n%s", report.Coverage, stdout)
	}
	if _, ok := report.Files["policy/authz.rego"]; !ok {
		t.Errorf("no policy/authz.rego in the report's files: %s", stdout)
	}

	// typo/ never grants anything, so its rule head is never covered.
	code, stdout, stderr = runPolicyCLI(t, "policy", "test", "--threshold", "100", fixture("typo"))
	wantCode(t, code, 2, stdout, stderr)
	wantContains(t, "stderr", stderr, "Code coverage threshold not met")

	// Failures are listed instead of the report.
	code, stdout, stderr = runPolicyCLI(t, "policy", "test", "--coverage", fixture("failing"))
	wantCode(t, code, 2, stdout, stderr)
	wantContains(t, "stdout", stdout, "test_failing_bob_pushes: FAIL")
	wantLacks(t, "stdout", stdout, `"coverage"`)
}

func TestPolicyTestJSON(t *testing.T) {
	code, stdout, stderr := runPolicyCLI(t, "policy", "test", "--format", "json", fixture("failing"))
	wantCode(t, code, 2, stdout, stderr)
	var results []struct {
		Name     string `json:"name"`
		Fail     bool   `json:"fail"`
		Location struct {
			File string `json:"file"`
			Row  int    `json:"row"`
		} `json:"location"`
	}
	if err := json.Unmarshal([]byte(stdout), &results); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	fails := map[string]bool{}
	for _, r := range results {
		fails[r.Name] = r.Fail
	}
	want := map[string]bool{"test_failing_passes": false, "test_failing_bob_pushes": true}
	if len(fails) != len(want) || fails["test_failing_passes"] || !fails["test_failing_bob_pushes"] {
		t.Errorf("results %v, want %v", fails, want)
	}
}

func TestPolicyTestFailing(t *testing.T) {
	code, stdout, stderr := runPolicyCLI(t, "policy", "test", fixture("failing"))
	wantCode(t, code, 2, stdout, stderr)
	wantContains(t, "stdout", stdout,
		"failing/authz_test.rego:8:",
		"data.registry.authz_test.test_failing_bob_pushes: FAIL",
		"PASS: 1/2", "FAIL: 1/2")
	// Without -v only what did not pass is listed.
	wantLacks(t, "stdout", stdout, "test_failing_passes")
	wantContains(t, "stderr", stderr, "test_failing_bob_pushes (FAIL)")
}

func TestPolicyTestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	parse := filepath.Join(dir, "parse")
	writeRego(t, parse, "p.rego", "package p\n\nallow if {\n\tinput.x ==\n}\n")
	roots := filepath.Join(dir, "roots")
	writeRego(t, roots, ".manifest", `{"roots": ["registry"]}`)
	writeRego(t, roots, "p.rego", "package elsewhere\n\nallow := true\n")

	tests := []struct {
		name       string
		args       []string
		wantStderr []string
	}{
		{"compile error", []string{fixture("compile_error")},
			[]string{"compile_error/authz.rego:5:", "rego_unsafe_var_error", "var x is unsafe"}},
		{"parse error", []string{parse}, []string{"parse/p.rego:", "rego_parse_error"}},
		// Only a bundle has roots to break: this is loaded as one.
		{"bundle outside its roots", []string{roots}, []string{"roots", "elsewhere"}},
		{"missing directory", []string{filepath.Join(dir, "absent")}, []string{"absent"}},
		// Nothing runs unless every DIR loads, and every error is reported.
		{"one bad DIR of several", []string{fixture("plain"), fixture("compile_error"), parse},
			[]string{"compile_error/authz.rego:5:", "parse/p.rego:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runPolicyCLI(t, append([]string{"policy", "test"}, tt.args...)...)
			wantCode(t, code, 1, stdout, stderr)
			wantContains(t, "stderr", stderr, tt.wantStderr...)
			wantLacks(t, "stdout", stdout, "PASS")
		})
	}
}

func TestPolicyTestBundle(t *testing.T) {
	code, stdout, stderr := runPolicyCLI(t, "policy", "test", "-v", fixture("bundle"))
	wantCode(t, code, 0, stdout, stderr)
	got := testLines(stdout)
	// test_bundle_admin_from_data only passes if the bundle's data.json loaded.
	if got["test_bundle_admin_from_data"] != "PASS" || got["test_bundle_others_nothing"] != "PASS" || len(got) != 2 {
		t.Errorf("results %v\n%s", got, stdout)
	}
	wantContains(t, "stdout", stdout, "bundle/authz_test.rego:", "PASS: 2/2")
}

// plain/, bundle/ and failing/ all define package registry.authz, and
// bundle/'s allow conflicts with the others' (as `opa test plain bundle`
// shows), so they only work tested each on its own.
func TestPolicyTestSeparateDirs(t *testing.T) {
	code, stdout, stderr := runPolicyCLI(t, "policy", "test", "-v", fixture("plain"), fixture("bundle"))
	wantCode(t, code, 0, stdout, stderr)
	got := testLines(stdout)
	for _, name := range []string{"test_plain_alice_pulls", "test_plain_bob_does_not", "test_bundle_admin_from_data", "test_bundle_others_nothing"} {
		if got[name] != "PASS" {
			t.Errorf("%s: %q, want PASS", name, got[name])
		}
	}
	wantContains(t, "stdout", stdout, "PASS: 4/4")
	wantLacks(t, "stderr", stderr, "conflict")

	// A failure in any DIR fails the whole run, whichever comes first.
	for _, dirs := range [][]string{{"failing", "bundle"}, {"bundle", "failing"}} {
		code, stdout, stderr := runPolicyCLI(t, "policy", "test", "-v", fixture(dirs[0]), fixture(dirs[1]))
		wantCode(t, code, 2, stdout, stderr)
		got := testLines(stdout)
		if got["test_failing_bob_pushes"] != "FAIL" || got["test_bundle_admin_from_data"] != "PASS" || len(got) != 4 {
			t.Errorf("%v: results %v\n%s", dirs, got, stdout)
		}
		wantContains(t, "stdout", stdout, "PASS: 3/4", "FAIL: 1/4")
	}
}

func TestPolicyTestRun(t *testing.T) {
	code, stdout, stderr := runPolicyCLI(t, "policy", "test", "-v", "--run", "alice", fixture("plain"))
	wantCode(t, code, 0, stdout, stderr)
	if got := testLines(stdout); len(got) != 1 || got["test_plain_alice_pulls"] != "PASS" {
		t.Errorf("--run alice ran %v", got)
	}
	wantContains(t, "stdout", stdout, "PASS: 1/1")

	// The regex sees the full name, and filtering out the failing test passes.
	code, stdout, stderr = runPolicyCLI(t, "policy", "test", "-r", `^data\.registry\.authz_test\.test_failing_passes$`, fixture("failing"))
	wantCode(t, code, 0, stdout, stderr)
	wantContains(t, "stdout", stdout, "PASS: 1/1")

	// No match: like opa test, an empty report and exit 0, unless
	// --fail-on-empty; we also say so on stderr.
	code, stdout, stderr = runPolicyCLI(t, "policy", "test", "--run", "no_such_test")
	wantCode(t, code, 0, stdout, stderr)
	wantContains(t, "stderr", stderr, "no tests found")
	code, stdout, stderr = runPolicyCLI(t, "policy", "test", "--run", "no_such_test", "--fail-on-empty")
	wantCode(t, code, 1, stdout, stderr)
	wantContains(t, "stderr", stderr, "no tests were run")
}

func TestPolicyTestSchema(t *testing.T) {
	code, stdout, stderr := runPolicyCLI(t, "policy", "test", fixture("typo"))
	wantCode(t, code, 0, stdout, stderr)

	code, stdout, stderr = runPolicyCLI(t, "policy", "test", "--schema", filepath.Join(fixtures, "schemas", "input.json"), fixture("typo"))
	wantCode(t, code, 1, stdout, stderr)
	wantContains(t, "stderr", stderr, "typo/authz.rego:4:", "rego_type_error", "input.identity.subjet")

	code, stdout, stderr = runPolicyCLI(t, "policy", "test", "--schema", filepath.Join(fixtures, "absent.json"))
	wantCode(t, code, 1, stdout, stderr)
	wantContains(t, "stderr", stderr, "absent.json")
}

func TestPolicyTestSkippedAndErrors(t *testing.T) {
	dir := t.TempDir()
	skip := filepath.Join(dir, "skip")
	writeRego(t, skip, "p_test.rego", "package p_test\n\ntest_ok if true\n\ntodo_test_later if false\n")
	conflict := filepath.Join(dir, "conflict")
	writeRego(t, conflict, "p_test.rego", "package p_test\n\nx := 1 if input.a\n\nx := 2 if input.a\n\ntest_conflict if x == 1 with input.a as true\n")

	// Like opa test, a skipped test fails the run unless -z.
	code, stdout, stderr := runPolicyCLI(t, "policy", "test", skip)
	wantCode(t, code, 2, stdout, stderr)
	wantContains(t, "stdout", stdout, "todo_test_later: SKIPPED", "SKIPPED: 1/2")
	code, stdout, stderr = runPolicyCLI(t, "policy", "test", "-z", skip)
	wantCode(t, code, 0, stdout, stderr)

	code, stdout, stderr = runPolicyCLI(t, "policy", "test", conflict)
	wantCode(t, code, 2, stdout, stderr)
	wantContains(t, "stdout", stdout, "test_conflict: ERROR", "eval_conflict_error", "ERROR: 1/1")
	wantContains(t, "stderr", stderr, "test_conflict (ERROR)")

	// A directory without tests: nothing to report, exit 0.
	empty := filepath.Join(dir, "empty")
	writeRego(t, empty, "p.rego", "package p\n\nallow := true\n")
	code, stdout, stderr = runPolicyCLI(t, "policy", "test", empty)
	wantCode(t, code, 0, stdout, stderr)
	wantContains(t, "stderr", stderr, "no tests found")
}

func TestPolicyTestUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"no policy command", []string{"policy"}, 2, "missing command"},
		{"unknown policy command", []string{"policy", "frob"}, 2, `unknown command "frob"`},
		{"bad format", []string{"policy", "test", "--format", "xml"}, 2, "--format"},
		{"bad regex", []string{"policy", "test", "--run", "("}, 2, "--run"},
		{"bad threshold", []string{"policy", "test", "--threshold", "101"}, 2, "--threshold"},
		{"negative timeout", []string{"policy", "test", "--timeout", "-1s"}, 2, "--timeout"},
		{"unknown flag", []string{"policy", "test", "--bench"}, 2, "bench"},
		{"help", []string{"policy", "test", "-h"}, 0, "on its own"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runPolicyCLI(t, tt.args...)
			wantCode(t, code, tt.wantCode, stdout, stderr)
			wantContains(t, "stderr", stderr, tt.wantStderr)
		})
	}
}

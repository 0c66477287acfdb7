package policycmd

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"git.sr.ht/~zozs/srht-registry/internal/policycmd/policycmdtest"
	"git.sr.ht/~zozs/srht-registry/internal/testcheck"
)

// runTest runs Test with opts, in the pretty format unless opts says
// otherwise.
func runTest(t *testing.T, opts TestOptions) (stdout, stderr string, err error) {
	t.Helper()
	if opts.Format == "" {
		opts.Format = "pretty"
	}
	var out, errOut strings.Builder
	err = Test(context.Background(), opts, &out, &errOut)
	return out.String(), errOut.String(), err
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

func TestTestEmbedded(t *testing.T) {
	t.Parallel()
	stdout, stderr, err := runTest(t, TestOptions{})
	wantErr(t, err, nil, stdout)
	n, total := passCount(t, stdout)
	if n != total || n == 0 {
		t.Errorf("PASS: %d/%d, want all of at least one", n, total)
	}
	testcheck.Lacks(t, "stdout", stdout, "FAIL", "ERROR", "SKIPPED")
	if stderr != "" {
		t.Errorf("stderr: %s", stderr)
	}
}

func TestTestVerbose(t *testing.T) {
	t.Parallel()
	stdout, _, err := runTest(t, TestOptions{Verbose: true})
	wantErr(t, err, nil, stdout)
	tests := policycmdtest.TestLines(stdout)
	n, _ := passCount(t, stdout)
	if len(tests) != n {
		t.Errorf("Verbose listed %d tests, summary says %d passed\n%s", len(tests), n, stdout)
	}
	for name, outcome := range tests {
		if outcome != "PASS" {
			t.Errorf("%s: %s", name, outcome)
		}
	}
	// Files are named as in the source tree, as `opa test policy/ -v` does.
	testcheck.Contains(t, "stdout", stdout, "policy/authz_test.rego:", "data.registry.authz_test.test_")

	stdout, _, err = runTest(t, TestOptions{Dirs: []string{policycmdtest.Fixture("plain")}, Verbose: true})
	wantErr(t, err, nil, stdout)
	if got := policycmdtest.TestLines(stdout); len(got) != 2 {
		t.Errorf("listed %v, want the two tests of plain/", got)
	}
}

func TestTestCoverage(t *testing.T) {
	t.Parallel()
	stdout, _, err := runTest(t, TestOptions{Coverage: true})
	wantErr(t, err, nil, stdout)
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

	// typo/ never grants anything, so its rule head is never covered. A
	// threshold implies Coverage.
	// (It only compiles without the input type check.)
	stdout, _, err = runTest(t, TestOptions{Threshold: 100, NoSchema: true, Dirs: []string{policycmdtest.Fixture("typo")}})
	wantErr(t, err, ErrNotPassed, stdout)
	testcheck.Contains(t, "error", errText(err), "Code coverage threshold not met")

	// Failures are listed instead of the report.
	stdout, _, err = runTest(t, TestOptions{Coverage: true, Dirs: []string{policycmdtest.Fixture("failing")}})
	wantErr(t, err, ErrNotPassed, stdout)
	testcheck.Contains(t, "stdout", stdout, "test_failing_bob_pushes: FAIL")
	testcheck.Lacks(t, "stdout", stdout, `"coverage"`)
}

func TestTestJSON(t *testing.T) {
	t.Parallel()
	stdout, _, err := runTest(t, TestOptions{Format: "json", Dirs: []string{policycmdtest.Fixture("failing")}})
	wantErr(t, err, ErrNotPassed, stdout)
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

func TestTestFailing(t *testing.T) {
	t.Parallel()
	stdout, _, err := runTest(t, TestOptions{Dirs: []string{policycmdtest.Fixture("failing")}})
	wantErr(t, err, ErrNotPassed, stdout)
	testcheck.Contains(t, "stdout", stdout,
		"failing/authz_test.rego:8:",
		"data.registry.authz_test.test_failing_bob_pushes: FAIL",
		"PASS: 1/2", "FAIL: 1/2")
	// Without Verbose only what did not pass is listed.
	testcheck.Lacks(t, "stdout", stdout, "test_failing_passes")
	if got, want := errText(err), "policy test: 1 test did not pass: data.registry.authz_test.test_failing_bob_pushes (FAIL)"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
}

// TestTestNamesSomeFailures checks that the error names five tests that
// did not pass, and counts the others.
func TestTestNamesSomeFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var src strings.Builder
	src.WriteString("package p_test\n")
	for i := range 7 {
		src.WriteString("\ntest_" + strconv.Itoa(i) + " if false\n")
	}
	policycmdtest.WriteFile(t, dir, "p_test.rego", src.String())
	stdout, _, err := runTest(t, TestOptions{Dirs: []string{dir}})
	wantErr(t, err, ErrNotPassed, stdout)
	testcheck.Contains(t, "error", errText(err), "policy test: 7 tests did not pass: data.p_test.test_", " and 2 more")
	if n := strings.Count(errText(err), "(FAIL)"); n != 5 {
		t.Errorf("the error names %d tests, want 5: %v", n, err)
	}
}

func TestTestLoadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	parse := filepath.Join(dir, "parse")
	policycmdtest.WriteFile(t, parse, "p.rego", "package p\n\nallow if {\n\tinput.x ==\n}\n")
	roots := filepath.Join(dir, "roots")
	policycmdtest.WriteFile(t, roots, ".manifest", `{"roots": ["registry"]}`)
	policycmdtest.WriteFile(t, roots, "p.rego", "package elsewhere\n\nallow := true\n")

	tests := []struct {
		name    string
		dirs    []string
		wantErr []string
	}{
		{"compile error", []string{policycmdtest.Fixture("compile_error")},
			[]string{"compile_error/authz.rego:5:", "rego_unsafe_var_error", "var x is unsafe"}},
		{"parse error", []string{parse}, []string{"parse/p.rego:", "rego_parse_error"}},
		// Only a bundle has roots to break: this is loaded as one.
		{"bundle outside its roots", []string{roots}, []string{"roots", "elsewhere"}},
		{"missing directory", []string{filepath.Join(dir, "absent")}, []string{"absent"}},
		// Nothing runs unless every DIR loads, and every error is reported.
		{"one bad DIR of several", []string{policycmdtest.Fixture("plain"), policycmdtest.Fixture("compile_error"), parse},
			[]string{"compile_error/authz.rego:5:", "parse/p.rego:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, _, err := runTest(t, TestOptions{Dirs: tt.dirs})
			wantErr(t, err, errPlain, stdout)
			testcheck.Contains(t, "error", errText(err), tt.wantErr...)
			testcheck.Lacks(t, "stdout", stdout, "PASS")
		})
	}
}

func TestTestBundle(t *testing.T) {
	t.Parallel()
	stdout, _, err := runTest(t, TestOptions{Verbose: true, Dirs: []string{policycmdtest.Fixture("bundle")}})
	wantErr(t, err, nil, stdout)
	got := policycmdtest.TestLines(stdout)
	// test_bundle_admin_from_data only passes if the bundle's data.json loaded.
	if got["test_bundle_admin_from_data"] != "PASS" || got["test_bundle_others_nothing"] != "PASS" || len(got) != 2 {
		t.Errorf("results %v\n%s", got, stdout)
	}
	testcheck.Contains(t, "stdout", stdout, "bundle/authz_test.rego:", "PASS: 2/2")
}

// plain/, bundle/ and failing/ all define package registry.authz, and
// bundle/'s allow conflicts with the others' (as `opa test plain bundle`
// shows), so they only work tested each on its own.
func TestTestSeparateDirs(t *testing.T) {
	t.Parallel()
	stdout, stderr, err := runTest(t, TestOptions{Verbose: true, Dirs: []string{policycmdtest.Fixture("plain"), policycmdtest.Fixture("bundle")}})
	wantErr(t, err, nil, stdout)
	got := policycmdtest.TestLines(stdout)
	for _, name := range []string{"test_plain_alice_pulls", "test_plain_bob_does_not", "test_bundle_admin_from_data", "test_bundle_others_nothing"} {
		if got[name] != "PASS" {
			t.Errorf("%s: %q, want PASS", name, got[name])
		}
	}
	testcheck.Contains(t, "stdout", stdout, "PASS: 4/4")
	testcheck.Lacks(t, "stderr", stderr, "conflict")

	// A failure in any DIR fails the whole run, whichever comes first.
	for _, dirs := range [][]string{{"failing", "bundle"}, {"bundle", "failing"}} {
		stdout, _, err := runTest(t, TestOptions{Verbose: true, Dirs: []string{policycmdtest.Fixture(dirs[0]), policycmdtest.Fixture(dirs[1])}})
		wantErr(t, err, ErrNotPassed, stdout)
		got := policycmdtest.TestLines(stdout)
		if got["test_failing_bob_pushes"] != "FAIL" || got["test_bundle_admin_from_data"] != "PASS" || len(got) != 4 {
			t.Errorf("%v: results %v\n%s", dirs, got, stdout)
		}
		testcheck.Contains(t, "stdout", stdout, "PASS: 3/4", "FAIL: 1/4")
	}
}

func TestTestRun(t *testing.T) {
	t.Parallel()
	stdout, _, err := runTest(t, TestOptions{Verbose: true, Run: "alice", Dirs: []string{policycmdtest.Fixture("plain")}})
	wantErr(t, err, nil, stdout)
	if got := policycmdtest.TestLines(stdout); len(got) != 1 || got["test_plain_alice_pulls"] != "PASS" {
		t.Errorf("Run alice ran %v", got)
	}
	testcheck.Contains(t, "stdout", stdout, "PASS: 1/1")

	// The regex sees the full name, and filtering out the failing test passes.
	stdout, _, err = runTest(t, TestOptions{Run: `^data\.registry\.authz_test\.test_failing_passes$`, Dirs: []string{policycmdtest.Fixture("failing")}})
	wantErr(t, err, nil, stdout)
	testcheck.Contains(t, "stdout", stdout, "PASS: 1/1")

	// No match: like opa test, an empty report and no error, unless
	// FailOnEmpty; we also say so on stderr.
	stdout, stderr, err := runTest(t, TestOptions{Run: "no_such_test"})
	wantErr(t, err, nil, stdout)
	testcheck.Contains(t, "stderr", stderr, `srht-registry: policy test: no tests found matching --run "no_such_test"`)
	stdout, _, err = runTest(t, TestOptions{Run: "no_such_test", FailOnEmpty: true})
	wantErr(t, err, errPlain, stdout)
	testcheck.Contains(t, "error", errText(err), "no tests were run")
}

// TestTestSchema checks the input type check: against the embedded input
// schema by default, as serve checks every local policy, against
// --schema instead, or none with --no-schema.
func TestTestSchema(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A schema that has the typo: the override replaces the embedded one.
	subjet := filepath.Join(dir, "subjet.json")
	policycmdtest.WriteFile(t, dir, "subjet.json", `{"type": "object", "properties": {"identity": {"type": "object",
		"properties": {"subjet": {"type": "string"}}, "additionalProperties": false}}}`)
	// Tests build their inputs freely: with input as {…} is not checked,
	// as in opa test --schema, so a test may try a field serve never sends.
	withInput := filepath.Join(dir, "with_input")
	policycmdtest.WriteFile(t, withInput, "p.rego", "package registry.authz\n\nallow contains \"pull\" if input.identity.subject == \"alice\"\n")
	policycmdtest.WriteFile(t, withInput, "p_test.rego", "package registry.authz_test\n\nimport data.registry.authz\n\n"+
		"test_odd_input if not \"pull\" in authz.allow with input as {\"identity\": {\"usrname\": \"alice\", \"subject\": 7}}\n")
	// But a test module that reads input itself is checked like any other
	// module, as opa test --schema checks it.
	testReads := filepath.Join(dir, "test_reads")
	policycmdtest.WriteFile(t, testReads, "p.rego", "package registry.authz\n\nallow contains \"pull\" if input.identity.subject == \"alice\"\n")
	policycmdtest.WriteFile(t, testReads, "p_test.rego", "package registry.authz_test\n\n"+
		"usrname := input.identity.usrname\n\ntest_reads if usrname == \"alice\" with input as {\"identity\": {\"usrname\": \"alice\"}}\n")
	// A bundle is checked too, its files named by their path.
	typoBundle := filepath.Join(dir, "typo_bundle")
	policycmdtest.WriteFile(t, typoBundle, ".manifest", `{"roots": ["registry"]}`)
	policycmdtest.WriteFile(t, typoBundle, "authz.rego", "package registry.authz\n\nallow contains \"pull\" if {\n\tinput.identity.usrname == \"alice\"\n}\n")

	tests := []struct {
		name    string
		opts    TestOptions
		wantErr error
		wantMsg []string
	}{
		{"typo, embedded schema", TestOptions{Dirs: []string{policycmdtest.Fixture("typo")}}, errPlain,
			[]string{"typo/authz.rego:4: rego_type_error: undefined ref: input.identity.subjet", `have: "subjet"`,
				`want (one of): ["groups" "method" `, ` "subject"]`,
				"policy test: input is type-checked against the input schema that serve checks every local policy against (policy/input.schema.json"}},
		{"typo, no schema", TestOptions{NoSchema: true, Dirs: []string{policycmdtest.Fixture("typo")}}, nil, nil},
		{"typo, --schema without it", TestOptions{Schema: policycmdtest.Fixture("schemas", "input.json"), Dirs: []string{policycmdtest.Fixture("typo")}}, errPlain,
			[]string{"typo/authz.rego:4:", "rego_type_error", "input.identity.subjet", "checked against --schema " + policycmdtest.Fixture("schemas", "input.json")}},
		{"typo, --schema with it", TestOptions{Schema: subjet, Dirs: []string{policycmdtest.Fixture("typo")}}, nil, nil},
		{"the schema the others pass", TestOptions{Dirs: []string{policycmdtest.Fixture("plain"), policycmdtest.Fixture("bundle")}}, nil, nil},
		{"with input as anything", TestOptions{Dirs: []string{withInput}}, nil, nil},
		{"a test reads a misspelt field", TestOptions{Dirs: []string{testReads}}, errPlain,
			[]string{"test_reads/p_test.rego:3: rego_type_error: undefined ref: input.identity.usrname"}},
		{"a test reads a misspelt field, no schema", TestOptions{NoSchema: true, Dirs: []string{testReads}}, nil, nil},
		{"bundle", TestOptions{Dirs: []string{typoBundle}}, errPlain,
			[]string{"typo_bundle/authz.rego:4: rego_type_error: undefined ref: input.identity.usrname", `have: "usrname"`}},
		{"absent --schema", TestOptions{Schema: policycmdtest.Fixture("absent.json")}, errPlain, []string{"--schema", "absent.json"}},
		{"both --schema and --no-schema", TestOptions{Schema: subjet, NoSchema: true}, ErrUsage, []string{"--schema and --no-schema"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, _, err := runTest(t, tt.opts)
			wantErr(t, err, tt.wantErr, stdout)
			testcheck.Contains(t, "error", errText(err), tt.wantMsg...)
			if tt.wantErr != nil {
				testcheck.Lacks(t, "stdout", stdout, "PASS")
			}
		})
	}
}

// TestTestBundleDataSchema checks that a bundle's data is checked against
// its data schema, as serve checks it.
func TestTestBundleDataSchema(t *testing.T) {
	t.Parallel()
	// The fixture's data matches its schema.
	stdout, _, err := runTest(t, TestOptions{Dirs: []string{policycmdtest.Fixture("bundle")}})
	wantErr(t, err, nil, stdout)

	dir := t.TempDir()
	bundle := func(name, data, schema string) string {
		b := filepath.Join(dir, name)
		policycmdtest.WriteFile(t, b, ".manifest", `{"roots": ["registry"]}`)
		policycmdtest.WriteFile(t, b, "authz.rego", "package registry.authz\n\nallow contains \"pull\" if input.identity.subject in data.registry.admins\n")
		policycmdtest.WriteFile(t, b, "authz_test.rego", "package registry.authz_test\n\ntest_ok if true\n")
		policycmdtest.WriteFile(t, b, "data.json", data)
		if schema != "" {
			policycmdtest.WriteFile(t, b, "data.schema.json", schema)
		}
		return b
	}
	schema := `{"type": "object", "properties": {"registry": {"type": "object", "additionalProperties": false,
		"properties": {"admins": {"type": "array", "items": {"type": "string"}}}}}}`
	misspelt := bundle("misspelt", `{"registry": {"admns": ["root"]}}`, schema)
	mistyped := bundle("mistyped", `{"registry": {"admins": "root"}}`, schema)
	badSchema := bundle("bad_schema", `{"registry": {}}`, `{"type": 7}`)
	noSchema := bundle("no_schema", `{"registry": {"admns": ["root"]}}`, "")
	tests := []struct {
		name    string
		dirs    []string
		wantErr error
		wantMsg []string
	}{
		{"unknown key", []string{misspelt}, errPlain, []string{"bundle " + misspelt + `: data: registry.admns: unknown key (did you mean "admins"?)`}},
		{"wrong type", []string{mistyped}, errPlain, []string{"bundle " + mistyped + ": data: registry.admins: must be a list, not a string"}},
		{"invalid schema", []string{badSchema}, errPlain, []string{"bundle " + badSchema + ": data.schema.json: not a valid JSON schema"}},
		{"no schema, no check", []string{noSchema}, nil, nil},
		// Every DIR is checked, and nothing runs unless all pass.
		{"one of several", []string{noSchema, misspelt, mistyped}, errPlain, []string{"registry.admns", "registry.admins"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, _, err := runTest(t, TestOptions{Dirs: tt.dirs})
			wantErr(t, err, tt.wantErr, stdout)
			testcheck.Contains(t, "error", errText(err), tt.wantMsg...)
		})
	}
}

func TestTestSkippedAndErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	skip := filepath.Join(dir, "skip")
	policycmdtest.WriteFile(t, skip, "p_test.rego", "package p_test\n\ntest_ok if true\n\ntodo_test_later if false\n")
	conflict := filepath.Join(dir, "conflict")
	policycmdtest.WriteFile(t, conflict, "p_test.rego", "package p_test\n\nx := 1 if input.a\n\nx := 2 if input.a\n\ntest_conflict if x == 1 with input.a as true\n")

	// Like opa test, a skipped test fails the run unless ExitZeroOnSkipped.
	stdout, _, err := runTest(t, TestOptions{Dirs: []string{skip}})
	wantErr(t, err, ErrNotPassed, stdout)
	testcheck.Contains(t, "stdout", stdout, "todo_test_later: SKIPPED", "SKIPPED: 1/2")
	testcheck.Contains(t, "error", errText(err), "todo_test_later (SKIPPED)")
	stdout, _, err = runTest(t, TestOptions{ExitZeroOnSkipped: true, Dirs: []string{skip}})
	wantErr(t, err, nil, stdout)

	// (input.a is no field of the registry's input: no input type check.)
	stdout, _, err = runTest(t, TestOptions{NoSchema: true, Dirs: []string{conflict}})
	wantErr(t, err, ErrNotPassed, stdout)
	testcheck.Contains(t, "stdout", stdout, "test_conflict: ERROR", "eval_conflict_error", "ERROR: 1/1")
	testcheck.Contains(t, "error", errText(err), "test_conflict (ERROR)")

	// A directory without tests: nothing to report, no error.
	empty := filepath.Join(dir, "empty")
	policycmdtest.WriteFile(t, empty, "p.rego", "package p\n\nallow := true\n")
	stdout, stderr, err := runTest(t, TestOptions{Dirs: []string{empty}})
	wantErr(t, err, nil, stdout)
	testcheck.Contains(t, "stderr", stderr, "srht-registry: policy test: no tests found\n")
}

func TestTestVarValues(t *testing.T) {
	t.Parallel()
	stdout, _, err := runTest(t, TestOptions{VarValues: true, Dirs: []string{policycmdtest.Fixture("failing")}})
	wantErr(t, err, ErrNotPassed, stdout)
	// The failing expression, with the values of its variables.
	testcheck.Contains(t, "stdout", stdout, "test_failing_bob_pushes: FAIL",
		`"push" in authz.allow with input as {"identity": {"subject": "bob"}}`, "set()")
}

// TestTestOptionsChecked checks the options Test refuses, as the user's
// mistakes, before it loads anything.
func TestTestOptionsChecked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    TestOptions
		wantErr string
	}{
		{"bad format", TestOptions{Format: "xml"}, `policy test: --format must be pretty or json, not "xml"`},
		{"bad regex", TestOptions{Run: "("}, "policy test: --run: error parsing regexp"},
		{"threshold above 100", TestOptions{Threshold: 101}, "policy test: --threshold must be between 0 and 100"},
		{"negative threshold", TestOptions{Threshold: -1}, "policy test: --threshold must be between 0 and 100"},
		{"negative timeout", TestOptions{Timeout: -1}, "policy test: --timeout must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, _, err := runTest(t, tt.opts)
			wantErr(t, err, ErrUsage, stdout)
			testcheck.Contains(t, "error", errText(err), tt.wantErr)
			if stdout != "" {
				t.Errorf("stdout: %s", stdout)
			}
		})
	}
}

package app

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"git.sr.ht/~zozs/srht-registry/internal/policycmd/policycmdtest"
	"git.sr.ht/~zozs/srht-registry/internal/testcheck"
	"git.sr.ht/~zozs/srht-registry/policy"
)

// The command line of policy test, policy eval and policy schema: flags,
// exit codes, -h.
// What the commands do is tested in internal/policycmd.

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

// wantContains and wantLacks check the text a command printed or a server
// logged, for every test of the package: testcheck's checks, named as the
// package's other want helpers are.
var (
	wantContains = testcheck.Contains
	wantLacks    = testcheck.Lacks
)

// TestPolicyTestExitCodes checks the exit codes of policy test, as opa
// test's: 0 when every test passed, 2 when one did not (or coverage is
// below --threshold), 1 when the policy did not load or compile.
func TestPolicyTestExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	skip := filepath.Join(dir, "skip")
	policycmdtest.WriteFile(t, skip, "p_test.rego", "package p_test\n\ntest_ok if true\n\ntodo_test_later if false\n")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr []string
	}{
		{"embedded policy passes", nil, 0, nil},
		{"a test fails", []string{policycmdtest.Fixture("failing")}, 2,
			[]string{"srht-registry: policy test: 1 test did not pass: data.registry.authz_test.test_failing_bob_pushes (FAIL)\n"}},
		{"a test fails, json", []string{"--format", "json", policycmdtest.Fixture("failing")}, 2, []string{"test_failing_bob_pushes (FAIL)"}},
		{"a test fails, coverage", []string{"--coverage", policycmdtest.Fixture("failing")}, 2, []string{"test_failing_bob_pushes (FAIL)"}},
		{"below the threshold", []string{"--threshold", "100", "--no-schema", policycmdtest.Fixture("typo")}, 2, []string{"Code coverage threshold not met"}},
		{"a test is skipped", []string{skip}, 2, []string{"todo_test_later (SKIPPED)"}},
		{"a skipped test with -z", []string{"-z", skip}, 0, nil},
		{"compile error", []string{policycmdtest.Fixture("compile_error")}, 1, []string{"compile_error/authz.rego:5:"}},
		{"missing directory", []string{filepath.Join(dir, "absent")}, 1, []string{"absent"}},
		{"type error against --schema", []string{"--schema", policycmdtest.Fixture("schemas", "input.json"), policycmdtest.Fixture("typo")}, 1, []string{"rego_type_error"}},
		// The embedded input schema by default, as serve: a misspelt field
		// is a compile error, named with its file and line.
		{"type error against the embedded schema", []string{policycmdtest.Fixture("typo")}, 1,
			[]string{"typo/authz.rego:4: rego_type_error: undefined ref: input.identity.subjet", `have: "subjet"`, "policy/input.schema.json", "--no-schema"}},
		{"no type check with --no-schema", []string{"--no-schema", policycmdtest.Fixture("typo")}, 0, nil},
		{"the example bundles", []string{"../../bundles/conditions", "../../bundles/public-mirror", "../../bundles/sourcehut-default", "../../bundles/teams"}, 0, nil},
		{"no test ran", []string{"--run", "no_such_test"}, 0, []string{"no tests found"}},
		{"no test ran, --fail-on-empty", []string{"--run", "no_such_test", "--fail-on-empty"}, 1, []string{"no tests were run"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runPolicyCLI(t, append([]string{"policy", "test"}, tt.args...)...)
			wantCode(t, code, tt.wantCode, stdout, stderr)
			wantContains(t, "stderr", stderr, tt.wantStderr...)
		})
	}
}

// TestPolicyTestFlagsAnywhere checks that, as with opa test, flags may
// follow the directories.
func TestPolicyTestFlagsAnywhere(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runPolicyCLI(t, "policy", "test", policycmdtest.Fixture("plain"), "--verbose")
	wantCode(t, code, 0, stdout, stderr)
	if got := policycmdtest.TestLines(stdout); len(got) != 2 {
		t.Errorf("listed %v, want the two tests of plain/", got)
	}
	// After "--" everything is a directory, -v too.
	code, stdout, stderr = runPolicyCLI(t, "policy", "test", "-v", "--", policycmdtest.Fixture("plain"))
	wantCode(t, code, 0, stdout, stderr)
	if got := policycmdtest.TestLines(stdout); len(got) != 2 {
		t.Errorf("listed %v, want the two tests of plain/", got)
	}
	code, stdout, stderr = runPolicyCLI(t, "policy", "test", policycmdtest.Fixture("plain"), "--", "-v")
	wantCode(t, code, 1, stdout, stderr)
	wantContains(t, "stderr", stderr, "-v")
}

func TestPolicyTestUsage(t *testing.T) {
	t.Parallel()
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
		{"--schema and --no-schema", []string{"policy", "test", "--schema", "s.json", "--no-schema"}, 2, "--schema and --no-schema contradict"},
		{"help", []string{"policy", "test", "-h"}, 0, "on its own"},
		{"help on the schema", []string{"policy", "test", "-h"}, 0, "input.identity.usrname"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runPolicyCLI(t, tt.args...)
			wantCode(t, code, tt.wantCode, stdout, stderr)
			wantContains(t, "stderr", stderr, tt.wantStderr)
		})
	}
}

// TestPolicyEvalCommandLine checks that the flags of policy eval reach
// policycmd.Eval, with the config and serve's policy compiler, and the
// exit codes of its errors.
func TestPolicyEvalCommandLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	// policycmd's TestEval evaluates the same config: what the cases get
	// follows from its users, groups and policy data.
	writeFile(t, cfg, policycmdtest.EvalConfig(t, dir))
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantRow    []string // the fields of one line of the table
		wantStderr []string
	}{
		{name: "own namespace", args: []string{"--user", "alice", "--scope", "repository:alice/app:pull,push"},
			wantStdout: []string{"policy revision: embedded"}, wantRow: []string{"repository:alice/app", "pull,push", "pull,push", "-"}},
		{name: "groups from the flag", args: []string{"--user", "carol", "--groups", " ci,, ", "--scope", "repository:team/app:pull"},
			wantStdout: []string{"groups=[ci]"}, wantRow: []string{"repository:team/app", "pull", "pull", "-"}},
		{name: "no groups from the flag", args: []string{"--user", "bob", "--groups", "", "--scope", "repository:team/app:pull"},
			wantStdout: []string{"groups=[]"}, wantRow: []string{"repository:team/app", "pull", "-", "-"}},
		{name: "repeated scopes", args: []string{"--scope", "repository:library/base:pull", "--scope", "repository:other/base:pull"},
			wantRow: []string{"repository:other/base", "pull", "-", "-"}},
		{name: "explain", args: []string{"--user", "alice", "--scope", "repository:alice/app:push", "--explain"},
			wantStdout: []string{"rules that fired:"}},
		{name: "explain full", args: []string{"--user", "alice", "--scope", "repository:alice/app:push", "--explain=full"},
			wantStdout: []string{"trace:", "Enter data.registry.authz.allow"}},
		{name: "json", args: []string{"--user", "alice", "--client-ip", "203.0.113.9", "--client-id", "docker", "--user-agent", "ua",
			"--time", "2024-05-01T12:00:00Z", "--format", "json", "--scope", "repository:alice/app:pull"},
			wantStdout: []string{`"client_ip": "203.0.113.9"`, `"client_id": "docker"`, `"user_agent": "ua"`, `"time": "2024-05-01T12:00:00Z"`}},

		// Exit 1: the server would refuse the login.
		{name: "sourcehut without the registry grant", args: []string{"--user", "carol", "--method", "sourcehut", "--grants", "meta.sr.ht/PROFILE:RO", "--scope", "repository:carol/app:pull"},
			wantCode: 1, wantStderr: []string{"would refuse this token at login"}},
		{name: "Sourcehut user not allowed to log in", args: []string{"--user", "mallory", "--provider", "sourcehut", "--scope", "repository:mallory/app:pull"},
			wantCode: 1, wantStderr: []string{`authn.sourcehut.users does not let "mallory" in`}},

		// Exit 2: the user's mistakes.
		{name: "provider and method disagree", args: []string{"--user", "alice", "--provider", "sourcehut", "--method", "password", "--scope", "repository:a/b:pull"},
			wantCode: 2, wantStderr: []string{"--provider sourcehut does not log in with --method password"}},
		{name: "refreshed anonymous", args: []string{"--refreshed", "--scope", "repository:library/base:pull"}, wantCode: 2, wantStderr: []string{"--refreshed"}},
		{name: "anonymous with groups", args: []string{"--groups", "", "--scope", "repository:library/base:pull"}, wantCode: 2, wantStderr: []string{"--groups"}},
		{name: "no scope", args: []string{"--user", "alice"}, wantCode: 2, wantStderr: []string{"--scope"}},
		{name: "bad scope", args: []string{"--user", "alice", "--scope", "repository:alice"}, wantCode: 2, wantStderr: []string{"invalid scope"}},
		{name: "bad method", args: []string{"--user", "alice", "--method", "kerberos", "--scope", "repository:a/b:pull"}, wantCode: 2, wantStderr: []string{"--method"}},
		{name: "bad grants", args: []string{"--user", "carol", "--method", "sourcehut", "--grants", "!!!", "--scope", "repository:a/b:pull"}, wantCode: 2, wantStderr: []string{"--grants"}},
		{name: "grants without sourcehut", args: []string{"--user", "alice", "--grants", "all", "--scope", "repository:a/b:pull"}, wantCode: 2, wantStderr: []string{"--grants is for --method sourcehut"}},
		{name: "unknown service", args: []string{"--service", "other.example.com", "--scope", "repository:a/b:pull"}, wantCode: 2, wantStderr: []string{"other.example.com"}},
		{name: "bad time", args: []string{"--time", "noon", "--scope", "repository:a/b:pull"}, wantCode: 2, wantStderr: []string{"--time"}},
		{name: "bad format", args: []string{"--format", "yaml", "--scope", "repository:a/b:pull"}, wantCode: 2, wantStderr: []string{"--format must be text or json"}},
		{name: "bad explain", args: []string{"--explain=some", "--scope", "repository:a/b:pull"}, wantCode: 2, wantStderr: []string{"want --explain or --explain=full"}},
		{name: "stray argument", args: []string{"--scope", "repository:a/b:pull", "extra"}, wantCode: 2, wantStderr: []string{"unexpected arguments: extra"}},
		{name: "help", args: []string{"-h"}, wantStderr: []string{"usage: srht-registry policy eval", "-scope SCOPE", "-explain", "-expect ACTIONS", "Exit 0"}},

		// --expect: exit 0 when met, 2 when not, after the output.
		{name: "expect met", args: []string{"--user", "bob", "--scope", "repository:team/app:pull,push", "--expect", "pull"},
			wantRow: []string{"repository:team/app", "pull,push", "pull", "pull", "(ok)", "-"}},
		{name: "expect per scope met", args: []string{"--user", "bob", "--scope", "repository:team/app:pull,push", "--expect", "pull",
			"--scope", "repository:alice/app:pull", "--expect", "none"},
			wantRow: []string{"repository:alice/app", "pull", "-", "-", "(ok)", "-"}},
		{name: "expect not met", args: []string{"--user", "bob", "--scope", "repository:team/app:pull,push", "--expect", "pull,push"},
			wantCode: 2, wantRow: []string{"repository:team/app", "pull,push", "pull", "pull,push", "(MISMATCH)", "-"},
			wantStderr: []string{"srht-registry: policy eval: 1 of 1 scope not granted as expected: repository:team/app: expected pull,push, granted pull\n"}},
		{name: "expect not met, json", args: []string{"--format", "json", "--user", "bob", "--scope", "repository:team/app:pull", "--expect", ""},
			wantCode: 2, wantStdout: []string{`"as_expected": false`}, wantStderr: []string{"repository:team/app: expected nothing, granted pull"}},
		{name: "expect an action not requested", args: []string{"--scope", "repository:a/b:pull", "--expect", "push"},
			wantCode: 2, wantStderr: []string{"push is not requested on repository:a/b"}},
		{name: "expect too many", args: []string{"--scope", "repository:a/b:pull", "--expect", "pull", "--expect", "pull"},
			wantCode: 2, wantStderr: []string{"2 --expect for 1 scope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := run(t, "", append([]string{"policy", "eval", "--config", cfg}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			wantContains(t, "stdout", stdout, tt.wantStdout...)
			if tt.wantRow != nil && !policycmdtest.HasRow(stdout, tt.wantRow) {
				t.Errorf("no line %q in:\n%s", tt.wantRow, stdout)
			}
			wantContains(t, "stderr", stderr, tt.wantStderr...)
		})
	}

	// What does not need the config is reported before a problem with it.
	code, stdout, stderr := run(t, "", "policy", "eval", "--config", filepath.Join(dir, "absent.yaml"), "--format", "yaml", "--scope", "repository:a/b:pull")
	wantCode(t, code, 2, stdout, stderr)
	wantContains(t, "stderr", stderr, "--format")
	code, stdout, stderr = run(t, "", "policy", "eval", "--config", filepath.Join(dir, "absent.yaml"), "--scope", "repository:a/b:pull")
	wantCode(t, code, 2, stdout, stderr)
	wantContains(t, "stderr", stderr, "absent.yaml")
}

// TestPolicyEvalBundleConfig checks that policy eval compiles the bundles
// of the config as serve does.
func TestPolicyEvalBundleConfig(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	bundle, err := filepath.Abs("../../bundles/conditions")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg, "policy:\n  bundles: ["+bundle+"]\n")
	code, stdout, stderr := run(t, "", "policy", "eval", "--config", cfg, "--format", "json", "--user", "alice", "--scope", "repository:alice/app:pull")
	wantCode(t, code, 0, stdout, stderr)
	var out struct {
		Revision string `json:"revision"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if out.Revision == "embedded" || out.Revision == "" {
		t.Errorf("revision %q, want the bundle's", out.Revision)
	}
}

// TestPolicySchema checks that policy schema prints the embedded schemas,
// byte for byte.
func TestPolicySchema(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want []byte
	}{
		{nil, policy.InputSchema()},
		{[]string{"--data"}, policy.DataSchema()},
	} {
		code, stdout, stderr := runPolicyCLI(t, append([]string{"policy", "schema"}, tt.args...)...)
		wantCode(t, code, 0, stdout, stderr)
		if stdout != string(tt.want) {
			t.Errorf("%v: not the embedded schema:\n%s", tt.args, stdout)
		}
		if !json.Valid([]byte(stdout)) {
			t.Errorf("%v: not JSON", tt.args)
		}
		if stderr != "" {
			t.Errorf("%v: stderr: %s", tt.args, stderr)
		}
	}
	code, stdout, stderr := runPolicyCLI(t, "policy", "schema", "input")
	wantCode(t, code, 2, stdout, stderr)
	code, stdout, stderr = runPolicyCLI(t, "policy", "schema", "-h")
	wantCode(t, code, 0, stdout, stderr)
	wantContains(t, "stderr", stderr, "usage: srht-registry policy schema [--data]", "policy/input.schema.json")
	code, stdout, stderr = runPolicyCLI(t, "policy", "help")
	wantCode(t, code, 0, stdout, stderr)
	wantContains(t, "stdout", stdout, "schema [--data]")
}

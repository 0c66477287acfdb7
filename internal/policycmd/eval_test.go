package policycmd

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"

	"git.sr.ht/~zozs/srht-registry/internal/authz"
	"git.sr.ht/~zozs/srht-registry/internal/config"
	"git.sr.ht/~zozs/srht-registry/internal/policycmd/policycmdtest"
	"git.sr.ht/~zozs/srht-registry/internal/testcheck"
)

// compile compiles the local policy as internal/app's compilePolicy does,
// which the command line passes as EvalOptions.Compile.
func compile(ctx context.Context, p config.Policy) (*authz.Engine, error) {
	return authz.Compile(ctx, authz.LocalPolicy(p.Data, p.Bundles, p.Query, p.Timeout.D()))
}

// parseConfig parses a config file's YAML.
func parseConfig(t *testing.T, yaml string) config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runEval runs Eval with opts as the command line's defaults complete
// them: the text format, client IP 127.0.0.1 and the policy compiler.
func runEval(t *testing.T, cfg config.Config, opts EvalOptions) (stdout string, err error) {
	t.Helper()
	if opts.Format == "" {
		opts.Format = "text"
	}
	if opts.ClientIP == "" {
		opts.ClientIP = "127.0.0.1"
	}
	if opts.Compile == nil {
		opts.Compile = compile
	}
	var out strings.Builder
	err = Eval(context.Background(), cfg, opts, &out)
	return out.String(), err
}

func TestEval(t *testing.T) {
	t.Parallel()
	// What the cases get follows from the users, groups and policy data of
	// EvalConfig.
	cfg := parseConfig(t, policycmdtest.EvalConfig(t, t.TempDir()))
	scopes := func(s ...string) []string { return s }
	tests := []struct {
		name       string
		opts       EvalOptions
		wantErr    error // nil, ErrUsage or errPlain
		wantStdout []string
		wantRow    []string // the fields of one line of the table
		wantErrMsg []string
	}{
		{name: "own namespace", opts: EvalOptions{User: "alice", Scopes: scopes("repository:alice/app:pull,push")},
			wantStdout: []string{"policy revision: embedded"}, wantRow: []string{"repository:alice/app", "pull,push", "pull,push", "-"}},
		{name: "groups from the config", opts: EvalOptions{User: "bob", Scopes: scopes("repository:team/app:pull,push")},
			wantStdout: []string{"groups=[ci]"}, wantRow: []string{"repository:team/app", "pull,push", "pull", "-"}},
		{name: "groups given", opts: EvalOptions{User: "carol", Groups: []string{"ci"}, Scopes: scopes("repository:team/app:pull")},
			wantStdout: []string{"groups=[ci]"}, wantRow: []string{"repository:team/app", "pull", "pull", "-"}},
		{name: "no groups given", opts: EvalOptions{User: "bob", Groups: []string{}, Scopes: scopes("repository:team/app:pull")},
			wantStdout: []string{"groups=[]"}, wantRow: []string{"repository:team/app", "pull", "-", "-"}},
		{name: "anonymous public pull", opts: EvalOptions{Scopes: scopes("repository:library/base:pull,push")},
			wantStdout: []string{`method=anonymous provider=- subject=""`}, wantRow: []string{"repository:library/base", "pull,push", "pull", "-"}},
		{name: "admin catalog", opts: EvalOptions{User: "root", Scopes: scopes("registry:catalog:*")},
			wantRow: []string{"registry:catalog", "*", "*", "-"}},
		{name: "explain", opts: EvalOptions{User: "alice", Scopes: scopes("repository:alice/app:push"), Explain: ExplainFired},
			wantStdout: []string{"rules that fired:", "authz.rego:", "granted contains action if {", "allow contains action if {"}},
		{name: "explain full", opts: EvalOptions{User: "alice", Scopes: scopes("repository:alice/app:push"), Explain: ExplainFull},
			wantStdout: []string{"trace:", "Enter data.registry.authz.allow"}},
		{name: "sourcehut without the registry grant", opts: EvalOptions{User: "carol", Method: "sourcehut", Grants: "meta.sr.ht/PROFILE:RO", Scopes: scopes("repository:carol/app:pull")},
			wantErr: errPlain, wantErrMsg: []string{"would refuse this token at login"}},
		// htpasswd:alice and sourcehut:alice are different people: the
		// Sourcehut one owns nothing (the local account holds alice/*),
		// and is not in the ACL that names htpasswd:alice.
		{name: "password user by provider", opts: EvalOptions{User: "alice", Provider: "htpasswd", Scopes: scopes("repository:alice/app:pull,push", "repository:team/app:push")},
			wantStdout: []string{`method=password provider=htpasswd subject="alice" namespace="alice"`},
			wantRow:    []string{"repository:team/app", "push", "push", "-"}},
		{name: "Sourcehut user named like a local account", opts: EvalOptions{User: "alice", Provider: "sourcehut", Scopes: scopes("repository:alice/app:pull,push", "repository:team/app:push")},
			wantStdout: []string{`method=sourcehut provider=sourcehut subject="alice" namespace=""`},
			wantRow:    []string{"repository:alice/app", "pull,push", "-", "-"}},
		{name: "Sourcehut user named like the admin", opts: EvalOptions{User: "root", Provider: "sourcehut", Scopes: scopes("registry:catalog:*")},
			wantStdout: []string{"groups=[]"}, wantRow: []string{"registry:catalog", "*", "-", "-"}},
		{name: "Sourcehut user in a group by principal", opts: EvalOptions{User: "carol", Provider: "sourcehut", Scopes: scopes("repository:team/app:pull", "repository:carol/app:push")},
			wantStdout: []string{"groups=[ci]", `namespace="carol"`}, wantRow: []string{"repository:carol/app", "push", "push", "-"}},
		{name: "Sourcehut user not allowed to log in", opts: EvalOptions{User: "mallory", Provider: "sourcehut", Scopes: scopes("repository:mallory/app:pull")},
			wantErr: errPlain, wantErrMsg: []string{`authn.sourcehut.users does not let "mallory" in`}},
		{name: "provider and method disagree", opts: EvalOptions{User: "alice", Provider: "sourcehut", Method: "password", Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"--provider sourcehut does not log in with --method password"}},
		{name: "refreshed password login", opts: EvalOptions{User: "alice", Refreshed: true, Scopes: scopes("repository:alice/app:pull,push")},
			wantStdout: []string{"method=refresh refreshed_from=password"}, wantRow: []string{"repository:alice/app", "pull,push", "pull,push", "-"}},
		{name: "refreshed read-only Sourcehut token", opts: EvalOptions{User: "carol", Method: "sourcehut", Grants: "registry.example.com/REGISTRY:RO",
			Refreshed: true, Scopes: scopes("repository:carol/app:pull,push")},
			wantStdout: []string{"method=refresh refreshed_from=sourcehut provider=sourcehut"}, wantRow: []string{"repository:carol/app", "pull,push", "pull", "-"}},
		{name: "refreshed anonymous", opts: EvalOptions{Refreshed: true, Scopes: scopes("repository:library/base:pull")}, wantErr: ErrUsage, wantErrMsg: []string{"--refreshed"}},
		{name: "anonymous with groups", opts: EvalOptions{Groups: []string{}, Scopes: scopes("repository:library/base:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"--method anonymous takes no --user, --provider or --groups"}},
		{name: "password without a user", opts: EvalOptions{Method: "password", Scopes: scopes("repository:a/b:pull")}, wantErr: ErrUsage, wantErrMsg: []string{"--method password needs --user"}},
		{name: "no scope", opts: EvalOptions{User: "alice"}, wantErr: ErrUsage, wantErrMsg: []string{"--scope"}},
		{name: "bad scope", opts: EvalOptions{User: "alice", Scopes: scopes("repository:alice")}, wantErr: ErrUsage, wantErrMsg: []string{"invalid scope"}},
		{name: "bad method", opts: EvalOptions{User: "alice", Method: "kerberos", Scopes: scopes("repository:a/b:pull")}, wantErr: ErrUsage, wantErrMsg: []string{"--method"}},
		{name: "bad grants", opts: EvalOptions{User: "carol", Method: "sourcehut", Grants: "!!!", Scopes: scopes("repository:a/b:pull")}, wantErr: ErrUsage, wantErrMsg: []string{"--grants: "}},
		{name: "grants without sourcehut", opts: EvalOptions{User: "alice", Grants: "all", Scopes: scopes("repository:a/b:pull")}, wantErr: ErrUsage, wantErrMsg: []string{"--grants is for --method sourcehut"}},
		{name: "unknown service", opts: EvalOptions{Service: "other.example.com", Scopes: scopes("repository:a/b:pull")}, wantErr: ErrUsage, wantErrMsg: []string{"other.example.com"}},
		{name: "bad format", opts: EvalOptions{Format: "yaml", Scopes: scopes("repository:a/b:pull")}, wantErr: ErrUsage, wantErrMsg: []string{`--format must be text or json, got "yaml"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, err := runEval(t, cfg, tt.opts)
			wantErr(t, err, tt.wantErr, stdout)
			testcheck.Contains(t, "stdout", stdout, tt.wantStdout...)
			if tt.wantRow != nil && !policycmdtest.HasRow(stdout, tt.wantRow) {
				t.Errorf("no line %q in:\n%s", tt.wantRow, stdout)
			}
			testcheck.Contains(t, "error", errText(err), tt.wantErrMsg...)
		})
	}
}

func TestEvalJSON(t *testing.T) {
	t.Parallel()
	cfg := parseConfig(t, "authn:\n  sourcehut:\n    users: [\"*\"]\n")
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	stdout, err := runEval(t, cfg, EvalOptions{Format: "json", User: "alice", Method: "sourcehut", Grants: "registry.example.com/REGISTRY:RO",
		ClientID: "docker", UserAgent: "ua", Time: at, Scopes: []string{"repository:alice/app:pull,push", "repository:bob/app:pull"}})
	wantErr(t, err, nil, stdout)
	var out struct {
		Revision string `json:"revision"`
		Identity struct {
			Method    string `json:"method"`
			Provider  string `json:"provider"`
			Namespace string `json:"namespace"`
			Sourcehut struct {
				Access  string    `json:"access"`
				Expires time.Time `json:"expires"`
			} `json:"sourcehut"`
		} `json:"identity"`
		Request   map[string]string `json:"request"`
		Decisions []decision        `json:"decisions"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if out.Revision != "embedded" || out.Identity.Method != "sourcehut" || out.Identity.Provider != "sourcehut" ||
		out.Identity.Namespace != "alice" || out.Identity.Sourcehut.Access != "RO" {
		t.Errorf("header: %+v", out)
	}
	// The token lives an hour from the request's time.
	if !out.Identity.Sourcehut.Expires.Equal(at.Add(time.Hour)) {
		t.Errorf("expires %v, want an hour after %v", out.Identity.Sourcehut.Expires, at)
	}
	wantRequest := map[string]string{"service": "registry.example.com", "client_ip": "127.0.0.1", "client_id": "docker", "user_agent": "ua", "time": "2024-05-01T12:00:00Z"}
	for k, v := range wantRequest {
		if out.Request[k] != v {
			t.Errorf("request.%s = %q, want %q", k, out.Request[k], v)
		}
	}
	if len(out.Decisions) != 2 {
		t.Fatalf("decisions: %+v", out.Decisions)
	}
	// A read-only token is capped to pull in its own namespace.
	if d := out.Decisions[0]; d.Scope != "repository:alice/app" || !slices.Equal(d.Granted, []string{"pull"}) || !slices.Equal(d.Requested, []string{"pull", "push"}) {
		t.Errorf("own repo: %+v", d)
	}
	if d := out.Decisions[1]; len(d.Granted) != 0 {
		t.Errorf("foreign repo: %+v", d)
	}
}

// TestEvalBundle evaluates an example bundle, whose deny messages and
// input.request conditions show through.
func TestEvalBundle(t *testing.T) {
	t.Parallel()
	bundle, err := filepath.Abs("../../bundles/conditions")
	if err != nil {
		t.Fatal(err)
	}
	cfg := parseConfig(t, "policy:\n  bundles: ["+bundle+"]\n")
	stdout, err := runEval(t, cfg, EvalOptions{Format: "json", User: "alice", ClientIP: "203.0.113.9", Scopes: []string{"repository:alice/app:pull,push"}})
	wantErr(t, err, nil, stdout)
	var out struct {
		Revision  string     `json:"revision"`
		Decisions []decision `json:"decisions"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.Revision == "embedded" || out.Revision == "" {
		t.Errorf("revision %q, want the bundle's", out.Revision)
	}
	if len(out.Decisions) != 1 || slices.Contains(out.Decisions[0].Granted, "push") {
		t.Fatalf("a push from outside the push networks was granted: %+v", out.Decisions)
	}
}

// TestEvalTarball loads a bundle from a .tar.gz, as `opa build -b` writes
// it.
func TestEvalTarball(t *testing.T) {
	t.Parallel()
	b, err := loader.NewFileLoader().AsBundle("../../bundles/teams")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tarball := filepath.Join(dir, "teams.tar.gz")
	f, err := os.Create(tarball)
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.NewWriter(f).Write(*b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := parseConfig(t, "policy:\n  bundles: ["+tarball+"]\n")
	stdout, err := runEval(t, cfg, EvalOptions{User: "alice", Scopes: []string{"repository:alice/app:pull,push"}})
	wantErr(t, err, nil, stdout)
	if !strings.Contains(stdout, "policy revision: "+b.Manifest.Revision) || !policycmdtest.HasRow(stdout, []string{"repository:alice/app", "pull,push", "pull,push", "-"}) {
		t.Errorf("unexpected output:\n%s", stdout)
	}
}

// TestEvalNeedsACompiler checks that a local policy without Compile is an
// error, not a crash.
func TestEvalNeedsACompiler(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	err := Eval(context.Background(), config.Default(), EvalOptions{Format: "text", Scopes: []string{"repository:a/b:pull"}}, &out)
	wantErr(t, err, errPlain, out.String())
	testcheck.Contains(t, "error", errText(err), "EvalOptions.Compile")
}

// TestFiredRules checks that the rules that fired are listed once each,
// in order, by their source line.
func TestFiredRules(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	stdout, err := runEval(t, cfg, EvalOptions{User: "alice", Explain: ExplainFired, Scopes: []string{"repository:alice/app:push"}})
	wantErr(t, err, nil, stdout)
	_, fired, ok := strings.Cut(stdout, "rules that fired:\n")
	if !ok {
		t.Fatalf("no rules that fired in:\n%s", stdout)
	}
	seen := map[string]bool{}
	for line := range strings.Lines(fired) {
		if seen[line] {
			t.Errorf("%q listed twice", line)
		}
		seen[line] = true
		if !firedLine.MatchString(line) {
			t.Errorf("%q is not FILE:LINE: source", line)
		}
		if strings.Contains(line, "__local") {
			t.Errorf("%q shows a compiled head, not the source", line)
		}
	}
	// A default rule's source line is shown whole, "default" included.
	if !regexp.MustCompile(`(?m)^  authz\.rego:\d+: default \w+ := `).MatchString(fired) {
		t.Errorf("no default rule in:\n%s", fired)
	}
}

var firedLine = regexp.MustCompile(`^  authz\.rego:\d+: \S.*\n$`)

// TestEvalExpect checks --expect: one expectation for every scope, or one
// per scope in order; met, not met (an error marked ErrNotPassed, after
// the output), or impossible (the user's mistake).
func TestEvalExpect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := parseConfig(t, policycmdtest.EvalConfig(t, dir))
	// A policy whose evaluation fails on a scope whose name is no number.
	failing := filepath.Join(dir, "failing")
	policycmdtest.WriteFile(t, failing, ".manifest", `{"roots": ["registry"]}`)
	policycmdtest.WriteFile(t, failing, "authz.rego", "package registry.authz\n\nallow contains \"pull\" if to_number(input.scope.name) > 0\n")
	failingCfg := parseConfig(t, "policy:\n  bundles: ["+failing+"]\n")
	conditions, err := filepath.Abs("../../bundles/conditions")
	if err != nil {
		t.Fatal(err)
	}
	conditionsCfg := parseConfig(t, "policy:\n  bundles: ["+conditions+"]\n")
	scopes := func(s ...string) []string { return s }
	tests := []struct {
		name       string
		cfg        *config.Config // nil: EvalConfig's
		opts       EvalOptions
		wantErr    error
		wantRows   [][]string
		wantErrMsg []string
	}{
		{name: "one for every scope, met", opts: EvalOptions{User: "bob", Expect: []string{"pull"},
			Scopes: scopes("repository:team/app:pull,push", "repository:library/base:pull")},
			wantRows: [][]string{{"SCOPE", "REQUESTED", "GRANTED", "EXPECTED", "DENY"},
				{"repository:team/app", "pull,push", "pull", "pull", "(ok)", "-"}, {"repository:library/base", "pull", "pull", "pull", "(ok)", "-"}}},
		{name: "one per scope, met", opts: EvalOptions{User: "alice", Expect: []string{" push , pull", "none", ""},
			Scopes: scopes("repository:alice/app:pull,push", "repository:bob/app:pull", "repository:carol/app:push")},
			wantRows: [][]string{{"repository:alice/app", "pull,push", "pull,push", "pull,push", "(ok)", "-"},
				{"repository:bob/app", "pull", "-", "-", "(ok)", "-"}, {"repository:carol/app", "push", "-", "-", "(ok)", "-"}}},
		{name: "wildcard", opts: EvalOptions{User: "root", Groups: []string{"admins"}, Expect: []string{"*"}, Scopes: scopes("registry:catalog:*")},
			wantRows: [][]string{{"registry:catalog", "*", "*", "*", "(ok)", "-"}}},
		{name: "granted more", opts: EvalOptions{User: "alice", Expect: []string{"pull"}, Scopes: scopes("repository:alice/app:pull,push")},
			wantErr:    ErrNotPassed,
			wantRows:   [][]string{{"repository:alice/app", "pull,push", "pull,push", "pull", "(MISMATCH)", "-"}},
			wantErrMsg: []string{"policy eval: 1 of 1 scope not granted as expected: repository:alice/app: expected pull, granted pull,push"}},
		{name: "one of two per scope not met", opts: EvalOptions{User: "bob", Expect: []string{"pull", "pull,push"},
			Scopes: scopes("repository:library/base:pull", "repository:team/app:pull,push")},
			wantErr:    ErrNotPassed,
			wantRows:   [][]string{{"repository:library/base", "pull", "pull", "pull", "(ok)", "-"}, {"repository:team/app", "pull,push", "pull", "pull,push", "(MISMATCH)", "-"}},
			wantErrMsg: []string{"policy eval: 1 of 2 scopes not granted as expected: repository:team/app: expected pull,push, granted pull"}},
		{name: "expected nothing", opts: EvalOptions{User: "alice", Expect: []string{"none"}, Scopes: scopes("repository:alice/app:pull")},
			wantErr: ErrNotPassed, wantErrMsg: []string{"repository:alice/app: expected nothing, granted pull"}},
		{name: "denied", cfg: &conditionsCfg, opts: EvalOptions{User: "alice", ClientIP: "203.0.113.9", Expect: []string{"pull,push"}, Scopes: scopes("repository:alice/app:pull,push")},
			wantErr: ErrNotPassed, wantErrMsg: []string{"repository:alice/app: expected pull,push, granted nothing (deny: push refused: client IP 203.0.113.9"}},
		// An evaluation that fails grants nothing, but is never as expected.
		{name: "evaluation error", cfg: &failingCfg, opts: EvalOptions{Expect: []string{"none"}, Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrNotPassed, wantErrMsg: []string{"repository:a/b: expected nothing, but the evaluation failed: ", "to_number"}},
		{name: "scopes merged", opts: EvalOptions{User: "alice", Expect: []string{"pull", "push"}, Scopes: scopes("repository:alice/app:pull", "repository:alice/app:push")},
			wantErr: ErrUsage, wantErrMsg: []string{"policy eval: 2 --expect for 1 scope (scopes naming the same resource count once): give one for every scope, or one per scope in order"}},
		{name: "too few", opts: EvalOptions{User: "alice", Expect: []string{"pull", "pull"}, Scopes: scopes("repository:a/b:pull", "repository:c/d:pull", "repository:e/f:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"policy eval: 2 --expect for 3 scopes: "}},
		{name: "not requested", opts: EvalOptions{User: "alice", Expect: []string{"pull,push"}, Scopes: scopes("repository:alice/app:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{`policy eval: --expect "pull,push": push is not requested on repository:alice/app`}},
		{name: "none and more", opts: EvalOptions{User: "alice", Expect: []string{"none,pull"}, Scopes: scopes("repository:alice/app:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{`--expect "none,pull": none stands alone`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := cfg
			if tt.cfg != nil {
				c = *tt.cfg
			}
			stdout, err := runEval(t, c, tt.opts)
			wantErr(t, err, tt.wantErr, stdout)
			for _, row := range tt.wantRows {
				if !policycmdtest.HasRow(stdout, row) {
					t.Errorf("no line %q in:\n%s", row, stdout)
				}
			}
			testcheck.Contains(t, "error", errText(err), tt.wantErrMsg...)
			if errors.Is(tt.wantErr, ErrNotPassed) && !strings.Contains(stdout, "SCOPE") {
				t.Errorf("no table before the error:\n%s", stdout)
			}
			if errors.Is(tt.wantErr, ErrUsage) {
				if stdout != "" {
					t.Errorf("stdout: %s", stdout)
				}
				// Found before the config is needed.
				if err := tt.opts.Validate(); !errors.Is(err, ErrUsage) {
					t.Errorf("Validate: %v, want a usage error", err)
				}
			}
		})
	}
}

// TestEvalExpectJSON checks the expectations in the json format: there
// with --expect only, and the output is whole when one is not met.
func TestEvalExpectJSON(t *testing.T) {
	t.Parallel()
	cfg := parseConfig(t, policycmdtest.EvalConfig(t, t.TempDir()))
	type out struct {
		Decisions []decision `json:"decisions"`
	}
	decode := func(stdout string) out {
		t.Helper()
		var o out
		if err := json.Unmarshal([]byte(stdout), &o); err != nil {
			t.Fatalf("%v\n%s", err, stdout)
		}
		return o
	}
	scopes := []string{"repository:alice/app:pull,push", "repository:bob/app:pull"}

	stdout, err := runEval(t, cfg, EvalOptions{Format: "json", User: "alice", Scopes: scopes})
	wantErr(t, err, nil, stdout)
	testcheck.Lacks(t, "stdout", stdout, `"expected"`, `"as_expected"`)

	stdout, err = runEval(t, cfg, EvalOptions{Format: "json", User: "alice", Expect: []string{"push,pull", "none"}, Scopes: scopes})
	wantErr(t, err, nil, stdout)
	o := decode(stdout)
	if len(o.Decisions) != 2 {
		t.Fatalf("decisions: %+v", o.Decisions)
	}
	for i, want := range [][]string{{"pull", "push"}, {}} {
		d := o.Decisions[i]
		if d.Expected == nil || !slices.Equal(*d.Expected, want) || d.AsExpected == nil || !*d.AsExpected {
			t.Errorf("%s: expected %v, as_expected %v; want %v, true", d.Scope, d.Expected, d.AsExpected, want)
		}
	}
	// Nothing expected is [], not left out.
	testcheck.Contains(t, "stdout", stdout, `"expected": []`)

	stdout, err = runEval(t, cfg, EvalOptions{Format: "json", User: "alice", Expect: []string{"pull"}, Scopes: scopes})
	wantErr(t, err, ErrNotPassed, stdout)
	testcheck.Contains(t, "error", errText(err), "policy eval: 2 of 2 scopes not granted as expected: repository:alice/app: expected pull, granted pull,push; repository:bob/app: expected pull, granted nothing")
	o = decode(stdout)
	if len(o.Decisions) != 2 || *o.Decisions[0].AsExpected || *o.Decisions[1].AsExpected {
		t.Errorf("decisions: %+v", o.Decisions)
	}
}

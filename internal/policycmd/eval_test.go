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
			wantStdout: []string{"rules that fired:", "authz.rego:", "caller_own_grants := [{\"prefix\": own_grant.prefix", "allow contains action if {"}},
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
			wantErr: ErrUsage, wantErrMsg: []string{"--method anonymous takes no --user, --provider, --claims or --groups"}},
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

// oidcEvalConfig is a config with two trusted issuers, github (GitHub
// Actions) and k8s (a cluster), a claim rule for each, and a group and a
// namespace ACL naming an OIDC principal.
const oidcEvalConfig = `authn:
  oidc:
    - {name: github, issuer: "https://token.actions.githubusercontent.com"}
    - {name: k8s, issuer: "https://k8s.example.com", subject_claim: sub}
groups:
  ci: ["github:repo:octo-org/tools:ref:refs/heads/main"]
policy:
  data:
    namespaces:
      shared: {push: ["group:ci"]}
    oidc:
      - provider: github
        claims: {repository_owner: octo-org, repository_owner_id: "123456", ref: ["refs/heads/main", "refs/tags/v*"]}
        repositories: ["{repository}", "{repository}/*"]
        actions: [pull, push]
      - provider: k8s
        claims:
          kubernetes.io: {namespace: ci, serviceaccount: {name: builder}}
        repositories: ["base/*"]
        actions: [pull]
`

// githubClaims is the claims file of a GitHub Actions job of repo (owner
// id ownerID) on ref, with the changes given (a nil value drops a claim).
func githubClaims(t *testing.T, repo, ownerID, ref string, changes map[string]any) string {
	t.Helper()
	owner, _, _ := strings.Cut(repo, "/")
	claims := map[string]any{
		"iss": "https://token.actions.githubusercontent.com", "aud": "registry.example.com",
		"sub": "repo:" + repo + ":ref:" + ref, "repository": repo, "repository_owner": owner,
		"repository_owner_id": ownerID, "repository_id": "42", "ref": ref, "ref_type": "branch",
		"event_name": "push", "runner_environment": "github-hosted", "iat": 1764504000, "exp": 1764504300,
	}
	for k, v := range changes {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return writeClaims(t, string(b))
}

// writeClaims writes a claims file of the given content.
func writeClaims(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	policycmdtest.WriteFile(t, dir, "claims.json", content)
	return filepath.Join(dir, "claims.json")
}

// TestEvalOIDC checks --claims: the request is judged as an OIDC login of
// the provider, its subject and claims from the file, its issuer from the
// config, and what claim rules, groups and ACLs say of it.
func TestEvalOIDC(t *testing.T) {
	t.Parallel()
	cfg := parseConfig(t, oidcEvalConfig)
	main := githubClaims(t, "octo-org/app", "123456", "refs/heads/main", nil)
	scopes := func(s ...string) []string { return s }
	tests := []struct {
		name       string
		cfg        *config.Config // nil: oidcEvalConfig
		opts       EvalOptions
		wantErr    error
		wantStdout []string
		wantRows   [][]string
		wantErrMsg []string
	}{
		{name: "a claim rule grants push", opts: EvalOptions{Provider: "github", ClaimsFile: main,
			Scopes: scopes("repository:octo-org/app:pull,push", "repository:octo-org/app/cache:push", "repository:octo-org/other:pull")},
			wantStdout: []string{`identity: method=oidc provider=github subject="repo:octo-org/app:ref:refs/heads/main" namespace="" groups=[]`,
				"oidc: issuer=https://token.actions.githubusercontent.com claims=aud,event_name,exp,iat,iss,ref,ref_type,repository,"},
			wantRows: [][]string{{"repository:octo-org/app", "pull,push", "pull,push", "-"}, {"repository:octo-org/app/cache", "push", "push", "-"},
				{"repository:octo-org/other", "pull", "-", "-"}}},
		{name: "method given", opts: EvalOptions{Method: "oidc", Provider: "github", ClaimsFile: main, Expect: []string{"pull,push"},
			Scopes: scopes("repository:octo-org/app:pull,push")}},
		{name: "another owner's claims grant nothing", opts: EvalOptions{Provider: "github",
			ClaimsFile: githubClaims(t, "evil-org/app", "666", "refs/heads/main", nil), Expect: []string{"none"},
			Scopes: scopes("repository:evil-org/app:pull,push", "repository:octo-org/app:pull,push", "repository:evil-org/x:pull")}},
		// The owner's name recycled by someone else: its id differs.
		{name: "another owner id", opts: EvalOptions{Provider: "github", ClaimsFile: githubClaims(t, "octo-org/app", "999", "refs/heads/main", nil),
			Expect: []string{"none"}, Scopes: scopes("repository:octo-org/app:pull,push")}},
		{name: "a ref the rule does not list", opts: EvalOptions{Provider: "github",
			ClaimsFile: githubClaims(t, "octo-org/app", "123456", "refs/heads/feature", nil), Expect: []string{"none"},
			Scopes: scopes("repository:octo-org/app:pull,push")}},
		{name: "a version tag", opts: EvalOptions{Provider: "github",
			ClaimsFile: githubClaims(t, "octo-org/app", "123456", "refs/tags/v1.2.0", nil), Expect: []string{"pull,push"},
			Scopes: scopes("repository:octo-org/app:pull,push")}},
		// The principal github:<sub> is a member of group ci, which may
		// push to shared/*: the site names it.
		{name: "groups by principal", opts: EvalOptions{Provider: "github",
			ClaimsFile: githubClaims(t, "octo-org/tools", "123456", "refs/heads/main", nil),
			Scopes:     scopes("repository:shared/app:push")},
			wantStdout: []string{"groups=[ci]"}, wantRows: [][]string{{"repository:shared/app", "push", "push", "-"}}},
		{name: "groups given", opts: EvalOptions{Provider: "github", ClaimsFile: main, Groups: []string{},
			Scopes: scopes("repository:shared/app:push")},
			wantStdout: []string{"groups=[]"}, wantRows: [][]string{{"repository:shared/app", "push", "-", "-"}}},
		{name: "user overrides the subject", opts: EvalOptions{Provider: "github", User: "repo:octo-org/tools:ref:refs/heads/main",
			ClaimsFile: main, Scopes: scopes("repository:shared/app:push")},
			wantStdout: []string{`subject="repo:octo-org/tools:ref:refs/heads/main"`, "groups=[ci]"}},
		{name: "refreshed", opts: EvalOptions{Provider: "github", ClaimsFile: main, Refreshed: true, Scopes: scopes("repository:octo-org/app:pull,push")},
			wantStdout: []string{"identity: method=refresh refreshed_from=oidc provider=github"},
			wantRows:   [][]string{{"repository:octo-org/app", "pull,push", "pull,push", "-"}}},
		// A nested claim object, matched key by key; aud an array.
		{name: "nested claims", opts: EvalOptions{Provider: "k8s", ClaimsFile: writeClaims(t, `{"iss": "https://k8s.example.com",
			"sub": "system:serviceaccount:ci:builder", "aud": ["registry.example.com"], "exp": 1764504300,
			"kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "builder", "uid": "u1"}, "pod": {"name": "p", "uid": "u2"}}}`),
			Scopes: scopes("repository:base/alpine:pull,push")},
			wantStdout: []string{`method=oidc provider=k8s subject="system:serviceaccount:ci:builder"`},
			wantRows:   [][]string{{"repository:base/alpine", "pull,push", "pull", "-"}}},
		{name: "the only entry", cfg: ptr(parseConfig(t, "authn:\n  oidc:\n    - {name: gitlab, issuer: \"https://gitlab.com\"}\n")),
			opts:       EvalOptions{ClaimsFile: writeClaims(t, `{"sub": "project_path:g/p:ref_type:branch:ref:main", "project_path": "g/p"}`), Scopes: scopes("repository:g/p:pull")},
			wantStdout: []string{"method=oidc provider=gitlab", "oidc: issuer=https://gitlab.com claims=project_path,sub"}},

		{name: "unknown provider", opts: EvalOptions{Provider: "gitlab", ClaimsFile: main, Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"--provider gitlab is not an authn.oidc entry of the config (it has github, k8s)"}},
		{name: "unknown provider without claims", opts: EvalOptions{Provider: "gitlab", User: "x", Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"--provider gitlab is neither htpasswd, sourcehut nor an authn.oidc entry of the config (it has github, k8s)"}},
		{name: "an account provider", opts: EvalOptions{Provider: "htpasswd", Method: "oidc", ClaimsFile: main, Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"--provider htpasswd is not an authn.oidc entry"}},
		{name: "no provider of several", opts: EvalOptions{ClaimsFile: main, Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"--method oidc needs --provider: the config trusts several issuers (it has github, k8s)"}},
		{name: "no issuer configured", cfg: ptr(config.Default()), opts: EvalOptions{ClaimsFile: main, Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"the config has no authn.oidc entry"}},
		{name: "no claims", opts: EvalOptions{Provider: "github", Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"--method oidc needs --claims FILE.json"}},
		{name: "claims of another method", opts: EvalOptions{Method: "password", User: "alice", ClaimsFile: main, Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"--claims is for --method oidc, not --method password"}},
		{name: "claims for anonymous", opts: EvalOptions{Method: "anonymous", ClaimsFile: main, Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"--claims is for --method oidc, not --method anonymous"}},
		{name: "grants", opts: EvalOptions{Provider: "github", ClaimsFile: main, Grants: "all", Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"--grants is for --method sourcehut"}},
		{name: "an array", opts: EvalOptions{Provider: "github", ClaimsFile: writeClaims(t, `[{"sub": "x"}]`), Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"not a JSON object of claims", "but an array"}},
		{name: "null", opts: EvalOptions{Provider: "github", ClaimsFile: writeClaims(t, "null\n"), Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"but null"}},
		{name: "a JWT", opts: EvalOptions{Provider: "github", ClaimsFile: writeClaims(t, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln\n"), Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"not a JSON object of claims"}},
		{name: "two objects", opts: EvalOptions{Provider: "github", ClaimsFile: writeClaims(t, `{"sub": "x"} {"sub": "y"}`), Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"more than one JSON value"}},
		{name: "trailing garbage", opts: EvalOptions{Provider: "github", ClaimsFile: writeClaims(t, `{"sub": "x"}}`), Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"not a JSON object of claims"}},
		{name: "no file", opts: EvalOptions{Provider: "github", ClaimsFile: filepath.Join(t.TempDir(), "missing.json"), Scopes: scopes("repository:a/b:pull")},
			wantErr: ErrUsage, wantErrMsg: []string{"--claims: ", "missing.json"}},
		// Tokens serve would refuse.
		{name: "no subject", opts: EvalOptions{Provider: "github", ClaimsFile: githubClaims(t, "octo-org/app", "123456", "refs/heads/main", map[string]any{"sub": nil}),
			Scopes: scopes("repository:a/b:pull")},
			wantErr: errPlain, wantErrMsg: []string{`would refuse this token (401)`, `no claim "sub" (the subject claim of authn.oidc entry github)`}},
		{name: "another issuer", opts: EvalOptions{Provider: "k8s", ClaimsFile: main, Scopes: scopes("repository:a/b:pull")},
			wantErr: errPlain, wantErrMsg: []string{`its iss "https://token.actions.githubusercontent.com" is not that entry's issuer https://k8s.example.com`}},
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
			testcheck.Contains(t, "stdout", stdout, tt.wantStdout...)
			for _, row := range tt.wantRows {
				if !policycmdtest.HasRow(stdout, row) {
					t.Errorf("no line %q in:\n%s", row, stdout)
				}
			}
			testcheck.Contains(t, "error", errText(err), tt.wantErrMsg...)
			if tt.wantErr != nil && stdout != "" {
				t.Errorf("stdout: %s", stdout)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestEvalOIDCJSON checks the json format of an OIDC login: the identity
// as the policy sees it, with the issuer of the config and the claims as
// sent, numbers and all.
func TestEvalOIDCJSON(t *testing.T) {
	t.Parallel()
	cfg := parseConfig(t, oidcEvalConfig)
	claims := githubClaims(t, "octo-org/app", "123456", "refs/heads/main", map[string]any{"iss": nil, "run_attempt": 12345678901234})
	stdout, err := runEval(t, cfg, EvalOptions{Format: "json", Provider: "github", ClaimsFile: claims,
		Scopes: []string{"repository:octo-org/app:pull,push", "repository:evil/app:pull"}})
	wantErr(t, err, nil, stdout)
	var out struct {
		Identity struct {
			Method    string  `json:"method"`
			Provider  string  `json:"provider"`
			Subject   string  `json:"subject"`
			Namespace *string `json:"namespace"`
			OIDC      struct {
				Issuer string         `json:"issuer"`
				Claims map[string]any `json:"claims"`
			} `json:"oidc"`
		} `json:"identity"`
		Decisions []decision `json:"decisions"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	id := out.Identity
	if id.Method != "oidc" || id.Provider != "github" || id.Subject != "repo:octo-org/app:ref:refs/heads/main" || id.Namespace != nil {
		t.Errorf("identity: %+v", id)
	}
	// The issuer is the config's; the claims are the file's (no iss was
	// added), big integers exact.
	if id.OIDC.Issuer != "https://token.actions.githubusercontent.com" {
		t.Errorf("issuer %q", id.OIDC.Issuer)
	}
	if _, ok := id.OIDC.Claims["iss"]; ok || id.OIDC.Claims["repository_owner_id"] != "123456" ||
		id.OIDC.Claims["run_attempt"] != json.Number("12345678901234") || id.OIDC.Claims["iat"] != json.Number("1764504000") {
		t.Errorf("claims: %v", id.OIDC.Claims)
	}
	if len(out.Decisions) != 2 || !slices.Equal(out.Decisions[0].Granted, []string{"pull", "push"}) || len(out.Decisions[1].Granted) != 0 {
		t.Errorf("decisions: %+v", out.Decisions)
	}
}

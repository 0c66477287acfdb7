package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
)

func TestPolicyEval(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	htpasswd := filepath.Join(dir, "htpasswd")
	writeFile(t, htpasswd, htpasswdLine(t, "alice", "a")+htpasswdLine(t, "bob", "b")+htpasswdLine(t, "root", "r"))
	writeFile(t, cfg, `authn:
  htpasswd: `+htpasswd+`
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
`)
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
		{name: "groups from the config", args: []string{"--user", "bob", "--scope", "repository:team/app:pull,push"},
			wantStdout: []string{"groups=[ci]"}, wantRow: []string{"repository:team/app", "pull,push", "pull", "-"}},
		{name: "groups from the flag", args: []string{"--user", "carol", "--groups", "ci", "--scope", "repository:team/app:pull"},
			wantStdout: []string{"groups=[ci]"}, wantRow: []string{"repository:team/app", "pull", "pull", "-"}},
		{name: "anonymous public pull", args: []string{"--scope", "repository:library/base:pull,push"},
			wantStdout: []string{`method=anonymous provider=- subject=""`}, wantRow: []string{"repository:library/base", "pull,push", "pull", "-"}},
		{name: "admin catalog", args: []string{"--user", "root", "--scope", "registry:catalog:*"},
			wantRow: []string{"registry:catalog", "*", "*", "-"}},
		{name: "explain", args: []string{"--user", "alice", "--scope", "repository:alice/app:push", "--explain"},
			wantStdout: []string{"rules that fired:", "authz.rego:", "granted contains action if {", "allow contains action if {"}},
		{name: "explain full", args: []string{"--user", "alice", "--scope", "repository:alice/app:push", "--explain=full"},
			wantStdout: []string{"trace:", "Enter data.registry.authz.allow"}},
		{name: "sourcehut without the registry grant", args: []string{"--user", "carol", "--method", "sourcehut", "--grants", "meta.sr.ht/PROFILE:RO", "--scope", "repository:carol/app:pull"},
			wantCode: 1, wantStderr: []string{"would refuse this token at login"}},
		// htpasswd:alice and sourcehut:alice are different people: the
		// Sourcehut one owns nothing (the local account holds alice/*),
		// and is not in the ACL that names htpasswd:alice.
		{name: "password user by provider", args: []string{"--user", "alice", "--provider", "htpasswd", "--scope", "repository:alice/app:pull,push", "--scope", "repository:team/app:push"},
			wantStdout: []string{`method=password provider=htpasswd subject="alice" namespace="alice"`},
			wantRow:    []string{"repository:team/app", "push", "push", "-"}},
		{name: "Sourcehut user named like a local account", args: []string{"--user", "alice", "--provider", "sourcehut", "--scope", "repository:alice/app:pull,push", "--scope", "repository:team/app:push"},
			wantStdout: []string{`method=sourcehut provider=sourcehut subject="alice" namespace=""`},
			wantRow:    []string{"repository:alice/app", "pull,push", "-", "-"}},
		{name: "Sourcehut user named like the admin", args: []string{"--user", "root", "--provider", "sourcehut", "--scope", "registry:catalog:*"},
			wantStdout: []string{"groups=[]"}, wantRow: []string{"registry:catalog", "*", "-", "-"}},
		{name: "Sourcehut user in a group by principal", args: []string{"--user", "carol", "--provider", "sourcehut", "--scope", "repository:team/app:pull", "--scope", "repository:carol/app:push"},
			wantStdout: []string{"groups=[ci]", `namespace="carol"`}, wantRow: []string{"repository:carol/app", "push", "push", "-"}},
		{name: "Sourcehut user not allowed to log in", args: []string{"--user", "mallory", "--provider", "sourcehut", "--scope", "repository:mallory/app:pull"},
			wantCode: 1, wantStderr: []string{`authn.sourcehut.users does not let "mallory" in`}},
		{name: "provider and method disagree", args: []string{"--user", "alice", "--provider", "sourcehut", "--method", "password", "--scope", "repository:a/b:pull"},
			wantCode: 2, wantStderr: []string{"--provider sourcehut does not log in with --method password"}},
		{name: "refreshed password login", args: []string{"--user", "alice", "--refreshed", "--scope", "repository:alice/app:pull,push"},
			wantStdout: []string{"method=refresh refreshed_from=password"}, wantRow: []string{"repository:alice/app", "pull,push", "pull,push", "-"}},
		{name: "refreshed read-only Sourcehut token", args: []string{"--user", "carol", "--method", "sourcehut", "--grants", "registry.example.com/REGISTRY:RO",
			"--refreshed", "--scope", "repository:carol/app:pull,push"},
			wantStdout: []string{"method=refresh refreshed_from=sourcehut provider=sourcehut"}, wantRow: []string{"repository:carol/app", "pull,push", "pull", "-"}},
		{name: "refreshed anonymous", args: []string{"--refreshed", "--scope", "repository:library/base:pull"}, wantCode: 2, wantStderr: []string{"--refreshed"}},
		{name: "no scope", args: []string{"--user", "alice"}, wantCode: 2, wantStderr: []string{"--scope"}},
		{name: "bad scope", args: []string{"--user", "alice", "--scope", "repository:alice"}, wantCode: 2, wantStderr: []string{"invalid scope"}},
		{name: "bad method", args: []string{"--user", "alice", "--method", "kerberos", "--scope", "repository:a/b:pull"}, wantCode: 2, wantStderr: []string{"--method"}},
		{name: "unknown service", args: []string{"--service", "other.example.com", "--scope", "repository:a/b:pull"}, wantCode: 2, wantStderr: []string{"other.example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", append([]string{"policy", "eval", "--config", cfg}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			if tt.wantRow != nil && !hasRow(stdout, tt.wantRow) {
				t.Errorf("no line %q in:\n%s", tt.wantRow, stdout)
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func hasRow(out string, fields []string) bool {
	for line := range strings.Lines(out) {
		if slices.Equal(strings.Fields(line), fields) {
			return true
		}
	}
	return false
}

func TestPolicyEvalJSON(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, cfg, "authn:\n  sourcehut:\n    users: [\"*\"]\n")
	code, stdout, stderr := run(t, "", "policy", "eval", "--config", cfg, "--format", "json", "--user", "alice", "--method", "sourcehut",
		"--grants", "registry.example.com/REGISTRY:RO", "--scope", "repository:alice/app:pull,push", "--scope", "repository:bob/app:pull")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		Revision string `json:"revision"`
		Identity struct {
			Method    string `json:"method"`
			Provider  string `json:"provider"`
			Namespace string `json:"namespace"`
			Sourcehut struct {
				Access string `json:"access"`
			} `json:"sourcehut"`
		} `json:"identity"`
		Decisions []evalResult `json:"decisions"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if out.Revision != "embedded" || out.Identity.Method != "sourcehut" || out.Identity.Provider != "sourcehut" ||
		out.Identity.Namespace != "alice" || out.Identity.Sourcehut.Access != "RO" {
		t.Errorf("header: %+v", out)
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

// TestPolicyEvalBundle evaluates an example bundle, whose deny messages and
// input.request conditions show through.
func TestPolicyEvalBundle(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	bundle, err := filepath.Abs("../../bundles/conditions")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg, "policy:\n  bundles: ["+bundle+"]\n")
	code, stdout, stderr := run(t, "", "policy", "eval", "--config", cfg, "--format", "json", "--user", "alice",
		"--client-ip", "203.0.113.9", "--scope", "repository:alice/app:pull,push")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		Revision  string       `json:"revision"`
		Decisions []evalResult `json:"decisions"`
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

// TestPolicyEvalTarball loads a bundle from a .tar.gz, as `opa build -b`
// writes it.
func TestPolicyEvalTarball(t *testing.T) {
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
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, "policy:\n  bundles: ["+tarball+"]\n")
	code, stdout, stderr := run(t, "", "policy", "eval", "--config", cfg, "--user", "alice", "--scope", "repository:alice/app:pull,push")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "policy revision: "+b.Manifest.Revision) || !hasRow(stdout, []string{"repository:alice/app", "pull,push", "pull,push", "-"}) {
		t.Errorf("unexpected output:\n%s", stdout)
	}
}

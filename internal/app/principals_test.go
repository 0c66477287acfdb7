package app

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfigPrincipals: a bare name that could be two people is an
// error naming both; names that look like a mistake are warnings, printed
// by check-config without failing it.
func TestCheckConfigPrincipals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	writeFile(t, htpasswd, htpasswdLine(t, "alice", "a")+htpasswdLine(t, "root", "r"))
	config := func(name, body string) string {
		path := filepath.Join(dir, name+".yaml")
		writeFile(t, path, "authn:\n  htpasswd: "+htpasswd+"\n"+body)
		return path
	}
	tests := []struct {
		name       string
		body       string
		wantCode   int
		wantStderr []string
		noStderr   []string
	}{
		{name: "a bare name with one login method is that method's", body: "groups:\n  admins: [root]\n",
			noStderr: []string{"warning"}},
		{name: "a bare name with two is an error naming both",
			body:     "  sourcehut:\n    users: [carol]\ngroups:\n  admins: [root]\n",
			wantCode: 2, wantStderr: []string{`groups.admins[0]: "root" could be htpasswd:root or sourcehut:root`}},
		{name: "principals that match nobody are warnings",
			body: "  sourcehut:\n    users: [alice, carol]\ngroups:\n  admins: [\"htpasswd:root\", \"htpasswd:bob\", \"sourcehut:dave\"]\n" +
				"policy:\n  data:\n    namespaces: {team: {pull: [\"group:nope\"]}}\n",
			wantStderr: []string{
				`warning: groups.admins[1]: htpasswd:bob matches nobody: ` + htpasswd + ` has no user "bob"`,
				`warning: groups.admins[2]: sourcehut:dave may not log in: authn.sourcehut.users does not list "dave"`,
				`warning: authn.sourcehut.users[0]: "alice" is also an htpasswd user`,
				`warning: policy.data.namespaces.team.pull[0]: group:nope is no group of groups:`,
			},
			noStderr: []string{"htpasswd:root matches nobody", `"carol" is also`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", "check-config", "--config", config(strings.ReplaceAll(tt.name, " ", "-"), tt.body))
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			if code == 0 && !strings.Contains(stdout, "config OK") {
				t.Errorf("stdout %q lacks config OK", stdout)
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			for _, w := range tt.noStderr {
				if strings.Contains(stderr, w) {
					t.Errorf("stderr has %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestServeSaysWhoMayLogIn: with no config, Sourcehut login is on and lets
// nobody in, and the log says how to let users in.
func TestServeSaysWhoMayLogIn(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, cfg, "listen: 127.0.0.1:0\n")
	_, logs := startServer(t, cfg)
	if !strings.Contains(logs.String(), "Sourcehut login lets nobody in: list who may log in under authn.sourcehut.users") {
		t.Errorf("the log does not say how to let Sourcehut users in:\n%s", logs)
	}
}

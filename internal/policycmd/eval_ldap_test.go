package policycmd

import (
	"errors"
	"strings"
	"testing"
)

// ldapEvalConfig has a directory, corp, whose devs pull and ops push
// team/*, and a configured group admins holding corp:root.
const ldapEvalConfig = `
authn:
  ldap:
    - name: corp
      urls: [ldaps://ldap.example.org]
      user_base: ou=people,dc=example,dc=org
      user_filter: (uid={user})
groups:
  admins: ["corp:root"]
policy:
  data:
    namespaces:
      team: {pull: ["group:corp:devs"], push: ["group:corp:ops"]}
`

// TestEvalDirectoryGroups: policy eval takes a directory's identity
// (--provider corp) and its directory groups (--groups corp:devs), as serve
// builds them at a directory login.
func TestEvalDirectoryGroups(t *testing.T) {
	t.Parallel()
	cfg := parseConfig(t, ldapEvalConfig)
	scope := []string{"repository:team/app:pull,push"}
	tests := []struct {
		name    string
		opts    EvalOptions
		expect  string // --expect
		wantErr error
		errHas  string
	}{
		{"devs pull", EvalOptions{User: "lena", Provider: "corp", Groups: []string{"corp:devs"}}, "pull", nil, ""},
		{"ops push", EvalOptions{User: "lena", Provider: "corp", Groups: []string{"corp:devs", "corp:ops"}}, "pull,push", nil, ""},
		{"method password, said", EvalOptions{User: "lena", Method: "password", Provider: "corp", Groups: []string{"corp:ops"}}, "push", nil, ""},
		{"no group", EvalOptions{User: "lena", Provider: "corp", Groups: []string{}}, "none", nil, ""},
		{"config groups by principal", EvalOptions{User: "root", Provider: "corp"}, "*", nil, ""},
		{"not a directory's own group", EvalOptions{User: "alice", Groups: []string{"corp:ops"}}, "none", ErrUsage, "only corp's identities are in corp's groups"},
		{"an unknown directory", EvalOptions{User: "lena", Provider: "corp", Groups: []string{"other:ops"}}, "none", ErrUsage, `"other" is no authn.ldap entry`},
		{"an unknown provider", EvalOptions{User: "lena", Provider: "nope"}, "none", ErrUsage, "(directories: corp)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := tc.opts
			opts.Scopes = scope
			opts.Expect = []string{tc.expect}
			if strings.HasPrefix(tc.expect, "*") {
				opts.Scopes = []string{"repository:team/app:*"}
			}
			out, err := runEval(t, cfg, opts)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want %v with %q", err, tc.wantErr, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("policy eval: %v\n%s", err, out)
			}
		})
	}
}

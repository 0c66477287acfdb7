package config

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// The authn sections the tests combine: which providers could have
// authenticated a bare name.
const (
	authnNone          = ""
	authnHtpasswd      = "authn: {htpasswd: h}\n"
	authnSourcehut     = "authn: {sourcehut: {users: [root, bob, alice]}}\n"
	authnSourcehutAll  = "authn: {sourcehut: {users: ['*']}}\n"
	authnBoth          = "authn: {htpasswd: h, sourcehut: {users: ['*']}}\n"
	authnBothListed    = "authn: {htpasswd: h, sourcehut: {users: [carol]}}\n"
	authnSourcehutNone = "authn: {htpasswd: h, sourcehut: {users: []}}\n" // on, but lets nobody in
	authnSourcehutOff  = "authn: {htpasswd: h, sourcehut: {enabled: false, users: [root]}}\n"
	authnOnlyOff       = "authn: {sourcehut: {enabled: false, users: ['*']}}\n" // no provider at all

	// The messages of checkAccountName, after the name they quote.
	notSourcehutUser = ` is not a Sourcehut user name (a lowercase letter or _, then lowercase letters, digits, _ and -; no ~)`
	notHtpasswdUser  = ` cannot be an htpasswd user name (no colons, spaces or control characters)`

	groupNameProblem = `a group name must not be "*" or contain a colon or spaces (provider:group is how a directory's groups are named)`
)

// parseProblems parses doc and returns the Config, or the problems of the
// *ValidationError it fails with (any other error fails the test).
func parseProblems(t *testing.T, doc string) (Config, []string) {
	t.Helper()
	c, err := Parse([]byte(doc))
	if err == nil {
		return c, nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Parse(%q) = %v, want a *ValidationError", doc, err)
	}
	if !reflect.DeepEqual(c, Config{}) {
		t.Errorf("Parse(%q) failed but returned %+v, want the zero Config", doc, c)
	}
	if len(ve.Problems) == 0 {
		t.Errorf("Parse(%q): a *ValidationError without problems", doc)
	}
	return c, ve.Problems
}

// checkProblems fails the test unless got is exactly want.
func checkProblems(t *testing.T, got, want []string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// checkResolved checks what holds for every parsed Config: it validates
// again, resolving it once more changes nothing, and it is JSON-compatible.
func checkResolved(t *testing.T, c Config) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Errorf("the parsed Config does not validate: %v", err)
	}
	groups, data, problems := resolvePrincipals(c)
	if len(problems) > 0 || !reflect.DeepEqual(groups, c.Groups) || !reflect.DeepEqual(data, c.Policy.Data) {
		t.Errorf("resolving the parsed Config again = %q, %#v, %q; want it unchanged (%q, %#v)", groups, data, problems, c.Groups, c.Policy.Data)
	}
	if _, err := json.Marshal(c.Policy.Data); err != nil {
		t.Errorf("policy.data is not JSON-compatible: %v", err)
	}
}

func TestResolveGroupMembers(t *testing.T) {
	tests := []struct {
		name, doc string
		want      map[string][]string // the parsed groups, when problems is nil
		problems  []string
	}{
		{
			"htpasswd only: bare names are htpasswd's", authnHtpasswd + `groups: {admins: [root], ci: [bob, "sourcehut:carol", "htpasswd:dave"]}`,
			map[string][]string{"admins": {"htpasswd:root"}, "ci": {"htpasswd:bob", "sourcehut:carol", "htpasswd:dave"}}, nil,
		},
		{
			"sourcehut only, users listed", authnSourcehut + `groups: {admins: [root], ci: [bob, "htpasswd:carol"]}`,
			map[string][]string{"admins": {"sourcehut:root"}, "ci": {"sourcehut:bob", "htpasswd:carol"}}, nil,
		},
		{
			"sourcehut only, every user", authnSourcehutAll + `groups: {admins: [root]}`,
			map[string][]string{"admins": {"sourcehut:root"}}, nil,
		},
		{
			// Sourcehut lets nobody in, so it cannot be what a bare name means.
			"sourcehut on without users, and htpasswd", authnSourcehutNone + `groups: {admins: [root]}`,
			map[string][]string{"admins": {"htpasswd:root"}}, nil,
		},
		{
			"sourcehut off, and htpasswd", authnSourcehutOff + `groups: {admins: [root]}`,
			map[string][]string{"admins": {"htpasswd:root"}}, nil,
		},
		{
			"two providers, written out", authnBoth + `groups: {admins: ["htpasswd:root", "sourcehut:root"]}`,
			map[string][]string{"admins": {"htpasswd:root", "sourcehut:root"}}, nil,
		},
		{
			// A principal of a provider that is not configured is a warning, not an error.
			"no provider, written out", authnNone + `groups: {admins: ["htpasswd:root"], ci: ["sourcehut:bob"]}`,
			map[string][]string{"admins": {"htpasswd:root"}, "ci": {"sourcehut:bob"}}, nil,
		},
		{
			"empty and null groups", authnNone + "groups: {nobody: [], none: }",
			map[string][]string{"nobody": {}, "none": nil}, nil,
		},
		{"no groups", authnBoth, nil, nil},
		{
			"two providers", authnBoth + `groups: {admins: [root]}`, nil,
			[]string{`groups.admins[0]: "root" could be htpasswd:root or sourcehut:root: they are different people; write the one you mean`},
		},
		{
			"two providers, Sourcehut with a list", authnBothListed + `groups: {ci: ["sourcehut:carol", carol]}`, nil,
			[]string{`groups.ci[1]: "carol" could be htpasswd:carol or sourcehut:carol: they are different people; write the one you mean`},
		},
		{
			"no provider", authnNone + `groups: {admins: [root]}`, nil,
			[]string{`groups.admins[0]: "root" names no provider, and no login could authenticate it: write htpasswd:root or sourcehut:root, with authn.htpasswd or with the user in authn.sourcehut.users`},
		},
		{
			"no provider: Sourcehut off", authnOnlyOff + `groups: {admins: [root]}`, nil,
			[]string{`groups.admins[0]: "root" names no provider, and no login could authenticate it: write htpasswd:root or sourcehut:root, with authn.htpasswd or with the user in authn.sourcehut.users`},
		},
		{
			"unknown provider", authnHtpasswd + `groups: {admins: ["github:root", "ldap:root"]}`, nil,
			[]string{
				`groups.admins[0]: "github:root": unknown provider "github"; principals are written htpasswd:NAME or sourcehut:NAME`,
				`groups.admins[1]: "ldap:root": unknown provider "ldap"; principals are written htpasswd:NAME or sourcehut:NAME`,
			},
		},
		{
			"malformed", authnHtpasswd + `groups: {admins: ["Foo:bar", ":x", "htpasswd:", "anonymous:x", "HTPASSWD:root"]}`, nil,
			[]string{
				`groups.admins[0]: "Foo:bar" is not a principal: write htpasswd:NAME or sourcehut:NAME`,
				`groups.admins[1]: ":x" is not a principal: write htpasswd:NAME or sourcehut:NAME`,
				`groups.admins[2]: "htpasswd:" is not a principal: write htpasswd:NAME or sourcehut:NAME`,
				`groups.admins[3]: "anonymous:x" is not a principal: write htpasswd:NAME or sourcehut:NAME`,
				`groups.admins[4]: "HTPASSWD:root" is not a principal: write htpasswd:NAME or sourcehut:NAME`,
			},
		},
		{
			"a group in a group", authnHtpasswd + `groups: {admins: ["group:ci"], ci: [bob]}`, nil,
			[]string{`groups.admins[0]: "group:ci": a group lists principals, not other groups`},
		},
		{
			"everyone in a group", authnHtpasswd + `groups: {admins: ["*"]}`, nil,
			[]string{`groups.admins[0]: "*" (every authenticated identity) belongs in a namespace ACL, not in a group`},
		},
		{
			"blank and padded members", authnHtpasswd + `groups: {admins: [" bob", "htpasswd:bob ", "", "  "]}`, nil,
			[]string{
				`groups.admins[0]: member " bob" has spaces around it`,
				`groups.admins[1]: member "htpasswd:bob " has spaces around it`,
				"groups.admins[2]: member must not be empty",
				"groups.admins[3]: member must not be empty",
			},
		},
		{
			"group names", authnHtpasswd + `groups: {"a:b": [root], "*": [root], "my group": [root], "tab\tgroup": [root], "": [root], " ": [root], ok: [root]}`, nil,
			// Sorted as bytes: "" < " " < "*" < "a:b" < "my group" < "ok" < "tab\tgroup".
			[]string{
				"groups: a group name must not be empty",
				"groups: a group name must not be empty",
				"groups.*: " + groupNameProblem,
				"groups.a:b: " + groupNameProblem,
				"groups.my group: " + groupNameProblem,
				"groups.tab\tgroup: " + groupNameProblem,
			},
		},
		{
			// In a group, group:NAME is not offered: a group cannot hold one.
			"a colon in a group and in an ACL", authnHtpasswd + `groups: {ci: ["Foo:bar"]}` + "\npolicy: {data: {namespaces: {team: {pull: ['Foo:bar']}}}}\n", nil,
			[]string{
				`groups.ci[0]: "Foo:bar" is not a principal: write htpasswd:NAME or sourcehut:NAME`,
				`policy.data.namespaces.team.pull[0]: "Foo:bar" is not a principal: write htpasswd:NAME or sourcehut:NAME, or group:NAME`,
			},
		},
		{
			"Sourcehut user names", authnBoth + `groups: {ci: ["sourcehut:_x", "sourcehut:a-b_1", "sourcehut:x-", "sourcehut:` + strings.Repeat("a", 64) + `"]}`,
			map[string][]string{"ci": {"sourcehut:_x", "sourcehut:a-b_1", "sourcehut:x-", "sourcehut:" + strings.Repeat("a", 64)}}, nil,
		},
		{
			"not Sourcehut user names", authnBoth + `groups: {ci: ["sourcehut:~bob", "sourcehut:Carol", "sourcehut:1x", "sourcehut:a.b", "sourcehut:-x", "sourcehut:a b", "sourcehut:` + strings.Repeat("a", 65) + `"]}`, nil,
			[]string{
				`groups.ci[0]: "sourcehut:~bob": "~bob"` + notSourcehutUser,
				`groups.ci[1]: "sourcehut:Carol": "Carol"` + notSourcehutUser,
				`groups.ci[2]: "sourcehut:1x": "1x"` + notSourcehutUser,
				`groups.ci[3]: "sourcehut:a.b": "a.b"` + notSourcehutUser,
				`groups.ci[4]: "sourcehut:-x": "-x"` + notSourcehutUser,
				`groups.ci[5]: "sourcehut:a b": "a b"` + notSourcehutUser,
				`groups.ci[6]: "sourcehut:` + strings.Repeat("a", 65) + `": "` + strings.Repeat("a", 65) + `"` + notSourcehutUser,
			},
		},
		{
			// An htpasswd name is anything a user:hash line can hold.
			"htpasswd user names", authnBoth + `groups: {ci: ["htpasswd:Bob.Smith", "htpasswd:~alice", "htpasswd:1x", "htpasswd:bob@example.org", "htpasswd:émile"]}`,
			map[string][]string{"ci": {"htpasswd:Bob.Smith", "htpasswd:~alice", "htpasswd:1x", "htpasswd:bob@example.org", "htpasswd:émile"}}, nil,
		},
		{
			"not htpasswd user names", authnBoth + `groups: {ci: ["htpasswd: bob", "htpasswd:a:b", "htpasswd:a b", "htpasswd:a\tb", "htpasswd:a\u00a0b", "htpasswd:a\x01b", "htpasswd:a\u0085b"]}`, nil,
			[]string{
				`groups.ci[0]: "htpasswd: bob": " bob"` + notHtpasswdUser,
				`groups.ci[1]: "htpasswd:a:b": "a:b"` + notHtpasswdUser,
				`groups.ci[2]: "htpasswd:a b": "a b"` + notHtpasswdUser,
				`groups.ci[3]: "htpasswd:a\tb": "a\tb"` + notHtpasswdUser,
				`groups.ci[4]: "htpasswd:a\u00a0b": "a\u00a0b"` + notHtpasswdUser,
				`groups.ci[5]: "htpasswd:a\x01b": "a\x01b"` + notHtpasswdUser,
				`groups.ci[6]: "htpasswd:a\u0085b": "a\u0085b"` + notHtpasswdUser,
			},
		},
		{
			// A bare name resolved to the only provider is checked as what it became.
			"bare names: not Sourcehut user names", authnSourcehutAll + `groups: {ci: [~alice, Carol, 1x, a.b, _ok]}`, nil,
			[]string{
				`groups.ci[0]: "~alice" (as "sourcehut:~alice"): "~alice"` + notSourcehutUser,
				`groups.ci[1]: "Carol" (as "sourcehut:Carol"): "Carol"` + notSourcehutUser,
				`groups.ci[2]: "1x" (as "sourcehut:1x"): "1x"` + notSourcehutUser,
				`groups.ci[3]: "a.b" (as "sourcehut:a.b"): "a.b"` + notSourcehutUser,
			},
		},
		{
			"bare names: not htpasswd user names", authnHtpasswd + `groups: {ci: ["a b", "a\tb", ~alice, Carol]}`, nil,
			[]string{
				`groups.ci[0]: "a b" (as "htpasswd:a b"): "a b"` + notHtpasswdUser,
				// The principal after "as" is quoted too: a tab shows as \t.
				`groups.ci[1]: "a\tb" (as "htpasswd:a\tb"): "a\tb"` + notHtpasswdUser,
			},
		},
		{
			"bare names that only htpasswd allows", authnHtpasswd + `groups: {ci: [~alice, Carol, 1x, a.b]}`,
			map[string][]string{"ci": {"htpasswd:~alice", "htpasswd:Carol", "htpasswd:1x", "htpasswd:a.b"}}, nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, problems := parseProblems(t, tt.doc)
			checkProblems(t, problems, tt.problems)
			if tt.problems != nil {
				return
			}
			if !reflect.DeepEqual(c.Groups, tt.want) {
				t.Errorf("Groups = %#v\nwant %#v", c.Groups, tt.want)
			}
			checkResolved(t, c)
		})
	}
}

func TestResolveNamespaceMembers(t *testing.T) {
	const acl = `policy:
  data:
    public: ["library/*", bob]
    reserved: [bob]
    other: {pull: [bob]}
    namespaces:
      team: {pull: [bob, "*", "group:ci", "sourcehut:carol", "group:nope"], push: [alice]}
      docs: {pull: ["*"]}
`
	tests := []struct {
		name, doc string
		want      map[string]any // the parsed policy.data, when problems is nil
		problems  []string
	}{
		{
			// Only namespace members are principals: public, reserved and
			// other keys keep their bare names; "*" and group references stay.
			"htpasswd only", authnHtpasswd + acl,
			map[string]any{
				"public":   []any{"library/*", "bob"},
				"reserved": []any{"bob"},
				"other":    map[string]any{"pull": []any{"bob"}},
				"namespaces": map[string]any{
					"team": map[string]any{
						"pull": []any{"htpasswd:bob", "*", "group:ci", "sourcehut:carol", "group:nope"},
						"push": []any{"htpasswd:alice"},
					},
					"docs": map[string]any{"pull": []any{"*"}},
				},
			},
			nil,
		},
		{
			"sourcehut only", authnSourcehut + acl,
			map[string]any{
				"public":   []any{"library/*", "bob"},
				"reserved": []any{"bob"},
				"other":    map[string]any{"pull": []any{"bob"}},
				"namespaces": map[string]any{
					"team": map[string]any{
						"pull": []any{"sourcehut:bob", "*", "group:ci", "sourcehut:carol", "group:nope"},
						"push": []any{"sourcehut:alice"},
					},
					"docs": map[string]any{"pull": []any{"*"}},
				},
			},
			nil,
		},
		{
			"no provider: everyone and groups need none", authnNone + `policy: {data: {namespaces: {team: {pull: ["*", "group:ci"], push: ["htpasswd:a", "sourcehut:b"]}, empty: {}}}}`,
			map[string]any{"namespaces": map[string]any{
				"team":  map[string]any{"pull": []any{"*", "group:ci"}, "push": []any{"htpasswd:a", "sourcehut:b"}},
				"empty": map[string]any{},
			}},
			nil,
		},
		{
			"two providers", authnBoth + acl, nil,
			[]string{
				`policy.data.namespaces.team.pull[0]: "bob" could be htpasswd:bob or sourcehut:bob: they are different people; write the one you mean`,
				`policy.data.namespaces.team.push[0]: "alice" could be htpasswd:alice or sourcehut:alice: they are different people; write the one you mean`,
			},
		},
		{
			"no provider", authnNone + acl, nil,
			[]string{
				`policy.data.namespaces.team.pull[0]: "bob" names no provider, and no login could authenticate it: write htpasswd:bob or sourcehut:bob, with authn.htpasswd or with the user in authn.sourcehut.users`,
				`policy.data.namespaces.team.push[0]: "alice" names no provider, and no login could authenticate it: write htpasswd:alice or sourcehut:alice, with authn.htpasswd or with the user in authn.sourcehut.users`,
			},
		},
		{
			"bad members", authnHtpasswd + `policy: {data: {namespaces: {team: {push: ["github:x", "Foo:bar", ":x", "group:", " bob", "", "htpasswd:ok"]}}}}`, nil,
			[]string{
				`policy.data.namespaces.team.push[0]: "github:x": unknown provider "github"; principals are written htpasswd:NAME or sourcehut:NAME`,
				`policy.data.namespaces.team.push[1]: "Foo:bar" is not a principal: write htpasswd:NAME or sourcehut:NAME, or group:NAME`,
				`policy.data.namespaces.team.push[2]: ":x" is not a principal: write htpasswd:NAME or sourcehut:NAME, or group:NAME`,
				`policy.data.namespaces.team.push[3]: "group:" names no group`,
				`policy.data.namespaces.team.push[4]: member " bob" has spaces around it`,
				"policy.data.namespaces.team.push[5]: member must not be empty",
			},
		},
		{
			"problems in key order", authnNone + `policy: {data: {namespaces: {zeta: {push: [x]}, alpha: {push: [z], pull: [y]}}}}`, nil,
			[]string{
				`policy.data.namespaces.alpha.pull[0]: "y" names no provider, and no login could authenticate it: write htpasswd:y or sourcehut:y, with authn.htpasswd or with the user in authn.sourcehut.users`,
				`policy.data.namespaces.alpha.push[0]: "z" names no provider, and no login could authenticate it: write htpasswd:z or sourcehut:z, with authn.htpasswd or with the user in authn.sourcehut.users`,
				`policy.data.namespaces.zeta.push[0]: "x" names no provider, and no login could authenticate it: write htpasswd:x or sourcehut:x, with authn.htpasswd or with the user in authn.sourcehut.users`,
			},
		},
		{
			"account names", authnSourcehut + `policy: {data: {namespaces: {team: {pull: ["sourcehut:~bob", "htpasswd:a:b", "~alice", "htpasswd:~alice", "sourcehut:bob"]}}}}`, nil,
			[]string{
				`policy.data.namespaces.team.pull[0]: "sourcehut:~bob": "~bob"` + notSourcehutUser,
				`policy.data.namespaces.team.pull[1]: "htpasswd:a:b": "a:b"` + notHtpasswdUser,
				`policy.data.namespaces.team.pull[2]: "~alice" (as "sourcehut:~alice"): "~alice"` + notSourcehutUser,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, problems := parseProblems(t, tt.doc)
			checkProblems(t, problems, tt.problems)
			if tt.problems != nil {
				return
			}
			if !reflect.DeepEqual(c.Policy.Data, tt.want) {
				t.Errorf("Data = %#v\nwant %#v", c.Policy.Data, tt.want)
			}
			checkResolved(t, c)
		})
	}
}

func TestPolicyDataShape(t *testing.T) {
	tests := []struct {
		name, data string // the value of policy.data, with htpasswd on
		problems   []string
	}{
		{"empty lists and maps", "{public: [], reserved: [], namespaces: {}}", nil},
		{"a namespace without actions", "{namespaces: {team: {}}}", nil},
		{"an action without members", "{namespaces: {team: {pull: []}}}", nil},
		{"keys the policy does not read", "{anything: 5, more: {x: [1, {y: z}]}}", nil},
		{"public not a list", `{public: "library/*"}`, []string{"policy.data.public: must be a list of strings"}},
		{"public null", "{public: }", []string{"policy.data.public: must be a list of strings"}},
		{"public entries", "{public: [a, 1, {x: y}, null, [b]]}", []string{
			"policy.data.public[1]: must be a string",
			"policy.data.public[2]: must be a string",
			"policy.data.public[3]: must be a string",
			"policy.data.public[4]: must be a string",
		}},
		{"reserved not a list", "{reserved: {admin: true}}", []string{"policy.data.reserved: must be a list of strings"}},
		{"reserved entries", "{reserved: [admin, 2]}", []string{"policy.data.reserved[1]: must be a string"}},
		{"namespaces a list", "{namespaces: [team]}", []string{"policy.data.namespaces: must map a namespace to {action: [members]}"}},
		{"namespaces a string", "{namespaces: team}", []string{"policy.data.namespaces: must map a namespace to {action: [members]}"}},
		{"namespace a list", "{namespaces: {team: [bob]}}", []string{"policy.data.namespaces.team: must map an action to a list of members"}},
		{"namespace null", "{namespaces: {team: }}", []string{"policy.data.namespaces.team: must map an action to a list of members"}},
		{"action a string", "{namespaces: {team: {pull: bob}}}", []string{"policy.data.namespaces.team.pull: must be a list of members"}},
		{"action a map", "{namespaces: {team: {pull: {bob: true}}}}", []string{"policy.data.namespaces.team.pull: must be a list of members"}},
		{"members not strings", "{namespaces: {team: {pull: [1, bob, true, null, [x], {y: z}]}}}", []string{
			"policy.data.namespaces.team.pull[0]: must be a string",
			"policy.data.namespaces.team.pull[2]: must be a string",
			"policy.data.namespaces.team.pull[3]: must be a string",
			"policy.data.namespaces.team.pull[4]: must be a string",
			"policy.data.namespaces.team.pull[5]: must be a string",
		}},
		{
			// Every shape problem at once, then the members that could be
			// checked; the well-formed namespace is still resolved.
			"everything",
			"{public: x, reserved: [1], namespaces: {a: x, b: {pull: y, push: [1, 'Foo:bar']}, c: {pull: [bob]}}}",
			[]string{
				"policy.data.public: must be a list of strings",
				"policy.data.reserved[0]: must be a string",
				"policy.data.namespaces.a: must map an action to a list of members",
				"policy.data.namespaces.b.pull: must be a list of members",
				"policy.data.namespaces.b.push[0]: must be a string",
				`policy.data.namespaces.b.push[1]: "Foo:bar" is not a principal: write htpasswd:NAME or sourcehut:NAME, or group:NAME`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, problems := parseProblems(t, authnHtpasswd+"policy:\n  data: "+tt.data+"\n")
			checkProblems(t, problems, tt.problems)
			if tt.problems == nil {
				checkResolved(t, c)
			}
		})
	}
	// Validate checks a Config built in Go the same way.
	c := Default()
	c.Policy.Data = map[string]any{"namespaces": map[string]any{"team": []string{"bob"}}}
	var ve *ValidationError
	if err := c.Validate(); !errors.As(err, &ve) || !reflect.DeepEqual(ve.Problems, []string{"policy.data.namespaces.team: must map an action to a list of members"}) {
		t.Errorf("Validate() of a []string ACL = %v", err)
	}
}

func TestSourcehutUsers(t *testing.T) {
	tests := []struct {
		name, sourcehut string // the authn.sourcehut mapping
		users           []string
		allUsers        bool
		canLogIn        bool
		problems        []string
	}{
		{"absent: nobody", "{}", nil, false, false, nil},
		{"empty: nobody", "{users: []}", []string{}, false, false, nil},
		{"null: nobody", "{users: }", nil, false, false, nil},
		{"everyone", "{users: ['*']}", []string{"*"}, true, true, nil},
		{"names", "{users: [alice, bob_2, c-d, x]}", []string{"alice", "bob_2", "c-d", "x"}, false, true, nil},
		{"names starting with _", "{users: [_, _x, x-, " + strings.Repeat("a", 64) + "]}", []string{"_", "_x", "x-", strings.Repeat("a", 64)}, false, true, nil},
		{"everyone, login off", "{enabled: false, users: ['*']}", []string{"*"}, true, false, nil},
		{"names, login off", "{enabled: false, users: [alice]}", []string{"alice"}, false, false, nil},
		{"names, login on", "{enabled: true, users: [alice]}", []string{"alice"}, false, true, nil},
		{"tilde", "{users: [~alice]}", nil, false, false, []string{`authn.sourcehut.users[0]: write the user name without ~ ("alice")`}},
		{"principal", "{users: [alice, 'sourcehut:bob']}", nil, false, false, []string{`authn.sourcehut.users[1]: write the bare user name ("bob"): this list is Sourcehut's already`}},
		{"other provider", "{users: ['htpasswd:bob']}", nil, false, false, []string{`authn.sourcehut.users[0]: "htpasswd:bob" is not a Sourcehut user name (a lowercase letter or _, then lowercase letters, digits, _ and -)`}},
		{"uppercase", "{users: [Alice]}", nil, false, false, []string{`authn.sourcehut.users[0]: "Alice" is not a Sourcehut user name (a lowercase letter or _, then lowercase letters, digits, _ and -)`}},
		{"empty name", "{users: ['']}", nil, false, false, []string{`authn.sourcehut.users[0]: "" is not a Sourcehut user name (a lowercase letter or _, then lowercase letters, digits, _ and -)`}},
		{"padded name", "{users: ['alice ']}", nil, false, false, []string{`authn.sourcehut.users[0]: "alice " is not a Sourcehut user name (a lowercase letter or _, then lowercase letters, digits, _ and -)`}},
		{"space in name", "{users: ['al ice']}", nil, false, false, []string{`authn.sourcehut.users[0]: "al ice" is not a Sourcehut user name (a lowercase letter or _, then lowercase letters, digits, _ and -)`}},
		{"duplicate", "{users: [alice, bob, alice]}", nil, false, false, []string{`authn.sourcehut.users[2]: "alice" is listed already at [0]`}},
		{"three times", "{users: [a, a, a]}", nil, false, false, []string{
			`authn.sourcehut.users[1]: "a" is listed already at [0]`,
			`authn.sourcehut.users[2]: "a" is listed already at [0]`,
		}},
		{"two duplicates", "{users: [a, b, b, a, b]}", nil, false, false, []string{
			`authn.sourcehut.users[2]: "b" is listed already at [1]`,
			`authn.sourcehut.users[3]: "a" is listed already at [0]`,
			`authn.sourcehut.users[4]: "b" is listed already at [1]`,
		}},
		{"bad names", "{users: [1x, a.b, -x, " + strings.Repeat("a", 65) + "]}", nil, false, false, []string{
			`authn.sourcehut.users[0]: "1x" is not a Sourcehut user name (a lowercase letter or _, then lowercase letters, digits, _ and -)`,
			`authn.sourcehut.users[1]: "a.b" is not a Sourcehut user name (a lowercase letter or _, then lowercase letters, digits, _ and -)`,
			`authn.sourcehut.users[2]: "-x" is not a Sourcehut user name (a lowercase letter or _, then lowercase letters, digits, _ and -)`,
			`authn.sourcehut.users[3]: "` + strings.Repeat("a", 65) + `" is not a Sourcehut user name (a lowercase letter or _, then lowercase letters, digits, _ and -)`,
		}},
		{"everyone and names", "{users: ['*', alice]}", nil, false, false, []string{`authn.sourcehut.users[0]: "*" lets every account in; list names or "*", not both`}},
		{"names and everyone", "{users: [alice, '*']}", nil, false, false, []string{`authn.sourcehut.users[1]: "*" lets every account in; list names or "*", not both`}},
		{"everyone twice", "{users: ['*', '*']}", nil, false, false, []string{
			`authn.sourcehut.users[0]: "*" lets every account in; list names or "*", not both`,
			`authn.sourcehut.users[1]: "*" lets every account in; list names or "*", not both`,
			`authn.sourcehut.users[1]: "*" is listed already at [0]`,
		}},
		{"all at once", "{users: [~a, Bob, '*', ~a, 'sourcehut:c']}", nil, false, false, []string{
			`authn.sourcehut.users[0]: write the user name without ~ ("a")`,
			`authn.sourcehut.users[1]: "Bob" is not a Sourcehut user name (a lowercase letter or _, then lowercase letters, digits, _ and -)`,
			`authn.sourcehut.users[2]: "*" lets every account in; list names or "*", not both`,
			`authn.sourcehut.users[3]: write the user name without ~ ("a")`,
			`authn.sourcehut.users[3]: "~a" is listed already at [0]`,
			`authn.sourcehut.users[4]: write the bare user name ("c"): this list is Sourcehut's already`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, problems := parseProblems(t, "authn:\n  sourcehut: "+tt.sourcehut+"\n")
			checkProblems(t, problems, tt.problems)
			if tt.problems != nil {
				return
			}
			sh := c.Authn.Sourcehut
			if !reflect.DeepEqual(sh.Users, tt.users) {
				t.Errorf("Users = %#v, want %#v", sh.Users, tt.users)
			}
			if sh.AllUsers() != tt.allUsers || sh.CanLogIn() != tt.canLogIn {
				t.Errorf("AllUsers() = %v, CanLogIn() = %v; want %v, %v", sh.AllUsers(), sh.CanLogIn(), tt.allUsers, tt.canLogIn)
			}
		})
	}

	// The default lets nobody in.
	d := Default().Authn.Sourcehut
	if d.Users != nil || d.AllUsers() || d.CanLogIn() || !d.IsEnabled() {
		t.Errorf("default: Users %q, AllUsers %v, CanLogIn %v, IsEnabled %v; want nobody, on", d.Users, d.AllUsers(), d.CanLogIn(), d.IsEnabled())
	}
	// A list is not a single string.
	if _, err := Parse([]byte("authn: {sourcehut: {users: '*'}}")); err == nil || err.Error() != `line 1: authn.sourcehut.users: must be a list of strings, not "*" (a list of one is written ["*"])` {
		t.Errorf("users: '*' = %v, want a type problem", err)
	}
	// Validate checks a Config built in Go too.
	c := Default()
	c.Authn.Sourcehut.Users = []string{"~alice"}
	var ve *ValidationError
	if err := c.Validate(); !errors.As(err, &ve) || !reflect.DeepEqual(ve.Problems, []string{`authn.sourcehut.users[0]: write the user name without ~ ("alice")`}) {
		t.Errorf("Validate() with users [~alice] = %v", err)
	}
}

func TestProviders(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string
	}{
		{"default", func(*Config) {}, nil},
		{"htpasswd", func(c *Config) { c.Authn.Htpasswd = "h" }, []string{"htpasswd"}},
		{"sourcehut on, nobody listed", func(c *Config) { c.Authn.Sourcehut.Enabled = ptr(true) }, nil},
		{"sourcehut empty list", func(c *Config) { c.Authn.Sourcehut.Users = []string{} }, nil},
		{"sourcehut names", func(c *Config) { c.Authn.Sourcehut.Users = []string{"alice"} }, []string{"sourcehut"}},
		{"sourcehut everyone", func(c *Config) { c.Authn.Sourcehut.Users = []string{"*"} }, []string{"sourcehut"}},
		{"sourcehut off", func(c *Config) {
			c.Authn.Sourcehut.Users, c.Authn.Sourcehut.Enabled = []string{"*"}, ptr(false)
		}, nil},
		{"both", func(c *Config) { c.Authn.Htpasswd, c.Authn.Sourcehut.Users = "h", []string{"alice"} }, []string{"htpasswd", "sourcehut"}},
		{"both, sourcehut explicitly on", func(c *Config) {
			c.Authn.Htpasswd, c.Authn.Sourcehut.Users, c.Authn.Sourcehut.Enabled = "h", []string{"*"}, ptr(true)
		}, []string{"htpasswd", "sourcehut"}},
		{"htpasswd, sourcehut off", func(c *Config) {
			c.Authn.Htpasswd, c.Authn.Sourcehut.Users, c.Authn.Sourcehut.Enabled = "h", []string{"alice"}, ptr(false)
		}, []string{"htpasswd"}},
		{"htpasswd, sourcehut nobody", func(c *Config) { c.Authn.Htpasswd = "h" }, []string{"htpasswd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(&c)
			if got := c.Providers(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Providers() = %q, want %q", got, tt.want)
			}
			want := false
			for _, p := range tt.want {
				want = want || p == "sourcehut"
			}
			if c.Authn.Sourcehut.CanLogIn() != want {
				t.Errorf("CanLogIn() = %v, but Providers() = %q", c.Authn.Sourcehut.CanLogIn(), tt.want)
			}
		})
	}
}

func TestPrincipals(t *testing.T) {
	c, problems := parseProblems(t, `
authn: {htpasswd: h, sourcehut: {users: [carol]}}
groups:
  ci: ["sourcehut:carol", "htpasswd:bob"]
  admins: ["htpasswd:root"]
  empty: []
policy:
  data:
    public: ["htpasswd:not-a-member"]
    namespaces:
      team: {push: ["htpasswd:alice"], pull: ["*", "group:ci", "sourcehut:carol"]}
      docs: {pull: ["*"]}
      app: {delete: ["group:admins"]}
`)
	checkProblems(t, problems, nil)
	want := []PrincipalRef{
		{"groups.admins[0]", "htpasswd:root"},
		{"groups.ci[0]", "sourcehut:carol"},
		{"groups.ci[1]", "htpasswd:bob"},
		{"policy.data.namespaces.team.pull[2]", "sourcehut:carol"},
		{"policy.data.namespaces.team.push[0]", "htpasswd:alice"},
	}
	if got := c.Principals(); !reflect.DeepEqual(got, want) {
		t.Errorf("Principals() = %q\nwant %q", got, want)
	}

	// Resolved bare names are listed as the principals they became.
	c, problems = parseProblems(t, authnHtpasswd+"groups: {admins: [root]}\npolicy: {data: {namespaces: {team: {pull: [bob, '*']}}}}\n")
	checkProblems(t, problems, nil)
	want = []PrincipalRef{
		{"groups.admins[0]", "htpasswd:root"},
		{"policy.data.namespaces.team.pull[0]", "htpasswd:bob"},
	}
	if got := c.Principals(); !reflect.DeepEqual(got, want) {
		t.Errorf("Principals() = %q\nwant %q", got, want)
	}

	if got := Default().Principals(); len(got) != 0 {
		t.Errorf("Default().Principals() = %q", got)
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"default", "", nil},
		{"everyone with no login", `policy: {data: {namespaces: {team: {pull: ["*"]}}}}`, nil},
		{"bare names resolved", authnHtpasswd + "groups: {ci: [bob]}\npolicy: {data: {namespaces: {team: {pull: [alice, 'group:ci']}}}}\n", nil},
		{"listed Sourcehut users", authnBothListed + `groups: {ci: ["sourcehut:carol", "htpasswd:carol"]}`, nil},
		{"every Sourcehut user", authnSourcehutAll + `groups: {ci: ["sourcehut:anyone"]}`, nil},
		{"an empty group exists", authnHtpasswd + `groups: {ci: []}` + "\npolicy: {data: {namespaces: {team: {pull: ['group:ci']}}}}\n", nil},
		{
			"Sourcehut lets nobody in", authnHtpasswd + `groups: {ci: ["sourcehut:carol"]}`,
			[]string{"groups.ci[0]: sourcehut:carol matches nobody: Sourcehut login is off or lets nobody in (authn.sourcehut.users)"},
		},
		{
			"Sourcehut off", authnSourcehutOff + `groups: {ci: ["sourcehut:root"]}`,
			[]string{"groups.ci[0]: sourcehut:root matches nobody: Sourcehut login is off or lets nobody in (authn.sourcehut.users)"},
		},
		{
			"Sourcehut off, everyone listed", authnOnlyOff + `groups: {ci: ["sourcehut:root"]}`,
			[]string{"groups.ci[0]: sourcehut:root matches nobody: Sourcehut login is off or lets nobody in (authn.sourcehut.users)"},
		},
		{
			"Sourcehut user not listed", authnBothListed + `groups: {ci: ["sourcehut:carol", "sourcehut:dave", "sourcehut:carol_"]}`,
			[]string{
				`groups.ci[1]: sourcehut:dave may not log in: authn.sourcehut.users does not list "dave"`,
				`groups.ci[2]: sourcehut:carol_ may not log in: authn.sourcehut.users does not list "carol_"`,
			},
		},
		{
			"no htpasswd", authnSourcehutAll + `groups: {admins: ["htpasswd:root"]}`,
			[]string{"groups.admins[0]: htpasswd:root matches nobody: no htpasswd login is configured"},
		},
		{
			"no login at all", `groups: {admins: ["htpasswd:root", "sourcehut:root"]}`,
			[]string{
				"groups.admins[0]: htpasswd:root matches nobody: no htpasswd login is configured",
				"groups.admins[1]: sourcehut:root matches nobody: Sourcehut login is off or lets nobody in (authn.sourcehut.users)",
			},
		},
		{
			"unknown group", authnHtpasswd + "groups: {ci: [bob]}\npolicy: {data: {namespaces: {team: {pull: ['group:ci', 'group:nope'], push: ['group:admins']}}}}\n",
			[]string{
				"policy.data.namespaces.team.pull[1]: group:nope is no group of groups:, so it matches nobody",
				"policy.data.namespaces.team.push[0]: group:admins is no group of groups:, so it matches nobody",
			},
		},
		{
			"unknown group, no groups at all", "policy: {data: {namespaces: {team: {pull: ['group:ci']}}}}\n",
			[]string{"policy.data.namespaces.team.pull[0]: group:ci is no group of groups:, so it matches nobody"},
		},
		{
			"everything", `
authn: {sourcehut: {users: [carol]}}
groups: {admins: ["htpasswd:root"], ci: ["sourcehut:dave", carol]}
policy:
  data:
    namespaces:
      team: {pull: ["sourcehut:erin", "group:ci", "group:ops", carol], push: ["htpasswd:alice"]}
`,
			[]string{
				"groups.admins[0]: htpasswd:root matches nobody: no htpasswd login is configured",
				`groups.ci[0]: sourcehut:dave may not log in: authn.sourcehut.users does not list "dave"`,
				`policy.data.namespaces.team.pull[0]: sourcehut:erin may not log in: authn.sourcehut.users does not list "erin"`,
				"policy.data.namespaces.team.push[0]: htpasswd:alice matches nobody: no htpasswd login is configured",
				"policy.data.namespaces.team.pull[2]: group:ops is no group of groups:, so it matches nobody",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, problems := parseProblems(t, tt.doc)
			checkProblems(t, problems, nil)
			if got := c.Warnings(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Warnings() =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// TestPrincipalProblemsTogether: one file with many principal problems gets
// all of them in one *ValidationError, in a stable order.
func TestPrincipalProblemsTogether(t *testing.T) {
	doc := `
authn:
  htpasswd: h
  sourcehut: {users: [carol, "~dave", Erin, carol]}
groups:
  admins: [root, "github:root", "*"]
  ci: ["group:admins", "sourcehut:carol"]
  "a:b": [x]
policy:
  data:
    public: "library/*"
    namespaces:
      team: {pull: [bob, "Foo:bar", 7, "group:ci", "*"], push: ["group:"]}
`
	_, problems := parseProblems(t, doc)
	checkProblems(t, problems, []string{
		`authn.sourcehut.users[1]: write the user name without ~ ("dave")`,
		`authn.sourcehut.users[2]: "Erin" is not a Sourcehut user name (a lowercase letter or _, then lowercase letters, digits, _ and -)`,
		`authn.sourcehut.users[3]: "carol" is listed already at [0]`,
		"policy.data.public: must be a list of strings",
		"policy.data.namespaces.team.pull[2]: must be a string",
		"groups.a:b: " + groupNameProblem,
		`groups.admins[0]: "root" could be htpasswd:root or sourcehut:root: they are different people; write the one you mean`,
		`groups.admins[1]: "github:root": unknown provider "github"; principals are written htpasswd:NAME or sourcehut:NAME`,
		`groups.admins[2]: "*" (every authenticated identity) belongs in a namespace ACL, not in a group`,
		`groups.ci[0]: "group:admins": a group lists principals, not other groups`,
		`policy.data.namespaces.team.pull[0]: "bob" could be htpasswd:bob or sourcehut:bob: they are different people; write the one you mean`,
		`policy.data.namespaces.team.pull[1]: "Foo:bar" is not a principal: write htpasswd:NAME or sourcehut:NAME, or group:NAME`,
		`policy.data.namespaces.team.push[0]: "group:" names no group`,
	})
}

// TestParseRepeatable: Parse shares nothing between calls, so parsing the
// same bytes twice gives equal Configs, and changing one changes nothing
// else.
func TestParseRepeatable(t *testing.T) {
	for _, doc := range []string{
		authnHtpasswd + "groups: {admins: [root], ci: [bob, 'sourcehut:carol']}\npolicy: {data: {public: [a], namespaces: {team: {pull: [bob, '*', 'group:ci']}}}}\n",
		authnHtpasswd + "groups: {a: &m [bob], b: *m}\npolicy: {data: {namespaces: {team: {pull: &n [alice], push: *n}}}}\n",
	} {
		first, problems := parseProblems(t, doc)
		checkProblems(t, problems, nil)
		second, _ := parseProblems(t, doc)
		if !reflect.DeepEqual(first, second) {
			t.Fatalf("two parses differ:\n%#v\n%#v", first, second)
		}
		for g := range first.Groups {
			first.Groups[g][0] = "changed"
		}
		for _, acl := range first.Policy.Data["namespaces"].(map[string]any) {
			for _, members := range acl.(map[string]any) {
				members.([]any)[0] = "changed"
			}
		}
		third, _ := parseProblems(t, doc)
		if !reflect.DeepEqual(second, third) {
			t.Errorf("changing one parse's groups and data changed another's:\n%#v\n%#v", second, third)
		}
		for g, members := range third.Groups {
			if members[0] == "changed" {
				t.Errorf("groups.%s shares its members with another group: %q", g, members)
			}
		}
	}
	// Anchored member lists are resolved where they are used, each on its own.
	c, _ := parseProblems(t, authnHtpasswd+"groups: {a: &m [bob], b: *m}\npolicy: {data: {namespaces: {team: {pull: &n [alice], push: *n}}}}\n")
	c.Groups["a"][0] = "x"
	c.Policy.Data["namespaces"].(map[string]any)["team"].(map[string]any)["pull"].([]any)[0] = "x"
	if c.Groups["b"][0] != "htpasswd:bob" || c.Policy.Data["namespaces"].(map[string]any)["team"].(map[string]any)["push"].([]any)[0] != "htpasswd:alice" {
		t.Errorf("an anchored list is shared after Parse: %q, %v", c.Groups, c.Policy.Data)
	}
	// None of this leaked into the defaults.
	if d := Default(); d.Groups != nil || d.Policy.Data != nil || d.Authn.Sourcehut.Users != nil || d.Authn.Htpasswd != "" {
		t.Errorf("Default() changed: %+v", d)
	}
	if c, err := Parse(nil); err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("Parse(nil) = %+v, %v; want Default()", c, err)
	}
}

// TestResolveDoesNotWriteInput: Validate and resolvePrincipals return
// resolved copies and leave the Config they were given as it was.
func TestResolveDoesNotWriteInput(t *testing.T) {
	c := Default()
	c.Authn.Htpasswd = "h"
	c.Groups = map[string][]string{"admins": {"root", "sourcehut:carol"}}
	c.Policy.Data = map[string]any{"namespaces": map[string]any{"team": map[string]any{"pull": []any{"bob", "*", "group:admins"}}}}
	wantGroups := map[string][]string{"admins": {"root", "sourcehut:carol"}}
	wantData := map[string]any{"namespaces": map[string]any{"team": map[string]any{"pull": []any{"bob", "*", "group:admins"}}}}

	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Groups, wantGroups) || !reflect.DeepEqual(c.Policy.Data, wantData) {
		t.Errorf("Validate wrote into the Config: %q, %v", c.Groups, c.Policy.Data)
	}
	groups, data, problems := resolvePrincipals(c)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if !reflect.DeepEqual(groups, map[string][]string{"admins": {"htpasswd:root", "sourcehut:carol"}}) ||
		!reflect.DeepEqual(data, map[string]any{"namespaces": map[string]any{"team": map[string]any{"pull": []any{"htpasswd:bob", "*", "group:admins"}}}}) {
		t.Errorf("resolvePrincipals = %q, %v", groups, data)
	}
	if !reflect.DeepEqual(c.Groups, wantGroups) || !reflect.DeepEqual(c.Policy.Data, wantData) {
		t.Errorf("resolvePrincipals wrote into the Config: %q, %v", c.Groups, c.Policy.Data)
	}
	// The copies share nothing with the input.
	groups["admins"][1] = "x"
	data["namespaces"].(map[string]any)["team"].(map[string]any)["pull"].([]any)[1] = "x"
	if !reflect.DeepEqual(c.Groups, wantGroups) || !reflect.DeepEqual(c.Policy.Data, wantData) {
		t.Errorf("the resolved copies share memory with the Config: %q, %v", c.Groups, c.Policy.Data)
	}

	// Nothing to resolve: the result equals the input, nil stays nil.
	for _, in := range []Config{Default(), func() Config {
		d := Default()
		d.Groups = map[string][]string{}
		d.Policy.Data = map[string]any{}
		return d
	}()} {
		groups, data, problems := resolvePrincipals(in)
		if len(problems) > 0 || !reflect.DeepEqual(groups, in.Groups) || !reflect.DeepEqual(data, in.Policy.Data) {
			t.Errorf("resolvePrincipals(%v, %v) = %#v, %#v, %q", in.Groups, in.Policy.Data, groups, data, problems)
		}
	}
}

// TestConcurrentReaders: Validate, Principals and Warnings only read the
// Config, so one parsed Config may be shared (go test -race checks that no
// walk writes a member back when nothing changes).
func TestConcurrentReaders(t *testing.T) {
	c, problems := parseProblems(t, authnBothListed+`
groups: {admins: ["htpasswd:root"], ci: ["sourcehut:carol", "sourcehut:dave"]}
policy:
  data:
    namespaces:
      team: {pull: ["*", "group:ci", "group:nope", "htpasswd:bob"], push: ["sourcehut:carol"]}
`)
	checkProblems(t, problems, nil)
	want := c.Warnings()
	if len(want) != 2 {
		t.Fatalf("Warnings() = %q, want 2", want)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := c.Validate(); err != nil {
					t.Error(err)
				}
				if got := c.Warnings(); !reflect.DeepEqual(got, want) {
					t.Errorf("Warnings() = %q", got)
				}
				if len(c.Principals()) != 5 {
					t.Errorf("Principals() = %q", c.Principals())
				}
			}
		}()
	}
	wg.Wait()
}

func TestWalkNamespaceMembers(t *testing.T) {
	data := map[string]any{
		"namespaces": map[string]any{
			"b":    map[string]any{"push": []any{"x", 1, "y"}, "pull": []any{"z"}},
			"a":    map[string]any{"pull": []any{"w"}},
			"list": []any{"not", "an", "acl"},
			"str":  map[string]any{"pull": "not a list"},
		},
	}
	var keys []string
	walkNamespaceMembers(data, func(key, m string) string {
		keys = append(keys, key+"="+m)
		return strings.ToUpper(m)
	})
	wantKeys := []string{
		"policy.data.namespaces.a.pull[0]=w",
		"policy.data.namespaces.b.pull[0]=z",
		"policy.data.namespaces.b.push[0]=x",
		"policy.data.namespaces.b.push[2]=y",
	}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("visited %q, want %q", keys, wantKeys)
	}
	want := map[string]any{
		"namespaces": map[string]any{
			"b":    map[string]any{"push": []any{"X", 1, "Y"}, "pull": []any{"Z"}},
			"a":    map[string]any{"pull": []any{"W"}},
			"list": []any{"not", "an", "acl"},
			"str":  map[string]any{"pull": "not a list"},
		},
	}
	if !reflect.DeepEqual(data, want) {
		t.Errorf("data = %v, want %v", data, want)
	}
	// Shapes it cannot walk are skipped, not a panic.
	for _, d := range []map[string]any{nil, {}, {"namespaces": nil}, {"namespaces": "x"}, {"namespaces": []any{"x"}}} {
		walkNamespaceMembers(d, func(key, m string) string { t.Errorf("visited %s in %v", key, d); return m })
	}
}

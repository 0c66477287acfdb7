package authz_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/authz"
	"git.sr.ht/~zozs/srht-registry/internal/testcheck"
	"git.sr.ht/~zozs/srht-registry/policy"
)

// compileEmbedded compiles the embedded policy with data as policy.data,
// as the server does.
func compileEmbedded(data map[string]any) error {
	_, err := authz.Compile(context.Background(), authz.LocalPolicy(data, nil, "", 0))
	return err
}

// TestPolicyDataTypos: data the default policy would silently ignore or
// fail on is refused when the policy loads, naming the key path.
func TestPolicyDataTypos(t *testing.T) {
	acl := func(action string, members ...any) map[string]any {
		return map[string]any{"namespaces": map[string]any{"team": map[string]any{action: members}}}
	}
	tests := []struct {
		name string
		data map[string]any
		want []string // each must be in the error
	}{
		{"misspelt public", map[string]any{"publc": []any{"library/*"}},
			[]string{`policy data: registry.publc: unknown key (did you mean "public"?)`}},
		{"namespace for namespaces", map[string]any{"namespace": map[string]any{}},
			[]string{`registry.namespace: unknown key (did you mean "namespaces"?)`}},
		{"misspelt reserved", map[string]any{"reseved": []any{"admin"}},
			[]string{`registry.reseved: unknown key (did you mean "reserved"?)`}},
		{"a key the policy does not read", map[string]any{"mirror": []any{"x/*"}},
			[]string{`registry.mirror: unknown key (known keys: namespaces, oidc, public, reserved)`}},
		{"the package's name", map[string]any{"authz": true}, []string{`registry.authz: unknown key`}},
		{"public a string", map[string]any{"public": "library/*"}, []string{`registry.public: must be a list, not a string`}},
		{"public entry a number", map[string]any{"public": []any{"library/*", 1}}, []string{`registry.public[1]: must be a string, not a number`}},
		{"public entry empty", map[string]any{"public": []any{""}}, []string{`registry.public[0]: must not be empty`}},
		{"reserved a map", map[string]any{"reserved": map[string]any{"admin": true}}, []string{`registry.reserved: must be a list, not a map`}},
		{"reserved uppercase", map[string]any{"reserved": []any{"Admin"}}, []string{`registry.reserved[0]: "Admin" must be one lowercase repository path component`}},
		{"reserved with a slash", map[string]any{"reserved": []any{"a/b"}}, []string{`registry.reserved[0]: "a/b" must be`}},
		{"namespaces a list", map[string]any{"namespaces": []any{"team"}}, []string{`registry.namespaces: must be a map, not a list`}},
		{"namespace a list", map[string]any{"namespaces": map[string]any{"team": []any{"htpasswd:bob"}}},
			[]string{`registry.namespaces.team: must be a map, not a list`}},
		{"namespace name uppercase", map[string]any{"namespaces": map[string]any{"Team": map[string]any{}}},
			[]string{`registry.namespaces: key "Team" must be a repository namespace`}},
		{"misspelt action", acl("psuh", "htpasswd:alice"), []string{`registry.namespaces.team.psuh: unknown key (did you mean "push"?)`}},
		{"unknown action", acl("write", "htpasswd:alice"), []string{`registry.namespaces.team.write: unknown key (known keys: *, delete, pull, push)`}},
		{"members a string", map[string]any{"namespaces": map[string]any{"team": map[string]any{"push": "htpasswd:alice"}}},
			[]string{`registry.namespaces.team.push: must be a list, not a string`}},
		{"member a number", acl("push", 1), []string{`policy data: registry.namespaces.team.push[0]: must be a string, not a number`}},
		{"member a bare name", acl("pull", "htpasswd:alice", "bob"),
			[]string{`registry.namespaces.team.pull[1]: "bob" must be a principal ("provider:name"`}},
		{"member group without a name", acl("pull", "group:"), []string{`registry.namespaces.team.pull[0]: "group:" must be`}},
		{"nested namespace", map[string]any{"namespaces": map[string]any{"alice/shared": map[string]any{"pull": "htpasswd:bob"}}},
			[]string{`registry.namespaces["alice/shared"].pull: must be a list, not a string`}},
		{"the * action", map[string]any{"namespaces": map[string]any{"ops": map[string]any{"*": []any{2}}}},
			[]string{`registry.namespaces.ops["*"][0]: must be a string, not a number`}},
		{"oidc a map", map[string]any{"oidc": map[string]any{"github": map[string]any{}}}, []string{`registry.oidc: must be a list, not a map`}},
		{"oidc rule empty", map[string]any{"oidc": []any{map[string]any{}}},
			[]string{`registry.oidc[0]: missing "provider", "claims", "repositories" and "actions"`}},
		{"oidc rule misspelt", map[string]any{"oidc": []any{map[string]any{"provider": "github", "claim": map[string]any{"a": "b"}, "repositories": []any{"x/*"}, "actions": []any{"psuh"}}}},
			[]string{`registry.oidc[0]: missing "claims"`, `registry.oidc[0].claim: unknown key (did you mean "claims"?)`,
				`registry.oidc[0].actions[0]: "psuh" is not one of "pull", "push", "delete", "*" (did you mean "push"?)`}},
		{"oidc rule empty lists", map[string]any{"oidc": []any{map[string]any{"provider": "github", "claims": map[string]any{}, "repositories": []any{}, "actions": []any{}}}},
			[]string{`registry.oidc[0].actions: must not be empty`, `registry.oidc[0].claims: must not be empty`, `registry.oidc[0].repositories: must not be empty`}},
		{"oidc provider", map[string]any{"oidc": []any{map[string]any{"provider": "GitHub", "claims": map[string]any{"a": "b"}, "repositories": []any{"x/*"}, "actions": []any{"pull"}}}},
			[]string{`registry.oidc[0].provider: "GitHub" must be the name of an authn.oidc entry`}},
		{"oidc claim patterns", map[string]any{"oidc": []any{map[string]any{"provider": "github", "repositories": []any{"x/*"}, "actions": []any{"pull"},
			"claims": map[string]any{"a": nil, "b": []any{}, "c": map[string]any{}, "d": "refs/[ab]", "e": []any{map[string]any{"x": "y"}}, "kubernetes.io": map[string]any{"namespace": "ci{a,b}"}}}}},
			[]string{`registry.oidc[0].claims.a: must be a glob ("refs/tags/v*"), true or false, a number, a non-empty list of those (any one matches), or a map matching a nested claim object key by key, not null`,
				`registry.oidc[0].claims.b: must not be empty`, `registry.oidc[0].claims.c: must not be empty`,
				`registry.oidc[0].claims.d: "refs/[ab]" must be a glob of the claim's value`,
				`registry.oidc[0].claims.e[0]: must be a glob, true or false, or a number, not a map`,
				`registry.oidc[0].claims["kubernetes.io"].namespace: "ci{a,b}" must be a glob of the claim's value`}},
		{"oidc repository patterns", map[string]any{"oidc": []any{map[string]any{"provider": "github", "claims": map[string]any{"a": "b"}, "actions": []any{"pull"},
			"repositories": []any{"{a,b}/x", "x/[ab]", "{}", "{repository", "ok/{repository}/**"}}}},
			[]string{`registry.oidc[0].repositories[0]: "{a,b}/x" must be a glob pattern of repository names`, `registry.oidc[0].repositories[1]: "x/[ab]" must be`,
				`registry.oidc[0].repositories[2]: "{}" must be`, `registry.oidc[0].repositories[3]: "{repository" must be`}},
		{"every problem at once", map[string]any{"publc": []any{}, "reserved": []any{3}},
			[]string{`registry.publc: unknown key`, `; registry.reserved[0]: must be a string`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := compileEmbedded(tt.data)
			if err == nil {
				t.Fatalf("data %v loaded", tt.data)
			}
			var de *authz.DataError
			if !errors.As(err, &de) || len(de.Problems) == 0 {
				t.Errorf("error %v (%T) is no *authz.DataError with problems", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n\t%v\ndoes not contain\n\t%s", err, w)
				}
			}
			for _, bad := range []string{"map[string]", "[]interface", "float64", "json.Number", "mem:///"} {
				if strings.Contains(err.Error(), bad) {
					t.Errorf("error %q mentions %q", err, bad)
				}
			}
		})
	}
}

// TestPolicyDataGood: data the default policy understands loads, from none
// at all to every key.
func TestPolicyDataGood(t *testing.T) {
	for name, data := range map[string]map[string]any{
		"nil":                  nil,
		"empty":                {},
		"empty lists and maps": {"public": []any{}, "reserved": []any{}, "namespaces": map[string]any{}},
		"every key": {
			"public":   []any{"library/*", "mirror/**", "*/public", "**"},
			"reserved": []any{"admin", "v2", "my.team", "a_b", "a__b", "a--b"},
			"namespaces": map[string]any{
				"team":         map[string]any{"pull": []any{"*"}, "push": []any{"htpasswd:alice", "sourcehut:carol", "group:ci"}, "delete": []any{}},
				"ops":          map[string]any{"*": []any{"group:ops"}},
				"alice/shared": map[string]any{"pull": []any{"oidc-corp:bob@example.com"}},
				"empty":        map[string]any{},
			},
			"oidc": []any{
				map[string]any{"provider": "github", "claims": map[string]any{"repository_owner": "octo-org", "ref": []any{"refs/heads/main", "refs/tags/v*"}},
					"repositories": []any{"{repository}", "{repository}/*"}, "actions": []any{"pull", "push"}},
				map[string]any{"provider": "gitlab", "claims": map[string]any{"project_path": "group/*", "ref_protected": "true", "project_id": 42.0},
					"repositories": []any{"gl/{project_path}/**"}, "actions": []any{"*"}},
				map[string]any{"provider": "k8s", "claims": map[string]any{"kubernetes.io": map[string]any{"namespace": []any{"ci", "build-*"}, "serviceaccount": map[string]any{"name": "puller"}}},
					"repositories": []any{"apps/**"}, "actions": []any{"pull"}},
			},
		},
		"YAML-decoded types": {"public": []string{"library/*"}, "namespaces": map[string]map[string][]string{"team": {"pull": {"*"}}},
			"oidc": []map[string]any{{"provider": "ci", "claims": map[string]any{"protected": true, "id": 7, "ids": []int{1, 2}}, "repositories": []string{"ci/*"}, "actions": []string{"pull"}}}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := compileEmbedded(data); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPolicyDataSchemaOnlyWhenAsked: Options without DataSchema keep
// accepting any data (a policy of one's own reads what it likes).
func TestPolicyDataSchemaOnlyWhenAsked(t *testing.T) {
	src := "package registry.authz\n\nallow contains a if some a in data.registry.grant[input.identity.subject]"
	if _, err := authz.Compile(context.Background(), authz.Options{Modules: modules(map[string]string{"p.rego": src}),
		Data: map[string]any{"grant": map[string]any{"alice": []any{"pull"}}}}); err != nil {
		t.Fatal(err)
	}
	// With the default policy's schema the same data is refused.
	_, err := authz.Compile(context.Background(), authz.Options{Modules: modules(map[string]string{"p.rego": src}),
		Data: map[string]any{"grant": map[string]any{}}, DataSchema: policy.DataSchema()})
	if err == nil || !strings.Contains(err.Error(), "registry.grant: unknown key") {
		t.Fatalf("err = %v, want registry.grant refused", err)
	}
}

// TestNoAllowRefused: a policy that defines no allow at the query path
// would grant nothing, ever; it does not load.
func TestNoAllowRefused(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		query string
		want  string
	}{
		{"no allow", map[string]string{"p.rego": "package registry.authz\n\ndeny contains \"x\" if false\n\nhelper := 1"}, "",
			"policy: package registry.authz has no allow rule (found: deny, helper); nothing would ever be granted"},
		{"allow misspelt", map[string]string{"p.rego": "package registry.authz\n\nalow contains \"pull\"\n\ndeny contains \"x\" if false"}, "",
			`policy: package registry.authz has no allow rule (found: alow, deny; is "alow" misspelt?)`},
		{"Allow capitalised", map[string]string{"p.rego": "package registry.authz\n\nAllow contains \"pull\""}, "",
			`has no allow rule (found: Allow; is "Allow" misspelt?)`},
		{"wrong package", map[string]string{"p.rego": "package registry.authx\n\nallow contains \"pull\""}, "",
			`policy: no module declares package registry.authz, where allow is read (found: registry.authx; is "registry.authx" misspelt?); nothing would ever be granted`},
		{"another package entirely", map[string]string{"p.rego": "package acme.rules\n\nallow contains \"pull\""}, "",
			"no module declares package registry.authz, where allow is read (found: acme.rules)"},
		{"query names another package", map[string]string{"p.rego": "package registry.authz\n\nallow contains \"pull\""}, "data.acme.rules",
			"no module declares package acme.rules, where allow is read (found: registry.authz)"},
		{"allow in a subpackage only", map[string]string{"p.rego": "package registry.authz.helpers\n\nallow contains \"pull\""}, "",
			"package registry.authz has no allow rule (found: helpers)"},
		{"allow in the parent package only", map[string]string{"p.rego": "package registry\n\nallow contains \"pull\"\n\nx := 1"}, "",
			"no module declares package registry.authz"},
		{"package declared, rules elsewhere", map[string]string{
			"a.rego": "package registry.authz\n\nimport rego.v1\n",
			"b.rego": "package other\n\nallow contains \"pull\"",
		}, "", "package registry.authz has no allow rule (no rules)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authz.Compile(context.Background(), authz.Options{Modules: modules(tt.files), Query: tt.query})
			if !errors.Is(err, authz.ErrNoAllow) {
				t.Fatalf("err = %v, want ErrNoAllow", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n\t%v\ndoes not contain\n\t%s", err, tt.want)
			}
		})
	}
}

// TestAllowAccepted: every way of defining allow at the query path loads.
func TestAllowAccepted(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"multi-value":                      {"p.rego": "package registry.authz\n\nallow contains \"pull\""},
		"complete":                         {"p.rego": "package registry.authz\n\nallow := {\"pull\"}"},
		"default only":                     {"p.rego": "package registry.authz\n\ndefault allow := set()"},
		"conditional":                      {"p.rego": "package registry.authz\n\nallow contains \"pull\" if input.scope.name == \"x/y\""},
		"with else":                        {"p.rego": "package registry.authz\n\nallow := {\"pull\"} if input.version == 2\n\telse := set()"},
		"in another module":                {"a.rego": "package registry.authz\n\ndeny contains \"x\" if false", "b.rego": "package registry.authz\n\nallow := {\"*\"}"},
		"ref head from the parent package": {"p.rego": "package registry\n\nauthz.allow contains \"pull\""},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := authz.Compile(context.Background(), authz.Options{Modules: modules(files)}); err != nil {
				t.Fatal(err)
			}
		})
	}
	// The embedded policy, and with a custom query a package of one's own.
	if err := compileEmbedded(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := authz.Compile(context.Background(), authz.Options{Query: "data.acme.rules",
		Modules: modules(map[string]string{"p.rego": "package acme.rules\n\nallow contains \"pull\""})}); err != nil {
		t.Fatal(err)
	}
}

// writeBundle writes a bundle directory: a manifest, a policy, data and,
// unless schema is "", a data schema.
func writeBundle(t *testing.T, rego, data, schema string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		".manifest":   `{"revision": "test-1", "roots": ["registry"], "rego_version": 1}`,
		"authz.rego":  rego,
		"data.json":   data,
		"README.md":   "not part of the policy",
		"x_test.rego": "package registry.authz_test\n\ntest_x if true",
	}
	if schema != "" {
		files[authz.BundleDataSchema] = schema
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tarball packs a bundle directory as a .tar.gz with names under prefix
// ("", "/" or "./": each is a bundle's root to OPA).
func tarball(t *testing.T, dir, prefix string) string {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		src, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: prefix + e.Name(), Mode: 0o644, Size: int64(len(src)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(src); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const (
	groupsRego = "package registry.authz\n\nallow contains \"pull\" if some _ in data.registry.groups\n"
	// groupsSchema: data.registry.groups maps a group to principals.
	groupsSchema = `{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": false,
	"properties": {"registry": {"type": "object", "additionalProperties": false, "properties": {
		"groups": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}}}}}`
)

// TestBundleDataSchema: a local bundle with data.schema.json at its root,
// a directory or a tarball, has its data checked at load.
func TestBundleDataSchema(t *testing.T) {
	good := `{"registry": {"groups": {"admins": ["htpasswd:root"]}}}`
	tests := []struct {
		name, data, schema string
		want               string // "" = loads
	}{
		{"good data", good, groupsSchema, ""},
		{"no schema, anything goes", `{"registry": {"grups": 1}}`, "", ""},
		{"misspelt key", `{"registry": {"grups": {}}}`, groupsSchema, `: data: registry.grups: unknown key (did you mean "groups"?)`},
		{"wrong type deep down", `{"registry": {"groups": {"admins": ["htpasswd:root", true]}}}`, groupsSchema,
			`: data: registry.groups.admins[1]: must be a string, not true or false`},
		{"not JSON", good, `{"type": `, `bundle `},
		{"not a schema", good, `{"type": "strng"}`, `data.schema.json: not a valid JSON schema: type: "strng" is not one of "array", "boolean", "integer", "null", "number", "object", "string" (did you mean "string"?)`},
		{"a $ref elsewhere", good, `{"$ref": "file:///etc/passwd"}`, `may not refer to another document`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeBundle(t, groupsRego, tt.data, tt.schema)
			for _, p := range []string{dir, tarball(t, dir, ""), tarball(t, dir, "/"), tarball(t, dir, "./")} {
				_, err := authz.Compile(context.Background(), authz.LocalPolicy(nil, []string{p}, "", 0))
				if tt.want == "" {
					if err != nil {
						t.Errorf("%s: %v", p, err)
					}
					continue
				}
				if err == nil {
					t.Errorf("%s loaded", p)
					continue
				}
				if !strings.Contains(err.Error(), "bundle "+p) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: error\n\t%v\ndoes not name the bundle or contain\n\t%s", p, err, tt.want)
				}
			}
		})
	}
}

// TestBundleDataSchemaNotInData: the schema file is not data: the policy
// does not see it, and OPA's roots check does not count it.
func TestBundleDataSchemaNotInData(t *testing.T) {
	dir := writeBundle(t, groupsRego, `{"registry": {"groups": {}}}`, groupsSchema)
	b, err := authz.LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Data) != 1 || b.Data["registry"] == nil {
		t.Errorf("bundle data %v, want only registry", b.Data)
	}
	schema, err := authz.ReadBundleDataSchema(dir)
	if err != nil || string(schema) != groupsSchema {
		t.Errorf("ReadBundleDataSchema = %q, %v", schema, err)
	}
	if s, err := authz.ReadBundleDataSchema(writeBundle(t, groupsRego, `{}`, "")); s != nil || err != nil {
		t.Errorf("no schema: %q, %v", s, err)
	}
}

// TestBundleWithoutAllowRefused: the allow check holds for bundles too.
func TestBundleWithoutAllowRefused(t *testing.T) {
	dir := writeBundle(t, "package registry.authz\n\nallows contains \"pull\"\n", `{}`, "")
	_, err := authz.Compile(context.Background(), authz.LocalPolicy(nil, []string{dir}, "", 0))
	if !errors.Is(err, authz.ErrNoAllow) || !strings.Contains(err.Error(), `found: allows; is "allows" misspelt?`) {
		t.Fatalf("err = %v, want ErrNoAllow naming allows", err)
	}
}

// syncBuffer is a log sink that tests can read while the server writes.
type syncBuffer = testcheck.LogBuffer

// TestRemoteRefusesNoAllow: a downloaded bundle without allow is not
// swapped in; the previous policy stays in force.
func TestRemoteRefusesNoAllow(t *testing.T) {
	var mu sync.Mutex
	var body []byte
	set := func(revision, rego string) {
		b := bundleBytes(t, revision, rego)
		mu.Lock()
		body = b
		mu.Unlock()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = w.Write(body)
	}))
	defer srv.Close()

	set("v1", "package registry.authz\n\nallow contains \"pull\"\n")
	logs := &syncBuffer{}
	config := `{"services": {"s": {"url": "` + srv.URL + `"}},
		"bundles": {"registry": {"service": "s", "resource": "/bundle.tar.gz", "polling": {"min_delay_seconds": 1, "max_delay_seconds": 1}}}}`
	ctx := context.Background()
	r, err := authz.StartRemote(ctx, authz.RemoteOptions{Config: []byte(config), Wait: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx)
	if got := r.Authorizer().Engine().Revision(); got != "registry@v1" {
		t.Fatalf("revision %q, want registry@v1", got)
	}

	set("v2", "package registry.authz\n\nalow contains \"pull\"\n")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "no allow rule") {
		if time.Now().After(deadline) {
			t.Fatalf("v2 was not refused in time; logs:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `is \"alow\" misspelt?`) {
		t.Errorf("the refusal does not name alow:\n%s", logs)
	}
	if got := r.Authorizer().Engine().Revision(); got != "registry@v1" {
		t.Errorf("revision %q after a bundle without allow, want registry@v1 still", got)
	}
}

// TestDataErrorProblems: each problem is a path and a message, so a caller
// can report them its own way (policy.data.publc, say).
func TestDataErrorProblems(t *testing.T) {
	err := compileEmbedded(map[string]any{"reserved": []any{1}, "publc": []any{}})
	var de *authz.DataError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want a *DataError", err)
	}
	want := []authz.DataProblem{
		{Path: "registry.publc", Message: `unknown key (did you mean "public"?)`},
		{Path: "registry.reserved[0]", Message: "must be a string, not a number"},
	}
	if de.Source != "policy data" || !slices.Equal(de.Problems, want) {
		t.Errorf("DataError = %+v, want source policy data and problems %+v", de, want)
	}
}

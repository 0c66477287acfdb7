package policy_test

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	"git.sr.ht/~zozs/srht-registry/internal/authz"
	"git.sr.ht/~zozs/srht-registry/internal/regotest"
	"git.sr.ht/~zozs/srht-registry/policy"
)

// TestDataSchemaCoversThePolicy: the schema allows exactly the keys of
// data.registry the policy reads, so a key the policy reads is never
// refused and a key it does not read is never silently accepted.
func TestDataSchemaCoversThePolicy(t *testing.T) {
	read := regotest.RegistryKeysRead(slices.Collect(maps.Values(loadModules(t, policy.FS()))))
	allowed := regotest.RegistryKeysAllowed(t, policy.DataSchema())
	if !slices.Equal(read, allowed) {
		t.Errorf("authz.rego reads data.registry keys %v; data.schema.json allows %v", read, allowed)
	}
	if len(read) == 0 {
		t.Error("the policy reads no data.registry key")
	}
}

// TestDataSchema: documents the default policy understands match it, near
// misses do not, and each near miss is named by its path.
func TestDataSchema(t *testing.T) {
	s, err := authz.CompileDataSchema(policy.DataSchema())
	if err != nil {
		t.Fatal(err)
	}
	valid := []string{
		`{}`,
		`{"registry": {}}`,
		`{"registry": {"public": ["library/*"]}}`,
		`{"registry": {"public": [], "reserved": [], "namespaces": {}}}`,
		`{"registry": {"public": ["library/*", "mirror/**"], "reserved": ["admin", "v2"],
			"namespaces": {"team": {"pull": ["htpasswd:bob", "group:ci"], "push": ["sourcehut:alice"], "delete": [], "*": ["*"]},
				"alice/shared": {"pull": ["*"]}, "ops": {}}}}`,
		`{"registry": {"oidc": []}}`,
		`{"registry": {"oidc": [
			{"provider": "github", "claims": {"repository_owner": "octo-org", "repository_owner_id": "123456", "ref": ["refs/heads/main", "refs/tags/v*"]},
				"repositories": ["{repository}", "{repository}/*", "gh/{repository_owner}/**"], "actions": ["pull", "push"]},
			{"provider": "gitlab", "claims": {"project_path": "my-group/*", "ref_protected": "true", "project_id": 42, "draft": false, "any": "*", "empty": ""},
				"repositories": ["gl/{project_path}"], "actions": ["*"]},
			{"provider": "k8s-prod", "claims": {"kubernetes.io": {"namespace": ["ci", "build-*"], "serviceaccount": {"name": "builder"}}},
				"repositories": ["base/*", "library/**"], "actions": ["pull", "delete"]},
			{"provider": "ci_2", "claims": {"https://example.com/roles": [true, 1, "x?"]}, "repositories": ["{https://example.com/team}/x"], "actions": ["pull"]}]}}`,
	}
	for _, doc := range valid {
		if err := s.Check("policy data", decode(t, doc)); err != nil {
			t.Errorf("%s: %v", doc, err)
		}
	}
	invalid := map[string]string{
		`{"registry": {"publc": []}}`:                                        `registry.publc: unknown key (did you mean "public"?)`,
		`{"registry": {"public": "library/*"}}`:                              `registry.public: must be a list, not a string`,
		`{"registry": {"public": [null]}}`:                                   `registry.public[0]: must be a string, not null`,
		`{"registry": {"reserved": ["V2"]}}`:                                 `registry.reserved[0]: "V2" must be`,
		`{"registry": {"namespaces": {"team": {"pul": []}}}}`:                `registry.namespaces.team.pul: unknown key (did you mean "pull"?)`,
		`{"registry": {"namespaces": {"team": {"push": [1]}}}}`:              `registry.namespaces.team.push[0]: must be a string, not a number`,
		`{"registry": {"namespaces": {"team": {"push": ["alice"]}}}}`:        `registry.namespaces.team.push[0]: "alice" must be a principal`,
		`{"registry": {"namespaces": {"team/": {}}}}`:                        `registry.namespaces: key "team/" must be a repository namespace`,
		`{"registry": {"namespaces": {"team": {"pull": {"x": 1}}}}}`:         `registry.namespaces.team.pull: must be a list, not a map`,
		`{"registry": {"namespaces": {"a.b": {"pull": ["htpasswd:x", 2]}}}}`: `registry.namespaces["a.b"].pull[1]: must be a string`,
		`{"registry": []}`:                       `registry: must be a map, not a list`,
		`{"registry": {"oidc": {"github": {}}}}`: `registry.oidc: must be a list, not a map`,
		`{"registry": {"oidc": [{}]}}`:           `registry.oidc[0]: missing "provider", "claims", "repositories" and "actions"`,
		`{"registry": {"oidc": [{"provider": "github", "claims": {"a": "b"}, "repositories": ["x"], "actions": ["pull"], "issuer": "x"}]}}`:            `registry.oidc[0].issuer: unknown key`,
		`{"registry": {"oidc": [{"provider": "GitHub", "claims": {"a": "b"}, "repositories": ["x"], "actions": ["pull"]}]}}`:                           `registry.oidc[0].provider: "GitHub" must be the name of an authn.oidc entry`,
		`{"registry": {"oidc": [{"provider": "github", "claims": {}, "repositories": ["x"], "actions": ["pull"]}]}}`:                                   `registry.oidc[0].claims: must not be empty`,
		`{"registry": {"oidc": [{"provider": "github", "claims": {"a": "b"}, "repositories": [], "actions": ["pull"]}]}}`:                              `registry.oidc[0].repositories: must not be empty`,
		`{"registry": {"oidc": [{"provider": "github", "claims": {"a": "b"}, "repositories": ["x"], "actions": []}]}}`:                                 `registry.oidc[0].actions: must not be empty`,
		`{"registry": {"oidc": [{"provider": "github", "claims": {"a": "b"}, "repositories": ["x"], "actions": ["psuh"]}]}}`:                           `registry.oidc[0].actions[0]: "psuh" is not one of "pull", "push", "delete", "*" (did you mean "push"?)`,
		`{"registry": {"oidc": [{"provider": "github", "claims": {"ref": "refs/{heads,tags}/*"}, "repositories": ["x"], "actions": ["pull"]}]}}`:       `registry.oidc[0].claims.ref: "refs/{heads,tags}/*" must be a glob of the claim's value`,
		`{"registry": {"oidc": [{"provider": "github", "claims": {"ref": "refs/[a]"}, "repositories": ["x"], "actions": ["pull"]}]}}`:                  `registry.oidc[0].claims.ref: "refs/[a]" must be a glob`,
		`{"registry": {"oidc": [{"provider": "github", "claims": {"ref": null}, "repositories": ["x"], "actions": ["pull"]}]}}`:                        `registry.oidc[0].claims.ref: must be a glob ("refs/tags/v*"), true or false, a number, a non-empty list of those (any one matches), or a map matching a nested claim object key by key, not null`,
		`{"registry": {"oidc": [{"provider": "github", "claims": {"ref": []}, "repositories": ["x"], "actions": ["pull"]}]}}`:                          `registry.oidc[0].claims.ref: must not be empty`,
		`{"registry": {"oidc": [{"provider": "github", "claims": {"ref": [["a"]]}, "repositories": ["x"], "actions": ["pull"]}]}}`:                     `registry.oidc[0].claims.ref[0]: must be a glob, true or false, or a number, not a list`,
		`{"registry": {"oidc": [{"provider": "k8s", "claims": {"kubernetes.io": {}}, "repositories": ["x"], "actions": ["pull"]}]}}`:                   `registry.oidc[0].claims["kubernetes.io"]: must not be empty`,
		`{"registry": {"oidc": [{"provider": "k8s", "claims": {"kubernetes.io": {"namespace": "c{i"}}, "repositories": ["x"], "actions": ["pull"]}]}}`: `registry.oidc[0].claims["kubernetes.io"].namespace: "c{i" must be a glob`,
		`{"registry": {"oidc": [{"provider": "github", "claims": {"a": "b"}, "repositories": ["{a,b}/x"], "actions": ["pull"]}]}}`:                     `registry.oidc[0].repositories[0]: "{a,b}/x" must be a glob pattern of repository names`,
		`{"registry": {"oidc": [{"provider": "github", "claims": {"a": "b"}, "repositories": ["{repository"], "actions": ["pull"]}]}}`:                 `registry.oidc[0].repositories[0]: "{repository" must be`,
		`{"registry": {"oidc": [{"provider": "github", "claims": {"a": "b"}, "repositories": ["{}/x"], "actions": ["pull"]}]}}`:                        `registry.oidc[0].repositories[0]: "{}/x" must be`,
		`{"registry": {"oidc": [{"provider": "github", "claims": {"a": "b"}, "repositories": ["x/[ab]"], "actions": ["pull"]}]}}`:                      `registry.oidc[0].repositories[0]: "x/[ab]" must be`,
	}
	for doc, want := range invalid {
		err := s.Check("policy data", decode(t, doc))
		if err == nil || !strings.Contains(err.Error(), "policy data: "+want) {
			t.Errorf("%s: error %v, want %s", doc, err, want)
		}
	}
}

func decode(t *testing.T, doc string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	return v
}

// TestStockOPATest loads this directory as stock `opa test policy/` does:
// every .rego file as a module and every .json file (the schemas too) as
// data, merged at the root. Two schemas with the same top-level scalar key
// would not merge, and opa test would fail before running a test.
func TestStockOPATest(t *testing.T) {
	res, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).Filtered([]string{"."}, nil)
	if err != nil {
		t.Fatalf("loading the directory as opa test does: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := inmem.NewFromObject(res.Documents)
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().
		SetStore(store).
		SetModules(res.ParsedModules()).
		SetDefaultRegoVersion(ast.RegoV1).
		SetTimeout(10*time.Second).
		RunTests(ctx, txn)
	if err != nil {
		t.Fatalf("compiling policy and tests: %v", err)
	}
	regotest.RequireAllPass(t, ch)
}

package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/policy"
)

// The fast path (issue 16) must not change a decision: the rules that read
// no input are remembered per engine (staticValues), the input is built as
// OPA's value with only the fields the policy reads (inputShape), and the
// default policy was rewritten. These tests decide a generated set of
// inputs each way and compare.

// generatedIdentities are identities of every kind, with the edges the
// default policy cares about (site names as namespaces, admins, read-only
// and read-write Sourcehut tokens, refresh tokens of each login, OIDC
// claims that match, miss, or try to widen a pattern).
func generatedIdentities() []identity.Identity {
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	grants := func(access string) []identity.Grant {
		return []identity.Grant{{Service: "registry.example.com", Scope: "REGISTRY", Access: access}}
	}
	github := func(claims map[string]any) *identity.OIDC {
		c := map[string]any{"iss": "https://token.actions.githubusercontent.com", "sub": "repo:octo-org/app:ref:refs/heads/main",
			"repository": "octo-org/app", "repository_owner": "octo-org", "ref": "refs/heads/main", "ref_type": "branch",
			"iat": json.Number("1764504000"), "ref_protected": "true"}
		for k, v := range claims {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return &identity.OIDC{Issuer: "https://token.actions.githubusercontent.com", Claims: c}
	}
	k8s := &identity.OIDC{Issuer: "https://kubernetes.default.svc", Claims: map[string]any{
		"sub": "system:serviceaccount:ci:builder", "kubernetes.io": map[string]any{"namespace": "ci", "serviceaccount": map[string]any{"name": "builder"}}}}
	ids := []identity.Identity{
		identity.Anonymous,
		{Method: identity.MethodAnonymous, Subject: "", Groups: []string{"admins"}},
	}
	for _, who := range []struct {
		name, ns string
		groups   []string
	}{
		{"alice", "alice", []string{"ci"}}, {"bob", "bob", nil}, {"root", "root", []string{"admins"}},
		{"team", "team", nil}, {"library", "library", []string{"ci"}}, {"admin", "admin", nil}, {"carol", "", []string{"ops", "ci"}},
	} {
		ids = append(ids,
			identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: who.name, Namespace: who.ns, Groups: who.groups},
			identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: who.name, Namespace: who.ns, Groups: who.groups},
		)
		for _, sh := range []*identity.Sourcehut{
			{Username: who.name, Expires: exp, Access: "RO", Grants: grants("RO")},
			{Username: who.name, Expires: exp, Access: "RW", Grants: grants("RW")},
			{Username: who.name, Expires: exp, AllGrants: true},
			{Username: who.name, Expires: exp, Grants: []identity.Grant{{Service: "other.example.com", Scope: "REGISTRY", Access: "RW"}}},
		} {
			ids = append(ids,
				identity.Identity{Method: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: who.name, Namespace: who.ns, Groups: who.groups, Sourcehut: sh},
				identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: who.name, Namespace: who.ns, Groups: who.groups, Sourcehut: sh},
			)
		}
	}
	for _, o := range []*identity.OIDC{
		github(nil), github(map[string]any{"ref": "refs/tags/v1.2"}), github(map[string]any{"ref": "refs/heads/feature"}),
		github(map[string]any{"repository_owner": "evil"}), github(map[string]any{"repository": "Octo-Org/App"}),
		github(map[string]any{"repository": "*"}), github(map[string]any{"repository": "octo-org/../team"}),
		github(map[string]any{"repository": "team/app"}), github(map[string]any{"repository": "library"}),
		github(map[string]any{"repository": "alice/shared"}),
		github(map[string]any{"repository": nil}), github(map[string]any{"ref": true}), k8s,
		{Issuer: "https://example.org"},
	} {
		for _, provider := range []string{"github", "kubernetes"} {
			ids = append(ids,
				identity.Identity{Method: identity.MethodOIDC, Provider: provider, Subject: "repo:octo-org/app", OIDC: o},
				identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodOIDC, Provider: provider, Subject: "repo:octo-org/app", OIDC: o},
			)
		}
	}
	ids = append(ids,
		identity.Identity{Method: identity.MethodRefresh, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice"},
		identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: "bogus", Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice"},
		identity.Identity{Method: identity.MethodPassword, Provider: "group", Subject: "ci", Namespace: "ci"},
		identity.Identity{Method: identity.MethodPassword, Subject: "alice", Namespace: "alice"},
		identity.Identity{Method: identity.MethodSourcehut, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice"},
		// A directory (authn.ldap) user: no personal namespace, groups
		// qualified by the directory's name.
		identity.Identity{Method: identity.MethodPassword, Provider: "corp", Subject: "lena", Groups: []string{"corp:devs", "corp:ops"}},
		identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodPassword, Provider: "corp", Subject: "lena", Groups: []string{"corp:devs"}},
	)
	// Callers that differ from one above in a single field: the engine
	// remembers per caller, keyed by the fields the policy reads, so each
	// of these is decided wrongly if the key leaves its field out.
	alice := identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice", Groups: []string{"ci"}}
	for _, change := range []func(*identity.Identity){
		func(id *identity.Identity) { id.Groups = []string{"admins"} },
		func(id *identity.Identity) { id.Groups = []string{"ci", "ops"} },
		func(id *identity.Identity) { id.Groups = nil },
		func(id *identity.Identity) { id.Namespace = "" },
		func(id *identity.Identity) { id.Namespace = "team" },
		func(id *identity.Identity) { id.Subject = "bob" },
		func(id *identity.Identity) { id.Provider = "corp" },
		func(id *identity.Identity) { id.Method = identity.MethodAnonymous },
		func(id *identity.Identity) { id.Method = identity.MethodOIDC },
		func(id *identity.Identity) {
			id.Sourcehut = &identity.Sourcehut{Username: "alice", Expires: exp, Access: "RO", Grants: grants("RO")}
		},
		func(id *identity.Identity) { id.OIDC = github(nil) },
	} {
		id := alice
		change(&id)
		ids = append(ids, id)
	}
	rw := identity.Identity{Method: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: "alice", Namespace: "alice",
		Sourcehut: &identity.Sourcehut{Username: "alice", Expires: exp, Access: "RW", Grants: grants("RW")}}
	for _, sh := range []*identity.Sourcehut{
		{Username: "alice", Expires: exp, Access: "RW", Grants: grants("RO")},
		{Username: "alice", Expires: exp, Access: "RO", Grants: grants("RW")},
		{Username: "alice", Expires: exp, Access: "RW", Grants: []identity.Grant{{Service: "registry.example.com", Scope: "OTHER", Access: "RW"}}},
		{Username: "alice", Expires: exp, Access: "RW", Grants: grants("RW"), AllGrants: true},
	} {
		id := rw
		id.Sourcehut = sh
		ids = append(ids, id)
	}
	return ids
}

func generatedScopes() []access.Scope {
	repo := func(name string, actions ...string) access.Scope {
		return access.Scope{Resource: access.Resource{Type: "repository", Name: name}, Actions: actions}
	}
	var scopes []access.Scope
	for _, name := range []string{
		"alice/app", "alice", "alice/", "alice/shared/x", "alice/a/b/c", "bob/app", "root/x", "team/app", "team/sub/x", "team", "team/",
		"library/base", "library/x/y", "mirror/a/b", "admin/x", "octo-org/app", "octo-org/app/sub", "octo-org/other", "ci/x",
		"gh/octo-org/branch", "evil/app", "carol/x", "ci/builder/app",
		// Odd names a registry never sends, decided alike all the same.
		"alice/shared", "alice/shared/", "alice//x", "team//x", "team/sub/", "library/*", "octo-org/app/",
	} {
		scopes = append(scopes, repo(name, "pull", "push", "delete"))
	}
	return append(scopes, repo("alice/app", "*"), repo("team/app", "*"), repo("library/base", "pull"),
		access.Scope{Resource: access.Resource{Type: "registry", Name: "catalog"}, Actions: []string{"*"}},
		access.Scope{Resource: access.Resource{Type: "registry", Name: "other"}, Actions: []string{"*"}},
		access.Scope{Resource: access.Resource{Type: "repository", Class: "plugin", Name: "alice/app"}, Actions: []string{"pull"}},
	)
}

// siteData are the default policy's data: none, and a site that uses
// every key.
func siteData() map[string]map[string]any {
	return map[string]map[string]any{
		"empty": nil,
		"site": {
			"public":   []any{"library/*", "mirror/**", "*/public"},
			"reserved": []any{"admin", "v2"},
			"namespaces": map[string]any{
				"team":         map[string]any{"pull": []any{"*"}, "push": []any{"htpasswd:alice", "group:ci", "sourcehut:bob", "group:corp:ops"}},
				"alice/shared": map[string]any{"pull": []any{"htpasswd:bob"}, "*": []any{"group:ops"}},
				"ci":           map[string]any{"pull": []any{"oidc:none", "github:repo:octo-org/app"}, "delete": []any{"group:admins"}},
			},
			"oidc": []any{
				map[string]any{"provider": "github", "claims": map[string]any{"repository_owner": "octo-org", "ref": []any{"refs/heads/main", "refs/tags/v*"}},
					"repositories": []any{"{repository}", "{repository}/*"}, "actions": []any{"pull", "push"}},
				map[string]any{"provider": "github", "claims": map[string]any{"ref_type": "branch"},
					"repositories": []any{"gh/{repository_owner}/{ref_type}", "ci/*"}, "actions": []any{"pull"}},
				map[string]any{"provider": "kubernetes", "claims": map[string]any{"kubernetes.io": map[string]any{"namespace": "ci"}},
					"repositories": []any{"ci/builder/**"}, "actions": []any{"*"}},
			},
		},
	}
}

type decided struct {
	allowed      []string
	allowDefined bool
	denied       []string
	err          string
}

// decideAll decides every generated input with decide.
func decideAll(t *testing.T, decide func(context.Context, identity.Identity, identity.Request, access.Scope) (memoEntry, error)) []decided {
	t.Helper()
	ctx := context.Background()
	req := identity.Request{Service: "registry.example.com", ClientIP: "192.0.2.7", ClientID: "docker", UserAgent: "docker/27",
		Time: time.Date(2026, 12, 20, 12, 0, 0, 0, time.UTC)}
	var out []decided
	for _, id := range generatedIdentities() {
		for _, sc := range generatedScopes() {
			m, err := decide(ctx, id, req, sc)
			d := decided{allowed: slices.Sorted(slices.Values(m.allowed)), allowDefined: m.allowDefined, denied: slices.Sorted(slices.Values(m.denied))}
			if err != nil {
				d.err = err.Error()
			}
			out = append(out, d)
		}
	}
	return out
}

// engineDecides is the engine's evaluation, with a fresh request (no memo,
// input parts built per scope).
func engineDecides(e *Engine) func(context.Context, identity.Identity, identity.Request, access.Scope) (memoEntry, error) {
	return func(ctx context.Context, id identity.Identity, req identity.Request, sc access.Scope) (memoEntry, error) {
		return e.evaluate(ctx, &tokenRequest{id: id, req: req}, sc, nil)
	}
}

// regoDecides is the policy of opts as rego evaluates it, as the server
// did before the fast path: the whole input document (Input), converted by
// OPA, every rule evaluated every time, results read as Go values.
func regoDecides(t testing.TB, opts Options) func(context.Context, identity.Identity, identity.Request, access.Scope) (memoEntry, error) {
	t.Helper()
	q, err := queryFor(opts.Query)
	if err != nil {
		t.Fatal(err)
	}
	regoOpts := []func(*rego.Rego){rego.Query(q), rego.StrictBuiltinErrors(true)}
	if len(opts.Bundles) > 0 {
		for _, b := range opts.Bundles {
			regoOpts = append(regoOpts, rego.LoadBundle(b))
		}
	} else {
		mods, err := readModules(opts.Modules)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mods {
			regoOpts = append(regoOpts, rego.Module(m.path, m.src))
		}
		regoOpts = append(regoOpts, rego.Store(inmem.NewFromObject(map[string]any{"registry": dataOrEmpty(opts.Data)})))
	}
	pq, err := rego.New(regoOpts...).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, id identity.Identity, req identity.Request, sc access.Scope) (memoEntry, error) {
		rs, err := pq.Eval(ctx, rego.EvalInput(Input(id, req, sc)))
		if err != nil {
			return memoEntry{}, err
		}
		if len(rs) != 1 {
			return memoEntry{}, fmt.Errorf("query returned %d results", len(rs))
		}
		var m memoEntry
		if m.allowed, m.allowDefined, err = stringSet(rs[0].Bindings["allow"]); err != nil {
			return memoEntry{}, err
		}
		m.denied, _, err = stringSet(rs[0].Bindings["deny"])
		return m, err
	}
}

// stringSet reads a comprehension binding as rego gives it: [] or [value],
// value a set (an array, in Go) of strings.
func stringSet(binding any) (values []string, defined bool, err error) {
	wrapped, ok := binding.([]any)
	if !ok || len(wrapped) > 1 {
		return nil, false, fmt.Errorf("unexpected binding %T", binding)
	}
	if len(wrapped) == 0 {
		return nil, false, nil
	}
	items, ok := wrapped[0].([]any)
	if !ok {
		return nil, true, fmt.Errorf("want a set of strings, got %T", wrapped[0])
	}
	for _, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, true, fmt.Errorf("want a set of strings, got an element of type %T", it)
		}
		if !slices.Contains(values, s) {
			values = append(values, s)
		}
	}
	return values, true, nil
}

func compareDecisions(t *testing.T, what string, want, got []decided) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d decisions, want %d", what, len(got), len(want))
	}
	ids, scopes := generatedIdentities(), generatedScopes()
	granted, differ := 0, 0
	for i := range want {
		if len(want[i].allowed) > 0 {
			granted++
		}
		if !slices.Equal(want[i].allowed, got[i].allowed) || want[i].allowDefined != got[i].allowDefined ||
			!slices.Equal(want[i].denied, got[i].denied) || want[i].err != got[i].err {
			differ++
			if differ <= 10 {
				t.Errorf("%s: %+v on %s: got %+v, want %+v", what, ids[i/len(scopes)], scopes[i%len(scopes)], got[i], want[i])
			}
		}
	}
	if differ > 0 {
		t.Errorf("%s: %d of %d decisions differ", what, differ, len(want))
	}
	t.Logf("%s: %d decisions compared, %d grant something", what, len(want), granted)
	if granted == 0 || granted == len(want) {
		t.Errorf("%s: %d of %d inputs grant something: the inputs do not exercise the policy", what, granted, len(want))
	}
}

// TestFastPathDecidesAlike: with remembered static and identity rules, the
// pruned input, and callers' residuals, every policy we ship (the default one with each data set, every
// example bundle with its data) decides exactly as with neither.
func TestFastPathDecidesAlike(t *testing.T) {
	ctx := context.Background()
	type policyCase struct {
		name string
		opts Options
	}
	var cases []policyCase
	for name, data := range siteData() {
		cases = append(cases, policyCase{"default/" + name, Options{Modules: policy.FS(), Data: data, Schema: policy.InputSchema()}})
	}
	dirs, err := filepath.Glob("../../bundles/*/.manifest")
	if err != nil || len(dirs) < 5 {
		t.Fatalf("bundles: %v, %v", dirs, err)
	}
	for _, m := range dirs {
		dir := filepath.Dir(m)
		cases = append(cases, policyCase{"bundle/" + filepath.Base(dir), Options{Bundles: []string{dir}}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fast := c.opts
			// A busy machine must not turn into a differing decision.
			fast.NoMemo, fast.Timeout = true, time.Minute
			e, err := Compile(ctx, fast)
			if err != nil {
				t.Fatal(err)
			}
			slow := fast
			slow.NoStatic, slow.NoResidual = true, true
			plain, err := Compile(ctx, slow)
			if err != nil {
				t.Fatal(err)
			}
			if plain.rules != nil {
				t.Fatal("NoStatic engine remembers static rules")
			}
			staticOnly := fast
			staticOnly.NoIdentity = true
			st, err := Compile(ctx, staticOnly)
			if err != nil {
				t.Fatal(err)
			}
			if st.callers != nil || (st.rules != nil && st.rules.perIdentity) || st.residuals != nil {
				t.Fatal("NoIdentity engine remembers identity rules")
			}
			identityOnly := fast
			identityOnly.NoResidual = true
			id, err := Compile(ctx, identityOnly)
			if err != nil {
				t.Fatal(err)
			}
			if id.residuals != nil {
				t.Fatal("NoResidual engine makes residuals")
			}
			want := decideAll(t, regoDecides(t, c.opts))
			compareDecisions(t, "pruned input, OPA's evaluator", want, decideAll(t, engineDecides(plain)))
			// Twice: the first pass fills the remembered values, the
			// second uses them.
			compareDecisions(t, "static rules, first pass", want, decideAll(t, engineDecides(st)))
			compareDecisions(t, "static rules, remembered", want, decideAll(t, engineDecides(st)))
			// Identity values are filled by a caller's first scope and
			// used by the rest (each decision a request of its own);
			// in the second pass every caller is known.
			compareDecisions(t, "static and identity rules, first pass", want, decideAll(t, engineDecides(id)))
			compareDecisions(t, "static and identity rules, remembered", want, decideAll(t, engineDecides(id)))
			// With residuals: a caller's first scopes are evaluated, the
			// rest decided against its residual when it has one.
			compareDecisions(t, "residuals, first pass", want, decideAll(t, engineDecides(e)))
			compareDecisions(t, "residuals, every caller known", want, decideAll(t, engineDecides(e)))
			made, refused := residualCallers(e)
			t.Logf("residuals: %d callers decided by theirs, %d left to the evaluator", made, refused)
			if strings.HasPrefix(c.name, "default/") && made == 0 {
				t.Error("no caller's scopes were decided by a residual: the comparison above did not test them")
			}
		})
	}
}

// TestRewrittenDefaultPolicyDecidesAlike: the default policy, rewritten
// for speed in issue 16, decides every generated input as the one before
// it did (testdata/default-policy-before-issue-16.rego), with every data
// set.
func TestRewrittenDefaultPolicyDecidesAlike(t *testing.T) {
	before, err := os.ReadFile("testdata/default-policy-before-issue-16.rego")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range siteData() {
		t.Run(name, func(t *testing.T) {
			old := regoDecides(t, Options{Modules: fstest.MapFS{"authz.rego": {Data: before}}, Data: data})
			rewritten, err := Compile(context.Background(), Options{Modules: policy.FS(), Data: data, NoMemo: true, Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			compareDecisions(t, "rewritten default policy", decideAll(t, old), decideAll(t, engineDecides(rewritten)))
		})
	}
}

// residualCallers counts the engine's callers with a residual, and those
// whose policy is not one a residual stands for.
func residualCallers(e *Engine) (made, refused int) {
	if e.callers == nil {
		return 0, 0
	}
	for _, c := range e.callers.Values() {
		switch s := c.residual.state.Load(); {
		case s == nil:
		case s.r != nil:
			made++
		default:
			refused++
		}
	}
	return made, refused
}

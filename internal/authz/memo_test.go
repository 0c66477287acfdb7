package authz

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/policy"
)

func TestMemoAnalysis(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		memoised bool
		want     []string // leaves, when memoised
	}{
		{"fields read", `package registry.authz
allow contains "pull" if { input.identity.subject == "a"; input.scope.name == "a/b" }`, true,
			[]string{"input.identity.subject", "input.scope.name"}},
		{"inner node reads every leaf below", `package registry.authz
allow contains "pull" if input.scope.type == "repository"
allow contains "push" if count(input.identity) > 0`, true,
			[]string{"input.identity.method", "input.identity.refreshed_from", "input.identity.provider", "input.identity.subject",
				"input.identity.namespace", "input.identity.groups",
				"input.identity.sourcehut.username", "input.identity.sourcehut.client_id", "input.identity.sourcehut.expires",
				"input.identity.sourcehut.all_grants", "input.identity.sourcehut.access", "input.identity.sourcehut.grants",
				"input.identity.oidc.issuer", "input.identity.oidc.claims", "input.scope.type"}},
		{"claims by name", `package registry.authz
allow contains "push" if { input.identity.oidc.claims.ref == "refs/heads/main"; input.identity.oidc.claims["kubernetes.io"].namespace == "ci" }`, true,
			[]string{"input.identity.oidc.claims"}},
		{"claims by a computed name", `package registry.authz
allow contains "push" if { some name in ["ref"]; input.identity.oidc.claims[name] == "refs/heads/main" }`, true,
			[]string{"input.identity.oidc.claims"}},
		{"the oidc object", `package registry.authz
allow contains "pull" if is_object(input.identity.oidc)`, true,
			[]string{"input.identity.oidc.issuer", "input.identity.oidc.claims"}},
		{"provider and namespace", `package registry.authz
allow contains "pull" if { input.identity.provider == "htpasswd"; startswith(input.scope.name, input.identity.namespace) }`, true,
			[]string{"input.identity.provider", "input.identity.namespace", "input.scope.name"}},
		{"below a leaf keys on the leaf", `package registry.authz
allow contains "pull" if { some g in input.identity.sourcehut.grants; g.service == input.request.service }`, true,
			[]string{"input.identity.sourcehut.grants", "input.request.service"}},
		{"dynamic key", `package registry.authz
allow contains "pull" if { some k; input.request[k] == "x" }`, false, nil},
		{"the whole input", `package registry.authz
allow contains "pull" if object.get(input, "scope", {}) != {}`, false, nil},
		{"import of input", `package registry.authz
import input.scope
allow contains "pull" if scope.name == "x"`, true,
			[]string{"input.scope.type", "input.scope.class", "input.scope.name", "input.scope.actions"}},
		{"request time", `package registry.authz
allow contains "push" if time.parse_rfc3339_ns(input.request.time) > 0`, false, nil},
		{"time.now_ns", `package registry.authz
allow contains "push" if time.now_ns() > 0`, false, nil},
		{"http.send", `package registry.authz
allow contains "push" if http.send({"method": "GET", "url": "http://127.0.0.1:1"}).status_code == 200`, false, nil},
		{"rand", `package registry.authz
allow contains "push" if rand.intn("x", 2) == 0`, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ast.ParseModuleWithOpts("p.rego", tt.src, ast.ParserOptions{RegoVersion: ast.RegoV1})
			if err != nil {
				t.Fatal(err)
			}
			memo := newMemo([]*ast.Module{m})
			if (memo != nil) != tt.memoised {
				t.Fatalf("memoised = %v, want %v", memo != nil, tt.memoised)
			}
			if memo == nil {
				return
			}
			var got []string
			for _, l := range memo.leaves {
				got = append(got, l.path)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("leaves = %q\nwant %q", got, tt.want)
			}
			if wantClaims, ok := memoClaims[tt.name]; ok && !slices.Equal(memo.claims, wantClaims) {
				t.Errorf("claims = %q, want %q", memo.claims, wantClaims)
			}
		})
	}
}

// memoClaims are the claims TestMemoAnalysis's policies key on by name;
// nil: every claim.
var memoClaims = map[string][]string{
	"claims by name":            {"kubernetes.io", "ref"},
	"claims by a computed name": nil,
	"the oidc object":           nil,
}

// TestMemoMatchesEvaluation compares, over many inputs, every decision of a
// memoising engine with one that evaluates each time: the memo may only
// save work, never change an answer.
func TestMemoMatchesEvaluation(t *testing.T) {
	ctx := context.Background()
	policies := map[string]Options{
		"default": {Modules: policy.FS(), Data: map[string]any{
			"public":     []any{"library/*"},
			"namespaces": map[string]any{"team": map[string]any{"pull": []any{"group:ci", "*"}, "push": []any{"htpasswd:alice", "sourcehut:bob"}}},
		}},
		// Reads client_ip: the key must include it.
		"network": {Modules: fstest.MapFS{"p.rego": {Data: []byte(`package registry.authz
allow contains "pull" if input.scope.name == "open/x"
allow contains "push" if { net.cidr_contains("10.0.0.0/8", input.request.client_ip); input.identity.subject != "" }
deny contains "no deletes from the agent" if { "delete" in input.scope.actions; input.request.user_agent == "agent" }
`)}}},
	}
	subjects := []string{"", "alice", "bob", "root"}
	// A refreshed identity differs from its login only in method and
	// refreshed_from: the key must tell them apart. The provider follows
	// the (effective) method, as authn makes it, so every subject comes
	// with both providers.
	type method struct{ method, from identity.Method }
	methods := []method{{identity.MethodPassword, ""}, {identity.MethodSourcehut, ""},
		{identity.MethodRefresh, identity.MethodPassword}, {identity.MethodRefresh, identity.MethodSourcehut}}
	groupSets := [][]string{nil, {"ci"}, {"admins"}}
	names := []string{"alice/app", "bob/app", "team/app", "library/base", "open/x"}
	actionSets := [][]string{{"pull"}, {"pull", "push"}, {"delete"}, {"*"}}
	ips := []string{"10.1.2.3", "192.0.2.1"}
	agents := []string{"docker", "agent"}
	for name, opts := range policies {
		t.Run(name, func(t *testing.T) {
			// A generous deadline: this test compares answers, and a
			// loaded machine (-race, parallel packages) must not turn one
			// into a timeout.
			opts.Timeout = 10 * time.Second
			memoOpts, evalOpts := opts, opts
			evalOpts.NoMemo = true
			withMemo, err := Compile(ctx, memoOpts)
			if err != nil {
				t.Fatal(err)
			}
			if ok, _ := withMemo.Memoised(); !ok {
				t.Fatal("this policy should be memoised")
			}
			without, err := Compile(ctx, evalOpts)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			// Two rounds: the second one answers from the memo.
			for round := range 2 {
				for _, subj := range subjects {
					for _, method := range methods {
						for _, groups := range groupSets {
							// The namespace is the subject's, or none (a
							// Sourcehut name a local account holds): the key
							// must tell them apart too.
							for _, owns := range []bool{true, false} {
								id := identity.Identity{Method: method.method, RefreshedFrom: method.from, Subject: subj, Groups: groups}
								if owns {
									id.Namespace = subj
								}
								switch id.EffectiveMethod() {
								case identity.MethodPassword:
									id.Provider = identity.ProviderHtpasswd
								case identity.MethodSourcehut:
									id.Provider = identity.ProviderSourcehut
								}
								if subj == "" {
									id = identity.Anonymous
								}
								if id.EffectiveMethod() == identity.MethodSourcehut && subj != "" {
									id.Sourcehut = &identity.Sourcehut{Username: subj, Access: "RO", Expires: time.Unix(1e9, 0),
										Grants: []identity.Grant{{Service: "registry.example.com", Scope: "REGISTRY", Access: "RO"}}}
								}
								for _, repo := range names {
									for _, actions := range actionSets {
										for _, ip := range ips {
											for _, ua := range agents {
												req := identity.Request{Service: "registry.example.com", ClientIP: ip, UserAgent: ua, Time: time.Unix(int64(n), 0)}
												sc := access.Scope{Resource: access.Resource{Type: "repository", Name: repo}, Actions: actions}
												a, errA := withMemo.Decide(ctx, id, req, sc)
												b, errB := without.Decide(ctx, id, req, sc)
												if (errA != nil) != (errB != nil) || !slices.Equal(a.Granted, b.Granted) || !slices.Equal(a.Reasons, b.Reasons) {
													t.Fatalf("round %d: %+v %+v %s: memo %v %v %v, eval %v %v %v",
														round, id, req, sc, a.Granted, a.Reasons, errA, b.Granted, b.Reasons, errB)
												}
												n++
											}
										}
									}
								}
							}
						}
					}
				}
			}
			if withMemo.memo.cache.Len() == 0 {
				t.Fatal("nothing was memoised")
			}
			t.Logf("%d decisions compared, %d memo entries", n, withMemo.memo.cache.Len())
		})
	}
}

func TestMemoDefaultPolicyKeys(t *testing.T) {
	e, err := Compile(context.Background(), Options{Modules: policy.FS(), Schema: policy.InputSchema()})
	if err != nil {
		t.Fatal(err)
	}
	ok, leaves := e.Memoised()
	if !ok {
		t.Fatal("the default policy must be memoised: it is on every pull's path")
	}
	for _, ignored := range []string{"input.request.time", "input.request.client_ip", "input.request.user_agent", "input.request.client_id"} {
		if slices.Contains(leaves, ignored) {
			t.Errorf("the default policy does not read %s, but the memo keys on it", ignored)
		}
	}
}

// TestInputLeavesMatchSchema: every leaf of the input schema is a memo leaf
// and the other way round, so a field added to the input cannot be left out
// of the memo key (two inputs differing only in it would share an answer).
func TestInputLeavesMatchSchema(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(policy.InputSchema(), &schema); err != nil {
		t.Fatal(err)
	}
	var fromSchema []string
	var walk func(path string, node map[string]any)
	walk = func(path string, node map[string]any) {
		props, ok := node["properties"].(map[string]any)
		if !ok || path == "input.identity.sourcehut.grants" {
			fromSchema = append(fromSchema, path)
			return
		}
		for name, sub := range props {
			walk(path+"."+name, sub.(map[string]any))
		}
	}
	walk("input", schema)
	var leaves []string
	for _, l := range inputLeaves {
		leaves = append(leaves, l.path)
	}
	slices.Sort(fromSchema)
	slices.Sort(leaves)
	if !slices.Equal(fromSchema, leaves) {
		t.Errorf("schema leaves %q\nmemo leaves   %q", fromSchema, leaves)
	}
}

func TestRefreshBlind(t *testing.T) {
	compile := func(src string) *Engine {
		t.Helper()
		e, err := Compile(context.Background(), Options{Modules: fstest.MapFS{"p.rego": {Data: []byte(src)}}, Schema: policy.InputSchema()})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if e := compile(`package registry.authz
allow contains "pull" if input.identity.method == "sourcehut"`); !e.RefreshBlind() {
		t.Error("a policy reading method but not refreshed_from is not reported")
	}
	if e := compile(`package registry.authz
allow contains "pull" if input.identity.subject == "alice"`); e.RefreshBlind() {
		t.Error("a policy not reading method is reported")
	}
	e, err := Compile(context.Background(), Options{Modules: policy.FS(), Schema: policy.InputSchema()})
	if err != nil {
		t.Fatal(err)
	}
	if e.RefreshBlind() {
		t.Error("the default policy is reported as blind to refresh tokens")
	}
}

// TestMemoKeyProviderNamespace: with the default policy, two identities
// that differ only in provider, or only in namespace, have different memo
// keys.
func TestMemoKeyProviderNamespace(t *testing.T) {
	e, err := Compile(context.Background(), Options{Modules: policy.FS(), Schema: policy.InputSchema()})
	if err != nil {
		t.Fatal(err)
	}
	ok, leaves := e.Memoised()
	if !ok {
		t.Fatal("the default policy must be memoised")
	}
	for _, l := range []string{"input.identity.provider", "input.identity.namespace", "input.identity.subject"} {
		if !slices.Contains(leaves, l) {
			t.Errorf("the default policy reads %s, but the memo does not key on it (leaves %q)", l, leaves)
		}
	}
	req := identity.Request{Service: "registry.example.com"}
	sc := access.Scope{Resource: access.Resource{Type: "repository", Name: "alice/app"}, Actions: []string{"pull", "push"}}
	base := identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice"}
	otherProvider, noNamespace, otherNamespace := base, base, base
	otherProvider.Provider = identity.ProviderSourcehut
	noNamespace.Namespace = ""
	otherNamespace.Namespace = "alicia"
	k := e.memo.fullKey(base, req, sc)
	for name, id := range map[string]identity.Identity{"provider": otherProvider, "no namespace": noNamespace, "namespace": otherNamespace} {
		if e.memo.fullKey(id, req, sc) == k {
			t.Errorf("identities differing only in %s share the memo key %q", name, k)
		}
	}
	if e.memo.fullKey(base, req, sc) != k {
		t.Error("the memo key of one identity is not stable")
	}
}

// TestMemoSameSubjectOtherProvider is the security property of the memo
// in version 2: sourcehut:alice (who owns no namespace, as a local alice
// exists) must not be handed what htpasswd:alice was granted, though both
// have the subject "alice".
func TestMemoSameSubjectOtherProvider(t *testing.T) {
	ctx := context.Background()
	e, err := Compile(ctx, Options{Modules: policy.FS(), Schema: policy.InputSchema(), Data: map[string]any{
		"namespaces": map[string]any{"team": map[string]any{"push": []any{"htpasswd:alice"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	req := identity.Request{Service: "registry.example.com", ClientIP: "192.0.2.1", Time: time.Unix(1e9, 0)}
	local := identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice"}
	// A read-write token with every grant: the read-only cap is not why it
	// gets nothing.
	remote := identity.Identity{Method: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: "alice",
		Sourcehut: &identity.Sourcehut{Username: "alice", AllGrants: true, Access: "RW", Expires: time.Unix(2e9, 0)}}
	for _, repo := range []string{"alice/app", "team/app"} {
		sc := access.Scope{Resource: access.Resource{Type: "repository", Name: repo}, Actions: []string{"push"}}
		for round := range 2 {
			d, err := e.Decide(ctx, local, req, sc)
			if err != nil || !slices.Equal(d.Granted, []string{"push"}) {
				t.Fatalf("round %d: htpasswd:alice push %s = %+v, %v; want push", round, repo, d, err)
			}
			if round == 1 && !d.Memoised {
				t.Errorf("htpasswd:alice's second decision on %s was not memoised", repo)
			}
			d, err = e.Decide(ctx, remote, req, sc)
			if err != nil || len(d.Granted) != 0 {
				t.Fatalf("round %d: sourcehut:alice push %s = %+v, %v; want nothing (memoised %v)", round, repo, d, err, d.Memoised)
			}
		}
	}
	// The same, told apart by nothing but the provider: a policy that
	// reads provider and subject and nothing else of the identity.
	e, err = Compile(ctx, Options{Modules: fstest.MapFS{"p.rego": {Data: []byte(`package registry.authz
allow contains "push" if { input.identity.provider == "htpasswd"; input.identity.subject == "alice" }`)}}, Schema: policy.InputSchema()})
	if err != nil {
		t.Fatal(err)
	}
	sc := access.Scope{Resource: access.Resource{Type: "repository", Name: "x/y"}, Actions: []string{"push"}}
	onlyProvider := local
	onlyProvider.Provider = identity.ProviderSourcehut
	for round := range 2 {
		if d, err := e.Decide(ctx, local, req, sc); err != nil || !slices.Equal(d.Granted, []string{"push"}) {
			t.Fatalf("round %d: htpasswd:alice = %+v, %v; want push", round, d, err)
		}
		if d, err := e.Decide(ctx, onlyProvider, req, sc); err != nil || len(d.Granted) != 0 {
			t.Fatalf("round %d: sourcehut:alice, otherwise identical = %+v, %v; want nothing", round, d, err)
		}
	}
	// And by nothing but the namespace.
	e, err = Compile(ctx, Options{Modules: fstest.MapFS{"p.rego": {Data: []byte(`package registry.authz
allow contains "push" if startswith(input.scope.name, concat("", [input.identity.namespace, "/"]))`)}}, Schema: policy.InputSchema()})
	if err != nil {
		t.Fatal(err)
	}
	sc = access.Scope{Resource: access.Resource{Type: "repository", Name: "alice/app"}, Actions: []string{"push"}}
	onlyNamespace := local
	onlyNamespace.Namespace = ""
	for round := range 2 {
		if d, err := e.Decide(ctx, local, req, sc); err != nil || !slices.Equal(d.Granted, []string{"push"}) {
			t.Fatalf("round %d: namespace alice = %+v, %v; want push", round, d, err)
		}
		if d, err := e.Decide(ctx, onlyNamespace, req, sc); err != nil || len(d.Granted) != 0 {
			t.Fatalf("round %d: no namespace, otherwise identical = %+v, %v; want nothing", round, d, err)
		}
	}
}

func TestProviderBlind(t *testing.T) {
	compile := func(src string) *Engine {
		t.Helper()
		e, err := Compile(context.Background(), Options{Modules: fstest.MapFS{"p.rego": {Data: []byte(src)}}, Schema: policy.InputSchema()})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	tests := []struct {
		name, src string
		blind     bool
	}{
		{"subject only", `package registry.authz
allow contains "push" if input.identity.subject == "alice"`, true},
		{"subject through the identity object's field", `package registry.authz
import input.identity.subject
allow contains "push" if subject == "alice"`, true},
		{"subject and provider", `package registry.authz
allow contains "push" if { input.identity.provider == "htpasswd"; input.identity.subject == "alice" }`, false},
		{"subject and namespace", `package registry.authz
allow contains "push" if { input.identity.subject != ""; startswith(input.scope.name, input.identity.namespace) }`, false},
		{"the whole identity", `package registry.authz
allow contains "push" if count(input.identity) > 0`, false},
		{"no subject", `package registry.authz
allow contains "pull" if input.scope.name == "library/x"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := compile(tt.src).ProviderBlind(); got != tt.blind {
				t.Errorf("ProviderBlind() = %v, want %v", got, tt.blind)
			}
		})
	}
	e, err := Compile(context.Background(), Options{Modules: policy.FS(), Schema: policy.InputSchema()})
	if err != nil {
		t.Fatal(err)
	}
	if e.ProviderBlind() {
		t.Error("the default policy is reported as blind to providers")
	}
}

// oidcIdentity is an OIDC login of provider with the given claims (the
// subject is the sub claim, as authn makes it).
func oidcIdentity(provider string, claims map[string]any) identity.Identity {
	sub, _ := claims["sub"].(string)
	return identity.Identity{Method: identity.MethodOIDC, Provider: provider, Subject: sub,
		OIDC: &identity.OIDC{Issuer: "https://issuer.example.com/" + provider, Claims: claims}}
}

// githubClaims are a GitHub Actions token's claims, with changes.
func githubClaims(changes map[string]any) map[string]any {
	c := map[string]any{
		"sub": "repo:octo-org/app:ref:refs/heads/main", "jti": "1", "iat": json.Number("1764504000"),
		"repository": "octo-org/app", "repository_owner": "octo-org", "repository_owner_id": "123456",
		"ref": "refs/heads/main", "event_name": "push", "aud": "registry.example.com",
	}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// oidcPolicies read the claims in each way the memo tells apart.
var oidcPolicies = map[string]Options{
	// Reads input.identity.oidc and the claims by computed names.
	"default": {Modules: policy.FS(), Schema: policy.InputSchema(), Data: map[string]any{
		"public":     []any{"library/*"},
		"namespaces": map[string]any{"open": map[string]any{"pull": []any{"*"}}},
		"oidc": []any{
			map[string]any{"provider": "github", "claims": map[string]any{"repository_owner": "octo-org", "ref": []any{"refs/heads/main", "refs/tags/v*"}},
				"repositories": []any{"{repository}", "{repository}/*"}, "actions": []any{"pull", "push"}},
			map[string]any{"provider": "github", "claims": map[string]any{"repository_owner_id": "123456", "iat": 1764504000},
				"repositories": []any{"ids/*"}, "actions": []any{"pull"}},
			map[string]any{"provider": "k8s", "claims": map[string]any{"kubernetes.io": map[string]any{"namespace": "ci"}},
				"repositories": []any{"apps/**"}, "actions": []any{"pull"}},
		},
	}},
	// Reads claims by name only: the key holds those claims, not jti.
	"by name": {Modules: fstest.MapFS{"p.rego": {Data: []byte(`package registry.authz
allow contains "push" if {
	input.identity.oidc.claims.ref == "refs/heads/main"
	input.identity.oidc.claims.repository == input.scope.name
}
allow contains "pull" if input.identity.oidc.claims["kubernetes.io"].namespace == "ci"
allow contains "delete" if input.identity.oidc.claims.iat == 1764504000
`)}}, Schema: policy.InputSchema()},
}

// TestMemoOIDCClaims is the memo's security property for OIDC: two
// identities of the same provider and subject whose claims differ in one
// the policy reads (ref: main, which may push, and a feature branch,
// which may not) never share a memoised decision, in either order.
func TestMemoOIDCClaims(t *testing.T) {
	ctx := context.Background()
	req := identity.Request{Service: "registry.example.com", ClientIP: "192.0.2.1", Time: time.Unix(1e9, 0)}
	sc := access.Scope{Resource: access.Resource{Type: "repository", Name: "octo-org/app"}, Actions: []string{"pull", "push"}}
	main := oidcIdentity("github", githubClaims(nil))
	branch := oidcIdentity("github", githubClaims(map[string]any{"ref": "refs/heads/evil"}))
	if main.Subject != branch.Subject || main.Provider != branch.Provider {
		t.Fatal("the two identities must differ in their ref claim only")
	}
	for name, opts := range oidcPolicies {
		t.Run(name, func(t *testing.T) {
			for _, order := range [][]identity.Identity{{main, branch}, {branch, main}} {
				e, err := Compile(ctx, opts)
				if err != nil {
					t.Fatal(err)
				}
				if ok, _ := e.Memoised(); !ok {
					t.Fatal("this policy should be memoised")
				}
				if e.memo.fullKey(main, req, sc) == e.memo.fullKey(branch, req, sc) {
					t.Fatal("main and the feature branch share a memo key")
				}
				for round := range 3 {
					for _, id := range order {
						d, err := e.Decide(ctx, id, req, sc)
						if err != nil {
							t.Fatal(err)
						}
						want := []string{}
						if id.OIDC.Claims["ref"] == "refs/heads/main" {
							want = []string{"push"}
							if name == "default" {
								want = []string{"pull", "push"}
							}
						}
						if !slices.Equal(d.Granted, want) {
							t.Fatalf("round %d, ref %v: granted %v (memoised %v), want %v", round, id.OIDC.Claims["ref"], d.Granted, d.Memoised, want)
						}
						if round > 0 && !d.Memoised {
							t.Errorf("round %d, ref %v: not memoised", round, id.OIDC.Claims["ref"])
						}
					}
				}
			}
		})
	}
}

// TestMemoOIDCKeys: which claim differences make different keys. A policy
// reading the claims by computed name keys on every claim; one reading
// them by name keys on those claims only, so tokens of different jobs
// (another jti, sha, run) share its decisions.
func TestMemoOIDCKeys(t *testing.T) {
	req := identity.Request{Service: "registry.example.com"}
	sc := access.Scope{Resource: access.Resource{Type: "repository", Name: "octo-org/app"}, Actions: []string{"push"}}
	base := oidcIdentity("github", githubClaims(nil))
	refreshedID := base
	refreshedID.Method, refreshedID.RefreshedFrom = identity.MethodRefresh, identity.MethodOIDC
	otherIssuer := base
	otherIssuer.OIDC = &identity.OIDC{Issuer: "https://other.example.com", Claims: base.OIDC.Claims}
	noOIDC := base
	noOIDC.OIDC = nil
	emptyClaims := base
	emptyClaims.OIDC = &identity.OIDC{Issuer: base.OIDC.Issuer}
	variants := map[string]struct {
		id                 identity.Identity
		sameDefault, sameN bool // shares the key of base: default policy, by-name policy
	}{
		"same claims, new map":      {oidcIdentity("github", githubClaims(nil)), true, true},
		"iat as a float":            {oidcIdentity("github", githubClaims(map[string]any{"iat": 1764504000.0})), true, true},
		"another jti":               {oidcIdentity("github", githubClaims(map[string]any{"jti": "2"})), false, true},
		"a claim more":              {oidcIdentity("github", githubClaims(map[string]any{"sha": "abc"})), false, true},
		"another ref":               {oidcIdentity("github", githubClaims(map[string]any{"ref": "refs/heads/dev"})), false, false},
		"ref missing":               {oidcIdentity("github", githubClaims(map[string]any{"ref": ""})), false, false},
		"ref null":                  {oidcIdentity("github", githubClaims(map[string]any{"ref": nil})), false, false},
		"another repository":        {oidcIdentity("github", githubClaims(map[string]any{"repository": "octo-org/other"})), false, false},
		"repository as a list":      {oidcIdentity("github", githubClaims(map[string]any{"repository": []any{"octo-org/app"}})), false, false},
		"iat as a string":           {oidcIdentity("github", githubClaims(map[string]any{"iat": "1764504000"})), false, false},
		"iat another number":        {oidcIdentity("github", githubClaims(map[string]any{"iat": json.Number("1764504001")})), false, false},
		"owner id as a number":      {oidcIdentity("github", githubClaims(map[string]any{"repository_owner_id": json.Number("123456")})), false, true},
		"nested namespace":          {oidcIdentity("github", githubClaims(map[string]any{"kubernetes.io": map[string]any{"namespace": "ci"}})), false, false},
		"another provider":          {oidcIdentity("gitlab", githubClaims(nil)), false, false},
		"refreshed":                 {refreshedID, false, false},
		"another issuer":            {otherIssuer, false, false},
		"no identity.oidc":          {noOIDC, false, false},
		"identity.oidc without any": {emptyClaims, false, false},
	}
	// "ref missing" stands for a deleted claim.
	delete(variants["ref missing"].id.OIDC.Claims, "ref")
	keys := map[string]*memo{}
	for name, opts := range oidcPolicies {
		e, err := Compile(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = e.memo
	}
	if got := keys["by name"].claims; !slices.Equal(got, []string{"iat", "kubernetes.io", "ref", "repository"}) {
		t.Fatalf("the by-name policy keys on claims %q", got)
	}
	if keys["default"].claims != nil {
		t.Fatalf("the default policy keys on claims %q, want all of them", keys["default"].claims)
	}
	for name, v := range variants {
		for policyName, same := range map[string]bool{"default": v.sameDefault, "by name": v.sameN} {
			m := keys[policyName]
			// The by-name policy reads no issuer, method or provider:
			// those differences are not its business.
			if policyName == "by name" && (name == "another provider" || name == "refreshed" || name == "another issuer") {
				same = true
			}
			if got := m.fullKey(v.id, req, sc) == m.fullKey(base, req, sc); got != same {
				t.Errorf("%s, %s policy: shares the key of the base identity: %v, want %v", name, policyName, got, same)
			}
		}
	}
}

// TestWriteJSON: values the policy tells apart are written apart, values
// it sees as one (a float64 and the json.Number of its text) alike.
func TestWriteJSON(t *testing.T) {
	enc := func(v any) string {
		var b strings.Builder
		writeJSON(&b, v)
		return b.String()
	}
	distinct := []any{nil, true, false, "", "1", json.Number("1"), json.Number("1.0"), "true", []any{}, map[string]any{},
		[]any{"a"}, []any{"a", "b"}, []any{[]any{"a"}, "b"}, map[string]any{"a": "b"}, map[string]any{"a": []any{"b"}},
		map[string]any{"a": "b", "c": "d"}, map[string]any{"a": "b:c"}, map[string]any{"a:b": "c"}, "s1:a", []any{"s1:a"},
		"\xff", "\xfe", "\ufffd", map[string]any{"": ""}, []any{nil}}
	seen := map[string]any{}
	for _, v := range distinct {
		k := enc(v)
		if prev, ok := seen[k]; ok {
			t.Errorf("%#v and %#v share the encoding %q", prev, v, k)
		}
		seen[k] = v
	}
	same := [][2]any{
		{1.0, json.Number("1")},
		{int64(42), json.Number("42")},
		{0.5, json.Number("0.5")},
		{[]string{"a", "b"}, []any{"a", "b"}},
		{map[string]string{"b": "c", "a": "d"}, map[string]any{"a": "d", "b": "c"}},
		{map[string]any{"x": 1, "y": []int{2}}, map[string]any{"y": []any{json.Number("2")}, "x": json.Number("1")}},
	}
	for _, p := range same {
		if enc(p[0]) != enc(p[1]) {
			t.Errorf("%#v (%q) and %#v (%q) are the same to the policy", p[0], enc(p[0]), p[1], enc(p[1]))
		}
	}
	if k := enc(map[string]any{"f": func() {}}); !strings.Contains(k, "!") {
		t.Errorf("a value that is no JSON is written %q", k)
	}
}

// TestMemoMatchesEvaluationOIDC compares memoised and evaluated decisions
// over OIDC identities whose claims vary in every way the policies read.
func TestMemoMatchesEvaluationOIDC(t *testing.T) {
	ctx := context.Background()
	var ids []identity.Identity
	for _, provider := range []string{"github", "k8s"} {
		for _, change := range []map[string]any{
			nil, {"ref": "refs/tags/v1.0"}, {"ref": "refs/heads/dev"}, {"ref": nil}, {"ref": 1},
			{"repository": "octo-org/other"}, {"repository": "Octo-Org/App"}, {"repository": "octo-org/*"}, {"repository_owner": "evil"},
			{"iat": 1764504000.0}, {"iat": "1764504000"}, {"jti": "2"}, {"repository_owner_id": json.Number("123456")},
			{"kubernetes.io": map[string]any{"namespace": "ci"}}, {"kubernetes.io": map[string]any{"namespace": "prod"}}, {"kubernetes.io": "ci"},
		} {
			for _, refreshed := range []bool{false, true} {
				id := oidcIdentity(provider, githubClaims(change))
				if refreshed {
					id.Method, id.RefreshedFrom = identity.MethodRefresh, identity.MethodOIDC
				}
				ids = append(ids, id)
			}
		}
	}
	names := []string{"octo-org/app", "octo-org/other", "octo-org/app/x", "ids/x", "apps/web", "open/x", "library/base", "evil/app"}
	actionSets := [][]string{{"pull"}, {"pull", "push"}, {"delete"}, {"*"}}
	for name, opts := range oidcPolicies {
		t.Run(name, func(t *testing.T) {
			opts.Timeout = 10 * time.Second
			evalOpts := opts
			evalOpts.NoMemo = true
			withMemo, err := Compile(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			without, err := Compile(ctx, evalOpts)
			if err != nil {
				t.Fatal(err)
			}
			n, granted := 0, 0
			for round := range 2 {
				for _, id := range ids {
					for _, repo := range names {
						for _, actions := range actionSets {
							req := identity.Request{Service: "registry.example.com", Time: time.Unix(int64(n), 0)}
							sc := access.Scope{Resource: access.Resource{Type: "repository", Name: repo}, Actions: actions}
							a, errA := withMemo.Decide(ctx, id, req, sc)
							b, errB := without.Decide(ctx, id, req, sc)
							if (errA != nil) != (errB != nil) || !slices.Equal(a.Granted, b.Granted) || !slices.Equal(a.Reasons, b.Reasons) {
								t.Fatalf("round %d: %+v %s: memo %v %v %v (memoised %v), eval %v %v %v",
									round, id, sc, a.Granted, a.Reasons, errA, a.Memoised, b.Granted, b.Reasons, errB)
							}
							if len(b.Granted) > 0 {
								granted++
							}
							n++
						}
					}
				}
			}
			if granted == 0 {
				t.Fatal("nothing was granted: the comparison proves little")
			}
			t.Logf("%d decisions compared (%d granting), %d memo entries", n, granted, withMemo.memo.cache.Len())
		})
	}
}

func TestOIDCBlind(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		blind     bool
	}{
		{"reads no claims", `package registry.authz
allow contains "pull" if input.identity.method != "anonymous"`, true},
		{"reads a claim", `package registry.authz
allow contains "push" if input.identity.oidc.claims.ref == "refs/heads/main"`, false},
		{"reads the issuer", `package registry.authz
allow contains "push" if input.identity.oidc.issuer == "https://gitlab.com"`, false},
		{"reads the identity whole", `package registry.authz
allow contains "push" if count(input.identity) > 0`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Compile(context.Background(), Options{Modules: fstest.MapFS{"p.rego": {Data: []byte(tt.src)}}, Schema: policy.InputSchema()})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.OIDCBlind(); got != tt.blind {
				t.Errorf("OIDCBlind() = %v, want %v", got, tt.blind)
			}
		})
	}
	e, err := Compile(context.Background(), Options{Modules: policy.FS(), Schema: policy.InputSchema()})
	if err != nil {
		t.Fatal(err)
	}
	if e.OIDCBlind() {
		t.Error("the default policy is reported as blind to OIDC claims")
	}
	ok, leaves := e.Memoised()
	if !ok || !slices.Contains(leaves, "input.identity.oidc.claims") || !slices.Contains(leaves, "input.identity.oidc.issuer") {
		t.Errorf("the default policy's memo keys on %q, want the OIDC issuer and every claim", leaves)
	}
	e, err = Compile(context.Background(), oidcPolicies["by name"])
	if err != nil {
		t.Fatal(err)
	}
	_, leaves = e.Memoised()
	want := []string{"input.identity.oidc.claims.iat", `input.identity.oidc.claims["kubernetes.io"]`, "input.identity.oidc.claims.ref",
		"input.identity.oidc.claims.repository", "input.scope.name"}
	if !slices.Equal(leaves, want) {
		t.Errorf("Memoised() leaves = %q, want %q", leaves, want)
	}
}

// fullKey is the memo key of one decision.
func (m *memo) fullKey(id identity.Identity, req identity.Request, sc access.Scope) string {
	return m.key(m.identityKey(id, req), sc)
}

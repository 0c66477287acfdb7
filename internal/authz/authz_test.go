package authz_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/authz"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/policy"
)

var (
	anonymous = identity.Anonymous
	// As the server's authn.Chain makes them: an htpasswd user owns the
	// namespace of its name.
	alice = identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice"}
	admin = identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "root", Namespace: "root",
		Groups: []string{"admins"}}
	// sourcehut:alice while htpasswd:alice exists: the same subject, and
	// no namespace (the local account holds the name).
	shAlice = identity.Identity{Method: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: "alice",
		Sourcehut: &identity.Sourcehut{Username: "alice", AllGrants: true, Access: "RW", Expires: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}}
	// sourcehut:carol, whose name no local account holds.
	shCarol = identity.Identity{Method: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: "carol", Namespace: "carol",
		Sourcehut: &identity.Sourcehut{Username: "carol", AllGrants: true, Access: "RW", Expires: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}}
	request = identity.Request{Service: "registry.example.com", ClientIP: "192.0.2.1", ClientID: "docker",
		UserAgent: "docker/27.0", Time: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
)

func scope(t *testing.T, s string) access.Scope {
	t.Helper()
	sc, err := access.ParseScope(s)
	if err != nil {
		t.Fatalf("ParseScope(%q): %v", s, err)
	}
	return sc
}

func newAuthorizer(t *testing.T, opts authz.Options) *authz.Authorizer {
	t.Helper()
	a, err := authz.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("authz.New: %v", err)
	}
	return a
}

// decide evaluates one scope and returns its decision.
func decide(t *testing.T, a *authz.Authorizer, id identity.Identity, sc access.Scope) (access.Decision, error) {
	t.Helper()
	ds, err := a.Authorize(context.Background(), id, request, []access.Scope{sc})
	if err != nil {
		if ds != nil {
			t.Errorf("decisions %+v returned with an error", ds)
		}
		return access.Decision{}, err
	}
	if len(ds) != 1 {
		t.Fatalf("%d decisions for one scope", len(ds))
	}
	d := ds[0]
	if d.Requested.Resource != sc.Resource || !slices.Equal(d.Requested.Actions, sc.Actions) {
		t.Errorf("Requested = %+v, want %+v", d.Requested, sc)
	}
	if d.Granted == nil {
		t.Error("Granted is nil, want a (possibly empty) list")
	}
	return d, nil
}

func TestDefaultPolicy(t *testing.T) {
	a := newAuthorizer(t, authz.Options{Modules: policy.FS(), Data: map[string]any{
		"public": []any{"library/*"},
		"namespaces": map[string]any{"team": map[string]any{
			"pull": []any{"htpasswd:alice", "sourcehut:carol", "group:ci"},
			"push": []any{"sourcehut:carol"},
			// A bare name says no provider: it matches nobody.
			"delete": []any{"alice", "carol"},
		}},
	}})
	bob := identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "bob", Namespace: "bob", Groups: []string{"ci"}}
	// An identity that names no provider is not authenticated, whatever
	// its subject and namespace say.
	noProvider := identity.Identity{Method: identity.MethodPassword, Subject: "alice", Namespace: "alice", Groups: []string{"admins"}}
	tests := []struct {
		name  string
		id    identity.Identity
		scope string
		want  []string
	}{
		{"anonymous pulls a public repository", anonymous, "repository:library/x:pull", []string{"pull"}},
		{"anonymous cannot push a public repository", anonymous, "repository:library/x:push", []string{}},
		{"anonymous pull,push on public gets pull", anonymous, "repository:library/x:pull,push", []string{"pull"}},
		{"anonymous, public glob is one level", anonymous, "repository:library/x/y:pull", []string{}},
		{"anonymous on alice/app", anonymous, "repository:alice/app:pull", []string{}},
		{"anonymous catalog", anonymous, "registry:catalog:*", []string{}},
		{"alice owns alice/app", alice, "repository:alice/app:pull,push,delete", []string{"pull", "push", "delete"}},
		{"alice owns alice/app at depth", alice, "repository:alice/team/app:push", []string{"push"}},
		{"alice only gets what she asks", alice, "repository:alice/app:pull", []string{"pull"}},
		{"alice, unknown action", alice, "repository:alice/app:pull,frobnicate", []string{"pull"}},
		{"alice, * is not granted by pull/push/delete", alice, "repository:alice/app:*", []string{}},
		{"alice on bob/app", alice, "repository:bob/app:pull,push,delete", []string{}},
		{"alice on alice (no slash)", alice, "repository:alice:pull", []string{}},
		{"alice on alicex/app", alice, "repository:alicex/app:pull", []string{}},
		{"alice pulls public", alice, "repository:library/x:pull,push", []string{"pull"}},
		{"alice catalog", alice, "registry:catalog:*", []string{}},
		{"alice on an unknown resource type", alice, "foo:alice/app:pull", []string{}},
		{"admin catalog", admin, "registry:catalog:*", []string{"*"}},
		{"admin anywhere", admin, "repository:bob/app:pull,push,delete", []string{"pull", "push", "delete"}},
		{"admin on other registry resources", admin, "registry:other:*", []string{}},
		{"admins group of an anonymous identity", identity.Identity{Method: identity.MethodAnonymous, Groups: []string{"admins"}},
			"registry:catalog:*", []string{}},
		// Version 2: ownership comes from the namespace, membership from
		// the principal.
		{"sourcehut alice without a namespace on alice/app", shAlice, "repository:alice/app:pull,push,delete", []string{}},
		{"sourcehut carol owns carol/app", shCarol, "repository:carol/app:pull,push,delete", []string{"pull", "push", "delete"}},
		{"namespace, not subject, decides ownership", identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd,
			Subject: "alice", Namespace: "other"}, "repository:alice/app:pull,push", []string{}},
		{"namespace of another name", identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd,
			Subject: "alice", Namespace: "other"}, "repository:other/app:pull,push", []string{"pull", "push"}},
		{"no provider, no ownership", noProvider, "repository:alice/app:pull", []string{}},
		{"no provider, no admin", noProvider, "registry:catalog:*", []string{}},
		{"htpasswd alice is a member by principal", alice, "repository:team/app:pull,push,delete", []string{"pull"}},
		{"sourcehut alice is not htpasswd alice", shAlice, "repository:team/app:pull,push,delete", []string{}},
		{"sourcehut carol is a member by principal", shCarol, "repository:team/app:pull,push,delete", []string{"pull", "push"}},
		{"member by group", bob, "repository:team/app:pull,push", []string{"pull"}},
		{"a namespace named like a shared one is not owned", identity.Identity{Method: identity.MethodPassword,
			Provider: identity.ProviderHtpasswd, Subject: "team", Namespace: "team"}, "repository:team/app:pull,push,delete", []string{}},
		{"a namespace named like a public one is not owned", identity.Identity{Method: identity.MethodPassword,
			Provider: identity.ProviderHtpasswd, Subject: "library", Namespace: "library"}, "repository:library/x:pull,push", []string{"pull"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := decide(t, a, tt.id, scope(t, tt.scope))
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if !slices.Equal(d.Granted, tt.want) {
				t.Fatalf("granted %q, want %q", d.Granted, tt.want)
			}
		})
	}
}

func TestDefaultPolicyWithoutData(t *testing.T) {
	a := newAuthorizer(t, authz.Options{Modules: policy.FS()})
	d, err := decide(t, a, anonymous, scope(t, "repository:library/x:pull"))
	if err != nil || len(d.Granted) != 0 {
		t.Fatalf("anonymous pull without data: %+v, %v; want nothing", d, err)
	}
	d, err = decide(t, a, alice, scope(t, "repository:alice/x:push"))
	if err != nil || !slices.Equal(d.Granted, []string{"push"}) {
		t.Fatalf("alice push without data: %+v, %v; want push", d, err)
	}
}

// TestAuthorizeSeveralScopes: one decision per scope, in order.
func TestAuthorizeSeveralScopes(t *testing.T) {
	a := newAuthorizer(t, authz.Options{Modules: policy.FS(), Data: map[string]any{"public": []any{"library/*"}}})
	scopes := []access.Scope{scope(t, "repository:alice/app:pull,push"), scope(t, "repository:bob/app:pull"), scope(t, "repository:library/x:pull,push")}
	ds, err := a.Authorize(context.Background(), alice, request, scopes)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"pull", "push"}, {}, {"pull"}}
	if len(ds) != len(want) {
		t.Fatalf("%d decisions, want %d", len(ds), len(want))
	}
	for i := range want {
		if ds[i].Requested.Name != scopes[i].Name || !slices.Equal(ds[i].Granted, want[i]) {
			t.Errorf("decision %d = %+v, want %s granted %q", i, ds[i], scopes[i].Name, want[i])
		}
	}
	ds, err = a.Authorize(context.Background(), alice, request, nil)
	if err != nil || len(ds) != 0 {
		t.Fatalf("no scopes: %v, %v", ds, err)
	}
}

func modules(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for name, src := range files {
		m[name] = &fstest.MapFile{Data: []byte(src)}
	}
	return m
}

func TestAdHocPolicies(t *testing.T) {
	const pkg = "package registry.authz\n\n"
	tests := []struct {
		name        string
		src         string
		scope       string
		want        []string
		wantReasons []string // each must appear in some reason
		wantErr     bool     // an error wrapping access.ErrDecisionFailed
	}{
		{name: "allow set with *", src: pkg + `allow := {"*"}`, scope: "repository:a/b:pull,push,delete",
			want: []string{"pull", "push", "delete"}},
		{name: "allow contains *", src: pkg + `allow contains "*"`, scope: "registry:catalog:*", want: []string{"*"}},
		{name: "allow narrows the request", src: pkg + `allow := {"pull", "delete"}`, scope: "repository:a/b:pull,push",
			want: []string{"pull"}},
		{name: "allow as an array", src: pkg + `allow := ["push", "push"]`, scope: "repository:a/b:pull,push",
			want: []string{"push"}},
		{name: "allow never widens", src: pkg + `allow := {"pull", "push", "delete"}`, scope: "repository:a/b:pull",
			want: []string{"pull"}},
		{name: "empty allow", src: pkg + `allow := set()`, scope: "repository:a/b:pull", want: []string{}},
		{name: "allow reads input", src: pkg + `allow contains "pull" if input.scope.name == "a/b"`, scope: "repository:a/b:pull",
			want: []string{"pull"}},
		{name: "allow undefined for this input", src: pkg + `allow := {"*"} if input.scope.name == "other/repo"`, scope: "repository:a/b:pull",
			want: []string{}, wantReasons: []string{"undefined"}},
		{name: "deny wins", src: pkg + "allow := {\"*\"}\ndeny contains \"no pushing on Fridays\"\ndeny contains \"second reason\"",
			scope: "repository:a/b:pull,push", want: []string{}, wantReasons: []string{"no pushing on Fridays", "second reason"}},
		{name: "empty deny does not block", src: pkg + "allow := {\"pull\"}\ndeny := set()", scope: "repository:a/b:pull",
			want: []string{"pull"}},
		{name: "deny with allow undefined", src: pkg + "allow contains \"pull\" if input.scope.name == \"other/repo\"\ndeny contains \"nope\"",
			scope: "repository:a/b:pull", want: []string{}, wantReasons: []string{"nope"}},
		// Wrong types: deny by failing, never by guessing.
		{name: "allow is a boolean", src: pkg + `allow := true`, scope: "repository:a/b:pull", wantErr: true},
		{name: "allow is a set of numbers", src: pkg + `allow := {1, 2}`, scope: "repository:a/b:pull", wantErr: true},
		{name: "allow mixes strings and numbers", src: pkg + `allow := {"pull", 2}`, scope: "repository:a/b:pull", wantErr: true},
		{name: "allow is an object", src: pkg + `allow := {"pull": true}`, scope: "repository:a/b:pull", wantErr: true},
		// DESIGN: allow is a *set* of strings; a bare string (even "*") is
		// the wrong type.
		{name: "allow is a bare string", src: pkg + `allow := "*"`, scope: "repository:a/b:pull", wantErr: true},
		{name: "deny is a string", src: pkg + "allow := {\"pull\"}\ndeny := \"nope\"", scope: "repository:a/b:pull", wantErr: true},
		{name: "deny is a set of numbers", src: pkg + "allow := {\"pull\"}\ndeny := {1}", scope: "repository:a/b:pull", wantErr: true},
		// Runtime errors.
		{name: "builtin error", src: pkg + `allow contains "pull" if to_number("x") > 0`, scope: "repository:a/b:pull", wantErr: true},
		{name: "conflicting complete rule", src: pkg + "allow := {\"pull\"} if input.version == 2\nallow := {\"push\"} if input.version == 2",
			scope: "repository:a/b:pull", wantErr: true},
		{name: "division by zero", src: pkg + `allow contains "pull" if 1 / count(input.identity.groups) > 0`,
			scope: "repository:a/b:pull", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAuthorizer(t, authz.Options{Modules: modules(map[string]string{"p.rego": tt.src})})
			d, err := decide(t, a, alice, scope(t, tt.scope))
			if tt.wantErr {
				if !errors.Is(err, access.ErrDecisionFailed) {
					t.Fatalf("decision %+v, err %v; want ErrDecisionFailed", d, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if !slices.Equal(d.Granted, tt.want) {
				t.Errorf("granted %q, want %q", d.Granted, tt.want)
			}
			for _, w := range tt.wantReasons {
				if !slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.Contains(r, w) }) {
					t.Errorf("reasons %q do not mention %q", d.Reasons, w)
				}
			}
			if len(tt.wantReasons) == 0 && len(d.Reasons) != 0 {
				t.Errorf("reasons %q, want none", d.Reasons)
			}
		})
	}
}

// TestFailureFailsTheWholeRequest: one failing scope fails Authorize, rather
// than silently granting less on the others.
func TestFailureFailsTheWholeRequest(t *testing.T) {
	src := "package registry.authz\n\nallow := {\"pull\"} if input.scope.name == \"ok/ok\"\nallow := true if input.scope.name == \"bad/bad\""
	a := newAuthorizer(t, authz.Options{Modules: modules(map[string]string{"p.rego": src})})
	ds, err := a.Authorize(context.Background(), alice, request, []access.Scope{scope(t, "repository:ok/ok:pull"), scope(t, "repository:bad/bad:pull")})
	if !errors.Is(err, access.ErrDecisionFailed) || ds != nil {
		t.Fatalf("Authorize = %+v, %v; want nil, ErrDecisionFailed", ds, err)
	}
	if !strings.Contains(err.Error(), "bad/bad") {
		t.Errorf("error %q does not name the failing scope", err)
	}
}

func TestTimeout(t *testing.T) {
	// 10^10 iterations that build nothing: without the deadline this runs
	// for hours; with it the evaluation is cancelled.
	src := `package registry.authz

allow contains "pull" if {
	some a in numbers.range(1, 100000)
	some b in numbers.range(1, 100000)
	a * b == -1
}`
	a := newAuthorizer(t, authz.Options{Modules: modules(map[string]string{"p.rego": src}), Timeout: 50 * time.Millisecond})
	d, err := decide(t, a, alice, scope(t, "repository:a/b:pull"))
	if !errors.Is(err, access.ErrDecisionFailed) {
		t.Fatalf("decision %+v, err %v; want ErrDecisionFailed", d, err)
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name    string
		opts    authz.Options
		wantMsg string
	}{
		{"does not parse", authz.Options{Modules: modules(map[string]string{"p.rego": "package registry.authz\n\nallow := {"})}, "p.rego"},
		{"does not compile", authz.Options{Modules: modules(map[string]string{"p.rego": "package registry.authz\n\nallow contains x if x := undefined_function(1)"})}, "undefined_function"},
		{"unsafe variable", authz.Options{Modules: modules(map[string]string{"p.rego": "package registry.authz\n\nallow contains x if true"})}, "unsafe"},
		{"no files", authz.Options{Modules: fstest.MapFS{}}, "no .rego"},
		{"only other files", authz.Options{Modules: modules(map[string]string{"README.md": "# hi", "data.json": "{}"})}, "no .rego"},
		{"only tests", authz.Options{Modules: modules(map[string]string{"p_test.rego": "package registry.authz_test\n\ntest_x if true"})}, "no .rego"},
		{"query not a data reference", authz.Options{Modules: modules(map[string]string{"p.rego": "package registry.authz\n\nallow := {\"*\"}"}), Query: "input.x"}, "query"},
		{"query with an injection", authz.Options{Modules: modules(map[string]string{"p.rego": "package registry.authz\n\nallow := {\"*\"}"}),
			Query: "data.registry.authz; allow2 := {\"*\"}"}, "query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := authz.New(context.Background(), tt.opts)
			if err == nil {
				t.Fatalf("New = %v, want an error", a)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestTestFilesIgnored(t *testing.T) {
	fsys := modules(map[string]string{
		"policy.rego": "package registry.authz\n\nallow contains \"pull\"",
		// If loaded, this would grant push too.
		"policy_test.rego": "package registry.authz\n\nallow contains \"push\"",
		// If loaded, this would not compile.
		"sub/broken_test.rego": "this is not rego {",
		"sub/README.md":        "not a policy",
	})
	a := newAuthorizer(t, authz.Options{Modules: fsys})
	d, err := decide(t, a, alice, scope(t, "repository:a/b:pull,push"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Granted, []string{"pull"}) {
		t.Fatalf("granted %q, want [pull]: a _test.rego file was loaded", d.Granted)
	}
}

func TestModulesInSubdirectories(t *testing.T) {
	fsys := modules(map[string]string{
		"a/one.rego": "package registry.authz\n\nallow contains \"pull\"",
		"b/two.rego": "package registry.authz\n\nallow contains \"push\" if helper\n\nhelper if input.identity.subject == \"alice\"",
	})
	a := newAuthorizer(t, authz.Options{Modules: fsys})
	d, err := decide(t, a, alice, scope(t, "repository:a/b:pull,push"))
	if err != nil || !slices.Equal(d.Granted, []string{"pull", "push"}) {
		t.Fatalf("granted %+v, %v; want pull and push from both files", d, err)
	}
}

func TestCustomQuery(t *testing.T) {
	fsys := modules(map[string]string{
		"custom.rego":  "package acme.registry.rules\n\nallow contains \"push\" if input.identity.subject == \"alice\"\nallow contains \"pull\"",
		"default.rego": "package registry.authz\n\nallow := {\"*\"}",
	})
	a := newAuthorizer(t, authz.Options{Modules: fsys, Query: "data.acme.registry.rules"})
	d, err := decide(t, a, alice, scope(t, "repository:a/b:pull,push,delete"))
	if err != nil || !slices.Equal(d.Granted, []string{"pull", "push"}) {
		t.Fatalf("custom query: %+v, %v; want pull, push (not the default package's *)", d, err)
	}
	// The default query reads the other package.
	a = newAuthorizer(t, authz.Options{Modules: fsys})
	d, err = decide(t, a, alice, scope(t, "repository:a/b:pull,push,delete"))
	if err != nil || !slices.Equal(d.Granted, []string{"pull", "push", "delete"}) {
		t.Fatalf("default query: %+v, %v", d, err)
	}
	// A query naming a package that does not exist would grant nothing:
	// it does not load (see TestNoAllowRefused).
	if _, err := authz.New(context.Background(), authz.Options{Modules: fsys, Query: "data.nothing.here"}); !errors.Is(err, authz.ErrNoAllow) {
		t.Fatalf("missing package: %v; want ErrNoAllow", err)
	}
}

// TestDataVisible: Options.Data is under data.registry.
func TestDataVisible(t *testing.T) {
	src := "package registry.authz\n\nallow contains a if some a in data.registry.grant[input.identity.subject]"
	a := newAuthorizer(t, authz.Options{Modules: modules(map[string]string{"p.rego": src}),
		Data: map[string]any{"grant": map[string]any{"alice": []any{"pull", "delete"}}}})
	d, err := decide(t, a, alice, scope(t, "repository:a/b:pull,push,delete"))
	if err != nil || !slices.Equal(d.Granted, []string{"pull", "delete"}) {
		t.Fatalf("granted %+v, %v; want pull, delete from data", d, err)
	}
}

// TestInputSeenByPolicy: the policy sees the same document Input builds.
func TestInputSeenByPolicy(t *testing.T) {
	src := `package registry.authz

allow contains "pull" if {
	input.version == 2
	input.identity.method == "password"
	input.identity.provider == "htpasswd"
	input.identity.subject == "alice"
	input.identity.namespace == "alice"
	input.identity.groups == ["ci"]
	input.request.service == "registry.example.com"
	input.request.client_ip == "192.0.2.1"
	input.request.client_id == "docker"
	input.request.user_agent == "docker/27.0"
	input.request.time == "2030-01-02T03:04:05Z"
	input.scope == {"type": "repository", "name": "a/b", "actions": ["pull", "push"]}
	not input.identity.sourcehut
	not input.identity.oidc
}`
	a := newAuthorizer(t, authz.Options{Modules: modules(map[string]string{"p.rego": src})})
	id := identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice", Groups: []string{"ci"}}
	d, err := decide(t, a, id, scope(t, "repository:a/b:pull,push"))
	if err != nil || !slices.Equal(d.Granted, []string{"pull"}) {
		t.Fatalf("granted %+v, %v; the policy did not see the expected input", d, err)
	}
}

// TestInputSeenByPolicyOIDC: an OIDC identity's claims reach the policy with
// their JSON types, whatever Go types authn decoded them as.
func TestInputSeenByPolicyOIDC(t *testing.T) {
	src := `package registry.authz

allow contains "push" if {
	input.identity.method == "oidc"
	input.identity.oidc.issuer == "https://gitlab.example.com"
	input.identity.oidc.claims.project_path == "group/app"
	input.identity.oidc.claims.ref_protected == "true"
	input.identity.oidc.claims.project_id == 42
	input.identity.oidc.claims.ratio == 0.5
	input.identity.oidc.claims.draft == false
	input.identity.oidc.claims.groups == ["a", "b"]
	input.identity.oidc.claims["kubernetes.io"].serviceaccount.name == "builder"
	not input.identity.sourcehut
	not input.identity.namespace
}`
	a := newAuthorizer(t, authz.Options{Modules: modules(map[string]string{"p.rego": src}), Schema: policy.InputSchema()})
	id := identity.Identity{Method: identity.MethodOIDC, Provider: "gitlab", Subject: "project_path:group/app:ref_type:branch:ref:main",
		OIDC: &identity.OIDC{Issuer: "https://gitlab.example.com", Claims: map[string]any{
			"project_path": "group/app", "ref_protected": "true", "project_id": json.Number("42"), "ratio": 0.5, "draft": false,
			"groups":        []any{"a", "b"},
			"kubernetes.io": map[string]any{"serviceaccount": map[string]any{"name": "builder"}},
		}}}
	d, err := decide(t, a, id, scope(t, "repository:group/app:pull,push"))
	if err != nil || !slices.Equal(d.Granted, []string{"push"}) {
		t.Fatalf("granted %+v, %v; the policy did not see the expected claims", d, err)
	}
}

// TestInputShape: the input document of the policy contract in DESIGN.md,
// plus identity.sourcehut.access (the token's level on the requested
// registry, "RW" or "RO"), which the code adds and DESIGN.md does not list yet.
func TestInputShape(t *testing.T) {
	berlin := time.FixedZone("CEST", 2*60*60)
	reqTime := time.Date(2030, 1, 2, 5, 4, 5, 999, berlin)
	req := identity.Request{Service: "registry.example.com", ClientIP: "192.0.2.1", ClientID: "docker", UserAgent: "docker/27.0", Time: reqTime}
	wantRequest := `{"service":"registry.example.com","client_ip":"192.0.2.1","client_id":"docker","user_agent":"docker/27.0","time":"2030-01-02T03:04:05Z"}`
	tests := []struct {
		name  string
		id    identity.Identity
		scope string
		want  string
	}{
		{"anonymous", identity.Anonymous, "repository:library/x:pull",
			`{"version":2,"identity":{"method":"anonymous","subject":"","groups":[]},"request":` + wantRequest +
				`,"scope":{"type":"repository","name":"library/x","actions":["pull"]}}`},
		{"password with groups", identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice",
			Namespace: "alice", Groups: []string{"admins", "ci"}},
			"repository:alice/app:pull,push",
			`{"version":2,"identity":{"method":"password","provider":"htpasswd","subject":"alice","namespace":"alice","groups":["admins","ci"]},"request":` + wantRequest +
				`,"scope":{"type":"repository","name":"alice/app","actions":["pull","push"]}}`},
		// sourcehut:alice while a local alice exists: a provider, no namespace.
		{"sourcehut", identity.Identity{Method: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: "alice", Sourcehut: &identity.Sourcehut{
			Username: "alice", ClientID: "abc", Expires: time.Date(2030, 1, 2, 4, 0, 0, 500, berlin), Access: "RW",
			Grants: []identity.Grant{{Service: "registry.example.com", Scope: "REGISTRY", Access: "RW"}, {Service: "meta.sr.ht", Scope: "PROFILE", Access: "RO"}},
		}}, "registry:catalog:*",
			`{"version":2,"identity":{"method":"sourcehut","provider":"sourcehut","subject":"alice","groups":[],"sourcehut":{"username":"alice","client_id":"abc",` +
				`"expires":"2030-01-02T02:00:00Z","all_grants":false,"grants":[{"service":"registry.example.com","scope":"REGISTRY","access":"RW"},` +
				`{"service":"meta.sr.ht","scope":"PROFILE","access":"RO"}],"access":"RW"}},"request":` + wantRequest +
				`,"scope":{"type":"registry","name":"catalog","actions":["*"]}}`},
		{"sourcehut personal token", identity.Identity{Method: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: "bob",
			Namespace: "bob", Sourcehut: &identity.Sourcehut{
				Username: "bob", Expires: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), AllGrants: true, Access: "RW",
			}}, "repository:bob/x:pull",
			`{"version":2,"identity":{"method":"sourcehut","provider":"sourcehut","subject":"bob","namespace":"bob","groups":[],"sourcehut":{"username":"bob","client_id":"",` +
				`"expires":"2031-01-01T00:00:00Z","all_grants":true,"grants":[],"access":"RW"}},"request":` + wantRequest +
				`,"scope":{"type":"repository","name":"bob/x","actions":["pull"]}}`},
		{"refresh of a password login", identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodPassword,
			Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice"}, "repository:alice/app:pull",
			`{"version":2,"identity":{"method":"refresh","refreshed_from":"password","provider":"htpasswd","subject":"alice","namespace":"alice","groups":[]},"request":` +
				wantRequest + `,"scope":{"type":"repository","name":"alice/app","actions":["pull"]}}`},
		// Claims as authn decodes them: numbers as json.Number, nested
		// objects, arrays.
		{"oidc", identity.Identity{Method: identity.MethodOIDC, Provider: "github", Subject: "repo:octo-org/app:ref:refs/heads/main",
			OIDC: &identity.OIDC{Issuer: "https://token.actions.githubusercontent.com", Claims: map[string]any{
				"sub": "repo:octo-org/app:ref:refs/heads/main", "repository": "octo-org/app", "ref": "refs/heads/main",
				"iat": json.Number("1700000000"), "aud": []any{"registry.example.com"}, "kubernetes.io": map[string]any{"namespace": "ci"}, "flag": true,
			}}}, "repository:octo-org/app:pull,push",
			`{"version":2,"identity":{"method":"oidc","provider":"github","subject":"repo:octo-org/app:ref:refs/heads/main","groups":[],` +
				`"oidc":{"issuer":"https://token.actions.githubusercontent.com","claims":{"sub":"repo:octo-org/app:ref:refs/heads/main",` +
				`"repository":"octo-org/app","ref":"refs/heads/main","iat":1700000000,"aud":["registry.example.com"],"kubernetes.io":{"namespace":"ci"},"flag":true}}},` +
				`"request":` + wantRequest + `,"scope":{"type":"repository","name":"octo-org/app","actions":["pull","push"]}}`},
		{"refresh of an oidc login without claims", identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodOIDC, Provider: "k8s", Subject: "system:serviceaccount:ci:builder",
			OIDC: &identity.OIDC{Issuer: "https://kubernetes.default.svc"}}, "repository:apps/x:pull",
			`{"version":2,"identity":{"method":"refresh","refreshed_from":"oidc","provider":"k8s","subject":"system:serviceaccount:ci:builder","groups":[],` +
				`"oidc":{"issuer":"https://kubernetes.default.svc","claims":{}}},"request":` + wantRequest + `,"scope":{"type":"repository","name":"apps/x","actions":["pull"]}}`},
		{"class", identity.Anonymous, "repository(plugin):library/x:pull",
			`{"version":2,"identity":{"method":"anonymous","subject":"","groups":[]},"request":` + wantRequest +
				`,"scope":{"type":"repository","class":"plugin","name":"library/x","actions":["pull"]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(authz.Input(tt.id, req, scope(t, tt.scope)))
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.want), &w); err != nil {
				t.Fatalf("bad want: %v", err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("Input =\n%s\nwant\n%s", got, tt.want)
			}
			// Every time is RFC 3339.
			for _, ts := range timesIn(g) {
				if _, err := time.Parse(time.RFC3339, ts); err != nil {
					t.Errorf("time %q is not RFC 3339: %v", ts, err)
				}
			}
		})
	}
}

func timesIn(doc any) []string {
	m := doc.(map[string]any)
	out := []string{m["request"].(map[string]any)["time"].(string)}
	if sh, ok := m["identity"].(map[string]any)["sourcehut"].(map[string]any); ok {
		out = append(out, sh["expires"].(string))
	}
	return out
}

// TestInputProviderNamespace: identity.provider and identity.namespace are
// in the input when the identity has them, and absent (not "") otherwise.
func TestInputProviderNamespace(t *testing.T) {
	sc := scope(t, "repository:alice/app:pull")
	tests := []struct {
		name         string
		id           identity.Identity
		provider, ns any // nil: absent
	}{
		{"anonymous", identity.Anonymous, nil, nil},
		{"htpasswd", alice, "htpasswd", "alice"},
		{"sourcehut without a namespace", shAlice, "sourcehut", nil},
		{"sourcehut with a namespace", shCarol, "sourcehut", "carol"},
		{"oidc", identity.Identity{Method: identity.MethodOIDC, Provider: "github", Subject: "repo:o/r:ref:refs/heads/main",
			OIDC: &identity.OIDC{Issuer: "https://token.actions.githubusercontent.com"}}, "github", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ident := authz.Input(tt.id, request, sc)["identity"].(map[string]any)
			for _, f := range []struct {
				key  string
				want any
			}{{"provider", tt.provider}, {"namespace", tt.ns}} {
				got, ok := ident[f.key]
				if f.want == nil {
					if ok {
						t.Errorf("identity.%s = %#v, want it absent", f.key, got)
					}
					continue
				}
				if !ok || got != f.want {
					t.Errorf("identity.%s = %#v (present %v), want %#v", f.key, got, ok, f.want)
				}
			}
		})
	}
}

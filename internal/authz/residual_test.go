package authz

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/policy"
)

// TestResidualDecidesAsOPA: small policies, each built around one kind of
// residual test (or one the engine must leave to OPA's evaluator), decide
// every scope below as rego does, once the caller's residual is made (or
// refused).
func TestResidualDecidesAsOPA(t *testing.T) {
	const head = "package registry.authz\n\n"
	cases := []struct {
		name, src string
		// made: the residual is one the engine decides (else OPA's
		// evaluator does, for every scope).
		made bool
	}{
		{"glob with delimiters", `allow contains "pull" if glob.match("library/*", ["/"], input.scope.name)`, true},
		{"glob without delimiters", `allow contains "pull" if glob.match("library/*", null, input.scope.name)`, true},
		{"glob with the default delimiter", `allow contains "pull" if glob.match("lib.*", [], input.scope.name)`, true},
		{"glob from the caller", `allow contains "pull" if glob.match(concat("", [input.identity.subject, "/*"]), ["/"], input.scope.name)`, true},
		{"negated glob", `allow contains "pull" if {
			input.scope.type == "repository"
			not glob.match("secret/**", ["/"], input.scope.name)
		}`, true},
		{"prefix and not equal", `allow contains action if {
			prefix := concat("", [input.identity.subject, "/"])
			startswith(input.scope.name, prefix)
			input.scope.name != prefix
			some action in ["pull", "push"]
		}`, true},
		{"suffix, contains", `allow contains "pull" if endswith(input.scope.name, "/app")
allow contains "push" if contains(input.scope.name, "alice")`, true},
		{"any prefix and suffix", `allow contains "pull" if strings.any_prefix_match(input.scope.name, {"team/", "alice/"})
allow contains "delete" if not strings.any_suffix_match(input.scope.name, ["/app", "/x"])`, true},
		{"class, absent on most scopes", `allow contains "pull" if input.scope.class == "plugin"
allow contains "push" if not input.scope.class == "image"
allow contains "delete" if input.scope.class != "image"`, true},
		{"type and name compared", `allow contains "pull" if input.scope.type == input.scope.name`, true},
		{"scope-reading deny", `allow contains "pull" if input.scope.type == "repository"
deny contains "no secrets" if startswith(input.scope.name, "secret/")`, true},
		{"two deny messages", `allow contains "pull" if input.scope.type == "repository"
deny contains "z: no secrets" if startswith(input.scope.name, "secret/")
deny contains "a: no apps" if endswith(input.scope.name, "/app")`, true},
		{"caller-reading deny", `allow contains "pull" if input.scope.type == "repository"
deny contains "no bob" if input.identity.subject == "bob"`, true},
		{"no deny at all, nothing allowed", `allow contains "pull" if input.identity.subject == "nobody"`, true},
		{"other built-in", `allow contains "pull" if regex.match("^library/", input.scope.name)`, false},
		{"a scope field it does not know", `allow contains action if some action in input.scope.actions`, false},
		{"support rule", `secrets := {"secret", "private"}

allow contains "pull" if {
	input.scope.type == "repository"
	not hidden(input.scope.name)
}

hidden(name) if secrets[split(name, "/")[0]]`, false},
		{"negated rule of two bodies", `allow contains "pull" if {
			input.scope.type == "repository"
			not hidden(input.scope.name)
		}
hidden(name) if startswith(name, "secret/")
hidden(name) if endswith(name, "/private")`, true},
		{"complete allow", `allow := {"pull"} if input.scope.type == "repository"`, false},
		{"complete deny", `allow contains "pull" if input.scope.type == "repository"
deny := {"x"} if input.scope.name == "x"`, false},
		{"a number granted", `allow contains 7 if input.scope.type == "repository"`, false},
		{"a pattern that does not compile", `allow contains "pull" if glob.match("[", ["/"], input.scope.name)`, false},
	}
	ids := []identity.Identity{
		{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice"},
		{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "bob", Namespace: "bob"},
		identity.Anonymous,
	}
	var scopes []access.Scope
	for _, typ := range []string{"repository", "registry", "repository(plugin)"} {
		for _, name := range []string{"library/base", "library/a/b", "lib.x", "alice/app", "alice/", "alice", "team/x/app", "secret/app",
			"secret/a/private", "x", "repository", "", "a/b/x"} {
			for _, class := range []string{"", "image", "plugin"} {
				scopes = append(scopes, access.Scope{Resource: access.Resource{Type: typ, Name: name, Class: class}, Actions: []string{"pull", "push"}})
			}
		}
	}
	req := identity.Request{Service: "registry.example.com", Time: time.Date(2026, 12, 20, 12, 0, 0, 0, time.UTC)}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := Options{Modules: fstest.MapFS{"authz.rego": {Data: []byte(head + c.src + "\n")}}, NoMemo: true, Timeout: time.Minute}
			e, err := Compile(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			want, got := regoDecides(t, opts), engineDecides(e)
			for _, id := range ids {
				for i, sc := range scopes {
					w, werr := want(ctx, id, req, sc)
					g, gerr := got(ctx, id, req, sc)
					if (werr == nil) != (gerr == nil) || !slices.Equal(slices.Sorted(slices.Values(w.allowed)), slices.Sorted(slices.Values(g.allowed))) ||
						w.allowDefined != g.allowDefined || !slices.Equal(w.denied, g.denied) || !slices.IsSorted(g.denied) {
						t.Errorf("%s on %+v (decision %d): got %+v, %v; want %+v, %v", id.Subject, sc, i, g, gerr, w, werr)
					}
				}
			}
			made, refused := residualCallers(e)
			// Callers the policy cannot tell apart are one caller.
			if c.made && (made == 0 || refused != 0) {
				t.Errorf("%d callers with a residual, %d without; want all with one", made, refused)
			}
			if !c.made && made != 0 {
				t.Errorf("%d callers with a residual; want none", made)
			}
		})
	}
}

// TestResidualConcurrent: the decisions of one caller at once, from 16
// goroutines, while its residual is made: each is right, one residual is
// made, and every decision after it is decided against it (run with
// -race).
func TestResidualConcurrent(t *testing.T) {
	ctx := context.Background()
	e, err := Compile(ctx, Options{Modules: fstest.MapFS{"authz.rego": {Data: []byte(`package registry.authz

allow contains "pull" if glob.match("library/*", ["/"], input.scope.name)

allow contains action if {
	startswith(input.scope.name, concat("", [input.identity.subject, "/"]))
	some action in ["pull", "push"]
}
`)}}, NoMemo: true, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	alice := identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice"}
	req := identity.Request{Service: "registry.example.com", Time: time.Now()}
	concurrently(t, 16, 4*residualAfter, func(g, i int) error {
		names := []string{"library/base", "alice/app", "bob/app"}
		want := [][]string{{"pull"}, {"pull", "push"}, {}}
		k := (g + i) % len(names)
		sc := access.Scope{Resource: access.Resource{Type: "repository", Name: fmt.Sprintf("%s-%d-%d", names[k], g, i)}, Actions: []string{"pull", "push"}}
		d, err := e.Decide(ctx, alice, req, sc)
		if err != nil {
			return err
		}
		if !slices.Equal(slices.Sorted(slices.Values(d.Granted)), want[k]) {
			return fmt.Errorf("%s: granted %v, want %v", sc.Name, d.Granted, want[k])
		}
		return nil
	})
	if made, refused := residualCallers(e); made != 1 || refused != 0 {
		t.Errorf("%d callers with a residual, %d without; want 1 with one", made, refused)
	}
}

// FuzzResidualDecidesAsOPA: any scope a client may name (type, name,
// class), decided by the default policy with the site's data for every
// generated caller, gets the same answer from the callers' residuals as
// from rego.
func FuzzResidualDecidesAsOPA(f *testing.F) {
	for _, sc := range generatedScopes() {
		f.Add(sc.Type, sc.Name, sc.Class)
	}
	f.Add("repository", "Library/Base", "")
	f.Add("repository", "library/base", "image")
	f.Add("", "", "")
	ctx := context.Background()
	opts := Options{Modules: policy.FS(), Data: siteData()["site"], NoMemo: true, Timeout: time.Minute}
	e, err := Compile(ctx, opts)
	if err != nil {
		f.Fatal(err)
	}
	want, got := regoDecides(f, opts), engineDecides(e)
	req := identity.Request{Service: "registry.example.com", Time: time.Date(2026, 12, 20, 12, 0, 0, 0, time.UTC)}
	ids := generatedIdentities()
	// Every caller asks about enough repositories to have its residual
	// made, if its policy is one a residual stands for.
	for _, id := range ids {
		for i := range residualAfter + 1 {
			sc := access.Scope{Resource: access.Resource{Type: "repository", Name: fmt.Sprintf("warm/%d", i)}, Actions: []string{"pull"}}
			if _, err := got(ctx, id, req, sc); err != nil {
				f.Fatal(err)
			}
		}
	}
	// The fuzzed scopes go to the callers that have one: the others'
	// are the evaluator's, which TestFastPathDecidesAlike covers.
	var busy []identity.Identity
	for _, id := range ids {
		c, ok := e.callers.Get((&tokenRequest{id: id, req: req}).identityKey(e.keys))
		if !ok {
			continue
		}
		if s := c.residual.state.Load(); s != nil && s.r != nil {
			busy = append(busy, id)
		}
	}
	if len(busy) == 0 {
		f.Fatal("no caller has a residual")
	}
	f.Fuzz(func(t *testing.T, typ, name, class string) {
		sc := access.Scope{Resource: access.Resource{Type: typ, Name: name, Class: class}, Actions: []string{"pull", "push", "delete", "*"}}
		for _, id := range busy {
			w, werr := want(ctx, id, req, sc)
			g, gerr := got(ctx, id, req, sc)
			if (werr == nil) != (gerr == nil) || !slices.Equal(slices.Sorted(slices.Values(w.allowed)), slices.Sorted(slices.Values(g.allowed))) ||
				w.allowDefined != g.allowDefined || !slices.Equal(w.denied, g.denied) {
				t.Errorf("%+v on %+v: got %+v, %v; want %+v, %v", id, sc, g, gerr, w, werr)
			}
		}
	})
}

// TestResidualMetrics: an Authorizer counts its engines' residuals, made
// and left to the evaluator, once per caller.
func TestResidualMetrics(t *testing.T) {
	ctx := context.Background()
	alice := identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice"}
	req := identity.Request{Service: "registry.example.com", Time: time.Now()}
	for _, c := range []struct {
		name, src       string
		made, evaluator float64
	}{
		{"decidable", `allow contains "pull" if startswith(input.scope.name, "alice/")`, 1, 0},
		{"left to the evaluator", `allow contains "pull" if regex.match("^alice/", input.scope.name)`, 0, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := New(ctx, Options{Modules: fstest.MapFS{"authz.rego": {Data: []byte("package registry.authz\n\n" + c.src + "\n")}}, Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 * residualAfter {
				sc := access.Scope{Resource: access.Resource{Type: "repository", Name: fmt.Sprintf("alice/app-%d", i)}, Actions: []string{"pull"}}
				d, err := a.Authorize(ctx, alice, req, []access.Scope{sc})
				if err != nil || len(d) != 1 || len(d[0].Granted) != 1 {
					t.Fatalf("decision %d: %+v, %v", i, d, err)
				}
			}
			if made, evaluator := counterValue(t, a.metrics.residualMade), counterValue(t, a.metrics.residualEvaluator); made != c.made || evaluator != c.evaluator {
				t.Errorf("residuals: %v made, %v left to the evaluator; want %v, %v", made, evaluator, c.made, c.evaluator)
			}
		})
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

package authz

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

func compileSource(t *testing.T, src string, data map[string]any) *Engine {
	t.Helper()
	e, err := Compile(context.Background(), Options{Modules: fstest.MapFS{"p.rego": {Data: []byte(src)}}, Data: data, NoMemo: true, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func staticNames(e *Engine) []string {
	var names []string
	if e.static == nil {
		return nil
	}
	for _, paths := range e.static.paths {
		for _, p := range paths {
			names = append(names, strings.TrimPrefix(p.String(), "data.registry.authz."))
		}
	}
	return names
}

// TestStaticRules: which rules are evaluated once per engine. A rule is
// static when it reads only data, deterministic built-ins and other static
// rules; functions are never remembered (their arguments may come from
// input).
func TestStaticRules(t *testing.T) {
	src := `package registry.authz

names := {n | some n, _ in data.registry.namespaces}
prefixes := {concat("", [n, "/"]) | some n in names}
count_names := count(names)
partial contains n if some n in names
object_rule[n] := true if some n in names
deep.key := 1

reads_input if input.identity.subject != ""
via_rule := x if { reads_input; x := 1 }
clock := time.now_ns()
random := rand.intn("seed", 10)
mocked := x if { x := names with data.registry.namespaces as {} }
via_function := f(1)
f(x) := x + count_names
impure_function := g(1)
g(x) := x if input.version == 2

allow contains "pull" if input.scope.name in prefixes
`
	e := compileSource(t, src, map[string]any{"namespaces": map[string]any{"team": map[string]any{}}})
	got := map[string]bool{}
	for _, n := range staticNames(e) {
		got[n] = true
	}
	for _, want := range []string{"names", "prefixes", "count_names", "partial", "object_rule", "deep.key", "via_function"} {
		if !got[want] {
			t.Errorf("%s is not static: %v", want, staticNames(e))
		}
	}
	for _, dynamic := range []string{"reads_input", "via_rule", "clock", "random", "mocked", "f", "g", "impure_function", "allow"} {
		if got[dynamic] {
			t.Errorf("%s is static", dynamic)
		}
	}
}

// TestStaticValuesNotKeptOnError: OPA caches a complete rule's first value
// before it finds a second one and fails; a remembered value would then
// answer the next evaluation without the conflict. Nothing from a failed
// evaluation is kept, so every evaluation fails alike.
func TestStaticValuesNotKeptOnError(t *testing.T) {
	src := `package registry.authz

level := 1 if data.registry.a
level := 2 if data.registry.b

allow contains "pull" if level == 1
`
	e := compileSource(t, src, map[string]any{"a": true, "b": true})
	sc := access.Scope{Resource: access.Resource{Type: "repository", Name: "x/y"}, Actions: []string{"pull"}}
	for i := range 3 {
		d, err := e.Decide(context.Background(), identity.Anonymous, identity.Request{}, sc)
		if err == nil || !strings.Contains(err.Error(), "conflict") {
			t.Fatalf("evaluation %d: %+v, %v; want a conflict error", i, d, err)
		}
	}
}

// TestStaticValuesRemembered: a static rule's value is computed by the
// first evaluation and read by the next (the rule's built-in runs once).
func TestStaticValuesRemembered(t *testing.T) {
	src := `package registry.authz

prefixes := {concat("", [n, "/"]) | some n, _ in data.registry.namespaces}

allow contains "pull" if strings.any_prefix_match(input.scope.name, prefixes)
`
	e := compileSource(t, src, map[string]any{"namespaces": map[string]any{"team": map[string]any{}}})
	if got := len(*e.static.known.Load()); got != 0 {
		t.Fatalf("%d values before any evaluation", got)
	}
	for _, c := range []struct {
		name string
		want []string
	}{{"team/app", []string{"pull"}}, {"other/app", nil}, {"team/x", []string{"pull"}}} {
		sc := access.Scope{Resource: access.Resource{Type: "repository", Name: c.name}, Actions: []string{"pull"}}
		d, err := e.Decide(context.Background(), identity.Anonymous, identity.Request{}, sc)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(d.Granted, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: granted %v, want %v", c.name, d.Granted, c.want)
		}
		known := *e.static.known.Load()
		if len(known) != 1 {
			t.Fatalf("after %s: %d values remembered, want 1 (prefixes)", c.name, len(known))
		}
		for _, vs := range known {
			if got := vs[0].value.String(); got != `{"team/"}` {
				t.Errorf("remembered %s = %s", vs[0].ref, got)
			}
		}
	}
}

// TestStaticValuesNotUsedUnderWith: inside a `with` that replaces data, a
// static rule is evaluated afresh, never read from (or written to) what the
// engine remembers.
func TestStaticValuesNotUsedUnderWith(t *testing.T) {
	src := `package registry.authz

names := {n | some n, _ in data.registry.namespaces}

allow contains "push" if count(names) == 1

allow contains "pull" if {
	count(names) == 0 with data.registry.namespaces as {}
}
`
	e := compileSource(t, src, map[string]any{"namespaces": map[string]any{"team": map[string]any{}}})
	sc := access.Scope{Resource: access.Resource{Type: "repository", Name: "team/app"}, Actions: []string{"pull", "push"}}
	for i := range 3 {
		d, err := e.Decide(context.Background(), identity.Anonymous, identity.Request{}, sc)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(d.Granted, ","); got != "pull,push" {
			t.Errorf("evaluation %d: granted %s, want pull,push", i, got)
		}
	}
}

// TestStaticValuesConcurrent: evaluations running at once on a fresh
// engine all compute and add the static values; each decides as alone
// (run with -race).
func TestStaticValuesConcurrent(t *testing.T) {
	src := `package registry.authz

prefixes := {concat("", [n, "/"]) | some n, _ in data.registry.namespaces}
names := {n | some n, _ in data.registry.namespaces}

allow contains "pull" if strings.any_prefix_match(input.scope.name, prefixes)
allow contains "push" if split(input.scope.name, "/")[0] in names
`
	e := compileSource(t, src, map[string]any{"namespaces": map[string]any{"team": map[string]any{}, "ops": map[string]any{}}})
	var wg sync.WaitGroup
	errs := make(chan error, 16*20)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				name := []string{"team/a", "ops/b", "other/c"}[(g+i)%3]
				sc := access.Scope{Resource: access.Resource{Type: "repository", Name: name}, Actions: []string{"pull", "push"}}
				d, err := e.Decide(context.Background(), identity.Anonymous, identity.Request{}, sc)
				want := map[string]string{"team/a": "pull,push", "ops/b": "pull,push", "other/c": ""}[name]
				if err != nil || strings.Join(d.Granted, ",") != want {
					errs <- fmt.Errorf("%s: granted %v, want %q: %w", name, d.Granted, want, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(*e.static.known.Load()); got != 2 {
		t.Errorf("%d static values remembered, want 2", got)
	}
}

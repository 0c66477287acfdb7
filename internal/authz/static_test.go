package authz

import (
	"context"
	"fmt"
	"slices"
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

// staticNames and identityNames are the remembered rules of each kind.
func staticNames(e *Engine) []string   { return rememberedNames(e, false) }
func identityNames(e *Engine) []string { return rememberedNames(e, true) }

func rememberedNames(e *Engine, perIdentity bool) []string {
	var names []string
	if e.rules == nil {
		return nil
	}
	for _, paths := range e.rules.paths {
		for _, p := range paths {
			if p.perIdentity == perIdentity {
				names = append(names, strings.TrimPrefix(p.ref.String(), "data.registry.authz."))
			}
		}
	}
	slices.Sort(names)
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
	if got := len(*e.rules.static.known.Load()); got != 0 {
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
		known := *e.rules.static.known.Load()
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
	concurrently(t, 16, 20, func(g, i int) error {
		name := []string{"team/a", "ops/b", "other/c"}[(g+i)%3]
		sc := access.Scope{Resource: access.Resource{Type: "repository", Name: name}, Actions: []string{"pull", "push"}}
		d, err := e.Decide(context.Background(), identity.Anonymous, identity.Request{}, sc)
		want := map[string]string{"team/a": "pull,push", "ops/b": "pull,push", "other/c": ""}[name]
		if err != nil || strings.Join(d.Granted, ",") != want {
			return fmt.Errorf("%s: granted %v, want %q: %w", name, d.Granted, want, err)
		}
		return nil
	})
	if got := len(*e.rules.static.known.Load()); got != 2 {
		t.Errorf("%d static values remembered, want 2", got)
	}
}

// TestIdentityRules: which rules are evaluated once per caller: those
// reading, besides what a static rule may, only input.identity,
// input.request and input.version (directly or through other rules).
func TestIdentityRules(t *testing.T) {
	src := `package registry.authz

names := {n | some n, _ in data.registry.namespaces}
admin if "admins" in input.identity.groups
principal := concat(":", [input.identity.provider, input.identity.subject])
service_ok if input.request.service == "registry.example.com"
v2 if input.version == 2
team_member if { admin; "team" in names }
grants contains g if some g in input.identity.groups

repository := input.scope.name
whole_input := input
computed_key := input[k] if k := "identity"
scoped_admin if { admin; input.scope.type == "repository" }
clock_admin if { admin; time.now_ns() > 0 }
mocked if admin with input.identity.groups as ["admins"]
f(x) := x if admin

allow contains "pull" if repository in names
`
	e := compileSource(t, src, map[string]any{"namespaces": map[string]any{"team": map[string]any{}}})
	if got, want := strings.Join(identityNames(e), ","), "admin,grants,principal,service_ok,team_member,v2"; got != want {
		t.Errorf("identity rules: %s, want %s", got, want)
	}
	if got, want := strings.Join(staticNames(e), ","), "names"; got != want {
		t.Errorf("static rules: %s, want %s", got, want)
	}
	noIdentity, err := Compile(context.Background(), Options{Modules: fstest.MapFS{"p.rego": {Data: []byte(src)}}, NoMemo: true, NoIdentity: true})
	if err != nil {
		t.Fatal(err)
	}
	if names := identityNames(noIdentity); len(names) > 0 || noIdentity.callers != nil {
		t.Errorf("NoIdentity: identity rules %v", names)
	}
}

// TestIdentityValuesPerCaller: each caller's identity rules have its own
// values, kept across requests; two callers that differ only in a field
// an identity rule reads (groups) never share them.
func TestIdentityValuesPerCaller(t *testing.T) {
	// (Written so that OPA's rule index cannot skip the rule: a rule the
	// index skips is undefined at no cost, and not remembered.)
	src := `package registry.authz

admin if count({g | some g in input.identity.groups; g == "admins"}) == 1

allow contains "pull" if input.scope.type == "repository"
allow contains "push" if { admin; input.scope.type == "repository" }
`
	e := compileSource(t, src, nil)
	admin := identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Groups: []string{"admins"}}
	plain := admin
	plain.Groups = []string{"ci"}
	for i := range 6 {
		id, want := admin, "pull,push"
		if i%2 == 1 {
			id, want = plain, "pull"
		}
		sc := access.Scope{Resource: access.Resource{Type: "repository", Name: fmt.Sprintf("a/r%d", i)}, Actions: []string{"pull", "push"}}
		d, err := e.Decide(context.Background(), id, identity.Request{}, sc)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(d.Granted, ","); got != want {
			t.Errorf("decision %d (groups %v): granted %s, want %s", i, id.Groups, got, want)
		}
	}
	if got := e.callers.Len(); got != 2 {
		t.Fatalf("%d callers remembered, want 2", got)
	}
	for _, key := range e.callers.Keys() {
		c, _ := e.callers.Peek(key)
		known := *c.values.known.Load()
		if len(known) != 1 {
			t.Errorf("%d values remembered for a caller, want 1 (admin)", len(known))
		}
	}
}

// TestIdentityValuesPerRequest: a policy that reads the request's time
// has answers that cannot be reused across requests; its identity rules
// are evaluated once per request (for all its scopes), never served from
// another request's.
func TestIdentityValuesPerRequest(t *testing.T) {
	src := `package registry.authz

late if input.request.time >= "2026-06-01T00:00:00Z"

allow contains "pull" if input.scope.type == "repository"
allow contains "push" if { late; input.scope.type == "repository" }
`
	e := compileSource(t, src, nil)
	if e.callers != nil || e.keys != nil {
		t.Fatal("the answers of a policy reading the time are reused across requests")
	}
	sc := func(name string) access.Scope {
		return access.Scope{Resource: access.Resource{Type: "repository", Name: name}, Actions: []string{"pull", "push"}}
	}
	for i, c := range []struct {
		time time.Time
		want string
	}{{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "pull"}, {time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), "pull,push"},
		{time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), "pull"}} {
		// The scopes of one request, as Authorize decides them.
		r := &tokenRequest{id: identity.Anonymous, req: identity.Request{Time: c.time}}
		for _, name := range []string{"a/x", "a/y"} {
			d, err := e.decide(context.Background(), r, sc(name), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(d.Granted, ","); got != c.want {
				t.Errorf("request %d (%s), %s: granted %s, want %s", i, c.time.Format(time.DateOnly), name, got, c.want)
			}
		}
		if r.caller == nil || len(*r.caller.values.known.Load()) != 1 {
			t.Errorf("request %d: the time rule's value is not kept for its scopes", i)
		}
	}
}

// TestIdentityValuesConcurrent: requests of a few callers at once on a
// fresh engine fill and read the callers' values; each decides as alone
// (run with -race).
func TestIdentityValuesConcurrent(t *testing.T) {
	src := `package registry.authz

member_of := {ns | some ns, members in data.registry.namespaces; input.identity.subject in members}

allow contains "pull" if split(input.scope.name, "/")[0] in member_of
`
	e := compileSource(t, src, map[string]any{"namespaces": map[string]any{"team": []any{"alice", "bob"}, "ops": []any{"bob"}}})
	concurrently(t, 16, 30, func(g, i int) error {
		subject := []string{"alice", "bob", "carol"}[(g+i)%3]
		name := []string{"team/a", "ops/b"}[(g+i/3)%2]
		id := identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: subject}
		sc := access.Scope{Resource: access.Resource{Type: "repository", Name: name}, Actions: []string{"pull"}}
		d, err := e.Decide(context.Background(), id, identity.Request{}, sc)
		want := map[string]bool{"alice team/a": true, "bob team/a": true, "bob ops/b": true}[subject+" "+name]
		if err != nil || (len(d.Granted) == 1) != want {
			return fmt.Errorf("%s on %s: granted %v, want pull %t: %w", subject, name, d.Granted, want, err)
		}
		return nil
	})
	if got := e.callers.Len(); got != 3 {
		t.Errorf("%d callers remembered, want 3", got)
	}
}

// TestRememberedDeny: a deny the engine remembers (static, or read from
// the caller alone) is taken from there once known, and OPA asked for
// allow alone; the answers are those of evaluating it every time. A deny
// that reads the scope, or a policy without one, is always evaluated.
func TestRememberedDeny(t *testing.T) {
	mallory := identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "mallory"}
	alice := mallory
	alice.Subject = "alice"
	for _, c := range []struct {
		name, deny  string
		remembered  bool
		perIdentity bool
		// denied says whether who is denied on repository name.
		denied func(who, name string) bool
	}{
		// (A count, so that OPA's rule index cannot skip the rule for
		// alice: a rule the index skips is not remembered.)
		{"identity", `deny contains "blocked" if count({s | s := input.identity.subject; s == "mallory"}) == 1`, true, true,
			func(who, _ string) bool { return who == "mallory" }},
		{"static", `deny contains "closed" if data.registry.closed`, true, false,
			func(string, string) bool { return true }},
		{"scope", `deny contains "secret" if startswith(input.scope.name, "secret/")`, false, false,
			func(_, name string) bool { return strings.HasPrefix(name, "secret/") }},
		{"none", ``, false, false,
			func(string, string) bool { return false }},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := "package registry.authz\n\nallow contains \"pull\" if input.scope.type == \"repository\"\n\n" + c.deny + "\n"
			e := compileSource(t, src, map[string]any{"closed": true})
			if got := e.allowOnly != nil; got != c.remembered || (got && e.deny.perIdentity != c.perIdentity) {
				t.Fatalf("allow-only query %v (deny %+v), want %v (per identity %v)", got, e.deny, c.remembered, c.perIdentity)
			}
			for i, name := range []string{"a/one", "secret/two", "a/three", "secret/four"} {
				for _, id := range []identity.Identity{mallory, alice} {
					sc := access.Scope{Resource: access.Resource{Type: "repository", Name: name}, Actions: []string{"pull"}}
					r := &tokenRequest{id: id}
					d, err := e.decide(context.Background(), r, sc, nil)
					if err != nil {
						t.Fatal(err)
					}
					want := "pull"
					if c.denied(id.Subject, name) {
						want = ""
					}
					if got := strings.Join(d.Granted, ","); got != want || (want == "") != (len(d.Reasons) > 0) {
						t.Errorf("%s on %s: granted %q (reasons %v), want %q", id.Subject, name, got, d.Reasons, want)
					}
					if c.remembered {
						if _, ok := e.rememberedDeny(r); !ok {
							t.Errorf("%s, decision %d: deny not remembered after an evaluation", id.Subject, i)
						}
					}
				}
			}
		})
	}
}

// TestRememberedDenyNotKeptOnError: a deny of the wrong type fails every
// decision (it is never remembered, so never taken for a good value).
func TestRememberedDenyNotKeptOnError(t *testing.T) {
	e := compileSource(t, "package registry.authz\n\nallow contains \"pull\" if input.scope.type == \"repository\"\n\ndeny := 5\n", nil)
	if e.allowOnly == nil {
		t.Fatal("a static deny: no allow-only query")
	}
	id := identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice"}
	for i := range 3 {
		sc := access.Scope{Resource: access.Resource{Type: "repository", Name: fmt.Sprintf("a/r%d", i)}, Actions: []string{"pull"}}
		if d, err := e.Decide(context.Background(), id, identity.Request{}, sc); err == nil || !strings.Contains(err.Error(), "deny") {
			t.Fatalf("decision %d: %+v, %v; want a deny error", i, d, err)
		}
	}
}

// concurrently runs step(g, i) for i < steps in each of goroutines
// goroutines at once, and reports every error it returns.
func concurrently(t *testing.T, goroutines, steps int, step func(g, i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*steps)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range steps {
				if err := step(g, i); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

package authz

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// A static rule reads neither input nor anything that changes between two
// evaluations of the same policy revision: only data (which changes on a
// reload or a bundle activation, and those make a new Engine), other static
// rules and deterministic built-ins. Its value is therefore the same in
// every evaluation of an Engine, and staticValues remembers it after the
// first: a policy can work out what it needs from its data (an index of the
// site's namespaces, its OIDC rules with their patterns parsed) in rules of
// its own, and pay for that once per revision instead of once per decision.
//
// Only whole rules are remembered (complete rules, and the full extent of
// partial set and object rules), never function calls, whose arguments may
// come from input: the number of entries is bounded by the number of static
// rules. Nothing is remembered inside a `with` (a test may replace data
// there), and an evaluation's values are kept only when it ends without
// error: OPA puts a value in its cache before it has checked, say, that a
// complete rule has no second value, and raises the conflict after.
type staticValues struct {
	// paths are the static rules' paths, by hash; lengths, their lengths
	// (most refs OPA caches are of other lengths: no hash needed).
	paths   map[int][]ast.Ref
	lengths map[int]bool
	// known maps a path's hash to the values remembered so far; replaced
	// whole (copy on write) when values are added, so reads take no lock.
	known atomic.Pointer[map[int][]staticValue]
	mu    sync.Mutex // serialises writers of known
}

type staticValue struct {
	ref       ast.Ref
	value     *ast.Term // nil: the rule is undefined
	undefined bool
}

// newStaticValues finds the static rules of a compiled policy; nil when it
// has none.
func newStaticValues(c *ast.Compiler) *staticValues {
	paths := staticRulePaths(c)
	if len(paths) == 0 {
		return nil
	}
	s := &staticValues{paths: map[int][]ast.Ref{}, lengths: map[int]bool{}}
	for _, p := range paths {
		h := p.Hash()
		s.paths[h] = append(s.paths[h], p)
		s.lengths[len(p)] = true
	}
	empty := map[int][]staticValue{}
	s.known.Store(&empty)
	return s
}

func (s *staticValues) isStatic(ref ast.Ref) bool {
	if !s.lengths[len(ref)] || !ref[0].Equal(ast.DefaultRootDocument) {
		return false
	}
	for _, p := range s.paths[ref.Hash()] {
		if p.Equal(ref) {
			return true
		}
	}
	return false
}

func (s *staticValues) get(ref ast.Ref) (staticValue, bool) {
	for _, v := range (*s.known.Load())[ref.Hash()] {
		if v.ref.Equal(ref) {
			return v, true
		}
	}
	return staticValue{}, false
}

// add remembers the values of one successful evaluation.
func (s *staticValues) add(values []staticValue) {
	if len(values) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.known.Load()
	next := make(map[int][]staticValue, len(old)+len(values))
	for h, vs := range old {
		next[h] = vs
	}
	for _, v := range values {
		h := v.ref.Hash()
		if !slices.ContainsFunc(next[h], func(x staticValue) bool { return x.ref.Equal(v.ref) }) {
			next[h] = append(slices.Clip(next[h]), v)
		}
	}
	s.known.Store(&next)
}

// evalCache is the virtual cache of one evaluation: OPA's own, with the
// static rules' values looked up in (and, at the end, added to) the
// Engine's staticValues.
type evalCache struct {
	topdown.VirtualCache
	static  *staticValues
	depth   int // frames pushed by `with`
	pending []staticValue
}

func (s *staticValues) newEvalCache() *evalCache {
	return &evalCache{VirtualCache: topdown.NewVirtualCache(), static: s}
}

func (c *evalCache) Push() { c.depth++; c.VirtualCache.Push() }
func (c *evalCache) Pop()  { c.depth--; c.VirtualCache.Pop() }

func (c *evalCache) Get(ref ast.Ref) (*ast.Term, bool) {
	if c.depth == 0 && c.static.isStatic(ref) {
		if v, ok := c.static.get(ref); ok {
			return v.value, v.undefined
		}
	}
	return c.VirtualCache.Get(ref)
}

func (c *evalCache) Put(ref ast.Ref, value *ast.Term) {
	c.VirtualCache.Put(ref, value)
	if c.depth == 0 && c.static.isStatic(ref) {
		// OPA reuses the slice it passes: keep a copy.
		c.pending = append(c.pending, staticValue{ref: ref.Copy(), value: value, undefined: value == nil})
	}
}

// done keeps the values of an evaluation that ended without error.
func (c *evalCache) done(err error) {
	if err == nil {
		c.static.add(c.pending)
	}
}

// staticRulePaths lists the paths of the static rules of a compiled policy
// that can be remembered whole: every rule at the path (and under it) is
// static, none is a function, and the path is ground.
func staticRulePaths(c *ast.Compiler) []ast.Ref {
	a := staticAnalysis{c: c, dynamic: map[*ast.Rule]bool{}}
	var paths []ast.Ref
	seen := map[string]bool{}
	for _, name := range sortedKeys(c.Modules) {
		for _, r := range c.Modules[name].Rules {
			p := r.Ref().GroundPrefix()
			key := p.String()
			if seen[key] {
				continue
			}
			seen[key] = true
			if a.rememberable(p) {
				paths = append(paths, p)
			}
		}
	}
	return paths
}

type staticAnalysis struct {
	c       *ast.Compiler
	dynamic map[*ast.Rule]bool // decided rules; in progress are false
}

func (a *staticAnalysis) rememberable(path ast.Ref) bool {
	rules := a.c.GetRules(path)
	if len(rules) == 0 {
		return false
	}
	for _, r := range rules {
		head := r.Head.Ref()
		// A function, or a rule whose head has variables past its last
		// key (a[x].b), is not cached whole at its path by OPA.
		if len(r.Head.Args) > 0 || len(head)-len(head.GroundPrefix()) > 1 || a.isDynamic(r) {
			return false
		}
	}
	return true
}

// isDynamic reports whether a rule (with its else branches) reads input,
// calls a built-in whose answer may change between evaluations (time,
// randomness, the network, print), uses `with`, or depends on a rule that
// does. Rego has no recursion, so the walk ends.
func (a *staticAnalysis) isDynamic(r *ast.Rule) bool {
	if d, ok := a.dynamic[r]; ok {
		return d
	}
	a.dynamic[r] = false
	d := a.walk(r)
	a.dynamic[r] = d
	return d
}

func (a *staticAnalysis) walk(r *ast.Rule) bool {
	dynamic := false
	vis := ast.NewGenericVisitor(func(x any) bool {
		if dynamic {
			return true
		}
		switch x := x.(type) {
		case *ast.Expr:
			if len(x.With) > 0 {
				dynamic = true
			} else if x.IsCall() {
				dynamic = a.callIsDynamic(x.Operator())
			}
		case ast.Call:
			if len(x) > 0 {
				if op, ok := x[0].Value.(ast.Ref); ok {
					dynamic = a.callIsDynamic(op)
				}
			}
		case ast.Ref:
			dynamic = a.refIsDynamic(x)
		}
		return dynamic
	})
	vis.Walk(r)
	return dynamic
}

func (a *staticAnalysis) callIsDynamic(op ast.Ref) bool {
	if op.HasPrefix(ast.DefaultRootRef) {
		return a.refIsDynamic(op)
	}
	name := op.String()
	b, ok := ast.BuiltinMap[name]
	if !ok {
		// Not a built-in OPA knows: say dynamic rather than guess.
		return true
	}
	switch name {
	case "print", "internal.print", "trace", "rego.metadata.rule", "rego.metadata.chain":
		return true
	}
	return b.Nondeterministic
}

func (a *staticAnalysis) refIsDynamic(ref ast.Ref) bool {
	switch {
	case ref.HasPrefix(ast.InputRootRef):
		return true
	case ref.HasPrefix(ast.DefaultRootRef):
		for _, dep := range a.c.GetRulesDynamicWithOpts(ref, ast.RulesOptions{IncludeHiddenModules: true}) {
			if a.isDynamic(dep) {
				return true
			}
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

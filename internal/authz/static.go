package authz

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
)

// A static rule reads neither input nor anything that changes between two
// evaluations of the same policy revision: only data (which changes on a
// reload or a bundle activation, and those make a new Engine), other static
// rules and deterministic built-ins. Its value is therefore the same in
// every evaluation of an Engine, and is remembered after the first: a
// policy can work out what it needs from its data (an index of the site's
// namespaces, its OIDC rules with their patterns parsed) in rules of its
// own, and pay for that once per revision instead of once per decision.
//
// An identity rule reads, besides those, only input.identity,
// input.request and input.version: the part of the input that is the same
// for every scope of a token request, and for every request of one caller
// (the fields the policy reads of them, that is: the same fields that key
// the decision memo). Its value is remembered per caller: who the caller
// is, which groups it has, what its ID token's claims allow it, is worked
// out once, and a new repository costs only the rules that read the scope.
//
// Only whole rules are remembered (complete rules, and the full extent of
// partial set and object rules), never function calls, whose arguments may
// come from the scope: the number of entries is bounded by the number of
// such rules. Nothing is remembered inside a `with` (a test may replace
// data or input there), and an evaluation's values are kept only when it
// ends without error: OPA puts a value in its cache before it has checked,
// say, that a complete rule has no second value, and raises the conflict
// after.
type rememberedRules struct {
	// paths are the remembered rules' paths, by hash; lengths, their
	// lengths (most refs OPA caches are of other lengths: no hash needed).
	paths   map[int][]rulePath
	lengths map[int]bool
	// static holds the static rules' values.
	static *ruleValues
	// perIdentity: some rules are identity rules.
	perIdentity bool
}

type rulePath struct {
	ref ast.Ref
	// perIdentity: an identity rule (else a static one).
	perIdentity bool
}

// ruleValues are remembered values of rules: the static ones of an engine,
// or the identity ones of one caller.
type ruleValues struct {
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

func newRuleValues() *ruleValues {
	v := &ruleValues{}
	v.init()
	return v
}

// init empties v: its zero value has no map to read.
func (v *ruleValues) init() {
	empty := map[int][]staticValue{}
	v.known.Store(&empty)
}

// newRememberedRules finds the rules of a compiled policy whose values can
// be remembered: the static ones, and with perIdentity the identity ones
// too. Nil when it has none.
func newRememberedRules(c *ast.Compiler, perIdentity bool) *rememberedRules {
	paths := rememberedRulePaths(c, perIdentity)
	if len(paths) == 0 {
		return nil
	}
	r := &rememberedRules{paths: map[int][]rulePath{}, lengths: map[int]bool{}, static: newRuleValues()}
	for _, p := range paths {
		h := p.ref.Hash()
		r.paths[h] = append(r.paths[h], p)
		r.lengths[len(p.ref)] = true
		r.perIdentity = r.perIdentity || p.perIdentity
	}
	return r
}

// lookup reports whether ref (whose hash is h) is the path of a
// remembered rule, and whether it is an identity rule.
func (r *rememberedRules) lookup(ref ast.Ref, h int) (found, perIdentity bool) {
	if !r.lengths[len(ref)] || !ref[0].Equal(ast.DefaultRootDocument) {
		return false, false
	}
	for _, p := range r.paths[h] {
		if p.ref.Equal(ref) {
			return true, p.perIdentity
		}
	}
	return false, false
}

func (v *ruleValues) get(ref ast.Ref, h int) (staticValue, bool) {
	for _, x := range (*v.known.Load())[h] {
		if x.ref.Equal(ref) {
			return x, true
		}
	}
	return staticValue{}, false
}

// add remembers the values of one successful evaluation.
func (v *ruleValues) add(values []staticValue) {
	if len(values) == 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	old := *v.known.Load()
	next := make(map[int][]staticValue, len(old)+len(values))
	for h, vs := range old {
		next[h] = vs
	}
	for _, x := range values {
		h := x.ref.Hash()
		if !slices.ContainsFunc(next[h], func(y staticValue) bool { return y.ref.Equal(x.ref) }) {
			next[h] = append(slices.Clip(next[h]), x)
		}
	}
	v.known.Store(&next)
}

// evalCache is the virtual cache of one evaluation: OPA's own, with the
// remembered rules' values looked up in (and, at the end, added to) the
// engine's static values and the caller's identity values.
type evalCache struct {
	*virtualCache
	base  baseCache
	rules *rememberedRules // nil: none
	// identity holds the caller's identity values; nil: identity rules
	// are evaluated every time.
	identity *ruleValues
	depth    int // frames pushed by `with`
	// pending are this evaluation's new values: static ones, identity
	// ones.
	pending [2][]staticValue
}

// evalCaches are evaluation caches of finished evaluations, for the next
// ones: a cache's memory is a fifth of the bytes a decision allocates.
var evalCaches = sync.Pool{New: func() any { return &evalCache{virtualCache: newVirtualCache()} }}

func newEvalCache(rules *rememberedRules, identity *ruleValues) *evalCache {
	c := evalCaches.Get().(*evalCache)
	c.rules, c.identity = rules, identity
	return c
}

// release returns the cache for another evaluation; the evaluation is over
// and nothing of it is used after (remembered values are copies).
func (c *evalCache) release() {
	c.reset() // the virtual cache
	c.base.reset()
	clear(c.pending[0])
	clear(c.pending[1])
	*c = evalCache{virtualCache: c.virtualCache, base: c.base, pending: [2][]staticValue{c.pending[0][:0], c.pending[1][:0]}}
	evalCaches.Put(c)
}

func (c *evalCache) Push() { c.depth++; c.virtualCache.Push() }
func (c *evalCache) Pop()  { c.depth--; c.virtualCache.Pop() }

// values returns where ref's value (h its hash) is remembered, and which
// pending list takes it; nil when it is not (or not here).
func (c *evalCache) values(ref ast.Ref, h int) (*ruleValues, int) {
	if c.depth != 0 || c.rules == nil {
		return nil, 0
	}
	found, perIdentity := c.rules.lookup(ref, h)
	switch {
	case !found:
		return nil, 0
	case perIdentity:
		return c.identity, 1
	default:
		return c.rules.static, 0
	}
}

// Get and Put hash the ref once for the three places it is looked up.
func (c *evalCache) Get(ref ast.Ref) (*ast.Term, bool) {
	h := ref.Hash()
	if values, _ := c.values(ref, h); values != nil {
		if v, ok := values.get(ref, h); ok {
			return v.value, v.undefined
		}
	}
	return c.get(ref, h)
}

func (c *evalCache) Put(ref ast.Ref, value *ast.Term) {
	h := ref.Hash()
	c.put(ref, value, h)
	if values, i := c.values(ref, h); values != nil {
		// OPA reuses the slice it passes (never the terms in it): keep
		// a copy.
		c.pending[i] = append(c.pending[i], staticValue{ref: slices.Clone(ref), value: value, undefined: value == nil})
	}
}

// done keeps the values of an evaluation that ended without error.
func (c *evalCache) done(err error) {
	if err != nil || c.rules == nil {
		return
	}
	c.rules.static.add(c.pending[0])
	if c.identity != nil {
		c.identity.add(c.pending[1])
	}
}

// rememberedRulePaths lists the paths of the rules of a compiled policy
// that can be remembered whole: every rule at the path (and under it) is
// static (or, with perIdentity, an identity rule), none is a function, and
// the path is ground.
func rememberedRulePaths(c *ast.Compiler, perIdentity bool) []rulePath {
	a := ruleAnalysis{c: c, tiers: map[*ast.Rule]tier{}}
	var paths []rulePath
	seen := map[string]bool{}
	for _, name := range sortedKeys(c.Modules) {
		for _, r := range c.Modules[name].Rules {
			p := r.Ref().GroundPrefix()
			key := p.String()
			if seen[key] {
				continue
			}
			seen[key] = true
			switch a.pathTier(p) {
			case tierStatic:
				paths = append(paths, rulePath{ref: p})
			case tierIdentity:
				if perIdentity {
					paths = append(paths, rulePath{ref: p, perIdentity: true})
				}
			}
		}
	}
	return paths
}

// tier is what a rule's value depends on, besides data: nothing (static),
// the caller (identity), or anything else (dynamic).
type tier int

const (
	tierStatic tier = iota
	tierIdentity
	tierDynamic
)

type ruleAnalysis struct {
	c     *ast.Compiler
	tiers map[*ast.Rule]tier // decided rules; those in progress are static
}

// pathTier is the tier of the rules at a path, taken as one value:
// dynamic when any of them is a function or is not cached whole at the
// path by OPA.
func (a *ruleAnalysis) pathTier(path ast.Ref) tier {
	rules := a.c.GetRules(path)
	if len(rules) == 0 {
		return tierDynamic
	}
	t := tierStatic
	for _, r := range rules {
		head := r.Head.Ref()
		// A function, or a rule whose head has variables past its last
		// key (a[x].b), is not cached whole at its path by OPA.
		if len(r.Head.Args) > 0 || len(head)-len(head.GroundPrefix()) > 1 {
			return tierDynamic
		}
		t = max(t, a.ruleTier(r))
	}
	return t
}

// ruleTier is a rule's tier (with its else branches): dynamic when it
// reads input.scope (or input whole, or by a computed key), calls a
// built-in whose answer may change between evaluations (time, randomness,
// the network, print), uses `with`, or depends on a rule that does. Rego
// has no recursion, so the walk ends.
func (a *ruleAnalysis) ruleTier(r *ast.Rule) tier {
	if t, ok := a.tiers[r]; ok {
		return t
	}
	a.tiers[r] = tierStatic
	t := a.walk(r)
	a.tiers[r] = t
	return t
}

func (a *ruleAnalysis) walk(r *ast.Rule) tier {
	t := tierStatic
	vis := ast.NewGenericVisitor(func(x any) bool {
		if t == tierDynamic {
			return true
		}
		switch x := x.(type) {
		case *ast.Expr:
			if len(x.With) > 0 {
				t = tierDynamic
			} else if x.IsCall() {
				t = max(t, a.callTier(x.Operator()))
			}
		case ast.Call:
			if len(x) > 0 {
				if op, ok := x[0].Value.(ast.Ref); ok {
					t = max(t, a.callTier(op))
				}
			}
		case ast.Ref:
			t = max(t, a.refTier(x))
		}
		return t == tierDynamic
	})
	vis.Walk(r)
	return t
}

func (a *ruleAnalysis) callTier(op ast.Ref) tier {
	if op.HasPrefix(ast.DefaultRootRef) {
		return a.refTier(op)
	}
	name := op.String()
	b, ok := ast.BuiltinMap[name]
	if !ok {
		// Not a built-in OPA knows: say dynamic rather than guess.
		return tierDynamic
	}
	switch name {
	case "print", "internal.print", "trace", "rego.metadata.rule", "rego.metadata.chain":
		return tierDynamic
	}
	if b.Nondeterministic {
		return tierDynamic
	}
	return tierStatic
}

// identityRoots are the parts of the input that are the same for every
// scope of a token request.
var identityRoots = map[ast.String]bool{"identity": true, "request": true, "version": true}

func (a *ruleAnalysis) refTier(ref ast.Ref) tier {
	switch {
	case ref.HasPrefix(ast.InputRootRef):
		if len(ref) > 1 {
			if root, ok := ref[1].Value.(ast.String); ok && identityRoots[root] {
				return tierIdentity
			}
		}
		return tierDynamic
	case ref.HasPrefix(ast.DefaultRootRef):
		t := tierStatic
		for _, dep := range a.c.GetRulesDynamicWithOpts(ref, ast.RulesOptions{IncludeHiddenModules: true}) {
			if t = max(t, a.ruleTier(dep)); t == tierDynamic {
				break
			}
		}
		return t
	}
	return tierStatic
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

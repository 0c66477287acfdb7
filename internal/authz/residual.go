package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gobwas/glob"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"

	"git.sr.ht/~zozs/srht-registry/internal/access"
)

// A residual is what is left of the policy for one caller once everything
// but input.scope is known: OPA's partial evaluation of allow[x] and
// deny[x] with input.scope unknown, which for the default policy is a
// handful of queries such as
//
//	input.scope.type = "repository"; glob.match("library/*", ["/"], input.scope.name); x = "pull"
//
// The engine decides a scope against it with a few string tests instead of
// a whole evaluation (OPA's evaluator costs 7-9 µs before it reads a rule;
// this, well under one). It is made for a caller that keeps asking about
// new repositories (residualAfter), and only when every query is built of
// the few tests this file knows, each of which it decides exactly as OPA's
// built-in does; anything else (a support rule, another built-in, another
// input field, a with) leaves the caller to OPA's evaluator, as before.
type residual struct {
	allow, deny []residualQuery
}

// residualQuery yields value when every test holds.
type residualQuery struct {
	tests []residualTest
	value string
}

// scopeField is an operand read from input.scope (fieldNone: a constant).
type scopeField uint8

const (
	fieldNone scopeField = iota
	fieldType
	fieldName
	fieldClass
)

var scopeFields = map[string]scopeField{"type": fieldType, "name": fieldName, "class": fieldClass}

// operand is a constant or a field of input.scope. Every field is a string
// when it is present; strs is a constant's strings, for the tests that
// take a string or a collection of them (nil for any other value).
type operand struct {
	field scopeField
	value ast.Value
	strs  []string
}

type testKind uint8

const (
	testEqual testKind = iota
	testNotEqual
	testGlob
	testStartsWith
	testEndsWith
	testContains
	testAnyPrefix
	testAnySuffix
)

// residualTest is one expression of a query, maybe negated.
type residualTest struct {
	kind    testKind
	negated bool
	a, b    operand
	glob    *glob.Pattern // testGlob: the compiled pattern; a is the subject
}

// residualAfter is the unmemoised decisions of a caller after which its
// residual is made. Making one (a partial evaluation of the policy) costs
// as much as some fifty evaluations of a scope (BenchmarkDecisionNewCaller:
// 1.2-1.7 ms against 25 µs), so it is made only for a caller that has
// already cost the engine a good part of that: a caller asking about a
// few repositories (a CI job, most users) never pays for one, and one
// asking about many new names pays at most about twice what the evaluator
// alone would have cost it.
const residualAfter = 32

// maxResidualQueries bounds a residual: a caller whose grants expand into
// more queries than this is left to OPA's evaluator.
const maxResidualQueries = 256

// errNotResidual marks a residual this file cannot decide.
var errNotResidual = errors.New("residual not decidable here")

// residuals makes residuals for an engine's callers.
type residuals struct {
	allow, deny *partialQuery
}

// partialQuery is a compiled query for partial evaluation, and its output
// variable.
type partialQuery struct {
	q   *directQuery
	out ast.Var
}

var residualOut = ast.Var("x")

// newResiduals prepares partial evaluation of the policy at path, or
// returns nil when its allow or deny are not what a residual can stand
// for: every rule at path.allow and path.deny must be a partial set rule
// ("allow contains x if ..."), always defined, as the residual's answer is.
func newResiduals(compiler *ast.Compiler, q *directQuery, path string) (*residuals, error) {
	path, err := queryPath(path)
	if err != nil {
		return nil, err
	}
	var rs residuals
	for _, p := range []struct {
		name string
		dst  **partialQuery
	}{{"allow", &rs.allow}, {"deny", &rs.deny}} {
		ref, err := ast.ParseRef(path + "." + p.name)
		if err != nil {
			return nil, err
		}
		if !onlyPartialSets(compiler, ref) {
			return nil, nil
		}
		body := ast.NewBody(ast.NewExpr(ast.NewTerm(ref.Append(ast.VarTerm(string(residualOut))))))
		compiled, err := q.qc.Compile(body)
		if err != nil {
			return nil, fmt.Errorf("compile %s query: %w", p.name, err)
		}
		*p.dst = &partialQuery{q: &directQuery{compiler: q.compiler, qc: q.qc, body: compiled, store: q.store,
			builtinValues: q.builtinValues}, out: residualOut}
	}
	return &rs, nil
}

// onlyPartialSets tells whether every rule that defines ref, or a document
// above or below it, is a partial set rule whose path is ref itself (no
// rules at all is fine: an undefined deny is an empty one).
func onlyPartialSets(compiler *ast.Compiler, ref ast.Ref) bool {
	for _, r := range compiler.GetRules(ref) {
		if r.Head.RuleKind() != ast.MultiValue || !r.Ref().Equal(ref) || r.Default {
			return false
		}
	}
	// A rule of a document above the package path (package a, rule
	// "b := {...}" for data.a.b.allow) defines it too.
	for i := len(ref) - 1; i > 1; i-- {
		if len(compiler.GetRulesExact(ref[:i])) > 0 {
			return false
		}
	}
	return true
}

// make partially evaluates allow and deny for one caller (input holds
// everything but the scope), within timeout. A residual this file cannot
// decide, or one too big, is errNotResidual.
func (rs *residuals) make(ctx context.Context, input ast.Value, vc *evalCache, timeout time.Duration) (*residual, error) {
	cancel := topdown.NewCancel()
	timer := time.AfterFunc(timeout, cancel.Cancel)
	defer timer.Stop()
	var res residual
	var err error
	if res.allow, err = rs.allow.partial(ctx, input, vc, cancel); err != nil {
		return nil, fmt.Errorf("allow: %w", err)
	}
	if res.deny, err = rs.deny.partial(ctx, input, vc, cancel); err != nil {
		return nil, fmt.Errorf("deny: %w", err)
	}
	return &res, nil
}

var unknownScope = []*ast.Term{ast.NewTerm(ast.InputRootRef.Append(ast.InternedTerm("scope")))}

func (p *partialQuery) partial(ctx context.Context, input ast.Value, vc *evalCache, cancel topdown.Cancel) ([]residualQuery, error) {
	txn, err := p.q.store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer p.q.store.Abort(ctx, txn)
	queries, support, err := topdown.NewQuery(p.q.body).
		WithVirtualCache(vc).
		WithBaseCache(&vc.base).
		WithQueryCompiler(p.q.qc).
		WithCompiler(p.q.compiler).
		WithStore(p.q.store).
		WithTransaction(txn).
		WithStrictBuiltinErrors(true).
		WithMetrics(noMetrics).
		WithCancel(cancel).
		WithInterQueryBuiltinValueCache(p.q.builtinValues).
		WithUnknowns(unknownScope).
		WithInput(ast.NewTerm(input)).
		PartialRun(ctx)
	if err != nil {
		return nil, err
	}
	if len(support) > 0 {
		return nil, fmt.Errorf("%w: support rules", errNotResidual)
	}
	if len(queries) > maxResidualQueries {
		return nil, fmt.Errorf("%w: %d queries", errNotResidual, len(queries))
	}
	out := make([]residualQuery, 0, len(queries))
	for _, body := range queries {
		q, live, err := p.query(body)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errNotResidual, err)
		}
		if live {
			out = append(out, q)
		}
	}
	return out, nil
}

// query reads one residual query. live is false for a query that can never
// hold (a test of constants that fails).
func (p *partialQuery) query(body ast.Body) (q residualQuery, live bool, err error) {
	bound := false
	live = true
	for _, expr := range body {
		if len(expr.With) > 0 {
			return q, false, fmt.Errorf("with in %v", expr)
		}
		if !expr.Negated {
			if v, ok := p.binding(expr); ok {
				if bound {
					return q, false, fmt.Errorf("%v bound twice", p.out)
				}
				s, isString := v.(ast.String)
				if !isString {
					// OPA's evaluator fails on it: leave it that.
					return q, false, fmt.Errorf("%v bound to a %s", p.out, ast.ValueName(v))
				}
				q.value, bound = string(s), true
				continue
			}
		}
		t, err := readTest(expr)
		if err != nil {
			return q, false, err
		}
		if t.constant() {
			if !t.holds(access.Scope{}, nil) {
				live = false
			}
			continue
		}
		q.tests = append(q.tests, t)
	}
	if !bound {
		return q, false, fmt.Errorf("%v unbound in %v", p.out, body)
	}
	return q, live, nil
}

// binding is the constant an expression "x = c" (or "c = x") binds the
// output variable to.
func (p *partialQuery) binding(expr *ast.Expr) (ast.Value, bool) {
	if !expr.IsEquality() {
		return nil, false
	}
	a, b := expr.Operand(0), expr.Operand(1)
	if b.Value.Compare(p.out) == 0 {
		a, b = b, a
	}
	if a.Value.Compare(p.out) != 0 || !ast.IsConstant(b.Value) {
		return nil, false
	}
	return b.Value, true
}

// testKinds are the built-ins a residual may call, by name.
var testKinds = map[string]testKind{
	ast.Equality.Name: testEqual, ast.Equal.Name: testEqual, ast.NotEqual.Name: testNotEqual,
	ast.GlobMatch.Name: testGlob, ast.StartsWith.Name: testStartsWith, ast.EndsWith.Name: testEndsWith,
	ast.Contains.Name: testContains, ast.AnyPrefixMatch.Name: testAnyPrefix, ast.AnySuffixMatch.Name: testAnySuffix,
}

func readTest(expr *ast.Expr) (residualTest, error) {
	t := residualTest{negated: expr.Negated}
	if !expr.IsCall() {
		if v, ok := expr.Terms.(*ast.Term); ok && ast.Boolean(true).Equal(v.Value) {
			// "true": a test of constants that holds.
			t.kind, t.a, t.b = testEqual, operand{value: ast.Boolean(true)}, operand{value: ast.Boolean(true)}
			return t, nil
		}
		return t, fmt.Errorf("expression %v", expr)
	}
	name := expr.Operator().String()
	args := expr.Operands()
	kind, known := testKinds[name]
	if !known {
		return t, fmt.Errorf("call %s", name)
	}
	t.kind = kind
	want := 2
	if kind == testGlob {
		want = 3
	}
	if len(args) != want {
		// A call whose result is bound to a variable (glob.match(p, d, s, r)).
		return t, fmt.Errorf("%s with %d operands", name, len(args))
	}
	var err error
	if kind == testGlob {
		return readGlob(t, args)
	}
	if t.a, err = readOperand(args[0]); err != nil {
		return t, err
	}
	if t.b, err = readOperand(args[1]); err != nil {
		return t, err
	}
	if kind != testEqual && kind != testNotEqual {
		// The string built-ins fail on anything but strings (and the
		// any_*_match ones on collections of strings): OPA's evaluator
		// says so.
		collection := kind == testAnyPrefix || kind == testAnySuffix
		for _, o := range []operand{t.a, t.b} {
			if o.field == fieldNone && (o.strs == nil || (!collection && !isString(o.value))) {
				return t, fmt.Errorf("%s on a %s", name, ast.ValueName(o.value))
			}
		}
	}
	return t, nil
}

// readGlob reads glob.match(pattern, delimiters, subject) with a constant
// pattern and delimiters, compiled as OPA's built-in compiles them.
func readGlob(t residualTest, args []*ast.Term) (residualTest, error) {
	pattern, ok := args[0].Value.(ast.String)
	if !ok {
		return t, fmt.Errorf("glob.match pattern %v", args[0])
	}
	var delimiters []rune
	switch d := args[1].Value.(type) {
	case ast.Null:
		delimiters = []rune{}
	case *ast.Array:
		for i := range d.Len() {
			s, ok := d.Elem(i).Value.(ast.String)
			if !ok || len([]rune(string(s))) != 1 {
				return t, fmt.Errorf("glob.match delimiters %v", d)
			}
			delimiters = append(delimiters, []rune(string(s))[0])
		}
		if len(delimiters) == 0 {
			delimiters = []rune{'.'}
		}
	default:
		return t, fmt.Errorf("glob.match delimiters %v", args[1])
	}
	g, err := glob.Compile(string(pattern), delimiters...)
	if err != nil {
		return t, err
	}
	t.glob = g
	if t.a, err = readOperand(args[2]); err != nil {
		return t, err
	}
	if t.a.field == fieldNone && !isString(t.a.value) {
		return t, fmt.Errorf("glob.match on a %s", ast.ValueName(t.a.value))
	}
	return t, nil
}

func isString(v ast.Value) bool { _, ok := v.(ast.String); return ok }

// readOperand reads a constant or input.scope.<field>.
func readOperand(t *ast.Term) (operand, error) {
	if ref, ok := t.Value.(ast.Ref); ok {
		if len(ref) == 3 && ref.HasPrefix(ast.InputRootRef) && ref[1].Equal(ast.InternedTerm("scope")) {
			if s, ok := ref[2].Value.(ast.String); ok {
				if f, ok := scopeFields[string(s)]; ok {
					return operand{field: f}, nil
				}
			}
		}
		return operand{}, fmt.Errorf("operand %v", t)
	}
	if !ast.IsConstant(t.Value) {
		return operand{}, fmt.Errorf("operand %v", t)
	}
	o := operand{value: t.Value}
	switch v := t.Value.(type) {
	case ast.String:
		o.strs = []string{string(v)}
	case *ast.Array, ast.Set:
		strs := []string{}
		all := true
		collect := func(e *ast.Term) {
			if s, ok := e.Value.(ast.String); ok {
				strs = append(strs, string(s))
			} else {
				all = false
			}
		}
		if a, ok := v.(*ast.Array); ok {
			a.Foreach(collect)
		} else {
			v.(ast.Set).Foreach(collect)
		}
		if all {
			o.strs = strs
		}
	}
	return o, nil
}

// constant tells whether the test reads no field of the scope.
func (t residualTest) constant() bool {
	return t.a.field == fieldNone && (t.kind == testGlob || t.b.field == fieldNone)
}

// scopeString is a field of the scope, and whether the input has it: as
// inputShape builds input.scope, a field the policy reads, class only when
// the scope has one.
func scopeString(f scopeField, sc access.Scope, read map[string]bool) (string, bool) {
	switch f {
	case fieldType:
		return sc.Type, read["input.scope.type"]
	case fieldName:
		return sc.Name, read["input.scope.name"]
	case fieldClass:
		return sc.Class, sc.Class != "" && read["input.scope.class"]
	}
	return "", false
}

// holds decides the test for sc. A field the input does not have makes the
// expression undefined: it fails, and holds when negated.
func (t residualTest) holds(sc access.Scope, read map[string]bool) bool {
	ok, defined := t.test(sc, read)
	if !defined {
		return t.negated
	}
	return ok != t.negated
}

func (t residualTest) test(sc access.Scope, read map[string]bool) (ok, defined bool) {
	a, aDefined := t.a.strings(sc, read)
	if !aDefined {
		return false, false
	}
	if t.kind == testGlob {
		return t.glob.Match(a[0]), true
	}
	b, bDefined := t.b.strings(sc, read)
	if !bDefined {
		return false, false
	}
	switch t.kind {
	case testEqual, testNotEqual:
		equal := false
		if t.a.field == fieldNone && t.b.field == fieldNone {
			equal = ast.Compare(t.a.value, t.b.value) == 0
		} else if a != nil && b != nil && (t.a.field != fieldNone || isString(t.a.value)) && (t.b.field != fieldNone || isString(t.b.value)) {
			equal = a[0] == b[0]
		}
		return equal == (t.kind == testEqual), true
	case testStartsWith:
		return strings.HasPrefix(a[0], b[0]), true
	case testEndsWith:
		return strings.HasSuffix(a[0], b[0]), true
	case testContains:
		return strings.Contains(a[0], b[0]), true
	case testAnyPrefix, testAnySuffix:
		match := strings.HasPrefix
		if t.kind == testAnySuffix {
			match = strings.HasSuffix
		}
		for _, s := range a {
			for _, base := range b {
				if match(s, base) {
					return true, true
				}
			}
		}
		return false, true
	}
	return false, false
}

// strings is the operand's value as strings (one for a field), and
// whether it is defined.
func (o operand) strings(sc access.Scope, read map[string]bool) ([]string, bool) {
	if o.field == fieldNone {
		return o.strs, true
	}
	s, ok := scopeString(o.field, sc, read)
	if !ok {
		return nil, false
	}
	return []string{s}, true
}

// decide answers for sc as the policy's evaluation would: the values of
// the queries that hold, each once, in order (as OPA orders a set of
// strings: deny's messages are logged in the same order either way).
func (r *residual) decide(sc access.Scope, read map[string]bool) memoEntry {
	allowed, denied := holding(r.allow, sc, read), holding(r.deny, sc, read)
	slices.Sort(allowed)
	slices.Sort(denied)
	return memoEntry{allowed: allowed, allowDefined: true, denied: denied}
}

func holding(queries []residualQuery, sc access.Scope, read map[string]bool) []string {
	var values []string
next:
	for _, q := range queries {
		for _, t := range q.tests {
			if !t.holds(sc, read) {
				continue next
			}
		}
		if !slices.Contains(values, q.value) {
			values = append(values, q.value)
		}
	}
	return values
}

// residualState is a caller's residual, once tried: nil r when the
// caller's policy is not one a residual stands for.
type residualState struct {
	r *residual
}

// callerResidual is the part of a caller's memory about residuals.
type callerResidual struct {
	unmemoised atomic.Int32
	making     atomic.Bool // a decision is making the residual
	state      atomic.Pointer[residualState]
}

// residualOf is the caller's residual: made on its residualAfter-th
// unmemoised decision, nil before that or when its policy is not one a
// residual stands for (then OPA's evaluator decides, as it would without
// residuals). One decision makes it; the caller's others meanwhile go to
// the evaluator.
func (e *Engine) residualOf(ctx context.Context, r *tokenRequest, parts inputParts) *residual {
	c := &r.callerOf(e).residual
	if s := c.state.Load(); s != nil {
		return s.r
	}
	if c.unmemoised.Add(1) < residualAfter || !c.making.CompareAndSwap(false, true) {
		return nil
	}
	// The remembered rules' values spare the partial evaluation much of
	// its work; it only reads them (done is not called: what it computes
	// is not kept, the evaluator's decisions keep what they compute).
	vc := e.evalCache(r)
	defer vc.release()
	res, err := e.residuals.make(ctx, e.shape.callerValue(parts), vc, e.timeout)
	if err != nil {
		// Not decidable here, or the partial evaluation failed: the
		// evaluator decides this caller's scopes, and reports its own
		// errors.
		res = nil
	}
	c.state.Store(&residualState{r: res})
	if e.onResidual != nil {
		e.onResidual(res != nil)
	}
	return res
}

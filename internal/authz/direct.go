package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
)

// directQuery evaluates the prepared query with OPA's evaluator (topdown)
// itself, as rego.PreparedEvalQuery does, and reads allow and deny as OPA
// values: rego converts every result to Go values (and builds an
// evaluation context, metrics and a result set) that the server never
// needs. rego still loads and compiles the policy.
type directQuery struct {
	compiler *ast.Compiler
	qc       ast.QueryCompiler
	body     ast.Body
	store    storage.Store
	// builtinValues keep what glob.match and the regex built-ins compile
	// from a pattern, across evaluations (see compiledPatterns).
	builtinValues cache.InterQueryValueCache
	// allowOnly: the query binds allow alone (allowQueryFor).
	allowOnly bool
}

// compiledPatterns bounds builtinValues. Without it, OPA keeps 100 compiled
// globs and 100 regular expressions process-wide and recompiles the rest on
// every call: a site whose policy matches more patterns than that (an
// expanded OIDC pattern per CI repository, as the default policy makes)
// would compile a glob on most decisions. 4,096 patterns is room for the
// engine's 1,024 remembered callers' patterns and the site's own.
const compiledPatterns = 4096

var allowVar, denyVar = ast.Var("allow"), ast.Var("deny")

// noMetrics: the server keeps its own metrics of decisions; OPA's timers of
// each evaluation would be made and never read.
var noMetrics = metrics.NoOp()

// newDirectQuery compiles the query (allow = [...]; deny = [...]) against a
// compiled policy and the store holding its data.
func newDirectQuery(compiler *ast.Compiler, store storage.Store, query string) (*directQuery, error) {
	if compiler == nil || store == nil {
		return nil, errors.New("no compiler or store")
	}
	parsed, err := ast.ParseBodyWithOpts(query, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, fmt.Errorf("parse query: %w", err)
	}
	qc := compiler.QueryCompiler()
	body, err := qc.Compile(parsed)
	if err != nil {
		return nil, fmt.Errorf("compile query: %w", err)
	}
	size := compiledPatterns
	values := cache.NewInterQueryValueCache(context.Background(), &cache.Config{
		InterQueryBuiltinValueCache: cache.InterQueryBuiltinValueCacheConfig{MaxNumEntries: &size},
	})
	return &directQuery{compiler: compiler, qc: qc, body: body, store: store, builtinValues: values}, nil
}

// eval evaluates one input. c holds the evaluation's virtual and base
// caches (nil: OPA's own); cancel stops it; tracers see it.
func (q *directQuery) eval(ctx context.Context, input ast.Value, c *evalCache, cancel topdown.Cancel, tracers []topdown.QueryTracer) (memoEntry, error) {
	txn, err := q.store.NewTransaction(ctx)
	if err != nil {
		return memoEntry{}, err
	}
	defer q.store.Abort(ctx, txn)
	query := topdown.NewQuery(q.body).
		WithQueryCompiler(q.qc).
		WithCompiler(q.compiler).
		WithStore(q.store).
		WithTransaction(txn).
		WithStrictBuiltinErrors(true).
		WithMetrics(noMetrics).
		WithCancel(cancel).
		WithInterQueryBuiltinValueCache(q.builtinValues).
		WithInput(ast.NewTerm(input))
	if c != nil {
		query = query.WithVirtualCache(c).WithBaseCache(&c.base)
	}
	for _, t := range tracers {
		query = query.WithQueryTracer(t)
	}
	var m memoEntry
	results := 0
	err = query.Iter(ctx, func(qr topdown.QueryResult) error {
		results++
		var err error
		if m.allowed, m.allowDefined, err = stringSetValue(qr[allowVar]); err != nil {
			return fmt.Errorf("allow: %w", err)
		}
		if q.allowOnly {
			return nil
		}
		if m.denied, _, err = stringSetValue(qr[denyVar]); err != nil {
			return fmt.Errorf("deny: %w", err)
		}
		return nil
	})
	if err != nil {
		return memoEntry{}, err
	}
	if results != 1 {
		// The query always binds both variables; anything else is a
		// policy we do not understand.
		return memoEntry{}, fmt.Errorf("query returned %d results, want 1", results)
	}
	return m, nil
}

// rememberedStrings reads a remembered value of deny as the query would
// have bound it.
func rememberedStrings(v staticValue) ([]string, error) {
	if v.undefined {
		return nil, nil
	}
	return stringsOf(v.value.Value)
}

// stringSetValue reads a comprehension binding: [x | x = rule] is [] (the
// rule is undefined) or [value], where value must be a set or array of
// strings.
func stringSetValue(binding *ast.Term) (values []string, defined bool, err error) {
	if binding == nil {
		return nil, false, errors.New("no binding")
	}
	wrapped, ok := binding.Value.(*ast.Array)
	if !ok || wrapped.Len() > 1 {
		return nil, false, fmt.Errorf("unexpected binding %v", ast.ValueName(binding.Value))
	}
	if wrapped.Len() == 0 {
		return nil, false, nil
	}
	values, err = stringsOf(wrapped.Elem(0).Value)
	return values, true, err
}

// stringsOf reads a set or array of strings, each string once.
func stringsOf(v ast.Value) ([]string, error) {
	var items []*ast.Term
	switch v := v.(type) {
	case ast.Set:
		items = v.Slice()
	case *ast.Array:
		items = make([]*ast.Term, 0, v.Len())
		v.Foreach(func(t *ast.Term) { items = append(items, t) })
	default:
		return nil, fmt.Errorf("want a set of strings, got %s", typeOfValue(v))
	}
	values := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := it.Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("want a set of strings, got an element of type %s", typeOfValue(it.Value))
		}
		if !slices.Contains(values, string(s)) {
			values = append(values, string(s))
		}
	}
	return values, nil
}

// typeOfValue names a value's type as the Go value rego would have given
// (the messages the server logged when rego read the results stay the
// same).
func typeOfValue(v ast.Value) string {
	switch v.(type) {
	case ast.String:
		return "string"
	case ast.Number:
		return "json.Number"
	case ast.Boolean:
		return "bool"
	case ast.Null:
		return "<nil>"
	case ast.Object:
		return "map[string]interface {}"
	case *ast.Array, ast.Set:
		return "[]interface {}"
	default:
		return fmt.Sprintf("%T", v)
	}
}

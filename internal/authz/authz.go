package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"git.sr.ht/~zozs/srht-registry/policy"
)

// InputVersion is input.version: bumped only on an incompatible change of
// the input document. Version 2 named each identity's provider, and made
// every principal the pair (provider, subject). OIDC logins (method and
// refreshed_from "oidc", identity.oidc) were added to version 2 without a
// bump: new fields and values, present only where authn.oidc is configured
// (see policy/README.md, "Input version notes").
const InputVersion = 2

// DefaultQuery is the package whose allow and deny rules are read.
const DefaultQuery = policy.DefaultQuery

// DefaultTimeout bounds one evaluation.
const DefaultTimeout = policy.DefaultTimeout

// EmbeddedRevision is the revision reported for the embedded policy.
const EmbeddedRevision = "embedded"

// Options say which policy to load: the modules of an fs.FS (the embedded
// default) with Data, or local OPA bundles.
type Options struct {
	// Modules holds the .rego files to evaluate; _test.rego files are
	// skipped. Ignored when Bundles is set.
	Modules fs.FS
	// Data is stored under data.registry. Only with Modules: a bundle
	// brings its own data.
	Data map[string]any
	// DataSchema is a JSON schema of the data document, {"registry":
	// Data}; when set, Data that does not match it fails to compile,
	// naming the key path of each mismatch. Only with Modules: a bundle
	// brings its own schema (BundleDataSchema).
	DataSchema []byte
	// Bundles are paths of OPA bundles: directories or .tar.gz files.
	Bundles []string
	// Schema is a JSON schema of the input document; when set, a policy
	// that reads an input field the schema does not have fails to compile.
	Schema []byte
	// Query is the package path whose allow/deny are read; DefaultQuery if "".
	Query string
	// Timeout bounds one evaluation; DefaultTimeout if 0.
	Timeout time.Duration
	// NoMemo evaluates every decision (for benchmarks and comparisons).
	NoMemo bool
	// NoIdentity evaluates the rules that read only the caller's part of
	// the input every time instead of once per caller (for benchmarks and
	// comparisons).
	NoIdentity bool
	// NoResidual decides every unmemoised scope with OPA's evaluator,
	// never with a caller's residual (for benchmarks and comparisons:
	// the decisions are the same).
	NoResidual bool
	// NoStatic evaluates the rules that read no input every time instead
	// of once per engine (for comparisons: the decisions are the same).
	NoStatic bool
	// AllowBuiltins lists built-ins denied by default (DeniedBuiltins)
	// that the policy may call; a policy calling another one fails to
	// compile.
	AllowBuiltins []string
}

// LocalPolicy is the Options of a policy the server holds itself: the
// embedded policy (with data under data.registry, checked against the
// default policy's data schema) or, when bundles are given, those bundles
// (each checked against its own data schema, if it has one), either
// type-checked against the input schema.
func LocalPolicy(data map[string]any, bundles []string, query string, timeout time.Duration) Options {
	return Options{Modules: policy.FS(), Data: data, DataSchema: policy.DataSchema(), Bundles: bundles, Schema: policy.InputSchema(),
		Query: query, Timeout: timeout}
}

// Engine is one compiled policy with its prepared query. It never changes;
// a reload builds a new one.
type Engine struct {
	direct   *directQuery
	revision string
	// bundles are the active bundles and their revisions, for metrics;
	// the embedded policy is one pseudo-bundle named "embedded".
	bundles []BundleRevision
	timeout time.Duration
	memo    *memo // nil: every decision is evaluated
	// reads are the input leaves the policy may read.
	reads map[string]bool
	// rules are the rules whose values are remembered (static ones per
	// engine, identity ones per caller); nil when the policy has none (or
	// NoStatic is set).
	rules *rememberedRules
	// keys key the decision memo and the callers' identity values; nil
	// when the policy's answers must not be reused (then identity values
	// are kept for the scopes of one request only).
	keys *memo
	// callers are what is remembered of each caller, by
	// keys.identityKey; nil when keys is nil (or NoIdentity is set).
	callers *lru.Cache[string, *caller]
	// shape is the input document's fields the policy may read.
	shape inputShape
	// allowOnly asks for allow alone, when deny is a rule whose value the
	// engine remembers (a static or an identity rule; nil otherwise):
	// once deny's value is remembered (for this caller, if it is an
	// identity rule), an evaluation takes it from there instead of
	// having OPA evaluate deny's comprehension (ten allocations and a
	// tenth of a cheap decision).
	allowOnly *directQuery
	deny      rememberedRule
	// residuals make each busy caller's residual (residual.go); nil when
	// the engine does not remember callers, or the policy's allow or
	// deny is not a partial set.
	residuals *residuals
	// onResidual is told of each residual made (true) or not (false); set
	// by the Authorizer that adopts the engine, nil for one used alone.
	onResidual func(made bool)
}

// rememberedRule is the path of a rule the engine remembers.
type rememberedRule struct {
	ref         ast.Ref
	hash        int
	perIdentity bool
}

// queryFor reads each rule through a comprehension so that a policy that
// does not define deny (or allow) still yields a result: [] for undefined,
// [value] otherwise, and a wrong-typed value can be told from no value.
func queryFor(path string) (string, error) {
	path, err := queryPath(path)
	if err != nil {
		return "", err
	}
	// "=" rather than ":=": a variable declared with := is renamed when the
	// query is compiled, and directQuery reads allow and deny by name.
	return fmt.Sprintf("allow = [x | x = %[1]s.allow]; deny = [x | x = %[1]s.deny]", path), nil
}

// allowQueryFor is queryFor without deny: for an evaluation that takes
// deny's value from what the engine remembers (Engine.allowOnly).
func allowQueryFor(path string) string {
	return fmt.Sprintf("allow = [x | x = %s.allow]", path)
}

// queryPath is the policy's package path, the default one when none is
// given.
func queryPath(path string) (string, error) {
	if path == "" {
		path = DefaultQuery
	}
	if !policy.ValidQuery(path) {
		return "", fmt.Errorf("policy query %q: want a dotted data reference such as %s", path, DefaultQuery)
	}
	return path, nil
}

func timeoutOr(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}

// Compile loads and compiles the policy and prepares the query. A policy
// that does not compile (or, with a schema, reads input the schema does not
// define), data that does not match its schema, and a policy that defines
// no allow rule at the query path are errors here, never at request time.
func Compile(ctx context.Context, opts Options) (*Engine, error) {
	q, err := queryFor(opts.Query)
	if err != nil {
		return nil, err
	}
	if err := checkAllowBuiltins(opts.AllowBuiltins); err != nil {
		return nil, err
	}
	var compiler *ast.Compiler
	// Bundles are activated into this store too; directQuery reads it.
	store := inmem.New()
	regoOpts := []func(*rego.Rego){rego.Query(q), rego.StrictBuiltinErrors(true), rego.Capabilities(capabilities(opts.AllowBuiltins)),
		rego.CompilerHook(func(c *ast.Compiler) { compiler = c })}
	if opts.Schema != nil {
		var schema any
		if err := json.Unmarshal(opts.Schema, &schema); err != nil {
			return nil, fmt.Errorf("input schema: %w", err)
		}
		ss := ast.NewSchemaSet()
		ss.Put(ast.SchemaRootRef, schema)
		regoOpts = append(regoOpts, rego.Schemas(ss))
	}
	revision := EmbeddedRevision
	bundles := []BundleRevision{{Name: EmbeddedRevision, Revision: EmbeddedRevision}}
	var parsed []*ast.Module
	if len(opts.Bundles) > 0 {
		bundles = nil
		var revisions []string
		for _, p := range opts.Bundles {
			b, err := LoadBundle(p)
			if err != nil {
				return nil, err
			}
			var mods []*ast.Module
			for _, m := range b.Modules {
				mods = append(mods, m.Parsed)
			}
			if err := checkBuiltins(mods, opts.AllowBuiltins); err != nil {
				return nil, fmt.Errorf("bundle %s: %w", p, err)
			}
			regoOpts = append(regoOpts, rego.ParsedBundle(p, b))
			revisions = append(revisions, b.Manifest.Revision)
			bundles = append(bundles, BundleRevision{Name: p, Revision: b.Manifest.Revision})
			for _, m := range b.Modules {
				parsed = append(parsed, m.Parsed)
			}
		}
		revision = strings.Join(revisions, ",")
	} else {
		if opts.DataSchema != nil {
			if err := CheckData(opts.DataSchema, "policy data", map[string]any{"registry": dataOrEmpty(opts.Data)}); err != nil {
				return nil, err
			}
		}
		mods, err := readModules(opts.Modules)
		if err != nil {
			return nil, err
		}
		for _, m := range mods {
			pm, err := ast.ParseModuleWithOpts(m.path, m.src, ast.ParserOptions{RegoVersion: ast.RegoV1})
			if err != nil {
				return nil, fmt.Errorf("compile policy: %w", err)
			}
			regoOpts = append(regoOpts, rego.ParsedModule(pm))
			parsed = append(parsed, pm)
		}
		if err := checkBuiltins(parsed, opts.AllowBuiltins); err != nil {
			return nil, fmt.Errorf("compile policy: %w", err)
		}
		store = inmem.NewFromObject(map[string]any{"registry": dataOrEmpty(opts.Data)})
	}
	// rego writes bundles only into a store it made itself, unless given
	// the transaction to write them in: then it is ours to commit.
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return nil, err
	}
	// rego loads, checks and compiles the policy (and hands over its
	// compiler); directQuery evaluates it.
	_, err = rego.New(append(regoOpts, rego.Store(store), rego.Transaction(txn))...).PrepareForEval(ctx)
	if err != nil {
		store.Abort(ctx, txn)
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	if err := store.Commit(ctx, txn); err != nil {
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	if err := checkAllow(parsed, opts.Query); err != nil {
		return nil, err
	}
	direct, err := newDirectQuery(compiler, store, q)
	if err != nil {
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	e := &Engine{direct: direct, revision: revision, bundles: bundles, timeout: timeoutOr(opts.Timeout)}
	a := analyse(parsed)
	e.reads, e.shape = a.read, newInputShape(a)
	e.remember(newMemo(parsed), compiler, !opts.NoMemo, !opts.NoStatic, !opts.NoIdentity)
	if err := e.rememberDeny(compiler, opts.Query); err != nil {
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	if err := e.makeResiduals(compiler, opts.Query, !opts.NoResidual); err != nil {
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	return e, nil
}

type module struct{ path, src string }

func readModules(fsys fs.FS) ([]module, error) {
	if fsys == nil {
		return nil, errors.New("read policy: no policy given")
	}
	var mods []module
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".rego" || isTestFile(p) {
			return err
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		mods = append(mods, module{p, string(src)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	if len(mods) == 0 {
		return nil, errors.New("read policy: no .rego files")
	}
	return mods, nil
}

func isTestFile(p string) bool { return strings.HasSuffix(p, "_test.rego") }

// LoadBundle reads an OPA bundle from a directory or a .tar.gz file, without
// its _test.rego files: tests are for `policy test`, not for evaluation.
// A bundle with a data schema (BundleDataSchema at its root) whose data
// does not match it is refused.
func LoadBundle(p string) (*bundle.Bundle, error) {
	b, err := readBundle(p)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", p, err)
	}
	b.Modules = slices.DeleteFunc(b.Modules, func(m bundle.ModuleFile) bool { return isTestFile(m.Path) })
	if len(b.Modules) == 0 {
		return nil, fmt.Errorf("bundle %s: no policy modules", p)
	}
	schema, err := ReadBundleDataSchema(p)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", p, err)
	}
	if schema != nil {
		s, err := CompileDataSchema(schema)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %s: %w", p, BundleDataSchema, err)
		}
		if err := s.Check(fmt.Sprintf("bundle %s: data", p), dataOrEmpty(b.Data)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// compileFromManager compiles the query against an OPA plugin manager's
// compiler and store, and reads the bundles' revisions inside the
// transaction that activates them, so the new engine is in place when the
// transaction commits.
func compileFromManager(ctx context.Context, compiler *ast.Compiler, store storage.Store, txn storage.Transaction, query string, timeout time.Duration, allow []string) (*Engine, error) {
	q, err := queryFor(query)
	if err != nil {
		return nil, err
	}
	bundles, err := bundleRevisions(ctx, store, txn)
	if err != nil {
		return nil, err
	}
	var parsed []*ast.Module
	for _, m := range compiler.Modules {
		parsed = append(parsed, m)
	}
	// Before the first bundle the manager's compiler is empty: that is no
	// policy yet (the caller ignores it), not a policy without allow.
	if len(bundles) > 0 {
		if err := checkAllow(parsed, query); err != nil {
			return nil, err
		}
	}
	// OPA's bundle plugin compiles with every built-in: the denied ones
	// are refused here, before the engine is swapped in.
	if err := checkBuiltins(parsed, allow); err != nil {
		return nil, err
	}
	revs := make([]string, len(bundles))
	for i, b := range bundles {
		revs[i] = b.Name + "@" + b.Revision
	}
	direct, err := newDirectQuery(compiler, store, q)
	if err != nil {
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	a := analyse(parsed)
	e := &Engine{direct: direct, revision: strings.Join(revs, ","), bundles: bundles, timeout: timeoutOr(timeout),
		reads: a.read, shape: newInputShape(a)}
	e.remember(newMemo(parsed), compiler, true, true, true)
	if err := e.rememberDeny(compiler, query); err != nil {
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	if err := e.makeResiduals(compiler, query, true); err != nil {
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	return e, nil
}

// callersSize bounds the callers an engine remembers: the callers of a
// burst (a CI job's pushes, a user's pulls) come back within it. Each costs
// a few KB (its key, its input parts, its identity rules' values); with
// 4,096, 100,000 distinct Sourcehut logins peaked 44 MiB higher.
const callersSize = 1024

// remember sets up what the engine remembers between evaluations: the
// decisions (memo), the static rules' values, and of each caller its input
// parts and its identity rules' values.
func (e *Engine) remember(keys *memo, compiler *ast.Compiler, decisions, static, identities bool) {
	e.keys = keys
	if decisions {
		e.memo = keys
	}
	if static && compiler != nil {
		e.rules = newRememberedRules(compiler, identities)
	}
	if identities && keys != nil {
		e.callers, _ = lru.New[string, *caller](callersSize)
	}
}

// rememberDeny sets up allowOnly when the policy's deny (at path.deny) is
// a rule the engine remembers.
func (e *Engine) rememberDeny(compiler *ast.Compiler, path string) error {
	if e.rules == nil {
		return nil
	}
	path, err := queryPath(path)
	if err != nil {
		return err
	}
	ref, err := ast.ParseRef(path + ".deny")
	if err != nil {
		return err
	}
	h := ref.Hash()
	found, perIdentity := e.rules.lookup(ref, h)
	if !found {
		return nil
	}
	q, err := newDirectQuery(compiler, e.direct.store, allowQueryFor(path))
	if err != nil {
		return err
	}
	q.builtinValues, q.allowOnly = e.direct.builtinValues, true
	e.allowOnly, e.deny = q, rememberedRule{ref: ref, hash: h, perIdentity: perIdentity}
	return nil
}

// makeResiduals sets up residuals, when the engine remembers callers (a
// residual is kept with what is remembered of its caller).
func (e *Engine) makeResiduals(compiler *ast.Compiler, path string, enabled bool) error {
	if !enabled || e.callers == nil {
		return nil
	}
	rs, err := newResiduals(compiler, e.direct, path)
	e.residuals = rs
	return err
}

// rememberedDeny is deny's value as remembered for r's caller, if it is.
func (e *Engine) rememberedDeny(r *tokenRequest) (staticValue, bool) {
	values := e.rules.static
	if e.deny.perIdentity {
		values = &r.callerOf(e).values
	}
	return values.get(e.deny.ref, e.deny.hash)
}

// BundleRevision is an active bundle: its name (a local bundle's path, a
// remote bundle's name in the OPA configuration) and its manifest revision.
type BundleRevision struct{ Name, Revision string }

func bundleRevisions(ctx context.Context, store storage.Store, txn storage.Transaction) ([]BundleRevision, error) {
	names, err := bundle.ReadBundleNamesFromStore(ctx, store, txn)
	if err != nil && !storage.IsNotFound(err) {
		return nil, err
	}
	slices.Sort(names)
	var revs []BundleRevision
	for _, n := range names {
		r, err := bundle.ReadBundleRevisionFromStore(ctx, store, txn, n)
		if err != nil && !storage.IsNotFound(err) {
			return nil, err
		}
		revs = append(revs, BundleRevision{Name: n, Revision: r})
	}
	return revs, nil
}

func dataOrEmpty(d map[string]any) map[string]any {
	if d == nil {
		return map[string]any{}
	}
	return d
}

// Revision names the policy the engine evaluates: "embedded", or the
// bundles' revisions.
func (e *Engine) Revision() string { return e.revision }

// Bundles lists the active bundles and their revisions.
func (e *Engine) Bundles() []BundleRevision { return slices.Clone(e.bundles) }

// Memoised reports whether decisions of this engine are remembered, and
// the input fields that key them. OIDC claims read by name are listed one
// by one (input.identity.oidc.claims.ref, …["kubernetes.io"]); all of them
// are keyed when the policy reads them whole or by a computed name.
func (e *Engine) Memoised() (bool, []string) {
	if e.memo == nil {
		return false, nil
	}
	var paths []string
	for _, l := range e.memo.leaves {
		if l.path != claimsLeaf || e.memo.claims == nil {
			paths = append(paths, l.path)
			continue
		}
		for _, c := range e.memo.claims {
			paths = append(paths, ast.MustParseRef(claimsLeaf).Append(ast.StringTerm(c)).String())
		}
	}
	return true, paths
}

// RefreshBlind reports whether the policy tells identities apart by
// input.identity.method but never reads input.identity.refreshed_from. Such
// a policy sees an identity that a refresh token stands for as method
// "refresh", so a rule meant for "sourcehut" (the read-only cap) or
// "password" identities does not apply to it: with refresh tokens on, that
// is most likely a hole (see policy/README.md).
func (e *Engine) RefreshBlind() bool {
	return e.reads["input.identity.method"] && !e.reads["input.identity.refreshed_from"]
}

// OIDCBlind reports whether the policy never reads input.identity.oidc.
// Such a policy cannot grant anything by an ID token's claims; with
// authn.oidc configured, an OIDC identity (anyone the issuer vouches for:
// every workflow of every repository, for a public CI) is an authenticated
// identity to it like any other, wherever it does not check
// identity.method, e.g. as a member of "*".
func (e *Engine) OIDCBlind() bool {
	return !e.reads["input.identity.oidc.issuer"] && !e.reads[claimsLeaf]
}

// ProviderBlind reports whether the policy reads input.identity.subject but
// never input.identity.provider or input.identity.namespace: it cannot tell
// htpasswd:alice from sourcehut:alice, so whatever it grants a name it
// grants every provider's account of that name.
func (e *Engine) ProviderBlind() bool {
	return e.reads["input.identity.subject"] && !e.reads["input.identity.provider"] && !e.reads["input.identity.namespace"]
}

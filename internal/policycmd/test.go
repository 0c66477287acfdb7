package policycmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/runtime/info"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"

	"git.sr.ht/~zozs/srht-registry/internal/authz"
	"git.sr.ht/~zozs/srht-registry/policy"
)

// TestOptions are the options of Test, named after opa test's flags
// (given in brackets).
type TestOptions struct {
	// Dirs are tested each on its own: a directory holding a .manifest as
	// an OPA bundle, any other directory or file as plain policy and data
	// files. None means the embedded default policy with its tests.
	Dirs []string
	// Verbose lists every test with its result, and prints notes and the
	// trace of failures (--verbose).
	Verbose bool
	// Coverage prints a JSON coverage report instead of the test results;
	// failures are still listed (--coverage).
	Coverage bool
	// Format is the output format, pretty or json; ignored with Coverage
	// (--format).
	Format string
	// Run, a regular expression, selects the tests whose full name
	// (data.pkg.test_name) it matches; empty means all (--run).
	Run string
	// Timeout limits each test; 0 means DefaultTestTimeout (--timeout).
	Timeout time.Duration
	// Threshold, a percentage, fails the run when coverage is below it; a
	// non-zero Threshold implies Coverage (--threshold).
	Threshold float64
	// Schema is a JSON schema file for input, or a directory of schemas
	// (as opa test --schema); the modules are type-checked against it.
	// Empty means the embedded input schema (policy.InputSchema), the one
	// serve checks every local policy against (--schema).
	Schema string
	// NoSchema skips the input type check, as opa test without --schema
	// does (--no-schema).
	NoSchema bool
	// VarValues shows the failing expression and its local variable values
	// (--var-values).
	VarValues bool
	// FailOnEmpty makes a run in which no test ran an error
	// (--fail-on-empty).
	FailOnEmpty bool
	// ExitZeroOnSkipped keeps skipped (todo_) tests from failing the run
	// (--exit-zero-on-skipped).
	ExitZeroOnSkipped bool
}

// DefaultTestTimeout is opa test's per-test timeout.
const DefaultTestTimeout = 5 * time.Second

// check validates o and fills in its defaults.
func (o *TestOptions) check() error {
	switch o.Format {
	case "pretty", "json":
	default:
		return usage(fmt.Errorf("policy test: --format must be pretty or json, not %q", o.Format))
	}
	if o.Run != "" {
		if _, err := regexp.Compile(o.Run); err != nil {
			return usage(fmt.Errorf("policy test: --run: %w", err))
		}
	}
	switch {
	case o.Timeout < 0:
		return usage(errors.New("policy test: --timeout must not be negative"))
	case o.Timeout == 0:
		o.Timeout = DefaultTestTimeout
	}
	if o.Threshold < 0 || o.Threshold > 100 {
		return usage(errors.New("policy test: --threshold must be between 0 and 100"))
	}
	if o.Threshold > 0 {
		o.Coverage = true // as opa test does
	}
	if o.NoSchema && o.Schema != "" {
		return usage(errors.New("policy test: --schema and --no-schema contradict each other"))
	}
	return nil
}

// schemas is the schema set the modules are type-checked against: the
// file or directory Schema names, nil with NoSchema, otherwise the
// embedded input schema, at the root (input) as serve puts it. It also
// names the input schema for the errors.
func (o TestOptions) schemas() (*ast.SchemaSet, string, error) {
	switch {
	case o.NoSchema:
		return nil, "", nil
	case o.Schema != "":
		ss, err := loader.Schemas(o.Schema)
		if err != nil {
			return nil, "", fmt.Errorf("policy test: --schema: %w", err)
		}
		return ss, "--schema " + o.Schema, nil
	}
	var schema any
	if err := json.Unmarshal(policy.InputSchema(), &schema); err != nil {
		return nil, "", fmt.Errorf("embedded input schema: %w", err)
	}
	ss := ast.NewSchemaSet()
	ss.Put(ast.SchemaRootRef, schema)
	return ss, "the input schema that serve checks every local policy against (policy/input.schema.json, " +
		"printed by 'srht-registry policy schema')", nil
}

// isInputTypeError reports whether err holds a type error about input,
// such as "undefined ref: input.identity.usrname": one the input schema
// found.
func isInputTypeError(err error) bool {
	var errs ast.Errors
	if !errors.As(err, &errs) {
		return false
	}
	return slices.ContainsFunc(errs, func(e *ast.Error) bool {
		return e.Code == ast.TypeErr && strings.Contains(e.Message, "input.")
	})
}

// Test runs the Rego tests of opts.Dirs, or of the embedded policy, the way
// opa test does: the same report on stdout, and an error marked
// ErrNotPassed when a test did not pass (opa test's exit code 2). Each
// DIR is loaded and compiled on its own, with its own compiler and data;
// their results are reported together. It says on stderr why a report is
// empty.
//
// Like serve, it type-checks the modules against the input schema (see
// TestOptions.Schema; the _test.rego modules too, as opa test --schema
// does, but not the inputs given with `with input as`), and a bundle DIR's
// data against the bundle's data schema: a mismatch is an error like a
// compile error, and no test runs.
func Test(ctx context.Context, opts TestOptions, stdout, stderr io.Writer) error {
	if err := opts.check(); err != nil {
		return err
	}
	schemas, schemaName, err := opts.schemas()
	if err != nil {
		return err
	}

	// A DIR that fails to load or compile does not stop the others from
	// loading and compiling, so that every problem is reported at once (in
	// DIR order); but like opa test, no test runs unless all of them do.
	var targets []*testTarget
	if len(opts.Dirs) == 0 {
		t, err := loadEmbeddedTestTarget()
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	for _, dir := range opts.Dirs {
		targets = append(targets, loadTestTarget(dir))
	}

	rtInfo, err := info.New()
	if err != nil {
		return err
	}

	// Coverage is collected over every target into one report; their
	// module names, being file paths, don't collide.
	var cov *cover.Cover
	var coverTracer topdown.QueryTracer // stays a nil interface without Coverage
	allModules := map[string]*ast.Module{}
	if opts.Coverage {
		cov = cover.New()
		coverTracer = cov
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() {
		for _, t := range targets {
			if t.txn != nil {
				t.store.Abort(ctx, t.txn)
			}
		}
	}()

	// Compile every target (each with its own compiler and store) and
	// start its tests.
	for _, t := range targets {
		if t.err != nil {
			continue
		}
		if t.txn, t.err = t.store.NewTransaction(ctx, storage.WriteParams); t.err != nil {
			continue
		}
		compiler := ast.NewCompiler().
			SetErrorLimit(ast.CompileErrorLimitDefault).
			WithPathConflictsCheck(storage.NonEmpty(ctx, t.store, t.txn)).
			WithEnablePrintStatements(true).
			WithCapabilities(ast.CapabilitiesForThisVersion()).
			WithSchemas(schemas).
			WithUseTypeCheckAnnotations(true).
			WithRewriteTestRules(opts.VarValues)
		runner := tester.NewRunner().
			SetCompiler(compiler).
			SetStore(t.store).
			CapturePrintOutput(true).
			EnableTracing(opts.Verbose || opts.VarValues).
			StackTraces(true).
			SetCoverageQueryTracer(coverTracer).
			SetRuntime(rtInfo).
			SetModules(t.modules).
			SetBundles(t.bundles).
			SetTimeout(opts.Timeout).
			Filter(opts.Run)
		t.results, t.err = runner.RunTests(runCtx, t.txn)
		if t.err != nil {
			continue
		}
		for name, b := range t.bundles {
			for file, m := range b.ParsedModules(name) {
				allModules[file] = m
			}
		}
		for file, m := range t.modules {
			allModules[file] = m
		}
	}
	var errs []error
	for _, t := range targets {
		if t.err != nil {
			errs = append(errs, t.err)
		}
	}
	if len(errs) > 0 {
		if schemas != nil && slices.ContainsFunc(errs, isInputTypeError) {
			errs = append(errs, fmt.Errorf("policy test: input is type-checked against %s; "+
				"--no-schema skips the check", schemaName))
		}
		cancel()
		for _, t := range targets {
			if t.results != nil {
				for range t.results {
				}
			}
		}
		return errors.Join(errs...)
	}

	var reporter tester.Reporter
	switch {
	case opts.Coverage:
		reporter = tester.JSONCoverageReporter{
			Cover:     cov,
			Modules:   allModules,
			Output:    stdout,
			Threshold: opts.Threshold,
			Verbose:   opts.Verbose,
		}
	case opts.Format == "json":
		reporter = tester.JSONReporter{Output: stdout}
	default:
		reporter = tester.PrettyReporter{
			Output:      stdout,
			Verbose:     opts.Verbose,
			FailureLine: opts.VarValues,
			LocalVars:   opts.VarValues,
		}
	}

	// Feed every target's results, one target after the other, to the one
	// reporter, noting what did not pass. The coverage reporter stops
	// reading at the first error, so once the reporter has returned the
	// rest are only drained (and still counted).
	var tally testTally
	forwarded := make(chan *tester.Result)
	reported := make(chan struct{})
	go func() {
		defer close(forwarded)
		for _, t := range targets {
			for tr := range t.results {
				tally.add(tr, opts.ExitZeroOnSkipped)
				tr.Trace = filterTrace(tr.Trace, opts.Verbose)
				select {
				case forwarded <- tr:
				case <-reported:
				}
			}
		}
	}()
	reportErr := reporter.Report(forwarded)
	close(reported)
	for range forwarded {
	}

	_, belowThreshold := errors.AsType[*cover.CoverageThresholdError](reportErr)
	switch {
	case len(tally.notPassed) > 0:
		return notPassed(tally.err())
	case belowThreshold:
		return notPassed(reportErr)
	case reportErr != nil:
		return reportErr
	case tally.ran == 0 && opts.FailOnEmpty:
		return errors.New("policy test: no tests were run")
	case tally.ran == 0:
		// opa test says nothing and exits 0; say why the report is empty.
		if opts.Run != "" {
			fmt.Fprintf(stderr, "srht-registry: policy test: no tests found matching --run %q\n", opts.Run)
		} else {
			fmt.Fprintln(stderr, "srht-registry: policy test: no tests found")
		}
	}
	return nil
}

// testTarget is one thing tested on its own: the embedded policy, or one
// DIR of TestOptions.Dirs.
type testTarget struct {
	modules map[string]*ast.Module // plain policy files (and, for coverage, a bundle's)
	bundles map[string]*bundle.Bundle
	store   storage.Store
	txn     storage.Transaction
	results chan *tester.Result
	err     error // from loading or compiling
}

// loadEmbeddedTestTarget parses the embedded default policy and its tests.
// Files are named as in the source tree, policy/<name>, so that reports
// match those of `opa test policy/`.
func loadEmbeddedTestTarget() (*testTarget, error) {
	fsys := policy.TestFS()
	modules := map[string]*ast.Module{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(name) != ".rego" {
			return err
		}
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		file := path.Join("policy", name)
		m, err := ast.ParseModuleWithOpts(file, string(src), regoParserOptions())
		if err != nil {
			return err
		}
		modules[file] = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded policy: %w", err)
	}
	return &testTarget{modules: modules, store: inmem.New()}, nil
}

// loadTestTarget loads dir as a bundle if it holds a .manifest, otherwise
// as plain policy and data files, as opa test does with and without -b.
// A load error is left in the target's err.
func loadTestTarget(dir string) *testTarget {
	if isBundleDir(dir) {
		bundles, store, err := tester.LoadBundlesWithParserOptions([]string{dir}, nil, regoParserOptions())
		if err == nil {
			err = checkBundleData(dir, bundles[dir])
		}
		return &testTarget{bundles: bundles, store: store, err: err}
	}
	modules, store, err := tester.LoadWithParserOptions([]string{dir}, nil, regoParserOptions())
	return &testTarget{modules: modules, store: store, err: err}
}

// checkBundleData checks the data of the bundle b, loaded from dir,
// against the bundle's data schema (authz.BundleDataSchema at its root)
// if it has one, as serve does when it loads the bundle: with the same
// errors, naming the key path of each mismatch.
func checkBundleData(dir string, b *bundle.Bundle) error {
	src, err := authz.ReadBundleDataSchema(dir)
	if err != nil {
		return fmt.Errorf("bundle %s: %w", dir, err)
	}
	if src == nil {
		return nil
	}
	schema, err := authz.CompileDataSchema(src)
	if err != nil {
		return fmt.Errorf("bundle %s: %s: %w", dir, authz.BundleDataSchema, err)
	}
	data := b.Data
	if data == nil {
		data = map[string]any{}
	}
	return schema.Check(fmt.Sprintf("bundle %s: data", dir), data)
}

func isBundleDir(dir string) bool {
	info, err := os.Stat(filepath.Join(dir, bundle.ManifestExt))
	return err == nil && info.Mode().IsRegular()
}

// regoParserOptions are opa test's: Rego v1, annotations processed (for
// schema annotations).
func regoParserOptions() ast.ParserOptions {
	return ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}
}

// filterTrace keeps what opa test keeps of a test's trace: when verbose the
// notes and failures, otherwise (when tracing for VarValues) the failures.
func filterTrace(trace []*topdown.Event, verbose bool) []*topdown.Event {
	if verbose {
		return lineage.Filter(trace, func(e *topdown.Event) bool {
			return e.Op == topdown.NoteOp || e.Op == topdown.FailOp
		})
	}
	return lineage.Fails(trace)
}

// testTally counts the tests that ran and names those that did not pass.
type testTally struct {
	ran       int
	notPassed []string
}

func (t *testTally) add(tr *tester.Result, skipExitZero bool) {
	t.ran++
	if tr.Pass() || (tr.Skip && skipExitZero) {
		return
	}
	outcome := "FAIL"
	switch {
	case tr.Skip:
		outcome = "SKIPPED"
	case tr.Error != nil:
		outcome = "ERROR"
	}
	t.notPassed = append(t.notPassed, fmt.Sprintf("%s.%s (%s)", tr.Package, tr.Name, outcome))
}

// maxNamed is how many tests that did not pass the error names.
const maxNamed = 5

func (t *testTally) err() error {
	names := t.notPassed
	more := ""
	if len(names) > maxNamed {
		more = fmt.Sprintf(" and %d more", len(names)-maxNamed)
		names = names[:maxNamed]
	}
	noun := "tests"
	if len(t.notPassed) == 1 {
		noun = "test"
	}
	return fmt.Errorf("policy test: %d %s did not pass: %s%s", len(t.notPassed), noun, strings.Join(names, ", "), more)
}

package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
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

	"git.sr.ht/~zozs/srht-registry/policy"
)

// policyUsage lists the policy subcommands.
const policyUsage = `usage: srht-registry policy <command> [flags]

commands:
  test [flags] [DIR...]   run the Rego tests of the embedded policy, or of each
                          policy or bundle DIR (see policy test -h)
  eval [flags]            evaluate the policy for a request (see policy eval -h)
`

// runPolicy dispatches the policy subcommands on args[0].
func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return usageError{errors.New("policy: missing command")}
	}
	switch args[0] {
	case "test":
		return runPolicyTest(ctx, args[1:], stdout, stderr)
	case "eval":
		return runPolicyEval(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, policyUsage)
		return nil
	default:
		fmt.Fprint(stderr, policyUsage)
		return usageError{fmt.Errorf("policy: unknown command %q", args[0])}
	}
}

const policyTestHelp = `usage: srht-registry policy test [flags] [DIR...]

Runs Rego tests (rules named test_*) the way 'opa test' does, with the same
output and exit codes: 0 when every test passed, 2 when any failed, errored or
was skipped (todo_ prefix), 1 when the policy did not load or compile.

Without DIR it tests the embedded default policy together with its
_test.rego files; their names are shown as in the source tree (policy/...).
Otherwise it tests each DIR: a directory holding a .manifest is loaded as an
OPA bundle (like 'opa test -b DIR'), any other directory or file as plain
policy and data files (like 'opa test DIR'). Each DIR is loaded and compiled
on its own, with its own compiler and data, so two DIRs may both define
package registry.authz without conflicting; their results are reported
together and the exit code reflects every DIR. Policies are Rego v1 unless a
bundle's manifest says otherwise.

flags:
`

// policyTestFlags are the flags of policy test, named as in opa test.
type policyTestFlags struct {
	verbose      bool
	coverage     bool
	format       string
	run          string
	timeout      time.Duration
	threshold    float64
	schema       string
	varValues    bool
	failOnEmpty  bool
	skipExitZero bool
}

// defaultTestTimeout is opa test's per-test timeout.
const defaultTestTimeout = 5 * time.Second

func runPolicyTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f policyTestFlags
	fs := newFlags("policy test", stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), policyTestHelp)
		fs.PrintDefaults()
	}
	fs.BoolVar(&f.verbose, "v", false, "shorthand for --verbose")
	fs.BoolVar(&f.verbose, "verbose", false, "list every test with its result, and print notes and the trace of failures")
	fs.BoolVar(&f.coverage, "coverage", false, "print a JSON coverage report (as opa test --coverage) instead of the test results;\nfailures are still listed")
	fs.StringVar(&f.format, "format", "pretty", "output `FORMAT`: pretty or json (ignored with --coverage)")
	fs.StringVar(&f.run, "r", "", "shorthand for --run `REGEX`")
	fs.StringVar(&f.run, "run", "", "run only tests whose name (data.pkg.test_name) matches `REGEX`")
	fs.DurationVar(&f.timeout, "timeout", defaultTestTimeout, "time limit for each test (0 means the default)")
	fs.Float64Var(&f.threshold, "threshold", 0, "with --coverage, fail (exit 2) if coverage is below `PERCENT` (0-100);\nsetting it implies --coverage")
	fs.StringVar(&f.schema, "schema", "", "JSON schema `FILE` for input (or a directory of schemas, as opa test --schema);\npolicies are type-checked against it")
	fs.BoolVar(&f.varValues, "var-values", false, "show the failing expression and its local variable values")
	fs.BoolVar(&f.failOnEmpty, "fail-on-empty", false, "exit 1 when no test ran")
	fs.BoolVar(&f.skipExitZero, "z", false, "shorthand for --exit-zero-on-skipped")
	fs.BoolVar(&f.skipExitZero, "exit-zero-on-skipped", false, "skipped (todo_) tests do not make the exit code non-zero")

	dirs, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch f.format {
	case "pretty", "json":
	default:
		return usageError{fmt.Errorf("policy test: --format must be pretty or json, not %q", f.format)}
	}
	if f.run != "" {
		if _, err := regexp.Compile(f.run); err != nil {
			return usageError{fmt.Errorf("policy test: --run: %w", err)}
		}
	}
	switch {
	case f.timeout < 0:
		return usageError{errors.New("policy test: --timeout must not be negative")}
	case f.timeout == 0:
		f.timeout = defaultTestTimeout
	}
	if f.threshold < 0 || f.threshold > 100 {
		return usageError{errors.New("policy test: --threshold must be between 0 and 100")}
	}
	if f.threshold > 0 {
		f.coverage = true // as opa test does
	}

	return policyTest(ctx, f, dirs, stdout, stderr)
}

// parseInterspersed parses fs from args and returns the positional
// arguments, which may come before, between or after flags (as in
// `opa test policy/ -v`). Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// testTarget is one thing tested on its own: the embedded policy, or one
// DIR given on the command line.
type testTarget struct {
	modules map[string]*ast.Module // plain policy files (and, for coverage, a bundle's)
	bundles map[string]*bundle.Bundle
	store   storage.Store
	txn     storage.Transaction
	results chan *tester.Result
	err     error // from loading or compiling
}

func policyTest(ctx context.Context, f policyTestFlags, dirs []string, stdout, stderr io.Writer) error {
	schemas, err := loader.Schemas(f.schema)
	if err != nil {
		return err
	}

	// A DIR that fails to load or compile does not stop the others from
	// loading and compiling, so that every problem is reported at once (in
	// DIR order); but like opa test, no test runs unless all of them do.
	var targets []*testTarget
	if len(dirs) == 0 {
		t, err := loadEmbeddedTestTarget()
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	for _, dir := range dirs {
		targets = append(targets, loadTestTarget(dir))
	}

	rtInfo, err := info.New()
	if err != nil {
		return err
	}

	// Coverage is collected over every target into one report; their
	// module names, being file paths, don't collide.
	var cov *cover.Cover
	var coverTracer topdown.QueryTracer // stays a nil interface without --coverage
	allModules := map[string]*ast.Module{}
	if f.coverage {
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
			WithRewriteTestRules(f.varValues)
		runner := tester.NewRunner().
			SetCompiler(compiler).
			SetStore(t.store).
			CapturePrintOutput(true).
			EnableTracing(f.verbose || f.varValues).
			StackTraces(true).
			SetCoverageQueryTracer(coverTracer).
			SetRuntime(rtInfo).
			SetModules(t.modules).
			SetBundles(t.bundles).
			SetTimeout(f.timeout).
			Filter(f.run)
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
	case f.coverage:
		reporter = tester.JSONCoverageReporter{
			Cover:     cov,
			Modules:   allModules,
			Output:    stdout,
			Threshold: f.threshold,
			Verbose:   f.verbose,
		}
	case f.format == "json":
		reporter = tester.JSONReporter{Output: stdout}
	default:
		reporter = tester.PrettyReporter{
			Output:      stdout,
			Verbose:     f.verbose,
			FailureLine: f.varValues,
			LocalVars:   f.varValues,
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
				tally.add(tr, f.skipExitZero)
				tr.Trace = filterTrace(tr.Trace, f)
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
		// opa test exits 2 here, which is also exitUsage.
		return usageError{tally.err()}
	case belowThreshold:
		return usageError{reportErr}
	case reportErr != nil:
		return reportErr
	case tally.ran == 0 && f.failOnEmpty:
		return errors.New("policy test: no tests were run")
	case tally.ran == 0:
		// opa test says nothing and exits 0; say why the report is empty.
		if f.run != "" {
			fmt.Fprintf(stderr, "srht-registry: policy test: no tests found matching --run %q\n", f.run)
		} else {
			fmt.Fprintln(stderr, "srht-registry: policy test: no tests found")
		}
	}
	return nil
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
		return &testTarget{bundles: bundles, store: store, err: err}
	}
	modules, store, err := tester.LoadWithParserOptions([]string{dir}, nil, regoParserOptions())
	return &testTarget{modules: modules, store: store, err: err}
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

// filterTrace keeps what opa test keeps of a test's trace: with --verbose
// the notes and failures, otherwise (when tracing for --var-values) the
// failures.
func filterTrace(trace []*topdown.Event, f policyTestFlags) []*topdown.Event {
	if f.verbose {
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

// maxNamed is how many tests that did not pass the exit message names.
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

// Package policycmd owns the work of the policy commands; their command
// line is internal/app's.
//
//   - Test runs the Rego tests (rules named test_*) of the embedded default
//     policy, or of each policy or bundle directory on its own, like opa
//     test: the same reports, and the same verdicts (an error marked
//     ErrNotPassed where opa test exits 2). It type-checks the modules
//     against the input schema serve checks every local policy against
//     (policy/input.schema.json), or the one TestOptions.Schema names, as
//     opa test --schema does; and a bundle's data against the bundle's
//     data.schema.json, as serve does.
//   - Eval evaluates what a request would be granted, and why: the identity
//     serve would build (without checking credentials), the policy, data
//     or bundles serve would use, one decision per requested scope, and on
//     request the rules that fired and OPA's trace. Given expectations
//     (EvalOptions.Expect) it is a check: an error marked ErrNotPassed when
//     a scope is not granted what was expected.
//   - Schema writes the embedded input (or data) schema.
//
// The command line (internal/app) parses the flags into TestOptions and
// EvalOptions, loads the config, passes serve's policy compiler
// (EvalOptions.Compile) and maps errors to exit codes: an error marked
// ErrUsage (the user's mistake) or ErrNotPassed exits 2, any other 1.
package policycmd

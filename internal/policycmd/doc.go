// Package policycmd owns the work of the policy commands; their command
// line is internal/app's.
//
//   - Test runs the Rego tests (rules named test_*) of the embedded default
//     policy, or of each policy or bundle directory on its own, like opa
//     test: the same reports, and the same verdicts (an error marked
//     ErrNotPassed where opa test exits 2). Given a JSON schema for input
//     (TestOptions.Schema; policy/input.schema.json is the one the server
//     checks every local policy against) it type-checks the policies
//     against it as the server does.
//   - Eval evaluates what a request would be granted, and why: the identity
//     serve would build (without checking credentials), the policy, data
//     or bundles serve would use, one decision per requested scope, and on
//     request the rules that fired and OPA's trace.
//
// The command line (internal/app) parses the flags into TestOptions and
// EvalOptions, loads the config, passes serve's policy compiler
// (EvalOptions.Compile) and maps errors to exit codes: an error marked
// ErrUsage (the user's mistake) or ErrNotPassed exits 2, any other 1.
package policycmd

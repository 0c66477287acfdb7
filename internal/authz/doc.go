// Package authz owns policy evaluation: it loads the Rego modules (the
// embedded default or the operator's), prepares the query once, evaluates it
// once per requested scope with the input document of the policy contract,
// and turns the result into granted actions. Anything but a well-typed
// result (undefined, wrong type, an error, a deadline) grants nothing.
//
// What makes an unmemoised decision cheap lives here too, none of it
// changing a decision: rule values remembered per policy revision and per
// caller (static.go), OPA's evaluator called directly (direct.go), and a
// busy caller's residual, the policy partially evaluated for it and decided
// without the evaluator (residual.go).
package authz

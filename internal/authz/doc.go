// Package authz owns policy evaluation: it loads the Rego modules (the
// embedded default or the operator's), prepares the query once, evaluates it
// once per requested scope with the input document of the policy contract,
// and turns the result into granted actions. Anything but a well-typed
// result (undefined, wrong type, an error, a deadline) grants nothing.
package authz

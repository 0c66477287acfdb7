// Package policy owns the default authorization policy of srht-registry: the
// Rego module authz.rego (package registry.authz), embedded in the binary and
// used when the configuration names no bundles of its own.
//
// The policy's tests, authz_test.rego, sit beside it so that stock
// `opa test policy/` runs them. They are embedded too, but only [TestFS]
// exposes them: [FS], which the server evaluates, leaves every _test.rego
// file out, so test rules never become part of a running policy.
//
// It also holds what the rest of the server needs of the policy contract
// (README.md), defined once: the input schema ([InputSchema]), the schema
// of the default policy's data ([DataSchema]), the default query path and
// its grammar ([DefaultQuery], [ValidQuery]), and the evaluation deadline
// ([DefaultTimeout]).
package policy

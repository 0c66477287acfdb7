// Package bundles holds example OPA bundles operators copy; its Go test runs
// their Rego tests.
//
// Each subdirectory is one bundle in OPA's bundle format: a .manifest with
// roots ["registry"], a data.json stored under data.registry, the policy
// authz.rego (package registry.authz, read by the server as
// data.registry.authz) and its tests, authz_test.rego. Stock OPA runs the
// tests of one bundle with `opa test -b bundles/<name>/`; `go test ./bundles/`
// runs them all the same way, and also type-checks every policy against the
// input schema ../policy/input.schema.json. See README.md here and
// ../policy/README.md for the policy contract.
package bundles

// Package tokentest holds test keys for the tests of token and of the
// packages that sign with it (internal/authn/refresh): keys of every type,
// cached, their files, and the registry's view of their JWKS. It is
// imported only by _test.go files.
package tokentest

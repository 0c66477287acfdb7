// Package policycmdtest holds what the tests of policycmd and of the
// command line that runs its commands (internal/app) share: the policy
// test fixtures, the config that policy eval is tried on, and readers of
// the commands' output. It is imported only by _test.go files.
package policycmdtest

// Package authntest holds what the tests of the packages that log users in
// share: the lines of an htpasswd file. It is imported only by _test.go
// files.
package authntest

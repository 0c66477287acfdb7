// Package slapdtest starts a real OpenLDAP server (Debian's slapd) for
// tests, on a free loopback port, with a small directory in a temporary
// directory: users, groups (groupOfNames, with the memberof overlay
// maintaining memberOf), a service account, a disabled account and an
// account without a password. Without slapd a test is skipped, except in
// CI (CI set), where it fails. Launch starts the same directory for a
// harness without a testing.T (dev/cmd/matrix).
package slapdtest

// Package app wires the packages together and owns the command line: the
// subcommands serve, keys, hash-password and check-config. Everything is
// reachable through Run, so tests drive the program exactly as a user would.
package app

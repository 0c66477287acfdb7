// Package app wires the other packages together and owns the command line.
//
// It owns:
//   - the dispatch table (commands in app.go) from which Run dispatches,
//     the usage text and each command's -h are all made, so no command
//     can be missing from the help;
//   - Server (server.go): a running token server with New, Addr, Reload
//     and Close, which serve drives from signals (serve.go) and tests
//     drive directly; it serves TLS (tls.go) and metrics (metrics.go) and
//     reloads when a watched file changes (watch.go);
//   - building one from a config, stage by stage (build.go): signing keys
//     (keyset.go), authentication, policy, the HTTP handler; a reload
//     prepares every stage and commits only when all loaded;
//   - the tools around the server: key generation and the printed
//     configs (keys.go), the readiness probe (healthcheck.go), and the
//     command line of policy test, policy eval and policy schema
//     (policy.go: their flags, the config, the exit codes), whose work is
//     internal/policycmd's;
//   - exit codes: 0 for success, 1 for an error, 2 for bad usage or an
//     invalid config.
//
// The subcommands:
//   - serve: run the token server.
//   - check-config: load the config, keys, htpasswd and policy as serve
//     would, report every problem, and exit.
//   - keys: write a signing key, its certificate and a JWKS, and print the
//     srht-registry and registry configs (distribution v3 or, with
//     --registry v2, 2.8); with --previous, the steps of a key rotation;
//     with --keep-existing, the configs of the key already there.
//   - hash-password: read a password on stdin and print an htpasswd line.
//   - healthcheck: exit 0 if a running server is ready (GET /readyz), for
//     images without a shell or HTTP client.
//   - policy test: run the Rego tests of the embedded policy or of policy
//     and bundle directories, like opa test.
//   - policy eval: show what a request would be granted, and why; with
//     --expect, a check that exits 2 when a scope is not granted as expected.
//   - policy schema: print the JSON schema of the policy's input (or, with
//     --data, of the default policy's data).
//   - version: print the version.
//   - help: print the usage, or one command's help.
//
// Everything is reachable through Run, so tests drive the program exactly
// as a user would.
package app

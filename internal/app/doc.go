// Package app wires the other packages together and owns the command line.
//
// It owns:
//   - the dispatch table (commands in app.go) from which Run dispatches,
//     the usage text and each command's -h are all made, so no command
//     can be missing from the help;
//   - building a running server from a config (serve.go, with tls.go,
//     metrics.go, keyset.go and watch.go): the HTTP handlers, TLS,
//     metrics, the signing key set, and the reload on SIGHUP or when a
//     watched file changes;
//   - the tools around the server: key generation and the printed
//     configs (keys.go), the readiness probe (healthcheck.go), and the
//     policy test runner and evaluator (policytest.go, policyeval.go);
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
//   - policy eval: show what a request would be granted, and why.
//   - version: print the version.
//   - help: print the usage, or one command's help.
//
// Everything is reachable through Run, so tests drive the program exactly
// as a user would.
package app

package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2 // bad flags or an invalid configuration
)

const usage = `usage: srht-registry <command> [flags]

commands:
  serve [--config FILE]          run the token server
  keys --out DIR [--type ec|rsa|ed25519] [--config FILE] [--realm URL] [--previous FILE...] [--keep-existing]
                                 write a signing key, certificate and JWKS, and
                                 print the matching registry config
  hash-password USER             read a password on stdin, print an htpasswd line
  check-config [--config FILE]   load the config, keys, htpasswd and policy, then exit
  healthcheck [--config FILE] [--url URL]
                                 exit 0 if the server is ready (GET /readyz), 1 if not:
                                 a probe for images without a shell or HTTP client
  policy test [-v] [--coverage] [--format pretty|json] [--run REGEX] [DIR...]
                                 run the Rego tests of the embedded policy, or of
                                 each policy or bundle DIR on its own, like opa test
  policy eval [--config FILE] [--user U] [--method M] [--groups G] [--grants S]
              --scope SCOPE... [--explain[=full]] [--format text|json]
                                 what a request would be granted, and why
  version                        print the version
`

// Run runs the program with args (without the program name) and returns its
// exit code. It returns when the command is done or ctx is cancelled.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, rest, stderr)
	case "keys":
		err = runKeys(rest, stdout, stderr)
	case "hash-password":
		err = runHashPassword(rest, stdin, stdout, stderr)
	case "check-config":
		err = runCheckConfig(ctx, rest, stdout, stderr)
	case "healthcheck":
		err = runHealthcheck(ctx, rest, stdout, stderr)
	case "policy":
		err = runPolicy(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	return report(err, stderr)
}

// usageError marks errors that exit with exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func report(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "srht-registry:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "srht-registry:", err)
		return exitError
	}
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses and refuses stray arguments, which usually mean a flag
// was mistyped.
func parseFlags(fs *flag.FlagSet, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > maxArgs {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args()[maxArgs:], " "))}
	}
	return nil
}

func versionString() string {
	version, commit, goVersion, opaVersion := buildVersions()
	return fmt.Sprintf("srht-registry %s (commit %s, %s, OPA %s)", version, commit, goVersion, opaVersion)
}

package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/policycmd"
)

// The command line of policy test, policy eval and policy schema: their
// flags, the config, and the exit codes of their errors. The work is
// policycmd's.

// policyUsage lists the policy subcommands.
const policyUsage = `usage: srht-registry policy <command> [flags]

commands:
  test [flags] [DIR...]   run the Rego tests of the embedded policy, or of each
                          policy or bundle DIR (see policy test -h)
  eval [flags]            evaluate the policy for a request (see policy eval -h)
  schema [--data]         print the JSON schema of the policy's input (or data)
`

// runPolicy dispatches the policy subcommands on args[0].
func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return usageError{errors.New("policy: missing command")}
	}
	switch args[0] {
	case "test":
		return runPolicyTest(ctx, args[1:], stdout, stderr)
	case "eval":
		return runPolicyEval(ctx, args[1:], stdout, stderr)
	case "schema":
		return runPolicySchema(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, policyUsage)
		return nil
	default:
		fmt.Fprint(stderr, policyUsage)
		return usageError{fmt.Errorf("policy: unknown command %q%s", args[0], didYouMean(append([]string{"policy"}, args...)))}
	}
}

// policyError gives the errors of policycmd their exit codes: the user's
// mistakes, tests that did not pass (as opa test) and policy eval's
// expectations not met exit with exitUsage.
func policyError(err error) error {
	if errors.Is(err, policycmd.ErrUsage) || errors.Is(err, policycmd.ErrNotPassed) {
		return usageError{err}
	}
	return err
}

// runPolicyTest parses the flags of policy test, named as in opa test,
// and runs policycmd.Test.
func runPolicyTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o policycmd.TestOptions
	fs := newFlags("policy test", stderr)
	fs.BoolVar(&o.Verbose, "v", false, "shorthand for --verbose")
	fs.BoolVar(&o.Verbose, "verbose", false, "list every test with its result, and print notes and the trace of failures")
	fs.BoolVar(&o.Coverage, "coverage", false, "print a JSON coverage report (as opa test --coverage) instead of the test results;\nfailures are still listed")
	fs.StringVar(&o.Format, "format", "pretty", "output `FORMAT`: pretty or json (ignored with --coverage)")
	fs.StringVar(&o.Run, "r", "", "shorthand for --run `REGEX`")
	fs.StringVar(&o.Run, "run", "", "run only tests whose name (data.pkg.test_name) matches `REGEX`")
	fs.DurationVar(&o.Timeout, "timeout", policycmd.DefaultTestTimeout, "time limit for each test (0 means the default)")
	fs.Float64Var(&o.Threshold, "threshold", 0, "with --coverage, fail (exit 2) if coverage is below `PERCENT` (0-100);\nsetting it implies --coverage")
	fs.StringVar(&o.Schema, "schema", "", "JSON schema `FILE` for input (or a directory of schemas, as opa test --schema);\nthe modules are type-checked against it (default: the embedded input schema, as serve)")
	fs.BoolVar(&o.NoSchema, "no-schema", false, "do not type-check input (as opa test without --schema)")
	fs.BoolVar(&o.VarValues, "var-values", false, "show the failing expression and its local variable values")
	fs.BoolVar(&o.FailOnEmpty, "fail-on-empty", false, "exit 1 when no test ran")
	fs.BoolVar(&o.ExitZeroOnSkipped, "z", false, "shorthand for --exit-zero-on-skipped")
	fs.BoolVar(&o.ExitZeroOnSkipped, "exit-zero-on-skipped", false, "skipped (todo_) tests do not make the exit code non-zero")

	dirs, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	o.Dirs = dirs
	return policyError(policycmd.Test(ctx, o, stdout, stderr))
}

// parseInterspersed parses fs from args and returns the positional
// arguments, which may come before, between or after flags (as in
// `opa test policy/ -v`). Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// explainFlag is "--explain" (the rules that fired) or "--explain=full"
// (OPA's whole trace as well).
type explainFlag policycmd.Explain

func (e *explainFlag) String() string   { return string(*e) }
func (e *explainFlag) IsBoolFlag() bool { return true }
func (e *explainFlag) Set(v string) error {
	switch v {
	case "true", "fired":
		*e = explainFlag(policycmd.ExplainFired)
	case "full":
		*e = explainFlag(policycmd.ExplainFull)
	case "false":
		*e = explainFlag(policycmd.ExplainNone)
	default:
		return fmt.Errorf("want --explain or --explain=full, got %q", v)
	}
	return nil
}

// runPolicyEval parses the flags of policy eval, loads the config and runs
// policycmd.Eval with the policy compiler of serve.
func runPolicyEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := policycmd.EvalOptions{Compile: compilePolicy}
	fs := newFlags("policy eval", stderr)
	configPath := fs.String("config", "", "config `FILE`: the policy, data, bundles and groups that serve would use")
	fs.StringVar(&o.User, "user", "", "the subject (user name); empty for anonymous. With --claims: instead of the subject the claims give")
	fs.StringVar(&o.Method, "method", "", "how the user authenticated: password, sourcehut, oidc or anonymous\n(default: oidc with --claims; else from --provider; password with --user, else anonymous)")
	fs.StringVar(&o.Provider, "provider", "", "the provider of --user: htpasswd, sourcehut, or the name of an authn.oidc entry of the config\n(default: htpasswd for --method password, sourcehut for --method sourcehut, the only authn.oidc entry for --method oidc)")
	fs.StringVar(&o.ClaimsFile, "claims", "", "`FILE.json` holding an OIDC ID token's claims (its decoded payload, a JSON object): judge an OIDC login of\n--provider with them (method oidc; the subject is the claim the entry's subject_claim names, default sub)")
	fs.BoolVar(&o.Refreshed, "refreshed", false, "as the refresh token of that login would be judged: method refresh, refreshed_from the --method (password, sourcehut or oidc)")
	fs.Func("groups", "comma-separated `GROUPS` (default: the user's groups from the config)", func(v string) error {
		o.Groups = []string{} // given, if only as "": not the config's
		for g := range strings.SplitSeq(v, ",") {
			if g = strings.TrimSpace(g); g != "" {
				o.Groups = append(o.Groups, g)
			}
		}
		return nil
	})
	fs.StringVar(&o.Grants, "grants", "", "Sourcehut grant string of the token (default: <service>/REGISTRY:RW; \"all\" for a personal access token)")
	fs.StringVar(&o.Service, "service", "", "registry service (default: the config's first)")
	fs.StringVar(&o.ClientIP, "client-ip", "127.0.0.1", "client IP address")
	fs.StringVar(&o.ClientID, "client-id", "", "client_id parameter")
	fs.StringVar(&o.UserAgent, "user-agent", "", "User-Agent")
	at := fs.String("time", "", "request time, RFC 3339 (default: now)")
	fs.StringVar(&o.Format, "format", "text", "output `FORMAT`: text or json")
	fs.Var((*listFlag)(&o.Scopes), "scope", "requested `SCOPE`, e.g. repository:team/app:pull,push (repeatable)")
	fs.Var((*explainFlag)(&o.Explain), "explain", "show the rules that fired (--explain=full: OPA's whole trace too)")
	fs.Var((*listFlag)(&o.Expect), "expect", "`ACTIONS` (comma-separated; none or '' for nothing) every scope must be granted, exactly;\nrepeated, one per --scope in order. Exit 2 if a scope gets anything else")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	// What does not need the config is reported before a problem with it.
	if err := o.Validate(); err != nil {
		return policyError(err)
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if *at != "" {
		if o.Time, err = time.Parse(time.RFC3339, *at); err != nil {
			return usageError{fmt.Errorf("--time: %w", err)}
		}
	}
	return policyError(policycmd.Eval(ctx, cfg, o, stdout))
}

// runPolicySchema prints the embedded input schema, or with --data the
// default policy's data schema.
func runPolicySchema(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("policy schema", stderr)
	data := fs.Bool("data", false, "print the default policy's data schema (policy/data.schema.json) instead")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	return policycmd.Schema(*data, stdout)
}

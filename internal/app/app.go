package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"git.sr.ht/~zozs/srht-registry/internal/suggest"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2 // bad flags or an invalid configuration
)

// command is one subcommand of the program: how it is called, what it does
// and the function that runs it. The usage text, each command's -h and Run
// all come from commands, so none can list a command another lacks.
type command struct {
	name     string   // as typed: "keys", or "policy test" for a command of a group
	aliases  []string // other spellings Run accepts
	synopsis string   // what follows the name: the main flags and arguments, on one line
	summary  string   // one line, lower case, no full stop
	// about is what -h says after the synopsis: what the command does,
	// what it reads and writes, its exit codes; examples follow the flags.
	about    string
	examples []string
	run      func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
	// group marks a word that only leads to other commands ("policy"):
	// usage lists its commands instead of it.
	group bool
}

// commands is the dispatch table of Run, in the order usage lists them. It
// is a function rather than a variable because the commands' own flag sets
// (newFlags) read it for their -h.
func commands() []command {
	return []command{
		{name: "serve", synopsis: "[--config FILE]", summary: "run the token server",
			about: `Runs the token server: the token endpoint (GET and POST /auth), the public key set at
/.well-known/jwks.json, /healthz and /readyz, and metrics on their own listener when configured.
Without --config it runs on the embedded defaults (anonymous pulls, an ephemeral key, the default
policy). SIGHUP, or a change to a file the config names, reloads; a reload applies every changed
setting or, when one needs a restart, none (the log says which). SIGTERM drains and stops.
Exit 2: the config, or a key, htpasswd file, TLS pair or policy it names, is invalid.`,
			examples: []string{`srht-registry serve --config /etc/srht-registry/config.yaml`},
			run: func(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
				return runServe(ctx, args, stderr)
			}},
		{name: "check-config", synopsis: "[--config FILE]", summary: "load the config, keys, htpasswd and policy as serve would, then exit",
			about: `Loads the config and everything it names (signing keys, htpasswd file, TLS pair, policy) as serve
would, each on its own, and reports every problem at once (exit 2). A valid config gets a summary of
what serve would run with and the warnings serve would log (exit 0).`,
			examples: []string{`srht-registry check-config --config /etc/srht-registry/config.yaml`},
			run: func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return runCheckConfig(ctx, args, stdout, stderr)
			}},
		{name: "keys", synopsis: "--out DIR [--type ec|rsa|ed25519] [--registry v3|v2] [--config FILE] [--realm URL] [--previous FILE]... [--keep-existing | --force]",
			summary: "write a signing key, its certificate and a JWKS; print the configs that use them",
			about: `Writes a signing key (key.pem, mode 0600), a self-signed certificate (cert.pem) and the public key
set a registry trusts (jwks.json, or bundle.pem for distribution 2.8) into DIR, and prints the
srht-registry and registry config blocks that use them. With --previous, the new key's set also
lists the previous keys and the output is the recipe of a key rotation.`,
			examples: []string{`srht-registry keys --out /etc/srht-registry/keys --realm https://auth.example.com/auth`, `srht-registry keys --out keys-2 --previous keys/key.pem --config /etc/srht-registry/config.yaml`},
			run: func(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return runKeys(args, stdout, stderr)
			}},
		{name: "hash-password", synopsis: "[--cost COST] USER", summary: "read a password on stdin and print an htpasswd line (bcrypt) for USER",
			about: `Prints an htpasswd line (bcrypt) for USER. On a terminal it asks for the password twice without
echoing it; otherwise it reads one line from stdin.

The cost is 10 unless --cost says otherwise; ` + "`htpasswd -B`" + ` uses 5 without -C. At 10 a stolen file
takes 32 times as long to crack, and a check takes about 60 ms of CPU, which a client repeating its
login pays once per authn.password_cache.ttl. Lines at other costs work, but a failed login costs a
check at the highest cost in the file whoever the user, so that its time does not tell which users
exist: keep the lines at one cost (` + "`htpasswd -B -C 10`" + ` matches this one).`,
			examples: []string{`srht-registry hash-password alice >> /etc/srht-registry/htpasswd`, `printf '%s\n' "$PASSWORD" | srht-registry hash-password alice`},
			run: func(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
				return runHashPassword(args, stdin, stdout, stderr)
			}},
		{name: "healthcheck", synopsis: "[--config FILE | --url URL] [--timeout DURATION]",
			summary: "exit 0 if the server is ready (GET /readyz), 1 if not: a probe for images without a shell",
			about: `Asks a running server whether it is ready (GET /readyz) and exits 0 if so, 1 if not: a probe for
container images without a shell or HTTP client.`,
			examples: []string{`srht-registry healthcheck --config /etc/srht-registry/config.yaml`},
			run: func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return runHealthcheck(ctx, args, stdout, stderr)
			}},
		{name: "policy", group: true, summary: "the policy commands",
			run: func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return runPolicy(ctx, args, stdout, stderr)
			}},
		{name: "policy test", synopsis: "[-v] [--coverage] [--format pretty|json] [--run REGEX] [--schema FILE | --no-schema] [DIR]...",
			summary: "run the Rego tests of the embedded policy, or of each policy or bundle DIR, like opa test",
			about: `Runs Rego tests (rules named test_*) the way 'opa test' does, with the same
output and exit codes: 0 when every test passed, 2 when any failed, errored or
was skipped (todo_ prefix), 1 when the policy did not load or compile.

Without DIR it tests the embedded default policy together with its
_test.rego files; their names are shown as in the source tree (policy/...).
Otherwise it tests each DIR: a directory holding a .manifest is loaded as an
OPA bundle (like 'opa test -b DIR'), any other directory or file as plain
policy and data files (like 'opa test DIR'). Each DIR is loaded and compiled
on its own, with its own compiler and data, so two DIRs may both define
package registry.authz without conflicting; their results are reported
together and the exit code reflects every DIR. Policies are Rego v1 unless a
bundle's manifest says otherwise.

Input is type-checked as serve checks it: every module against the embedded
input schema (policy/input.schema.json, see 'policy schema'), or the one
--schema names, as 'opa test --schema' does. A policy reading a misspelt field
(input.identity.usrname) is a compile error (exit 1) naming file:line and the
fields the schema has there. Values given with 'with input as {...}' are not checked, so
tests may build any input. A bundle DIR with a data.schema.json at its root has
its data checked against it, as serve does (exit 1 on a mismatch).`,
			examples: []string{`srht-registry policy test`, `srht-registry policy test -v bundles/teams`,
				`srht-registry policy test --schema my-input.schema.json policies/`},
			run: func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return runPolicyTest(ctx, args, stdout, stderr)
			}},
		{name: "policy eval", synopsis: "--scope SCOPE... [--expect ACTIONS]... [--config FILE] [--user U] [--provider P] [--method M] [--claims FILE.json] [--refreshed] [--groups G] [--grants S] [--explain[=full]] [--format text|json]",
			summary: "show what a request would be granted, and why",
			about: `Evaluates the policy of a config for one request and shows, per scope, what would be granted and
which rules fired (--explain).

The identity is built as serve would build it, without credentials: --user alone is an htpasswd
user; --method sourcehut (with --grants) a Sourcehut token; --claims FILE.json an OIDC ID token of
the authn.oidc entry --provider names (a CI job's, a Kubernetes service account's), whose claims are
the file's JSON object (the token's decoded payload). Its subject is the claim the entry's
subject_claim names (sub by default) unless --user names one, and the policy sees
identity.oidc.issuer (the entry's issuer) and identity.oidc.claims; an iss in the file must be that
issuer. The token's signature, aud and exp are not checked. --refreshed judges the refresh token of
that login instead.

With --expect it is a check for CI: each scope must be granted exactly the expected actions
(none, or '', for nothing). One --expect applies to every scope; several pair with the scopes in
order (scopes naming the same resource are merged first, as serve merges them).

Exit 0 on success and when every scope is granted as expected; 2 when one is not, or its evaluation
failed (after the usual table or JSON, stderr names the scope, the expected and the granted
actions), and on usage errors, such as an --expect naming an action its scope does not request;
1 when the config or policy does not load, or the server would refuse the login.`,
			examples: []string{`srht-registry policy eval --config config.yaml --user alice --scope repository:alice/app:pull,push`, `srht-registry policy eval --method sourcehut --user carol --grants 'registry.example.com/REGISTRY:RO' --scope repository:carol/app:push --explain`,
				`srht-registry policy eval --config config.yaml --user bob --scope repository:team/app:pull,push --expect pull`,
				`srht-registry policy eval --config config.yaml --scope repository:library/base:pull --expect pull --scope repository:team/app:pull --expect none`,
				`srht-registry policy eval --config config.yaml --provider github --claims claims.json --scope repository:octo-org/app:pull,push --expect pull,push`},
			run: func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return runPolicyEval(ctx, args, stdout, stderr)
			}},
		{name: "policy schema", synopsis: "[--data]", summary: "print the JSON schema of the policy's input, or of the default policy's data",
			about: `Prints, as embedded, the JSON schema of the input document (policy/input.schema.json): the one serve
type-checks every local policy against, and policy test by default. With --data it prints the data
schema of the default policy (policy/data.schema.json), which policy.data is checked against; a
bundle's own data.schema.json may start from it.`,
			examples: []string{`srht-registry policy schema > input.schema.json && opa test --schema input.schema.json policy/`, `srht-registry policy schema --data`},
			run: func(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return runPolicySchema(args, stdout, stderr)
			}},
		{name: "version", aliases: []string{"--version", "-version"}, summary: "print the version",
			run: func(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
				if err := parseFlags(newFlags("version", stderr), args, 0); err != nil {
					return err
				}
				fmt.Fprintln(stdout, versionString())
				return nil
			}},
		{name: "help", aliases: []string{"-h", "--help"}, synopsis: "[COMMAND]", summary: "print this help, or the help of COMMAND",
			run: runHelp},
	}
}

// findCommand finds the command args start with, the two-word commands of
// a group first, and returns it with the arguments after its name.
func findCommand(args []string) (command, []string, bool) {
	cmds := commands()
	if len(args) >= 2 {
		for _, c := range cmds {
			if c.name == args[0]+" "+args[1] {
				return c, args[2:], true
			}
		}
	}
	if len(args) >= 1 {
		for _, c := range cmds {
			if c.name == args[0] || slices.Contains(c.aliases, args[0]) {
				return c, args[1:], true
			}
		}
	}
	return command{}, nil, false
}

// usage is the program's help: every command of the dispatch table with
// its synopsis and what it does.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: srht-registry <command> [flags] [arguments]\n\ncommands:\n")
	for _, c := range commands() {
		if c.group {
			continue
		}
		fmt.Fprintf(&b, "%s\n      %s\n", wrapSynopsis("  "+c.name, c.synopsis, len(c.name)+3), c.summary)
	}
	b.WriteString("\nsrht-registry COMMAND -h (or srht-registry help COMMAND) lists the flags of COMMAND.\n")
	return b.String()
}

// wrapSynopsis is head followed by synopsis, wrapped before 90 columns
// between its elements (a bracketed group stays whole), continuation lines
// indented by indent.
func wrapSynopsis(head, synopsis string, indent int) string {
	const width = 90
	var b strings.Builder
	b.WriteString(head)
	col := len(head)
	for _, w := range synopsisElements(synopsis) {
		if col+1+len(w) > width && col > indent {
			b.WriteString("\n" + strings.Repeat(" ", indent-1))
			col = indent - 1
		}
		b.WriteString(" " + w)
		col += 1 + len(w)
	}
	return b.String()
}

// synopsisElements splits a synopsis at the spaces outside brackets.
func synopsisElements(synopsis string) []string {
	var elems []string
	depth, start := 0, 0
	for i, r := range synopsis + " " {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case r == ' ' && depth == 0:
			if i > start {
				elems = append(elems, synopsis[start:i])
			}
			start = i + 1
		}
	}
	return elems
}

// runHelp prints the usage, or a command's own help (its -h).
func runHelp(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage())
		return nil
	}
	c, rest, ok := findCommand(args)
	if !ok || len(rest) > 0 {
		return usageError{fmt.Errorf("help: unknown command %q", strings.Join(args, " "))}
	}
	if c.name == "help" {
		fmt.Fprint(stdout, usage())
		return nil
	}
	// A command's -h writes to its stderr, as flag does; asked for help,
	// the user reads it on stdout.
	return c.run(ctx, []string{"-h"}, stdin, stdout, stdout)
}

// Run runs the program with args (without the program name) and returns its
// exit code. It returns when the command is done or ctx is cancelled.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return exitUsage
	}
	c, rest, ok := findCommand(args)
	if !ok {
		fmt.Fprintf(stderr, "unknown command %q%s\n\n%s", args[0], didYouMean(args), usage())
		return exitUsage
	}
	return report(c.run(ctx, rest, stdin, stdout, stderr), stderr)
}

// didYouMean is ` (did you mean "check-config"?)` for a mistyped command,
// or "".
func didYouMean(args []string) string {
	var names []string
	for _, c := range commands() {
		if !c.group {
			names = append(names, c.name)
		}
	}
	typed := args[0]
	if len(args) > 1 && args[0] == "policy" {
		typed += " " + args[1]
	}
	if best, ok := suggest.Closest(typed, names); ok {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
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

// newFlags makes the flag set of the command name; its -h prints the
// command's synopsis and summary from commands, then the flags.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, c := range commands() {
		if c.name == name {
			fs.Usage = func() {
				fmt.Fprintf(fs.Output(), "%s\n\n%s.\n", wrapSynopsis("usage: srht-registry "+c.name, c.synopsis, 8), upperFirst(c.summary))
				if c.about != "" {
					fmt.Fprintf(fs.Output(), "\n%s\n", c.about)
				}
				n := 0
				fs.VisitAll(func(*flag.Flag) { n++ })
				if n > 0 {
					fmt.Fprint(fs.Output(), "\nflags:\n")
					fs.PrintDefaults()
				}
				if len(c.examples) > 0 {
					fmt.Fprint(fs.Output(), "\nexamples:\n")
					for _, e := range c.examples {
						fmt.Fprintf(fs.Output(), "  %s\n", e)
					}
				}
			}
		}
	}
	return fs
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

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

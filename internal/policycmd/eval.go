package policycmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/authz"
	"git.sr.ht/~zozs/srht-registry/internal/config"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// EvalOptions describe the request Eval judges, named after the flags of
// policy eval (given in brackets).
type EvalOptions struct {
	// Scopes are the requested scopes, as a client sends them
	// (repository:team/app:pull,push); at least one (--scope).
	Scopes []string

	// User is the subject; empty for anonymous (--user). For an OIDC
	// login it overrides the subject the claims give.
	User string
	// Method is how User authenticated: password, sourcehut, oidc or
	// anonymous; empty means oidc with ClaimsFile or a Provider that is an
	// authn.oidc entry, else Provider's, else password with a User and
	// anonymous without (--method).
	Method string
	// Provider is User's provider: htpasswd, sourcehut, or the name of an
	// authn.oidc entry of the config; empty means Method's (for oidc: the
	// config's only authn.oidc entry) (--provider).
	Provider string
	// ClaimsFile names a JSON file holding an object: the claims of an
	// OIDC ID token (its decoded payload), with which the request is
	// judged as an OIDC login of Provider. The subject is the claim the
	// entry's subject_claim names, unless User is given (--claims).
	ClaimsFile string
	// Refreshed judges the request as the refresh token of that login
	// would be: method refresh, refreshed_from Method (--refreshed).
	Refreshed bool
	// Groups, when not nil, are the principal's groups instead of those
	// the config gives it; an empty, non-nil Groups means none (--groups).
	Groups []string
	// Grants is the Sourcehut grant string of the token (Method sourcehut
	// only): empty means <service>/REGISTRY:RW, "all" a personal access
	// token (--grants).
	Grants string

	// Service is the registry service; empty means the config's first
	// (--service).
	Service string
	// ClientIP, ClientID and UserAgent are the request's (--client-ip,
	// --client-id, --user-agent).
	ClientIP, ClientID, UserAgent string
	// Time is the request's time; zero means now (--time).
	Time time.Time

	// Format is the output format, text or json (--format).
	Format string
	// Explain says how much of the why to show (--explain).
	Explain Explain

	// Expect, when not nil, is what the scopes must be granted: one value
	// for every scope, or one per scope in order (--expect, repeatable).
	// A value lists actions, comma-separated; "" or "none" means nothing.
	// A scope granted anything else than its expectation, or whose
	// evaluation failed, makes Eval return an error marked ErrNotPassed,
	// once it has written its output.
	Expect []string

	// Compile compiles the local policy (the embedded one with the
	// config's data, or the local bundles) exactly as serve does. It is
	// not called when the config names a remote OPA (policy.opa).
	Compile func(context.Context, config.Policy) (*authz.Engine, error)
}

// Explain is how much of the why of a decision Eval shows.
type Explain string

const (
	ExplainNone  Explain = ""      // the decisions only
	ExplainFired Explain = "fired" // the rules that fired as well
	ExplainFull  Explain = "full"  // OPA's whole trace as well
)

// Validate checks what of o does not depend on the config. Eval calls it
// too; it is exported so that a caller can report these mistakes before
// it loads the config.
func (o EvalOptions) Validate() error {
	if o.Format != "text" && o.Format != "json" {
		return usage(fmt.Errorf("--format must be text or json, got %q", o.Format))
	}
	if len(o.Scopes) == 0 {
		return usage(errors.New("policy eval: give at least one --scope"))
	}
	if o.ClaimsFile != "" && o.Method != "" && o.Method != string(identity.MethodOIDC) {
		return usage(fmt.Errorf("--claims is for --method oidc, not --method %s", o.Method))
	}
	if o.Expect != nil {
		// Only the number of scopes matters here; Eval applies the
		// config's limit.
		parsed, err := access.ParseScopes(o.Scopes, math.MaxInt)
		if err != nil {
			return usage(err)
		}
		if _, err := o.expectations(parsed); err != nil {
			return err
		}
	}
	return nil
}

// expectations pairs Expect with the parsed scopes (scopes naming the
// same resource merged, as serve merges them): the actions each must be
// granted, sorted; nil when nothing is expected. An expectation that could
// never be met, naming an action its scope does not request, is the
// user's mistake.
func (o EvalOptions) expectations(scopes []access.Scope) ([][]string, error) {
	if o.Expect == nil {
		return nil, nil
	}
	if len(o.Expect) != 1 && len(o.Expect) != len(scopes) {
		merged := ""
		if len(scopes) != len(o.Scopes) {
			merged = " (scopes naming the same resource count once)"
		}
		return nil, usage(fmt.Errorf("policy eval: %d --expect for %d %s%s: give one for every scope, or one per scope in order",
			len(o.Expect), len(scopes), scopesNoun(len(scopes)), merged))
	}
	out := make([][]string, len(scopes))
	for i, sc := range scopes {
		v := o.Expect[0]
		if len(o.Expect) > 1 {
			v = o.Expect[i]
		}
		want, err := parseExpect(v)
		if err != nil {
			return nil, err
		}
		for _, a := range want {
			if !slices.Contains(sc.Actions, a) {
				return nil, usage(fmt.Errorf("policy eval: --expect %q: %s is not requested on %s, and only requested actions are ever granted",
					v, a, sc.Resource))
			}
		}
		out[i] = want
	}
	return out, nil
}

// parseExpect parses a value of --expect: actions, comma-separated, each
// once; "" or "none" is nothing.
func parseExpect(v string) ([]string, error) {
	want := []string{}
	for a := range strings.SplitSeq(v, ",") {
		switch a = strings.TrimSpace(a); {
		case a == "":
		case a == "none":
			if strings.TrimSpace(v) != "none" {
				return nil, usage(fmt.Errorf("policy eval: --expect %q: none stands alone, for nothing granted", v))
			}
		case !slices.Contains(want, a):
			want = append(want, a)
		}
	}
	slices.Sort(want)
	return want, nil
}

// decision is one scope's answer, as printed by the json format.
type decision struct {
	Scope     string   `json:"scope"`
	Requested []string `json:"requested"`
	Granted   []string `json:"granted"`
	Deny      []string `json:"deny"`
	Fired     []string `json:"fired,omitempty"`
	Error     string   `json:"error,omitempty"`
	// Expected and AsExpected are there with --expect only.
	Expected   *[]string `json:"expected,omitempty"`
	AsExpected *bool     `json:"as_expected,omitempty"`
}

// check compares the decision with the actions it is expected to grant,
// sorted, and records the outcome. It returns why the expectation is not
// met, or "".
func (d *decision) check(want []string) string {
	got := slices.Sorted(slices.Values(d.Granted))
	ok := d.Error == "" && slices.Equal(got, want)
	d.Expected, d.AsExpected = &want, &ok
	switch {
	case ok:
		return ""
	case d.Error != "":
		return fmt.Sprintf("%s: expected %s, but the evaluation failed: %s", d.Scope, nothingIfEmpty(want), d.Error)
	case len(d.Deny) > 0:
		return fmt.Sprintf("%s: expected %s, granted %s (deny: %s)", d.Scope, nothingIfEmpty(want), nothingIfEmpty(got), strings.Join(d.Deny, "; "))
	}
	return fmt.Sprintf("%s: expected %s, granted %s", d.Scope, nothingIfEmpty(want), nothingIfEmpty(got))
}

func nothingIfEmpty(actions []string) string {
	if len(actions) == 0 {
		return "nothing"
	}
	return strings.Join(actions, ",")
}

// Eval writes to stdout what the request opts describes would be granted
// on each scope by the server that cfg configures, and, with opts.Explain,
// why. It builds the identity serve would have built, without checking
// credentials; a login serve would refuse is an error.
func Eval(ctx context.Context, cfg config.Config, opts EvalOptions, stdout io.Writer) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	parsed, err := access.ParseScopes(opts.Scopes, cfg.Limits.MaxScopes)
	if err != nil {
		return usage(err)
	}
	expected, err := opts.expectations(parsed)
	if err != nil {
		return err
	}
	req := identity.Request{Service: opts.Service, ClientIP: opts.ClientIP, ClientID: opts.ClientID, UserAgent: opts.UserAgent, Time: opts.Time}
	if req.Service == "" {
		req.Service = cfg.DefaultService()
	} else if !cfg.ServesService(req.Service) {
		return usage(fmt.Errorf("service %q is not one this config serves (%s)", req.Service, strings.Join(cfg.Service, ", ")))
	}
	if req.Time.IsZero() {
		req.Time = time.Now()
	}
	id, err := evalIdentity(cfg, opts, req)
	if err != nil {
		return err
	}
	if opts.Refreshed {
		if id.Method != identity.MethodPassword && id.Method != identity.MethodSourcehut && id.Method != identity.MethodOIDC {
			return usage(errors.New("--refreshed needs a password, sourcehut or oidc login (--user; --method sourcehut for a Sourcehut token; --claims for an OIDC ID token)"))
		}
		id.RefreshedFrom, id.Method = id.Method, identity.MethodRefresh
	}
	engine, stop, err := evalEngine(ctx, cfg, opts.Compile)
	if err != nil {
		return err
	}
	defer stop(context.WithoutCancel(ctx))

	var results []decision
	var traces [][]*topdown.Event
	var unmet []string
	for i, sc := range parsed {
		var tracers []topdown.QueryTracer
		var buf *topdown.BufferTracer
		if opts.Explain != ExplainNone {
			buf = topdown.NewBufferTracer()
			tracers = append(tracers, buf)
		}
		d, err := engine.Decide(ctx, id, req, sc, tracers...)
		res := decision{Scope: sc.Resource.String(), Requested: sc.Actions, Granted: d.Granted, Deny: d.Reasons}
		if res.Deny == nil {
			res.Deny = []string{}
		}
		if err != nil {
			res.Error = err.Error() + " (the server would answer 503 and grant nothing)"
			res.Granted = []string{}
		}
		if expected != nil {
			if why := res.check(expected[i]); why != "" {
				unmet = append(unmet, why)
			}
		}
		if buf != nil {
			res.Fired = firedRules(*buf)
			traces = append(traces, *buf)
		}
		results = append(results, res)
	}

	if opts.Format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		input := authz.Input(id, req, access.Scope{})
		if err := enc.Encode(map[string]any{
			"revision":  engine.Revision(),
			"identity":  input["identity"],
			"request":   input["request"],
			"decisions": results,
		}); err != nil {
			return err
		}
		return unmetError(unmet, len(results))
	}
	shown := string(id.Method)
	if id.RefreshedFrom != "" {
		shown += " refreshed_from=" + string(id.RefreshedFrom)
	}
	fmt.Fprintf(stdout, "policy revision: %s\nidentity: method=%s provider=%s subject=%q namespace=%q groups=%v\n",
		engine.Revision(), shown, orDashS(id.Provider), id.Subject, id.Namespace, id.Groups)
	if id.OIDC != nil {
		fmt.Fprintf(stdout, "oidc: issuer=%s claims=%s\n", id.OIDC.Issuer, strings.Join(slices.Sorted(maps.Keys(id.OIDC.Claims)), ","))
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if expected != nil {
		fmt.Fprintln(tw, "SCOPE\tREQUESTED\tGRANTED\tEXPECTED\tDENY")
	} else {
		fmt.Fprintln(tw, "SCOPE\tREQUESTED\tGRANTED\tDENY")
	}
	for _, r := range results {
		deny := strings.Join(r.Deny, "; ")
		if r.Error != "" {
			deny = "ERROR: " + r.Error
		}
		expect := ""
		if r.Expected != nil {
			mark := "(ok)"
			if !*r.AsExpected {
				mark = "(MISMATCH)"
			}
			expect = orDash(*r.Expected) + " " + mark + "\t"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\n", r.Scope, orDash(r.Requested), orDash(r.Granted), expect, orDashS(deny))
	}
	tw.Flush()
	for i, r := range results {
		if opts.Explain == ExplainNone {
			break
		}
		fmt.Fprintf(stdout, "\n%s: rules that fired:\n", r.Scope)
		for _, f := range r.Fired {
			fmt.Fprintf(stdout, "  %s\n", f)
		}
		if opts.Explain == ExplainFull {
			fmt.Fprintf(stdout, "\n%s: trace:\n", r.Scope)
			topdown.PrettyTraceWithLocation(stdout, lineage.Full(traces[i]))
		}
	}
	return unmetError(unmet, len(results))
}

// unmetError is the error, marked ErrNotPassed, of the expectations that
// were not met (each saying why), out of n; nil when every one was.
func unmetError(unmet []string, n int) error {
	if len(unmet) == 0 {
		return nil
	}
	return notPassed(fmt.Errorf("policy eval: %d of %d %s not granted as expected: %s", len(unmet), n, scopesNoun(n), strings.Join(unmet, "; ")))
}

func scopesNoun(n int) string {
	if n == 1 {
		return "scope"
	}
	return "scopes"
}

func orDash(s []string) string { return orDashS(strings.Join(s, ",")) }

func orDashS(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// firedRules lists, in order and once each, the rules whose body succeeded:
// the "why" of a decision.
func firedRules(trace []*topdown.Event) []string {
	var out []string
	for _, ev := range trace {
		if ev.Op != topdown.ExitOp {
			continue
		}
		rule, ok := ev.Node.(*ast.Rule)
		if !ok {
			continue
		}
		// The source line reads better than the compiled head, whose
		// variables are renamed (__local3__).
		head := rule.Head.String()
		line := head
		if loc := rule.Location; loc != nil {
			if src, _, _ := strings.Cut(string(loc.Text), "\n"); src != "" && src != "default" {
				head = strings.TrimSpace(src)
			} else if rule.Default {
				head = "default " + head
			}
			line = fmt.Sprintf("%s:%d: %s", loc.File, loc.Row, head)
		}
		if !slices.Contains(out, line) {
			out = append(out, line)
		}
	}
	return out
}

// evalEngine starts the policy exactly as serve would: a remote OPA when
// the config names one, otherwise the local policy, which compile
// compiles. The function it returns releases the engine.
func evalEngine(ctx context.Context, cfg config.Config, compile func(context.Context, config.Policy) (*authz.Engine, error)) (*authz.Engine, func(context.Context), error) {
	if len(cfg.Policy.OPA) > 0 {
		opaConfig, err := json.Marshal(cfg.Policy.OPA)
		if err != nil {
			return nil, nil, usage(fmt.Errorf("policy.opa: %w", err))
		}
		remote, err := authz.StartRemote(ctx, authz.RemoteOptions{Config: opaConfig, Query: cfg.Policy.Query, Timeout: cfg.Policy.Timeout.D(),
			Wait: cfg.Policy.StartupWait.D(), Logger: slog.New(slog.DiscardHandler), AllowBuiltins: cfg.Policy.Capabilities.AllowBuiltins})
		if err != nil {
			return nil, nil, err
		}
		return remote.Authorizer().Engine(), remote.Stop, nil
	}
	if compile == nil {
		return nil, nil, errors.New("policy eval: no compiler for the local policy (EvalOptions.Compile)")
	}
	e, err := compile(ctx, cfg.Policy)
	return e, func(context.Context) {}, err
}

package policycmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
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
		var evalOpts []rego.EvalOption
		var buf *topdown.BufferTracer
		if opts.Explain != ExplainNone {
			buf = topdown.NewBufferTracer()
			evalOpts = append(evalOpts, rego.EvalQueryTracer(buf))
		}
		d, err := engine.Decide(ctx, id, req, sc, evalOpts...)
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

// methodProviders pairs each login method with the provider that serves it.
var methodProviders = map[identity.Method]string{
	identity.MethodPassword:  identity.ProviderHtpasswd,
	identity.MethodSourcehut: identity.ProviderSourcehut,
}

// evalIdentity builds the identity serve would have built for opts' User,
// Method, Provider, ClaimsFile, Groups and Grants, without checking
// credentials: the groups of the principal and the namespace it owns as
// serve computes them (the htpasswd file decides whether a Sourcehut
// user's name is held by a local account).
func evalIdentity(cfg config.Config, opts EvalOptions, req identity.Request) (identity.Identity, error) {
	method, user, grants := opts.Method, opts.User, opts.Grants
	if method == "" {
		method = string(identity.MethodAnonymous)
		for m, p := range methodProviders {
			if opts.Provider == p {
				method = string(m)
			}
		}
		_, isOIDC := oidcEntryNamed(cfg, opts.Provider)
		switch {
		case opts.ClaimsFile != "" || isOIDC:
			method = string(identity.MethodOIDC)
		case opts.Provider != "" && method == string(identity.MethodAnonymous):
			return identity.Identity{}, usage(fmt.Errorf("--provider %s is neither htpasswd, sourcehut nor an authn.oidc entry of the config%s",
				opts.Provider, oidcNames(cfg)))
		case user != "" && opts.Provider == "":
			method = string(identity.MethodPassword)
		}
	}
	id := identity.Identity{Method: identity.Method(method), Subject: user}
	switch id.Method {
	case identity.MethodAnonymous:
		if user != "" || opts.Groups != nil || opts.Provider != "" || opts.ClaimsFile != "" {
			return id, usage(errors.New("--method anonymous takes no --user, --provider, --claims or --groups"))
		}
		return identity.Anonymous, nil
	case identity.MethodPassword, identity.MethodSourcehut:
		if user == "" {
			return id, usage(fmt.Errorf("--method %s needs --user", method))
		}
		if opts.ClaimsFile != "" {
			return id, usage(fmt.Errorf("--claims is for --method oidc, not --method %s", method))
		}
		id.Provider = methodProviders[id.Method]
		if opts.Provider != "" && opts.Provider != id.Provider {
			return id, usage(fmt.Errorf("--provider %s does not log in with --method %s (that is %s's)", opts.Provider, method, id.Provider))
		}
	case identity.MethodOIDC:
		if err := oidcLogin(cfg, opts, &id); err != nil {
			return id, err
		}
	default:
		return id, usage(fmt.Errorf("--method must be password, sourcehut, oidc or anonymous, got %q", method))
	}
	if id.Provider == identity.ProviderSourcehut && !sourcehut.NewAllowList(cfg.Authn.Sourcehut.LoginUsers()).Admits(user) {
		return id, fmt.Errorf("the server would refuse this login (401): authn.sourcehut.users does not let %q in", user)
	}
	if opts.Groups != nil {
		id.Groups = append(id.Groups, opts.Groups...) // nil when empty, as the config's would be
	} else {
		id.Groups = authn.GroupsOf(cfg.Groups, id.Principal())
	}
	var local authn.LocalAccounts
	if cfg.Authn.Htpasswd != "" {
		h, err := authn.LoadHtpasswd(cfg.Authn.Htpasswd)
		if err != nil {
			return id, err
		}
		local = h
	}
	id.Namespace = authn.NamespaceOf(id, local)
	if id.Method == identity.MethodSourcehut {
		switch grants {
		case "":
			grants = req.Service + "/" + sourcehut.RegistryScope + ":" + sourcehut.ReadWrite
		case "all":
			grants = ""
		}
		parsed, all, err := sourcehut.ParseGrants(grants)
		if err != nil {
			return id, usage(fmt.Errorf("--grants: %w", err))
		}
		level := sourcehut.RegistryAccess(parsed, all, req.Service)
		if level == "" {
			return id, fmt.Errorf("the server would refuse this token at login (401): its grants hold no %s/%s", req.Service, sourcehut.RegistryScope)
		}
		id.Sourcehut = &identity.Sourcehut{
			Username: user, ClientID: req.ClientID, Expires: req.Time.Add(time.Hour),
			AllGrants: all, Grants: parsed, Access: level,
		}
	} else if grants != "" {
		return id, usage(errors.New("--grants is for --method sourcehut"))
	}
	return id, nil
}

// oidcLogin completes id, an OIDC login, as serve would have built it
// from an ID token with the claims of opts.ClaimsFile: the provider and
// issuer of the authn.oidc entry opts.Provider names, the subject its
// subject_claim names (or opts.User), and the claims. A claims file whose
// token serve would refuse (another issuer, no subject) is an error.
func oidcLogin(cfg config.Config, opts EvalOptions, id *identity.Identity) error {
	entry, err := oidcEntry(cfg, opts.Provider)
	if err != nil {
		return err
	}
	if opts.ClaimsFile == "" {
		return usage(fmt.Errorf("--method oidc needs --claims FILE.json: the claims of an ID token of authn.oidc entry %s", entry.Name))
	}
	claims, err := readClaims(opts.ClaimsFile)
	if err != nil {
		return err
	}
	if iss, ok := claims["iss"]; ok && iss != entry.Issuer {
		return fmt.Errorf("the server would refuse this token as one of authn.oidc entry %s (401): its iss %s is not that entry's issuer %s",
			entry.Name, jsonText(iss), entry.Issuer)
	}
	subjectClaim := entry.SubjectClaim
	if subjectClaim == "" {
		subjectClaim = "sub"
	}
	if id.Subject == "" {
		subject, ok := claims[subjectClaim].(string)
		if !ok || subject == "" {
			return fmt.Errorf("the server would refuse this token (401): %s has no claim %q (the subject claim of authn.oidc entry %s) that is a non-empty string; add it, or name a subject with --user",
				opts.ClaimsFile, subjectClaim, entry.Name)
		}
		id.Subject = subject
	}
	id.Provider = entry.Name
	id.OIDC = &identity.OIDC{Issuer: entry.Issuer, Claims: claims}
	return nil
}

// oidcEntry is the authn.oidc entry named name, or, for an empty name,
// the config's only one; a usage error when there is no such entry.
func oidcEntry(cfg config.Config, name string) (config.OIDC, error) {
	if name == "" {
		switch len(cfg.Authn.OIDC) {
		case 0:
			return config.OIDC{}, usage(errors.New("--method oidc: the config has no authn.oidc entry (a trusted issuer) whose tokens could log in"))
		case 1:
			return cfg.Authn.OIDC[0], nil
		}
		return config.OIDC{}, usage(fmt.Errorf("--method oidc needs --provider: the config trusts several issuers%s", oidcNames(cfg)))
	}
	if o, ok := oidcEntryNamed(cfg, name); ok {
		return o, nil
	}
	return config.OIDC{}, usage(fmt.Errorf("--provider %s is not an authn.oidc entry of the config%s", name, oidcNames(cfg)))
}

// oidcEntryNamed is the authn.oidc entry named name, if there is one.
func oidcEntryNamed(cfg config.Config, name string) (config.OIDC, bool) {
	for _, o := range cfg.Authn.OIDC {
		if name != "" && o.Name == name {
			return o, true
		}
	}
	return config.OIDC{}, false
}

// oidcNames lists the names of the config's authn.oidc entries, for an
// error: " (it has github, gitlab)", or " (it has none)".
func oidcNames(cfg config.Config) string {
	if len(cfg.Authn.OIDC) == 0 {
		return " (it has none)"
	}
	names := make([]string, len(cfg.Authn.OIDC))
	for i, o := range cfg.Authn.OIDC {
		names[i] = o.Name
	}
	return " (it has " + strings.Join(names, ", ") + ")"
}

// readClaims reads a claims file: one JSON object, numbers kept as
// json.Number as serve keeps a token's.
func readClaims(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usage(fmt.Errorf("--claims: %w", err))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err = dec.Decode(&v); err == nil {
		// Nothing may follow the value.
		switch _, err = dec.Token(); {
		case errors.Is(err, io.EOF):
			err = nil
		case err == nil:
			err = errors.New("more than one JSON value")
		}
	}
	claims, ok := v.(map[string]any)
	switch {
	case err != nil:
		return nil, usage(fmt.Errorf("--claims %s: not a JSON object of claims (as an ID token's payload decodes to): %w", path, err))
	case !ok:
		return nil, usage(fmt.Errorf("--claims %s: not a JSON object of claims (as an ID token's payload decodes to), but %s", path, jsonKind(v)))
	}
	return claims, nil
}

// jsonKind names the JSON type of a decoded value, for an error.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return "an object"
}

// jsonText is v as JSON, for an error naming a claim's value.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
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

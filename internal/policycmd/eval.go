package policycmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

	// User is the subject; empty for anonymous (--user).
	User string
	// Method is how User authenticated: password, sourcehut or anonymous;
	// empty means Provider's, else password with a User and anonymous
	// without (--method).
	Method string
	// Provider is User's provider, htpasswd or sourcehut; empty means
	// Method's (--provider).
	Provider string
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
	return nil
}

// decision is one scope's answer, as printed by the json format.
type decision struct {
	Scope     string   `json:"scope"`
	Requested []string `json:"requested"`
	Granted   []string `json:"granted"`
	Deny      []string `json:"deny"`
	Fired     []string `json:"fired,omitempty"`
	Error     string   `json:"error,omitempty"`
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
		if id.Method != identity.MethodPassword && id.Method != identity.MethodSourcehut {
			return usage(errors.New("--refreshed needs a password or sourcehut login (--user, and --method sourcehut for a Sourcehut token)"))
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
	for _, sc := range parsed {
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
		return enc.Encode(map[string]any{
			"revision":  engine.Revision(),
			"identity":  input["identity"],
			"request":   input["request"],
			"decisions": results,
		})
	}
	shown := string(id.Method)
	if id.RefreshedFrom != "" {
		shown += " refreshed_from=" + string(id.RefreshedFrom)
	}
	fmt.Fprintf(stdout, "policy revision: %s\nidentity: method=%s provider=%s subject=%q namespace=%q groups=%v\n\n",
		engine.Revision(), shown, orDashS(id.Provider), id.Subject, id.Namespace, id.Groups)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tREQUESTED\tGRANTED\tDENY")
	for _, r := range results {
		deny := strings.Join(r.Deny, "; ")
		if r.Error != "" {
			deny = "ERROR: " + r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Scope, orDash(r.Requested), orDash(r.Granted), orDashS(deny))
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
	return nil
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
// Method, Provider, Groups and Grants, without checking credentials: the
// groups of the principal and the namespace it owns as serve computes them
// (the htpasswd file decides whether a Sourcehut user's name is held by a
// local account).
func evalIdentity(cfg config.Config, opts EvalOptions, req identity.Request) (identity.Identity, error) {
	method, user, grants := opts.Method, opts.User, opts.Grants
	if method == "" {
		method = string(identity.MethodAnonymous)
		for m, p := range methodProviders {
			if opts.Provider == p {
				method = string(m)
			}
		}
		if user != "" && opts.Provider == "" {
			method = string(identity.MethodPassword)
		}
	}
	id := identity.Identity{Method: identity.Method(method), Subject: user}
	switch id.Method {
	case identity.MethodAnonymous:
		if user != "" || opts.Groups != nil || opts.Provider != "" {
			return id, usage(errors.New("--method anonymous takes no --user, --provider or --groups"))
		}
		return identity.Anonymous, nil
	case identity.MethodPassword, identity.MethodSourcehut:
		if user == "" {
			return id, usage(fmt.Errorf("--method %s needs --user", method))
		}
	default:
		return id, usage(fmt.Errorf("--method must be password, sourcehut or anonymous, got %q", method))
	}
	id.Provider = methodProviders[id.Method]
	if opts.Provider != "" && opts.Provider != id.Provider {
		return id, usage(fmt.Errorf("--provider %s does not log in with --method %s (that is %s's)", opts.Provider, method, id.Provider))
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
			Wait: cfg.Policy.StartupWait.D(), Logger: slog.New(slog.DiscardHandler)})
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

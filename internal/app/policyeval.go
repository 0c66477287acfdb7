package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
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

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// explainFlag is "--explain" (the rules that fired) or "--explain=full"
// (OPA's whole trace as well).
type explainFlag string

func (e *explainFlag) String() string   { return string(*e) }
func (e *explainFlag) IsBoolFlag() bool { return true }
func (e *explainFlag) Set(v string) error {
	switch v {
	case "true", "fired":
		*e = "fired"
	case "full":
		*e = "full"
	case "false":
		*e = ""
	default:
		return fmt.Errorf("want --explain or --explain=full, got %q", v)
	}
	return nil
}

// evalResult is one scope's answer, as printed by --format json.
type evalResult struct {
	Scope     string   `json:"scope"`
	Requested []string `json:"requested"`
	Granted   []string `json:"granted"`
	Deny      []string `json:"deny"`
	Fired     []string `json:"fired,omitempty"`
	Error     string   `json:"error,omitempty"`
}

func runPolicyEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("policy eval", stderr)
	configPath := fs.String("config", "", "config `FILE`: the policy, data, bundles and groups that serve would use")
	user := fs.String("user", "", "the subject (user name); empty for anonymous")
	method := fs.String("method", "", "how the user authenticated: password, sourcehut or anonymous (default: from --provider; password with --user, else anonymous)")
	provider := fs.String("provider", "", "the provider of --user: htpasswd or sourcehut (default: htpasswd for --method password, sourcehut for --method sourcehut)")
	refreshed := fs.Bool("refreshed", false, "as the refresh token of that login would be judged: method refresh, refreshed_from the --method (password or sourcehut)")
	groups := fs.String("groups", "", "comma-separated `GROUPS` (default: the user's groups from the config)")
	grants := fs.String("grants", "", "Sourcehut grant string of the token (default: <service>/REGISTRY:RW; \"all\" for a personal access token)")
	service := fs.String("service", "", "registry service (default: the config's first)")
	clientIP := fs.String("client-ip", "127.0.0.1", "client IP address")
	clientID := fs.String("client-id", "", "client_id parameter")
	userAgent := fs.String("user-agent", "", "User-Agent")
	at := fs.String("time", "", "request time, RFC 3339 (default: now)")
	format := fs.String("format", "text", "output `FORMAT`: text or json")
	var scopes listFlag
	fs.Var(&scopes, "scope", "requested `SCOPE`, e.g. repository:team/app:pull,push (repeatable)")
	var explain explainFlag
	fs.Var(&explain, "explain", "show the rules that fired (--explain=full: OPA's whole trace too)")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return usageError{fmt.Errorf("--format must be text or json, got %q", *format)}
	}
	if len(scopes) == 0 {
		return usageError{errors.New("policy eval: give at least one --scope")}
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	parsed, err := access.ParseScopes(scopes, cfg.Limits.MaxScopes)
	if err != nil {
		return usageError{err}
	}
	req := identity.Request{Service: *service, ClientIP: *clientIP, ClientID: *clientID, UserAgent: *userAgent, Time: time.Now()}
	if req.Service == "" {
		req.Service = cfg.DefaultService()
	} else if !cfg.ServesService(req.Service) {
		return usageError{fmt.Errorf("service %q is not one this config serves (%s)", req.Service, strings.Join(cfg.Service, ", "))}
	}
	if *at != "" {
		if req.Time, err = time.Parse(time.RFC3339, *at); err != nil {
			return usageError{fmt.Errorf("--time: %w", err)}
		}
	}
	var groupsFlag *string
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "groups" {
			groupsFlag = groups
		}
	})
	id, err := evalIdentity(cfg, evalWho{user: *user, method: *method, provider: *provider}, groupsFlag, *grants, req)
	if err != nil {
		return err
	}
	if *refreshed {
		if id.Method != identity.MethodPassword && id.Method != identity.MethodSourcehut {
			return usageError{errors.New("--refreshed needs a password or sourcehut login (--user, and --method sourcehut for a Sourcehut token)")}
		}
		id.RefreshedFrom, id.Method = id.Method, identity.MethodRefresh
	}
	engine, stop, err := evalEngine(ctx, cfg)
	if err != nil {
		return err
	}
	defer stop(context.WithoutCancel(ctx))

	var results []evalResult
	var traces [][]*topdown.Event
	for _, sc := range parsed {
		var opts []rego.EvalOption
		var buf *topdown.BufferTracer
		if explain != "" {
			buf = topdown.NewBufferTracer()
			opts = append(opts, rego.EvalQueryTracer(buf))
		}
		d, err := engine.Decide(ctx, id, req, sc, opts...)
		res := evalResult{Scope: sc.Resource.String(), Requested: sc.Actions, Granted: d.Granted, Deny: d.Reasons}
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

	if *format == "json" {
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
		if explain == "" {
			break
		}
		fmt.Fprintf(stdout, "\n%s: rules that fired:\n", r.Scope)
		for _, f := range r.Fired {
			fmt.Fprintf(stdout, "  %s\n", f)
		}
		if explain == "full" {
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

// evalWho is who policy eval judges: --user, --method and --provider.
type evalWho struct{ user, method, provider string }

// methodProviders pairs each login method with the provider that serves it.
var methodProviders = map[identity.Method]string{
	identity.MethodPassword:  identity.ProviderHtpasswd,
	identity.MethodSourcehut: identity.ProviderSourcehut,
}

// evalIdentity builds the identity serve would have built, without
// checking credentials: the groups of the principal and the namespace it
// owns as serve computes them (the htpasswd file decides whether a
// Sourcehut user's name is held by a local account). groups is nil when
// --groups was not given.
func evalIdentity(cfg config.Config, who evalWho, groups *string, grants string, req identity.Request) (identity.Identity, error) {
	method, user := who.method, who.user
	if method == "" {
		method = string(identity.MethodAnonymous)
		for m, p := range methodProviders {
			if who.provider == p {
				method = string(m)
			}
		}
		if user != "" && who.provider == "" {
			method = string(identity.MethodPassword)
		}
	}
	id := identity.Identity{Method: identity.Method(method), Subject: user}
	switch id.Method {
	case identity.MethodAnonymous:
		if user != "" || groups != nil || who.provider != "" {
			return id, usageError{errors.New("--method anonymous takes no --user, --provider or --groups")}
		}
		return identity.Anonymous, nil
	case identity.MethodPassword, identity.MethodSourcehut:
		if user == "" {
			return id, usageError{fmt.Errorf("--method %s needs --user", method)}
		}
	default:
		return id, usageError{fmt.Errorf("--method must be password, sourcehut or anonymous, got %q", method)}
	}
	id.Provider = methodProviders[id.Method]
	if who.provider != "" && who.provider != id.Provider {
		return id, usageError{fmt.Errorf("--provider %s does not log in with --method %s (that is %s's)", who.provider, method, id.Provider)}
	}
	if id.Provider == identity.ProviderSourcehut && !sourcehut.NewAllowList(cfg.Authn.Sourcehut.LoginUsers()).Admits(user) {
		return id, fmt.Errorf("the server would refuse this login (401): authn.sourcehut.users does not let %q in", user)
	}
	if groups != nil {
		for g := range strings.SplitSeq(*groups, ",") {
			if g = strings.TrimSpace(g); g != "" {
				id.Groups = append(id.Groups, g)
			}
		}
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
			return id, usageError{fmt.Errorf("--grants: %w", err)}
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
		return id, usageError{errors.New("--grants is for --method sourcehut")}
	}
	return id, nil
}

// evalEngine compiles the policy exactly as serve would.
func evalEngine(ctx context.Context, cfg config.Config) (*authz.Engine, func(context.Context), error) {
	if len(cfg.Policy.OPA) > 0 {
		opaConfig, err := json.Marshal(cfg.Policy.OPA)
		if err != nil {
			return nil, nil, usageError{fmt.Errorf("policy.opa: %w", err)}
		}
		remote, err := authz.StartRemote(ctx, authz.RemoteOptions{Config: opaConfig, Query: cfg.Policy.Query, Timeout: cfg.Policy.Timeout.D(),
			Wait: cfg.Policy.StartupWait.D(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, nil, err
		}
		return remote.Authorizer().Engine(), remote.Stop, nil
	}
	e, err := compilePolicy(ctx, cfg.Policy)
	return e, func(context.Context) {}, err
}

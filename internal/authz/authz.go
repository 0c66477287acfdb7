package authz

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// InputVersion is input.version: bumped only on an incompatible change of
// the input document.
const InputVersion = 1

// DefaultQuery is the package whose allow and deny rules are read.
const DefaultQuery = "data.registry.authz"

// DefaultTimeout bounds one evaluation: a policy that loops must not hold a
// request (and a goroutine) forever.
const DefaultTimeout = 100 * time.Millisecond

// Options say which policy to load.
type Options struct {
	// Modules holds the .rego files to evaluate (tests excluded).
	Modules fs.FS
	// Data is stored under data.registry.
	Data map[string]any
	// Query is the package path whose allow/deny are read; DefaultQuery if "".
	Query string
	// Timeout bounds one evaluation; DefaultTimeout if 0.
	Timeout time.Duration
}

// Authorizer evaluates a prepared policy query.
type Authorizer struct {
	query   rego.PreparedEvalQuery
	timeout time.Duration
}

var refPattern = regexp.MustCompile(`^data(\.[A-Za-z_][A-Za-z0-9_]*)+$`)

// New compiles the policy and prepares the query. A policy that does not
// compile is an error here, never at request time.
func New(ctx context.Context, opts Options) (*Authorizer, error) {
	query := opts.Query
	if query == "" {
		query = DefaultQuery
	}
	if !refPattern.MatchString(query) {
		return nil, fmt.Errorf("policy query %q: want a dotted data reference such as %s", query, DefaultQuery)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// Each rule is read through a comprehension so that a policy that does
	// not define deny (or allow) still yields a result: [] for undefined,
	// [value] otherwise, and a wrong-typed value can be told from no value.
	q := fmt.Sprintf("allow := [x | x := %[1]s.allow]; deny := [x | x := %[1]s.deny]", query)
	regoOpts := []func(*rego.Rego){
		rego.Query(q),
		rego.Store(inmem.NewFromObject(map[string]any{"registry": dataOrEmpty(opts.Data)})),
		rego.StrictBuiltinErrors(true),
	}
	n := 0
	err := fs.WalkDir(opts.Modules, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".rego" || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		src, err := fs.ReadFile(opts.Modules, p)
		if err != nil {
			return err
		}
		regoOpts = append(regoOpts, rego.Module(p, string(src)))
		n++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	if n == 0 {
		return nil, errors.New("read policy: no .rego files")
	}
	pq, err := rego.New(regoOpts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	return &Authorizer{query: pq, timeout: timeout}, nil
}

func dataOrEmpty(d map[string]any) map[string]any {
	if d == nil {
		return map[string]any{}
	}
	return d
}

// Authorize decides every requested scope. It returns an error wrapping
// access.ErrDecisionFailed if any evaluation failed, so the client is told
// the policy failed instead of receiving a token that silently grants less.
func (a *Authorizer) Authorize(ctx context.Context, id identity.Identity, req identity.Request, scopes []access.Scope) ([]access.Decision, error) {
	decisions := make([]access.Decision, 0, len(scopes))
	for _, sc := range scopes {
		d, err := a.decide(ctx, id, req, sc)
		if err != nil {
			return nil, fmt.Errorf("%w: scope %s: %w", access.ErrDecisionFailed, sc, err)
		}
		decisions = append(decisions, d)
	}
	return decisions, nil
}

func (a *Authorizer) decide(ctx context.Context, id identity.Identity, req identity.Request, sc access.Scope) (access.Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	rs, err := a.query.Eval(ctx, rego.EvalInput(Input(id, req, sc)))
	if err != nil {
		return access.Decision{}, err
	}
	d := access.Decision{Requested: sc}
	if len(rs) != 1 {
		// The query always binds both variables; anything else is a
		// policy we do not understand.
		return access.Decision{}, fmt.Errorf("query returned %d results, want 1", len(rs))
	}
	allowed, allowDefined, err := stringSet(rs[0].Bindings["allow"])
	if err != nil {
		return access.Decision{}, fmt.Errorf("allow: %w", err)
	}
	denied, _, err := stringSet(rs[0].Bindings["deny"])
	if err != nil {
		return access.Decision{}, fmt.Errorf("deny: %w", err)
	}
	switch {
	case len(denied) > 0:
		d.Reasons = denied
		d.Granted = []string{}
	case !allowDefined:
		d.Reasons = []string{"allow is undefined"}
		d.Granted = []string{}
	default:
		d.Granted = access.Grant(sc.Actions, allowed)
	}
	return d, nil
}

// stringSet reads a comprehension binding: [] (the rule is undefined) or
// [value] where value must be a set or array of strings.
func stringSet(binding any) (values []string, defined bool, err error) {
	wrapped, ok := binding.([]any)
	if !ok || len(wrapped) > 1 {
		return nil, false, fmt.Errorf("unexpected binding %T", binding)
	}
	if len(wrapped) == 0 {
		return nil, false, nil
	}
	items, ok := wrapped[0].([]any)
	if !ok {
		return nil, true, fmt.Errorf("want a set of strings, got %T", wrapped[0])
	}
	for _, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, true, fmt.Errorf("want a set of strings, got an element of type %T", it)
		}
		if !slices.Contains(values, s) {
			values = append(values, s)
		}
	}
	return values, true, nil
}

// Input builds the input document of the policy contract for one scope.
func Input(id identity.Identity, req identity.Request, sc access.Scope) map[string]any {
	groups := make([]any, len(id.Groups))
	for i, g := range id.Groups {
		groups[i] = g
	}
	ident := map[string]any{
		"method":  string(id.Method),
		"subject": id.Subject,
		"groups":  groups,
	}
	if sh := id.Sourcehut; sh != nil {
		grants := make([]any, len(sh.Grants))
		for i, g := range sh.Grants {
			grants[i] = map[string]any{"service": g.Service, "scope": g.Scope, "access": g.Access}
		}
		ident["sourcehut"] = map[string]any{
			"username":   sh.Username,
			"client_id":  sh.ClientID,
			"expires":    sh.Expires.UTC().Format(time.RFC3339),
			"all_grants": sh.AllGrants,
			"grants":     grants,
			"access":     sh.Access,
		}
	}
	actions := make([]any, len(sc.Actions))
	for i, a := range sc.Actions {
		actions[i] = a
	}
	scope := map[string]any{"type": sc.Type, "name": sc.Name, "actions": actions}
	if sc.Class != "" {
		scope["class"] = sc.Class
	}
	return map[string]any{
		"version":  InputVersion,
		"identity": ident,
		"request": map[string]any{
			"service":    req.Service,
			"client_ip":  req.ClientIP,
			"client_id":  req.ClientID,
			"user_agent": req.UserAgent,
			"time":       req.Time.UTC().Format(time.RFC3339),
		},
		"scope": scope,
	}
}

package authz

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/hooks"
	"github.com/open-policy-agent/opa/v1/plugins"
	bundleplugin "github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/open-policy-agent/opa/v1/plugins/discovery"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"
	"github.com/prometheus/client_golang/prometheus"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/policy"
)

// Remote runs OPA's own plugin manager with an operator's OPA configuration
// (services, bundles with polling and signature keys, decision_logs), the
// way an OPA control plane already ships policy to a fleet. Each bundle
// activation compiles a new engine and swaps it in; a bundle that fails to
// download, verify or compile, or that defines no allow rule at the query
// path, is not swapped in, so the last good policy stays in force.
type Remote struct {
	manager    *plugins.Manager
	instanceID string
	authorizer *Authorizer
	activated  chan struct{}
	bundles    *bundleStatusCollector
}

// RemoteOptions configure StartRemote.
type RemoteOptions struct {
	// Config is OPA's configuration document (JSON or YAML).
	Config []byte
	// DecisionLogMask lists input fields left out of uploaded decision
	// logs, as paths like /request/client_ip (MaskablePaths); masking
	// /request/client_ip also leaves out requested_by.
	DecisionLogMask []string
	// Query and Timeout as in Options.
	Query   string
	Timeout time.Duration
	// Wait bounds how long StartRemote waits for the first activation.
	Wait time.Duration
	// NotReadyAfterWait makes StartRemote return after Wait without a
	// bundle instead of failing: the server then listens but answers 503
	// (and /readyz says why) until a bundle activates.
	NotReadyAfterWait bool
	// Fallback, if set, is served when no bundle is active after Wait,
	// instead of refusing to start; the plugins keep trying, and the first
	// bundle that activates replaces it.
	Fallback *Engine
	Logger   *slog.Logger
	// OnActivate, if set, is called with each engine a bundle activation
	// swaps in.
	OnActivate func(e *Engine)
	// AllowBuiltins lists built-ins denied by default (DeniedBuiltins)
	// that the bundles may call; a bundle calling another one is not
	// activated.
	AllowBuiltins []string
}

// StartRemote starts the plugins and waits until a bundle is active: a
// token server must not answer with no policy at all.
func StartRemote(ctx context.Context, o RemoteOptions) (*Remote, error) {
	if _, err := queryFor(o.Query); err != nil {
		return nil, err
	}
	if err := checkAllowBuiltins(o.AllowBuiltins); err != nil {
		return nil, err
	}
	// Size limits: see opaLimits.
	limits := newOPALimits()
	raw, err := limits.rewriteConfig(o.Config)
	if err != nil {
		return nil, fmt.Errorf("policy.opa: %w", err)
	}
	var boot map[string]any
	if err := util.Unmarshal(raw, &boot); err != nil {
		return nil, fmt.Errorf("policy.opa: %w", err)
	}
	if boot["bundles"] == nil {
		return nil, errors.New("policy.opa: no bundles configured")
	}
	// The instance ID is OPA's labels.id, in status reports and uploaded
	// decision logs: one per start, so that replicas can be told apart.
	id := newInstanceID()
	hs := hooks.New(limits)
	m, err := plugins.New(raw, id, inmem.New(), plugins.Logger(newOPALogger(o.Logger)), plugins.WithHooks(hs))
	if err != nil {
		return nil, fmt.Errorf("policy.opa: %w", err)
	}
	limits.setManager(m)
	o.Logger.Info("starting OPA plugins", "instance_id", id, "bundle_size_limit_bytes", limits.limit.Load())
	r := &Remote{manager: m, instanceID: id, authorizer: newAuthorizer(), activated: make(chan struct{}), bundles: newBundleStatusCollector()}
	m.RegisterCompilerTrigger(func(txn storage.Transaction) {
		e, err := compileFromManager(ctx, m.GetCompiler(), m.Store, txn, o.Query, o.Timeout, o.AllowBuiltins)
		if err != nil {
			// The query could not be prepared, the policy defines no
			// allow rule (checkAllow) or calls a denied built-in
			// (checkBuiltins).
			o.Logger.Error("policy bundle activated but refused: the query could not be prepared, nothing would be granted, or it calls a built-in that is denied; keeping the previous policy", "error", err)
			r.authorizer.metrics.activationFailures.Inc()
			return
		}
		if e.Revision() == "" {
			// The compiler changed, but no bundle is active yet (the
			// manager starts with an empty policy): nothing to serve.
			return
		}
		first := r.authorizer.Engine() == nil
		r.authorizer.Swap(e)
		o.Logger.Info("policy bundle activated", "revision", e.Revision())
		if o.OnActivate != nil {
			o.OnActivate(e)
		}
		if first {
			close(r.activated)
		}
	})
	// The discovery plugin with a boot config is how OPA itself (and its
	// SDK) turns a configuration into bundle, status and decision-log
	// plugins.
	d, err := discovery.New(m, discovery.BootConfig(boot), discovery.Hooks(hs))
	if err != nil {
		return nil, fmt.Errorf("policy.opa: %w", err)
	}
	m.Register(discovery.Name, d)
	if err := m.Start(ctx); err != nil {
		return nil, fmt.Errorf("policy.opa: starting plugins: %w", err)
	}
	// Discovery has made the bundle plugin by now; its status updates
	// (one per download attempt) feed the per-bundle metrics.
	if bp := bundleplugin.Lookup(m); bp != nil {
		bp.Register(r.bundles, r.bundles.update)
	}
	wait := o.Wait
	if wait <= 0 {
		wait = policy.DefaultStartupWait
	}
	if o.Fallback != nil {
		select {
		case <-r.activated:
		case <-time.After(wait):
			// A bundle that activates later replaces the fallback.
			if r.authorizer.swapIfNone(o.Fallback) {
				o.Logger.Error("no policy bundle activated in time; serving the fallback policy until one is", "wait", wait, "revision", o.Fallback.Revision())
			}
		case <-ctx.Done():
			m.Stop(context.WithoutCancel(ctx))
			return nil, ctx.Err()
		}
		r.enableDecisionLogs(m, o.Query, o.DecisionLogMask)
		return r, nil
	}
	select {
	case <-r.activated:
		r.enableDecisionLogs(m, o.Query, o.DecisionLogMask)
		return r, nil
	case <-time.After(wait):
		err := fmt.Errorf("policy.opa: no bundle activated within %v (is the bundle server reachable, and is the bundle valid and signed?)", wait)
		if o.NotReadyAfterWait {
			o.Logger.Error("not ready: no policy bundle yet; answering 503 until one activates", "error", err)
			r.enableDecisionLogs(m, o.Query, o.DecisionLogMask)
			return r, nil
		}
		m.Stop(context.WithoutCancel(ctx))
		return nil, err
	case <-ctx.Done():
		m.Stop(context.WithoutCancel(ctx))
		return nil, ctx.Err()
	}
}

// enableDecisionLogs uploads decisions when the configuration has a
// decision_logs section.
func (r *Remote) enableDecisionLogs(m *plugins.Manager, query string, mask []string) {
	if p := logs.Lookup(m); p != nil {
		if query == "" {
			query = DefaultQuery
		}
		r.authorizer.uploads = &opaDecisionLogs{plugin: p, path: strings.ReplaceAll(strings.TrimPrefix(query, "data."), ".", "/"), mask: mask}
	}
}

// MaskablePaths are the input fields that policy.decision_log_mask may
// leave out of uploaded decision logs: everything an upload carries about
// the client beyond who it is and what it asked for.
var MaskablePaths = []string{
	"/request/client_ip", "/request/client_id", "/request/user_agent",
	"/identity/subject", "/identity/groups", "/identity/namespace",
	"/identity/sourcehut", "/identity/sourcehut/grants", "/identity/sourcehut/client_id",
	"/identity/oidc", "/identity/oidc/claims",
}

// maskInput deletes the masked paths from an input document.
func maskInput(input map[string]any, mask []string) {
	for _, path := range mask {
		parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
		m := input
		for i, part := range parts {
			if i == len(parts)-1 {
				delete(m, part)
				break
			}
			next, ok := m[part].(map[string]any)
			if !ok {
				break
			}
			m = next
		}
	}
}

// InstanceID is the OPA instance ID of these plugins (labels.id in status
// reports and decision logs), made at random when they started.
func (r *Remote) InstanceID() string { return r.instanceID }

// newInstanceID returns a random UUID (version 4).
func newInstanceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Authorizer returns the authorizer whose engine follows bundle activations.
func (r *Remote) Authorizer() *Authorizer { return r.authorizer }

// Collectors returns the per-bundle metrics of the bundle plugin; the
// Authorizer has its own.
func (r *Remote) Collectors() []prometheus.Collector { return []prometheus.Collector{r.bundles} }

// Stop stops the plugins.
func (r *Remote) Stop(ctx context.Context) { r.manager.Stop(ctx) }

// opaDecisionLogs uploads decisions through OPA's decision-log plugin, in
// the format an OPA control plane already reads.
type opaDecisionLogs struct {
	plugin *logs.Plugin
	path   string
	mask   []string // input paths left out (policy.decision_log_mask)
}

func (o *opaDecisionLogs) upload(ctx context.Context, e *Engine, id identity.Identity, req identity.Request, d access.Decision, evalErr error) {
	in := Input(id, req, d.Requested)
	maskInput(in, o.mask)
	var input any = in
	remoteAddr := req.ClientIP
	if slices.Contains(o.mask, "/request/client_ip") {
		remoteAddr = ""
	}
	var result any = map[string]any{"allow": d.Granted, "deny": d.Reasons}
	bundles := map[string]server.BundleInfo{}
	for rev := range strings.SplitSeq(e.Revision(), ",") {
		if name, r, ok := strings.Cut(rev, "@"); ok {
			bundles[name] = server.BundleInfo{Revision: r}
		}
	}
	info := &server.Info{
		DecisionID: req.DecisionID,
		Path:       o.path,
		Timestamp:  req.Time,
		RemoteAddr: remoteAddr,
		Input:      &input,
		Results:    &result,
		Bundles:    bundles,
		Error:      evalErr,
	}
	// The plugin buffers; an error here means the buffer refused the
	// event, which must not fail the request.
	_ = o.plugin.Log(context.WithoutCancel(ctx), info)
}

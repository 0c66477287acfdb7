package authz

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/topdown"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// Decide evaluates one scope. Tracers (`policy eval --explain`) see the
// whole evaluation: it is neither memoised nor served remembered rule
// values.
func (e *Engine) Decide(ctx context.Context, id identity.Identity, req identity.Request, sc access.Scope, tracers ...topdown.QueryTracer) (access.Decision, error) {
	return e.decide(ctx, &tokenRequest{id: id, req: req}, sc, tracers)
}

// tokenRequest is who asks, and how: the same for every scope of a request,
// so its part of the input, its key and its identity values are found once.
type tokenRequest struct {
	id    identity.Identity
	req   identity.Request
	parts *inputParts
	// key is the caller's part of the memo key (keyed: computed).
	key   string
	keyed bool
	// values are the caller's identity values (nil: not looked up yet).
	values *ruleValues
}

func (r *tokenRequest) identityKey(keys *memo) string {
	if !r.keyed {
		r.key, r.keyed = keys.identityKey(r.id, r.req), true
	}
	return r.key
}

// identityValues returns the caller's identity values: remembered across
// requests when the engine keys them, else for this request's scopes.
func (r *tokenRequest) identityValues(e *Engine) *ruleValues {
	if r.values != nil {
		return r.values
	}
	if e.identities == nil {
		r.values = newRuleValues()
		return r.values
	}
	key := r.identityKey(e.keys)
	if v, ok := e.identities.Get(key); ok {
		r.values = v
		return v
	}
	r.values = newRuleValues()
	// Another request of the same caller may add its own at the same
	// time: one of them is kept, and both are right.
	e.identities.Add(key, r.values)
	return r.values
}

func (r *tokenRequest) input(s inputShape) (inputParts, error) {
	if r.parts == nil {
		p, err := s.parts(r.id, r.req)
		if err != nil {
			return inputParts{}, err
		}
		r.parts = &p
	}
	return *r.parts, nil
}

func (e *Engine) decide(ctx context.Context, r *tokenRequest, sc access.Scope, tracers []topdown.QueryTracer) (access.Decision, error) {
	start := time.Now()
	useMemo := e.memo != nil && len(tracers) == 0
	var key string
	if useMemo {
		key = e.memo.key(r.identityKey(e.memo), sc)
		if m, ok := e.memo.get(key); ok {
			d := e.decision(sc, m, start)
			d.Memoised = true
			return d, nil
		}
	}
	m, err := e.evaluate(ctx, r, sc, tracers)
	if err != nil {
		// Errors are not remembered: a deadline may pass next time.
		return access.Decision{}, err
	}
	if useMemo {
		e.memo.add(key, m)
	}
	return e.decision(sc, m, start), nil
}

// evaluate runs the query and reads allow and deny.
func (e *Engine) evaluate(ctx context.Context, r *tokenRequest, sc access.Scope, tracers []topdown.QueryTracer) (memoEntry, error) {
	parts, err := r.input(e.shape)
	if err != nil {
		return memoEntry{}, err
	}
	var cache topdown.VirtualCache // nil: OPA's own
	var vc *evalCache
	if e.rules != nil && len(tracers) == 0 {
		var identity *ruleValues
		if e.rules.perIdentity {
			identity = r.identityValues(e)
		}
		vc = e.rules.newEvalCache(identity)
		cache = vc
	}
	// policy.timeout bounds the evaluation, by a timer that cancels it.
	// The caller's context does not: an evaluation takes milliseconds at
	// most, and watching a request's context costs more than a client who
	// leaves saves (a context and a callback per evaluation).
	cancel := topdown.NewCancel()
	var timedOut atomic.Bool
	timer := time.AfterFunc(e.timeout, func() {
		timedOut.Store(true)
		cancel.Cancel()
	})
	m, err := e.direct.eval(ctx, e.shape.value(parts, sc), cache, cancel, tracers)
	timer.Stop()
	if vc != nil {
		vc.done(err)
	}
	if err != nil && timedOut.Load() {
		return memoEntry{}, fmt.Errorf("evaluation took longer than policy.timeout (%s): %w", e.timeout, err)
	}
	return m, err
}

// decision turns the policy's answer into what is granted on sc.
func (e *Engine) decision(sc access.Scope, m memoEntry, start time.Time) access.Decision {
	d := access.Decision{Requested: sc, Revision: e.revision}
	switch {
	case len(m.denied) > 0:
		d.Reasons = m.denied
		d.Granted = []string{}
	case !m.allowDefined:
		d.Reasons = []string{"allow is undefined"}
		d.Granted = []string{}
	default:
		d.Granted = access.Grant(sc.Actions, m.allowed)
	}
	d.Duration = time.Since(start)
	return d
}

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
// so its part of the input, its key and what is remembered of the caller
// are found once.
type tokenRequest struct {
	id    identity.Identity
	req   identity.Request
	parts *inputParts
	// key is the caller's part of the memo key (keyed: computed).
	key   string
	keyed bool
	// caller is what is remembered of the caller (nil: not looked up
	// yet).
	caller *caller
}

// caller is what an engine remembers of one caller (a value of the memo's
// identityKey): the input's identity and request parts, which that key
// determines (they hold exactly the fields the key is made of), and the
// values of the policy's identity rules.
type caller struct {
	values   ruleValues
	parts    atomic.Pointer[inputParts]
	residual callerResidual
}

func newCaller() *caller {
	c := &caller{}
	c.values.init()
	return c
}

func (r *tokenRequest) identityKey(keys *memo) string {
	if !r.keyed {
		r.key, r.keyed = keys.identityKey(r.id, r.req), true
	}
	return r.key
}

// callerOf returns what is remembered of the caller: across requests when
// the engine keys callers, else for this request's scopes.
func (r *tokenRequest) callerOf(e *Engine) *caller {
	if r.caller != nil {
		return r.caller
	}
	if e.callers == nil {
		r.caller = newCaller()
		return r.caller
	}
	key := r.identityKey(e.keys)
	if c, ok := e.callers.Get(key); ok {
		r.caller = c
		return c
	}
	r.caller = newCaller()
	// Another request of the same caller may add its own at the same
	// time: one of them is kept, and both are right.
	e.callers.Add(key, r.caller)
	return r.caller
}

// input returns the identity and request parts of the input: built once
// per request, and taken from what is remembered of the caller when the
// engine keys callers.
func (r *tokenRequest) input(e *Engine) (inputParts, error) {
	if r.parts != nil {
		return *r.parts, nil
	}
	var c *caller
	if e.callers != nil {
		c = r.callerOf(e)
		if p := c.parts.Load(); p != nil {
			r.parts = p
			return *p, nil
		}
	}
	p, err := e.shape.parts(r.id, r.req)
	if err != nil {
		return inputParts{}, err
	}
	r.parts = &p
	if c != nil {
		c.parts.Store(&p)
	}
	return p, nil
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
	parts, err := r.input(e)
	if err != nil {
		return memoEntry{}, err
	}
	if e.residuals != nil && len(tracers) == 0 {
		if res := e.residualOf(ctx, r, parts); res != nil {
			return res.decide(sc, e.shape.read), nil
		}
	}
	var vc *evalCache // nil: OPA's own caches
	if len(tracers) == 0 {
		vc = e.evalCache(r)
	}
	// deny's value, when the engine remembers it for this caller: OPA is
	// then asked for allow alone.
	q := e.direct
	var deny staticValue
	remembered := false
	if vc != nil && e.allowOnly != nil {
		if deny, remembered = e.rememberedDeny(r); remembered {
			q = e.allowOnly
		}
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
	m, err := q.eval(ctx, e.shape.value(parts, sc), vc, cancel, tracers)
	timer.Stop()
	if err == nil && remembered {
		if m.denied, err = rememberedStrings(deny); err != nil {
			err = fmt.Errorf("deny: %w", err)
		}
	}
	if vc != nil {
		vc.done(err)
		vc.release()
	}
	if err != nil && timedOut.Load() {
		return memoEntry{}, fmt.Errorf("evaluation took longer than policy.timeout (%s): %w", e.timeout, err)
	}
	return m, err
}

// evalCache is an evaluation's caches, serving the rule values the engine
// remembers (the caller's identity rules among them).
func (e *Engine) evalCache(r *tokenRequest) *evalCache {
	var identity *ruleValues
	if e.rules != nil && e.rules.perIdentity {
		identity = &r.callerOf(e).values
	}
	return newEvalCache(e.rules, identity)
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

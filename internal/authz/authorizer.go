package authz

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// Authorizer evaluates the current engine; Swap replaces it atomically, so
// a reload never fails a request in flight (it finishes on the old engine).
type Authorizer struct {
	current atomic.Pointer[Engine]
	// uploads, if set, receives every decision (OPA's decision-log plugin).
	uploads decisionUploader
	metrics *authzMetrics
}

// decisionUploader ships decisions to a decision-log service.
type decisionUploader interface {
	upload(ctx context.Context, e *Engine, id identity.Identity, req identity.Request, d access.Decision, err error)
}

// NewAuthorizer returns an Authorizer evaluating e.
func NewAuthorizer(e *Engine) *Authorizer {
	a := newAuthorizer()
	a.Swap(e)
	return a
}

func newAuthorizer() *Authorizer {
	a := &Authorizer{}
	a.metrics = newAuthzMetrics(a)
	return a
}

// New compiles the policy and returns an Authorizer for it.
func New(ctx context.Context, opts Options) (*Authorizer, error) {
	e, err := Compile(ctx, opts)
	if err != nil {
		return nil, err
	}
	return NewAuthorizer(e), nil
}

// Swap makes e the engine of every later decision.
func (a *Authorizer) Swap(e *Engine) {
	a.adopt(e)
	a.current.Store(e)
	a.metrics.activated()
}

// swapIfNone makes e the engine only if there is none yet.
func (a *Authorizer) swapIfNone(e *Engine) bool {
	a.adopt(e)
	if !a.current.CompareAndSwap(nil, e) {
		return false
	}
	a.metrics.activated()
	return true
}

// adopt reports e's residuals in a's metrics. e is not yet in use: it is
// adopted before it is stored, and decisions see it after.
func (a *Authorizer) adopt(e *Engine) {
	if e != nil && e.onResidual == nil {
		e.onResidual = a.metrics.residual
	}
}

// Engine returns the current engine.
func (a *Authorizer) Engine() *Engine { return a.current.Load() }

// Authorize decides every requested scope. It returns an error wrapping
// access.ErrDecisionFailed if any evaluation failed, so the client is told
// the policy failed instead of receiving a token that silently grants less.
func (a *Authorizer) Authorize(ctx context.Context, id identity.Identity, req identity.Request, scopes []access.Scope) ([]access.Decision, error) {
	e := a.current.Load()
	if e == nil {
		if len(scopes) == 0 {
			return nil, nil
		}
		a.metrics.failed(len(scopes), 0)
		return nil, fmt.Errorf("%w: no policy is active yet", access.ErrDecisionFailed)
	}
	decisions := make([]access.Decision, 0, len(scopes))
	r := &tokenRequest{id: id, req: req}
	for i, sc := range scopes {
		start := time.Now()
		d, err := e.decide(ctx, r, sc, nil)
		if a.uploads != nil {
			if err != nil {
				d.Requested = sc
			}
			a.uploads.upload(ctx, e, id, req, d, err)
		}
		if err != nil {
			// The scopes not yet decided fail with this one: the
			// request grants nothing.
			a.metrics.failed(len(scopes)-i, time.Since(start))
			return nil, fmt.Errorf("%w: scope %s: %w", access.ErrDecisionFailed, sc, err)
		}
		a.metrics.decided(d)
		decisions = append(decisions, d)
	}
	return decisions, nil
}

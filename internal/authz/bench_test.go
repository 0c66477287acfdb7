package authz_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"testing/fstest"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/authz"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/policy"
)

// BenchmarkDecision is one decision with the embedded default policy: the
// path every docker pull goes through. Run with -benchmem.
//
// "memo" is the server's path for a repeated request: the decision is
// remembered per policy revision, keyed by the input fields the policy
// reads. "residual" is a known caller asking about a repository it has not
// asked about before, once it has asked about a few (residualAfter): the
// scope is decided against the caller's residual, the policy partially
// evaluated for it (when its residual is one the engine can decide; an ID
// token's is not, and is evaluated as in "eval"). "eval" evaluates the
// policy every time, with the caller's identity rules remembered: a known
// caller without a residual. "cold" remembers nothing of the caller
// either: what a caller's first request costs (or every request, for a
// policy reading input.request.time). Rules that read no input are
// remembered in every mode.
func BenchmarkDecision(b *testing.B) {
	for _, mode := range []struct {
		name                           string
		noMemo, noIdentity, noResidual bool
	}{{"memo", false, false, false}, {"residual", true, false, false}, {"eval", true, false, true}, {"cold", true, true, true}} {
		b.Run(mode.name, func(b *testing.B) { benchmarkDecision(b, mode.noMemo, mode.noIdentity, mode.noResidual) })
	}
}

func benchmarkDecision(b *testing.B, noMemo, noIdentity, noResidual bool) {
	ctx := context.Background()
	e, err := authz.Compile(ctx, authz.Options{
		NoMemo:     noMemo,
		NoIdentity: noIdentity,
		NoResidual: noResidual,
		// The machine a benchmark runs on may be busy: a stall is not a
		// policy that loops.
		Timeout: 10 * time.Second,
		Modules: policy.FS(),
		Schema:  policy.InputSchema(),
		Data: map[string]any{
			"public":     []any{"library/*"},
			"namespaces": map[string]any{"team": map[string]any{"pull": []any{"group:ci"}, "push": []any{"htpasswd:alice"}}},
			"oidc": []any{map[string]any{"provider": "github",
				"claims":       map[string]any{"repository_owner": "octo-org", "ref": []any{"refs/heads/main", "refs/tags/v*"}},
				"repositories": []any{"{repository}", "{repository}/*"}, "actions": []any{"pull", "push"}}},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		id   identity.Identity
		sc   access.Scope
	}{
		{"password-own-namespace", identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice",
			Groups: []string{"ci"}},
			access.Scope{Resource: access.Resource{Type: "repository", Name: "alice/app"}, Actions: []string{"pull", "push"}}},
		{"anonymous-public", identity.Anonymous,
			access.Scope{Resource: access.Resource{Type: "repository", Name: "library/base"}, Actions: []string{"pull"}}},
		{"sourcehut-ro-team", identity.Identity{Method: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: "bob", Namespace: "bob",
			Groups: []string{"ci"},
			Sourcehut: &identity.Sourcehut{Username: "bob", Expires: time.Now().Add(time.Hour), Access: "RO",
				Grants: []identity.Grant{{Service: "registry.example.com", Scope: "REGISTRY", Access: "RO"}}}},
			access.Scope{Resource: access.Resource{Type: "repository", Name: "team/app"}, Actions: []string{"pull", "push"}}},
		// A GitHub Actions token's claims, as many as GitHub sends.
		{"oidc-github-rule", identity.Identity{Method: identity.MethodOIDC, Provider: "github", Subject: "repo:octo-org/app:ref:refs/heads/main",
			OIDC: &identity.OIDC{Issuer: "https://token.actions.githubusercontent.com", Claims: map[string]any{
				"iss": "https://token.actions.githubusercontent.com", "aud": "registry.example.com", "sub": "repo:octo-org/app:ref:refs/heads/main",
				"jti": "6f4d1b1e-0000-4000-8000-000000000001", "iat": json.Number("1764504000"), "nbf": json.Number("1764503700"), "exp": json.Number("1764504300"),
				"repository": "octo-org/app", "repository_id": "690000001", "repository_owner": "octo-org", "repository_owner_id": "123456",
				"repository_visibility": "private", "ref": "refs/heads/main", "ref_type": "branch", "ref_protected": "true",
				"sha": "0123456789abcdef0123456789abcdef01234567", "event_name": "push", "actor": "octocat", "actor_id": "1",
				"workflow": "release", "workflow_ref": "octo-org/app/.github/workflows/release.yml@refs/heads/main",
				"workflow_sha": "0123456789abcdef0123456789abcdef01234567", "job_workflow_ref": "octo-org/app/.github/workflows/release.yml@refs/heads/main",
				"job_workflow_sha": "0123456789abcdef0123456789abcdef01234567", "run_id": "1", "run_number": "1", "run_attempt": "1",
				"runner_environment": "github-hosted", "head_ref": "", "base_ref": "",
			}}},
			access.Scope{Resource: access.Resource{Type: "repository", Name: "octo-org/app"}, Actions: []string{"pull", "push"}}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			req := identity.Request{Service: "registry.example.com", ClientIP: "192.0.2.7", ClientID: "docker", UserAgent: "docker/27", Time: time.Now()}
			b.ReportAllocs()
			for b.Loop() {
				// A fresh request time per call, as the server sends.
				req.Time = req.Time.Add(time.Second)
				if _, err := e.Decide(ctx, c.id, req, c.sc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecisionFloor is what any decision costs before the policy's
// own rules: the server's evaluation path (input document, OPA's
// evaluator, reading allow and deny) with a policy of one rule, memo off.
// BenchmarkDecision/eval less this is the default policy's share.
func BenchmarkDecisionFloor(b *testing.B) {
	src := "package registry.authz\n\nallow contains \"pull\" if input.scope.type == \"repository\"\n"
	// NoResidual: the caller would soon be decided against its residual,
	// without the evaluator this measures.
	e, err := authz.Compile(context.Background(), authz.Options{Modules: fstest.MapFS{"authz.rego": {Data: []byte(src)}},
		NoMemo: true, NoResidual: true, Timeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	id := identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice", Groups: []string{"ci"}}
	sc := access.Scope{Resource: access.Resource{Type: "repository", Name: "alice/app"}, Actions: []string{"pull", "push"}}
	req := identity.Request{Service: "registry.example.com", Time: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if d, err := e.Decide(context.Background(), id, req, sc); err != nil || len(d.Granted) != 1 {
			b.Fatal(d, err)
		}
	}
}

// BenchmarkDecisionManyCallers: GitHub OIDC callers of as many
// repositories, each asking about an image of its own repository in turn
// (memo off, every caller known, residuals off). Each caller's expanded repository
// patterns are globs of their own: with more of them than OPA keeps
// compiled by default (100), a decision would compile its globs again.
func BenchmarkDecisionManyCallers(b *testing.B) {
	for _, n := range []int{10, 500} {
		b.Run(fmt.Sprintf("%d-repositories", n), func(b *testing.B) {
			ctx := context.Background()
			// NoResidual: this measures the evaluator's compiled patterns;
			// each caller would soon be decided against its residual.
			e, err := authz.Compile(ctx, authz.Options{NoMemo: true, NoResidual: true, Timeout: 10 * time.Second, Modules: policy.FS(), Schema: policy.InputSchema(),
				Data: map[string]any{"oidc": []any{map[string]any{"provider": "github",
					"claims":       map[string]any{"repository_owner": "octo-org"},
					"repositories": []any{"{repository}", "{repository}/*"}, "actions": []any{"pull", "push"}}}}})
			if err != nil {
				b.Fatal(err)
			}
			ids := make([]identity.Identity, n)
			scopes := make([]access.Scope, n)
			for i := range ids {
				repo := fmt.Sprintf("octo-org/app-%d", i)
				ids[i] = identity.Identity{Method: identity.MethodOIDC, Provider: "github", Subject: "repo:" + repo + ":ref:refs/heads/main",
					OIDC: &identity.OIDC{Issuer: "https://token.actions.githubusercontent.com", Claims: map[string]any{
						"iss": "https://token.actions.githubusercontent.com", "sub": "repo:" + repo + ":ref:refs/heads/main",
						"repository": repo, "repository_owner": "octo-org", "ref": "refs/heads/main"}}}
				scopes[i] = access.Scope{Resource: access.Resource{Type: "repository", Name: repo + "/image"}, Actions: []string{"pull", "push"}}
			}
			req := identity.Request{Service: "registry.example.com", Time: time.Now()}
			decide := func(i int) {
				d, err := e.Decide(ctx, ids[i%n], req, scopes[i%n])
				if err != nil || len(d.Granted) != 2 {
					b.Fatal(d, err)
				}
			}
			// Every caller known before the clock starts.
			for i := range n {
				decide(i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				decide(i)
				i++
			}
		})
	}
}

// BenchmarkDecisionNewCaller is a new caller (a password user, memo off)
// asking about n repositories of its own namespace, each new: one op is
// all n decisions. With residuals, the residualAfter-th decision makes the
// caller's residual (a partial evaluation) and the rest are decided
// against it; without, every one is evaluated. It shows what a residual costs a caller
// that asks about a few repositories, and what it saves one that asks
// about many.
func BenchmarkDecisionNewCaller(b *testing.B) {
	for _, residual := range []bool{true, false} {
		for _, n := range []int{3, 40, 200} {
			name := fmt.Sprintf("residual/%d-repositories", n)
			if !residual {
				name = fmt.Sprintf("eval/%d-repositories", n)
			}
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				e, err := authz.Compile(ctx, authz.Options{NoMemo: true, NoResidual: !residual, Timeout: 10 * time.Second,
					Modules: policy.FS(), Schema: policy.InputSchema(),
					Data: map[string]any{"public": []any{"library/*"},
						"namespaces": map[string]any{"team": map[string]any{"pull": []any{"group:ci"}, "push": []any{"htpasswd:alice"}}}}})
				if err != nil {
					b.Fatal(err)
				}
				scopes := make([]access.Scope, n)
				req := identity.Request{Service: "registry.example.com", Time: time.Now()}
				b.ReportAllocs()
				caller := 0
				for b.Loop() {
					caller++
					user := fmt.Sprintf("user%d", caller)
					id := identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: user, Namespace: user, Groups: []string{"ci"}}
					for i := range scopes {
						scopes[i] = access.Scope{Resource: access.Resource{Type: "repository", Name: fmt.Sprintf("%s/app-%d", user, i)}, Actions: []string{"pull", "push"}}
					}
					for _, sc := range scopes {
						if d, err := e.Decide(ctx, id, req, sc); err != nil || len(d.Granted) != 2 {
							b.Fatal(d, err)
						}
					}
				}
			})
		}
	}
}

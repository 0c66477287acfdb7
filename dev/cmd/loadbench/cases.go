package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

// Case kinds.
const (
	kindLoad    = "load"    // the server and the baseline under the same load
	kindMemory  = "memory"  // the server's RSS after many distinct tokens
	kindStartup = "startup" // start-up to first token
)

// target is a case's goal (issues 5 and 16); zero fields do not apply.
type target struct {
	minRatio    float64
	maxP99Ratio float64
	maxRSS      uint64
	maxStartup  time.Duration
}

func (t target) String() string {
	var parts []string
	if t.minRatio > 0 {
		parts = append(parts, fmt.Sprintf("≥ %.2f×", t.minRatio))
	}
	if t.maxP99Ratio > 0 {
		parts = append(parts, fmt.Sprintf("p99 ≤ %.1f×", t.maxP99Ratio))
	}
	if t.maxRSS > 0 {
		parts = append(parts, fmt.Sprintf("≤ %d MiB", t.maxRSS>>20))
	}
	if t.maxStartup > 0 {
		parts = append(parts, "≤ "+t.maxStartup.String())
	}
	return strings.Join(parts, ", ")
}

// caseDef is one row of the table.
type caseDef struct {
	id      string
	name    string
	kind    string
	keyType string // "ec" or "ed25519"
	target  target
	// noBaseline: a load case measured without the baseline (no ratio).
	noBaseline bool
	// optIn: run only when named in -cases (or -cases all).
	optIn bool
	// bruteForceOff: the server runs with brute_force.threshold: 0.
	bruteForceOff bool
	// load prepares a kindLoad case against the server at addr (e.g. one
	// warm-up login) and returns what to send; request URLs in the plan
	// are a path and query.
	load func(ctx context.Context, e *env, addr string) (*plan, error)
}

// issue16 is the p99 target of issue 16's cases: no worse than 1.2× the
// baseline's.
const issue16P99 = 1.2

func anonLoad(context.Context, *env, string) (*plan, error) {
	return &plan{reqs: []request{{url: authPath("repository:library/base:pull")}}}, nil
}

func passwordLoad(scopes ...string) func(context.Context, *env, string) (*plan, error) {
	return func(_ context.Context, e *env, _ string) (*plan, error) {
		return &plan{reqs: []request{{url: authPath(scopes...), auth: basicAuth("alice", e.passwords["alice"])}}}, nil
	}
}

var allCases = []caseDef{
	{id: "anon-es256", name: "anonymous, 1 scope", kind: kindLoad, keyType: "ec", load: anonLoad,
		target: target{minRatio: 0.85, maxP99Ratio: issue16P99}},
	{id: "password", name: "password, repeated credentials", kind: kindLoad, keyType: "ec",
		target: target{minRatio: 0.80, maxP99Ratio: issue16P99},
		load:   passwordLoad("repository:alice/app:pull,push")},
	{id: "password-3scopes", name: "password, 3 scopes", kind: kindLoad, keyType: "ec",
		target: target{minRatio: 0.65, maxP99Ratio: issue16P99},
		load:   passwordLoad("repository:alice/app:pull,push", "repository:alice/b:pull", "repository:library/base:pull")},
	{id: "anon-cold", name: "anonymous, new repository per request (memo cold)", kind: kindLoad, keyType: "ec",
		target: target{minRatio: 0.65, maxP99Ratio: issue16P99},
		load: func(context.Context, *env, string) (*plan, error) {
			return &plan{cold: true}, nil
		}},
	{id: "anon-ed25519", name: "anonymous, 1 scope, Ed25519", kind: kindLoad, keyType: "ed25519", load: anonLoad,
		target: target{minRatio: 0.85}},
	{id: "sourcehut", name: "sourcehut, cached", kind: kindLoad, keyType: "ec",
		target: target{minRatio: 0.75},
		load: func(ctx context.Context, e *env, addr string) (*plan, error) {
			tok := e.meta.Mint(fakemeta.TokenOptions{
				Username: shUser, ClientID: "builds.sr.ht",
				Grants: service + "/REGISTRY:RW", Expires: time.Now().Add(6 * time.Hour),
			})
			r := request{url: authPath("repository:" + shUser + "/app:pull,push"), auth: basicAuth("sourcehut", tok)}
			// One login before the load: the fake is asked once.
			if err := once(ctx, request{url: "http://" + addr + r.url, auth: r.auth}); err != nil {
				return nil, fmt.Errorf("warm-up login: %w", err)
			}
			return &plan{reqs: []request{r}}, nil
		}},
	// With brute-force protection on, the wrong passwords would be
	// answered 429 within a second: the case turns it off to measure
	// what each wrong password costs (a full bcrypt check).
	{id: "mixed", name: "mixed wrong/good passwords (1 in 10 wrong, brute_force off)", kind: kindLoad, keyType: "ec",
		noBaseline: true, optIn: true, bruteForceOff: true,
		load: func(_ context.Context, e *env, _ string) (*plan, error) {
			p := &plan{count401: true}
			for i := range 10 * len(users) {
				u := users[i%len(users)]
				r := request{url: authPath("repository:" + u + "/app:pull,push"), auth: basicAuth(u, e.passwords[u])}
				if i%10 == 9 {
					r.auth, r.want401 = basicAuth(u, e.passwords[u]+"-wrong"), true
				}
				p.reqs = append(p.reqs, r)
			}
			return p, nil
		}},
	{id: "sourcehut-100k", name: "distinct cached Sourcehut tokens", kind: kindMemory, keyType: "ec", optIn: true,
		target: target{maxRSS: 200 << 20}},
	{id: "startup", name: "start-up to first token", kind: kindStartup, keyType: "ec",
		target: target{maxStartup: time.Second}},
}

// selectCases returns the cases named in list (comma-separated ids), in
// the table's order; "" is every case but the opt-in ones, "all" every case.
func selectCases(list string) ([]caseDef, error) {
	switch list {
	case "all":
		return allCases, nil
	case "":
		var out []caseDef
		for _, c := range allCases {
			if !c.optIn {
				out = append(out, c)
			}
		}
		return out, nil
	}
	want := map[string]bool{}
	for _, id := range strings.Split(list, ",") {
		if id = strings.TrimSpace(id); id != "" {
			want[id] = true
		}
	}
	var out []caseDef
	for _, c := range allCases {
		if want[c.id] {
			out = append(out, c)
			delete(want, c.id)
		}
	}
	if len(want) > 0 {
		var unknown []string
		for id := range want {
			unknown = append(unknown, id)
		}
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown case(s) %s; known: %s", strings.Join(unknown, ", "), caseIDs())
	}
	return out, nil
}

func caseIDs() string {
	var ids []string
	for _, c := range allCases {
		ids = append(ids, c.id)
	}
	return strings.Join(ids, ",")
}

// once sends one request and wants a token.
func once(ctx context.Context, r request) error {
	client := newClient(1)
	defer client.CloseIdleConnections()
	o := do(ctx, client, r, nil, new(bytes.Buffer))
	if o.kind != "" {
		return fmt.Errorf("%s %s", o.kind, o.example)
	}
	return nil
}

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
	kindBaseline = "baseline" // the bare signer under load
	kindLoad     = "load"     // the server under load
	kindMemory   = "memory"   // the server's RSS after many distinct tokens
	kindStartup  = "startup"  // start-up to first token
)

// target is a case's goal from issue 5; zero fields do not apply.
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
	// load prepares a kindLoad or kindBaseline case against the server
	// at addr (e.g. one warm-up login) and returns its requests.
	load func(ctx context.Context, e *env, addr string) (generator, error)
}

func anonLoad(_ context.Context, _ *env, addr string) (generator, error) {
	r := request{url: anonURL(addr)}
	return func(int, uint64) request { return r }, nil
}

var allCases = []caseDef{
	{id: "baseline-es256", name: "baseline ES256", kind: kindBaseline, keyType: "ec", load: anonLoad},
	{id: "baseline-ed25519", name: "baseline Ed25519", kind: kindBaseline, keyType: "ed25519", load: anonLoad},
	{id: "anon-es256", name: "anonymous, 1 scope, ES256", kind: kindLoad, keyType: "ec", load: anonLoad,
		target: target{minRatio: 0.85, maxP99Ratio: 1.5}},
	{id: "anon-ed25519", name: "anonymous, 1 scope, Ed25519", kind: kindLoad, keyType: "ed25519", load: anonLoad,
		target: target{minRatio: 0.85}},
	{id: "password", name: "password, repeated credentials", kind: kindLoad, keyType: "ec",
		target: target{minRatio: 0.75},
		load: func(_ context.Context, e *env, addr string) (generator, error) {
			r := request{url: authURL(addr, "repository:alice/app:pull,push"), auth: basicAuth("alice", e.passwords["alice"])}
			return func(int, uint64) request { return r }, nil
		}},
	{id: "password-3scopes", name: "password, 3 scopes", kind: kindLoad, keyType: "ec",
		target: target{minRatio: 0.6},
		load: func(_ context.Context, e *env, addr string) (generator, error) {
			r := request{
				url:  authURL(addr, "repository:alice/app:pull,push", "repository:alice/b:pull", "repository:library/base:pull"),
				auth: basicAuth("alice", e.passwords["alice"]),
			}
			return func(int, uint64) request { return r }, nil
		}},
	{id: "sourcehut", name: "sourcehut, cached", kind: kindLoad, keyType: "ec",
		target: target{minRatio: 0.75},
		load: func(ctx context.Context, e *env, addr string) (generator, error) {
			tok := e.meta.Mint(fakemeta.TokenOptions{
				Username: shUser, ClientID: "builds.sr.ht",
				Grants: service + "/REGISTRY:RW", Expires: time.Now().Add(6 * time.Hour),
			})
			r := request{url: authURL(addr, "repository:"+shUser+"/app:pull,push"), auth: basicAuth("sourcehut", tok)}
			// One login before the load: the fake is asked once.
			if err := once(ctx, r); err != nil {
				return nil, fmt.Errorf("warm-up login: %w", err)
			}
			return func(int, uint64) request { return r }, nil
		}},
	{id: "mixed", name: "mixed wrong/good passwords (1 in 10 wrong)", kind: kindLoad, keyType: "ec",
		load: func(_ context.Context, e *env, addr string) (generator, error) {
			var good, bad []request
			for _, u := range users {
				url := authURL(addr, "repository:"+u+"/app:pull,push")
				good = append(good, request{url: url, auth: basicAuth(u, e.passwords[u])})
				bad = append(bad, request{url: url, auth: basicAuth(u, e.passwords[u]+"-wrong"), want401: true})
			}
			return func(w int, seq uint64) request {
				u := (uint64(w) + seq) % uint64(len(users))
				if seq%10 == 9 {
					return bad[u]
				}
				return good[u]
			}, nil
		}},
	{id: "sourcehut-100k", name: "distinct cached Sourcehut tokens", kind: kindMemory, keyType: "ec",
		target: target{maxRSS: 200 << 20}},
	{id: "startup", name: "start-up to first token", kind: kindStartup, keyType: "ec",
		target: target{maxStartup: time.Second}},
}

// selectCases returns the cases named in list (comma-separated ids), in
// the table's order; "" or "all" is every case.
func selectCases(list string) ([]caseDef, error) {
	if list == "" || list == "all" {
		return allCases, nil
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

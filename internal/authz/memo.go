package authz

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// memoSize bounds the decisions remembered per engine (one policy
// revision): a few thousand users times their repositories.
const memoSize = 10000

// A memo remembers the policy's answer (allowed actions and deny messages)
// for an input, keyed by exactly the input fields the compiled policy reads,
// so two requests that differ only in fields the policy ignores (the time,
// the client's address, the user agent) share one evaluation. It belongs to
// one engine, so a policy or data change starts from an empty memo. It is
// not used for a policy that reads input.request.time or calls a
// non-deterministic built-in (time.now_ns, http.send, rand.intn, …): their
// answers cannot be reused.
type memo struct {
	leaves []leaf // the input fields the key is made of
	// scopeFrom is the index of the first leaf of input.scope: the
	// leaves before it are the caller's (identityKey).
	scopeFrom int
	// claims are the OIDC claims the key is made of when the policy reads
	// identity.oidc.claims only by name (claims.ref), sorted; nil when it
	// reads them whole or by a computed key: then every claim is in the key.
	claims []string
	cache  *lru.Cache[string, memoEntry]
}

type memoEntry struct {
	allowed      []string
	allowDefined bool
	denied       []string
}

// leaf is one field of the input document and how to write its value into
// a key.
type leaf struct {
	path  string
	write func(b *strings.Builder, id identity.Identity, req identity.Request, sc access.Scope)
}

func writeString(b *strings.Builder, s string) {
	// Length-prefixed, so no value can forge a separator.
	b.WriteString(strconv.Itoa(len(s)))
	b.WriteByte(':')
	b.WriteString(s)
}

func writeStrings(b *strings.Builder, ss []string) {
	b.WriteString(strconv.Itoa(len(ss)))
	b.WriteByte('[')
	for _, s := range ss {
		writeString(b, s)
	}
}

// writeJSON writes a JSON value as the policy sees it, so that two values
// share an encoding only if the policy cannot tell them apart: a type tag,
// strings length-prefixed (byte for byte, as OPA keeps them), numbers as
// their JSON text, object keys sorted. Numbers equal in Rego but written
// differently (1 and 1.0) get different keys: a missed memo entry, never a
// shared one. Other Go values are converted through JSON first, as OPA
// converts its input.
func writeJSON(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteByte('n')
	case bool:
		if x {
			b.WriteByte('t')
		} else {
			b.WriteByte('f')
		}
	case string:
		b.WriteByte('s')
		writeString(b, x)
	case json.Number:
		b.WriteByte('d')
		writeString(b, string(x))
	case []any:
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(len(x)))
		b.WriteByte(':')
		for _, e := range x {
			writeJSON(b, e)
		}
	case map[string]any:
		b.WriteByte('{')
		b.WriteString(strconv.Itoa(len(x)))
		b.WriteByte(':')
		for _, k := range slices.Sorted(maps.Keys(x)) {
			writeString(b, k)
			writeJSON(b, x[k])
		}
	default:
		raw, err := json.Marshal(x)
		var y any
		if err == nil {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			err = dec.Decode(&y)
		}
		if err != nil {
			// Not JSON: the policy's evaluation fails on it too, and a
			// failed decision is never remembered, so no entry has
			// this key.
			b.WriteByte('!')
			return
		}
		writeJSON(b, y)
	}
}

func sourcehutOf(id identity.Identity) identity.Sourcehut {
	if id.Sourcehut == nil {
		return identity.Sourcehut{}
	}
	return *id.Sourcehut
}

func oidcOf(id identity.Identity) identity.OIDC {
	if id.OIDC == nil {
		return identity.OIDC{}
	}
	return *id.OIDC
}

// claimsLeaf is the leaf of the OIDC claims: free-form, keyed by every
// claim, or (see memo.claims) by the claims the policy reads by name.
const claimsLeaf = "input.identity.oidc.claims"

// writeClaims writes every claim (names nil) or the named claims, each
// with whether the token has it.
func writeClaims(b *strings.Builder, id identity.Identity, names []string) {
	if id.OIDC == nil {
		b.WriteString("false")
		return
	}
	b.WriteString("true")
	claims := id.OIDC.Claims
	if names == nil {
		// A token's claims are a few dozen short strings: room for them
		// at once, rather than growing the key many times.
		b.Grow(64 * len(claims))
		writeJSON(b, claimsOrEmpty(claims))
		return
	}
	for _, n := range names {
		v, ok := claims[n]
		writeString(b, n)
		b.WriteString(strconv.FormatBool(ok))
		writeJSON(b, v)
	}
}

// inputLeaves are every field of input version 2. A read of a field below a
// leaf (input.identity.sourcehut.grants[_].service) keys on the leaf; a read
// of an inner node (input.identity) keys on every leaf below it.
var inputLeaves = []leaf{
	{"input.version", func(b *strings.Builder, _ identity.Identity, _ identity.Request, _ access.Scope) {}},
	{"input.identity.method", func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
		writeString(b, string(id.Method))
	}},
	{"input.identity.refreshed_from", func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
		writeString(b, string(id.RefreshedFrom))
	}},
	{"input.identity.provider", func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
		writeString(b, id.Provider)
	}},
	{"input.identity.subject", func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
		writeString(b, id.Subject)
	}},
	{"input.identity.namespace", func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
		writeString(b, id.Namespace)
	}},
	{"input.identity.groups", func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
		writeStrings(b, id.Groups)
	}},
	{"input.identity.sourcehut.username", func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
		b.WriteString(strconv.FormatBool(id.Sourcehut != nil))
		writeString(b, sourcehutOf(id).Username)
	}},
	{"input.identity.sourcehut.client_id", func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
		b.WriteString(strconv.FormatBool(id.Sourcehut != nil))
		writeString(b, sourcehutOf(id).ClientID)
	}},
	{"input.identity.sourcehut.expires", func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
		b.WriteString(strconv.FormatBool(id.Sourcehut != nil))
		writeString(b, sourcehutOf(id).Expires.UTC().Format(time.RFC3339))
	}},
	{"input.identity.sourcehut.all_grants", func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
		b.WriteString(strconv.FormatBool(id.Sourcehut != nil))
		b.WriteString(strconv.FormatBool(sourcehutOf(id).AllGrants))
	}},
	{"input.identity.sourcehut.access", func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
		b.WriteString(strconv.FormatBool(id.Sourcehut != nil))
		writeString(b, sourcehutOf(id).Access)
	}},
	{"input.identity.sourcehut.grants", func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
		grants := sourcehutOf(id).Grants
		b.WriteString(strconv.FormatBool(id.Sourcehut != nil))
		b.WriteString(strconv.Itoa(len(grants)))
		for _, g := range grants {
			writeString(b, g.Service)
			writeString(b, g.Scope)
			writeString(b, g.Access)
		}
	}},
	{"input.identity.oidc.issuer", func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
		b.WriteString(strconv.FormatBool(id.OIDC != nil))
		writeString(b, oidcOf(id).Issuer)
	}},
	{claimsLeaf, func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
		writeClaims(b, id, nil)
	}},
	{"input.request.service", func(b *strings.Builder, _ identity.Identity, req identity.Request, _ access.Scope) {
		writeString(b, req.Service)
	}},
	{"input.request.client_ip", func(b *strings.Builder, _ identity.Identity, req identity.Request, _ access.Scope) {
		writeString(b, req.ClientIP)
	}},
	{"input.request.client_id", func(b *strings.Builder, _ identity.Identity, req identity.Request, _ access.Scope) {
		writeString(b, req.ClientID)
	}},
	{"input.request.user_agent", func(b *strings.Builder, _ identity.Identity, req identity.Request, _ access.Scope) {
		writeString(b, req.UserAgent)
	}},
	{"input.request.time", nil}, // never memoised: see newMemo
	{"input.scope.type", func(b *strings.Builder, _ identity.Identity, _ identity.Request, sc access.Scope) {
		writeString(b, sc.Type)
	}},
	{"input.scope.class", func(b *strings.Builder, _ identity.Identity, _ identity.Request, sc access.Scope) {
		writeString(b, sc.Class)
	}},
	{"input.scope.name", func(b *strings.Builder, _ identity.Identity, _ identity.Request, sc access.Scope) {
		writeString(b, sc.Name)
	}},
	{"input.scope.actions", func(b *strings.Builder, _ identity.Identity, _ identity.Request, sc access.Scope) {
		writeStrings(b, sc.Actions)
	}},
}

// newMemo analyses the modules a query evaluates and returns a memo keyed
// by the input fields they read, or nil when their answers must not be
// reused.
func newMemo(modules []*ast.Module) *memo {
	a := analyse(modules)
	if a.nondeterministic || a.read["input.request.time"] {
		return nil
	}
	m := &memo{}
	for _, l := range inputLeaves {
		if a.read[l.path] && l.write != nil {
			m.leaves = append(m.leaves, l)
		}
	}
	if a.read[claimsLeaf] && !a.allClaims {
		m.claims = slices.Sorted(maps.Keys(a.claims))
		names := m.claims
		for i, l := range m.leaves {
			if l.path == claimsLeaf {
				m.leaves[i].write = func(b *strings.Builder, id identity.Identity, _ identity.Request, _ access.Scope) {
					writeClaims(b, id, names)
				}
			}
		}
	}
	m.scopeFrom = len(m.leaves)
	for i, l := range m.leaves {
		if strings.HasPrefix(l.path, "input.scope.") {
			m.scopeFrom = i
			break
		}
	}
	m.cache, _ = lru.New[string, memoEntry](memoSize)
	return m
}

// analysis is what a policy may read of its input.
type analysis struct {
	// read are the input leaves it may read.
	read map[string]bool
	// claims are the OIDC claims it reads by name
	// (input.identity.oidc.claims.ref reads "ref"); allClaims: it reads
	// the claims whole (input.identity.oidc, a function of the claims
	// object) or by a key not known before evaluation (claims[name]).
	claims    map[string]bool
	allClaims bool
	// nondeterministic: it calls a non-deterministic built-in.
	nondeterministic bool
}

// analyse finds the input the modules may read, and whether they call a
// non-deterministic built-in.
func analyse(modules []*ast.Module) analysis {
	a := analysis{read: map[string]bool{}, claims: map[string]bool{}}
	for _, m := range modules {
		for _, imp := range m.Imports {
			if ref, ok := imp.Path.Value.(ast.Ref); ok {
				a.markRead(ref)
			}
		}
		ast.WalkRefs(m, func(ref ast.Ref) bool {
			a.markRead(ref)
			return false
		})
		// A call is an expression (f(x)) or, nested, a term (f(g(x))).
		isNondeterministic := func(op ast.Ref) bool {
			b, ok := ast.BuiltinMap[op.String()]
			return ok && b.Nondeterministic
		}
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if e.IsCall() && isNondeterministic(e.Operator()) {
				a.nondeterministic = true
			}
			return false
		})
		ast.WalkTerms(m, func(t *ast.Term) bool {
			if call, ok := t.Value.(ast.Call); ok && len(call) > 0 {
				if op, ok := call[0].Value.(ast.Ref); ok && isNondeterministic(op) {
					a.nondeterministic = true
				}
			}
			return false
		})
	}
	return a
}

var claimsPath = strings.Split(claimsLeaf, ".")

// isPrefix reports whether p is a prefix of (or equal to) q.
func isPrefix(p, q []string) bool { return len(p) <= len(q) && slices.Equal(p, q[:len(p)]) }

// markRead records the input leaves a reference may read.
func (a *analysis) markRead(ref ast.Ref) {
	if len(ref) == 0 || !ref[0].Equal(ast.InputRootDocument) {
		return
	}
	// The static prefix: input.a.b up to the first non-string term. Kept
	// as segments: a claim's name may hold a dot ("kubernetes.io").
	path := []string{"input"}
	for _, t := range ref[1:] {
		s, ok := t.Value.(ast.String)
		if !ok {
			break
		}
		path = append(path, string(s))
	}
	for _, l := range inputLeaves {
		// The leaf is below the path read (input.identity reads them
		// all), or the path reads below the leaf.
		leaf := strings.Split(l.path, ".")
		if isPrefix(path, leaf) || isPrefix(leaf, path) {
			a.read[l.path] = true
		}
	}
	switch {
	case len(path) > len(claimsPath) && isPrefix(claimsPath, path):
		a.claims[path[len(claimsPath)]] = true
	case isPrefix(path, claimsPath):
		a.allClaims = true
	}
}

// identityKey is the part of a key that is the same for every scope of a
// token request: the fields of input.identity, input.request and
// input.version the policy reads. It also keys the caller's identity
// values (see rememberedRules).
func (m *memo) identityKey(id identity.Identity, req identity.Request) string {
	var b strings.Builder
	for _, l := range m.leaves[:m.scopeFrom] {
		l.write(&b, id, req, access.Scope{})
		b.WriteByte('|')
	}
	return b.String()
}

// key is the key of one scope's decision: identityKey and the scope's
// fields the policy reads.
func (m *memo) key(identityKey string, sc access.Scope) string {
	var b strings.Builder
	b.Grow(len(identityKey) + 64)
	b.WriteString(identityKey)
	for _, l := range m.leaves[m.scopeFrom:] {
		l.write(&b, identity.Identity{}, identity.Request{}, sc)
		b.WriteByte('|')
	}
	return b.String()
}

func (m *memo) get(key string) (memoEntry, bool) { return m.cache.Get(key) }

func (m *memo) add(key string, e memoEntry) {
	m.cache.Add(key, memoEntry{allowed: slices.Clip(e.allowed), allowDefined: e.allowDefined, denied: slices.Clip(e.denied)})
}

package authz

import (
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

func sourcehutOf(id identity.Identity) identity.Sourcehut {
	if id.Sourcehut == nil {
		return identity.Sourcehut{}
	}
	return *id.Sourcehut
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
	read, nondeterministic := analyse(modules)
	if nondeterministic || read["input.request.time"] {
		return nil
	}
	m := &memo{}
	for _, l := range inputLeaves {
		if read[l.path] && l.write != nil {
			m.leaves = append(m.leaves, l)
		}
	}
	m.cache, _ = lru.New[string, memoEntry](memoSize)
	return m
}

// analyse returns the input leaves the modules may read, and whether they
// call a non-deterministic built-in.
func analyse(modules []*ast.Module) (read map[string]bool, nondeterministic bool) {
	read = map[string]bool{}
	for _, m := range modules {
		for _, imp := range m.Imports {
			if ref, ok := imp.Path.Value.(ast.Ref); ok {
				markRead(read, ref)
			}
		}
		ast.WalkRefs(m, func(ref ast.Ref) bool {
			markRead(read, ref)
			return false
		})
		// A call is an expression (f(x)) or, nested, a term (f(g(x))).
		isNondeterministic := func(op ast.Ref) bool {
			b, ok := ast.BuiltinMap[op.String()]
			return ok && b.Nondeterministic
		}
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if e.IsCall() && isNondeterministic(e.Operator()) {
				nondeterministic = true
			}
			return false
		})
		ast.WalkTerms(m, func(t *ast.Term) bool {
			if call, ok := t.Value.(ast.Call); ok && len(call) > 0 {
				if op, ok := call[0].Value.(ast.Ref); ok && isNondeterministic(op) {
					nondeterministic = true
				}
			}
			return false
		})
	}
	return read, nondeterministic
}

// markRead records the input leaves a reference may read.
func markRead(read map[string]bool, ref ast.Ref) {
	if len(ref) == 0 || !ref[0].Equal(ast.InputRootDocument) {
		return
	}
	// The static prefix: input.a.b up to the first non-string term.
	path := "input"
	for _, t := range ref[1:] {
		s, ok := t.Value.(ast.String)
		if !ok {
			break
		}
		path += "." + string(s)
	}
	for _, l := range inputLeaves {
		// The leaf is below the path read (input.identity reads them
		// all), or the path reads below the leaf.
		if l.path == path || strings.HasPrefix(l.path, path+".") || strings.HasPrefix(path, l.path+".") {
			read[l.path] = true
		}
	}
}

func (m *memo) key(id identity.Identity, req identity.Request, sc access.Scope) string {
	var b strings.Builder
	for _, l := range m.leaves {
		l.write(&b, id, req, sc)
		b.WriteByte('|')
	}
	return b.String()
}

func (m *memo) get(key string) (memoEntry, bool) { return m.cache.Get(key) }

func (m *memo) add(key string, e memoEntry) {
	m.cache.Add(key, memoEntry{allowed: slices.Clip(e.allowed), allowDefined: e.allowDefined, denied: slices.Clip(e.denied)})
}

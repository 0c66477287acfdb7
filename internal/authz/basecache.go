package authz

import (
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

var _ topdown.BaseCache = (*baseCache)(nil)

// baseCache is OPA's cache of the base documents (data) one evaluation has
// read from the store (topdown.BaseCache), as a list: OPA's own is a trie
// with a map per ref term, allocated anew for each evaluation, and an
// evaluation reads a handful of documents. It answers as OPA's does: a read
// of ref is answered by the document put at the shortest prefix of ref
// (the document itself, or the part of it at the rest of ref); putting a
// document replaces what was put at or below its ref.
type baseCache struct {
	entries []baseEntry
}

type baseEntry struct {
	ref   ast.Ref
	value ast.Value
}

// hasPrefix reports whether p is a prefix of (or equal to) ref, comparing
// ref terms as OPA's trie does (as map keys).
func hasPrefix(ref, p ast.Ref) bool {
	if len(p) > len(ref) {
		return false
	}
	for i := range p {
		if !sameKey(p[i].Value, ref[i].Value) {
			return false
		}
	}
	return true
}

// sameKey is Go's equality of two map keys of type ast.Value, without its
// panic for a value that is not comparable (which is never equal here).
func sameKey(a, b ast.Value) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

func (c *baseCache) Get(ref ast.Ref) ast.Value {
	var best *baseEntry
	for i := range c.entries {
		e := &c.entries[i]
		if e.value != nil && hasPrefix(ref, e.ref) && (best == nil || len(e.ref) < len(best.ref)) {
			best = e
		}
	}
	switch {
	case best == nil:
		return nil
	case len(ref) == 1 && ast.IsScalar(best.value):
		return best.value
	}
	result, err := best.value.Find(ref[len(best.ref):])
	if err != nil {
		return nil
	}
	return result
}

func (c *baseCache) Put(ref ast.Ref, value ast.Value) {
	kept := c.entries[:0]
	for _, e := range c.entries {
		if !hasPrefix(e.ref, ref) {
			kept = append(kept, e)
		}
	}
	clear(c.entries[len(kept):])
	// OPA may reuse the ref's slice: keep a copy.
	c.entries = append(kept, baseEntry{ref: append(ast.Ref(nil), ref...), value: value})
}

func (c *baseCache) reset() {
	clear(c.entries)
	c.entries = c.entries[:0]
}

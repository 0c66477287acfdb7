package authz

import (
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

var (
	_ topdown.VirtualCache = (*virtualCache)(nil)
	_ topdown.VirtualCache = (*evalCache)(nil)
)

// virtualCache is OPA's virtual cache (topdown.VirtualCache: the values of
// the rules one evaluation has computed so far, a frame per `with`) as a
// flat list per frame. OPA's own is a trie with a hash map per ref term
// (data, registry, authz, the rule): four to six allocations for each rule
// an evaluation looks at, a quarter of a decision's. A decision looks at a
// few dozen rules, so a list scanned by hash is as fast to search. It
// answers as OPA's does: a value or undefined (sticky: once a ref is put
// undefined it stays so in its frame) for a ref put in the current frame,
// nothing for any other, prefixes included.
type virtualCache struct {
	frames [][]cacheEntry // the last is the current frame
	// terms back the entries' refs: OPA reuses the slice of the ref it
	// puts, never the terms in it.
	terms []*ast.Term
}

type cacheEntry struct {
	hash      int
	ref       ast.Ref
	value     *ast.Term
	undefined bool
}

func newVirtualCache() *virtualCache {
	c := &virtualCache{frames: make([][]cacheEntry, 1, 2), terms: make([]*ast.Term, 0, 64)}
	c.frames[0] = make([]cacheEntry, 0, 16)
	return c
}

// reset empties the cache for another evaluation, keeping its memory and
// dropping every reference into the last one.
func (c *virtualCache) reset() {
	clear(c.frames[0])
	clear(c.terms)
	for i := 1; i < len(c.frames); i++ {
		c.frames[i] = nil
	}
	c.frames, c.terms = c.frames[:1], c.terms[:0]
	c.frames[0] = c.frames[0][:0]
}

func (c *virtualCache) Push() { c.frames = append(c.frames, nil) }

func (c *virtualCache) Pop() {
	c.frames[len(c.frames)-1] = nil
	c.frames = c.frames[:len(c.frames)-1]
}

func (c *virtualCache) find(ref ast.Ref, hash int) *cacheEntry {
	frame := c.frames[len(c.frames)-1]
	for i := range frame {
		if frame[i].hash == hash && frame[i].ref.Equal(ref) {
			return &frame[i]
		}
	}
	return nil
}

func (c *virtualCache) Get(ref ast.Ref) (*ast.Term, bool) { return c.get(ref, ref.Hash()) }

func (c *virtualCache) Put(ref ast.Ref, value *ast.Term) { c.put(ref, value, ref.Hash()) }

func (c *virtualCache) get(ref ast.Ref, hash int) (*ast.Term, bool) {
	e := c.find(ref, hash)
	switch {
	case e == nil:
		return nil, false
	case e.undefined:
		return nil, true
	}
	return e.value, false
}

func (c *virtualCache) put(ref ast.Ref, value *ast.Term, hash int) {
	e := c.find(ref, hash)
	if e == nil {
		start := len(c.terms)
		c.terms = append(c.terms, ref...)
		top := len(c.frames) - 1
		c.frames[top] = append(c.frames[top], cacheEntry{hash: hash, ref: c.terms[start:len(c.terms):len(c.terms)]})
		e = &c.frames[top][len(c.frames[top])-1]
	}
	if value != nil {
		e.value = value
	} else {
		e.undefined = true
	}
}

// Keys are the refs with a value in the current frame.
func (c *virtualCache) Keys() []ast.Ref {
	var keys []ast.Ref
	for _, e := range c.frames[len(c.frames)-1] {
		if e.value != nil {
			keys = append(keys, e.ref)
		}
	}
	return keys
}

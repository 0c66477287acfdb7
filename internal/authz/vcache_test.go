package authz

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// TestVirtualCacheAnswersAsOPAs: random sequences of Put, Get, Push, Pop
// and Keys on the flat virtual cache and on OPA's own give the same
// answers (refs drawn from a small set, prefixes of one another included,
// values and undefined mixed, and the ref slice reused after a Put as OPA
// does).
func TestVirtualCacheAnswersAsOPAs(t *testing.T) {
	refs := []ast.Ref{
		ast.MustParseRef("data.registry.authz.allow"),
		ast.MustParseRef("data.registry.authz.granted"),
		ast.MustParseRef("data.registry.authz"),
		ast.MustParseRef("data.registry.authz.allow.pull"),
		ast.MustParseRef("data.registry.authz.f").Append(ast.StringTerm("x")).Append(ast.IntNumberTerm(1)),
		ast.MustParseRef("data.registry.authz.f").Append(ast.StringTerm("x")).Append(ast.IntNumberTerm(2)),
		ast.MustParseRef("data.other.allow"),
	}
	values := []*ast.Term{nil, ast.StringTerm("a"), ast.SetTerm(ast.StringTerm("pull")), ast.BooleanTerm(true)}
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 16))
		ours, theirs := newVirtualCache(), topdown.NewVirtualCache()
		depth := 0
		for step := range 60 {
			ref := refs[rng.IntN(len(refs))]
			switch op := rng.IntN(10); {
			case op < 4:
				v := values[rng.IntN(len(values))]
				// OPA reuses the ref's slice after a Put.
				reused := slices.Clone(ref)
				ours.Put(reused, v)
				theirs.Put(slices.Clone(ref), v)
				for i := range reused {
					reused[i] = ast.StringTerm("overwritten")
				}
			case op < 8:
				v1, u1 := ours.Get(ref)
				v2, u2 := theirs.Get(ref)
				if u1 != u2 || !v1.Equal(v2) && (v1 != nil || v2 != nil) {
					t.Fatalf("seed %d step %d: Get(%v) = %v, %t; OPA's: %v, %t", seed, step, ref, v1, u1, v2, u2)
				}
			case op == 8 && depth < 3:
				ours.Push()
				theirs.Push()
				depth++
			case op == 8 && depth > 0, op == 9 && depth > 0:
				ours.Pop()
				theirs.Pop()
				depth--
			default:
				if got, want := refStrings(ours.Keys()), refStrings(theirs.Keys()); !slices.Equal(got, want) {
					t.Fatalf("seed %d step %d: Keys() = %v; OPA's: %v", seed, step, got, want)
				}
			}
		}
		ours.reset()
		if v, u := ours.Get(refs[0]); v != nil || u || len(ours.Keys()) != 0 || len(ours.frames) != 1 {
			t.Fatalf("seed %d: a reset cache still answers", seed)
		}
	}
}

func refStrings(refs []ast.Ref) []string {
	var out []string
	for _, r := range refs {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return out
}

// TestBaseCache: the base cache answers as OPA's trie does: a read is
// answered by the document at the shortest prefix of its ref that has
// one, and a Put replaces what was put at or below its ref.
func TestBaseCache(t *testing.T) {
	doc := ast.MustParseTerm(`{"public": ["library/*"], "namespaces": {"team": {"pull": ["*"]}}}`).Value
	team := ast.MustParseTerm(`{"pull": ["bob"]}`).Value
	ref := ast.MustParseRef
	for _, c := range []struct {
		name string
		puts []baseEntry
		get  ast.Ref
		want string // "" for nil
	}{
		{"empty", nil, ref("data.registry"), ""},
		{"exact", []baseEntry{{ref("data.registry"), doc}}, ref("data.registry"), doc.String()},
		{"below a document", []baseEntry{{ref("data.registry"), doc}}, ref("data.registry.namespaces.team.pull"), `["*"]`},
		{"missing below a document", []baseEntry{{ref("data.registry"), doc}}, ref("data.registry.reserved"), ""},
		{"above a document", []baseEntry{{ref("data.registry.namespaces"), doc}}, ref("data.registry"), ""},
		{"shorter prefix wins", []baseEntry{{ref("data.registry.namespaces.team"), team}, {ref("data.registry"), doc}},
			ref("data.registry.namespaces.team"), `{"pull": ["*"]}`},
		{"a put replaces what is below", []baseEntry{{ref("data.registry"), doc}, {ref("data.registry"), ast.NewObject()}},
			ref("data.registry.public"), ""},
		{"a longer put under a document", []baseEntry{{ref("data.registry"), doc}, {ref("data.registry.namespaces.team"), team}},
			ref("data.registry.namespaces.team"), `{"pull": ["*"]}`},
		{"nil put", []baseEntry{{ref("data.registry.namespaces.team"), team}, {ref("data.registry.namespaces"), nil}},
			ref("data.registry.namespaces.team"), ""},
		{"scalar at the root", []baseEntry{{ref("data"), ast.String("x")}}, ref("data"), `"x"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var bc baseCache
			for _, p := range c.puts {
				r := slices.Clone(p.ref)
				bc.Put(r, p.value)
				r[0] = ast.VarTerm("overwritten")
			}
			got := bc.Get(c.get)
			if s := fmt.Sprint(got); (got == nil) != (c.want == "") || got != nil && s != c.want {
				t.Errorf("Get(%v) = %v, want %q", c.get, got, c.want)
			}
			bc.reset()
			if bc.Get(c.get) != nil {
				t.Error("a reset cache still answers")
			}
		})
	}
}

package authz

import "testing"

func TestDataPath(t *testing.T) {
	doc := map[string]any{"registry": map[string]any{
		"namespaces": map[string]any{
			"team":         map[string]any{"push": []any{"a", "b"}, "*": []any{"c"}},
			"alice/shared": map[string]any{},
			"0":            []any{[]any{"x"}},
		},
		"push-networks": []any{"x"},
	}}
	for _, tt := range []struct {
		loc  []string
		want string
	}{
		{nil, ""},
		{[]string{"registry"}, "registry"},
		{[]string{"registry", "publc"}, "registry.publc"},
		{[]string{"registry", "namespaces", "team", "push", "1"}, "registry.namespaces.team.push[1]"},
		{[]string{"registry", "namespaces", "team", "*", "0"}, `registry.namespaces.team["*"][0]`},
		{[]string{"registry", "namespaces", "alice/shared", "pull"}, `registry.namespaces["alice/shared"].pull`},
		// A key that looks like an index is a key in a map.
		{[]string{"registry", "namespaces", "0", "0", "0"}, `registry.namespaces["0"][0][0]`},
		{[]string{"registry", "push-networks", "0"}, `registry["push-networks"][0]`},
		// Below a missing value: keys stay keys.
		{[]string{"registry", "nothing", "here"}, "registry.nothing.here"},
	} {
		if got := dataPath(doc, tt.loc); got != tt.want {
			t.Errorf("dataPath(%q) = %s, want %s", tt.loc, got, tt.want)
		}
	}
}

func TestClosest(t *testing.T) {
	keys := []string{"namespaces", "public", "reserved"}
	for in, want := range map[string]string{
		"publc":      "public",
		"pubilc":     "public",
		"Public":     "public",
		"namespace":  "namespaces",
		"namespacs":  "namespaces",
		"reseved":    "reserved",
		"reserve":    "reserved",
		"private":    "",
		"groups":     "",
		"x":          "",
		"namespaces": "namespaces",
	} {
		if got := closest(in, keys); got != want {
			t.Errorf("closest(%q) = %q, want %q", in, got, want)
		}
	}
	// Short words are not typos of each other.
	if got := closest("ab", []string{"*"}); got != "" {
		t.Errorf(`closest("ab", ["*"]) = %q`, got)
	}
	if got := closest("psuh", []string{"*", "delete", "pull", "push"}); got != "push" {
		t.Errorf(`closest("psuh") = %q, want push`, got)
	}
}

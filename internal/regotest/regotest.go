// Package regotest holds what the Go tests of Rego policies share: reading
// the results of OPA's tester, and comparing a policy's data with its data
// schema. It is imported only by _test.go files.
package regotest

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// RequireAllPass fails t for every Rego test in results that failed, errored
// or was skipped (a todo_ test counts as not run), and when none ran.
func RequireAllPass(t testing.TB, results <-chan *tester.Result) {
	t.Helper()
	ran := 0
	for r := range results {
		ran++
		switch {
		case r.Error != nil:
			t.Errorf("%s.%s (%s): error: %v", r.Package, r.Name, r.Location, r.Error)
		case r.Skip:
			t.Errorf("%s.%s (%s): skipped (todo_ prefix): every test must run", r.Package, r.Name, r.Location)
		case r.Fail:
			t.Errorf("%s.%s (%s): FAIL", r.Package, r.Name, r.Location)
		}
	}
	if ran == 0 {
		t.Fatal("no Rego tests ran")
	}
	t.Logf("%d Rego tests ran", ran)
}

// RegistryKeysRead lists the keys of data.registry that modules read,
// other than their own packages under it: what a data schema must allow.
func RegistryKeysRead(modules []*ast.Module) []string {
	keys := map[string]bool{}
	packages := map[string]bool{}
	registry := ast.MustParseRef("data.registry")
	for _, m := range modules {
		if p := m.Package.Path; len(p) > len(registry) && p.HasPrefix(registry) {
			packages[string(p[len(registry)].Value.(ast.String))] = true
		}
		ast.WalkRefs(m, func(r ast.Ref) bool {
			if len(r) > len(registry) && r.HasPrefix(registry) {
				if s, ok := r[len(registry)].Value.(ast.String); ok {
					keys[string(s)] = true
				}
			}
			return false
		})
	}
	for p := range packages {
		delete(keys, p)
	}
	return slices.Sorted(maps.Keys(keys))
}

// RegistryKeysAllowed lists the keys a data schema allows under registry,
// and fails t when the schema leaves that object open to other keys.
func RegistryKeysAllowed(t testing.TB, schema []byte) []string {
	t.Helper()
	var s struct {
		Properties struct {
			Registry struct {
				AdditionalProperties *bool          `json:"additionalProperties"`
				Properties           map[string]any `json:"properties"`
			} `json:"registry"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(schema, &s); err != nil {
		t.Fatal(err)
	}
	reg := s.Properties.Registry
	if reg.AdditionalProperties == nil || *reg.AdditionalProperties {
		t.Error("the data schema's registry object is not closed (additionalProperties: false)")
	}
	return slices.Sorted(maps.Keys(reg.Properties))
}

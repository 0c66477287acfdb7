package authz

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// ErrNoAllow marks a policy that defines no allow rule at the query path: it
// would never grant anything, so it is refused when it is loaded.
var ErrNoAllow = errors.New("nothing would ever be granted")

// checkAllow makes sure the modules define the allow rule the query reads
// (query "" is DefaultQuery): a misspelt rule, a wrong package or a
// policy.query naming the wrong package would otherwise load fine and deny
// everything. Any rule at or above <query>.allow counts, whatever its kind
// or value type (a wrong-typed allow fails loudly at request time).
func checkAllow(modules []*ast.Module, query string) error {
	if query == "" {
		query = DefaultQuery
	}
	pkg, err := ast.ParseRef(query)
	if err != nil {
		return fmt.Errorf("policy query %q: %w", query, err)
	}
	allow := pkg.Append(ast.StringTerm("allow"))
	name := strings.TrimPrefix(pkg.String(), "data.")

	var inPackage, packages []string
	declared := false
	for _, m := range modules {
		if m == nil || m.Package == nil {
			continue
		}
		if m.Package.Path.Equal(pkg) {
			declared = true
		}
		packages = append(packages, strings.TrimPrefix(m.Package.Path.String(), "data."))
		for _, r := range m.Rules {
			p := m.Package.Path.Extend(r.Head.Ref().GroundPrefix())
			if p.HasPrefix(allow) || (allow.HasPrefix(p) && len(p) > 1) {
				return nil
			}
			if len(p) > len(pkg) && p.HasPrefix(pkg) {
				declared = true
				if s, ok := p[len(pkg)].Value.(ast.String); ok {
					inPackage = append(inPackage, string(s))
				}
			}
		}
	}
	if !declared {
		slices.Sort(packages)
		packages = slices.Compact(packages)
		found := "no modules"
		if len(packages) > 0 {
			found = "found: " + strings.Join(packages, ", ")
		}
		if m := closest(name, packages); m != "" {
			found += fmt.Sprintf("; is %q misspelt?", m)
		}
		return fmt.Errorf("policy: no module declares package %s, where allow is read (%s); %w", name, found, ErrNoAllow)
	}
	slices.Sort(inPackage)
	inPackage = slices.Compact(inPackage)
	found := "no rules"
	if len(inPackage) > 0 {
		found = "found: " + strings.Join(inPackage, ", ")
	}
	if m := closest("allow", inPackage); m != "" {
		found += fmt.Sprintf("; is %q misspelt?", m)
	}
	return fmt.Errorf("policy: package %s has no allow rule (%s); %w", name, found, ErrNoAllow)
}

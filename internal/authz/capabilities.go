package authz

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// CapabilitiesKey is the configuration key that lists the built-ins a
// policy may call although they are denied by default.
const CapabilitiesKey = "policy.capabilities.allow_builtins"

// deniedBuiltins are the built-ins no policy may call unless the operator
// allows them by name, each with why: every token request evaluates the
// policy, so whatever a built-in does, any client can make the server do,
// up to once per requested scope.
var deniedBuiltins = []struct{ name, why string }{
	{"http.send", "it makes the server send HTTP requests, which any client could then trigger"},
	{"net.lookup_ip_addr", "it makes the server resolve DNS names, which any client could then trigger"},
	{"opa.runtime", "in OPA it returns the process environment and configuration; srht-registry gives it none, and denies it so that no policy comes to rely on it"},
}

// DeniedBuiltins returns the built-ins denied by default, which
// Options.AllowBuiltins and RemoteOptions.AllowBuiltins may allow.
func DeniedBuiltins() []string {
	names := make([]string, len(deniedBuiltins))
	for i, d := range deniedBuiltins {
		names[i] = d.name
	}
	return names
}

// checkAllowBuiltins refuses a name that is not a built-in denied by
// default: allowing it would mean nothing, and it is most likely a typo.
func checkAllowBuiltins(allow []string) error {
	denied := DeniedBuiltins()
	for _, name := range allow {
		if !slices.Contains(denied, name) {
			return fmt.Errorf("%s: %q is not a built-in denied by default (those are %s)", CapabilitiesKey, name, strings.Join(denied, ", "))
		}
	}
	return nil
}

// capabilities are OPA's capabilities of this version without the denied
// built-ins that allow does not list: the compiler then refuses a policy
// that calls one.
func capabilities(allow []string) *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(slices.Clone(c.Builtins), func(b *ast.Builtin) bool {
		return slices.ContainsFunc(deniedBuiltins, func(d struct{ name, why string }) bool { return d.name == b.Name }) &&
			!slices.Contains(allow, b.Name)
	})
	return c
}

// ErrDeniedBuiltin is wrapped by the error of a policy that calls a
// built-in denied by default.
var ErrDeniedBuiltin = errors.New("the policy calls a built-in that is denied by default")

// checkBuiltins returns an error naming each call of a denied built-in that
// allow does not list, with where it is and how to allow it. The compiler
// refuses such a policy too (capabilities), but as "undefined function".
func checkBuiltins(modules []*ast.Module, allow []string) error {
	var problems []string
	seen := map[string]bool{}
	var names []string
	check := func(t *ast.Term, loc *ast.Location) {
		if t == nil {
			return
		}
		ref, ok := t.Value.(ast.Ref)
		if !ok {
			return
		}
		name := ref.String()
		i := slices.IndexFunc(deniedBuiltins, func(d struct{ name, why string }) bool { return d.name == name })
		if i < 0 || slices.Contains(allow, name) {
			return
		}
		if loc == nil {
			loc = t.Location
		}
		where := "a module"
		if loc != nil {
			where = fmt.Sprintf("%s:%d", loc.File, loc.Row)
		}
		problems = append(problems, fmt.Sprintf("%s calls %s", where, name))
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	for _, m := range modules {
		ast.NewGenericVisitor(func(x any) bool {
			switch x := x.(type) {
			case *ast.Expr:
				if x.IsCall() {
					check(x.OperatorTerm(), x.Location)
				}
				for _, w := range x.With {
					check(w.Target, w.Location)
				}
			case ast.Call:
				if len(x) > 0 {
					check(x[0], nil)
				}
			}
			return false
		}).Walk(m)
	}
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	problems = slices.Compact(problems)
	slices.Sort(names)
	var why []string
	for _, n := range names {
		for _, d := range deniedBuiltins {
			if d.name == n {
				why = append(why, n+": "+d.why)
			}
		}
	}
	it := "it"
	if len(names) > 1 {
		it = "them"
	}
	return fmt.Errorf("%w: %s (%s); to allow %s, list %[4]s in %s, e.g. allow_builtins: [%s]",
		ErrDeniedBuiltin, strings.Join(problems, ", "), strings.Join(why, "; "), it, CapabilitiesKey, strings.Join(names, ", "))
}

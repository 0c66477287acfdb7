// Package regotest holds what the Go tests of Rego policies share: reading
// the results of OPA's tester. It is imported only by _test.go files.
package regotest

import (
	"testing"

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

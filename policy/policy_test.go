package policy_test

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"

	"git.sr.ht/~zozs/srht-registry/internal/regotest"
	"git.sr.ht/~zozs/srht-registry/policy"
)

// loadModules parses every .rego file in fsys as Rego v1, keyed by path.
func loadModules(t *testing.T, fsys fs.FS) map[string]*ast.Module {
	t.Helper()
	modules := map[string]*ast.Module{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return err
		}
		modules[name] = m
		return nil
	})
	if err != nil {
		t.Fatalf("loading policy: %v", err)
	}
	return modules
}

// TestRego runs the Rego tests beside the default policy, as `opa test
// policy/` does, and fails naming each Rego test that did not pass.
func TestRego(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	modules := loadModules(t, policy.TestFS())
	ch, err := tester.NewRunner().
		SetModules(modules).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).
		SetTimeout(10*time.Second).
		RunTests(ctx, nil)
	if err != nil {
		t.Fatalf("compiling policy and tests: %v", err)
	}

	regotest.RequireAllPass(t, ch)
}

// TestFSExcludesTests checks that the FS the server evaluates holds the
// policy and none of its tests, and behaves as a well-formed fs.FS.
func TestFSExcludesTests(t *testing.T) {
	fsys := policy.FS()
	if err := fstest.TestFS(fsys, "authz.rego"); err != nil {
		t.Fatal(err)
	}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if policy.IsTestFile(name) {
			t.Errorf("FS() lists test file %s", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(fsys, "authz_test.rego"); err == nil {
		t.Error("FS() opens authz_test.rego")
	}
	// The modules FS() yields compile on their own: no test rule is needed
	// by the policy, and there is something to evaluate.
	modules := loadModules(t, fsys)
	if len(modules) == 0 {
		t.Fatal("FS() holds no policy")
	}
	c := ast.NewCompiler()
	if c.Compile(modules); c.Failed() {
		t.Fatalf("compiling FS(): %v", c.Errors)
	}
}

// TestTestFSIncludesTests checks that TestFS, unlike FS, has the tests.
func TestTestFSIncludesTests(t *testing.T) {
	if err := fstest.TestFS(policy.TestFS(), "authz.rego", "authz_test.rego"); err != nil {
		t.Fatal(err)
	}
}

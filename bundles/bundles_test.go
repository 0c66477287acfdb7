package bundles

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	"git.sr.ht/~zozs/srht-registry/internal/authz"
	"git.sr.ht/~zozs/srht-registry/internal/regotest"
)

// schemaPath is the JSON schema of the policy input (version 2).
const schemaPath = "../policy/input.schema.json"

// wantBundles must exist; more may.
var wantBundles = []string{"sourcehut-default", "teams", "public-mirror", "conditions", "github-actions", "gitlab-ci", "kubernetes"}

// bundleDirs lists the subdirectories of this directory: one bundle each.
func bundleDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs
}

// load reads dir as OPA does for `opa test -b dir`.
func load(t *testing.T, dir string) *bundle.Bundle {
	t.Helper()
	b, err := loader.NewFileLoader().
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		WithSkipBundleVerification(true).
		AsBundle(dir)
	if err != nil {
		t.Fatalf("loading bundle: %v", err)
	}
	return b
}

// inputSchema returns the input schema as a schema set for the compiler.
func inputSchema(t *testing.T) *ast.SchemaSet {
	t.Helper()
	raw, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var schema any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("%s: %v", schemaPath, err)
	}
	schemas := ast.NewSchemaSet()
	schemas.Put(ast.SchemaRootRef, schema)
	return schemas
}

// compileWithSchema type-checks modules (path -> source) against the input
// schema and returns the compiler's errors.
func compileWithSchema(t *testing.T, sources map[string]string) ast.Errors {
	t.Helper()
	modules := map[string]*ast.Module{}
	for path, src := range sources {
		m, err := ast.ParseModuleWithOpts(path, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("parsing %s: %v", path, err)
		}
		modules[path] = m
	}
	c := ast.NewCompiler().WithSchemas(inputSchema(t))
	c.Compile(modules)
	return c.Errors
}

func isTestFile(path string) bool { return strings.HasSuffix(path, "_test.rego") }

func TestExpectedBundles(t *testing.T) {
	dirs := bundleDirs(t)
	for _, want := range wantBundles {
		if !slices.Contains(dirs, want) {
			t.Errorf("bundle %s is missing (have %v)", want, dirs)
		}
	}
}

func TestBundles(t *testing.T) {
	for _, dir := range bundleDirs(t) {
		t.Run(dir, func(t *testing.T) {
			b := load(t, dir)
			checkManifest(t, b)
			checkLayout(t, b)
			checkSchema(t, b)
			checkDataSchema(t, dir, b)
			runRegoTests(t, dir, b)
		})
	}
}

// checkManifest: a revision, roots exactly ["registry"], Rego v1.
func checkManifest(t *testing.T, b *bundle.Bundle) {
	t.Helper()
	m := b.Manifest
	if m.Revision == "" {
		t.Error(".manifest: no revision")
	}
	if m.Roots == nil || !slices.Equal(*m.Roots, []string{"registry"}) {
		t.Errorf(".manifest: roots = %v, want [registry]", m.Roots)
	}
	if m.RegoVersion == nil || *m.RegoVersion != 1 {
		t.Errorf(".manifest: rego_version = %v, want 1", m.RegoVersion)
	}
}

// checkLayout: data under data.registry, with no key named authz (the
// policy's own package lives there), and a policy in package
// registry.authz with allow, plus tests.
func checkLayout(t *testing.T, b *bundle.Bundle) {
	t.Helper()
	for k := range b.Data {
		if k != "registry" {
			t.Errorf("data.json: top-level key %q outside the registry root", k)
		}
	}
	if reg, ok := b.Data["registry"].(map[string]any); ok {
		if _, clash := reg["authz"]; clash {
			t.Error("data.json: registry.authz would clash with the policy package")
		}
	}
	var policies, tests int
	for _, m := range b.Modules {
		pkg := m.Parsed.Package.Path.String()
		if isTestFile(m.Path) {
			tests++
			continue
		}
		policies++
		if pkg != "data.registry.authz" {
			t.Errorf("%s: package %s, want registry.authz", m.Path, pkg)
			continue
		}
		hasAllow := false
		for _, r := range m.Parsed.Rules {
			if r.Head.Ref().String() == "allow" {
				hasAllow = true
			}
		}
		if !hasAllow {
			t.Errorf("%s: no allow rule", m.Path)
		}
	}
	if policies == 0 {
		t.Error("no policy module")
	}
	if tests == 0 {
		t.Error("no _test.rego module")
	}
}

// checkSchema type-checks the bundle's policy modules (not its tests)
// against the input schema, as the server does when it loads the bundle.
func checkSchema(t *testing.T, b *bundle.Bundle) {
	t.Helper()
	sources := map[string]string{}
	for _, m := range b.Modules {
		if !isTestFile(m.Path) {
			sources[m.Path] = string(m.Raw)
		}
	}
	if errs := compileWithSchema(t, sources); len(errs) > 0 {
		t.Errorf("type check against %s: %v", schemaPath, errs)
	}
}

// runRegoTests runs the bundle's Rego tests like `opa test -b dir`, with
// built-in errors raised as the server raises them, and fails per failing
// Rego test.
func runRegoTests(t *testing.T, dir string, b *bundle.Bundle) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	store := inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false))
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Abort(ctx, txn)

	ch, err := tester.NewRunner().
		SetStore(store).
		SetBundles(map[string]*bundle.Bundle{dir: b}).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).
		SetTimeout(10*time.Second).
		RunTests(ctx, txn)
	if err != nil {
		t.Fatalf("compiling bundle and tests: %v", err)
	}
	regotest.RequireAllPass(t, ch)
}

// TestSchemaCatchesTypos: a policy reading a field the input does not have
// fails to compile, and the error names the file and line.
func TestSchemaCatchesTypos(t *testing.T) {
	const src = `package registry.authz

allow contains "pull" if {
	input.identity.subjekt == "alice"
}
`
	errs := compileWithSchema(t, map[string]string{"typo.rego": src})
	if len(errs) == 0 {
		t.Fatal("a policy reading input.identity.subjekt compiled")
	}
	msg := errs.Error()
	for _, want := range []string{"typo.rego:4", "subjekt"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if loc := errs[0].Location; loc == nil || loc.File != "typo.rego" || loc.Row != 4 {
		t.Errorf("error location = %v, want typo.rego:4", loc)
	}
}

// TestSchemaCatchesNestedTypos: every object is closed, also deep ones.
func TestSchemaCatchesNestedTypos(t *testing.T) {
	for _, ref := range []string{
		"input.versoin",
		"input.identity.sourcehut.acess",
		"input.identity.oidc.isuer",
		"input.identity.oidc.claim",
		"input.identity.sourcehut.grants[0].servise",
		"input.request.clientip",
		"input.scope.klass",
	} {
		errs := compileWithSchema(t, map[string]string{"nested.rego": readsRef(ref)})
		if len(errs) == 0 {
			t.Errorf("a policy reading %s compiled", ref)
		} else if !strings.Contains(errs.Error(), "undefined ref") {
			t.Errorf("a policy reading %s: %v, want an undefined ref error", ref, errs)
		}
	}
	// The same refs spelt right compile: the errors above are the typos'.
	for _, ref := range []string{
		"input.version",
		"input.identity.sourcehut.access",
		"input.identity.sourcehut.grants[0].service",
		"input.identity.oidc.issuer",
		"input.identity.oidc.claims.anything",
		`input.identity.oidc.claims["kubernetes.io"].namespace`,
		"input.request.client_ip",
		"input.scope.class",
	} {
		if errs := compileWithSchema(t, map[string]string{"nested.rego": readsRef(ref)}); len(errs) > 0 {
			t.Errorf("a policy reading %s: %v", ref, errs)
		}
	}
}

func readsRef(ref string) string {
	return "package registry.authz\n\nallow contains \"pull\" if " + ref + "\n"
}

// TestSchemaValidatesInputs checks the schema against documents shaped as
// the server builds them (valid) and against near misses (invalid), with
// OPA's json.match_schema.
func TestSchemaValidatesInputs(t *testing.T) {
	raw, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var schema any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pq, err := rego.New(rego.Query("[ok, errs] := json.match_schema(input.doc, input.schema)")).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	match := func(doc string) (bool, any) {
		t.Helper()
		var d any
		if err := json.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("test input %s: %v", doc, err)
		}
		rs, err := pq.Eval(ctx, rego.EvalInput(map[string]any{"doc": d, "schema": schema}))
		if err != nil || len(rs) != 1 {
			t.Fatalf("json.match_schema: %v, %v", rs, err)
		}
		return rs[0].Bindings["ok"].(bool), rs[0].Bindings["errs"]
	}

	const request = `"request": {"service": "registry.example.com", "client_ip": "192.0.2.1", "client_id": "docker", "user_agent": "docker/27.0", "time": "2026-11-30T12:00:00Z"}`
	const scope = `"scope": {"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}`
	const sourcehut = `"sourcehut": {"username": "alice", "client_id": "", "expires": "2026-11-30T12:45:00Z", "all_grants": false, "access": "RW",
		"grants": [{"service": "registry.example.com", "scope": "REGISTRY", "access": "RW"}]}`
	const oidc = `"oidc": {"issuer": "https://token.actions.githubusercontent.com", "claims": {"sub": "repo:octo-org/app:ref:refs/heads/main",
		"repository": "octo-org/app", "ref": "refs/heads/main", "iat": 1764504000, "aud": ["registry.example.com"], "draft": false, "nested": {"a": null}}}`
	doc := func(identity string, rest ...string) string {
		parts := append([]string{`"version": 2`, `"identity": ` + identity}, rest...)
		return "{" + strings.Join(parts, ", ") + "}"
	}

	valid := map[string]string{
		"anonymous":     doc(`{"method": "anonymous", "subject": "", "groups": []}`, request, scope),
		"password":      doc(`{"method": "password", "provider": "htpasswd", "subject": "alice", "namespace": "alice", "groups": ["ci", "admins"]}`, request, scope),
		"sourcehut":     doc(`{"method": "sourcehut", "provider": "sourcehut", "subject": "alice", "namespace": "alice", "groups": [], `+sourcehut+`}`, request, scope),
		"personal":      doc(`{"method": "sourcehut", "provider": "sourcehut", "subject": "alice", "namespace": "alice", "groups": [], "sourcehut": {"username": "alice", "client_id": "", "expires": "2027-01-01T00:00:00Z", "all_grants": true, "access": "RW", "grants": []}}`, request, scope),
		"no namespace":  doc(`{"method": "sourcehut", "provider": "sourcehut", "subject": "alice", "groups": [], `+sourcehut+`}`, request, scope),
		"refresh":       doc(`{"method": "refresh", "refreshed_from": "sourcehut", "provider": "sourcehut", "subject": "alice", "namespace": "alice", "groups": [], `+sourcehut+`}`, request, scope),
		"oidc":          doc(`{"method": "oidc", "provider": "github", "subject": "repo:octo-org/app:ref:refs/heads/main", "groups": [], `+oidc+`}`, request, scope),
		"oidc refresh":  doc(`{"method": "refresh", "refreshed_from": "oidc", "provider": "k8s", "subject": "system:serviceaccount:ci:builder", "groups": ["ci"], "oidc": {"issuer": "https://k8s.example.com", "claims": {"kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "builder"}}}}}`, request, scope),
		"class":         doc(`{"method": "password", "provider": "htpasswd", "subject": "alice", "namespace": "alice", "groups": []}`, request, `"scope": {"type": "repository", "class": "plugin", "name": "alice/app", "actions": ["pull"]}`),
		"catalog":       doc(`{"method": "password", "provider": "htpasswd", "subject": "root", "namespace": "root", "groups": ["admins"]}`, request, `"scope": {"type": "registry", "name": "catalog", "actions": ["*"]}`),
		"empty strings": doc(`{"method": "anonymous", "subject": "", "groups": []}`, `"request": {"service": "registry.example.com", "client_ip": "", "client_id": "", "user_agent": "", "time": "2026-11-30T12:00:00Z"}`, scope),
	}
	for name, d := range valid {
		if ok, errs := match(d); !ok {
			t.Errorf("valid input %q does not match the schema: %v", name, errs)
		}
	}

	password := `{"method": "password", "provider": "htpasswd", "subject": "alice", "namespace": "alice", "groups": []}`
	invalid := map[string]string{
		"version 1":              `{"version": 1, "identity": ` + password + `, ` + request + `, ` + scope + `}`,
		"provider pattern":       doc(`{"method": "password", "provider": "HTpasswd", "subject": "alice", "groups": []}`, request, scope),
		"provider empty":         doc(`{"method": "password", "provider": "", "subject": "alice", "groups": []}`, request, scope),
		"namespace type":         doc(`{"method": "password", "provider": "htpasswd", "subject": "alice", "namespace": 1, "groups": []}`, request, scope),
		"no version":             `{"identity": ` + password + `, ` + request + `, ` + scope + `}`,
		"extra top-level":        doc(password, request, scope, `"extra": true`),
		"no scope":               doc(password, request),
		"unknown method":         doc(`{"method": "ldap", "subject": "alice", "groups": []}`, request, scope),
		"refreshed from refresh": doc(`{"method": "refresh", "refreshed_from": "refresh", "provider": "htpasswd", "subject": "alice", "groups": []}`, request, scope),
		"oidc without claims":    doc(`{"method": "oidc", "provider": "github", "subject": "repo:o/r:ref:refs/heads/main", "groups": [], "oidc": {"issuer": "https://token.actions.githubusercontent.com"}}`, request, scope),
		"oidc claims a list":     doc(`{"method": "oidc", "provider": "github", "subject": "x", "groups": [], "oidc": {"issuer": "https://i", "claims": []}}`, request, scope),
		"oidc extra":             doc(`{"method": "oidc", "provider": "github", "subject": "x", "groups": [], "oidc": {"issuer": "https://i", "claims": {}, "token": "x"}}`, request, scope),
		"no groups":              doc(`{"method": "password", "subject": "alice"}`, request, scope),
		"identity typo":          doc(`{"method": "password", "subjekt": "alice", "groups": []}`, request, scope),
		"sourcehut access":       doc(`{"method": "sourcehut", "subject": "alice", "groups": [], "sourcehut": {"username": "alice", "client_id": "", "expires": "2027-01-01T00:00:00Z", "all_grants": true, "access": "ALL", "grants": []}}`, request, scope),
		"sourcehut missing":      doc(`{"method": "sourcehut", "subject": "alice", "groups": [], "sourcehut": {"username": "alice"}}`, request, scope),
		"grant extra":            doc(`{"method": "sourcehut", "subject": "alice", "groups": [], "sourcehut": {"username": "alice", "client_id": "", "expires": "2027-01-01T00:00:00Z", "all_grants": false, "access": "RW", "grants": [{"service": "s", "scope": "REGISTRY", "access": "RW", "x": 1}]}}`, request, scope),
		"request extra":          doc(password, `"request": {"service": "s", "client_ip": "", "client_id": "", "user_agent": "", "time": "2026-11-30T12:00:00Z", "referer": ""}`, scope),
		"request time":           doc(password, `"request": {"service": "s", "client_ip": "", "client_id": "", "user_agent": "", "time": "yesterday"}`, scope),
		"actions not a list":     doc(password, request, `"scope": {"type": "repository", "name": "alice/app", "actions": "pull"}`),
	}
	for name, d := range invalid {
		if ok, _ := match(d); ok {
			t.Errorf("invalid input %q matches the schema", name)
		}
	}
}

// TestBundleFilesAreFormatted keeps the examples in `opa fmt` style, since
// operators copy them.
func TestBundleFilesAreFormatted(t *testing.T) {
	files, err := filepath.Glob("*/*.rego")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no .rego files")
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		formatted, err := format.Source(f, src)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if !bytes.Equal(formatted, src) {
			t.Errorf("%s is not formatted: run opa fmt -w %s", f, f)
		}
	}
}

// TestSourcehutDefaultIsTheDefault: the sourcehut-default bundle is the
// embedded default policy as a bundle; its rules (everything from the
// package line on) must not drift from policy/authz.rego.
func TestSourcehutDefaultIsTheDefault(t *testing.T) {
	rules := func(path string) string {
		t.Helper()
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(src, []byte("\npackage "))
		if i < 0 {
			t.Fatalf("%s has no package line", path)
		}
		return string(src[i:])
	}
	if rules("sourcehut-default/authz.rego") != rules("../policy/authz.rego") {
		t.Error("bundles/sourcehut-default/authz.rego differs from policy/authz.rego below its header comment; copy the rules over")
	}
}

// checkDataSchema: every example bundle ships a data schema
// (data.schema.json), its data.json matches it, and it allows exactly the
// keys of data.registry the bundle's policy reads, in a closed object.
func checkDataSchema(t *testing.T, dir string, b *bundle.Bundle) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, authz.BundleDataSchema))
	if err != nil {
		t.Errorf("no data schema: %v", err)
		return
	}
	s, err := authz.CompileDataSchema(raw)
	if err != nil {
		t.Errorf("%s: %v", authz.BundleDataSchema, err)
		return
	}
	if err := s.Check("data.json", b.Data); err != nil {
		t.Errorf("data.json does not match %s: %v", authz.BundleDataSchema, err)
	}
	allowed := regotest.RegistryKeysAllowed(t, raw)
	if read := registryKeys(b); !slices.Equal(read, allowed) {
		t.Errorf("the policy reads data.registry keys %v; %s allows %v", read, authz.BundleDataSchema, allowed)
	}
}

// registryKeys lists the keys of data.registry that the bundle's policy
// (not its tests) reads.
func registryKeys(b *bundle.Bundle) []string {
	var modules []*ast.Module
	for _, m := range b.Modules {
		if !isTestFile(m.Path) {
			modules = append(modules, m.Parsed)
		}
	}
	return regotest.RegistryKeysRead(modules)
}

// TestSourcehutDefaultSchemaIsTheDefault: the sourcehut-default bundle's
// data is the default policy's, and so is its schema.
func TestSourcehutDefaultSchemaIsTheDefault(t *testing.T) {
	bundled, err := os.ReadFile(filepath.Join("sourcehut-default", authz.BundleDataSchema))
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := os.ReadFile("../policy/data.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bundled, embedded) {
		t.Error("bundles/sourcehut-default/data.schema.json differs from policy/data.schema.json; copy it over")
	}
}

// copyBundle copies a bundle directory, replacing its data.json with data.
func copyBundle(t *testing.T, dir string, data map[string]any) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		src, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "data.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// readData reads a bundle's data.json afresh (a copy to change).
func readData(t *testing.T, dir string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	return data
}

// typo misspells a key the way fingers do: one letter dropped.
func typo(key string) string {
	i := len(key) - 2
	return key[:i] + key[i+1:]
}

// firstString finds the first string inside a list in v, by sorted keys,
// and returns the path to it (as the server's messages write it) and a
// setter to replace it.
func firstString(v any, path string) (string, func(any), bool) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			p := path + "." + k
			if !identifierRE.MatchString(k) {
				p = path + "[" + strconv.Quote(k) + "]"
			}
			if p, set, ok := firstString(x[k], p); ok {
				return p, set, true
			}
		}
	case []any:
		for i, e := range x {
			if _, ok := e.(string); ok {
				return fmt.Sprintf("%s[%d]", path, i), func(nv any) { x[i] = nv }, true
			}
			if p, set, ok := firstString(e, fmt.Sprintf("%s[%d]", path, i)); ok {
				return p, set, true
			}
		}
	}
	return "", nil, false
}

var identifierRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// TestBundleDataTyposRefused: in every example bundle, a misspelt key of
// data.json and a value of the wrong type are refused when the server
// loads the bundle, naming the path.
func TestBundleDataTyposRefused(t *testing.T) {
	for _, dir := range bundleDirs(t) {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			// The bundle as it is loads.
			if _, err := authz.Compile(context.Background(), authz.LocalPolicy(nil, []string{dir}, "", 0)); err != nil {
				t.Fatalf("the bundle itself: %v", err)
			}
			keys := slices.Sorted(maps.Keys(readData(t, dir)["registry"].(map[string]any)))
			for _, key := range keys {
				data := readData(t, dir)
				reg := data["registry"].(map[string]any)
				reg[typo(key)] = reg[key]
				delete(reg, key)
				_, err := authz.LoadBundle(copyBundle(t, dir, data))
				want := fmt.Sprintf("data: registry.%s: unknown key (did you mean %q?)", typo(key), key)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s misspelt %s: error %v, want %s", key, typo(key), err, want)
				}

				data = readData(t, dir)
				data["registry"].(map[string]any)[key] = 42
				_, err = authz.LoadBundle(copyBundle(t, dir, data))
				want = fmt.Sprintf("data: registry.%s: must be a ", key)
				if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "not a number") {
					t.Errorf("%s a number: error %v, want %s…, not a number", key, err, want)
				}
			}
			// A string deep inside, replaced by a number.
			data := readData(t, dir)
			path, set, ok := firstString(data, "")
			if !ok {
				t.Fatal("data.json holds no string in a list")
			}
			set(42)
			_, err := authz.Compile(context.Background(), authz.LocalPolicy(nil, []string{copyBundle(t, dir, data)}, "", 0))
			want := fmt.Sprintf("data: %s: must be a string, not a number", strings.TrimPrefix(path, "."))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s a number: error %v, want %s", path, err, want)
			}
		})
	}
}

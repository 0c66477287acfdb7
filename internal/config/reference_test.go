package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// referencePath is the page whose first YAML block is the configuration
// reference: every key, with its default or an example value and a comment.
const referencePath = "../../docs/configuration.md"

// referenceBlock returns the first ```yaml block of docs/configuration.md.
func referenceBlock(t *testing.T) string {
	t.Helper()
	page, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?ms)^```yaml\n(.*?)^```$").FindSubmatch(page)
	if m == nil {
		t.Fatalf("%s has no ```yaml block", referencePath)
	}
	return string(m[1])
}

// TestReferenceIsAValidConfig parses the reference block as a configuration
// file: it must hold no unknown key, no value of the wrong type and nothing
// Validate refuses, so every value it shows can be copied as it is.
func TestReferenceIsAValidConfig(t *testing.T) {
	if _, err := Parse([]byte(referenceBlock(t))); err != nil {
		t.Fatalf("the reference in %s is not a valid config:\n%v", referencePath, err)
	}
}

// TestReferenceListsEveryKey compares the key paths of the reference block
// with those of the Config struct (its yaml tags): every key of Config must
// be in the reference, and every key of the reference in Config. Maps
// (groups, policy.data, policy.opa) are free-form: their own keys are
// examples, not part of the comparison.
func TestReferenceListsEveryKey(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(referenceBlock(t)), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		t.Fatalf("the reference is not one YAML document")
	}
	inReference := map[string]bool{}
	var unknown []string
	referenceKeys(doc.Content[0], reflect.TypeFor[Config](), "", inReference, &unknown)
	for _, k := range unknown {
		t.Errorf("%s lists %s, which is no key of config.Config", referencePath, k)
	}
	all := structKeys(reflect.TypeFor[Config](), "")
	for _, k := range all {
		if !inReference[k] {
			t.Errorf("%s does not list %s (a key of config.Config)", referencePath, k)
		}
	}
	if len(all) < 60 {
		t.Errorf("config.Config has only %d key paths: the walk missed some", len(all))
	}
}

// structKeys returns every key path of the struct type t, as dotted yaml
// keys: a nested struct gives its own path and those of its fields, a list
// of structs its own path and those of its elements' fields as
// "path[].field"; any other field (a scalar, a duration, a list of scalars,
// a map) is a leaf.
func structKeys(t reflect.Type, prefix string) []string {
	var out []string
	fields, names := yamlFields(t)
	for _, name := range names {
		key := prefix + name
		out = append(out, key)
		switch ft := deref(fields[name]); {
		case ft.Kind() == reflect.Struct:
			out = append(out, structKeys(ft, key+".")...)
		case ft.Kind() == reflect.Slice && deref(ft.Elem()).Kind() == reflect.Struct:
			out = append(out, structKeys(deref(ft.Elem()), key+"[].")...)
		}
	}
	return out
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// referenceKeys walks the mapping n against the struct type t, recording
// each key path of n in seen (an element of a list of structs as
// "path[].field"), and in unknown those t has no field for.
func referenceKeys(n *yaml.Node, t reflect.Type, prefix string, seen map[string]bool, unknown *[]string) {
	if n.Kind != yaml.MappingNode {
		*unknown = append(*unknown, strings.TrimSuffix(prefix, ".")+" (not a mapping)")
		return
	}
	fields, _ := yamlFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := prefix + n.Content[i].Value
		seen[key] = true
		ft, ok := fields[n.Content[i].Value]
		if !ok {
			*unknown = append(*unknown, key)
			continue
		}
		switch ft, v := deref(ft), n.Content[i+1]; {
		case ft.Kind() == reflect.Struct:
			referenceKeys(v, ft, key+".", seen, unknown)
		case ft.Kind() == reflect.Slice && deref(ft.Elem()).Kind() == reflect.Struct && v.Kind == yaml.SequenceNode:
			for _, e := range v.Content {
				referenceKeys(e, deref(ft.Elem()), key+"[].", seen, unknown)
			}
		}
	}
}

// TestStructKeys checks the walk itself on a few paths of each kind.
func TestStructKeys(t *testing.T) {
	keys := structKeys(reflect.TypeFor[Config](), "")
	for _, want := range []string{"listen", "service", "token", "token.refresh", "token.refresh.ttl",
		"token.published_keys", "authn.sourcehut.users", "groups", "policy.data", "policy.opa", "limits.shutdown_delay"} {
		if !slices.Contains(keys, want) {
			t.Errorf("structKeys lacks %s", want)
		}
	}
	for _, not := range []string{"groups.admins", "policy.data.public", "token.refresh.enabled.x"} {
		if slices.Contains(keys, not) {
			t.Errorf("structKeys has %s", not)
		}
	}
}

// TestReferenceKeysWalk checks both walks on a type with a pointer to a
// struct and a list of structs, and a reference that misses and invents keys.
func TestReferenceKeysWalk(t *testing.T) {
	type item struct {
		Name string   `yaml:"name"`
		TTL  Duration `yaml:"ttl"`
	}
	type inner struct {
		On *bool `yaml:"on"`
	}
	type doc struct {
		Items []item         `yaml:"items"`
		In    *inner         `yaml:"in"`
		Free  map[string]any `yaml:"free"`
		List  []string       `yaml:"list"`
	}
	got := structKeys(reflect.TypeFor[doc](), "")
	want := []string{"items", "items[].name", "items[].ttl", "in", "in.on", "free", "list"}
	if !slices.Equal(got, want) {
		t.Errorf("structKeys = %v, want %v", got, want)
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("items:\n  - name: a\n    size: 1\nin: {on: true}\nfree: {any: {thing: 1}}\n"), &n); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var unknown []string
	referenceKeys(n.Content[0], reflect.TypeFor[doc](), "", seen, &unknown)
	if !slices.Equal(unknown, []string{"items[].size"}) {
		t.Errorf("unknown = %v, want [items[].size]", unknown)
	}
	for _, k := range []string{"items", "items[].name", "in", "in.on", "free"} {
		if !seen[k] {
			t.Errorf("%s not seen", k)
		}
	}
	for _, k := range []string{"items[].ttl", "list", "free.any"} {
		if seen[k] {
			t.Errorf("%s seen", k)
		}
	}
}

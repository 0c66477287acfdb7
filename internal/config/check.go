package config

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"git.sr.ht/~zozs/srht-registry/internal/suggest"
)

// Parse reads a document twice: as a node tree that checkDocument walks
// against the Config type, and then into a Config with yaml's own decoder.
// The walk is what reports mistakes, all of them and in the file's words:
// "line 4: authn.htpaswd: unknown key (did you mean "htpasswd"?)" instead
// of yaml's "field htpaswd not found in type config.Authn", which stops at
// the mapping it is in and names Go types. The decoder stays strict
// (KnownFields), so a mistake the walk missed is still an error.

// maxVisits bounds the values checkDocument looks at, aliases expanded: a
// few lines of anchors can stand for billions of values. Before that, a
// document whose values come mostly from aliases is refused by yaml's own
// rule (see tooManyAliases).
const maxVisits = 1_000_000

// problem is one mistake in the document.
type problem struct {
	line int
	path string // the YAML key path, "" for the document itself
	text string // the whole message, "line N: path: ..."
	// wrongType is set for a value that could not be decoded, which leaves
	// the Config's default (or, in a list, no element) at path.
	wrongType bool
}

// checker walks a YAML node tree against the Go type it is decoded into,
// collecting problems: unknown keys (with the closest known key), values of
// the wrong type, keys written twice, and what policy.data cannot hold.
type checker struct {
	problems  []problem
	visits    int
	aliased   int // visits of values reached through an alias
	inAlias   int // how many aliases the value being visited is reached through
	exhausted bool
	inside    map[*yaml.Node]bool // the mappings and lists being walked, to stop at an alias of one
	// policyData is policy.data as JSON-shaped values (see jsonValue), nil
	// when the document has none.
	policyData map[string]any
}

// checkDocument checks a document node against Config. Its problems are in
// document order.
func checkDocument(doc *yaml.Node) *checker {
	c := &checker{inside: make(map[*yaml.Node]bool)}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		c.value(doc.Content[0], reflect.TypeFor[Config](), "")
	}
	slices.SortStableFunc(c.problems, func(a, b problem) int { return a.line - b.line })
	return c
}

func (c *checker) add(line int, path, format string, args ...any) {
	c.addProblem(false, line, path, format, args...)
}

func (c *checker) addProblem(wrongType bool, line int, path, format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	if path != "" {
		text = path + ": " + text
	}
	c.problems = append(c.problems, problem{line: line, path: path, text: fmt.Sprintf("line %d: %s", line, text), wrongType: wrongType})
}

// mismatch reports a value of the wrong type: "must be WANT, not GOT".
func (c *checker) mismatch(line int, path, want string, n *yaml.Node) {
	if path == "" {
		c.addProblem(true, line, path, "the configuration must be %s (like listen: and token:), not %s", want, describe(n))
		return
	}
	c.addProblem(true, line, path, "must be %s, not %s", want, describe(n))
}

// texts returns the problems' messages.
func (c *checker) texts() []string {
	out := make([]string, len(c.problems))
	for i, p := range c.problems {
		out[i] = p.text
	}
	return out
}

// enter counts a visit to n and follows it if it is an alias. It returns
// the node to look at and a func to call when done with it, or ok == false
// when n must not be looked at: an alias inside the value it stands for
// (which would never end), or past maxVisits (both reported).
func (c *checker) enter(n *yaml.Node, path string) (_ *yaml.Node, leave func(), ok bool) {
	if c.exhausted {
		return nil, nil, false
	}
	c.visits++
	if c.inAlias > 0 || n.Kind == yaml.AliasNode {
		c.aliased++
	}
	if c.visits > maxVisits || tooManyAliases(c.visits, c.aliased) {
		c.exhausted = true
		c.add(n.Line, "", "the document expands to too many values through its aliases")
		return nil, nil, false
	}
	alias := n
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			c.add(alias.Line, path, "alias *%s stands for nothing", alias.Value)
			return nil, nil, false
		}
		n = n.Alias
	}
	container := n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode
	if container && c.inside[n] {
		c.add(alias.Line, path, "alias *%s is inside the value it stands for", alias.Value)
		return nil, nil, false
	}
	viaAlias := alias != n
	if viaAlias {
		c.inAlias++
	}
	if container {
		c.inside[n] = true
	}
	return n, func() {
		if viaAlias {
			c.inAlias--
		}
		if container {
			delete(c.inside, n)
		}
	}, true
}

// tooManyAliases is yaml's rule against documents that expand to far more
// values than they hold (its decoder's allowedAliasRatio): beyond 1000
// values, at most 99% may come from aliases, falling to 10% from 400,000
// values to 4,000,000.
func tooManyAliases(visits, aliased int) bool {
	if aliased <= 100 || visits <= 1000 {
		return false
	}
	const low, high = 400_000, 4_000_000
	ratio := 0.99
	switch {
	case visits >= high:
		ratio = 0.10
	case visits > low:
		ratio = 0.99 - 0.89*float64(visits-low)/float64(high-low)
	}
	return float64(aliased)/float64(visits) > ratio
}

var (
	durationType    = reflect.TypeFor[Duration]()
	serviceListType = reflect.TypeFor[ServiceList]()
	stringType      = reflect.TypeFor[string]()
)

// value checks the node n, at the key path, against the type t.
func (c *checker) value(n *yaml.Node, t reflect.Type, path string) {
	line := n.Line // an alias's own line: where the value is used
	n, leave, ok := c.enter(n, path)
	if !ok {
		return
	}
	defer leave()
	if n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // null leaves the default, for every type
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case durationType:
		if _, msg := durationOf(n); msg != "" {
			c.addProblem(true, line, path, "%s", msg)
		}
		return
	case serviceListType:
		switch n.Kind {
		case yaml.ScalarNode:
			c.scalar(n, line, stringType, path)
		case yaml.SequenceNode:
			c.list(n, stringType, path)
		default:
			c.mismatch(line, path, "a string or a list of strings", n)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.mismatch(line, path, "a mapping of keys", n)
			return
		}
		c.structure(n, t, path)
	case reflect.Slice:
		switch n.Kind {
		case yaml.SequenceNode:
		case yaml.ScalarNode:
			c.addProblem(true, line, path, "must be a list of %s, not %s (a list of one is written [%s])", plural(t.Elem()), describe(n), quote(n.Value))
			return
		default:
			c.mismatch(line, path, "a list of "+plural(t.Elem()), n)
			return
		}
		c.list(n, t.Elem(), path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.mismatch(line, path, "a mapping", n)
			return
		}
		if path == "policy.data" {
			c.policyData, _ = c.jsonNode(n, line, path).(map[string]any)
			return
		}
		c.eachKey(n, path, func(name string, _, v *yaml.Node) {
			c.value(v, t.Elem(), path+"."+name)
		})
	case reflect.Interface:
		c.free(n, path)
	default:
		c.scalar(n, line, t, path)
	}
}

// scalar checks that n decodes into a value of the scalar type t. An
// integer must be written as one: yaml would truncate 1.5 to 1.
func (c *checker) scalar(n *yaml.Node, line int, t reflect.Type, path string) {
	want := describeType(t)
	if n.Kind != yaml.ScalarNode {
		c.mismatch(line, path, want, n)
		return
	}
	isInt := slices.Contains([]reflect.Kind{
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
	}, t.Kind())
	err := n.Decode(reflect.New(t).Interface())
	fraction := isInt && n.ShortTag() == "!!float" // decoded, but truncated
	switch {
	case err == nil && !fraction:
	case isInt && n.ShortTag() == "!!int":
		c.addProblem(true, line, path, "%s is out of range", quote(n.Value))
	default:
		c.mismatch(line, path, want, n)
	}
}

// list checks every element of the sequence n against elem.
func (c *checker) list(n *yaml.Node, elem reflect.Type, path string) {
	for i, e := range n.Content {
		c.value(e, elem, fmt.Sprintf("%s[%d]", path, i))
	}
}

// structure checks the mapping n against the struct type t: every key must
// be one of t's yaml keys.
func (c *checker) structure(n *yaml.Node, t reflect.Type, path string) {
	fields, names := yamlFields(t)
	c.eachKey(n, path, func(name string, k, v *yaml.Node) {
		if name == "" {
			c.add(k.Line, path, "empty key")
			return
		}
		key := joinPath(path, name)
		ft, ok := fields[name]
		if !ok {
			c.add(k.Line, key, "unknown key%s", suggestion(name, names))
			return
		}
		c.value(v, ft, key)
	})
}

// free checks a value of any shape (policy.opa): only keys written twice
// and keys that are not scalars are mistakes.
func (c *checker) free(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		c.eachKey(n, path, func(name string, _, v *yaml.Node) {
			if v, leave, ok := c.enter(v, path+"."+name); ok {
				c.free(v, path+"."+name)
				leave()
			}
		})
	case yaml.SequenceNode:
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if e, leave, ok := c.enter(e, p); ok {
				c.free(e, p)
				leave()
			}
		}
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			c.add(n.Line, path, "%s cannot be read as %s", quote(n.Value), n.Tag)
		}
	}
}

// jsonValue converts a YAML node to the JSON-shaped values OPA stores:
// map[string]any, []any, string, bool, nil, int/int64/uint64, finite
// float64, reporting (with the key path and line) what has no such value.
// Decoding into map[string]any directly would turn a mapping with a
// non-string key into a map[any]any and an unquoted date into a time.Time,
// which OPA would reject or silently turn into a different string.
func (c *checker) jsonValue(n *yaml.Node, path string) any {
	line := n.Line
	n, leave, ok := c.enter(n, path)
	if !ok {
		return nil
	}
	defer leave()
	return c.jsonNode(n, line, path)
}

// jsonNode is jsonValue for a node entered already.
func (c *checker) jsonNode(n *yaml.Node, line int, path string) any {
	switch n.Kind {
	case 0:
		return nil // absent
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			out = append(out, c.jsonValue(e, fmt.Sprintf("%s[%d]", path, i)))
		}
		return out
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		c.eachKey(n, path, func(name string, k, v *yaml.Node) {
			if k := resolveAlias(k); k.ShortTag() != "!!str" {
				c.add(k.Line, path, "key %q is not a string; quote it", k.Value)
				return
			}
			out[name] = c.jsonValue(v, path+"."+name)
		})
		return out
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str", "!!timestamp":
			// Dates stay the strings they were written as.
			return n.Value
		}
		var v any
		if err := n.Decode(&v); err != nil {
			c.add(line, path, "%s cannot be read as %s", quote(n.Value), n.Tag)
			return nil
		}
		if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			c.add(line, path, "%s is not a JSON number", n.Value)
			return nil
		}
		return v
	}
	c.add(line, path, "unsupported YAML node")
	return nil
}

// eachKey calls f for every key of the mapping n with its value, as yaml
// decodes them: the keys written in n first, then those merged in with
// "<<" that are not set yet (an earlier merge source wins over a later
// one). name is the key as a string, "" for a null key. It reports keys
// written twice, keys that are not scalars, and merges of something other
// than mappings.
func (c *checker) eachKey(n *yaml.Node, path string, f func(name string, k, v *yaml.Node)) {
	c.keys(n, path, make(map[string]bool), f)
}

func (c *checker) keys(n *yaml.Node, path string, set map[string]bool, f func(name string, k, v *yaml.Node)) {
	first := make(map[string]int) // the line of each key written in n, by its text
	var merge *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		rk := resolveAlias(k)
		if rk.Kind != yaml.ScalarNode {
			c.add(k.Line, path, "a key must be a string, not %s", describe(rk))
			continue
		}
		name := rk.Value
		if line, dup := first[name]; dup {
			c.add(k.Line, joinPath(path, name), "key written twice (first at line %d)", line)
			continue
		}
		first[name] = k.Line
		if isMergeKey(k) {
			merge = v
			continue
		}
		if rk.ShortTag() == "!!null" {
			name = ""
		}
		if set[name] {
			continue // set by the mapping this one is merged into
		}
		set[name] = true
		f(name, k, v)
	}
	if merge != nil {
		c.merge(merge, path, set, f)
	}
}

// merge walks the value of a "<<" key: a mapping, or a list of mappings.
func (c *checker) merge(m *yaml.Node, path string, set map[string]bool, f func(name string, k, v *yaml.Node)) {
	line := m.Line
	m, leave, ok := c.enter(m, path)
	if !ok {
		return
	}
	defer leave()
	switch m.Kind {
	case yaml.MappingNode:
		c.keys(m, path, set, f)
		return
	case yaml.SequenceNode:
		for _, s := range m.Content {
			line := s.Line
			s, leave, ok := c.enter(s, path)
			if !ok {
				continue
			}
			if s.Kind == yaml.MappingNode {
				c.keys(s, path, set, f)
			} else {
				c.addProblem(true, line, joinPath(path, "<<"), "a merge needs a mapping or a list of mappings, not %s", describe(s))
			}
			leave()
		}
		return
	}
	c.addProblem(true, line, joinPath(path, "<<"), "a merge needs a mapping or a list of mappings, not %s", describe(m))
}

// isMergeKey reports whether k is "<<" as yaml merges it.
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge")
}

// resolveAlias returns the node an alias stands for (n itself if it is
// none).
func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// yamlFields returns the yaml keys of the struct type t, mapped to their
// field types, and the keys in field order.
func yamlFields(t reflect.Type) (map[string]reflect.Type, []string) {
	fields := make(map[string]reflect.Type, t.NumField())
	var names []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
		names = append(names, name)
	}
	return fields, names
}

// suggestion returns ` (did you mean "KEY"?)` for the known key closest to
// name, or "" when none is close.
func suggestion(name string, known []string) string {
	if best, ok := suggest.Closest(name, known); ok {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// joinPath appends key to the key path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe says what a node is, for "must be X, not <describe>": the value
// quoted, "a list" or "a mapping".
func describe(n *yaml.Node) string {
	n = resolveAlias(n)
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return quote(n.Value)
	}
	return "nothing"
}

// describeType says what a scalar type's values are, for "must be ...".
func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer of 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a " + t.Kind().String() // a kind, never a named Go type
}

// plural names the values of a list's element type.
func plural(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "strings"
	case reflect.Bool:
		return "booleans"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integers"
	case reflect.Float32, reflect.Float64:
		return "numbers"
	case reflect.Struct, reflect.Map:
		return "mappings"
	case reflect.Slice:
		return "lists"
	}
	return "values"
}

// quote quotes a value for a message, cut short when long.
func quote(s string) string {
	const maxLen = 40
	if len(s) > maxLen {
		k := maxLen - 3
		for k > 0 && !utf8.RuneStart(s[k]) {
			k--
		}
		s = s[:k] + "..."
	}
	return strconv.Quote(s)
}

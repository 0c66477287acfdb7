package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"git.sr.ht/~zozs/srht-registry/internal/suggest"
)

// BundleDataSchema is the file at the root of a local bundle (directory or
// .tar.gz) that, when present, is the JSON schema of the bundle's data: the
// whole data document, {"registry": {…}}, as the bundle's data.json files
// make it. LoadBundle refuses a bundle whose data does not match it.
const BundleDataSchema = "data.schema.json"

// schemaURL is where a data schema is registered with the schema compiler;
// it only names the document in the compiler's errors.
const schemaURL = "mem:///data.schema.json"

// DataError is data that does not match its schema: one DataProblem per
// mismatch, each naming the key path in the data.
type DataError struct {
	// Source names the data: "policy data", "bundle <path>: data".
	Source string
	// Problems are sorted by path.
	Problems []DataProblem
}

// DataProblem is one mismatch.
type DataProblem struct {
	// Path is the value's place in the data document, written as a
	// reference below data: registry.namespaces.team.push[0],
	// registry.namespaces["alice/shared"]; "" for the document itself.
	Path string
	// Message says what is wrong there, in the data's terms: "unknown key
	// (did you mean \"public\"?)", "must be a string, not a number".
	Message string
}

func (p DataProblem) String() string {
	if p.Path == "" {
		return "the data document: " + p.Message
	}
	return p.Path + ": " + p.Message
}

func (e *DataError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.String()
	}
	return e.Source + ": " + strings.Join(msgs, "; ")
}

// DataSchema is a compiled JSON schema of a data document. Compile it once
// with CompileDataSchema, check any number of documents with Check.
type DataSchema struct {
	schema *jsonschema.Schema
	// raw is the decoded schema document, to find what a failing part of
	// the schema allows (the known keys of an object, a description).
	raw any
}

// CompileDataSchema compiles a JSON schema of a data document. A schema that
// names no $schema is read as draft-07, like policy/input.schema.json;
// "format" is always asserted (a "date-time" that is not RFC 3339 is
// refused); a schema may not refer ($ref) to any document but itself.
func CompileDataSchema(src []byte) (*DataSchema, error) {
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, raw); err != nil {
		return nil, err
	}
	s, err := c.Compile(schemaURL)
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
		// Not valid against its metaschema: say where in the schema,
		// as for data.
		var msgs []string
		for _, p := range (&DataSchema{raw: raw}).problems(raw, ve) {
			msgs = append(msgs, p.String())
		}
		return nil, fmt.Errorf("not a valid JSON schema: %s", strings.ReplaceAll(strings.Join(msgs, "; "), "the data document", "the schema"))
	}
	if err != nil {
		return nil, fmt.Errorf("not a valid JSON schema: %s", strings.ReplaceAll(err.Error(), schemaURL, "the schema"))
	}
	return &DataSchema{schema: s, raw: raw}, nil
}

// noLoader refuses to load other documents: a data schema is one file,
// checked the same wherever the server runs, without the network or the
// file system.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("a data schema may not refer to another document (%s)", url)
}

// CheckData checks a data document against a JSON schema (see
// CompileDataSchema). A mismatch is a *DataError naming source.
func CheckData(schema []byte, source string, data any) error {
	s, err := CompileDataSchema(schema)
	if err != nil {
		return fmt.Errorf("%s: schema: %w", source, err)
	}
	return s.Check(source, data)
}

// Check checks a data document. A mismatch is a *DataError naming source:
// one problem per mismatch, each with the key path in the data.
func (s *DataSchema) Check(source string, data any) error {
	// Validate what the policy will see: data as JSON (the store holds it
	// so), whatever Go types the caller built it with.
	doc, err := asJSON(data)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	err = s.schema.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("%s: %w", source, err)
	}
	de := &DataError{Source: source}
	seen := map[DataProblem]bool{}
	for _, p := range s.problems(doc, ve) {
		if !seen[p] {
			seen[p] = true
			de.Problems = append(de.Problems, p)
		}
	}
	slices.SortStableFunc(de.Problems, func(a, b DataProblem) int { return strings.Compare(a.Path, b.Path) })
	return de
}

func asJSON(data any) (any, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("data is not JSON: %w", err)
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

var printer = message.NewPrinter(language.English)

// problems turns a validation error tree into problems. Groups of errors
// (the schema, allOf, a $ref) stand for their causes; anyOf and oneOf are
// one problem each, as their branches' errors contradict each other.
func (s *DataSchema) problems(doc any, e *jsonschema.ValidationError) []DataProblem {
	switch k := e.ErrorKind.(type) {
	case *kind.Schema, *kind.Group, *kind.AllOf, *kind.Reference:
		var ps []DataProblem
		for _, c := range e.Causes {
			ps = append(ps, s.problems(doc, c)...)
		}
		if len(ps) > 0 {
			return ps
		}
	case *kind.AdditionalProperties:
		known := s.knownKeys(e.SchemaURL)
		var ps []DataProblem
		for _, prop := range k.Properties {
			msg := "unknown key"
			if m := closest(prop, known); m != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", m)
			} else if len(known) > 0 && len(known) <= 10 {
				msg += " (known keys: " + strings.Join(known, ", ") + ")"
			}
			ps = append(ps, DataProblem{dataPath(doc, append(slices.Clone(e.InstanceLocation), prop)), msg})
		}
		return ps
	case *kind.AnyOf:
		// When the value's type suits one of the allowed forms only, that
		// form says best what is wrong with it (a glob that is not
		// one, a list that is empty), at the place it is wrong.
		var suited []*jsonschema.ValidationError
		for _, c := range e.Causes {
			if len(c.InstanceLocation) != len(e.InstanceLocation) || !typeMismatch(c) {
				suited = append(suited, c)
			}
		}
		if len(suited) == 1 {
			return s.problems(doc, suited[0])
		}
	case *kind.PropertyNames:
		var msgs []string
		for _, c := range e.Causes {
			for _, p := range s.problems(doc, c) {
				msgs = append(msgs, p.Message)
			}
		}
		msg := fmt.Sprintf("key %q is not allowed", k.Property)
		if len(msgs) > 0 {
			msg = fmt.Sprintf("key %s", strings.Join(msgs, "; "))
		}
		return []DataProblem{{dataPath(doc, e.InstanceLocation), msg}}
	}
	return []DataProblem{{dataPath(doc, e.InstanceLocation), s.message(doc, e)}}
}

// message says what is wrong with one value, without its path.
func (s *DataSchema) message(doc any, e *jsonschema.ValidationError) string {
	switch k := e.ErrorKind.(type) {
	case *kind.Type:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = typeName(w)
		}
		return fmt.Sprintf("must be %s, not %s", orList(want), typeName(k.Got))
	case *kind.Required:
		return "missing " + quotedList(k.Missing, "and")
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = jsonString(w)
		}
		msg := fmt.Sprintf("%s is not one of %s", jsonString(k.Got), strings.Join(want, ", "))
		if got, ok := k.Got.(string); ok {
			var names []string
			for _, w := range k.Want {
				if s, ok := w.(string); ok {
					names = append(names, s)
				}
			}
			if m := closest(got, names); m != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", m)
			}
		}
		return msg
	case *kind.Const:
		return "must be " + jsonString(k.Want)
	case *kind.Pattern, *kind.Format, *kind.Not:
		// A string of the wrong form: the schema's description of it
		// says best what was wanted.
		// (Pattern and Format carry the value: under propertyNames it
		// is a key, not the value at the instance location.)
		var v string
		switch k := k.(type) {
		case *kind.Pattern:
			v = jsonString(k.Got)
		case *kind.Format:
			v = jsonString(k.Got)
		default:
			v = jsonString(valueAt(doc, e.InstanceLocation))
		}
		if d := s.description(e.SchemaURL); d != "" {
			return fmt.Sprintf("%s must be %s", v, d)
		}
		switch k := k.(type) {
		case *kind.Pattern:
			return fmt.Sprintf("%s does not match the pattern %s", v, k.Want)
		case *kind.Format:
			return fmt.Sprintf("%s is not a valid %s", v, k.Want)
		}
		return fmt.Sprintf("%s is not allowed here", v)
	case *kind.MinLength:
		if k.Want == 1 {
			return "must not be empty"
		}
		return fmt.Sprintf("must be at least %d characters long", k.Want)
	case *kind.MinItems:
		if k.Want == 1 {
			return "must not be empty"
		}
		return fmt.Sprintf("must have at least %d entries", k.Want)
	case *kind.MinProperties:
		if k.Want == 1 {
			return "must not be empty"
		}
		return fmt.Sprintf("must have at least %d keys", k.Want)
	case *kind.MaxItems:
		return fmt.Sprintf("must have at most %d entries", k.Want)
	case *kind.FalseSchema:
		return "not allowed here"
	case *kind.AnyOf, *kind.OneOf:
		if o, ok := k.(*kind.OneOf); ok && len(o.Subschemas) > 1 {
			return "matches more than one of the allowed forms"
		}
		msg := "matches none of the allowed forms"
		if d := s.description(e.SchemaURL); d != "" {
			msg = "must be " + d
		}
		if typeMismatch(e) {
			msg += ", not " + typeName(jsonType(valueAt(doc, e.InstanceLocation)))
		}
		return msg
	}
	return e.ErrorKind.LocalizedString(printer)
}

// typeMismatch reports whether e says only that the value is of the wrong
// type, at the value itself: the value suits none of its schema's forms.
func typeMismatch(e *jsonschema.ValidationError) bool {
	switch e.ErrorKind.(type) {
	case *kind.Type:
		return true
	case *kind.Schema, *kind.Group, *kind.AllOf, *kind.Reference, *kind.AnyOf, *kind.OneOf:
		if len(e.Causes) == 0 {
			return false
		}
		for _, c := range e.Causes {
			if len(c.InstanceLocation) != len(e.InstanceLocation) || !typeMismatch(c) {
				return false
			}
		}
		return true
	}
	return false
}

// jsonType is the JSON type of a decoded value.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "number"
}

// subschema finds the part of the schema document a SchemaURL points at
// (mem:///data.schema.json#/properties/registry), or nil.
func (s *DataSchema) subschema(url string) map[string]any {
	base, ptr, _ := strings.Cut(url, "#")
	if base != schemaURL {
		root, _ := s.raw.(map[string]any)
		if id, _ := root["$id"].(string); id == "" || strings.TrimSuffix(id, "#") != base {
			return nil
		}
	}
	v := s.raw
	for tok := range strings.SplitSeq(strings.TrimPrefix(ptr, "/"), "/") {
		if tok == "" {
			continue
		}
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch x := v.(type) {
		case map[string]any:
			v = x[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	m, _ := v.(map[string]any)
	return m
}

// knownKeys are the keys an object schema lists under properties.
func (s *DataSchema) knownKeys(url string) []string {
	props, _ := s.subschema(url)["properties"].(map[string]any)
	return slices.Sorted(maps.Keys(props))
}

func (s *DataSchema) description(url string) string {
	d, _ := s.subschema(url)["description"].(string)
	return d
}

// valueAt is the value at a location in the document, or nil.
func valueAt(doc any, loc []string) any {
	v := doc
	for _, tok := range loc {
		switch x := v.(type) {
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		case map[string]any:
			v = x[tok]
		default:
			return nil
		}
	}
	return v
}

// identifier is a key that can follow a dot in a Rego reference.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// dataPath writes the location of a value in the data as a reference into
// it: registry.namespaces.team.push[0], registry.namespaces["alice/shared"].
// The document tells a list index from a key that looks like a number.
func dataPath(doc any, loc []string) string {
	var b strings.Builder
	v := doc
	for _, tok := range loc {
		switch x := v.(type) {
		case []any:
			b.WriteString("[" + tok + "]")
			if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(x) {
				v = x[i]
			} else {
				v = nil
			}
			continue
		case map[string]any:
			v = x[tok]
		default:
			v = nil
		}
		switch {
		case identifier.MatchString(tok) && b.Len() > 0:
			b.WriteString("." + tok)
		case identifier.MatchString(tok):
			b.WriteString(tok)
		default:
			b.WriteString("[" + strconv.Quote(tok) + "]")
		}
	}
	return b.String()
}

// typeName names a JSON type as a YAML or JSON author thinks of it.
func typeName(t string) string {
	switch t {
	case "array":
		return "a list"
	case "object":
		return "a map"
	case "string":
		return "a string"
	case "integer":
		return "a whole number"
	case "number":
		return "a number"
	case "boolean":
		return "true or false"
	case "null":
		return "null"
	}
	return t
}

func orList(items []string) string {
	switch len(items) {
	case 0:
		return "nothing"
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

func quotedList(items []string, conj string) string {
	q := make([]string, len(items))
	for i, it := range items {
		q[i] = strconv.Quote(it)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " " + conj + " " + q[len(q)-1]
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// closest is the candidate nearest to s, or "" when none is close (see
// suggest.Closest).
func closest(s string, candidates []string) string {
	best, _ := suggest.Closest(s, candidates)
	return best
}

// maxDataSchema bounds the size of a bundle's data schema.
const maxDataSchema = 1 << 20

// ReadBundleDataSchema returns the data schema (BundleDataSchema at the
// root) of the local bundle at p, a directory or a .tar.gz file, or nil if
// it has none.
func ReadBundleDataSchema(p string) ([]byte, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		src, err := os.ReadFile(filepath.Join(p, BundleDataSchema))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, nil
		case err != nil:
			return nil, err
		case len(src) > maxDataSchema:
			return nil, fmt.Errorf("%s: larger than %d bytes", BundleDataSchema, maxDataSchema)
		}
		return src, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The tarball reader OPA reads bundles with, so a file is found at the
	// root under the same names ("data.schema.json", "/…", "./…").
	tl := limitedTarball(f, p)
	for {
		d, err := tl.NextFile()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, tarballSizeError(err)
		}
		if strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(d.Path())), "/") != BundleDataSchema {
			_ = d.Close()
			continue
		}
		var buf bytes.Buffer
		_, err = d.Read(&buf, maxDataSchema+1)
		_ = d.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %w", BundleDataSchema, err)
		}
		if buf.Len() > maxDataSchema {
			return nil, fmt.Errorf("%s: larger than %d bytes", BundleDataSchema, maxDataSchema)
		}
		return buf.Bytes(), nil
	}
}

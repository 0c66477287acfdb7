package fakemeta

// A deliberately small GraphQL front end: enough of the language to read the
// queries a token check sends, and enough of meta.sr.ht's schema (Query.version
// and Query.me) to answer them the way gqlgen would. Unsupported constructs
// (fragments, field directives, several operations in one document) are
// answered 422 with a message that starts with "fakemeta:", so a test that
// trips over them sees why.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Version is what { version { major minor patch } } answers.
const (
	VersionMajor = 0
	VersionMinor = 79
	VersionPatch = 0
)

// gqlError is gqlparser's gqlerror.Error as gqlgen marshals it.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path,omitempty"`
	Locations  []gqlLocation  `json:"locations,omitempty"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

type gqlLocation struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

// gqlResponse is gqlgen's graphql.Response: errors first, data always
// present (null when nil).
type gqlResponse struct {
	Errors []gqlError      `json:"errors,omitempty"`
	Data   json.RawMessage `json:"data"`
}

// ---- lexer ----

type tokKind int

const (
	tokEOF tokKind = iota
	tokPunct
	tokName
	tokInt
	tokFloat
	tokString
)

type token struct {
	kind      tokKind
	val       string
	line, col int
}

func (t token) String() string {
	switch t.kind {
	case tokEOF:
		return "<EOF>"
	case tokPunct:
		return t.val
	case tokName:
		return fmt.Sprintf("Name %q", t.val)
	case tokInt:
		return fmt.Sprintf("Int %q", t.val)
	case tokFloat:
		return fmt.Sprintf("Float %q", t.val)
	default:
		return fmt.Sprintf("String %q", t.val)
	}
}

type parseError struct {
	msg       string
	line, col int
}

func (e *parseError) Error() string { return e.msg }

func lex(src string) ([]token, error) {
	var toks []token
	line, col := 1, 1
	i := 0
	adv := func(n int) {
		for k := 0; k < n; k++ {
			if src[i] == '\n' {
				line++
				col = 1
			} else {
				col++
			}
			i++
		}
	}
	for {
		// Ignored tokens: whitespace, line terminators, commas, BOM, comments.
		for i < len(src) {
			c := src[i]
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' {
				adv(1)
			} else if strings.HasPrefix(src[i:], "\uFEFF") {
				i += 3
				col++
			} else if c == '#' {
				for i < len(src) && src[i] != '\n' {
					adv(1)
				}
			} else {
				break
			}
		}
		if i >= len(src) {
			toks = append(toks, token{kind: tokEOF, line: line, col: col})
			return toks, nil
		}
		start := token{line: line, col: col}
		c := src[i]
		switch {
		case strings.HasPrefix(src[i:], "..."):
			start.kind, start.val = tokPunct, "..."
			adv(3)
		case strings.ContainsRune("!$&()/:=@[]{|}", rune(c)):
			start.kind, start.val = tokPunct, string(c)
			adv(1)
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(src) && (src[j] == '_' || src[j] >= 'a' && src[j] <= 'z' || src[j] >= 'A' && src[j] <= 'Z' || src[j] >= '0' && src[j] <= '9') {
				j++
			}
			start.kind, start.val = tokName, src[i:j]
			adv(j - i)
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			kind := tokInt
			for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '.' || src[j] == 'e' || src[j] == 'E' || src[j] == '+' || src[j] == '-') {
				if src[j] == '.' || src[j] == 'e' || src[j] == 'E' {
					kind = tokFloat
				}
				j++
			}
			start.kind, start.val = kind, src[i:j]
			adv(j - i)
		case c == '"':
			if strings.HasPrefix(src[i:], `"""`) {
				end := strings.Index(src[i+3:], `"""`)
				if end < 0 {
					return nil, &parseError{"Unterminated string.", line, col}
				}
				start.kind, start.val = tokString, src[i+3:i+3+end]
				adv(end + 6)
				break
			}
			j := i + 1
			for j < len(src) && src[j] != '"' && src[j] != '\n' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) || src[j] != '"' {
				return nil, &parseError{"Unterminated string.", line, col}
			}
			s, err := strconv.Unquote(src[i : j+1])
			if err != nil {
				s = src[i+1 : j]
			}
			start.kind, start.val = tokString, s
			adv(j + 1 - i)
		default:
			return nil, &parseError{fmt.Sprintf("Unexpected %q", string(c)), line, col}
		}
		toks = append(toks, start)
	}
}

// ---- parser ----

type field struct {
	alias, name string
	args        []string // argument names
	sel         []*field // nil: no selection set
	hasSel      bool
	line, col   int
}

func (f *field) key() string {
	if f.alias != "" {
		return f.alias
	}
	return f.name
}

type operation struct {
	typ  string // query, mutation, subscription
	name string
	sel  []*field
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *parser) isPunct(v string) bool {
	t := p.peek()
	return t.kind == tokPunct && t.val == v
}

func (p *parser) unexpected(t token) error {
	return &parseError{"Unexpected " + t.String(), t.line, t.col}
}

func (p *parser) expectPunct(v string) error {
	t := p.next()
	if t.kind != tokPunct || t.val != v {
		return &parseError{fmt.Sprintf("Expected %s, found %s", v, t), t.line, t.col}
	}
	return nil
}

func (p *parser) expectName() (token, error) {
	t := p.next()
	if t.kind != tokName {
		return t, &parseError{fmt.Sprintf("Expected Name, found %s", t), t.line, t.col}
	}
	return t, nil
}

// unsupported reports a construct this fake does not implement.
func unsupported(t token, what string) error {
	return &parseError{"fakemeta: " + what + " is not supported by the fake meta.sr.ht", t.line, t.col}
}

// parseDocument parses a document holding exactly one operation.
func parseDocument(src string) (*operation, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	if p.peek().kind == tokEOF {
		return nil, nil // no operation; the caller answers "operation not found"
	}
	op := &operation{typ: "query"}
	t := p.peek()
	switch {
	case t.kind == tokPunct && t.val == "{":
	case t.kind == tokName && (t.val == "query" || t.val == "mutation" || t.val == "subscription"):
		p.next()
		op.typ = t.val
		if p.peek().kind == tokName {
			op.name = p.next().val
		}
		if p.isPunct("(") {
			if err := p.variableDefinitions(); err != nil {
				return nil, err
			}
		}
		if p.isPunct("@") {
			return nil, unsupported(p.peek(), "a directive")
		}
	case t.kind == tokName && t.val == "fragment":
		return nil, unsupported(t, "a fragment")
	default:
		return nil, p.unexpected(t)
	}
	if op.sel, err = p.selectionSet(); err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		if t.kind == tokName || t.kind == tokPunct && t.val == "{" {
			return nil, unsupported(t, "a document with several definitions")
		}
		return nil, p.unexpected(t)
	}
	return op, nil
}

func (p *parser) variableDefinitions() error {
	p.next() // (
	if p.isPunct(")") {
		return p.unexpected(p.peek())
	}
	for !p.isPunct(")") {
		if err := p.expectPunct("$"); err != nil {
			return err
		}
		if _, err := p.expectName(); err != nil {
			return err
		}
		if err := p.expectPunct(":"); err != nil {
			return err
		}
		if err := p.typeRef(); err != nil {
			return err
		}
		if p.isPunct("=") {
			p.next()
			if err := p.value(); err != nil {
				return err
			}
		}
	}
	p.next() // )
	return nil
}

func (p *parser) typeRef() error {
	if p.isPunct("[") {
		p.next()
		if err := p.typeRef(); err != nil {
			return err
		}
		if err := p.expectPunct("]"); err != nil {
			return err
		}
	} else if _, err := p.expectName(); err != nil {
		return err
	}
	if p.isPunct("!") {
		p.next()
	}
	return nil
}

func (p *parser) value() error {
	t := p.next()
	switch {
	case t.kind == tokPunct && t.val == "$":
		_, err := p.expectName()
		return err
	case t.kind == tokName || t.kind == tokInt || t.kind == tokFloat || t.kind == tokString:
		return nil
	case t.kind == tokPunct && t.val == "[":
		for !p.isPunct("]") {
			if p.peek().kind == tokEOF {
				return p.unexpected(p.peek())
			}
			if err := p.value(); err != nil {
				return err
			}
		}
		p.next()
		return nil
	case t.kind == tokPunct && t.val == "{":
		for !p.isPunct("}") {
			if _, err := p.expectName(); err != nil {
				return err
			}
			if err := p.expectPunct(":"); err != nil {
				return err
			}
			if err := p.value(); err != nil {
				return err
			}
		}
		p.next()
		return nil
	}
	return p.unexpected(t)
}

func (p *parser) selectionSet() ([]*field, error) {
	if err := p.expectPunct("{"); err != nil {
		return nil, err
	}
	var sel []*field
	for {
		t := p.peek()
		if t.kind == tokPunct && t.val == "..." {
			return nil, unsupported(t, "a fragment")
		}
		nt, err := p.expectName()
		if err != nil {
			return nil, err
		}
		f := &field{name: nt.val, line: nt.line, col: nt.col}
		if p.isPunct(":") {
			p.next()
			n, err := p.expectName()
			if err != nil {
				return nil, err
			}
			f.alias, f.name = f.name, n.val
		}
		if p.isPunct("(") {
			p.next()
			if p.isPunct(")") {
				return nil, p.unexpected(p.peek())
			}
			for !p.isPunct(")") {
				a, err := p.expectName()
				if err != nil {
					return nil, err
				}
				if err := p.expectPunct(":"); err != nil {
					return nil, err
				}
				if err := p.value(); err != nil {
					return nil, err
				}
				f.args = append(f.args, a.val)
			}
			p.next()
		}
		if p.isPunct("@") {
			return nil, unsupported(p.peek(), "a directive")
		}
		if p.isPunct("{") {
			f.hasSel = true
			if f.sel, err = p.selectionSet(); err != nil {
				return nil, err
			}
		}
		sel = append(sel, f)
		if p.isPunct("}") {
			p.next()
			return sel, nil
		}
	}
}

// ---- schema and validation ----

type fieldDef struct {
	typ string // as GraphQL prints it, e.g. "Version!"
	obj string // object type name; "" for a scalar
}

// schema is the part of meta.sr.ht's schema the fake knows.
var schema = map[string]map[string]fieldDef{
	"Query": {
		"version":    {"Version!", "Version"},
		"me":         {"User!", "User"},
		"__typename": {"String!", ""},
	},
	"Version": {
		"major":           {"Int!", ""},
		"minor":           {"Int!", ""},
		"patch":           {"Int!", ""},
		"deprecationDate": {"Time", ""},
		"__typename":      {"String!", ""},
	},
	"User": {
		"id":            {"Int!", ""},
		"created":       {"Time!", ""},
		"updated":       {"Time!", ""},
		"canonicalName": {"String!", ""},
		"username":      {"String!", ""},
		"email":         {"String!", ""},
		"url":           {"String", ""},
		"location":      {"String", ""},
		"bio":           {"String", ""},
		"__typename":    {"String!", ""},
	},
	"Mutation": {},
}

func validationError(line, col int, format string, args ...any) gqlError {
	return gqlError{
		Message:    fmt.Sprintf(format, args...),
		Locations:  []gqlLocation{{line, col}},
		Extensions: map[string]any{"code": "GRAPHQL_VALIDATION_FAILED"},
	}
}

// validate reports the errors gqlparser's validator would for op.
func validate(op *operation) []gqlError {
	root := map[string]string{"query": "Query", "mutation": "Mutation"}[op.typ]
	if root == "" {
		return []gqlError{validationError(1, 1, "Schema does not support operation type %q", op.typ)}
	}
	var errs []gqlError
	validateSelection(root, op.sel, &errs)
	return errs
}

func validateSelection(typ string, sel []*field, errs *[]gqlError) {
	seen := map[string]*field{}
	for _, f := range sel {
		def, ok := schema[typ][f.name]
		if !ok {
			*errs = append(*errs, validationError(f.line, f.col, "Cannot query field %q on type %q.", f.name, typ))
			continue
		}
		if prev, dup := seen[f.key()]; dup && prev.name != f.name {
			*errs = append(*errs, validationError(f.line, f.col,
				"Fields %q conflict because %s and %s are different fields. Use different aliases on the fields to fetch both if this was intentional.",
				f.key(), prev.name, f.name))
		} else if !dup {
			seen[f.key()] = f
		}
		for _, a := range f.args {
			*errs = append(*errs, validationError(f.line, f.col, "Unknown argument %q on field %q.", a, typ+"."+f.name))
		}
		switch {
		case def.obj != "" && !f.hasSel:
			*errs = append(*errs, validationError(f.line, f.col,
				"Field %q of type %q must have a selection of subfields. Did you mean \"%s { ... }\"?", f.name, def.typ, f.name))
		case def.obj == "" && f.hasSel:
			*errs = append(*errs, validationError(f.line, f.col,
				"Field %q must not have a selection since type %q has no subselections.", f.name, def.typ))
		case def.obj != "":
			validateSelection(def.obj, f.sel, errs)
		}
	}
}

// ---- execution ----

// object is a JSON object that keeps its keys in selection order.
type object struct {
	keys []string
	vals map[string]any
}

func (o *object) set(k string, v any) {
	if o.vals == nil {
		o.vals = map[string]any{}
	}
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

func (o *object) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := json.Marshal(o.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// collect merges fields with the same response key, as GraphQL's
// CollectFields does, keeping first-appearance order.
func collect(sel []*field) []*field {
	var out []*field
	byKey := map[string]*field{}
	for _, f := range sel {
		if m, ok := byKey[f.key()]; ok {
			m.sel = append(m.sel, f.sel...)
			continue
		}
		c := *f
		c.sel = append([]*field(nil), f.sel...)
		byKey[f.key()] = &c
		out = append(out, &c)
	}
	return out
}

// execContext is what resolvers see.
type execContext struct {
	bt     *bearerToken
	grants grants
}

// execute runs a validated query. Every root field is non-null, so an error
// in any of them nulls the whole of data, as gqlgen does.
func execute(ctx execContext, op *operation) gqlResponse {
	data := &object{}
	var errs []gqlError
	for _, f := range collect(op.sel) {
		switch f.name {
		case "__typename":
			data.set(f.key(), "Query")
		case "version":
			data.set(f.key(), resolveVersion(f.sel))
		case "me":
			// meta.sr.ht: me: User! @access(scope: PROFILE, kind: RO);
			// core-go's server.Access answers this message on a
			// missing grant.
			if !ctx.grants.has("PROFILE", "RO") {
				errs = append(errs, gqlError{
					Message: "Access denied for invalid auth method",
					Path:    []any{f.key()},
				})
				continue
			}
			data.set(f.key(), resolveUser(ctx.bt, f.sel))
		}
	}
	if len(errs) > 0 {
		return gqlResponse{Errors: errs}
	}
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	return gqlResponse{Data: b}
}

func resolveVersion(sel []*field) *object {
	o := &object{}
	for _, f := range collect(sel) {
		switch f.name {
		case "major":
			o.set(f.key(), VersionMajor)
		case "minor":
			o.set(f.key(), VersionMinor)
		case "patch":
			o.set(f.key(), VersionPatch)
		case "deprecationDate":
			o.set(f.key(), nil)
		case "__typename":
			o.set(f.key(), "Version")
		}
	}
	return o
}

// userCreated is the fixed creation time of every fake user.
const userCreated = "2020-01-01T00:00:00Z"

func resolveUser(bt *bearerToken, sel []*field) *object {
	o := &object{}
	for _, f := range collect(sel) {
		switch f.name {
		case "id":
			o.set(f.key(), 1)
		case "created", "updated":
			o.set(f.key(), userCreated)
		case "canonicalName":
			o.set(f.key(), "~"+bt.Username)
		case "username":
			o.set(f.key(), bt.Username)
		case "email":
			o.set(f.key(), bt.Username+"@example.org")
		case "url", "location", "bio":
			o.set(f.key(), nil)
		case "__typename":
			o.set(f.key(), "User")
		}
	}
	return o
}

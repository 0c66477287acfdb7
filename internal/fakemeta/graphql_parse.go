package fakemeta

// The lexer and parser of the fake's GraphQL front end: they turn a query
// document into one operation (a tree of fields), and report syntax errors
// and constructs the fake does not support as parseErrors with a position.

import (
	"fmt"
	"strconv"
	"strings"
)

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

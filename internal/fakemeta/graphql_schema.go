package fakemeta

// The part of meta.sr.ht's schema the fake knows, and the validation a
// parsed operation goes through before it is executed.

import "fmt"

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

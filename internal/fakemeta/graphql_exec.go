package fakemeta

// Execution of a validated operation: the resolvers of Query.version and
// Query.me, and a JSON object that keeps the fields in selection order, as
// gqlgen does.

import (
	"encoding/json"
	"strings"
)

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

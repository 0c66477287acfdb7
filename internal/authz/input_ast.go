package authz

import (
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// inputShape builds the input document as OPA's value, directly, with the
// fields the policy may read (analyse) and no others: the same document as
// Input, less what no rule can see, without building it twice (a Go map,
// then its conversion). Nothing a policy can observe changes: a policy
// that reads a whole object (input.identity, input) reads every field of
// it, and gets them all.
type inputShape struct {
	read map[string]bool
	// claims: the OIDC claims read by name, when the policy reads no
	// other way (nil: all of them).
	claims []string
}

func newInputShape(a analysis) inputShape {
	s := inputShape{read: a.read}
	if !a.allClaims {
		s.claims = sortedKeys(a.claims)
	}
	return s
}

// inputParts are the identity and request objects of one token request,
// built once for all its scopes.
type inputParts struct {
	identity, request *ast.Term
}

func (s inputShape) parts(id identity.Identity, req identity.Request) (inputParts, error) {
	ident, err := s.identity(id)
	if err != nil {
		return inputParts{}, err
	}
	return inputParts{identity: ident, request: s.request(req)}, nil
}

// value is the input document of one scope.
func (s inputShape) value(p inputParts, sc access.Scope) ast.Value {
	return ast.NewObject(
		ast.Item(keyVersion, ast.InternedTerm(InputVersion)),
		ast.Item(keyIdentity, p.identity),
		ast.Item(keyRequest, p.request),
		ast.Item(keyScope, s.scope(sc)),
	)
}

// callerValue is the input document without its scope: what a residual
// is made from.
func (s inputShape) callerValue(p inputParts) ast.Value {
	return ast.NewObject(
		ast.Item(keyVersion, ast.InternedTerm(InputVersion)),
		ast.Item(keyIdentity, p.identity),
		ast.Item(keyRequest, p.request),
	)
}

// object collects the fields of one object of the input.
type object struct {
	s     inputShape
	items [][2]*ast.Term
}

func (o *object) add(leaf string, key *ast.Term, value func() *ast.Term) {
	if o.s.read[leaf] {
		o.items = append(o.items, ast.Item(key, value()))
	}
}

func (o *object) term() *ast.Term { return ast.ObjectTerm(o.items...) }

func str(s string) func() *ast.Term { return func() *ast.Term { return ast.InternedTerm(s) } }

func strs(ss []string) func() *ast.Term {
	return func() *ast.Term {
		terms := make([]*ast.Term, len(ss))
		for i, s := range ss {
			terms[i] = ast.InternedTerm(s)
		}
		return ast.ArrayTerm(terms...)
	}
}

func (s inputShape) identity(id identity.Identity) (*ast.Term, error) {
	o := object{s: s, items: make([][2]*ast.Term, 0, 8)}
	o.add("input.identity.method", keyMethod, str(string(id.Method)))
	o.add("input.identity.subject", keySubject, str(id.Subject))
	o.add("input.identity.groups", keyGroups, strs(id.Groups))
	if id.Provider != "" {
		o.add("input.identity.provider", keyProvider, str(id.Provider))
	}
	if id.Namespace != "" {
		o.add("input.identity.namespace", keyNamespace, str(id.Namespace))
	}
	if id.RefreshedFrom != "" {
		o.add("input.identity.refreshed_from", keyRefreshedFrom, str(string(id.RefreshedFrom)))
	}
	if sh := id.Sourcehut; sh != nil {
		so := object{s: s}
		so.add("input.identity.sourcehut.username", keyUsername, str(sh.Username))
		so.add("input.identity.sourcehut.client_id", keyClientID, str(sh.ClientID))
		so.add("input.identity.sourcehut.expires", keyExpires, str(sh.Expires.UTC().Format(time.RFC3339)))
		so.add("input.identity.sourcehut.all_grants", keyAllGrants, func() *ast.Term { return ast.InternedTerm(sh.AllGrants) })
		so.add("input.identity.sourcehut.grants", keyGrants, func() *ast.Term {
			grants := make([]*ast.Term, len(sh.Grants))
			for i, g := range sh.Grants {
				grants[i] = ast.ObjectTerm(
					ast.Item(keyService, ast.InternedTerm(g.Service)),
					ast.Item(keyScopeName, ast.InternedTerm(g.Scope)),
					ast.Item(keyAccess, ast.InternedTerm(g.Access)))
			}
			return ast.ArrayTerm(grants...)
		})
		so.add("input.identity.sourcehut.access", keyAccess, str(sh.Access))
		if len(so.items) > 0 {
			o.items = append(o.items, ast.Item(keySourcehut, so.term()))
		}
	}
	if oidc := id.OIDC; oidc != nil {
		oo := object{s: s}
		oo.add("input.identity.oidc.issuer", keyIssuer, str(oidc.Issuer))
		if s.read[claimsLeaf] {
			claims, err := s.claimsValue(oidc.Claims)
			if err != nil {
				return nil, err
			}
			oo.items = append(oo.items, ast.Item(keyClaims, claims))
		}
		if len(oo.items) > 0 {
			o.items = append(o.items, ast.Item(keyOIDC, oo.term()))
		}
	}
	return o.term(), nil
}

// claimsValue converts an ID token's claims: those the policy reads by
// name, or all of them.
func (s inputShape) claimsValue(claims map[string]any) (*ast.Term, error) {
	claims = claimsOrEmpty(claims)
	if s.claims != nil {
		read := make(map[string]any, len(s.claims))
		for _, name := range s.claims {
			if v, ok := claims[name]; ok {
				read[name] = v
			}
		}
		claims = read
	}
	v, err := ast.InterfaceToValue(claims)
	if err != nil {
		return nil, fmt.Errorf("input: OIDC claims: %w", err)
	}
	return ast.NewTerm(v), nil
}

func (s inputShape) request(req identity.Request) *ast.Term {
	o := object{s: s, items: make([][2]*ast.Term, 0, 5)}
	o.add("input.request.service", keyService, str(req.Service))
	o.add("input.request.client_ip", keyClientIP, str(req.ClientIP))
	o.add("input.request.client_id", keyClientID, str(req.ClientID))
	o.add("input.request.user_agent", keyUserAgent, str(req.UserAgent))
	o.add("input.request.time", keyTime, func() *ast.Term { return ast.StringTerm(req.Time.UTC().Format(time.RFC3339)) })
	return o.term()
}

func (s inputShape) scope(sc access.Scope) *ast.Term {
	o := object{s: s, items: make([][2]*ast.Term, 0, 4)}
	o.add("input.scope.type", keyType, str(sc.Type))
	o.add("input.scope.name", keyName, str(sc.Name))
	o.add("input.scope.actions", keyActions, strs(sc.Actions))
	if sc.Class != "" {
		o.add("input.scope.class", keyClass, str(sc.Class))
	}
	return o.term()
}

// The keys of the input document, made once: OPA never changes a term it
// is given.
var (
	keyVersion       = ast.InternedTerm("version")
	keyIdentity      = ast.InternedTerm("identity")
	keyRequest       = ast.InternedTerm("request")
	keyScope         = ast.InternedTerm("scope")
	keyMethod        = ast.InternedTerm("method")
	keySubject       = ast.InternedTerm("subject")
	keyGroups        = ast.InternedTerm("groups")
	keyProvider      = ast.InternedTerm("provider")
	keyNamespace     = ast.InternedTerm("namespace")
	keyRefreshedFrom = ast.InternedTerm("refreshed_from")
	keySourcehut     = ast.InternedTerm("sourcehut")
	keyUsername      = ast.InternedTerm("username")
	keyClientID      = ast.InternedTerm("client_id")
	keyExpires       = ast.InternedTerm("expires")
	keyAllGrants     = ast.InternedTerm("all_grants")
	keyGrants        = ast.InternedTerm("grants")
	keyAccess        = ast.InternedTerm("access")
	keyScopeName     = ast.InternedTerm("scope")
	keyService       = ast.InternedTerm("service")
	keyOIDC          = ast.InternedTerm("oidc")
	keyIssuer        = ast.InternedTerm("issuer")
	keyClaims        = ast.InternedTerm("claims")
	keyClientIP      = ast.InternedTerm("client_ip")
	keyUserAgent     = ast.InternedTerm("user_agent")
	keyTime          = ast.InternedTerm("time")
	keyType          = ast.InternedTerm("type")
	keyName          = ast.InternedTerm("name")
	keyActions       = ast.InternedTerm("actions")
	keyClass         = ast.InternedTerm("class")
)

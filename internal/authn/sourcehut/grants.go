package sourcehut

import (
	"fmt"
	"strings"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// RegistryScope is the grant scope this server honours.
const RegistryScope = "REGISTRY"

// Access levels of a grant.
const (
	ReadOnly  = "RO"
	ReadWrite = "RW"
)

// ParseGrants parses a grant string: space-separated "service/SCOPE:ACCESS"
// entries, ACCESS being RO or RW (RO when missing). Only the empty string
// means all access (a personal access token); like sourcehut's own parser,
// entries are split on single spaces, so stray whitespace is an error rather
// than "all access".
func ParseGrants(s string) (grants []identity.Grant, all bool, err error) {
	if s == "" {
		return nil, true, nil
	}
	for f := range strings.SplitSeq(s, " ") {
		service, rest, ok := strings.Cut(f, "/")
		if !ok || service == "" || rest == "" {
			return nil, false, fmt.Errorf("grant %q: want service/SCOPE:ACCESS", f)
		}
		scope, access, hasAccess := strings.Cut(rest, ":")
		if !hasAccess {
			access = ReadOnly
		}
		if scope == "" || strings.ContainsAny(scope, "/:") {
			return nil, false, fmt.Errorf("grant %q: bad scope", f)
		}
		if access != ReadOnly && access != ReadWrite {
			return nil, false, fmt.Errorf("grant %q: access must be RO or RW", f)
		}
		grants = append(grants, identity.Grant{Service: service, Scope: scope, Access: access})
	}
	return grants, false, nil
}

// RegistryAccess returns the access a grant set gives to the registry named
// service: RW, RO, or "" when it grants nothing there. All access counts as
// RW, as sourcehut treats an empty grant string.
func RegistryAccess(grants []identity.Grant, all bool, service string) string {
	if all {
		return ReadWrite
	}
	level := ""
	for _, g := range grants {
		if g.Service != service || g.Scope != RegistryScope {
			continue
		}
		if g.Access == ReadWrite {
			return ReadWrite
		}
		level = ReadOnly
	}
	return level
}

package authz

import (
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// Input builds the input document of the policy contract for one scope.
func Input(id identity.Identity, req identity.Request, sc access.Scope) map[string]any {
	groups := make([]any, len(id.Groups))
	for i, g := range id.Groups {
		groups[i] = g
	}
	ident := map[string]any{
		"method":  string(id.Method),
		"subject": id.Subject,
		"groups":  groups,
	}
	if id.Provider != "" {
		ident["provider"] = id.Provider
	}
	if id.Namespace != "" {
		ident["namespace"] = id.Namespace
	}
	if id.RefreshedFrom != "" {
		ident["refreshed_from"] = string(id.RefreshedFrom)
	}
	if sh := id.Sourcehut; sh != nil {
		grants := make([]any, len(sh.Grants))
		for i, g := range sh.Grants {
			grants[i] = map[string]any{"service": g.Service, "scope": g.Scope, "access": g.Access}
		}
		ident["sourcehut"] = map[string]any{
			"username":   sh.Username,
			"client_id":  sh.ClientID,
			"expires":    sh.Expires.UTC().Format(time.RFC3339),
			"all_grants": sh.AllGrants,
			"grants":     grants,
			"access":     sh.Access,
		}
	}
	if o := id.OIDC; o != nil {
		ident["oidc"] = map[string]any{"issuer": o.Issuer, "claims": claimsOrEmpty(o.Claims)}
	}
	actions := make([]any, len(sc.Actions))
	for i, a := range sc.Actions {
		actions[i] = a
	}
	scope := map[string]any{"type": sc.Type, "name": sc.Name, "actions": actions}
	if sc.Class != "" {
		scope["class"] = sc.Class
	}
	return map[string]any{
		"version":  InputVersion,
		"identity": ident,
		"request": map[string]any{
			"service":    req.Service,
			"client_ip":  req.ClientIP,
			"client_id":  req.ClientID,
			"user_agent": req.UserAgent,
			"time":       req.Time.UTC().Format(time.RFC3339),
		},
		"scope": scope,
	}
}

// claimsOrEmpty is an OIDC token's claims as the policy sees them: an
// object, {} when there are none. The map is shared, not copied: OPA copies
// the input when it converts it, and nothing here writes to it.
func claimsOrEmpty(claims map[string]any) map[string]any {
	if claims == nil {
		return map[string]any{}
	}
	return claims
}

package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// Everything the configuration says about people names a principal,
// "<provider>:<name>": htpasswd:alice and sourcehut:alice are different
// people, and nobody gets rights by sharing a name. A bare name is accepted
// only where it cannot be misread: when exactly one enabled provider could
// have authenticated it, Parse writes it out in full; otherwise it is an
// error that names the choices.

// builtinProviders are the providers this server knows, enabled or not.
var builtinProviders = []string{identity.ProviderHtpasswd, identity.ProviderSourcehut}

// sourcehutUserRE is what a Sourcehut user name looks like: meta.sr.ht
// allows a lowercase letter or "_", then lowercase letters, digits, "_"
// and "-".
var sourcehutUserRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,63}$`)

// checkAccountName checks that name could be an account of provider: a
// principal that no login can produce matches nobody, silently.
func checkAccountName(provider, name string) error {
	switch provider {
	case identity.ProviderSourcehut:
		if !sourcehutUserRE.MatchString(name) {
			return fmt.Errorf("%q is not a Sourcehut user name (a lowercase letter or _, then lowercase letters, digits, _ and -; no ~)", name)
		}
	case identity.ProviderHtpasswd:
		if strings.ContainsFunc(name, func(r rune) bool { return r == ':' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
			return fmt.Errorf("%q cannot be an htpasswd user name (no colons, spaces or control characters)", name)
		}
	}
	return nil
}

// Providers returns the account providers that can authenticate anyone
// under this configuration, in the order they were introduced: htpasswd
// when a file is configured, sourcehut when its login is on and
// authn.sourcehut.users lets someone in, then each authn.ldap entry by its
// name. These are what a bare name could
// mean; an OIDC issuer's subjects are not account names, and are always
// written with the issuer's name.
func (c Config) Providers() []string {
	var p []string
	if c.Authn.Htpasswd != "" {
		p = append(p, identity.ProviderHtpasswd)
	}
	if c.Authn.Sourcehut.CanLogIn() {
		p = append(p, identity.ProviderSourcehut)
	}
	// Each directory's users are accounts too: with htpasswd and a
	// directory, a bare "alice" could be either.
	return append(p, c.Authn.LDAPNames()...)
}

// PrincipalRef is one principal the configuration names, and the key that
// names it (groups.admins[0], policy.data.namespaces.team.push[1]).
type PrincipalRef struct {
	Key       string
	Principal string
}

// Principals lists every principal in groups and in policy.data.namespaces,
// in a stable order. Group references and "*" are left out.
func (c Config) Principals() []PrincipalRef {
	var refs []PrincipalRef
	for _, g := range slices.Sorted(maps.Keys(c.Groups)) {
		for i, m := range c.Groups[g] {
			if _, _, ok := identity.SplitPrincipal(m); ok {
				refs = append(refs, PrincipalRef{fmt.Sprintf("groups.%s[%d]", g, i), m})
			}
		}
	}
	walkNamespaceMembers(c.Policy.Data, func(key string, m string) string {
		if _, _, ok := identity.SplitPrincipal(m); ok {
			refs = append(refs, PrincipalRef{key, m})
		}
		return m
	})
	return refs
}

// walkNamespaceMembers calls f on every string member of
// data.namespaces[ns][action] and stores what it returns in its place when
// that differs (so a walk that changes nothing writes nothing). It skips
// anything of another shape (checkPolicyData reports those).
func walkNamespaceMembers(data map[string]any, f func(key, member string) string) {
	nss, _ := data["namespaces"].(map[string]any)
	for _, ns := range slices.Sorted(maps.Keys(nss)) {
		acl, _ := nss[ns].(map[string]any)
		for _, action := range slices.Sorted(maps.Keys(acl)) {
			members, _ := acl[action].([]any)
			for i, m := range members {
				if s, ok := m.(string); ok {
					if r := f(fmt.Sprintf("policy.data.namespaces.%s.%s[%d]", ns, action, i), s); r != s {
						members[i] = r
					}
				}
			}
		}
	}
}

// resolveMember checks one member of a group (inGroup) or a namespace ACL
// and returns it with a bare name written out as a principal.
func resolveMember(m string, enabled, issuers []string, inGroup bool) (string, error) {
	switch {
	case strings.TrimSpace(m) == "":
		return m, fmt.Errorf("member must not be empty")
	case m != strings.TrimSpace(m):
		return m, fmt.Errorf("member %q has spaces around it", m)
	case m == identity.AnyAuthenticated:
		if inGroup {
			return m, fmt.Errorf(`"*" (every authenticated identity) belongs in a namespace ACL, not in a group`)
		}
		return m, nil
	case strings.HasPrefix(m, identity.GroupPrefix):
		if inGroup {
			return m, fmt.Errorf("%q: a group lists principals, not other groups", m)
		}
		if strings.TrimPrefix(m, identity.GroupPrefix) == "" {
			return m, fmt.Errorf("%q names no group", m)
		}
		return m, nil
	}
	if provider, name, ok := identity.SplitPrincipal(m); ok {
		if slices.Contains(issuers, provider) {
			// An OIDC subject is whatever its issuer says
			// (repo:org/app:ref:refs/heads/main,
			// system:serviceaccount:ci:builder).
			return m, nil
		}
		if !slices.Contains(builtinProviders, provider) {
			return m, fmt.Errorf("%q: unknown provider %q; principals are written %s", m, provider, choices("NAME"))
		}
		if err := checkAccountName(provider, name); err != nil {
			return m, fmt.Errorf("%q: %w", m, err)
		}
		return m, nil
	}
	if strings.Contains(m, ":") {
		also := ", or group:NAME"
		if inGroup {
			also = ""
		}
		return m, fmt.Errorf("%q is not a principal: write %s%s", m, choices("NAME"), also)
	}
	switch len(enabled) {
	case 1:
		r := identity.Principal(enabled[0], m)
		if err := checkAccountName(enabled[0], m); err != nil {
			return m, fmt.Errorf("%q (as %q): %w", m, r, err)
		}
		return r, nil
	case 0:
		return m, fmt.Errorf("%q names no provider, and no login could authenticate it: write %s, with authn.htpasswd "+
			"or with the user in authn.sourcehut.users", m, choices(m))
	default:
		var opts []string
		for _, p := range enabled {
			opts = append(opts, identity.Principal(p, m))
		}
		return m, fmt.Errorf("%q could be %s: they are different people; write the one you mean", m, strings.Join(opts, " or "))
	}
}

func choices(name string) string {
	var opts []string
	for _, p := range builtinProviders {
		opts = append(opts, identity.Principal(p, name))
	}
	return strings.Join(opts, " or ")
}

// resolvePrincipals checks every member of groups and of
// policy.data.namespaces, and returns copies with bare names resolved.
func resolvePrincipals(c Config) (groups map[string][]string, data map[string]any, problems []string) {
	enabled := c.Providers()
	var issuers []string
	for _, o := range c.Authn.OIDC {
		issuers = append(issuers, o.Name)
	}
	// A directory's user names are its own: corp:alice is written with
	// the directory's name, like an OIDC subject.
	issuers = append(issuers, c.Authn.LDAPNames()...)
	groups = make(map[string][]string, len(c.Groups))
	for _, name := range slices.Sorted(maps.Keys(c.Groups)) {
		switch {
		case strings.TrimSpace(name) == "":
			problems = append(problems, "groups: a group name must not be empty")
			continue
		case strings.ContainsAny(name, ": \t") || name == identity.AnyAuthenticated:
			problems = append(problems, fmt.Sprintf("groups.%s: a group name must not be \"*\" or contain a colon or spaces (provider:group is how a directory's groups are named)", name))
			continue
		}
		members := slices.Clone(c.Groups[name])
		for i, m := range members {
			r, err := resolveMember(m, enabled, issuers, true)
			if err != nil {
				problems = append(problems, fmt.Sprintf("groups.%s[%d]: %v", name, i, err))
			}
			members[i] = r
		}
		groups[name] = members
	}
	if c.Groups == nil {
		groups = nil
	}
	data = cloneJSON(c.Policy.Data)
	walkNamespaceMembers(data, func(key, m string) string {
		r, err := resolveMember(m, enabled, issuers, false)
		if err != nil {
			problems = append(problems, key+": "+err.Error())
		}
		return r
	})
	return groups, data, problems
}

// checkPolicyData checks the shape of the keys the embedded policy reads,
// so a mistyped value is refused here instead of failing every decision.
func checkPolicyData(data map[string]any) []string {
	var p []string
	stringList := func(key string) {
		v, ok := data[key]
		if !ok {
			return
		}
		list, ok := v.([]any)
		if !ok {
			p = append(p, fmt.Sprintf("policy.data.%s: must be a list of strings", key))
			return
		}
		for i, e := range list {
			if _, ok := e.(string); !ok {
				p = append(p, fmt.Sprintf("policy.data.%s[%d]: must be a string", key, i))
			}
		}
	}
	stringList("public")
	stringList("reserved")
	if v, ok := data["namespaces"]; ok {
		nss, ok := v.(map[string]any)
		if !ok {
			return append(p, "policy.data.namespaces: must map a namespace to {action: [members]}")
		}
		for _, ns := range slices.Sorted(maps.Keys(nss)) {
			acl, ok := nss[ns].(map[string]any)
			if !ok {
				p = append(p, fmt.Sprintf("policy.data.namespaces.%s: must map an action to a list of members", ns))
				continue
			}
			for _, action := range slices.Sorted(maps.Keys(acl)) {
				members, ok := acl[action].([]any)
				if !ok {
					p = append(p, fmt.Sprintf("policy.data.namespaces.%s.%s: must be a list of members", ns, action))
					continue
				}
				for i, m := range members {
					if _, ok := m.(string); !ok {
						p = append(p, fmt.Sprintf("policy.data.namespaces.%s.%s[%d]: must be a string", ns, action, i))
					}
				}
			}
		}
	}
	return p
}

// cloneJSON deep-copies a JSON-shaped value's maps and lists.
func cloneJSON[T any](v T) T {
	var c func(any) any
	c = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			if v == nil {
				return v
			}
			out := make(map[string]any, len(v))
			for k, e := range v {
				out[k] = c(e)
			}
			return out
		case []any:
			out := make([]any, len(v))
			for i, e := range v {
				out[i] = c(e)
			}
			return out
		}
		return v
	}
	out, _ := c(v).(T)
	return out
}

// checkSourcehutUsers checks authn.sourcehut.users.
func checkSourcehutUsers(users []string) []string {
	var p []string
	seen := map[string]int{}
	for i, u := range users {
		key := fmt.Sprintf("authn.sourcehut.users[%d]", i)
		switch {
		case u == AnyUser:
			if len(users) > 1 {
				p = append(p, key+`: "*" lets every account in; list names or "*", not both`)
			}
		case strings.HasPrefix(u, "~"):
			p = append(p, fmt.Sprintf("%s: write the user name without ~ (%q)", key, strings.TrimPrefix(u, "~")))
		case strings.HasPrefix(u, identity.ProviderSourcehut+":"):
			p = append(p, fmt.Sprintf("%s: write the bare user name (%q): this list is Sourcehut's already", key, strings.TrimPrefix(u, identity.ProviderSourcehut+":")))
		case !sourcehutUserRE.MatchString(u):
			p = append(p, fmt.Sprintf("%s: %q is not a Sourcehut user name (a lowercase letter or _, then lowercase letters, digits, _ and -)", key, u))
		}
		if j, dup := seen[u]; dup {
			p = append(p, fmt.Sprintf("%s: %q is listed already at [%d]", key, u, j))
		} else {
			seen[u] = i
		}
	}
	return p
}

// Warnings are settings that are valid but look like a mistake: a principal
// of a provider nobody can log in with, a Sourcehut user who may not log
// in, a group that does not exist. check-config prints them; serve logs
// them. Warnings that need the htpasswd file are the caller's.
func (c Config) Warnings() []string {
	var w []string
	enabled := c.Providers()
	sh := c.Authn.Sourcehut
	directories := c.Authn.LDAPNames()
	for _, r := range c.Principals() {
		provider, name, _ := identity.SplitPrincipal(r.Principal)
		switch {
		case slices.Contains(directories, provider):
			// Whether the directory has the user is the directory's to say
			// (check-config asks it about htpasswd names only).
		case !slices.Contains(enabled, provider) && provider == identity.ProviderSourcehut:
			w = append(w, fmt.Sprintf("%s: %s matches nobody: Sourcehut login is off or lets nobody in (authn.sourcehut.users)", r.Key, r.Principal))
		case !slices.Contains(enabled, provider):
			w = append(w, fmt.Sprintf("%s: %s matches nobody: no %s login is configured", r.Key, r.Principal, provider))
		case provider == identity.ProviderSourcehut && !sh.AllUsers() && !slices.Contains(sh.Users, name):
			w = append(w, fmt.Sprintf("%s: %s may not log in: authn.sourcehut.users does not list %q", r.Key, r.Principal, name))
		}
	}
	walkNamespaceMembers(c.Policy.Data, func(key, m string) string {
		if g, ok := strings.CutPrefix(m, identity.GroupPrefix); ok {
			if dir, _, qualified := strings.Cut(g, ":"); qualified {
				// A directory's group, "group:corp:devs".
				if !slices.Contains(directories, dir) {
					w = append(w, fmt.Sprintf("%s: %s names the groups of %q, which is no directory of authn.ldap, so it matches nobody", key, m, dir))
				}
				return m
			}
			if _, known := c.Groups[g]; !known {
				w = append(w, fmt.Sprintf("%s: %s is no group of groups:, so it matches nobody", key, m))
			}
		}
		return m
	})
	return w
}

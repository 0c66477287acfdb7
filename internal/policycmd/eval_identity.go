package policycmd

// The identity a request of policy eval stands for: what serve would have
// built for the login the flags describe (password, Sourcehut token, OIDC
// ID token claims, a refresh of one of them), without checking credentials.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
	"git.sr.ht/~zozs/srht-registry/internal/config"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// methodProviders pairs each login method with the provider that serves it.
var methodProviders = map[identity.Method]string{
	identity.MethodPassword:  identity.ProviderHtpasswd,
	identity.MethodSourcehut: identity.ProviderSourcehut,
}

// evalIdentity builds the identity serve would have built for opts' User,
// Method, Provider, ClaimsFile, Groups and Grants, without checking
// credentials: the groups of the principal and the namespace it owns as
// serve computes them (the htpasswd file decides whether a Sourcehut
// user's name is held by a local account).
func evalIdentity(cfg config.Config, opts EvalOptions, req identity.Request) (identity.Identity, error) {
	method, user, grants := opts.Method, opts.User, opts.Grants
	if method == "" {
		method = string(identity.MethodAnonymous)
		for m, p := range methodProviders {
			if opts.Provider == p {
				method = string(m)
			}
		}
		_, isOIDC := oidcEntryNamed(cfg, opts.Provider)
		switch {
		case opts.ClaimsFile != "" || isOIDC:
			method = string(identity.MethodOIDC)
		case isDirectory(cfg, opts.Provider):
			method = string(identity.MethodPassword)
		case opts.Provider != "" && method == string(identity.MethodAnonymous):
			if len(cfg.Authn.LDAP) > 0 {
				return identity.Identity{}, usage(fmt.Errorf("--provider %s is neither htpasswd, sourcehut, an authn.oidc nor an authn.ldap entry of the config%s%s",
					opts.Provider, oidcNames(cfg), directoryNames(cfg)))
			}
			return identity.Identity{}, usage(fmt.Errorf("--provider %s is neither htpasswd, sourcehut nor an authn.oidc entry of the config%s",
				opts.Provider, oidcNames(cfg)))
		case user != "" && opts.Provider == "":
			method = string(identity.MethodPassword)
		}
	}
	id := identity.Identity{Method: identity.Method(method), Subject: user}
	switch id.Method {
	case identity.MethodAnonymous:
		if user != "" || opts.Groups != nil || opts.Provider != "" || opts.ClaimsFile != "" {
			return id, usage(errors.New("--method anonymous takes no --user, --provider, --claims or --groups"))
		}
		return identity.Anonymous, nil
	case identity.MethodPassword, identity.MethodSourcehut:
		if user == "" {
			return id, usage(fmt.Errorf("--method %s needs --user", method))
		}
		if opts.ClaimsFile != "" {
			return id, usage(fmt.Errorf("--claims is for --method oidc, not --method %s", method))
		}
		id.Provider = methodProviders[id.Method]
		if id.Method == identity.MethodPassword && isDirectory(cfg, opts.Provider) {
			// A directory's user: its groups are the directory's, which
			// policy eval does not ask; --groups corp:devs names them.
			id.Provider = opts.Provider
		}
		if opts.Provider != "" && opts.Provider != id.Provider {
			return id, usage(fmt.Errorf("--provider %s does not log in with --method %s (that is %s's)", opts.Provider, method, id.Provider))
		}
	case identity.MethodOIDC:
		if err := oidcLogin(cfg, opts, &id); err != nil {
			return id, err
		}
	default:
		return id, usage(fmt.Errorf("--method must be password, sourcehut, oidc or anonymous, got %q", method))
	}
	if id.Provider == identity.ProviderSourcehut && !sourcehut.NewAllowList(cfg.Authn.Sourcehut.LoginUsers()).Admits(user) {
		return id, fmt.Errorf("the server would refuse this login (401): authn.sourcehut.users does not let %q in", user)
	}
	if opts.Groups != nil {
		if err := checkDirectoryGroups(cfg, id, opts.Groups); err != nil {
			return id, err
		}
		id.Groups = append(id.Groups, opts.Groups...) // nil when empty, as the config's would be
	} else {
		id.Groups = authn.GroupsOf(cfg.Groups, id.Principal())
	}
	var local authn.LocalAccounts
	if cfg.Authn.Htpasswd != "" {
		h, err := authn.LoadHtpasswd(cfg.Authn.Htpasswd)
		if err != nil {
			return id, err
		}
		local = h
	}
	id.Namespace = authn.NamespaceOf(id, local)
	if id.Method == identity.MethodSourcehut {
		switch grants {
		case "":
			grants = req.Service + "/" + sourcehut.RegistryScope + ":" + sourcehut.ReadWrite
		case "all":
			grants = ""
		}
		parsed, all, err := sourcehut.ParseGrants(grants)
		if err != nil {
			return id, usage(fmt.Errorf("--grants: %w", err))
		}
		level := sourcehut.RegistryAccess(parsed, all, req.Service)
		if level == "" {
			return id, fmt.Errorf("the server would refuse this token at login (401): its grants hold no %s/%s", req.Service, sourcehut.RegistryScope)
		}
		id.Sourcehut = &identity.Sourcehut{
			Username: user, ClientID: req.ClientID, Expires: req.Time.Add(time.Hour),
			AllGrants: all, Grants: parsed, Access: level,
		}
	} else if grants != "" {
		return id, usage(errors.New("--grants is for --method sourcehut"))
	}
	return id, nil
}

// oidcLogin completes id, an OIDC login, as serve would have built it
// from an ID token with the claims of opts.ClaimsFile: the provider and
// issuer of the authn.oidc entry opts.Provider names, the subject its
// subject_claim names (or opts.User), and the claims. A claims file whose
// token serve would refuse (another issuer, no subject) is an error.
func oidcLogin(cfg config.Config, opts EvalOptions, id *identity.Identity) error {
	entry, err := oidcEntry(cfg, opts.Provider)
	if err != nil {
		return err
	}
	if opts.ClaimsFile == "" {
		return usage(fmt.Errorf("--method oidc needs --claims FILE.json: the claims of an ID token of authn.oidc entry %s", entry.Name))
	}
	claims, err := readClaims(opts.ClaimsFile)
	if err != nil {
		return err
	}
	if iss, ok := claims["iss"]; ok && iss != entry.Issuer {
		return fmt.Errorf("the server would refuse this token as one of authn.oidc entry %s (401): its iss %s is not that entry's issuer %s",
			entry.Name, jsonText(iss), entry.Issuer)
	}
	subjectClaim := entry.SubjectClaim
	if subjectClaim == "" {
		subjectClaim = "sub"
	}
	if id.Subject == "" {
		subject, ok := claims[subjectClaim].(string)
		if !ok || subject == "" {
			return fmt.Errorf("the server would refuse this token (401): %s has no claim %q (the subject claim of authn.oidc entry %s) that is a non-empty string; add it, or name a subject with --user",
				opts.ClaimsFile, subjectClaim, entry.Name)
		}
		id.Subject = subject
	}
	id.Provider = entry.Name
	id.OIDC = &identity.OIDC{Issuer: entry.Issuer, Claims: claims}
	return nil
}

// oidcEntry is the authn.oidc entry named name, or, for an empty name,
// the config's only one; a usage error when there is no such entry.
func oidcEntry(cfg config.Config, name string) (config.OIDC, error) {
	if name == "" {
		switch len(cfg.Authn.OIDC) {
		case 0:
			return config.OIDC{}, usage(errors.New("--method oidc: the config has no authn.oidc entry (a trusted issuer) whose tokens could log in"))
		case 1:
			return cfg.Authn.OIDC[0], nil
		}
		return config.OIDC{}, usage(fmt.Errorf("--method oidc needs --provider: the config trusts several issuers%s", oidcNames(cfg)))
	}
	if o, ok := oidcEntryNamed(cfg, name); ok {
		return o, nil
	}
	return config.OIDC{}, usage(fmt.Errorf("--provider %s is not an authn.oidc entry of the config%s", name, oidcNames(cfg)))
}

// oidcEntryNamed is the authn.oidc entry named name, if there is one.
func oidcEntryNamed(cfg config.Config, name string) (config.OIDC, bool) {
	for _, o := range cfg.Authn.OIDC {
		if name != "" && o.Name == name {
			return o, true
		}
	}
	return config.OIDC{}, false
}

// isDirectory reports whether name is the name of an authn.ldap entry.
func isDirectory(cfg config.Config, name string) bool {
	return name != "" && slices.Contains(cfg.Authn.LDAPNames(), name)
}

// directoryNames lists the authn.ldap entries' names for an error, or "".
func directoryNames(cfg config.Config) string {
	if len(cfg.Authn.LDAP) == 0 {
		return ""
	}
	return " (directories: " + strings.Join(cfg.Authn.LDAPNames(), ", ") + ")"
}

// checkDirectoryGroups refuses, in --groups, a group no login could give
// id: a name with a colon is a directory's group ("corp:devs"), which only
// that directory's identities have (serve drops any other).
func checkDirectoryGroups(cfg config.Config, id identity.Identity, groups []string) error {
	for _, g := range groups {
		dir, _, qualified := strings.Cut(g, ":")
		switch {
		case !qualified:
		case !isDirectory(cfg, dir):
			return usage(fmt.Errorf("--groups %s: %q is no authn.ldap entry of the config%s; a group with a colon is a directory's (<directory>:<group>)",
				g, dir, directoryNames(cfg)))
		case dir != id.Provider:
			return usage(fmt.Errorf("--groups %s: only %s's identities are in %s's groups (this one is %s's)", g, dir, dir, orDashS(id.Provider)))
		}
	}
	return nil
}

// oidcNames lists the names of the config's authn.oidc entries, for an
// error: " (it has github, gitlab)", or " (it has none)".
func oidcNames(cfg config.Config) string {
	if len(cfg.Authn.OIDC) == 0 {
		return " (it has none)"
	}
	names := make([]string, len(cfg.Authn.OIDC))
	for i, o := range cfg.Authn.OIDC {
		names[i] = o.Name
	}
	return " (it has " + strings.Join(names, ", ") + ")"
}

// readClaims reads a claims file: one JSON object, numbers kept as
// json.Number as serve keeps a token's.
func readClaims(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usage(fmt.Errorf("--claims: %w", err))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err = dec.Decode(&v); err == nil {
		// Nothing may follow the value.
		switch _, err = dec.Token(); {
		case errors.Is(err, io.EOF):
			err = nil
		case err == nil:
			err = errors.New("more than one JSON value")
		}
	}
	claims, ok := v.(map[string]any)
	switch {
	case err != nil:
		return nil, usage(fmt.Errorf("--claims %s: not a JSON object of claims (as an ID token's payload decodes to): %w", path, err))
	case !ok:
		return nil, usage(fmt.Errorf("--claims %s: not a JSON object of claims (as an ID token's payload decodes to), but %s", path, jsonKind(v)))
	}
	return claims, nil
}

// jsonKind names the JSON type of a decoded value, for an error.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return "an object"
}

// jsonText is v as JSON, for an error naming a claim's value.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

package identity

import (
	"fmt"
	"regexp"
	"strings"
)

// The providers built in. Every identity names the one that vouched for it,
// and everything configured by name (group members, namespace ACLs) names a
// principal as "<provider>:<name>".
const (
	ProviderHtpasswd  = "htpasswd"
	ProviderSourcehut = "sourcehut"
)

// GroupPrefix starts a member that names a group ("group:ci") rather than a
// principal, so "group" can never be a provider's name.
const GroupPrefix = "group:"

// AnyAuthenticated is the member that stands for every authenticated
// identity, whatever its provider.
const AnyAuthenticated = "*"

// providerName is the grammar of a provider name: short, lowercase, no
// colon, so "<provider>:<name>" splits at its first colon.
var providerName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// reservedProviderNames can never name a provider: "group" starts group
// members, the others read as words of the configuration.
var reservedProviderNames = map[string]bool{"group": true, "anonymous": true, "refresh": true}

// ValidProviderName reports whether s may name a provider.
func ValidProviderName(s string) error {
	switch {
	case !providerName.MatchString(s):
		return fmt.Errorf("provider name %q: want a lowercase letter followed by up to 31 lowercase letters, digits, _ or -", s)
	case reservedProviderNames[s]:
		return fmt.Errorf("provider name %q is reserved", s)
	}
	return nil
}

// Principal returns "<provider>:<subject>".
func Principal(provider, subject string) string { return provider + ":" + subject }

// SplitPrincipal splits "<provider>:<name>" at its first colon. ok is false
// when s has no colon, an empty side, or a provider part that is not a
// provider name (so "group:ci" and "*" are not principals). The name may
// itself hold colons (an OIDC subject such as repo:org/app:ref:main).
func SplitPrincipal(s string) (provider, name string, ok bool) {
	provider, name, found := strings.Cut(s, ":")
	if !found || name == "" || ValidProviderName(provider) != nil {
		return "", "", false
	}
	return provider, name, true
}

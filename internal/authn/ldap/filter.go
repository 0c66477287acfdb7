package ldap

import (
	"errors"
	"fmt"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"
)

// The placeholders of the filter templates.
const (
	PlaceholderUser = "user" // the login name
	PlaceholderDN   = "dn"   // the user entry's DN (group filters)
)

// Expand fills the placeholders of a filter template ({user}, {dn}) with
// values, each escaped per RFC 4515 (ldap.EscapeFilter: "*", "(", ")",
// "\", NUL and every byte outside ASCII become \XX), so a value can never
// change the filter's structure: a user name "*)(uid=*" is searched as
// exactly that string. A "{" that does not open a known placeholder, or a
// placeholder without its value, is an error.
func Expand(template string, values map[string]string) (string, error) {
	var b strings.Builder
	rest := template
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:i])
		rest = rest[i+1:]
		j := strings.IndexByte(rest, '}')
		if j < 0 {
			return "", errors.New(`a "{" without its "}"`)
		}
		name := rest[:j]
		v, ok := values[name]
		if !ok {
			return "", fmt.Errorf("unknown placeholder {%s}", name)
		}
		b.WriteString(goldap.EscapeFilter(v))
		rest = rest[j+1:]
	}
}

// CheckFilter checks a filter template for the config: its placeholders
// are among allowed, {user} is there when requireUser, and the filter
// parses with them filled in.
func CheckFilter(template string, allowed []string, requireUser bool) error {
	values := map[string]string{}
	for _, p := range allowed {
		values[p] = "x"
	}
	f, err := Expand(template, values)
	if err != nil {
		return fmt.Errorf("%w (placeholders: {%s})", err, strings.Join(allowed, "}, {"))
	}
	if requireUser && !strings.Contains(template, "{"+PlaceholderUser+"}") {
		return fmt.Errorf("%q must contain {user}, the login name, such as (uid={user})", template)
	}
	if !strings.HasPrefix(f, "(") {
		return fmt.Errorf("%q must be a parenthesised LDAP filter, such as (uid={user})", template)
	}
	if _, err := goldap.CompileFilter(f); err != nil {
		return fmt.Errorf("%q is not an LDAP filter: %w", template, err)
	}
	return nil
}

// CheckDN checks a distinguished name for the config.
func CheckDN(dn string) error {
	parsed, err := goldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 {
		return fmt.Errorf("%q is not a DN such as dc=example,dc=org", dn)
	}
	return nil
}

// groupName is the name of the group whose DN is dn, as memberOf lists
// it: the value of its first RDN when that is of type attr (cn=devs,ou=…
// is "devs" for attr cn), else "" (not a group this entry can name).
func groupName(dn, attr string) string {
	parsed, err := goldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 || len(parsed.RDNs[0].Attributes) != 1 {
		return ""
	}
	a := parsed.RDNs[0].Attributes[0]
	if !strings.EqualFold(a.Type, attr) {
		return ""
	}
	return a.Value
}

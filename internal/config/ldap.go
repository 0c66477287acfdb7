package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/authn/ldap"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// Defaults and bounds of an authn.ldap entry. ldap.DefaultCacheTTL is
// both how long a successful bind is remembered and how often a refresh
// token's user is looked up again: the delay before a directory change
// (a removed group member, a disabled account) applies.
const (
	defaultLDAPTimeout          = 5 * time.Second
	defaultLDAPPoolSize         = 4
	maxLDAPPoolSize             = 64
	defaultLDAPSubjectAttribute = "uid"
	defaultLDAPGroupAttribute   = "cn"
	maxLDAPCacheTTL             = time.Hour
)

// LDAP is one directory (OpenLDAP, Active Directory, …) whose users log in
// with their directory password, as the provider Name. See docs/ldap.md.
type LDAP struct {
	Name string `yaml:"name"` // the provider name (identity.provider); unique; required
	// URLs are the directory's servers, tried in order: ldaps://, or
	// ldap:// with StartTLS, or plain ldap:// on loopback only.
	URLs     []string `yaml:"urls"`
	StartTLS bool     `yaml:"start_tls"` // StartTLS on ldap:// URLs
	CAFile   string   `yaml:"ca_file"`   // PEM CA certificates the servers' certificates chain to; default the system's
	// BindDN and BindPasswordFile are the service account that searches
	// for users; both empty = an anonymous search.
	BindDN           string `yaml:"bind_dn"`
	BindPasswordFile string `yaml:"bind_password_file"` // mode 0600 or stricter; never logged
	UserBase         string `yaml:"user_base"`          // where users are searched (subtree); required
	UserFilter       string `yaml:"user_filter"`        // must hold {user} (escaped per RFC 4515); required
	SubjectAttribute string `yaml:"subject_attribute"`  // the attribute that becomes identity.subject; default uid
	// GroupBase and GroupFilter search the user's groups ({dn}: the user's
	// DN, {user}: the login name, both escaped); without them the groups
	// are the memberOf values of the user's entry.
	GroupBase      string    `yaml:"group_base"`
	GroupFilter    string    `yaml:"group_filter"`
	GroupAttribute string    `yaml:"group_attribute"` // the group's name; default cn
	Timeout        Duration  `yaml:"timeout"`         // one connection, bind or search; default 5s
	PoolSize       int       `yaml:"pool_size"`       // idle connections kept per entry; default 4
	CacheTTL       *Duration `yaml:"cache_ttl"`       // successful logins remembered, and refresh re-checks; default 1m; 0 = off
	CacheSize      int       `yaml:"cache_size"`      // default 10000
}

// ldapDefaults fills in each directory's unset keys; defaults of list
// elements cannot be in Default.
func (c *Config) ldapDefaults() {
	for i := range c.Authn.LDAP {
		l := &c.Authn.LDAP[i]
		if l.SubjectAttribute == "" {
			l.SubjectAttribute = defaultLDAPSubjectAttribute
		}
		if l.GroupAttribute == "" {
			l.GroupAttribute = defaultLDAPGroupAttribute
		}
		if l.Timeout == 0 {
			l.Timeout = Duration(defaultLDAPTimeout)
		}
		if l.PoolSize == 0 {
			l.PoolSize = defaultLDAPPoolSize
		}
		if l.CacheTTL == nil {
			ttl := Duration(ldap.DefaultCacheTTL)
			l.CacheTTL = &ttl
		}
		if l.CacheSize == 0 {
			l.CacheSize = ldap.DefaultCacheSize
		}
	}
}

// validateLDAP checks the directories; oidc are the OIDC issuers, whose
// names a directory must not take.
func validateLDAP(dirs []LDAP, issuers []OIDC, p *problems) {
	names := map[string]string{}
	for i, o := range issuers {
		names[o.Name] = fmt.Sprintf("authn.oidc[%d]", i)
	}
	for i, l := range dirs {
		key := fmt.Sprintf("authn.ldap[%d]", i)
		switch err := identity.ValidProviderName(l.Name); {
		case l.Name == "":
			p.add(key+".name", "is required: it names the provider of the identities its users log in as (identity.provider), such as corp")
		case err != nil:
			p.add(key+".name", "%v", err)
		case slices.Contains(builtinProviders, l.Name):
			p.add(key+".name", "%q is the name of a built-in provider; choose another (corp, ad…)", l.Name)
		default:
			if other, dup := names[l.Name]; dup {
				p.add(key+".name", "%q is also the name of %s: each directory is its own provider", l.Name, other)
			}
			names[l.Name] = key
		}
		if len(l.URLs) == 0 {
			p.add(key+".urls", "at least one URL is required, such as ldaps://ldap.example.org")
		}
		for j, u := range l.URLs {
			if msg := checkLDAPURL(u, l.StartTLS); msg != "" {
				p.add(fmt.Sprintf("%s.urls[%d]", key, j), "%s", msg)
			}
		}
		if (l.BindDN == "") != (l.BindPasswordFile == "") {
			p.add(key+".bind_password_file", "bind_dn and bind_password_file go together (both empty: an anonymous search)")
		}
		if l.BindDN != "" {
			if err := ldap.CheckDN(l.BindDN); err != nil {
				p.add(key+".bind_dn", "%v", err)
			}
		}
		if l.UserBase == "" {
			p.add(key+".user_base", "is required: the DN under which users are searched, such as ou=people,dc=example,dc=org")
		} else if err := ldap.CheckDN(l.UserBase); err != nil {
			p.add(key+".user_base", "%v", err)
		}
		if l.UserFilter == "" {
			p.add(key+".user_filter", "is required, such as (uid={user}), or (&(objectClass=user)(sAMAccountName={user})) for Active Directory")
		} else if err := ldap.CheckFilter(l.UserFilter, []string{ldap.PlaceholderUser}, true); err != nil {
			p.add(key+".user_filter", "%v", err)
		}
		checkAttribute(p, key+".subject_attribute", l.SubjectAttribute)
		checkAttribute(p, key+".group_attribute", l.GroupAttribute)
		switch {
		case l.GroupFilter != "" && l.GroupBase == "":
			p.add(key+".group_base", "is required with group_filter: the DN under which groups are searched")
		case l.GroupFilter == "" && l.GroupBase != "":
			p.add(key+".group_filter", "is required with group_base, such as (member={dn}); without both, groups are read from memberOf")
		case l.GroupFilter != "":
			if err := ldap.CheckDN(l.GroupBase); err != nil {
				p.add(key+".group_base", "%v", err)
			}
			if err := ldap.CheckFilter(l.GroupFilter, []string{ldap.PlaceholderDN, ldap.PlaceholderUser}, false); err != nil {
				p.add(key+".group_filter", "%v", err)
			}
		}
		if l.Timeout <= 0 || l.Timeout.D() > time.Minute {
			p.add(key+".timeout", "must be above 0 and at most 1m, got %v", l.Timeout)
		}
		if l.PoolSize < 1 || l.PoolSize > maxLDAPPoolSize {
			p.add(key+".pool_size", "must be between 1 and %d, got %d", maxLDAPPoolSize, l.PoolSize)
		}
		if ttl := l.CacheDuration(); ttl < 0 || ttl > maxLDAPCacheTTL {
			p.add(key+".cache_ttl", "must be between 0 (off) and %v: it is how long a removed user or group member keeps its rights, got %v", maxLDAPCacheTTL, ttl)
		}
		if l.CacheSize < 1 || l.CacheSize > maxCacheSize {
			p.add(key+".cache_size", "must be between 1 and %d, got %d", maxCacheSize, l.CacheSize)
		}
	}
}

// checkLDAPURL says what is wrong with one of a directory's URLs, or "".
// A password sent in the clear is refused: plain ldap:// only to loopback,
// unless StartTLS protects it.
func checkLDAPURL(s string, startTLS bool) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
		return fmt.Sprintf("must be ldaps://host[:port] or ldap://host[:port], got %q", s)
	}
	switch u.Scheme {
	case "ldaps":
		if startTLS {
			return "start_tls is for ldap:// URLs: an ldaps:// connection is TLS from the start"
		}
	case "ldap":
		if !startTLS && !loopbackHost(u.Hostname()) {
			return fmt.Sprintf("%s would send passwords in the clear: use ldaps://, or start_tls: true (plain ldap:// only on loopback)", s)
		}
	default:
		return fmt.Sprintf("must be an ldaps:// or ldap:// URL, not %s://", u.Scheme)
	}
	return ""
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// checkAttribute checks an attribute description: a name or an OID.
func checkAttribute(p *problems, key, attr string) {
	if attr == "" || strings.Trim(attr, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.;") != "" {
		p.add(key, "%q is not an attribute name", attr)
	}
}

// CacheDuration is cache_ttl, its default when unset.
func (l LDAP) CacheDuration() time.Duration {
	if l.CacheTTL == nil {
		return ldap.DefaultCacheTTL
	}
	return l.CacheTTL.D()
}

// LDAPNames are the names of the configured directories, in order.
func (a Authn) LDAPNames() []string {
	var names []string
	for _, l := range a.LDAP {
		names = append(names, l.Name)
	}
	return names
}

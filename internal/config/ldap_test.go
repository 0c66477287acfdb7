package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// ldapEntry is a valid authn.ldap entry, with extra keys (each line
// indented by six spaces) added.
func ldapEntry(name, extra string) string {
	return `    - name: ` + name + `
      urls: [ldap://127.0.0.1:3389]
      user_base: ou=people,dc=example,dc=org
      user_filter: (uid={user})
` + extra
}

func TestParseLDAP(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`
authn:
  ldap:
` + ldapEntry("corp", "") + ldapEntry("ad", `      bind_dn: cn=reader,dc=example,dc=org
      bind_password_file: ldap-password
      cache_ttl: 0
`) + `groups:
  admins: ["corp:alice"]
policy:
  data:
    namespaces: {team: {push: ["group:corp:devs", "ad:bob"]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	corp, ad := cfg.Authn.LDAP[0], cfg.Authn.LDAP[1]
	if corp.SubjectAttribute != "uid" || corp.GroupAttribute != "cn" || corp.Timeout.D() != 5*time.Second || corp.PoolSize != 4 ||
		corp.CacheDuration() != time.Minute || corp.CacheSize != 10000 {
		t.Errorf("defaults not applied: %+v", corp)
	}
	if ad.CacheDuration() != 0 {
		t.Errorf("cache_ttl: 0 is %v, want off", ad.CacheDuration())
	}
	if got := cfg.Groups["admins"]; !slices.Equal(got, []string{"corp:alice"}) {
		t.Errorf("a directory principal in a group: %v", got)
	}
	if w := cfg.Warnings(); len(w) != 0 {
		t.Errorf("warnings: %q", w)
	}
	if got := cfg.Authn.LDAPNames(); !slices.Equal(got, []string{"corp", "ad"}) {
		t.Errorf("LDAPNames = %v", got)
	}
}

func TestParseLDAPMistakes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"no name", ldapEntry("", ""), []string{"authn.ldap[0].name: is required"}},
		{"a built-in name", ldapEntry("htpasswd", ""), []string{`authn.ldap[0].name: "htpasswd" is the name of a built-in provider`}},
		{"a reserved name", ldapEntry("group", ""), []string{"authn.ldap[0].name: "}},
		{"two of one name", ldapEntry("corp", "") + ldapEntry("corp", ""), []string{`authn.ldap[1].name: "corp" is also the name of authn.ldap[0]`}},
		{"plain ldap:// to another host", ldapEntry("corp", "      urls: [ldap://ldap.example.org]\n"), nil},
		{"no {user}", ldapEntry("corp", "      user_filter: (uid=alice)\n"), nil},
		{"not a filter", ldapEntry("corp", "      user_filter: (uid={user}\n"), nil},
		{"unknown placeholder", ldapEntry("corp", "      user_filter: (uid={username})\n"), nil},
		{"start_tls with ldaps", ldapEntry("corp", "      urls: [ldaps://ldap.example.org]\n      start_tls: true\n"), nil},
		{"bind_dn alone", ldapEntry("corp", "      bind_dn: cn=reader,dc=example,dc=org\n"), []string{"authn.ldap[0].bind_password_file: bind_dn and bind_password_file go together"}},
		{"group_filter alone", ldapEntry("corp", "      group_filter: (member={dn})\n"), []string{"authn.ldap[0].group_base: is required with group_filter"}},
		{"bad group filter", ldapEntry("corp", "      group_base: ou=groups,dc=x\n      group_filter: (member={uid})\n"), []string{"authn.ldap[0].group_filter: unknown placeholder {uid}"}},
		{"pool too big", ldapEntry("corp", "      pool_size: 1000\n"), []string{"authn.ldap[0].pool_size: must be between 1 and 64"}},
		{"cache too long", ldapEntry("corp", "      cache_ttl: 2h\n"), []string{"authn.ldap[0].cache_ttl: must be between 0 (off) and 1h0m0s"}},
		{"bad attribute", ldapEntry("corp", "      subject_attribute: \"u id\"\n"), []string{`authn.ldap[0].subject_attribute: "u id" is not an attribute name`}},
	}
	// Cases without their own want expect a problem on the key they change.
	wantKey := map[string]string{
		"plain ldap:// to another host": "authn.ldap[0].urls[0]: ldap://ldap.example.org would send passwords in the clear",
		"no {user}":                     "authn.ldap[0].user_filter: \"(uid=alice)\" must contain {user}",
		"not a filter":                  "authn.ldap[0].user_filter: \"(uid={user}\" is not an LDAP filter",
		"unknown placeholder":           "authn.ldap[0].user_filter: unknown placeholder {username}",
		"start_tls with ldaps":          "authn.ldap[0].urls[0]: start_tls is for ldap:// URLs",
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := tc.want
			if want == nil {
				want = []string{wantKey[tc.name]}
			}
			// Duplicate keys in the entry: the later line (the mistake)
			// replaces the valid one.
			doc := "authn:\n  ldap:\n" + dedupeKeys(tc.yaml)
			_, err := Parse([]byte(doc))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse:\n%s\n= %v, want a validation error", doc, err)
			}
			for _, w := range want {
				if !slices.ContainsFunc(ve.Problems, func(p string) bool { return strings.Contains(p, w) }) {
					t.Errorf("problems %q lack %q", ve.Problems, w)
				}
			}
		})
	}
}

// dedupeKeys keeps, of keys written twice in one list entry, the last.
func dedupeKeys(y string) string {
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(y, "\n"), "\n") {
		if strings.HasPrefix(line, "    - ") {
			out = append(out, line)
			continue
		}
		key, _, _ := strings.Cut(strings.TrimSpace(line), ":")
		start := len(out) - 1
		for start > 0 && !strings.HasPrefix(out[start], "    - ") {
			start--
		}
		out = slices.DeleteFunc(out, func(l string) bool {
			k, _, _ := strings.Cut(strings.TrimSpace(l), ":")
			return k == key && !strings.HasPrefix(l, "    - ") && slices.Index(out, l) >= start
		})
		out = append(out, line)
	}
	return strings.Join(out, "\n") + "\n"
}

func TestLDAPURLLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url      string
		startTLS bool
		ok       bool
	}{
		{"ldaps://ldap.example.org", false, true},
		{"ldaps://ldap.example.org:636", false, true},
		{"ldap://127.0.0.1:389", false, true},
		{"ldap://[::1]:389", false, true},
		{"ldap://localhost", false, true},
		{"ldap://ldap.example.org", true, true},
		{"ldap://ldap.example.org", false, false},
		{"ldap://10.0.0.1", false, false},
		{"ldapi:///var/run/slapd", false, false},
		{"ldaps://user:pw@ldap.example.org", false, false},
		{"ldaps://ldap.example.org/dc=example", false, false},
		{"https://ldap.example.org", false, false},
	}
	for _, tc := range tests {
		if got := checkLDAPURL(tc.url, tc.startTLS) == ""; got != tc.ok {
			t.Errorf("checkLDAPURL(%q, start_tls %v) ok = %v, want %v", tc.url, tc.startTLS, got, tc.ok)
		}
	}
}

// TestLDAPDocExamples parses the filters docs/ldap.md shows.
func TestLDAPDocExamples(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(`
authn:
  ldap:
    - name: ad
      urls: [ldaps://dc1.corp.example.com, ldaps://dc2.corp.example.com]
      bind_dn: CN=svc-registry,OU=Service Accounts,DC=corp,DC=example,DC=com
      bind_password_file: /etc/srht-registry/ad-password
      user_base: OU=Staff,DC=corp,DC=example,DC=com
      user_filter: (&(objectClass=user)(sAMAccountName={user})(!(userAccountControl:1.2.840.113556.1.4.803:=2)))
      subject_attribute: sAMAccountName
      group_base: OU=Groups,DC=corp,DC=example,DC=com
      group_filter: (&(objectClass=group)(member:1.2.840.113556.1.4.1941:={dn}))
    - name: corp
      urls: [ldap://ldap.example.org]
      start_tls: true
      user_base: ou=people,dc=example,dc=org
      user_filter: (&(objectClass=inetOrgPerson)(uid={user})(!(employeeType=disabled)))
      group_base: ou=groups,dc=example,dc=org
      group_filter: (memberUid={user})
`))
	if err != nil {
		t.Fatal(err)
	}
}

// TestLDAPBareNames: a directory is an account provider for bare names:
// alone it resolves them, beside htpasswd a bare name is ambiguous.
func TestLDAPBareNames(t *testing.T) {
	t.Parallel()
	alone := "authn:\n  sourcehut: {enabled: false}\n  ldap:\n" + ldapEntry("corp", "") + "groups:\n  admins: [lena]\n"
	cfg, err := Parse([]byte(alone))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Groups["admins"]; !slices.Equal(got, []string{"corp:lena"}) {
		t.Errorf("a bare name with only a directory: %v, want corp:lena", got)
	}
	both := "authn:\n  htpasswd: htpasswd\n  sourcehut: {enabled: false}\n  ldap:\n" + ldapEntry("corp", "") + "groups:\n  admins: [lena]\n"
	_, err = Parse([]byte(both))
	if err == nil || !strings.Contains(err.Error(), `"lena" could be htpasswd:lena or corp:lena`) {
		t.Errorf("a bare name with htpasswd and a directory: %v", err)
	}
}

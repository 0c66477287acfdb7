package main

import (
	"slices"
	"testing"

	"git.sr.ht/~zozs/srht-registry/internal/config"
)

// TestTokenServerConfig: both token servers' configuration is one the
// server loads without a warning, lets the Sourcehut cells' user log in
// (authn.sourcehut.users defaults to nobody), and makes alice, the
// password user, the admin: with both logins on, group members are
// principals. The fake OIDC issuer is trusted (plain http on loopback) for
// the service's audience, and a claim rule names its provider.
func TestTokenServerConfig(t *testing.T) {
	m := &matrix{keys: "/keys", htpasswd: "/etc/htpasswd", metaURL: "http://127.0.0.1:9", oidcURL: "http://127.0.0.1:10",
		ldap: ldapDir{url: "ldap://127.0.0.1:11", pwFile: "/ldap-password"}}
	for _, withCert := range []bool{false, true} {
		cfg, err := config.Parse([]byte(m.tokenServerConfig("127.0.0.1:5001", withCert)))
		if err != nil {
			t.Fatalf("withCert %t: %v", withCert, err)
		}
		if sh := cfg.Authn.Sourcehut; !sh.CanLogIn() || !slices.Equal(sh.Users, []string{shUser}) {
			t.Errorf("authn.sourcehut.users %q: want [%s]", sh.Users, shUser)
		}
		if got := cfg.Groups["admins"]; !slices.Equal(got, []string{"htpasswd:alice"}) {
			t.Errorf("groups.admins %q, want [htpasswd:alice]", got)
		}
		if o := cfg.Authn.OIDC; len(o) != 1 || o[0].Name != oidcProvider || o[0].Issuer != m.oidcURL || o[0].Audience != service {
			t.Errorf("authn.oidc %+v: want one entry %s, issuer %s, audience %s", o, oidcProvider, m.oidcURL, service)
		}
		rules, _ := cfg.Policy.Data["oidc"].([]any)
		if len(rules) != 1 {
			t.Fatalf("policy.data.oidc %v: want one claim rule", cfg.Policy.Data["oidc"])
		}
		rule, _ := rules[0].(map[string]any)
		claims, _ := rule["claims"].(map[string]any)
		if rule["provider"] != oidcProvider || claims["repository_owner"] != oidcOwner {
			t.Errorf("claim rule %v: want provider %s, repository_owner %s", rule, oidcProvider, oidcOwner)
		}
		if l := cfg.Authn.LDAP; len(l) != 1 || l[0].Name != ldapProvider || l[0].URLs[0] != m.ldap.url {
			t.Errorf("authn.ldap %+v: want one entry %s at %s", l, ldapProvider, m.ldap.url)
		}
		if ns, _ := cfg.Policy.Data["namespaces"].(map[string]any); ns[ldapNamespace] == nil {
			t.Errorf("policy.data.namespaces %v: want %s, granted by directory group", cfg.Policy.Data["namespaces"], ldapNamespace)
		}
		if w := cfg.Warnings(); len(w) > 0 {
			t.Errorf("warnings: %q", w)
		}
	}
}

// TestTokenServerConfigWithoutDirectory: a matrix that started no
// directory gets a config without authn.ldap, and without the namespace
// its groups would be granted (which would warn of an unknown directory).
func TestTokenServerConfigWithoutDirectory(t *testing.T) {
	m := &matrix{keys: "/keys", htpasswd: "/etc/htpasswd", metaURL: "http://127.0.0.1:9", oidcURL: "http://127.0.0.1:10"}
	cfg, err := config.Parse([]byte(m.tokenServerConfig("127.0.0.1:5001", false)))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Authn.LDAP) != 0 || cfg.Policy.Data["namespaces"] != nil {
		t.Errorf("authn.ldap %+v, namespaces %v: want neither", cfg.Authn.LDAP, cfg.Policy.Data["namespaces"])
	}
	if w := cfg.Warnings(); len(w) > 0 {
		t.Errorf("warnings: %q", w)
	}
}

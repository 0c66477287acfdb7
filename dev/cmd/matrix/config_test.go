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
// principals.
func TestTokenServerConfig(t *testing.T) {
	m := &matrix{keys: "/keys", htpasswd: "/etc/htpasswd", metaURL: "http://127.0.0.1:9"}
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
		if w := cfg.Warnings(); len(w) > 0 {
			t.Errorf("warnings: %q", w)
		}
	}
}

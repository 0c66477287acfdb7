package main

import (
	"slices"
	"testing"

	"git.sr.ht/~zozs/srht-registry/internal/config"
)

// TestServerConfig: the benchmark configuration is one the server loads
// without a warning, and lets the Sourcehut users of the cases log in
// (authn.sourcehut.users defaults to nobody): the sourcehut case's user,
// who is no htpasswd user (a Sourcehut account named like a local one owns
// no namespace), or every account for sourcehut-100k.
func TestServerConfig(t *testing.T) {
	if slices.Contains(users, shUser) {
		t.Fatalf("the Sourcehut user %s is also an htpasswd user: sourcehut:%s would own no %s/*", shUser, shUser, shUser)
	}
	for _, tc := range []serverOptions{
		{shUsers: []string{shUser}},
		{shUsers: everyAccount, cacheSize: 100000},
		{shUsers: []string{shUser}, bruteForceOff: true},
	} {
		cfg, err := config.Parse([]byte(serverConfig("127.0.0.1:5001", "/keys/key.pem", "/etc/htpasswd", "http://127.0.0.1:9", tc)))
		if err != nil {
			t.Fatalf("users %q: %v", tc.shUsers, err)
		}
		sh := cfg.Authn.Sourcehut
		if !sh.CanLogIn() || !slices.Equal(sh.Users, tc.shUsers) {
			t.Errorf("authn.sourcehut.users %q, want %q", sh.Users, tc.shUsers)
		}
		if tc.cacheSize > 0 && sh.CacheSize != tc.cacheSize {
			t.Errorf("authn.sourcehut.cache_size %d, want %d", sh.CacheSize, tc.cacheSize)
		}
		if bf := cfg.BruteForce.Threshold; (bf == 0) != tc.bruteForceOff {
			t.Errorf("brute_force.threshold %d with bruteForceOff %v", bf, tc.bruteForceOff)
		}
		if w := cfg.Warnings(); len(w) > 0 {
			t.Errorf("users %q: warnings %q", tc.shUsers, w)
		}
	}
}

package identity_test

import (
	"strings"
	"testing"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

func TestSplitPrincipal(t *testing.T) {
	tests := []struct {
		in             string
		provider, name string
		ok             bool
	}{
		{"htpasswd:alice", "htpasswd", "alice", true},
		{"sourcehut:alice", "sourcehut", "alice", true},
		// An OIDC subject keeps its colons: the split is at the first.
		{"github:repo:octo-org/app:ref:refs/heads/main", "github", "repo:octo-org/app:ref:refs/heads/main", true},
		{"alice", "", "", false},
		{"group:ci", "", "", false}, // a group reference, not a principal
		{"*", "", "", false},
		{"htpasswd:", "", "", false},
		{":alice", "", "", false},
		{"HTPASSWD:alice", "", "", false},
		{"anonymous:x", "", "", false},
		{"refresh:x", "", "", false},
		{"a-very-long-provider-name-over-32:x", "", "", false},
	}
	for _, tt := range tests {
		p, n, ok := identity.SplitPrincipal(tt.in)
		if p != tt.provider || n != tt.name || ok != tt.ok {
			t.Errorf("SplitPrincipal(%q) = %q, %q, %v; want %q, %q, %v", tt.in, p, n, ok, tt.provider, tt.name, tt.ok)
		}
	}
}

func TestIdentityPrincipal(t *testing.T) {
	tests := []struct {
		id   identity.Identity
		want string
	}{
		{identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice"}, "htpasswd:alice"},
		{identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: "alice"}, "sourcehut:alice"},
		{identity.Anonymous, ""},
		// No provider: nobody, whatever the subject says.
		{identity.Identity{Method: identity.MethodPassword, Subject: "alice"}, ""},
	}
	for _, tt := range tests {
		if got := tt.id.Principal(); got != tt.want || tt.id.Authenticated() != (tt.want != "") {
			t.Errorf("%+v: Principal() = %q, Authenticated() = %v; want %q", tt.id, got, tt.id.Authenticated(), tt.want)
		}
	}
}

// FuzzSplitPrincipal: whatever splits joins back to the input, with a
// valid provider name and a non-empty name; nothing else splits.
func FuzzSplitPrincipal(f *testing.F) {
	for _, s := range []string{"htpasswd:alice", "group:ci", "*", "a:b:c", ":", "x:", "Ab:c", "group:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, n, ok := identity.SplitPrincipal(s)
		if !ok {
			if p != "" || n != "" {
				t.Fatalf("%q: not ok, but returned %q, %q", s, p, n)
			}
			return
		}
		if identity.Principal(p, n) != s || n == "" || identity.ValidProviderName(p) != nil || strings.Contains(p, ":") {
			t.Fatalf("%q split into %q, %q", s, p, n)
		}
	})
}

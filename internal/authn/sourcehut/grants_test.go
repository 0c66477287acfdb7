package sourcehut_test

import (
	"reflect"
	"testing"

	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

func TestParseGrantsAndRegistryAccess(t *testing.T) {
	rw := identity.Grant{Service: service, Scope: "REGISTRY", Access: "RW"}
	ro := identity.Grant{Service: service, Scope: "REGISTRY", Access: "RO"}
	profile := identity.Grant{Service: "meta.sr.ht", Scope: "PROFILE", Access: "RO"}
	tests := []struct {
		name       string
		in         string
		wantGrants []identity.Grant
		wantAll    bool
		wantAccess string
	}{
		{"empty is all access", "", nil, true, "RW"},
		{"RW", service + "/REGISTRY:RW", []identity.Grant{rw}, false, "RW"},
		{"RO", service + "/REGISTRY:RO", []identity.Grant{ro}, false, "RO"},
		{"no access suffix is RO", service + "/REGISTRY", []identity.Grant{ro}, false, "RO"},
		{"RW for another service", "other.example.com/REGISTRY:RW",
			[]identity.Grant{{Service: "other.example.com", Scope: "REGISTRY", Access: "RW"}}, false, ""},
		{"profile only", "meta.sr.ht/PROFILE:RO", []identity.Grant{profile}, false, ""},
		{"another scope of our service", service + "/PROFILE:RW",
			[]identity.Grant{{Service: service, Scope: "PROFILE", Access: "RW"}}, false, ""},
		{"scope is case-sensitive", service + "/registry:RW",
			[]identity.Grant{{Service: service, Scope: "registry", Access: "RW"}}, false, ""},
		{"mixed, RO before RW", service + "/REGISTRY:RO meta.sr.ht/PROFILE:RO " + service + "/REGISTRY:RW",
			[]identity.Grant{ro, profile, rw}, false, "RW"},
		{"mixed, RW before RO", service + "/REGISTRY:RW " + service + "/REGISTRY:RO",
			[]identity.Grant{rw, ro}, false, "RW"},
		{"RO among others", "meta.sr.ht/PROFILE:RO " + service + "/REGISTRY:RO other.example.com/REGISTRY:RW",
			[]identity.Grant{profile, ro, {Service: "other.example.com", Scope: "REGISTRY", Access: "RW"}}, false, "RO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			grants, all, err := sourcehut.ParseGrants(tt.in)
			if err != nil {
				t.Fatalf("ParseGrants(%q): %v", tt.in, err)
			}
			if all != tt.wantAll || !reflect.DeepEqual(grants, tt.wantGrants) {
				t.Errorf("ParseGrants(%q) = %+v, %v; want %+v, %v", tt.in, grants, all, tt.wantGrants, tt.wantAll)
			}
			if got := sourcehut.RegistryAccess(grants, all, service); got != tt.wantAccess {
				t.Errorf("RegistryAccess = %q, want %q", got, tt.wantAccess)
			}
		})
	}
}

func TestParseGrantsMalformed(t *testing.T) {
	tests := []string{
		"REGISTRY:RW",
		"/REGISTRY",
		"/REGISTRY:RW",
		"svc/",
		"svc/:RW",
		"svc/REGISTRY:XX",
		"svc/REGISTRY:rw",
		"svc/REGISTRY:",
		"svc/REGISTRY:RW:RW",
		"svc/a/b",
		"svc/a/b:RW",
		// One bad entry spoils the whole list.
		service + "/REGISTRY:RW svc/",
		"meta.sr.ht/PROFILE:RO REGISTRY:RW",
	}
	for _, in := range tests {
		t.Run(in, func(t *testing.T) {
			grants, all, err := sourcehut.ParseGrants(in)
			if err == nil {
				t.Fatalf("ParseGrants(%q) = %+v, %v, nil; want an error", in, grants, all)
			}
			if grants != nil || all {
				t.Errorf("ParseGrants(%q) returned %+v, all=%v with its error", in, grants, all)
			}
		})
	}
}

// TestParseGrantsWhitespaceOnlyIsNotAll: only the empty string means all
// access (core-go's DecodeGrants tests s == ""; it splits anything else on
// " " and panics on an empty entry). ParseGrants uses strings.Fields, so
// " " yields no fields and is read as all access, widening a grant string
// sourcehut itself would not accept.
func TestParseGrantsWhitespaceOnlyIsNotAll(t *testing.T) {
	for _, in := range []string{" ", "  ", "\t", "\n"} {
		grants, all, err := sourcehut.ParseGrants(in)
		if err == nil || all {
			t.Errorf("ParseGrants(%q) = %+v, all=%v, %v; want an error, not all access", in, grants, all, err)
		}
	}
}

func TestRegistryAccessAll(t *testing.T) {
	// all wins whatever the grants say.
	if got := sourcehut.RegistryAccess(nil, true, service); got != "RW" {
		t.Errorf("RegistryAccess(all) = %q, want RW", got)
	}
	if got := sourcehut.RegistryAccess(nil, false, service); got != "" {
		t.Errorf("RegistryAccess(none) = %q, want \"\"", got)
	}
}

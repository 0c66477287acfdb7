package config

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"git.sr.ht/~zozs/srht-registry/internal/authz"
)

// TestDeniableBuiltinsAreAuthz: the names config accepts in
// policy.capabilities.allow_builtins are those authz denies by default.
func TestDeniableBuiltinsAreAuthz(t *testing.T) {
	if got, want := DeniableBuiltins, authz.DeniedBuiltins(); !slices.Equal(got, want) {
		t.Errorf("config.DeniableBuiltins = %v, authz.DeniedBuiltins() = %v", got, want)
	}
	if authz.CapabilitiesKey != "policy.capabilities.allow_builtins" {
		t.Errorf("authz.CapabilitiesKey = %q, not the config key", authz.CapabilitiesKey)
	}
}

// TestParseCapabilities: policy.capabilities.allow_builtins parses, is
// empty by default, and takes only the built-ins denied by default, with a
// suggestion for a misspelt one.
func TestParseCapabilities(t *testing.T) {
	if c := Default(); len(c.Policy.Capabilities.AllowBuiltins) != 0 {
		t.Errorf("default allow_builtins = %v, want none", c.Policy.Capabilities.AllowBuiltins)
	}
	c, err := Parse([]byte("policy:\n  capabilities:\n    allow_builtins: [http.send, net.lookup_ip_addr, opa.runtime]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"http.send", "net.lookup_ip_addr", "opa.runtime"}; !slices.Equal(c.Policy.Capabilities.AllowBuiltins, want) {
		t.Errorf("allow_builtins = %v, want %v", c.Policy.Capabilities.AllowBuiltins, want)
	}
	for _, tc := range []struct{ doc, want string }{
		{"policy:\n  capabilities:\n    allow_builtins: [http.sned]\n",
			`policy.capabilities.allow_builtins[0]: "http.sned" is not a built-in denied by default (those are http.send, net.lookup_ip_addr, opa.runtime; every other one is allowed); did you mean "http.send"?`},
		{"policy:\n  capabilities:\n    allow_builtins: [http.send, time.now_ns]\n",
			`policy.capabilities.allow_builtins[1]: "time.now_ns" is not a built-in denied by default`},
		{"policy:\n  capabilities:\n    allow_net: true\n", "allow_net"},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", tc.doc, err, tc.want)
		}
	}
	var ve *ValidationError
	_, err = Parse([]byte("policy:\n  capabilities:\n    allow_builtins: [x, http.send, y]\n"))
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Errorf("two unknown names: %v, want two problems", err)
	}
}

// TestMaskablePathsAreAuthz: the paths config accepts in
// policy.decision_log_mask are those the upload masks.
func TestMaskablePathsAreAuthz(t *testing.T) {
	if !slices.Equal(MaskablePaths, authz.MaskablePaths) {
		t.Errorf("config.MaskablePaths = %v, authz.MaskablePaths = %v", MaskablePaths, authz.MaskablePaths)
	}
	_, err := Parse([]byte("policy:\n  decision_log_mask: [/request/client_ip, /request/clientip]\n"))
	if err == nil || !strings.Contains(err.Error(), `policy.decision_log_mask[1]: "/request/clientip" is not an input field that can be masked`) ||
		!strings.Contains(err.Error(), `did you mean "/request/client_ip"?`) {
		t.Errorf("a misspelt path: %v", err)
	}
}

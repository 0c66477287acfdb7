package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseOIDC(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`
service: [registry.example.com, other.example.com]
authn:
  oidc:
    - name: github
      issuer: https://token.actions.githubusercontent.com
    - name: cluster
      issuer: http://127.0.0.1:8443
      audience: registry
      subject_claim: sub
      algorithms: [ES256]
      max_token_age: 10m
      session_ttl: 2h
groups:
  builders: ["cluster:system:serviceaccount:ci:builder"]
`))
	if err != nil {
		t.Fatal(err)
	}
	gh, k8s := cfg.Authn.OIDC[0], cfg.Authn.OIDC[1]
	if gh.SubjectClaim != "sub" || gh.SessionTTL.D() != time.Hour {
		t.Errorf("defaults not applied: %+v", gh)
	}
	if got := gh.Audiences(cfg.Service); !slices.Equal(got, []string{"registry.example.com", "other.example.com"}) {
		t.Errorf("default audiences: %v", got)
	}
	if got := k8s.Audiences(cfg.Service); !slices.Equal(got, []string{"registry"}) {
		t.Errorf("audiences: %v", got)
	}
	if k8s.MaxTokenAge.D() != 10*time.Minute || k8s.SessionTTL.D() != 2*time.Hour || !slices.Equal(k8s.Algorithms, []string{"ES256"}) {
		t.Errorf("parsed: %+v", k8s)
	}
	if got := cfg.Groups["builders"]; !slices.Equal(got, []string{"cluster:system:serviceaccount:ci:builder"}) {
		t.Errorf("an OIDC principal in a group: %v", got)
	}
	if p := cfg.Providers(); len(p) != 0 {
		t.Errorf("OIDC issuers are not account providers for bare names: %v", p)
	}
}

func TestParseOIDCMistakes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		yaml string
		want []string
	}{
		{"authn:\n  oidc:\n    - issuer: https://gitlab.com\n", []string{"authn.oidc[0].name: is required"}},
		{"authn:\n  oidc:\n    - name: htpasswd\n      issuer: https://gitlab.com\n", []string{`authn.oidc[0].name: "htpasswd" is the name of a built-in provider`}},
		{"authn:\n  oidc:\n    - name: group\n      issuer: https://gitlab.com\n", []string{"authn.oidc[0].name:", "reserved"}},
		{"authn:\n  oidc:\n    - name: ci\n      issuer: https://gitlab.com\n    - name: ci\n      issuer: https://example.org\n", []string{`authn.oidc[1].name: "ci" is also the name of authn.oidc[0]`}},
		{"authn:\n  oidc:\n    - name: ci\n", []string{"authn.oidc[0].issuer: is required"}},
		{"authn:\n  oidc:\n    - name: ci\n      issuer: http://gitlab.example.org\n", []string{`authn.oidc[0].issuer: "http://gitlab.example.org" must be https (plain http only on a loopback host)`}},
		{"authn:\n  oidc:\n    - name: ci\n      issuer: https://gitlab.com?x=1\n", []string{`authn.oidc[0].issuer: "https://gitlab.com?x=1" is not an https URL without query or fragment`}},
		{"authn:\n  oidc:\n    - name: ci\n      issuer: https://gitlab.com\n      jwks_url: ftp://x/keys\n", []string{"authn.oidc[0].jwks_url:"}},
		{"authn:\n  oidc:\n    - name: ci\n      issuer: https://gitlab.com\n      algorithms: [RS256, HS256, none]\n", []string{`authn.oidc[0].algorithms[1]: "HS256" is not accepted`, `authn.oidc[0].algorithms[2]: "none" is not accepted`}},
		{"authn:\n  oidc:\n    - name: ci\n      issuer: https://gitlab.com\n      session_ttl: 48h\n", []string{"authn.oidc[0].session_ttl: must be between 1m and 24h"}},
		{"authn:\n  oidc:\n    - name: ci\n      issuer: https://gitlab.com\n      max_token_age: -1m\n", []string{"authn.oidc[0].max_token_age: must not be negative"}},
		{"authn:\n  oidc:\n    - name: ci\n      issuer: https://gitlab.com\n      isuer: x\n", []string{`authn.oidc[0].isuer: unknown key (did you mean "issuer"?)`}},
		{"groups:\n  g: [\"gitlab:project_path:a/b\"]\n", []string{`unknown provider "gitlab"`}},
		{"authn:\n  oidc:\n    - name: a\n      issuer: https://gitlab.com\n    - name: b\n      issuer: https://gitlab.com\n", []string{"authn.oidc[1].issuer: is also the issuer of authn.oidc[0]"}},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.yaml))
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%q: %v, want a validation error", tt.yaml, err)
			continue
		}
		all := strings.Join(ve.Problems, "\n")
		for _, w := range tt.want {
			if !strings.Contains(all, w) {
				t.Errorf("%q: problems\n%s\nlack %q", tt.yaml, all, w)
			}
		}
	}
}

package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

const fullYAML = "../../testdata/config/full.yaml"

func ptr[T any](v T) *T { return &v }

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	want := Config{
		Listen:  "127.0.0.1:5001",
		Service: ServiceList{"registry.example.com"},
		Issuer:  "srht-registry",
		Token:   Token{KidFormat: "auto", TTL: Duration(5 * time.Minute), Refresh: Refresh{TTL: Duration(720 * time.Hour)}},
		Authn: Authn{
			Sourcehut: Sourcehut{
				MetaURL: "https://meta.sr.ht", Timeout: Duration(5 * time.Second), CacheSize: 10000, MaxCacheTTL: Duration(10 * time.Minute), NegativeCacheTTL: Duration(30 * time.Second),
			},
			PasswordCache: PasswordCache{TTL: Duration(5 * time.Minute), Size: 10000},
		},
		Policy: Policy{Query: "data.registry.authz", Timeout: Duration(100 * time.Millisecond), StartupWait: Duration(30 * time.Second)},
		Log:    Log{Level: "info", Format: "text", Decisions: "request", FlushInterval: Duration(100 * time.Millisecond)},
		Limits: Limits{MaxScopes: 64, MaxBodyBytes: 16384, MaxQueryBytes: 8192, MaxHeaderBytes: 16384, MaxConcurrent: 512,
			ReadHeaderTimeout: Duration(5 * time.Second), ReadTimeout: Duration(10 * time.Second), WriteTimeout: Duration(30 * time.Second),
			IdleTimeout: Duration(2 * time.Minute), ShutdownTimeout: Duration(10 * time.Second)},
		BruteForce: BruteForce{Threshold: 10, Window: Duration(5 * time.Minute), Tracked: 100000},
		Metrics:    Metrics{Path: "/metrics"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default() = %+v\nwant %+v", c, want)
	}
	if !c.Authn.AnonymousEnabled() {
		t.Error("anonymous is disabled by default")
	}
	if got := c.DefaultService(); got != "registry.example.com" {
		t.Errorf("DefaultService() = %q", got)
	}

	// Each call returns fresh slices.
	c.Service[0] = "changed"
	if Default().Service[0] != "registry.example.com" {
		t.Error("Default() shares its Service slice between calls")
	}

	// No file and an empty document are the default.
	for _, name := range []string{"Load", "Parse"} {
		var got Config
		var err error
		if name == "Load" {
			got, err = Load("")
		} else {
			got, err = Parse(nil)
		}
		if err != nil || !reflect.DeepEqual(got, Default()) {
			t.Errorf("%s = %+v, %v; want Default()", name, got, err)
		}
	}
}

func TestLoadFull(t *testing.T) {
	got, err := Load(fullYAML)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen:  "0.0.0.0:5001",
		Service: ServiceList{"registry.example.com", "registry.example.org"},
		Issuer:  "token.example.com",
		Token: Token{Key: "key.pem", Certificate: "cert.pem", KidFormat: "libtrust", TTL: Duration(10 * time.Minute), PublishedKeys: []string{"previous.pem"},
			Refresh: Refresh{Enabled: ptr(false), TTL: Duration(168 * time.Hour)}},
		Authn: Authn{Anonymous: ptr(false), Htpasswd: "htpasswd", Sourcehut: Sourcehut{
			Enabled: ptr(true), MetaURL: "https://meta.example.org", Timeout: Duration(2 * time.Second),
			CacheSize: 500, MaxCacheTTL: Duration(2 * time.Minute), NegativeCacheTTL: Duration(time.Minute),
			Users: []string{"carol", "dave"},
		}, OIDC: []OIDC{{Name: "github", Issuer: "https://token.actions.githubusercontent.com", Audience: "registry.example.org",
			SubjectClaim: "repository", JWKSURL: "https://token.actions.githubusercontent.com/.well-known/jwks", Algorithms: []string{"RS256"},
			MaxTokenAge: Duration(10 * time.Minute), SessionTTL: Duration(2 * time.Hour)}},
			LDAP: []LDAP{{Name: "corp", URLs: []string{"ldap://ldap1.example.org", "ldap://ldap2.example.org:1389"}, StartTLS: true,
				CAFile: "ldap-ca.pem", BindDN: "cn=reader,dc=example,dc=org", BindPasswordFile: "ldap-password",
				UserBase: "ou=people,dc=example,dc=org", UserFilter: "(&(uid={user})(!(employeeType=disabled)))", SubjectAttribute: "mail",
				GroupBase: "ou=groups,dc=example,dc=org", GroupFilter: "(member={dn})", GroupAttribute: "ou",
				Timeout: Duration(3 * time.Second), PoolSize: 8, CacheTTL: ptr(Duration(0)), CacheSize: 100}},
			PasswordCache: PasswordCache{TTL: 0, Size: 50}},
		Groups: map[string][]string{"admins": {"htpasswd:alice"}, "ci": {"htpasswd:bob", "sourcehut:carol"}},
		Policy: Policy{
			Data: map[string]any{
				"public": []any{"library/*"},
				"namespaces": map[string]any{
					"team": map[string]any{
						"pull": []any{"htpasswd:bob", "group:ci"},
						"push": []any{"htpasswd:alice", "sourcehut:dave"},
					},
					"docs": map[string]any{"pull": []any{"*"}},
				},
				"reserved": []any{"admin", "v2"},
			},
			Query:   "data.registry.authz_v2",
			Timeout: Duration(250 * time.Millisecond), StartupWait: Duration(time.Minute), FallbackToEmbedded: true,
			Capabilities: Capabilities{AllowBuiltins: []string{"net.lookup_ip_addr"}}, DecisionLogMask: []string{"/request/user_agent"},
		},
		Log: Log{Level: "debug", Format: "json", Decisions: "scope", FlushInterval: 0},
		Limits: Limits{MaxScopes: 128, MaxBodyBytes: 32768, MaxQueryBytes: 4096, MaxHeaderBytes: 8192, MaxConcurrent: 100,
			ReadHeaderTimeout: Duration(2 * time.Second), ReadTimeout: Duration(5 * time.Second), WriteTimeout: Duration(10 * time.Second),
			IdleTimeout: Duration(time.Minute), ShutdownTimeout: Duration(20 * time.Second), ShutdownDelay: Duration(3 * time.Second)},
		TLS:            TLS{Certificate: "tls.crt", Key: "tls.key"},
		InsecureHTTP:   true,
		TrustedProxies: []string{"10.0.0.0/8", "192.0.2.1"},
		BruteForce:     BruteForce{Threshold: 5, Window: Duration(time.Minute), Tracked: 1000, Store: "redis://valkey.internal:6379/2"},
		Metrics:        Metrics{Listen: "127.0.0.1:9464", Path: "/internal/metrics"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(full.yaml) =\n%#v\nwant\n%#v", got, want)
	}
	// Every field differs from its default, so the file proves every key is read.
	dv, gv := reflect.ValueOf(Default()), reflect.ValueOf(got)
	for i := range dv.NumField() {
		var walk func(name string, d, g reflect.Value)
		walk = func(name string, d, g reflect.Value) {
			if d.Kind() == reflect.Struct {
				for j := range d.NumField() {
					walk(name+"."+d.Type().Field(j).Name, d.Field(j), g.Field(j))
				}
				return
			}
			// The other policy sources exclude policy.data; see TestPolicySources.
			if name == "Policy.Bundles" || name == "Policy.OPA" {
				return
			}
			if reflect.DeepEqual(d.Interface(), g.Interface()) {
				t.Errorf("full.yaml leaves %s at its default", name)
			}
		}
		walk(dv.Type().Field(i).Name, dv.Field(i), gv.Field(i))
	}
	if got.Authn.AnonymousEnabled() {
		t.Error("anonymous: false is enabled")
	}
	if got.Token.Refresh.IsEnabled() {
		t.Error("token.refresh.enabled: false is enabled")
	}
	if got.DefaultService() != "registry.example.com" {
		t.Errorf("DefaultService() = %q", got.DefaultService())
	}
	if _, err := json.Marshal(got.Policy.Data); err != nil {
		t.Errorf("policy.data is not JSON-compatible: %v", err)
	}
	// Every login is on (Sourcehut for the listed users only; the
	// directory corp), and every principal the file names can log in: a
	// realistic file warns of nothing.
	if p := got.Providers(); !reflect.DeepEqual(p, []string{"htpasswd", "sourcehut", "corp"}) {
		t.Errorf("Providers() = %q", p)
	}
	if sh := got.Authn.Sourcehut; !sh.IsEnabled() || !sh.CanLogIn() || sh.AllUsers() {
		t.Errorf("sourcehut: enabled %v, CanLogIn %v, AllUsers %v; want true, true, false", sh.IsEnabled(), sh.CanLogIn(), sh.AllUsers())
	}
	if w := got.Warnings(); len(w) != 0 {
		t.Errorf("Warnings() = %q, want none", w)
	}
}

func TestPolicySources(t *testing.T) {
	b, err := Load("../../testdata/config/bundles.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(b.Policy.Bundles, []string{"bundles/teams", "/etc/srht-registry/extra.tar.gz"}) {
		t.Errorf("bundles = %q", b.Policy.Bundles)
	}
	o, err := Load("../../testdata/config/opa.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := json.Marshal(o.Policy.OPA); err != nil {
		t.Errorf("policy.opa is not JSON-compatible: %v", err)
	}
	if _, ok := o.Policy.OPA["bundles"].(map[string]any)["registry"]; !ok {
		t.Errorf("policy.opa.bundles.registry missing: %v", o.Policy.OPA)
	}
	for _, tc := range []struct{ doc, want string }{
		{"policy:\n  bundles: [a]\n  data: {public: []}\n", "policy.data: is for the embedded policy only"},
		{"policy:\n  opa: {bundles: {a: {resource: x}}}\n  bundles: [a]\n", "policy.opa: cannot be combined with policy.bundles"},
		{"policy:\n  opa: {services: {}}\n", "policy.opa: needs a bundles section"},
	} {
		if _, err := Parse([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", tc.doc, err, tc.want)
		}
	}
}

func TestParseService(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       ServiceList
		err        string // substring; "" = no error
	}{
		{"scalar", "service: registry.example.net", ServiceList{"registry.example.net"}, ""},
		{"quoted scalar", `service: "r.example.net:5000"`, ServiceList{"r.example.net:5000"}, ""},
		{"number scalar", "service: 5000", ServiceList{"5000"}, ""},
		{"list", "service: [a.example, b.example]", ServiceList{"a.example", "b.example"}, ""},
		{"block list", "service:\n  - a.example\n  - b.example\n", ServiceList{"a.example", "b.example"}, ""},
		{"one-item list", "service: [a.example]", ServiceList{"a.example"}, ""},
		{"alias", "issuer: &s a.example\nservice: *s\n", ServiceList{"a.example"}, ""},
		{"absent", "listen: :5001", ServiceList{"registry.example.com"}, ""},
		{"empty list", "service: []", nil, "service: at least one service is required"},
		{"null", "service:", nil, "service: at least one service is required"},
		{"empty string", `service: ""`, nil, "service[0]: must not be empty"},
		{"mapping", "service: {a: b}", nil, "line 1: service: must be a string or a list of strings, not a mapping"},
		{"nested list", "service:\n  - a\n  - [b]\n", nil, "line 3: service[1]: must be a string, not a list"},
		{"slash", "service: a.example/b", nil, `service[0]: "a.example/b" must not contain spaces or slashes`},
		{"space", `service: "a example"`, nil, `service[0]: "a example" must not contain spaces or slashes`},
		{"duplicate", "service: [a, b, a]", nil, `service[2]: "a" is a duplicate of service[0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse error = %v; want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Service, tt.want) {
				t.Errorf("Service = %q, want %q", c.Service, tt.want)
			}
			for _, s := range tt.want {
				if !c.ServesService(s) {
					t.Errorf("ServesService(%q) = false", s)
				}
			}
			if c.ServesService("other.example") || c.ServesService("") {
				t.Error("ServesService accepts a service not configured")
			}
			if c.DefaultService() != tt.want[0] {
				t.Errorf("DefaultService() = %q, want %q", c.DefaultService(), tt.want[0])
			}
		})
	}
}

func TestParseDurations(t *testing.T) {
	tests := []struct {
		yaml string
		want time.Duration
		err  []string // substrings; nil = no error
	}{
		{"token: {ttl: 90s}", 90 * time.Second, nil},
		{"token: {ttl: 5m}", 5 * time.Minute, nil},
		{"token: {ttl: 1h30m}", 90 * time.Minute, nil},
		{`token: {ttl: "60s"}`, time.Minute, nil},
		{"token: {ttl: 24h}", 24 * time.Hour, nil},
		{"token: {key: k.pem}", 5 * time.Minute, nil}, // absent ttl keeps the default
		{"token:\n  ttl: 5 minutes\n", 0, []string{`line 2: token.ttl: "5 minutes" is not a duration (use Go syntax like 5m or 1h30m, or 0)`}},
		{"token:\n  ttl: 300\n", 0, []string{`line 2: token.ttl: "300" is not a duration: a number needs a unit (use Go syntax like 5m or 1h30m, or 0)`}},
		{"token: {ttl: 10s}", 0, []string{"token.ttl: must be at least 1m0s, got 10s"}},
		{"token: {ttl: -5m}", 0, []string{"token.ttl: must be at least 1m0s, got -5m0s"}},
		{"token: {ttl: 25h}", 0, []string{"token.ttl: must be at most 24h0m0s, got 25h0m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if tt.err != nil {
				if err == nil {
					t.Fatal("no error")
				}
				for _, s := range tt.err {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Token.TTL.D() != tt.want {
				t.Errorf("TTL = %v, want %v", c.Token.TTL, tt.want)
			}
		})
	}
}

func TestParseRefresh(t *testing.T) {
	c, err := Parse([]byte("token:\n  ttl: 10m\n  refresh:\n    ttl: 2160h\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Token.Refresh.IsEnabled() || c.Token.Refresh.TTL.D() != 90*24*time.Hour {
		t.Errorf("refresh = %+v, enabled %v", c.Token.Refresh, c.Token.Refresh.IsEnabled())
	}
	if c, err = Parse([]byte("token: {refresh: {enabled: false}}")); err != nil || c.Token.Refresh.IsEnabled() || c.Token.Refresh.TTL.D() != 720*time.Hour {
		t.Errorf("enabled: false = %+v, %v", c.Token.Refresh, err)
	}
	if !Default().Token.Refresh.IsEnabled() {
		t.Error("refresh tokens are off by default")
	}
	for doc, want := range map[string]string{
		"token:\n  refresh:\n    ttl: 0\n":      "token.refresh.ttl: must be at least token.ttl (5m0s), got 0s",
		"token:\n  refresh:\n    ttl: 30d\n":    `line 3: token.refresh.ttl: "30d" is not a duration`,
		"token:\n  refresh:\n    enable: no\n":  `line 3: token.refresh.enable: unknown key (did you mean "enabled"?)`,
		"token: {ttl: 1h, refresh: {ttl: 30m}}": "token.refresh.ttl: must be at least token.ttl (1h0m0s), got 30m0s",
	} {
		if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", doc, err, want)
		}
	}
}

func TestParseZeroDuration(t *testing.T) {
	c, err := Parse([]byte("authn:\n  sourcehut:\n    max_cache_ttl: 0   # no bound\n    timeout: 3s\npolicy:\n  data:\n    timeout: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Authn.Sourcehut.MaxCacheTTL != 0 || c.Authn.Sourcehut.Timeout.D() != 3*time.Second {
		t.Errorf("sourcehut = %+v", c.Authn.Sourcehut)
	}
	// Policy data is the user's, not a duration: it keeps its integer.
	if got := c.Policy.Data["timeout"]; got != 0 {
		t.Errorf("policy.data.timeout = %#v, want 0", got)
	}
	// Only 0 is unambiguous; any other bare number is still an error, and
	// unknown keys beside a 0 are still refused.
	for _, doc := range []string{"token:\n  ttl: 300\n", "token:\n  ttl: 0\n  tll: 5m\n"} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("Parse(%q) succeeded", doc)
		}
	}
}

// goTypeWords are what yaml's own errors say and a config message must not:
// Go type names and YAML tags.
var goTypeWords = regexp.MustCompile(`cannot unmarshal|not found in type|already set in type|already defined at|config\.[A-Z]|map\[|interface \{\}|\[\]string|!!`)

// yamlTypeError matches what yaml's own type errors say, which Parse never
// lets through: Go type names.
var yamlTypeError = regexp.MustCompile(`cannot unmarshal|not found in type|already set in type|already defined at|into config\.|config\.[A-Z][a-z]|interface \{\}`)

// laughs is YAML of a few lines that stands for 10^9 strings.
var laughs = func() string {
	var b strings.Builder
	b.WriteString("    l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&b, "    l%d: &l%d [%s]\n", i, i, strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 9)+fmt.Sprintf("*l%d", i-1))
	}
	return b.String()
}()

// TestParseMistakes: every mistake in a YAML document is reported as a
// problem of a *ValidationError, with its line and key path, in words.
func TestParseMistakes(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // the problems, exactly
	}{
		// Unknown keys, with the closest known key at that level.
		{"top level", "listen: :5001\nlisten_addr: :5002\n", []string{`line 2: listen_addr: unknown key (did you mean "listen"?)`}},
		{"nested", "token:\n  ttl: 5m\n  kye: key.pem\n", []string{`line 3: token.kye: unknown key (did you mean "key"?)`}},
		{"htpasswd", "authn:\n  anonymous: true\n  htpaswd: htpasswd\n", []string{`line 3: authn.htpaswd: unknown key (did you mean "htpasswd"?)`}},
		{"deep", "authn:\n  sourcehut:\n    meta-url: https://meta.sr.ht\n", []string{`line 3: authn.sourcehut.meta-url: unknown key (did you mean "meta_url"?)`}},
		{"camel case", "authn:\n  sourcehut:\n    maxCacheTTL: 1m\n", []string{`line 3: authn.sourcehut.maxCacheTTL: unknown key (did you mean "max_cache_ttl"?)`}},
		{"capitals", "Listen: :5001\n", []string{`line 1: Listen: unknown key (did you mean "listen"?)`}},
		{"policy", "policy:\n  bundle: [a]\n", []string{`line 2: policy.bundle: unknown key (did you mean "bundles"?)`}},
		{"limits", "limits: {max_scope: 3}", []string{`line 1: limits.max_scope: unknown key (did you mean "max_scopes"?)`}},
		{"longer than a key", "authn:\n  htpasswd_file: h\n", []string{`line 2: authn.htpasswd_file: unknown key (did you mean "htpasswd"?)`}},
		{"nothing close", "token:\n  colour: blue\n", []string{"line 2: token.colour: unknown key"}},
		{"the start of several keys", "limits: {max: 5}", []string{"line 1: limits.max: unknown key"}},
		{"one letter", "tls: {k: x}", []string{"line 1: tls.k: unknown key"}},
		{"at another level", "kid_format: auto\n", []string{"line 1: kid_format: unknown key"}},
		{"in a merge", "token:\n  <<: {ttl: 5m, tll: 1m}\n", []string{`line 2: token.tll: unknown key (did you mean "ttl"?)`}},
		{"empty key", "token:\n  \"\": x\n", []string{"line 2: token: empty key"}},
		{"list as a key", "token:\n  ? [a]\n  : x\n", []string{"line 2: token: a key must be a string, not a list"}},
		{"duplicate key", "listen: :1\nlisten: :2\n", []string{"line 2: listen: key written twice (first at line 1)"}},
		{"duplicate in policy.opa", "policy:\n  opa:\n    bundles: {}\n    bundles: {}\n", []string{"line 4: policy.opa.bundles: key written twice (first at line 3)"}},
		{"duplicate in policy.data", "policy:\n  data:\n    a: 1\n    a: 2\n", []string{"line 4: policy.data.a: key written twice (first at line 3)"}},
		// Values of the wrong type.
		{"integer", "limits:\n  max_scopes: many\n", []string{`line 2: limits.max_scopes: must be an integer, not "many"`}},
		{"integer as a string", "limits:\n  max_scopes: \"64\"\n", []string{`line 2: limits.max_scopes: must be an integer, not "64"`}},
		{"fraction", "limits: {max_scopes: 1.5}", []string{`line 1: limits.max_scopes: must be an integer, not "1.5"`}},
		{"integer list", "brute_force: {tracked: [1]}", []string{"line 1: brute_force.tracked: must be an integer, not a list"}},
		{"integer out of range", "limits: {max_scopes: 9223372036854775808}", []string{`line 1: limits.max_scopes: "9223372036854775808" is out of range`}},
		{"duration", "token:\n  ttl: 5 minutes\n", []string{`line 2: token.ttl: "5 minutes" is not a duration (use Go syntax like 5m or 1h30m, or 0)`}},
		{"duration number", "limits: {idle_timeout: 120}", []string{`line 1: limits.idle_timeout: "120" is not a duration: a number needs a unit (use Go syntax like 5m or 1h30m, or 0)`}},
		{"duration list", "policy:\n  timeout:\n    - 1s\n", []string{"line 3: policy.timeout: must be a duration (use Go syntax like 5m or 1h30m, or 0), not a list"}},
		{"bool", "insecure_http: maybe\n", []string{`line 1: insecure_http: must be true or false, not "maybe"`}},
		{"optional bool", "authn: {anonymous: [x]}", []string{"line 1: authn.anonymous: must be true or false, not a list"}},
		{"string", "listen: [a]\n", []string{"line 1: listen: must be a string, not a list"}},
		{"section", "token: abc\n", []string{`line 1: token: must be a mapping of keys, not "abc"`}},
		{"section list", "limits:\n  - max_scopes: 3\n", []string{"line 2: limits: must be a mapping of keys, not a list"}},
		{"list", "trusted_proxies: 10.0.0.0/8\n", []string{`line 1: trusted_proxies: must be a list of strings, not "10.0.0.0/8" (a list of one is written ["10.0.0.0/8"])`}},
		{"list mapping", "policy: {bundles: {a: b}}", []string{"line 1: policy.bundles: must be a list of strings, not a mapping"}},
		{"list element", "token: {published_keys: [a, [b]]}", []string{"line 1: token.published_keys[1]: must be a string, not a list"}},
		{"service", "service: {a: b}", []string{"line 1: service: must be a string or a list of strings, not a mapping"}},
		{"service element", "service:\n  - a\n  - {b: c}\n", []string{"line 3: service[1]: must be a string, not a mapping"}},
		{"groups", "groups: [admins]\n", []string{"line 1: groups: must be a mapping, not a list"}},
		{"group members", "groups:\n  ci: bob\n", []string{`line 2: groups.ci: must be a list of strings, not "bob" (a list of one is written ["bob"])`}},
		{"group member", "groups:\n  ci: [[bob]]\n", []string{"line 2: groups.ci[0]: must be a string, not a list"}},
		{"policy.data", "policy:\n  data: [a]\n", []string{"line 2: policy.data: must be a mapping, not a list"}},
		{"policy.opa", "policy: {opa: x}", []string{`line 1: policy.opa: must be a mapping, not "x"`}},
		{"not a mapping", "- listen\n", []string{"line 1: the configuration must be a mapping of keys (like listen: and token:), not a list"}},
		{"a scalar", "listen\n", []string{`line 1: the configuration must be a mapping of keys (like listen: and token:), not "listen"`}},
		{"through an alias", "issuer: &i {a: b}\nservice: *i\n", []string{
			"line 1: issuer: must be a string, not a mapping",
			"line 2: service: must be a string or a list of strings, not a mapping",
		}},
		// What yaml gives up on is reported too, with the others.
		{"merge of a scalar", "token:\n  <<: 5\n  kye: k\n", []string{
			`line 2: token.<<: a merge needs a mapping or a list of mappings, not "5"`,
			`line 3: token.kye: unknown key (did you mean "key"?)`,
		}},
		{"alias inside its anchor", "policy:\n  data: &a {x: [*a]}\n", []string{"line 2: policy.data.x[0]: alias *a is inside the value it stands for"}},
		{"a billion laughs", "policy:\n  data:\n" + laughs, []string{"line 3: the document expands to too many values through its aliases"}},
		{"alias inside its anchor in policy.opa", "policy:\n  opa: &a {bundles: *a}\n", []string{"line 2: policy.opa.bundles: alias *a is inside the value it stands for"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse error = %v, want a *ValidationError", err)
			}
			if !reflect.DeepEqual(ve.Problems, tt.want) {
				t.Errorf("Problems =\n%s\nwant\n%s", strings.Join(ve.Problems, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, p := range ve.Problems {
				if goTypeWords.MatchString(p) {
					t.Errorf("problem %q speaks Go or YAML tags", p)
				}
			}
		})
	}
}

// TestParseReportsEveryMistake: unknown keys and values of the wrong type
// are all reported, in document order, followed by Validate's problems but
// for those about a value that could not be read.
func TestParseReportsEveryMistake(t *testing.T) {
	doc := `listen: 127.0.0.1:5001
token:
  ttl: 5 minutes
  kye: key.pem
authn:
  htpaswd: htpasswd
  anonymous: maybe
limits:
  max_scopes: many
  max_body_bytes: 10
log: {level: loud, colour: red}
trusted_proxies: [10.0.0.0/8, [x], nonsense]
brute_force: {window: 0, threshold: lots}
`
	_, err := Parse([]byte(doc))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Parse error = %v, want a *ValidationError", err)
	}
	want := []string{
		`line 3: token.ttl: "5 minutes" is not a duration (use Go syntax like 5m or 1h30m, or 0)`,
		`line 4: token.kye: unknown key (did you mean "key"?)`,
		`line 6: authn.htpaswd: unknown key (did you mean "htpasswd"?)`,
		`line 7: authn.anonymous: must be true or false, not "maybe"`,
		`line 9: limits.max_scopes: must be an integer, not "many"`,
		`line 11: log.colour: unknown key`,
		`line 12: trusted_proxies[1]: must be a string, not a list`,
		`line 13: brute_force.threshold: must be an integer, not "lots"`,
		// Validate's, but not trusted_proxies[1]: "nonsense" is [2] in
		// the file. A value that could not be read keeps its default (a
		// threshold of 10).
		`log.level: must be one of debug, info, warn, error, got "loud"`,
		"limits.max_body_bytes: must be between 1024 and 1048576, got 10",
		"brute_force.window: must be above 0 while brute_force.threshold is on, got 0s",
	}
	if !reflect.DeepEqual(ve.Problems, want) {
		t.Errorf("Problems =\n%s\nwant\n%s", strings.Join(ve.Problems, "\n"), strings.Join(want, "\n"))
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); !errors.As(err, &ve) || !strings.HasPrefix(err.Error(), "config "+p+": line 3: token.ttl: ") {
		t.Errorf("Load = %v, want the problems of a *ValidationError after the path", err)
	}
}

// TestParseNotYAML: what is not one YAML document is yaml's error, with its
// line, not a *ValidationError.
func TestParseNotYAML(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"syntax", "listen: [\n", "yaml: line "},
		{"tab indent", "token:\n\tttl: 5m\n", "yaml: line 2: "},
		{"second document", "listen: :1\n---\nlisten: :2\n", "yaml: line 2: a second YAML document starts here"},
		{"second document with mistakes", "listen: [a]\n---\nlisten: :2\n", "yaml: line 2: a second YAML document starts here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			var ve *ValidationError
			if err == nil || errors.As(err, &ve) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Parse error = %#v, want a YAML error starting with %q", err, tc.want)
			}
		})
	}
}

func TestSuggestion(t *testing.T) {
	known := []string{"listen", "service", "issuer", "token", "tls", "insecure_http", "trusted_proxies"}
	for name, want := range map[string]string{
		"lisen":          "listen",
		"lsiten":         "listen", // a transposition is one edit
		"LISTEN":         "listen",
		"servce":         "service",
		"services":       "service",
		"serv":           "service",
		"insecure-http":  "insecure_http",
		"insecureHTTP":   "insecure_http",
		"trusted":        "trusted_proxies",
		"tokens":         "token",
		"tsl":            "tls",
		"t":              "",
		"ts":             "tls",
		"tk":             "",
		"key":            "",
		"issuer_url_xyz": "issuer",
		"completely":     "",
	} {
		got := suggestion(name, known)
		if want != "" {
			want = " (did you mean \"" + want + "\"?)"
		}
		if got != want {
			t.Errorf("suggestion(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestParseEmpty(t *testing.T) {
	for _, doc := range []string{"", "\n", "  \n\n", "# nothing here\n", "---\n", "~\n", "null", "---\n# c\n...\n", "listen: 127.0.0.1:5001\n---\n"} {
		c, err := Parse([]byte(doc))
		if err != nil {
			t.Errorf("Parse(%q) error: %v", doc, err)
			continue
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("Parse(%q) = %+v, want Default()", doc, c)
		}
	}
}

func TestParseAnonymous(t *testing.T) {
	tests := []struct {
		yaml string
		want *bool
	}{
		{"", nil},
		{"authn: {htpasswd: h}", nil},
		{"authn: {anonymous: null}", nil},
		{"authn: {anonymous: true}", ptr(true)},
		{"authn: {anonymous: false}", ptr(false)},
		{"authn:\n  anonymous: no\n", ptr(false)}, // YAML 1.1 spelling, accepted for typed bools
	}
	for _, tt := range tests {
		c, err := Parse([]byte(tt.yaml))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.yaml, err)
			continue
		}
		if !reflect.DeepEqual(c.Authn.Anonymous, tt.want) {
			t.Errorf("Parse(%q).Authn.Anonymous = %v, want %v", tt.yaml, c.Authn.Anonymous, tt.want)
		}
		if got, want := c.Authn.AnonymousEnabled(), tt.want == nil || *tt.want; got != want {
			t.Errorf("Parse(%q).AnonymousEnabled() = %v, want %v", tt.yaml, got, want)
		}
	}
}

func TestParsePolicyData(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       map[string]any
		err        []string
	}{
		{"absent", "policy: {query: data.x.y}", nil, nil},
		{"null", "policy: {data: }", nil, nil},
		{"empty", "policy: {data: {}}", map[string]any{}, nil},
		{
			"nested maps are map[string]any",
			"policy:\n  data:\n    a:\n      b:\n        c: [1, {d: e}]\n",
			map[string]any{"a": map[string]any{"b": map[string]any{"c": []any{1, map[string]any{"d": "e"}}}}},
			nil,
		},
		{
			"scalars",
			"policy:\n  data:\n    i: 42\n    big: 18446744073709551615\n    f: 1.5\n    t: true\n    n: null\n    s: 'x'\n    date: 2025-01-02\n    ts: 2025-01-02T03:04:05Z\n    ver: 1.10\n",
			map[string]any{
				"i": 42, "big": uint64(18446744073709551615), "f": 1.5, "t": true, "n": nil, "s": "x",
				"date": "2025-01-02", "ts": "2025-01-02T03:04:05Z", "ver": 1.1,
			},
			nil,
		},
		{
			"quoted number key",
			"policy:\n  data:\n    ports: {\"80\": http}\n",
			map[string]any{"ports": map[string]any{"80": "http"}},
			nil,
		},
		{
			"anchors and merge keys",
			"policy:\n  data:\n    base: &b {pull: [x], push: [y]}\n    team: {<<: *b, push: [z]}\n    other: *b\n",
			map[string]any{
				"base":  map[string]any{"pull": []any{"x"}, "push": []any{"y"}},
				"team":  map[string]any{"pull": []any{"x"}, "push": []any{"z"}},
				"other": map[string]any{"pull": []any{"x"}, "push": []any{"y"}},
			},
			nil,
		},
		{
			"merge of a sequence",
			"policy:\n  data:\n    a: &a {k: a, only_a: 1}\n    b: &b {k: b, only_b: 2}\n    c: {<<: [*a, *b]}\n",
			map[string]any{
				"a": map[string]any{"k": "a", "only_a": 1},
				"b": map[string]any{"k": "b", "only_b": 2},
				"c": map[string]any{"k": "a", "only_a": 1, "only_b": 2},
			},
			nil,
		},
		{
			"non-string keys",
			"policy:\n  data:\n    ports:\n      80: http\n      443: https\n",
			nil,
			[]string{`line 4: policy.data.ports: key "80" is not a string; quote it`, `line 5: policy.data.ports: key "443" is not a string`},
		},
		{"infinity", "policy:\n  data: {x: .inf}\n", nil, []string{"line 2: policy.data.x: .inf is not a JSON number"}},
		{"not a mapping", "policy:\n  data: [a]\n", nil, []string{"line 2: policy.data: must be a mapping, not a list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if tt.err != nil {
				if err == nil {
					t.Fatalf("no error; data = %#v", c.Policy.Data)
				}
				for _, s := range tt.err {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Policy.Data, tt.want) {
				t.Errorf("Data = %#v\nwant %#v", c.Policy.Data, tt.want)
			}
			if _, err := json.Marshal(c.Policy.Data); err != nil {
				t.Errorf("Data is not JSON-compatible: %v", err)
			}
		})
	}
}

func TestValidateReportsEverything(t *testing.T) {
	doc := `
listen: localhost
service: [a.example, "", a.example, "b/c"]
issuer: "  "
token: {ttl: 10s, certificate: cert.pem}
groups: {ci: [bob, ""], "": [x]}
policy:
  bundles: [ok, ""]
  query: registry.authz
log: {level: verbose, format: xml}
limits: {max_scopes: 0, max_body_bytes: 2097152}
`
	_, err := Parse([]byte(doc))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Parse error = %v, want a *ValidationError", err)
	}
	want := []string{
		"listen: must be host:port, like 127.0.0.1:5001: address localhost: missing port in address",
		"service[1]: must not be empty",
		`service[2]: "a.example" is a duplicate of service[0]`,
		`service[3]: "b/c" must not contain spaces or slashes`,
		"issuer: must not be empty",
		"token.ttl: must be at least 1m0s, got 10s",
		"token.certificate: needs token.key: a certificate cannot match an ephemeral key",
		"groups: a group name must not be empty",
		`groups.ci[0]: "bob" names no provider, and no login could authenticate it: write htpasswd:bob or sourcehut:bob, with authn.htpasswd or with the user in authn.sourcehut.users`,
		"groups.ci[1]: member must not be empty",
		"policy.bundles[1]: must not be empty",
		`policy.query: must be a reference under data made of dotted identifiers, like data.registry.authz, got "registry.authz"`,
		`log.level: must be one of debug, info, warn, error, got "verbose"`,
		`log.format: must be one of text, json, got "xml"`,
		"limits.max_scopes: must be between 1 and 1024, got 0",
		"limits.max_body_bytes: must be between 1024 and 1048576, got 2097152",
	}
	if !reflect.DeepEqual(ve.Problems, want) {
		t.Errorf("Problems =\n%s\nwant\n%s", strings.Join(ve.Problems, "\n"), strings.Join(want, "\n"))
	}
	if ve.Error() != strings.Join(want, "\n") {
		t.Errorf("Error() = %q", ve.Error())
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // the single problem; "" = valid
	}{
		{"default", func(*Config) {}, ""},
		{"listen all interfaces", func(c *Config) { c.Listen = ":5001" }, ""},
		{"listen port 0", func(c *Config) { c.Listen = "127.0.0.1:0" }, ""},
		{"listen IPv6", func(c *Config) { c.Listen = "[::1]:5001" }, ""},
		{"listen hostname", func(c *Config) { c.Listen = "localhost:5001" }, ""},
		{"listen empty", func(c *Config) { c.Listen = "" }, "listen: must be host:port, like 127.0.0.1:5001: missing port in address"},
		{"listen no port", func(c *Config) { c.Listen = "127.0.0.1:" }, `listen: must be host:port, like 127.0.0.1:5001: port "" is not a number from 0 to 65535`},
		{"listen named port", func(c *Config) { c.Listen = "127.0.0.1:http" }, `listen: must be host:port, like 127.0.0.1:5001: port "http" is not a number from 0 to 65535`},
		{"listen port too big", func(c *Config) { c.Listen = ":65536" }, `listen: must be host:port, like 127.0.0.1:5001: port "65536" is not a number from 0 to 65535`},
		{"metrics on", func(c *Config) { c.Metrics.Listen = ":9464" }, ""},
		{"shutdown delay", func(c *Config) { c.Limits.ShutdownDelay = Duration(5 * time.Second) }, ""},
		{"shutdown delay negative", func(c *Config) { c.Limits.ShutdownDelay = Duration(-time.Second) }, "limits.shutdown_delay: must be between 0 and 10m, got -1s"},
		{"metrics and token endpoint on port 0", func(c *Config) { c.Listen, c.Metrics.Listen = "127.0.0.1:0", "127.0.0.1:0" }, ""},
		{"metrics on the token port", func(c *Config) { c.Metrics.Listen = c.Listen }, "metrics.listen: must differ from listen (127.0.0.1:5001): metrics have their own port"},
		{"metrics no port", func(c *Config) { c.Metrics.Listen = "localhost" }, "metrics.listen: must be host:port, like 127.0.0.1:9464: address localhost: missing port in address"},
		{"metrics path relative", func(c *Config) { c.Metrics.Path = "metrics" }, `metrics.path: "metrics" must start with /`},
		{"no service", func(c *Config) { c.Service = nil }, "service: at least one service is required"},
		{"service with port", func(c *Config) { c.Service = ServiceList{"registry.example.com:5000"} }, ""},
		{"service tab", func(c *Config) { c.Service = ServiceList{"a\tb"} }, `service[0]: "a\tb" must not contain spaces or slashes`},
		{"issuer empty", func(c *Config) { c.Issuer = "" }, "issuer: must not be empty"},
		{"ttl minimum", func(c *Config) { c.Token.TTL = Duration(time.Minute) }, ""},
		{"ttl maximum", func(c *Config) { c.Token.TTL = Duration(24 * time.Hour) }, ""},
		{"ttl zero", func(c *Config) { c.Token.TTL = 0 }, "token.ttl: must be at least 1m0s, got 0s"},
		{"ttl just too long", func(c *Config) { c.Token.TTL = Duration(24*time.Hour + time.Second) }, "token.ttl: must be at most 24h0m0s, got 24h0m1s"},
		{"key and certificate", func(c *Config) { c.Token.Key, c.Token.Certificate = "k", "c" }, ""},
		{"refresh ttl as token ttl", func(c *Config) { c.Token.Refresh.TTL = c.Token.TTL }, ""},
		{"refresh ttl a year", func(c *Config) { c.Token.Refresh.TTL = Duration(8760 * time.Hour) }, ""},
		{"refresh ttl under token ttl", func(c *Config) { c.Token.Refresh.TTL = Duration(time.Minute) }, "token.refresh.ttl: must be at least token.ttl (5m0s), got 1m0s"},
		{"refresh ttl zero", func(c *Config) { c.Token.Refresh.TTL = 0 }, "token.refresh.ttl: must be at least token.ttl (5m0s), got 0s"},
		{"refresh ttl over a year", func(c *Config) { c.Token.Refresh.TTL = Duration(8761 * time.Hour) }, "token.refresh.ttl: must be at most 8760h0m0s, got 8761h0m0s"},
		{"refresh off", func(c *Config) { c.Token.Refresh.Enabled = ptr(false) }, ""},
		{"key only", func(c *Config) { c.Token.Key = "k" }, ""},
		{"empty group", func(c *Config) { c.Groups = map[string][]string{"nobody": nil} }, ""},
		{"blank member", func(c *Config) { c.Groups = map[string][]string{"ci": {" "}} }, "groups.ci[0]: member must not be empty"},
		{"query nested", func(c *Config) { c.Policy.Query = "data.a.b_2.C" }, ""},
		{"query data only", func(c *Config) { c.Policy.Query = "data" }, `policy.query: must be a reference under data made of dotted identifiers, like data.registry.authz, got "data"`},
		{"query empty", func(c *Config) { c.Policy.Query = "" }, `policy.query: must be a reference under data made of dotted identifiers, like data.registry.authz, got ""`},
		{"query trailing dot", func(c *Config) { c.Policy.Query = "data.registry." }, `policy.query: must be a reference under data made of dotted identifiers, like data.registry.authz, got "data.registry."`},
		{"query bracket", func(c *Config) { c.Policy.Query = `data.registry["authz"]` }, `policy.query: must be a reference under data made of dotted identifiers, like data.registry.authz, got "data.registry[\"authz\"]"`},
		{"query digit", func(c *Config) { c.Policy.Query = "data.1x" }, `policy.query: must be a reference under data made of dotted identifiers, like data.registry.authz, got "data.1x"`},
		{"query input", func(c *Config) { c.Policy.Query = "input.x" }, `policy.query: must be a reference under data made of dotted identifiers, like data.registry.authz, got "input.x"`},
		{"log levels", func(c *Config) { c.Log.Level = "warn" }, ""},
		{"log level case", func(c *Config) { c.Log.Level = "INFO" }, `log.level: must be one of debug, info, warn, error, got "INFO"`},
		{"log decisions per scope", func(c *Config) { c.Log.Decisions = "scope" }, ""},
		{"log decisions misspelt", func(c *Config) { c.Log.Decisions = "scopes" }, `log.decisions: must be one of request, scope, got "scopes"; did you mean "scope"?`},
		{"log flush at once", func(c *Config) { c.Log.FlushInterval = 0 }, ""},
		{"log flush interval at most", func(c *Config) { c.Log.FlushInterval = Duration(10 * time.Second) }, ""},
		{"log flush interval too long", func(c *Config) { c.Log.FlushInterval = Duration(11 * time.Second) }, "log.flush_interval: must be between 0 (each line written at once) and 10s, got 11s"},
		{"log flush interval negative", func(c *Config) { c.Log.FlushInterval = Duration(-time.Millisecond) }, "log.flush_interval: must be between 0 (each line written at once) and 10s, got -1ms"},
		{"log decisions empty", func(c *Config) { c.Log.Decisions = "" }, `log.decisions: must be one of request, scope, got ""`},
		{"max_scopes bounds", func(c *Config) { c.Limits.MaxScopes = 1024 }, ""},
		{"max_scopes over", func(c *Config) { c.Limits.MaxScopes = 1025 }, "limits.max_scopes: must be between 1 and 1024, got 1025"},
		{"max_body_bytes bounds", func(c *Config) { c.Limits.MaxBodyBytes = 1024 }, ""},
		{"max_body_bytes under", func(c *Config) { c.Limits.MaxBodyBytes = 1023 }, "limits.max_body_bytes: must be between 1024 and 1048576, got 1023"},
		{"self-hosted meta", func(c *Config) { c.Authn.Sourcehut.MetaURL = "http://meta.internal:5000/" }, ""},
		{"meta_url no scheme", func(c *Config) { c.Authn.Sourcehut.MetaURL = "meta.sr.ht" }, `authn.sourcehut.meta_url: must be an http(s) base URL such as https://meta.sr.ht, got "meta.sr.ht"`},
		{"meta timeout zero", func(c *Config) { c.Authn.Sourcehut.Timeout = 0 }, "authn.sourcehut.timeout: must be above 0 and at most 1m, got 0s"},
		{"cache size zero", func(c *Config) { c.Authn.Sourcehut.CacheSize = 0 }, "authn.sourcehut.cache_size: must be between 1 and 10000000, got 0"},
		{"max_cache_ttl negative", func(c *Config) { c.Authn.Sourcehut.MaxCacheTTL = Duration(-time.Second) }, "authn.sourcehut.max_cache_ttl: must not be negative (0 means up to each token's expiry), got -1s"},
		{"password cache off", func(c *Config) { c.Authn.PasswordCache.TTL = 0 }, ""},
		{"password cache negative", func(c *Config) { c.Authn.PasswordCache.TTL = Duration(-time.Second) }, "authn.password_cache.ttl: must be between 0 (off) and 24h, got -1s"},
		{"password cache size", func(c *Config) { c.Authn.PasswordCache.Size = 0 }, "authn.password_cache.size: must be between 1 and 10000000, got 0"},
		{"negative_cache_ttl zero", func(c *Config) { c.Authn.Sourcehut.NegativeCacheTTL = 0 }, "authn.sourcehut.negative_cache_ttl: must be above 0 and at most 1h, got 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want a *ValidationError", err)
			}
			if len(ve.Problems) != 1 || ve.Problems[0] != tt.want {
				t.Errorf("Problems = %q\nwant [%q]", ve.Problems, tt.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	missing := filepath.Join(dir, "missing.yaml")
	if _, err := Load(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) = %v, want an fs.ErrNotExist naming the file", err)
	}

	p := write("syntax.yaml", "listen: :5001\ntoken:\n  ttl: [\n")
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), "config "+p+": yaml: line ") {
		t.Errorf("Load(syntax.yaml) = %v, want a YAML error with a line, prefixed by the path", err)
	}

	p = write("unknown.yaml", "listen: :5001\nissuer: x\nbogus: 1\n")
	_, err = Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), "config "+p+": ") || !strings.HasSuffix(err.Error(), ": line 3: bogus: unknown key") {
		t.Errorf("Load(unknown.yaml) = %v", err)
	}

	p = write("invalid.yaml", "issuer: ''\nlog: {level: loud}\n")
	_, err = Load(p)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Errorf("Load(invalid.yaml) = %v, want a wrapped *ValidationError with 2 problems", err)
	}

	p = write("empty.yaml", "")
	if c, err := Load(p); err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load(empty.yaml) = %+v, %v; want Default()", c, err)
	}
}

func FuzzParse(f *testing.F) {
	full, err := os.ReadFile(fullYAML)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(full),
		"",
		"service: a.example",
		"service: [a, b, a]",
		"token: {ttl: 5 minutes}",
		"limits: {shutdown_delay: 0, idle_timeout: 5}\ntoken: {refresh: {ttl: [1m]}}\n",
		"policy:\n  data:\n    base: &b {pull: [x]}\n    team: {<<: *b, push: [z]}\n    n: {1: a}\n",
		"policy: {data: {x: .nan, d: 2025-01-01}}",
		"a: &a [*a]",
		"listen: :1\n---\nlisten: :2\n",
		"token:\n  kye: k\n  ttl: 5 minutes\n  <<: {tll: 1m}\nlimits: {max_scopes: many}\nservice: [a, [b]]\n",
		"policy:\n  opa: &o {bundles: {x: *o}, bundles: 1}\n  data: &d {a: [*d], 1: x}\n",
		"groups: {ci: [[bob], alice]}\ntrusted_proxies: x\nauthn: {anonymous: maybe, htpaswd: h}\n",
		"authn: {htpasswd: h}\ngroups: {admins: [root], ci: ['sourcehut:carol']}\npolicy: {data: {namespaces: {team: {pull: [bob, '*', 'group:ci']}}}}\n",
		"authn: {htpasswd: h, sourcehut: {users: ['*']}}\ngroups: {admins: [root, 'github:x', 'group:y'], 'a:b': []}\n",
		"authn: {sourcehut: {users: [alice, ~bob, '*']}}\ngroups: {a: &m [alice], b: *m}\n",
		"policy: {data: {public: x, namespaces: {team: {pull: [1, 'Foo:bar', 'group:']}}}}\n",
		"authn: {sourcehut: {users: [a, a, 1x, a.b, _b]}}\ngroups: {ci: ['sourcehut:~bob', 'htpasswd: bob', 'htpasswd:a:b', ~alice, _b]}\n",
		"authn: {htpasswd: h}\ngroups: {ci: [~alice, 'a b', Carol]}\npolicy: {data: {namespaces: {team: {pull: ['sourcehut:Carol', 'htpasswd:a\\tb']}}}}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			// Every mistake is told in the file's words: yaml's type
			// errors never get through.
			if yamlTypeError.MatchString(err.Error()) {
				t.Fatalf("Parse error speaks Go: %v", err)
			}
			var ve *ValidationError
			if errors.As(err, &ve) {
				for _, p := range ve.Problems {
					if p == "" {
						t.Fatalf("empty problem in %q", ve.Problems)
					}
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse succeeded but Validate fails: %v", err)
		}
		if !c.ServesService(c.DefaultService()) {
			t.Fatalf("DefaultService %q is not served", c.DefaultService())
		}
		if _, err := json.Marshal(c.Policy.Data); err != nil {
			t.Fatalf("policy.data is not JSON-compatible: %v", err)
		}
		// Every member Parse returns is written out: a principal of a
		// provider this server knows, naming an account that provider
		// could have, or (in a namespace ACL) "*" or a group reference.
		isPrincipal := func(m string) bool {
			p, name, ok := identity.SplitPrincipal(m)
			return ok && slices.Contains(builtinProviders, p) && checkAccountName(p, name) == nil
		}
		for g, members := range c.Groups {
			for i, m := range members {
				if !isPrincipal(m) {
					t.Fatalf("groups.%s[%d] = %q is not a principal after Parse", g, i, m)
				}
			}
		}
		walkNamespaceMembers(c.Policy.Data, func(key, m string) string {
			groupRef := strings.HasPrefix(m, identity.GroupPrefix) && m != identity.GroupPrefix
			if m != identity.AnyAuthenticated && !groupRef && !isPrincipal(m) {
				t.Fatalf("%s = %q is not a principal, group or \"*\" after Parse", key, m)
			}
			return m
		})
		// Resolving is idempotent, and parsing deterministic.
		groups, pd, problems := resolvePrincipals(c)
		if len(problems) > 0 || !reflect.DeepEqual(groups, c.Groups) || !reflect.DeepEqual(pd, c.Policy.Data) {
			t.Fatalf("resolving the parsed Config again = %q, %v, %q; want it unchanged", groups, pd, problems)
		}
		if again, err := Parse(data); err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("a second Parse of the same bytes = %+v, %v; want %+v", again, err, c)
		}
		if len(c.Principals()) > 0 && c.Groups == nil && c.Policy.Data == nil {
			t.Fatalf("Principals() = %q without groups or data", c.Principals())
		}
		_ = c.Warnings()
	})
}

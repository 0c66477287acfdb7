package app

import (
	"cmp"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

// reloadSettings are the settings TestReloadAppliesEverySetting varies; the
// rest of reloadConfigYAML is fixed.
type reloadSettings struct {
	anonymous, refresh, sourcehut string // "true" or "false"
	htpasswd                      string // the authn.htpasswd line, or "" for none
	users                         string // authn.sourcehut.users
	logLevel                      string
	listen, threshold             string // "" for 127.0.0.1:0 and 0
	groups, data                  string // YAML under groups: and policy.data:, indented two and four spaces
	extra                         string // more top-level YAML
	// more YAML under log:, authn.sourcehut: and token:, indented as
	// their keys
	logExtra, sourcehutExtra, tokenExtra string
}

func reloadConfigYAML(meta *fakemeta.Server, s reloadSettings) string {
	var b strings.Builder
	listen, threshold := cmp.Or(s.listen, "127.0.0.1:0"), cmp.Or(s.threshold, "0")
	b.WriteString("listen: " + listen + "\nbrute_force:\n  threshold: " + threshold + "\nlog:\n  level: " + s.logLevel + "\n" + s.logExtra)
	b.WriteString("authn:\n  anonymous: " + s.anonymous + "\n")
	if s.htpasswd != "" {
		b.WriteString("  htpasswd: " + s.htpasswd + "\n")
	}
	b.WriteString("  sourcehut:\n    enabled: " + s.sourcehut + "\n    meta_url: " + meta.URL() + "\n    users: [" + s.users + "]\n" + s.sourcehutExtra)
	b.WriteString("token:\n  refresh:\n    enabled: " + s.refresh + "\n" + s.tokenExtra)
	if s.groups != "" {
		b.WriteString("groups:\n" + s.groups)
	}
	b.WriteString("policy:\n  data:\n    public: [\"pub/*\"]\n" + s.data)
	b.WriteString(s.extra)
	return b.String()
}

// anonymousStatus is the status of an anonymous token request for scope.
func anonymousStatus(t *testing.T, addr, scope string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/auth?" + url.Values{"service": {"registry.example.com"}, "scope": {scope}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestReloadAppliesEverySetting changes each reloadable setting under a
// running server and shows the change in force after Reload; then each
// setting that needs a restart, together with a reloadable one, and shows
// that the reload is refused, names the setting, and applies nothing.
func TestReloadAppliesEverySetting(t *testing.T) {
	t.Parallel()
	meta := fakemeta.Start(t)
	carol := meta.Mint(fakemeta.TokenOptions{Username: "carol", Grants: "registry.example.com/REGISTRY:RW"})
	base := func(dir string) reloadSettings {
		return reloadSettings{anonymous: "true", refresh: "true", sourcehut: "true", users: "carol", logLevel: "info",
			htpasswd: filepath.Join(dir, "htpasswd")}
	}
	start := func(t *testing.T) (srv *Server, logs *syncBuffer, dir, configPath string) {
		dir = t.TempDir()
		writeFile(t, filepath.Join(dir, "htpasswd"), htpasswdLine(t, "alice", passwords["alice"]))
		configPath = filepath.Join(dir, "config.yaml")
		writeFile(t, configPath, reloadConfigYAML(meta, base(dir)))
		srv, logs = startServer(t, configPath)
		return srv, logs, dir, configPath
	}
	const alicePull = "repository:alice/app:pull"

	applied := []struct {
		name   string
		change func(s *reloadSettings, dir string)
		// before and after hold on the server before and after the reload.
		before, after func(t *testing.T, addr string, logs *syncBuffer) bool
	}{
		{
			name:   "authn.anonymous off",
			change: func(s *reloadSettings, _ string) { s.anonymous = "false" },
			before: func(t *testing.T, addr string, _ *syncBuffer) bool {
				return anonymousStatus(t, addr, "repository:pub/x:pull") == http.StatusOK
			},
			after: func(t *testing.T, addr string, _ *syncBuffer) bool {
				return anonymousStatus(t, addr, "repository:pub/x:pull") == http.StatusUnauthorized
			},
		},
		{
			name:   "token.refresh.enabled off",
			change: func(s *reloadSettings, _ string) { s.refresh = "false" },
			before: func(t *testing.T, addr string, _ *syncBuffer) bool {
				rt := offlineLogin(t, addr, "alice", passwords["alice"], "reload-test")
				return refreshGrant(t, addr, rt, "reload-test", alicePull).status == http.StatusOK
			},
			after: func(t *testing.T, addr string, _ *syncBuffer) bool {
				res := refreshGrant(t, addr, "any", "reload-test", alicePull)
				return res.status == http.StatusBadRequest && strings.Contains(res.message, "refresh tokens are turned off")
			},
		},
		{
			name:   "authn.htpasswd removed",
			change: func(s *reloadSettings, _ string) { s.htpasswd = "" },
			before: func(t *testing.T, addr string, _ *syncBuffer) bool {
				return requestToken(t, addr, "alice", passwords["alice"], alicePull).status == http.StatusOK
			},
			after: func(t *testing.T, addr string, _ *syncBuffer) bool {
				return requestToken(t, addr, "alice", passwords["alice"], alicePull).status == http.StatusUnauthorized
			},
		},
		{
			name: "authn.htpasswd another file",
			change: func(s *reloadSettings, dir string) {
				other := filepath.Join(dir, "other-htpasswd")
				writeFile(t, other, htpasswdLine(t, "bob", passwords["bob"]))
				s.htpasswd = other
			},
			before: func(t *testing.T, addr string, _ *syncBuffer) bool {
				return requestToken(t, addr, "bob", passwords["bob"], "repository:bob/app:pull").status == http.StatusUnauthorized
			},
			after: func(t *testing.T, addr string, _ *syncBuffer) bool {
				return requestToken(t, addr, "bob", passwords["bob"], "repository:bob/app:pull").status == http.StatusOK &&
					requestToken(t, addr, "alice", passwords["alice"], alicePull).status == http.StatusUnauthorized
			},
		},
		{
			name:   "authn.sourcehut.users",
			change: func(s *reloadSettings, _ string) { s.users = "dave" },
			before: func(t *testing.T, addr string, _ *syncBuffer) bool {
				return requestToken(t, addr, "sourcehut", carol, "repository:carol/app:pull").status == http.StatusOK
			},
			after: func(t *testing.T, addr string, _ *syncBuffer) bool {
				return requestToken(t, addr, "sourcehut", carol, "repository:carol/app:pull").status == http.StatusUnauthorized
			},
		},
		{
			name:   "authn.sourcehut.enabled off",
			change: func(s *reloadSettings, _ string) { s.sourcehut = "false" },
			before: func(t *testing.T, addr string, _ *syncBuffer) bool {
				return requestToken(t, addr, "sourcehut", carol, "repository:carol/app:pull").status == http.StatusOK
			},
			after: func(t *testing.T, addr string, _ *syncBuffer) bool {
				return requestToken(t, addr, "sourcehut", carol, "repository:carol/app:pull").status == http.StatusUnauthorized
			},
		},
		{
			name:   "log.level debug",
			change: func(s *reloadSettings, _ string) { s.logLevel = "debug" },
			before: func(t *testing.T, addr string, logs *syncBuffer) bool {
				return !healthLogged(t, addr, logs)
			},
			after: func(t *testing.T, addr string, logs *syncBuffer) bool {
				return healthLogged(t, addr, logs)
			},
		},
		{
			name:   "log.decisions scope",
			change: func(s *reloadSettings, _ string) { s.logExtra = "  decisions: scope\n" },
			before: func(t *testing.T, addr string, logs *syncBuffer) bool {
				return anonymousStatus(t, addr, "repository:pub/x:pull") == http.StatusOK && !strings.Contains(logs.String(), "msg=decision ")
			},
			after: func(t *testing.T, addr string, logs *syncBuffer) bool {
				return anonymousStatus(t, addr, "repository:pub/x:pull") == http.StatusOK && strings.Contains(logs.String(), "msg=decision ")
			},
		},
		{
			name:   "groups",
			change: func(s *reloadSettings, _ string) { s.groups = "  admins: [\"htpasswd:alice\"]\n" },
			before: func(t *testing.T, addr string, _ *syncBuffer) bool {
				return len(requestToken(t, addr, "alice", passwords["alice"], "repository:bob/app:pull").access) == 0
			},
			after: func(t *testing.T, addr string, _ *syncBuffer) bool {
				return len(requestToken(t, addr, "alice", passwords["alice"], "repository:bob/app:pull").access) == 1
			},
		},
		{
			name:   "policy.data",
			change: func(s *reloadSettings, _ string) { s.data = "    reserved: [alice]\n" },
			before: func(t *testing.T, addr string, _ *syncBuffer) bool {
				return len(requestToken(t, addr, "alice", passwords["alice"], alicePull).access) == 1
			},
			after: func(t *testing.T, addr string, _ *syncBuffer) bool {
				return len(requestToken(t, addr, "alice", passwords["alice"], alicePull).access) == 0
			},
		},
	}
	for _, tc := range applied {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, logs, dir, configPath := start(t)
			addr := srv.Addr()
			if !tc.before(t, addr, logs) {
				t.Fatal("the condition before the change does not hold")
			}
			s := base(dir)
			tc.change(&s, dir)
			writeFile(t, configPath, reloadConfigYAML(meta, s))
			if err := srv.Reload(t.Context()); err != nil {
				t.Fatalf("reload: %v", err)
			}
			if !tc.after(t, addr, logs) {
				t.Errorf("the change is not in force after the reload; log:\n%s", logs)
			}
		})
	}

	refused := []struct {
		name   string
		change func(s *reloadSettings, dir string)
		want   string // in the reload's error
	}{
		{"listen", func(s *reloadSettings, _ string) { s.listen = "127.0.0.1:1" }, "listen (needs a restart)"},
		{"service", func(s *reloadSettings, _ string) { s.extra = "service: other.example.com\n" }, "service (needs a restart)"},
		{"issuer", func(s *reloadSettings, _ string) { s.extra = "issuer: someone-else\n" }, "issuer (needs a restart)"},
		{"limits", func(s *reloadSettings, _ string) { s.extra = "limits:\n  max_scopes: 3\n" }, "limits.max_scopes (needs a restart)"},
		{"metrics", func(s *reloadSettings, _ string) { s.extra = "metrics:\n  listen: 127.0.0.1:0\n" }, "metrics.listen (needs a restart)"},
		{"trusted_proxies", func(s *reloadSettings, _ string) { s.extra = "trusted_proxies: [10.0.0.1]\n" }, "trusted_proxies (needs a restart)"},
		{"log.format", func(s *reloadSettings, _ string) { s.logExtra = "  format: json\n" }, "log.format (needs a restart)"},
		{"token.ttl", func(s *reloadSettings, _ string) { s.tokenExtra = "  ttl: 1m\n" }, "token.ttl (needs a restart)"},
		{"token.refresh.ttl", func(s *reloadSettings, _ string) { s.tokenExtra = "    ttl: 1h\n" }, "token.refresh.ttl (needs a restart)"},
		{"authn.sourcehut.timeout", func(s *reloadSettings, _ string) { s.sourcehutExtra = "    timeout: 1s\n" }, "authn.sourcehut.timeout (needs a restart)"},
		{"brute_force", func(s *reloadSettings, _ string) { s.threshold = "3" }, "brute_force.threshold (needs a restart)"},
		{"authn.htpasswd added", nil, "authn.htpasswd (turning password login on needs a restart)"},
		{"authn.sourcehut.enabled on", nil, "authn.sourcehut.enabled (turning Sourcehut login on needs a restart)"},
		{"token.refresh.enabled on", nil, "token.refresh.enabled (turning refresh tokens on needs a restart)"},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			htpasswd := filepath.Join(dir, "htpasswd")
			writeFile(t, htpasswd, htpasswdLine(t, "alice", passwords["alice"]))
			start := base(dir)
			next := base(dir)
			switch tc.name {
			case "authn.htpasswd added":
				start.htpasswd = ""
			case "authn.sourcehut.enabled on":
				start.sourcehut = "false"
			case "token.refresh.enabled on":
				start.refresh = "false"
			default:
				tc.change(&next, dir)
			}
			configPath := filepath.Join(dir, "config.yaml")
			writeFile(t, configPath, reloadConfigYAML(meta, start))
			srv, logs := startServer(t, configPath)
			// With the restart-only change, a reloadable one: it must not
			// be applied either.
			next.anonymous = "false"
			writeFile(t, configPath, reloadConfigYAML(meta, next))
			err := srv.Reload(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing reloaded") {
				t.Fatalf("reload: %v, want a refusal naming %q", err, tc.want)
			}
			if code := anonymousStatus(t, srv.Addr(), "repository:pub/x:pull"); code != http.StatusOK {
				t.Errorf("anonymous pull after the refused reload: %d, want 200 (nothing applied)", code)
			}
			wantContains(t, "log", logs.String(), "reload failed", tc.want)
		})
	}
}

// healthLogged reports whether a passing health probe, logged at debug,
// shows in the log.
func healthLogged(t *testing.T, addr string, logs *syncBuffer) bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz?probe=reload-test")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return strings.Contains(logs.String(), "path=/healthz")
}

// TestReloadDocumented holds docs/operations.md's Reload section to the
// settings a reload takes on.
func TestReloadDocumented(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Reload\n")
	if !ok {
		t.Fatal("docs/operations.md has no Reload section")
	}
	for _, key := range reloadable {
		if !strings.Contains(section, "`"+key) {
			t.Errorf("the Reload section of docs/operations.md does not name %s", key)
		}
	}
}

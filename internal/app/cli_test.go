package app

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"git.sr.ht/~zozs/srht-registry/internal/config"
)

func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	code = Run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCommandLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	invalid := filepath.Join(dir, "invalid.yaml")
	writeFile(t, invalid, "issuer: \"\"\ntoken:\n  ttl: 10s\nlog:\n  level: loud\n")
	unknownKey := filepath.Join(dir, "unknown.yaml")
	writeFile(t, unknownKey, "listen: 127.0.0.1:0\nlisten_adress: oops\n") //nolint:misspell // the misspelt key is the test
	bundles := filepath.Join(dir, "bundles.yaml")
	writeFile(t, bundles, "policy:\n  bundles: [./b]\n")
	typoBundle := filepath.Join(dir, "typo")
	if err := os.MkdirAll(typoBundle, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(typoBundle, ".manifest"), `{"revision": "typo-1", "roots": ["registry"]}`)
	writeFile(t, filepath.Join(typoBundle, "authz.rego"), "package registry.authz\n\n# The input schema knows identity.subject, not subjekt.\n\nallow contains \"pull\" if input.identity.subjekt == \"alice\"\n")
	typo := filepath.Join(dir, "typo.yaml")
	writeFile(t, typo, "policy:\n  bundles: ["+typoBundle+"]\n")
	teams := filepath.Join(dir, "teams.yaml")
	writeFile(t, teams, "policy:\n  bundles: [../../bundles/teams]\n")
	missingKey := filepath.Join(dir, "missing-key.yaml")
	writeFile(t, missingKey, "token:\n  key: "+filepath.Join(dir, "nope.pem")+"\n")
	dataTypo := filepath.Join(dir, "data-typo.yaml")
	writeFile(t, dataTypo, "policy:\n  data:\n    publc: [\"library/*\"]\n    namespaces:\n      team: {psuh: [htpasswd:alice]}\n")
	noAllowBundle := filepath.Join(dir, "no-allow")
	if err := os.MkdirAll(noAllowBundle, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(noAllowBundle, ".manifest"), `{"revision": "no-allow-1", "roots": ["registry"]}`)
	writeFile(t, filepath.Join(noAllowBundle, "authz.rego"), "package registry.authz\n\nalow contains \"pull\" if input.identity.subject == \"alice\"\n")
	noAllow := filepath.Join(dir, "no-allow.yaml")
	writeFile(t, noAllow, "policy:\n  bundles: ["+noAllowBundle+"]\n")
	oidcBlindBundle := filepath.Join(dir, "oidc-blind")
	if err := os.MkdirAll(oidcBlindBundle, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(oidcBlindBundle, ".manifest"), `{"revision": "blind-1", "roots": ["registry"]}`)
	writeFile(t, filepath.Join(oidcBlindBundle, "authz.rego"), "package registry.authz\n\nallow contains \"pull\" if input.identity.provider == \"github\"\n")
	oidcBlind := filepath.Join(dir, "oidc-blind.yaml")
	writeFile(t, oidcBlind, "authn:\n  oidc:\n    - name: github\n      issuer: https://token.actions.githubusercontent.com\npolicy:\n  bundles: ["+oidcBlindBundle+"]\n")
	// One problem in each part the config names: all are reported.
	everywhere := filepath.Join(dir, "everywhere.yaml")
	writeFile(t, everywhere, "listen: 0.0.0.0:5001\ntoken:\n  key: "+filepath.Join(dir, "nope.pem")+
		"\nauthn:\n  htpasswd: "+filepath.Join(dir, "no-htpasswd")+"\npolicy:\n  bundles: ["+typoBundle+"]\n")

	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{name: "no command", args: nil, wantCode: 2, wantStderr: []string{"usage:"}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: []string{`unknown command "frobnicate"`}},
		{name: "version", args: []string{"--version"}, wantCode: 0, wantStdout: []string{"srht-registry", "go1.", "OPA "}}, // test binaries carry no dependency list
		{name: "check-config defaults", args: []string{"check-config"}, wantCode: 0, wantStdout: []string{"config OK"}},
		{name: "every problem at once", args: []string{"check-config", "--config", invalid}, wantCode: 2,
			wantStderr: []string{"issuer", "token.ttl", "log.level"}},
		{name: "unknown key", args: []string{"serve", "--config", unknownKey}, wantCode: 2, wantStderr: []string{"listen_adress"}}, //nolint:misspell // the misspelt key is the test
		{name: "missing config file", args: []string{"serve", "--config", filepath.Join(dir, "absent.yaml")}, wantCode: 2, wantStderr: []string{"absent.yaml"}},
		{name: "missing bundle", args: []string{"check-config", "--config", bundles}, wantCode: 2, wantStderr: []string{"bundle ./b", "no such file"}},
		{name: "typo in a policy", args: []string{"check-config", "--config", typo}, wantCode: 2, wantStderr: []string{"authz.rego:5", "subjekt"}},
		{name: "example bundle", args: []string{"check-config", "--config", teams}, wantCode: 0, wantStdout: []string{"config OK"}},
		{name: "missing key file", args: []string{"check-config", "--config", missingKey}, wantCode: 2, wantStderr: []string{"token.key", "nope.pem"}},
		{name: "every part's problem at once", args: []string{"check-config", "--config", everywhere}, wantCode: 2,
			wantStderr: []string{"4 problems", "not a loopback address", "nope.pem", "no-htpasswd", "subjekt"}},
		{name: "summary", args: []string{"check-config", "--config", teams}, wantCode: 0,
			wantStdout: []string{"listen:", "127.0.0.1:5001 (http)", "service:", "registry.example.com", "signing key:", "ephemeral",
				"password users:", "none", "Sourcehut login:", "nobody", "refresh tokens:", "on", "policy:", "revision"}},
		{name: "a typo in policy data", args: []string{"check-config", "--config", dataTypo}, wantCode: 2,
			wantStderr: []string{`registry.publc: unknown key (did you mean "public"?)`, `registry.namespaces.team.psuh: unknown key (did you mean "push"?)`}},
		{name: "a policy without allow", args: []string{"check-config", "--config", noAllow}, wantCode: 2,
			wantStderr: []string{"no allow rule", `"alow"`}},
		{name: "a policy blind to OIDC claims", args: []string{"check-config", "--config", oidcBlind}, wantCode: 0,
			wantStdout: []string{"OIDC github:", "https://token.actions.githubusercontent.com"}, wantStderr: []string{"warning: the policy never reads input.identity.oidc"}},
		{name: "stray argument", args: []string{"serve", "extra"}, wantCode: 2, wantStderr: []string{"unexpected arguments: extra"}},
		{name: "hash-password needs a user", args: []string{"hash-password"}, stdin: "pw\n", wantCode: 2, wantStderr: []string{"user name"}},
		{name: "hash-password cost out of range", args: []string{"hash-password", "--cost", "3", "alice"}, stdin: "pw\n", wantCode: 2, wantStderr: []string{"--cost must be between 4 and 17"}},
		{name: "hash-password empty", args: []string{"hash-password", "alice"}, stdin: "\n", wantCode: 2, wantStderr: []string{"empty password"}},
		{name: "keys needs --out", args: []string{"keys"}, wantCode: 2, wantStderr: []string{"--out"}},
		{name: "keys bad type", args: []string{"keys", "--out", filepath.Join(dir, "k"), "--type", "dsa"}, wantCode: 2, wantStderr: []string{`unknown key type "dsa"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.stdin, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestHashPassword(t *testing.T) {
	t.Parallel()
	const password = "correct horse battery staple"
	code, stdout, stderr := run(t, password+"\n", "hash-password", "--cost", "4", "alice")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	user, hash, ok := strings.Cut(strings.TrimSpace(stdout), ":")
	if !ok || user != "alice" {
		t.Fatalf("want alice:<hash>, got %q", stdout)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		t.Fatalf("hash does not verify: %v", err)
	}
	if strings.Contains(stdout+stderr, password) {
		t.Fatal("the password was echoed")
	}
}

func TestKeysWritesRegistryFiles(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"ec", "rsa", "ed25519"} {
		t.Run(typ, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "keys")
			code, stdout, stderr := run(t, "", "keys", "--out", out, "--type", typ, "--realm", "https://auth.example.com/auth")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, want := range []string{"realm: https://auth.example.com/auth", "service: registry.example.com", "issuer: srht-registry",
				"jwks: " + out + "/jwks.json", "rootcertbundle: " + out + "/cert.pem", "key: " + out + "/key.pem"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
			st, err := os.Stat(filepath.Join(out, "key.pem"))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("key.pem mode %v, want 0600", st.Mode().Perm())
			}
			if strings.Contains(stdout, "PRIVATE KEY") {
				t.Error("the private key was printed")
			}
			// The key must be usable by serve: check-config loads it.
			cfg := filepath.Join(out, "config.yaml")
			writeFile(t, cfg, "token:\n  key: "+out+"/key.pem\n  certificate: "+out+"/cert.pem\n")
			if code, _, stderr := run(t, "", "check-config", "--config", cfg); code != 0 {
				t.Fatalf("check-config with the written key: %s", stderr)
			}
			// A second run must not overwrite a key silently.
			if code, _, stderr := run(t, "", "keys", "--out", out, "--type", typ); code == 0 || !strings.Contains(stderr, "--force") {
				t.Fatalf("second keys run: exit %d, %s", code, stderr)
			}
		})
	}
}

// TestUsageListsEveryCommand: every command Run dispatches (the table it
// dispatches from) is in the usage text with its summary, in doc.go, and
// has a -h naming the flags its synopsis shows.
func TestUsageListsEveryCommand(t *testing.T) {
	t.Parallel()
	code, help, _ := run(t, "", "help")
	if code != 0 || help != usage() {
		t.Fatalf("help: exit %d:\n%s", code, help)
	}
	if code, _, stderr := run(t, ""); code != 2 || stderr != usage() {
		t.Errorf("no command: exit %d:\n%s", code, stderr)
	}
	doc := string(mustRead(t, "doc.go"))
	flagName := regexp.MustCompile(`--?([a-z][a-z-]*)`)
	cmds := commands()
	for _, c := range cmds {
		t.Run(c.name, func(t *testing.T) {
			for _, spelling := range append([]string{c.name}, c.aliases...) {
				if got, rest, ok := findCommand(strings.Fields(spelling)); !ok || got.name != c.name || len(rest) > 0 {
					t.Errorf("%q dispatches to %q (found %v, rest %q)", spelling, got.name, ok, rest)
				}
			}
			if c.group {
				// The group's own help lists its commands.
				code, stdout, _ := run(t, "", c.name, "-h")
				if code != 0 {
					t.Fatalf("%s -h: exit %d", c.name, code)
				}
				n := 0
				for _, sub := range cmds {
					if word, ok := strings.CutPrefix(sub.name, c.name+" "); ok {
						n++
						wantContains(t, c.name+" -h", stdout, "\n  "+word+" ")
					}
				}
				if n == 0 {
					t.Errorf("group %s has no commands", c.name)
				}
				if !strings.Contains(help, "\n  "+c.name+" ") {
					t.Errorf("usage lists no %s command:\n%s", c.name, help)
				}
				return
			}
			if !regexp.MustCompile(`\n  ` + regexp.QuoteMeta(c.name) + `[ \n]`).MatchString(help) {
				t.Errorf("usage lacks %q:\n%s", c.name, help)
			}
			if c.summary == "" || strings.Contains(c.summary, "\n") {
				t.Errorf("summary %q: want one line", c.summary)
			}
			wantContains(t, "usage", help, "\n      "+c.summary+"\n")
			wantContains(t, "doc.go", doc, "//   - "+c.name+": ")

			// -h (and help COMMAND) print the command's usage and every
			// flag its synopsis names.
			args := append(strings.Fields(c.name), "-h")
			code, stdout, stderr := run(t, "", args...)
			if code != 0 {
				t.Fatalf("%s -h: exit %d: %s", c.name, code, stderr)
			}
			text := stdout + stderr
			if c.name == "help" {
				wantContains(t, "help -h", text, usage())
				return
			}
			wantContains(t, c.name+" -h", text, "usage: srht-registry "+c.name)
			for _, m := range flagName.FindAllStringSubmatch(c.synopsis, -1) {
				if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(m[1]) + `([ \t]|$)`).MatchString(text) {
					t.Errorf("the synopsis names %s, which %s -h does not list:\n%s", m[0], c.name, text)
				}
			}
			code, helpOut, stderr := run(t, "", append([]string{"help"}, strings.Fields(c.name)...)...)
			if code != 0 || !strings.Contains(helpOut, "usage: srht-registry "+c.name) {
				t.Errorf("help %s: exit %d: %s%s", c.name, code, helpOut, stderr)
			}
		})
	}
	if code, _, stderr := run(t, "", "help", "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("help frobnicate: exit %d: %s", code, stderr)
	}
}

// TestPromptTwice: on a terminal hash-password asks twice; a mismatch or an
// empty password is refused, and the prompts go to the prompt writer only.
func TestPromptTwice(t *testing.T) {
	t.Parallel()
	reader := func(answers ...string) func() ([]byte, error) {
		return func() ([]byte, error) {
			a := answers[0]
			answers = answers[1:]
			return []byte(a), nil
		}
	}
	var prompt strings.Builder
	got, err := promptTwice(reader("s3cret", "s3cret"), &prompt)
	if err != nil || string(got) != "s3cret" {
		t.Fatalf("same twice: %q, %v", got, err)
	}
	if prompt.String() != "Password: \nAgain: \n" {
		t.Errorf("prompts: %q", prompt.String())
	}
	if _, err := promptTwice(reader("s3cret", "s3cert"), io.Discard); err == nil || !strings.Contains(err.Error(), "differ") {
		t.Errorf("two different passwords: %v", err)
	}
	if _, err := promptTwice(reader(""), io.Discard); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty password: %v", err)
	}
}

// TestJSONLogDurations: JSON logs write durations as seconds, the unit in
// the key; text logs keep Go's notation.
func TestJSONLogDurations(t *testing.T) {
	t.Parallel()
	for format, want := range map[string]string{"json": `"duration_seconds":0.0015`, "text": "duration=1.5ms"} {
		var out strings.Builder
		log, _, err := newLogger(config.Log{Level: "info", Format: format}, &out)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("request", "duration", 1500*time.Microsecond)
		if !strings.Contains(out.String(), want) {
			t.Errorf("%s log %q lacks %q", format, out.String(), want)
		}
	}
}

// TestEveryCommandExplained: each command's -h says what it does and shows
// an example, and a mistyped command gets the one it was meant to be.
func TestEveryCommandExplained(t *testing.T) {
	t.Parallel()
	for _, c := range commands() {
		if c.group || c.name == "version" || c.name == "help" {
			continue
		}
		if c.about == "" || len(c.examples) == 0 {
			t.Errorf("%s: no description or no example", c.name)
			continue
		}
		code, stdout, _ := run(t, "", append([]string{"help"}, strings.Fields(c.name)...)...)
		if code != 0 {
			t.Errorf("help %s: exit %d", c.name, code)
		}
		wantContains(t, "help "+c.name, stdout, "usage: srht-registry "+c.name, strings.SplitN(c.about, "\n", 2)[0], "examples:", c.examples[0])
	}
	for typed, want := range map[string]string{
		"chek-config":  "check-config",
		"serv":         "serve",
		"hash-pasword": "hash-password",
		"policy tets":  "policy test",
	} {
		code, _, stderr := run(t, "", strings.Fields(typed)...)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2", typed, code)
		}
		wantContains(t, typed, stderr, `(did you mean "`+want+`"?)`)
	}
}

package app

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"git.sr.ht/~zozs/srht-registry/internal/token"
)

// registryBlock is the registry config keys printed: the distribution
// version its heading names, and the YAML under it.
func registryBlock(t *testing.T, stdout string) (version, config string) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^# distribution (\S+) registry config \(config\.yml\):\n((?:[^#].*\n)+)`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no registry config in the output:\n%s", stdout)
	}
	return m[1], m[2]
}

// registry28Trusts loads a registry config as distribution 2.8's token
// access controller does, and returns the libtrust key IDs it trusts:
// realm, service, issuer and rootcertbundle are required, and every
// certificate of the bundle must hold a key libtrust knows (EC or RSA), or
// the registry does not start.
func registry28Trusts(t *testing.T, config string) map[string]bool {
	t.Helper()
	var c struct {
		Auth struct {
			Token map[string]any `yaml:"token"`
		} `yaml:"auth"`
	}
	if err := yaml.Unmarshal([]byte(config), &c); err != nil {
		t.Fatalf("registry config: %v\n%s", err, config)
	}
	for _, name := range []string{"realm", "service", "issuer", "rootcertbundle"} {
		if v, _ := c.Auth.Token[name].(string); v == "" {
			t.Errorf("registry config lacks auth.token.%s, which 2.8 requires:\n%s", name, config)
		}
	}
	for name := range c.Auth.Token {
		switch name {
		case "realm", "service", "issuer", "rootcertbundle", "autoredirect":
		default:
			t.Errorf("registry config has auth.token.%s, which 2.8 does not know:\n%s", name, config)
		}
	}
	bundle, _ := c.Auth.Token["rootcertbundle"].(string)
	trusted := map[string]bool{}
	for rest := mustRead(t, bundle); ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", bundle, err)
		}
		switch cert.PublicKey.(type) {
		case *ecdsa.PublicKey, *rsa.PublicKey:
		default:
			t.Errorf("%s holds a %T certificate: 2.8 (libtrust) refuses to start", bundle, cert.PublicKey)
			continue
		}
		kid, err := token.LibtrustKeyID(cert.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		trusted[kid] = true
	}
	if len(trusted) == 0 {
		t.Errorf("%s holds no certificate: 2.8 refuses to start", bundle)
	}
	return trusted
}

// TestKeysRegistryVersion: what keys prints for --registry v3 and v2, with
// and without --previous. The v2 output must name distribution 2.8, never
// point it at a jwks file, and give it a rootcertbundle that 2.8 loads and
// that holds every key still to be trusted.
func TestKeysRegistryVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := makeKeys(t, filepath.Join(dir, "old"), "ec")
	older := makeKeys(t, filepath.Join(dir, "older"), "rsa")
	edOld := makeKeys(t, filepath.Join(dir, "ed"), "ed25519")

	tests := []struct {
		name     string
		registry string
		args     []string // after --out and --registry
		trusted  []keyDir // previous keys the registry must trust
		wantCode int
		want     []string // in stdout, or in stderr when wantCode != 0
		lacks    []string // in stdout after its first line (which names the files written)
	}{
		{name: "v3", registry: "v3",
			want: []string{"jwks: OUT/jwks.json", "rootcertbundle: OUT/cert.pem", "srht-registry keys --out NEWDIR --previous OUT/key.pem\n"}},
		{name: "v2", registry: "v2",
			want:  []string{"rootcertbundle: OUT/cert.pem", "srht-registry keys --registry v2 --out NEWDIR --previous OUT/key.pem --previous OUT/cert.pem\n"},
			lacks: []string{"jwks", "distribution v3"}},
		{name: "v3 rotation", registry: "v3", args: []string{"--previous", old.key()},
			want: []string{"jwks: OUT/jwks.json", "rootcertbundle: OUT/cert.pem", "jwks.json lists every key", "curl -fsS http://localhost:5001/.well-known/jwks.json > OUT/jwks.json"}},
		{name: "v2 rotation", registry: "v2", args: []string{"--previous", old.key(), "--previous", old.cert()}, trusted: []keyDir{old},
			want: []string{"rootcertbundle: OUT/bundle.pem", "bundle.pem holds the certificate of every key", "    - " + old.key() + "\n",
				"new key only (rootcertbundle: OUT/cert.pem)"},
			lacks: []string{"jwks", "curl", "distribution v3"}},
		{name: "v2 rotation over two generations", registry: "v2",
			args:    []string{"--previous", old.key(), "--previous", old.cert(), "--previous", older.cert()},
			trusted: []keyDir{old, older},
			want:    []string{"rootcertbundle: OUT/bundle.pem", "bundle.pem also holds the certificates of the previous keys: " + old.kid + ", " + older.kid},
			lacks:   []string{"jwks", "curl", "distribution v3"}},
		{name: "v2 rotation without the previous certificate", registry: "v2", args: []string{"--previous", old.key()},
			wantCode: 2, want: []string{"--previous " + old.key(), "rootcertbundle", "--previous " + old.cert()}},
		{name: "v2 rotation with another key's certificate", registry: "v2", args: []string{"--previous", old.key(), "--previous", older.cert()},
			wantCode: 2, want: []string{"--previous " + old.key(), "--previous " + old.cert()}},
		{name: "v2 rotation from an Ed25519 key", registry: "v2", args: []string{"--previous", edOld.key(), "--previous", edOld.cert()},
			wantCode: 2, want: []string{"--previous " + edOld.key(), "Ed25519"}},
		{name: "v2 with an Ed25519 key", registry: "v2", args: []string{"--type", "ed25519"},
			wantCode: 2, want: []string{"Ed25519", "--type ec or rsa"}},
		{name: "unknown registry", registry: "v4", wantCode: 2, want: []string{`--registry must be v2 or v3, got "v4"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "new")
			args := append([]string{"keys", "--out", out, "--registry", tt.registry, "--realm", "http://localhost:5001/auth"}, tt.args...)
			code, stdout, stderr := run(t, "", args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, strings.ReplaceAll(w, "OUT", out))
			}
			if code != 0 {
				wantContains(t, "stderr", stderr, want...)
				if _, err := os.Stat(out); err == nil {
					t.Errorf("a refused run wrote %s", out)
				}
				return
			}
			wantContains(t, "keys output", stdout, want...)
			_, body, _ := strings.Cut(stdout, "\n")
			wantLacks(t, "keys output", body, tt.lacks...)

			version, config := registryBlock(t, stdout)
			if want := map[string]string{"v2": "2.8", "v3": "v3"}[tt.registry]; version != want {
				t.Errorf("the registry config is headed distribution %s, want %s", version, want)
			}
			if tt.registry == "v2" {
				trusted := registry28Trusts(t, config)
				for _, k := range append([]keyDir{{dir: out, kid: kidOfFile(t, filepath.Join(out, "key.pem"))}}, tt.trusted...) {
					if !trusted[k.kid] {
						t.Errorf("registry 2.8 would not trust the key of %s (kid %s); it trusts %v", k.dir, k.kid, trusted)
					}
				}
			}

			// The printed way to rotate this key works.
			if len(tt.args) == 0 {
				line := regexp.MustCompile(`(?m)^# To rotate this key later without a failed pull: srht-registry (.*)$`).FindStringSubmatch(stdout)
				if line == nil {
					t.Fatalf("no rotation command:\n%s", stdout)
				}
				next := filepath.Join(t.TempDir(), "next")
				rotate := strings.Fields(strings.ReplaceAll(line[1], "NEWDIR", next))
				code, stdout, stderr := run(t, "", rotate...)
				if code != 0 {
					t.Fatalf("the printed rotation %q: exit %d: %s", rotate, code, stderr)
				}
				if version, config := registryBlock(t, stdout); tt.registry == "v2" {
					if version != "2.8" {
						t.Errorf("the rotation's registry config is headed distribution %s", version)
					}
					trusted := registry28Trusts(t, config)
					for _, key := range []string{filepath.Join(out, "key.pem"), filepath.Join(next, "key.pem")} {
						if kid := kidOfFile(t, key); !trusted[kid] {
							t.Errorf("during the rotation, registry 2.8 would not trust %s (kid %s)", key, kid)
						}
					}
				}
			}
		})
	}
}

// TestKeysKeepExistingPrintsConfig: a run of keys --keep-existing that
// keeps the key prints the same configs as the run that wrote it, so a
// one-shot that runs at every start logs them every time.
func TestKeysKeepExistingPrintsConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	jwksConfig := filepath.Join(dir, "jwks.yaml")
	writeFile(t, jwksConfig, "token:\n  kid_format: jwks\n")
	old := makeKeys(t, filepath.Join(dir, "old"), "ec")

	tests := []struct {
		name      string
		create    []string // after keys --out DIR --keep-existing
		keep      []string
		wantCode  int
		wantSame  bool     // the kept run prints what the first printed, from the kid on
		want      []string // in stdout, or in stderr when wantCode != 0
		wantLacks []string
	}{
		{name: "v3", create: []string{"--registry", "v3"}, keep: []string{"--registry", "v3"}, wantSame: true},
		{name: "v2", create: []string{"--registry", "v2"}, keep: []string{"--registry", "v2"}, wantSame: true,
			want: []string{"distribution 2.8 registry config", "rootcertbundle: OUT/cert.pem"}, wantLacks: []string{"jwks:"}},
		{name: "rsa with a realm", create: []string{"--type", "rsa", "--realm", "https://auth.example.com/auth"},
			keep: []string{"--realm", "https://auth.example.com/auth"}, wantSame: true},
		{name: "--type ignored for a kept key", create: []string{"--type", "rsa"}, keep: []string{"--type", "ec"}, wantSame: true,
			want: []string{"algorithm RS256"}},
		{name: "kid_format changed since", create: nil, keep: []string{"--config", jwksConfig},
			want: []string{"WARNING: OUT/jwks.json does not list this key's kid", "curl -fsS http://localhost:5001/.well-known/jwks.json > OUT/jwks.json"}},
		{name: "left from a rotation", create: []string{"--previous", old.key(), "--previous", old.cert()},
			want: []string{"OUT/bundle.pem is left from a rotation", "distribution v3 registry config"}, wantLacks: []string{"published_keys:"}},
		{name: "Ed25519 key for registry 2.8", create: []string{"--type", "ed25519"}, keep: []string{"--registry", "v2"},
			wantCode: 2, want: []string{"OUT/key.pem", "Ed25519"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "keys")
			code, first, stderr := run(t, "", append([]string{"keys", "--out", out, "--keep-existing"}, tt.create...)...)
			if code != 0 {
				t.Fatalf("first run: exit %d: %s", code, stderr)
			}
			key := mustRead(t, filepath.Join(out, "key.pem"))
			code, kept, stderr := run(t, "", append([]string{"keys", "--out", out, "--keep-existing"}, tt.keep...)...)
			if code != tt.wantCode {
				t.Fatalf("kept run: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, kept, stderr)
			}
			if string(mustRead(t, filepath.Join(out, "key.pem"))) != string(key) {
				t.Fatal("--keep-existing replaced the key")
			}
			var want, lacks []string
			for _, w := range tt.want {
				want = append(want, strings.ReplaceAll(w, "OUT", out))
			}
			for _, w := range tt.wantLacks {
				lacks = append(lacks, strings.ReplaceAll(w, "OUT", out))
			}
			if code != 0 {
				wantContains(t, "stderr", stderr, want...)
				return
			}
			wantContains(t, "kept output", kept, append(want, "# "+out+" already holds key.pem, cert.pem and jwks.json: kept them.\n",
				"# srht-registry config:\ntoken:\n  key: "+out+"/key.pem\n", "registry config (config.yml):\nauth:\n  token:\n")...)
			wantLacks(t, "kept output", kept, append(lacks, "PRIVATE KEY")...)
			if tt.wantSame {
				_, firstTail, _ := strings.Cut(first, "# Key ID")
				_, keptTail, _ := strings.Cut(kept, "# Key ID")
				if firstTail != keptTail {
					t.Errorf("the kept run prints\n%s\nwhere the first printed\n%s", keptTail, firstTail)
				}
			}
		})
	}
}

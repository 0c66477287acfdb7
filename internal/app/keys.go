package app

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"git.sr.ht/~zozs/srht-registry/internal/config"
	"git.sr.ht/~zozs/srht-registry/internal/token"
)

// certValidity is long because the registry only uses the certificate to
// pin the key; rotating the key replaces it.
const certValidity = 10 * 365 * 24 * time.Hour

// keysExist reports whether dir holds all the files keys writes, and fails
// when it holds only some: a half-written set must not pass for a key.
func keysExist(dir string) (bool, error) {
	var have, missing []string
	for _, name := range []string{"key.pem", "cert.pem", "jwks.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			have = append(have, name)
		} else {
			missing = append(missing, name)
		}
	}
	switch {
	case len(missing) == 0:
		return true, nil
	case len(have) == 0:
		return false, nil
	}
	return false, fmt.Errorf("%s holds %s but not %s: remove them, or use --force to write a new key", dir, strings.Join(have, ", "), strings.Join(missing, ", "))
}

func runKeys(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys", stderr)
	out := fs.String("out", "", "`DIR` to write key.pem, cert.pem and jwks.json to (created if missing)")
	keyType := fs.String("type", "ec", "key `TYPE`: ec (ES256), rsa (RS256) or ed25519 (EdDSA)")
	configPath := fs.String("config", "", "config `FILE` whose service, issuer, listen address and token.kid_format go into the printed configs")
	realm := fs.String("realm", "", "token endpoint `URL` the registry sends clients to (default http://localhost:PORT/auth from listen)")
	force := fs.Bool("force", false, "overwrite existing files")
	keep := fs.Bool("keep-existing", false, "if DIR already holds key.pem, cert.pem and jwks.json, keep them, print the configs\nfor that key and exit 0 (for a start-up step that runs every time, such as a one-shot container)")
	registry := fs.String("registry", "v3", "registry `VERSION` the printed config is for: v3 (distribution 3.x: jwks)\nor v2 (distribution 2.8: rootcertbundle only; --previous then needs each previous key's certificate)")
	var previous listFlag
	fs.Var(&previous, "previous", "key `FILE` (private key, public key or certificate) to keep publishing beside the new key, for a rotation (repeatable)")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		return usageError{errors.New("keys: --out DIR is required")}
	}
	if *registry != "v2" && *registry != "v3" {
		return usageError{fmt.Errorf("keys: --registry must be v2 or v3, got %q", *registry)}
	}
	if *keep && *force {
		return usageError{errors.New("keys: --keep-existing and --force contradict each other")}
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	r := keysReport{registry: *registry, realm: *realm, cfg: cfg}
	if r.realm == "" {
		_, port, _ := strings.Cut(cfg.Listen, ":")
		r.realm = fmt.Sprintf("http://localhost:%s/auth", port)
	}
	if *configPath != "" {
		if r.configArg, err = filepath.Abs(*configPath); err != nil {
			return err
		}
	}
	if r.dir, err = filepath.Abs(*out); err != nil {
		return err
	}
	if *keep {
		kept, err := keysExist(*out)
		if err != nil {
			return err
		}
		if kept {
			return r.printKept(stdout)
		}
	}
	if *registry == "v2" && token.KeyType(*keyType) == token.KeyEd25519 {
		return usageError{errors.New("keys: distribution 2.8 cannot verify Ed25519 (EdDSA) tokens; use --type ec or rsa with --registry v2")}
	}
	signer, err := token.Generate(token.KeyType(*keyType))
	if err != nil {
		return usageError{err}
	}
	cert, err := token.SelfSign(signer, cfg.Issuer, certValidity, time.Now())
	if err != nil {
		return err
	}
	if r.key, err = token.NewKey(signer, nil, kidFormat(cfg.Token)); err != nil {
		return err
	}
	keyPEM, err := token.EncodePrivateKey(signer)
	if err != nil {
		return err
	}
	// The previous keys are read as serve reads published_keys, with the
	// same refusals, so the printed config loads.
	var published []*token.PublicKey
	var bundle []byte              // the new certificate and the previous ones, when there are any
	certified := map[string]bool{} // kids of the previous keys whose certificate bundle holds
	for _, path := range previous {
		data, err := readKeyFile("--previous", path, false)
		if err != nil {
			return err
		}
		p, err := token.ParsePublicKey(data, kidFormat(cfg.Token))
		if err != nil {
			return fmt.Errorf("--previous %s: %w", path, err)
		}
		if *registry == "v2" && p.Algorithm() == jwa.EdDSA {
			return usageError{fmt.Errorf("--previous %s: an Ed25519 key, which distribution 2.8 cannot verify (and a certificate of it in rootcertbundle stops 2.8 from starting)", path)}
		}
		published = append(published, p)
		abs, err := filepath.Abs(path)
		if err != nil {
			return err
		}
		r.previous = append(r.previous, abs)
		if leaf := firstCertificate(data); leaf != nil {
			c, err := token.ParsePublicKey(leaf, kidFormat(cfg.Token))
			if err != nil {
				return fmt.Errorf("--previous %s: %w", path, err)
			}
			certified[c.ID()] = true
			if bundle == nil {
				bundle = token.EncodeCertificate(cert)
			}
			bundle = append(bundle, leaf...)
		}
	}
	// Distribution 2.8 has no jwks option: it trusts a key only through a
	// certificate of it in rootcertbundle.
	if *registry == "v2" {
		for i, p := range published {
			if !certified[p.ID()] {
				return usageError{fmt.Errorf("--previous %s: distribution 2.8 trusts a key only by its certificate in rootcertbundle: pass the certificate of this key with --previous too (such as --previous %s)",
					previous[i], filepath.Join(filepath.Dir(r.previous[i]), "cert.pem"))}
			}
		}
	}
	set, err := token.NewKeySet(r.key, published...)
	if err != nil {
		return err
	}
	r.previousKids = set.KeyIDs()[1:]
	r.bundle = bundle != nil
	jwks := set.JWKS()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"key.pem", keyPEM, 0o600},
		{"cert.pem", token.EncodeCertificate(cert), 0o644},
		{"jwks.json", append(slices.Clip(jwks), '\n'), 0o644},
	}
	if bundle != nil {
		files = append(files, struct {
			name string
			data []byte
			mode os.FileMode
		}{"bundle.pem", bundle, 0o644})
	}
	// A previous key about to be overwritten would be lost, and the
	// printed published_keys would name the new key.
	for _, f := range files {
		dst, err := os.Stat(filepath.Join(*out, f.name))
		if err != nil {
			continue
		}
		for _, p := range previous {
			if src, err := os.Stat(p); err == nil && os.SameFile(src, dst) {
				return usageError{fmt.Errorf("--previous %s would be overwritten by the new %s: write the new key to another --out directory", p, f.name)}
			}
		}
	}
	for _, f := range files {
		path := filepath.Join(*out, f.name)
		flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		if !*force {
			flags |= os.O_EXCL
		}
		fh, err := os.OpenFile(path, flags, f.mode)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s exists; use --force to overwrite", path)
			}
			return err
		}
		_, werr := fh.Write(f.data)
		if cerr := fh.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return werr
		}
	}
	written := fmt.Sprintf("%[1]s/key.pem (private, mode 0600), %[1]s/cert.pem and %[1]s/jwks.json", r.dir)
	if r.bundle {
		written = fmt.Sprintf("%[1]s/key.pem (private, mode 0600), %[1]s/cert.pem, %[1]s/bundle.pem and %[1]s/jwks.json", r.dir)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Wrote %s.\n", written)
	r.write(&b)
	_, err = io.WriteString(stdout, b.String())
	return err
}

// keysReport is what keys prints about a key: the srht-registry config
// that signs with it and the registry config that trusts it, or, with
// previous keys, the steps of a rotation to it.
type keysReport struct {
	dir       string // absolute: the --out DIR
	key       *token.Key
	cfg       config.Config
	realm     string
	registry  string // v2 (distribution 2.8) or v3
	configArg string // the --config FILE, absolute, or ""

	previous     []string // the --previous files, absolute
	previousKids []string
	bundle       bool // bundle.pem holds the new certificate and the previous ones

	notes []string // comment lines printed after the kid
}

// printKept prints the configs for the key a previous run wrote to dir,
// after loading it as serve would.
func (r keysReport) printKept(stdout io.Writer) error {
	keyPath, certPath := filepath.Join(r.dir, "key.pem"), filepath.Join(r.dir, "cert.pem")
	keyPEM, err := readKeyFile("--out", keyPath, true)
	if err != nil {
		return err
	}
	certPEM, err := readKeyFile("--out", certPath, false)
	if err != nil {
		return err
	}
	if r.key, err = token.ParseKey(keyPEM, certPEM, kidFormat(r.cfg.Token)); err != nil {
		return fmt.Errorf("%s: %w", keyPath, err)
	}
	if r.registry == "v2" && r.key.Algorithm() == jwa.EdDSA {
		return usageError{fmt.Errorf("keys: %s is an Ed25519 (EdDSA) key, which distribution 2.8 cannot verify", keyPath)}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s already holds key.pem, cert.pem and jwks.json: kept them.\n", r.dir)
	if r.registry == "v3" {
		// A jwks.json written under another kid_format, or beside a key
		// replaced by hand, would make the registry refuse every token.
		var set struct {
			Keys []struct {
				KID string `json:"kid"`
			} `json:"keys"`
		}
		data, err := os.ReadFile(filepath.Join(r.dir, "jwks.json"))
		if err == nil {
			err = json.Unmarshal(data, &set)
		}
		if err != nil {
			return fmt.Errorf("%s/jwks.json: %w", r.dir, err)
		}
		listed := false
		for _, k := range set.Keys {
			listed = listed || k.KID == r.key.ID()
		}
		if !listed {
			r.notes = append(r.notes, fmt.Sprintf("# WARNING: %[1]s/jwks.json does not list this key's kid (it was written for another key\n#   or token.kid_format): the registry would refuse its tokens. Once srht-registry serves\n#   this key, write it anew and restart the registry:\n#     curl -fsS %[2]s > %[1]s/jwks.json",
				r.dir, jwksURL(r.realm)))
		}
	}
	if _, err := os.Stat(filepath.Join(r.dir, "bundle.pem")); err == nil {
		r.notes = append(r.notes, fmt.Sprintf("# %s/bundle.pem is left from a rotation: until its step 3 is done, keep the registry's\n#   rootcertbundle at bundle.pem and srht-registry's token.published_keys as that run printed.", r.dir))
	}
	r.write(&b)
	_, err = io.WriteString(stdout, b.String())
	return err
}

// write writes the report after its first line: the kid, then the configs
// or, with previous keys, the rotation.
func (r keysReport) write(b *strings.Builder) {
	v2 := r.registry == "v2"
	fmt.Fprintf(b, "# Key ID (kid): %s, algorithm %s.\n", r.key.ID(), r.key.Algorithm())
	for _, n := range r.notes {
		b.WriteString(n + "\n")
	}
	if len(r.previousKids) > 0 {
		if v2 {
			fmt.Fprintf(b, "# bundle.pem also holds the certificates of the previous keys: %s.\n", strings.Join(r.previousKids, ", "))
		} else {
			fmt.Fprintf(b, "# jwks.json also lists the previous keys: %s.\n", strings.Join(r.previousKids, ", "))
		}
	}
	if v2 && r.key.ID() != "" && !strings.Contains(r.key.ID(), ":") {
		fmt.Fprintf(b, "# Registry 2.8 cannot find this kid (format %s): set token.kid_format to auto or libtrust,\n# or uncomment token.certificate below so tokens carry x5c.\n", r.cfg.Token.KidFormat)
	}
	rootBundle := "cert.pem"
	if r.bundle {
		rootBundle = "bundle.pem"
	}
	heading := "# distribution v3 registry config (config.yml):\n"
	registryConfig := fmt.Sprintf(`auth:
  token:
    realm: %[2]s
    service: %[3]s
    issuer: %[4]s
    jwks: %[1]s/jwks.json
    rootcertbundle: %[1]s/%[5]s
`, r.dir, r.realm, r.cfg.DefaultService(), r.cfg.Issuer, rootBundle)
	if v2 {
		// 2.8 has no jwks option (and ignores one): it trusts the keys of
		// rootcertbundle, by the x5c chain or by their libtrust key ID
		// (kid_format auto or libtrust).
		heading = "# distribution 2.8 registry config (config.yml):\n"
		registryConfig = fmt.Sprintf(`auth:
  token:
    realm: %[2]s
    service: %[3]s
    issuer: %[4]s
    rootcertbundle: %[1]s/%[5]s
`, r.dir, r.realm, r.cfg.DefaultService(), r.cfg.Issuer, rootBundle)
	}
	tokenConfig := fmt.Sprintf(`token:
  key: %[1]s/key.pem
  # certificate: %[1]s/cert.pem   # uncomment to send x5c (then rootcertbundle is what the registry checks)
`, r.dir)
	if len(r.previous) == 0 {
		rotate := "srht-registry keys --out NEWDIR"
		if r.configArg != "" {
			rotate += " --config " + r.configArg
		}
		rotate += " --previous " + r.dir + "/key.pem"
		if v2 {
			rotate = strings.Replace(rotate, "keys --out", "keys --registry v2 --out", 1) + " --previous " + r.dir + "/cert.pem"
		}
		fmt.Fprintf(b, `#
# srht-registry config:
%s#
%s%s#
# To rotate this key later without a failed pull: %s
`, tokenConfig, heading, registryConfig, rotate)
		return
	}
	tokenConfig += "  published_keys:   # still valid: tokens they signed verify until they expire\n"
	for _, p := range r.previous {
		tokenConfig += "    - " + p + "\n"
	}
	trusts := "jwks.json lists every key"
	if r.bundle {
		trusts += ", bundle.pem every certificate"
	}
	x5c := `#    If the previous key sent x5c, keep certificate: set, and pass its certificate
#    with --previous too, so that the registry's rootcertbundle holds it.
`
	retire := fmt.Sprintf(`#    then give the registry the new key only (rootcertbundle: %[1]s/cert.pem, and
#    this jwks.json) and restart it:
#      curl -fsS %[2]s > %[1]s/jwks.json
`, r.dir, jwksURL(r.realm))
	if v2 {
		trusts = "bundle.pem holds the certificate of every key"
		x5c = `#    If the previous key sent x5c, keep certificate: set (bundle.pem holds the
#    previous certificate).
`
		retire = fmt.Sprintf(`#    then give the registry the new key only (rootcertbundle: %s/cert.pem) and
#    restart it.
`, r.dir)
	}
	fmt.Fprintf(b, `#
# Rotation, without a failed pull:
#
# 1. Make the registry trust the new key beside the previous ones: give it this
#    registry config and restart it (%[3]s).
#    srht-registry still signs with the previous key.
#
%[2]s%[4]s#
# 2. Sign with the new key and keep publishing the previous ones: set this in the
#    srht-registry config, then reload it (SIGHUP, or it sees the files change).
#    New tokens carry kid %[5]s;
#    tokens signed before keep working until they expire.
%[6]s#
# srht-registry config:
%[1]s#
# 3. When token.ttl (%[7]s) plus the registry's leeway of a minute have passed, no
#    valid token of a previous key is left: drop published_keys, reload srht-registry,
%[8]s#    Then destroy the previous private keys.
`, tokenConfig, heading, trusts, registryConfig, r.key.ID(), x5c, r.cfg.Token.TTL, retire)
}

// firstCertificate is the first CERTIFICATE block of PEM data, encoded,
// or nil.
func firstCertificate(data []byte) []byte {
	for rest := data; len(rest) > 0; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil
		}
		if block.Type == "CERTIFICATE" {
			return pem.EncodeToMemory(block)
		}
	}
	return nil
}

// jwksURL is where the token server whose realm is realm publishes its
// key set.
func jwksURL(realm string) string {
	u, err := url.Parse(realm)
	if err != nil || u.Host == "" {
		return "http://TOKEN-SERVER/.well-known/jwks.json"
	}
	u.Path, u.RawPath, u.RawQuery, u.Fragment = "/.well-known/jwks.json", "", "", ""
	return u.String()
}

package app

import (
	"bufio"
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

	"golang.org/x/crypto/bcrypt"

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
	configPath := fs.String("config", "", "config `FILE` whose service, issuer and listen address go into the printed registry config")
	realm := fs.String("realm", "", "token endpoint `URL` the registry sends clients to (default http://localhost:PORT/auth from listen)")
	force := fs.Bool("force", false, "overwrite existing files")
	keep := fs.Bool("keep-existing", false, "if DIR already holds key.pem, cert.pem and jwks.json, keep them and exit 0\n(for a start-up step that runs every time, such as a one-shot container)")
	registry := fs.String("registry", "v3", "registry `VERSION` the printed config is for: v3 (distribution 3.x: jwks) or v2 (distribution 2.8: rootcertbundle only)")
	var previous listFlag
	fs.Var(&previous, "previous", "key `FILE` (private key, public key or certificate) to keep publishing beside the new key, for a rotation (repeatable)")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		return usageError{errors.New("keys: --out DIR is required")}
	}
	if *keep {
		if *force {
			return usageError{errors.New("keys: --keep-existing and --force contradict each other")}
		}
		kept, err := keysExist(*out)
		if err != nil || kept {
			if kept {
				fmt.Fprintf(stdout, "# %s already holds key.pem, cert.pem and jwks.json: kept them.\n", *out)
			}
			return err
		}
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	signer, err := token.Generate(token.KeyType(*keyType))
	if err != nil {
		return usageError{err}
	}
	cert, err := token.SelfSign(signer, cfg.Issuer, certValidity, time.Now())
	if err != nil {
		return err
	}
	if *registry != "v2" && *registry != "v3" {
		return usageError{fmt.Errorf("keys: --registry must be v2 or v3, got %q", *registry)}
	}
	if *registry == "v2" && token.KeyType(*keyType) == token.KeyEd25519 {
		return usageError{errors.New("keys: distribution 2.8 cannot verify Ed25519 (EdDSA) tokens; use --type ec or rsa with --registry v2")}
	}
	key, err := token.NewKey(signer, nil, kidFormat(cfg.Token))
	if err != nil {
		return err
	}
	keyPEM, err := token.EncodePrivateKey(signer)
	if err != nil {
		return err
	}
	// The previous keys are read as serve reads published_keys, with the
	// same refusals, so the printed config loads.
	var published []*token.PublicKey
	var previousAbs []string
	var bundle []byte // the new certificate and the previous ones, when there are any
	for _, path := range previous {
		data, err := readKeyFile("--previous", path, false)
		if err != nil {
			return err
		}
		p, err := token.ParsePublicKey(data, kidFormat(cfg.Token))
		if err != nil {
			return fmt.Errorf("--previous %s: %w", path, err)
		}
		published = append(published, p)
		abs, err := filepath.Abs(path)
		if err != nil {
			return err
		}
		previousAbs = append(previousAbs, abs)
		if leaf := firstCertificate(data); leaf != nil {
			if bundle == nil {
				bundle = token.EncodeCertificate(cert)
			}
			bundle = append(bundle, leaf...)
		}
	}
	set, err := token.NewKeySet(key, published...)
	if err != nil {
		return err
	}
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
	abs, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	if *realm == "" {
		_, port, _ := strings.Cut(cfg.Listen, ":")
		*realm = fmt.Sprintf("http://localhost:%s/auth", port)
	}
	rootBundle, bundleNote := "cert.pem", ""
	if bundle != nil {
		rootBundle, bundleNote = "bundle.pem", ", bundle.pem every certificate"
	}
	written := fmt.Sprintf("%[1]s/key.pem (private, mode 0600), %[1]s/cert.pem and %[1]s/jwks.json", abs)
	if bundle != nil {
		written = fmt.Sprintf("%[1]s/key.pem (private, mode 0600), %[1]s/cert.pem, %[1]s/bundle.pem and %[1]s/jwks.json", abs)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Wrote %s.\n# Key ID (kid): %s, algorithm %s.\n", written, key.ID(), key.Algorithm())
	if len(published) > 0 {
		fmt.Fprintf(&b, "# jwks.json also lists the previous keys: %s.\n", strings.Join(set.KeyIDs()[1:], ", "))
	}
	registryConfig := fmt.Sprintf(`auth:
  token:
    realm: %[2]s
    service: %[3]s
    issuer: %[4]s
    jwks: %[1]s/jwks.json
    rootcertbundle: %[1]s/%[5]s
`, abs, *realm, cfg.DefaultService(), cfg.Issuer, rootBundle)
	if *registry == "v2" && key.ID() != "" && !strings.Contains(key.ID(), ":") {
		fmt.Fprintf(&b, "# Registry 2.8 cannot find this kid (format %s): set token.kid_format to auto or libtrust,\n# or uncomment token.certificate below so tokens carry x5c.\n", cfg.Token.KidFormat)
	}
	if *registry == "v2" {
		// 2.8 has no jwks option: it trusts the keys of rootcertbundle, by
		// the x5c chain or by their libtrust key ID (kid_format auto or
		// libtrust).
		registryConfig = fmt.Sprintf(`auth:
  token:
    realm: %[2]s
    service: %[3]s
    issuer: %[4]s
    rootcertbundle: %[1]s/%[5]s
`, abs, *realm, cfg.DefaultService(), cfg.Issuer, rootBundle)
	}
	tokenConfig := fmt.Sprintf(`token:
  key: %[1]s/key.pem
  # certificate: %[1]s/cert.pem   # uncomment to send x5c (then rootcertbundle is what the registry checks)
`, abs)
	if len(published) == 0 {
		fmt.Fprintf(&b, `#
# srht-registry config:
%s#
# distribution %s registry config (config.yml):
%s#
# To rotate this key later without a failed pull: srht-registry keys --out NEWDIR --previous %s/key.pem
`, tokenConfig, map[string]string{"v2": "2.8", "v3": "v3"}[*registry], registryConfig, abs)
		_, err = io.WriteString(stdout, b.String())
		return err
	}
	tokenConfig += "  published_keys:   # still valid: tokens they signed verify until they expire\n"
	for _, p := range previousAbs {
		tokenConfig += "    - " + p + "\n"
	}
	fmt.Fprintf(&b, `#
# Rotation, without a failed pull:
#
# 1. Make the registry trust the new key beside the previous ones: give it this
#    registry config and restart it (jwks.json lists every key%[4]s).
#    srht-registry still signs with the previous key.
#
# distribution v3 registry config (config.yml):
%[2]s#
# 2. Sign with the new key and keep publishing the previous ones: set this in the
#    srht-registry config, then reload it (SIGHUP, or it sees the files change).
#    New tokens carry kid %[5]s;
#    tokens signed before keep working until they expire.
#    If the previous key sent x5c, keep certificate: set, and pass its certificate
#    with --previous too, so that the registry's rootcertbundle holds it.
#
# srht-registry config:
%[1]s#
# 3. When token.ttl (%[6]s) plus the registry's leeway of a minute have passed, no
#    valid token of a previous key is left: drop published_keys, reload srht-registry,
#    then give the registry the new key only (rootcertbundle: %[7]s/cert.pem, and
#    this jwks.json) and restart it:
#      curl -fsS %[3]s > %[7]s/jwks.json
#    Then destroy the previous private keys.
`, tokenConfig, registryConfig, jwksURL(*realm), bundleNote, key.ID(), cfg.Token.TTL, abs)
	_, err = io.WriteString(stdout, b.String())
	return err
}

func runHashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("hash-password", stderr)
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt `COST` (10 is what htpasswd -B uses)")
	if err := parseFlags(fs, args, 1); err != nil {
		return err
	}
	user := fs.Arg(0)
	if user == "" || strings.ContainsAny(user, ":\n") {
		return usageError{errors.New("hash-password: give a user name (without ':') as the argument; the password is read from stdin")}
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return usageError{errors.New("hash-password: empty password on stdin")}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), *cost)
	if err != nil {
		// bcrypt's errors name lengths and costs, never the password.
		return usageError{fmt.Errorf("hash-password: %w", err)}
	}
	fmt.Fprintf(stdout, "%s:%s\n", user, hash)
	return nil
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
